#!/usr/bin/env bash
# Builds fleetpki and runs it on the embedded default: SQLite store, a CA
# created in ./fleetpki-data on first run, listening on 127.0.0.1 only.
# Installs its own Debian packages first.  Ctrl-C stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target fleetpki

DIR=${FLEETPKI_DIR:-./fleetpki-data}
if [ ! -f "$DIR/fleetpki.conf" ]; then
    ./build/fleetpki init --dir "$DIR"
fi
exec ./build/fleetpki serve --dir "$DIR"
