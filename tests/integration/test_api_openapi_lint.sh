#!/usr/bin/env bash
# test_api_openapi_lint.sh - lint docs/openapi.json with Redocly CLI (the
# pinned version scripts/install-deps.sh installs under FP_TOOLS_DIR,
# default /opt/fleetpki-tools), rules in docs/redocly.yaml.  Errors fail
# the test; warnings are printed.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
REDOCLY=${FP_TOOLS_DIR:-/opt/fleetpki-tools}/npm/node_modules/.bin/redocly
if [ ! -x "$REDOCLY" ] || ! command -v node >/dev/null; then
    echo "SKIP: Redocly CLI not installed at $REDOCLY (run scripts/install-deps.sh)"
    exit 77
fi
"$REDOCLY" lint --config "$SRC/docs/redocly.yaml" "$SRC/docs/openapi.json" ||
    { echo "FAIL - docs/openapi.json does not lint" >&2; exit 1; }
echo "ok - docs/openapi.json lints clean"
