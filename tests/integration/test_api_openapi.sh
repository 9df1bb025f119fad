#!/usr/bin/env bash
# test_api_openapi.sh - docs/openapi.json both ways against a real server
# (openapi_check.py): every route mounted under /api is documented, and
# every documented operation answers as documented (status codes, content
# types, required members).  Also: the served document is the file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/api_lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
POP=${FP_BUILD_DIR:-}/bench/populate_devices
[ -x "$POP" ] || { echo "SKIP: bench/populate_devices not built (FP_BUILD_DIR '${FP_BUILD_DIR:-}')"; exit 77; }

CA=$T/ca
fp_new_ca "$CA" >/dev/null
fp project create acme --dir "$CA" >/dev/null || fail "project acme"
printf '\n[est acme]\nproject = acme\n' >>"$CA/fleetpki.conf"
"$POP" --db "$CA/fleetpki.db" --projects 1 --count 3 >/dev/null || fail "populate_devices"
fp_csr c1 "/CN=acme-1"
fp issue --dir "$CA" --csr "$T/c1.csr" --profile device --project acme --out "$T/c1.crt" >/dev/null ||
    fail "issue"
serial=$(openssl x509 -in "$T/c1.crt" -noout -serial | cut -d= -f2)
ADMIN=$(new_key --admin)
fp_serve_run

expect_api 201 "a token to delete" POST /projects/acme/tokens "$ADMIN" '{"label":"acme"}'
tid=$(jq -r .id "$T/r.body")
expect_api 200 "the CA id" GET /projects/acme/cas "$ADMIN"
ca=$(jq -r '.items[0].id' "$T/r.body")
jq -n --arg s "$serial" --arg t "$tid" --arg c "$ca" \
    '{project: "acme", devices_project: "bench-0", serial: $s, token: $t, ca: $c,
      device: "dev-0-00000001", key: "site"}' >"$T/params.json"

curl -sk --max-time 30 -o "$T/served.json" "https://$HTTPS/api/v1/openapi.json" || fail "GET openapi.json"
cmp -s "$T/served.json" "$SRC/docs/openapi.json" || fail "the served document is not docs/openapi.json"
pass "the served document is docs/openapi.json"

python3 "$SRC/tests/integration/openapi_check.py" "$SRC/docs/openapi.json" "$SRC" \
    "https://$HTTPS/api/v1" "$ADMIN" "$T/params.json" || fail "the server and docs/openapi.json disagree"
pass "docs/openapi.json and the server agree both ways"
fp_serve_stop
