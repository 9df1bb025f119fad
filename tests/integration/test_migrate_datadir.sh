#!/usr/bin/env bash
# A data directory made by fleetpki 0.1 (before projects; tests/fixtures/
# README.md says how it was made) is upgraded in place and keeps working
# from the outside: the old CA issues in project "default", old
# certificates keep their status in `list`, OCSP and the CRL, the old token
# still enrolls, the held request is still there to approve, and the audit
# chain made by the old release still verifies.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

FIX=$(dirname "$0")/../fixtures/datadir-0.1.tar.gz
tar -xzf "$FIX" -C "$T"
CA=$T/datadir
D=$T/devices
now=$(date +%s)
na=$(date -d "$(openssl x509 -in "$D/dev-1.crt" -noout -enddate | cut -d= -f2)" +%s)
if [ "$now" -ge "$na" ]; then
    echo "SKIP: the fixture's device certificates expired on $(openssl x509 -in "$D/dev-1.crt" \
        -noout -enddate | cut -d= -f2); regenerate it (tests/fixtures/README.md)"
    exit 77
fi
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

# the first command on the old directory migrates its store
fp ca list --dir "$CA" --json >"$T/cas.json" || fail "ca list on the old directory"
python3 - "$T/cas.json" <<'PY' || fail "migrated CA rows"
import json, sys
cas = {c["id"]: c for c in json.load(open(sys.argv[1]))}
assert set(cas) == {"root", "issuing"}, cas
assert cas["issuing"]["project"] == "default" and cas["issuing"]["active"], cas
assert cas["issuing"]["kind"] == "issuing" and cas["root"]["kind"] == "root", cas
PY
fp project list --dir "$CA" | grep -qx default || fail "project default"
pass "the 0.1 store is migrated: project default holds the old issuing CA"
fp audit verify --dir "$CA" >/dev/null || fail "the old audit chain verifies after migration"
pass "the audit chain made by 0.1 verifies"
fp list --dir "$CA" --json >"$T/list.json" || fail "list"
python3 - "$T/list.json" "$(serial "$D/dev-2.crt")" "$(serial "$D/dev-3.crt")" <<'PY' || fail "old certificates"
import json, sys
rows = json.load(open(sys.argv[1]))
by = {r["serial"]: r for r in rows}
assert len(rows) == 6, len(rows)
assert by[sys.argv[2]]["status"] == "revoked", by[sys.argv[2]]
assert by[sys.argv[3]]["status"] in ("on-hold", "revoked"), by[sys.argv[3]]
PY
pass "the six old certificates keep their status"

fp_serve_run
EST="https://$HTTPS/.well-known/est"
# OCSP and CRL for the old certificates, answered by the old CA's responder
ocsp_status() {
    openssl ocsp -issuer "$CA/issuing.crt" -cert "$1" -url "http://$HTTP/ocsp" \
        -CAfile "$CA/root.crt" -no_nonce >"$T/ocsp.out" 2>&1 || true
    grep -q "Response verify OK" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "OCSP verify"; }
    sed -n "s|^$1: ||p" "$T/ocsp.out"
}
[ "$(ocsp_status "$D/dev-1.crt")" = good ] || fail "dev-1 good"
[ "$(ocsp_status "$D/dev-2.crt")" = revoked ] || fail "dev-2 revoked"
[ "$(ocsp_status "$D/dev-3.crt")" = revoked ] || fail "dev-3 on hold is revoked (certificateHold)"
pass "OCSP answers for the old certificates"
curl -sf -o "$T/crl.der" "http://$HTTP/crl/issuing.crl" || fail "CRL of the old CA"
openssl crl -inform DER -in "$T/crl.der" -out "$T/crl.pem"
if openssl verify -crl_check -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" \
    -CRLfile "$T/crl.pem" "$D/dev-2.crt" >/dev/null 2>&1; then
    fail "dev-2 verified against the old CA's CRL"
fi
openssl verify -crl_check -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" \
    -CRLfile "$T/crl.pem" "$D/dev-1.crt" >/dev/null || fail "dev-1 with the CRL"
pass "the old CA's CRL lists the revoked certificate"

# the old token still enrolls (on the default label, its own is manual)
TOK_ID=$(awk '/^id:/ {print $2}' "$D/token.txt")
TOK_SECRET=$(awk '/^secret:/ {print $2}' "$D/token.txt")
base64 <"$D/dev-5.csr.der" >"$T/dev5.b64"
s=$(est_post "$EST/lab/simpleenroll" "$T/dev5.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 202 "the held request of the old release is still held" "$s"
fp pending --dir "$CA" --json >"$T/pending.json"
pid=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r[0]["id"] if len(r)==1 else "")' "$T/pending.json")
[ -n "$pid" ] || fail "one pending request: $(cat "$T/pending.json")"
fp approve "$pid" --dir "$CA" >/dev/null || fail "approve the old held request"
s=$(est_post "$EST/lab/simpleenroll" "$T/dev5.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "the approved request is answered with its certificate" "$s"
p7_certs "$T/body" "$T/dev5.pem"
openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" "$T/dev5.pem" >/dev/null ||
    fail "the approved certificate verifies"
openssl req -new -key "$D/dev-1.key" -subj "/CN=dev-1" -outform DER -out "$T/dev1.der"
base64 <"$T/dev1.der" >"$T/dev1.b64"
s=$(est_post "$EST/simplereenroll" "$T/dev1.b64" --cert "$D/dev-1.crt" --key "$D/dev-1.key")
expect_status 200 "a certificate issued by 0.1 renews over EST" "$s"
s=$(est_post "$EST/simplereenroll" "$T/dev1.b64" --cert "$D/dev-2.crt" --key "$D/dev-2.key")
expect_status 401 "a certificate revoked under 0.1 does not" "$s"
fp_serve_stop
fp audit verify --dir "$CA" >/dev/null || fail "audit chain after use"
pass "old and new audit rows verify as one chain"
