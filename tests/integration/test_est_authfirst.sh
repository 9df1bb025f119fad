#!/usr/bin/env bash
# Authentication comes before any work on the request body (issue 8,
# defect 2): an unauthenticated request whose body is malformed, or a CSR
# whose signature does not verify, gets 401, not the 400/403 that would
# show the body was decoded or verified first.  An authenticated caller
# still gets the right 400/403 for a bad CSR, and pays no token use for it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start "[est certonly]
auth = cert"

printf 'this is not base64 at all !!!\n' >"$T/junk.b64"
printf 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n' >"$T/notcsr.b64" # base64, not a CSR
# a well-formed CSR whose signature does not verify (last octet of the
# ECDSA signature changed)
est_csr good "/CN=dev-1"
python3 - "$T/good.der" "$T/badsig.der" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[-1] ^= 0x01
open(sys.argv[2], 'wb').write(bytes(d))
PY
openssl req -inform DER -in "$T/badsig.der" -noout 2>/dev/null || fail "bad-signature CSR should still parse"
# (openssl req -verify exits 0 either way in 3.0: read what it says)
openssl req -inform DER -in "$T/badsig.der" -verify -noout 2>&1 | grep -q 'verify failure' ||
    fail "bad-signature CSR should not verify"
base64 <"$T/badsig.der" >"$T/badsig.b64"

# no credentials at all
for op in simpleenroll serverkeygen; do
    s=$(est_post "$EST/$op" "$T/junk.b64")
    expect_status 401 "$op: no credentials, body not base64" "$s"
    grep -qi '^WWW-Authenticate: Basic' "$T/headers" || fail "401 without WWW-Authenticate"
    s=$(est_post "$EST/$op" "$T/notcsr.b64")
    expect_status 401 "$op: no credentials, body not a CSR" "$s"
    s=$(est_post "$EST/$op" "$T/badsig.b64")
    expect_status 401 "$op: no credentials, CSR signature does not verify" "$s"
done
s=$(est_post "$EST/simplereenroll" "$T/junk.b64")
expect_status 401 "simplereenroll: no credentials, body not base64" "$s"
s=$(est_post "$EST/certonly/simpleenroll" "$T/junk.b64")
expect_status 401 "cert-only label: no certificate, body not base64" "$s"

# wrong credentials: the same
token default --uses 1
good_id=$TOK_ID good_secret=$TOK_SECRET
s=$(est_post "$EST/simpleenroll" "$T/junk.b64" -u "$good_id:wrong-secret")
expect_status 401 "wrong token secret, body not base64" "$s"
s=$(est_post "$EST/serverkeygen" "$T/badsig.b64" -u "no-such-token:x")
expect_status 401 "unknown token, CSR signature does not verify" "$s"
s=$(est_post "$EST/simpleenroll" "$T/junk.b64" -H 'Authorization: Bearer xyz')
expect_status 401 "malformed Authorization, body not base64" "$s"
# a client certificate that chains to nothing we trust, on a cert-only label
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$T/self.key" -subj "/CN=dev-1" -out "$T/self.crt" 2>/dev/null
s=$(est_post "$EST/certonly/serverkeygen" "$T/badsig.b64" --cert "$T/self.crt" --key "$T/self.key")
expect_status 401 "untrusted client certificate, CSR signature does not verify" "$s"

# authenticated: the body is judged, and no token use is spent on it
s=$(est_post "$EST/simpleenroll" "$T/junk.b64" -u "$good_id:$good_secret")
expect_status 400 "valid token, body not base64" "$s"
grep -q '^csr-malformed' "$T/body" || fail "400 body should start with csr-malformed: $(cat "$T/body")"
s=$(est_post "$EST/simpleenroll" "$T/notcsr.b64" -u "$good_id:$good_secret")
expect_status 400 "valid token, body not a CSR" "$s"
s=$(est_post "$EST/serverkeygen" "$T/badsig.b64" -u "$good_id:$good_secret")
expect_status 403 "valid token, serverkeygen CSR signature does not verify" "$s"
grep -q '^csr-pop' "$T/body" || fail "403 body should start with csr-pop: $(cat "$T/body")"
s=$(est_post "$EST/simpleenroll" "$T/badsig.b64" -u "$good_id:$good_secret")
expect_status 403 "valid token, simpleenroll CSR signature does not verify" "$s"
token default --uses 1 --cn 'dev-*'
s=$(est_post "$EST/simpleenroll" "$T/good.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "token --cn dev-*: CN dev-1 enrolls" "$s"
est_csr other "/CN=other-1"
token default --uses 1 --cn 'dev-*'
s=$(est_post "$EST/simpleenroll" "$T/other.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "token --cn dev-*: CN other-1 is refused" "$s"
grep -q '^csr-cn' "$T/body" || fail "403 body should start with csr-cn: $(cat "$T/body")"
# the single-use token survived every refusal above
s=$(est_post "$EST/simpleenroll" "$T/good.b64" -u "$good_id:$good_secret")
expect_status 200 "the single-use token still enrolls after the refused requests" "$s"
s=$(est_post "$EST/simpleenroll" "$T/good.b64" -u "$good_id:$good_secret")
expect_status 401 "and is then used up" "$s"

est_stop
pass "clean shutdown"
