#!/usr/bin/env bash
# test_scep_ra.sh - the SCEP RA identity: made on the first start of
# `fleetpki serve` (issued by the CA under profile scep-ra, stored and
# audited), kept across restarts, made again when its files are gone or do
# not match, its key 0600 and encrypted when the CA keys are.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"
source "$(dirname "$0")/scep_lib.sh"
scep_require

est_start
RA_CRT=$CA/ca/issuing/scep-ra.crt
RA_KEY=$CA/ca/issuing/scep-ra.key
[ -s "$RA_CRT" ] && [ -s "$RA_KEY" ] || fail "no RA files after the first start"
[ "$(stat -c %a "$RA_KEY")" = 600 ] || fail "RA key mode $(stat -c %a "$RA_KEY")"
pass "first start made the RA certificate and a 0600 key"
openssl x509 -in "$RA_CRT" -noout -ext keyUsage,extendedKeyUsage,basicConstraints >"$T/ext"
grep -q 'Digital Signature, Key Encipherment' "$T/ext" || { cat "$T/ext" >&2; fail "RA key usage"; }
grep -q 'Extended Key Usage' "$T/ext" && fail "RA certificate has an extended key usage"
grep -q 'CA:FALSE' "$T/ext" || fail "RA certificate must not be a CA"
openssl x509 -in "$RA_CRT" -noout -text | grep -q 'Public-Key: (3072 bit)' || fail "RA key is not RSA-3072"
verify_cert "$RA_CRT" || fail "RA certificate does not chain"
openssl asn1parse -strictpem -in "$RA_CRT" >/dev/null || fail "RA certificate file is not strict PEM"
pass "RA certificate: keyUsage digitalSignature + keyEncipherment, no EKU, not a CA, RSA-3072, chains"
serial=$(openssl x509 -in "$RA_CRT" -noout -serial | cut -d= -f2)
[ "$(sqlite3 "$CA/fleetpki.db" "SELECT profile FROM certificates WHERE serial='$serial'")" = scep-ra ] ||
    fail "RA certificate not stored with profile scep-ra"
[ "$(sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM audit WHERE action='cert.issue' AND object='$serial'")" = 1 ] ||
    fail "RA issuance not audited"
pass "RA certificate stored (profile scep-ra) and audited"
scep_setup
cmp <(openssl x509 -in "$T/ra.pem" -outform DER) <(openssl x509 -in "$RA_CRT" -outform DER) ||
    fail "GetCACert does not carry the RA certificate on disk"
pass "GetCACert carries it"

fp_serve_stop
fp_serve_run
[ "$(openssl x509 -in "$RA_CRT" -noout -serial | cut -d= -f2)" = "$serial" ] || fail "restart replaced a good RA"
pass "a restart keeps the RA"

fp_serve_stop
rm -f "$RA_KEY"
fp_serve_run
new=$(openssl x509 -in "$RA_CRT" -noout -serial | cut -d= -f2)
[ "$new" != "$serial" ] || fail "RA key gone but the RA was not renewed"
scep_setup
[ "$(openssl x509 -in "$T/ra.pem" -noout -serial | cut -d= -f2)" = "$new" ] || fail "GetCACert serves the old RA"
pass "a missing RA key makes a new RA identity, served at once"
fp_serve_stop

# keys encrypted at rest: the RA key is too
CA=$T/enc
printf 'correct horse\n' >"$T/pass"
fp init --dir "$CA" --name "Enc Org" --passphrase-file "$T/pass" >/dev/null
"$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --passphrase-file "$T/pass" \
    --threads 1 --addr-file "$T/addr2" 2>"$T/server2.log" &
SRV_PID=$!
fp_track "$SRV_PID"
for _ in $(seq 1 300); do [ -s "$T/addr2" ] && break; sleep 0.05; done
[ -s "$T/addr2" ] || { cat "$T/server2.log" >&2; fail "encrypted server did not start"; }
head -1 "$CA/ca/issuing/scep-ra.key" | grep -q 'ENCRYPTED PRIVATE KEY' || fail "RA key stored in the clear"
pass "with encrypted CA keys the RA key is encrypted too"
fp_serve_stop
