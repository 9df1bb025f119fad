#!/usr/bin/env bash
# Installs the Debian 12 packages fleetpki needs to build, run and test.
# Idempotent; run as root.  Keep this the one list of system dependencies.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config clang-14 libclang-rt-14-dev
    libssl-dev openssl libmbedtls-dev
    libsqlite3-dev sqlite3
    libpq-dev postgresql
    libevent-dev libjansson-dev libcmocka-dev libjemalloc-dev
    curl python3 python3-cryptography python3-pyasn1-modules procps time
    mosquitto mosquitto-clients mosquitto-dev libmosquitto-dev
    jq nodejs
    libcbor-dev python3-cbor2
    softhsm2 opensc libp11-kit-dev
    scep certmonger
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

# The OpenAPI linter of docs/openapi.json (tests/integration/
# test_api_openapi_lint.sh), from the npm registry, pinned, in a local
# prefix outside the source tree (FP_TOOLS_DIR, default
# /opt/fleetpki-tools): the test looks for it there and skips (77) without it.
REDOCLY_VERSION=2.77.0
TOOLS=${FP_TOOLS_DIR:-/opt/fleetpki-tools}
# a nodejs build that bundles npm conflicts with Debian's npm package
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends npm
if [ "$("$TOOLS/npm/node_modules/.bin/redocly" --version 2>/dev/null)" != "$REDOCLY_VERSION" ]; then
    mkdir -p "$TOOLS/npm"
    npm install --no-audit --no-fund --prefix "$TOOLS/npm" "@redocly/cli@$REDOCLY_VERSION" >/dev/null ||
        echo "install-deps: npm install @redocly/cli failed; the OpenAPI lint test will skip" >&2
fi
