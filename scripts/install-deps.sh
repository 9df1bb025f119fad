#!/usr/bin/env bash
# Installs the Debian 12 packages fleetpki needs to build, run and test.
# Idempotent; run as root.  Keep this the one list of system dependencies.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config clang-14 libclang-rt-14-dev
    libssl-dev openssl libmbedtls-dev
    libsqlite3-dev sqlite3
    libevent-dev libjansson-dev libcmocka-dev libjemalloc-dev
    curl python3 python3-cryptography procps time
    mosquitto mosquitto-clients
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
