#!/usr/bin/env bash
# Revocation through the CLI alone (no server): `fleetpki ocsp --request`
# answers openssl-made requests exactly as the responder would, the OCSP
# signer renews on demand, and `fleetpki revoke` validates its input.
source "$(dirname "$0")/lib.sh"

CA=$(fp_new_ca)
CHAIN=$T/chain.pem
cat "$CA/root.crt" "$CA/issuing.crt" >"$CHAIN"
fp_csr d1 "/CN=cli-1"
fp issue --dir "$CA" --csr "$T/d1.csr" --profile device --out "$T/d1.crt"
s1=$(openssl x509 -in "$T/d1.crt" -noout -serial | cut -d= -f2)

ask() { # ask CERT -> status via fleetpki ocsp, verified by openssl
    openssl ocsp -issuer "$CA/issuing.crt" -cert "$1" -reqout "$T/q.der" >/dev/null 2>&1
    fp ocsp --dir "$CA" --request "$T/q.der" --out "$T/r.der" || fail "fleetpki ocsp"
    openssl ocsp -respin "$T/r.der" -reqin "$T/q.der" -CAfile "$CHAIN" >"$T/v.out" 2>&1 \
        || { cat "$T/v.out" >&2; fail "response does not verify"; }
    grep -q "Response verify OK" "$T/v.out" || fail "response not verified"
    openssl ocsp -respin "$T/r.der" -resp_text -noverify | sed -n 's/.*Cert Status: \([a-z]*\).*/\1/p'
}

[ "$(ask "$T/d1.crt")" = good ] || fail "fresh certificate not good"
fp revoke --dir "$CA" "$s1" --reason superseded >/dev/null
[ "$(ask "$T/d1.crt")" = revoked ] || fail "revoked certificate not revoked"
pass "fleetpki ocsp: good, then revoked"

# malformed input still yields an OCSP response (exit 0), marked malformed
printf 'junk' >"$T/junk"
fp ocsp --dir "$CA" --request "$T/junk" --out "$T/junk.resp" 2>"$T/junk.err" || fail "ocsp on junk failed"
openssl ocsp -respin "$T/junk.resp" -resp_text -noverify >"$T/junk.txt" 2>&1 || true
grep -q malformedrequest "$T/junk.txt" || fail "junk not malformedRequest"
grep -q malformedrequest "$T/junk.err" || fail "no diagnostic for junk"
expect_code 2 "ocsp without --request or --renew-signer" fp ocsp --dir "$CA"
pass "fleetpki ocsp: malformed input, usage"

# signer renewal: fresh -> nothing; --force -> new certificate, still valid
old=$(openssl x509 -in "$CA/ocsp.crt" -noout -serial)
fp ocsp --dir "$CA" --renew-signer | grep -q "nothing to do" || fail "fresh signer renewed"
fp ocsp --dir "$CA" --renew-signer --force | grep -q renewed || fail "forced renewal"
new=$(openssl x509 -in "$CA/ocsp.crt" -noout -serial)
[ "$old" != "$new" ] || fail "ocsp.crt unchanged after renewal"
[ "$(stat -c %a "$CA/ocsp.key")" = 600 ] || fail "renewed ocsp.key is not 0600"
openssl x509 -in "$CA/ocsp.crt" -noout -ext extendedKeyUsage | grep -q "OCSP Signing" || fail "renewed EKU"
[ "$(ask "$T/d1.crt")" = revoked ] || fail "responses after renewal"
openssl ocsp -respin "$T/r.der" -resp_text -noverify | grep -q "$(sed 's/serial=//' <<<"$new" | sed 's/../&:/g; s/:$//' | tr 'A-F' 'a-f' | cut -c1-20)" \
    || fail "response not signed by the renewed signer"
fp audit list --dir "$CA" 2>/dev/null | grep -q "server:ocsp-renew" || fail "renewal not audited"
pass "OCSP signer renewal (on demand), audited, used at once"

# revoke input checks
expect_code 2 "revoke without reason" fp revoke --dir "$CA" "$s1"
expect_code 2 "revoke with unknown reason" fp revoke --dir "$CA" "$s1" --reason bogus
expect_code 2 "revoke with serial and --subject" fp revoke --dir "$CA" "$s1" --subject x --reason superseded
expect_code 1 "revoking twice" fp revoke --dir "$CA" "$s1" --reason keyCompromise
expect_code 1 "unknown serial" fp revoke --dir "$CA" 0x1234 --reason keyCompromise
pass "revoke argument checks"
