#!/usr/bin/env bash
# `serve` with keys encrypted at rest: it needs the passphrase (file or
# FLEETPKI_PASSPHRASE) for the issuing CA and the TLS key, refuses to start
# without it or with a wrong one, and then enrolls as usual (P-384 CA).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

printf 'correct horse battery staple\n' >"$T/pass"
fp init --dir "$CA" --algo p384 --name "Enc Org" --passphrase-file "$T/pass" >/dev/null
expect_code 1 "serve without the passphrase fails" \
    "$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http ''
grep -q passphrase "$T/last.err" || fail "error should name the passphrase"
FLEETPKI_PASSPHRASE=wrong expect_code 1 "serve with a wrong passphrase fails" \
    "$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http ''

"$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http '' --passphrase-file "$T/pass" \
    --addr-file "$T/addr" 2>"$T/server.log" &
SRV_PID=$!
fp_track "$SRV_PID"
for _ in $(seq 1 100); do [ -s "$T/addr" ] && break; sleep 0.05; done
[ -s "$T/addr" ] || { cat "$T/server.log" >&2; fail "server with passphrase did not start"; }
grep -q '^http=$' "$T/addr" || fail "--http '' should disable the plain listener"
EST="https://$(sed -n 's/^https=//p' "$T/addr")/.well-known/est"

token default
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$T/d.key" \
    -subj "/CN=enc-dev" -outform DER 2>/dev/null | base64 >"$T/d.b64"
s=$(est_post "$EST/simpleenroll" "$T/d.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "enrollment with an encrypted CA" "$s"
p7_certs "$T/body" "$T/d.crt"
verify_cert "$T/d.crt" || fail "certificate does not verify"
openssl x509 -in "$T/d.crt" -noout -text | grep -q 'ecdsa-with-SHA384' || fail "P-384 CA should sign with SHA-384"
pass "certificate from the encrypted P-384 CA verifies"
est_stop
