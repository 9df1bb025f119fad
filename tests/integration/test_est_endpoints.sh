#!/usr/bin/env bash
# EST endpoints with curl/openssl as clients: cacerts, csrattrs, token
# simpleenroll (RFC 8951 body variants), every error class the HTTP layer
# and the EST module answer, TLS versions, clean SIGTERM.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start "[est nocsr]
csrattrs = none"

# ---- cacerts (RFC 7030 4.1) ----
s=$(est_get "$EST/cacerts")
expect_status 200 "GET cacerts" "$s"
grep -qi '^content-type: application/pkcs7-mime' "$T/headers" || fail "cacerts content type"
p7_certs "$T/body" "$T/cacerts.pem"
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/cacerts.pem")" = 2 ] || fail "cacerts should hold issuing + root"
grep -q "$(sed -n 2p "$CA/issuing.crt")" "$T/cacerts.pem" || fail "cacerts lacks the issuing CA"
grep -q "$(sed -n 2p "$CA/root.crt")" "$T/cacerts.pem" || fail "cacerts lacks the root"
# a strict DER parser (another X.509 stack): the certificates' SET OF must
# be in DER order (X.690 11.6), which python3-cryptography checks
python3 - "$T/body" <<'PY' || fail "cacerts is not strict DER"
import base64, sys
from cryptography.hazmat.primitives.serialization import pkcs7
der = base64.b64decode(open(sys.argv[1], "rb").read())
certs = pkcs7.load_der_pkcs7_certificates(der)
assert len(certs) == 2, certs
PY
pass "cacerts is a certs-only PKCS#7 (strict DER) with the issuing CA and root"

# ---- csrattrs (RFC 7030 4.5) ----
s=$(est_get "$EST/csrattrs")
expect_status 200 "GET csrattrs" "$s"
grep -qi '^content-type: application/csrattrs' "$T/headers" || fail "csrattrs content type"
openssl base64 -d -in "$T/body" | openssl asn1parse -inform DER >"$T/attrs.txt"
grep -q 'id-ecPublicKey' "$T/attrs.txt" && grep -q prime256v1 "$T/attrs.txt" &&
    grep -q ecdsa-with-SHA256 "$T/attrs.txt" || { cat "$T/attrs.txt" >&2; fail "csrattrs content"; }
pass "csrattrs names the key type, curve and signature algorithm"
s=$(est_get "$EST/nocsr/csrattrs")
expect_status 204 "csrattrs of a label with none answers 204" "$s"

# ---- simpleenroll with a token ----
token default --uses 1
est_csr dev1 "/CN=device-1"
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "simpleenroll with an enrollment token" "$s"
grep -qi '^content-type: application/pkcs7-mime' "$T/headers" || fail "simpleenroll content type"
p7_certs "$T/body" "$T/dev1.crt"
verify_cert "$T/dev1.crt" || fail "issued certificate does not verify"
[ "$(openssl x509 -in "$T/dev1.crt" -noout -pubkey)" = "$(openssl pkey -in "$T/dev1.key" -pubout)" ] ||
    fail "certificate is not for the CSR's key"
serial=$(openssl x509 -in "$T/dev1.crt" -noout -serial | cut -d= -f2)
fp show "$serial" --dir "$CA" >/dev/null || fail "issued certificate not in the store"
pass "issued certificate verifies, matches the key and is stored"

s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 401 "reused one-time token is refused" "$s"
grep -qi '^www-authenticate: basic' "$T/headers" || fail "401 without WWW-Authenticate"
pass "401 carries WWW-Authenticate"

token default --uses 5
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -u "$TOK_ID:wrong-secret")
expect_status 401 "wrong token secret" "$s"
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -u "nosuchtoken:$TOK_SECRET")
expect_status 401 "unknown token id" "$s"
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64")
expect_status 401 "no credentials at all" "$s"
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -H 'Authorization: Basic !!!notbase64')
expect_status 401 "malformed Authorization header" "$s"

# RFC 8951: base64 without line breaks, with CRLF breaks, with a CTE header
base64 -w0 <"$T/dev1.der" >"$T/oneline.b64"
s=$(est_post "$EST/simpleenroll" "$T/oneline.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "base64 body without line breaks" "$s"
base64 -w 40 <"$T/dev1.der" | sed 's/$/\r/' >"$T/crlf.b64"
s=$(est_post "$EST/simpleenroll" "$T/crlf.b64" -u "$TOK_ID:$TOK_SECRET" \
    -H 'Content-Transfer-Encoding: base64')
expect_status 200 "CRLF line breaks and Content-Transfer-Encoding: base64" "$s"
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -u "$TOK_ID:$TOK_SECRET" \
    -H 'Content-Transfer-Encoding: binary')
expect_status 400 "Content-Transfer-Encoding other than base64" "$s"

# token restricted to a CN pattern and a lifetime
token default --cn 'sensor-*' --uses 3
est_csr wrongcn "/CN=camera-7"
s=$(est_post "$EST/simpleenroll" "$T/wrongcn.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "CN outside the token's pattern" "$s"
grep -q '^csr-cn:' "$T/body" || fail "403 body should name csr-cn"
est_csr sensor "/CN=sensor-7"
s=$(est_post "$EST/simpleenroll" "$T/sensor.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "CN inside the token's pattern" "$s"
token default --ttl 1s
sleep 2
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 401 "expired token" "$s"
token nocsr --uses 5
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 401 "token of another label" "$s"

# ---- malformed and refused requests ----
token default --uses 20
printf 'this is not base64 ***' >"$T/garbage"
s=$(est_post "$EST/simpleenroll" "$T/garbage" -u "$TOK_ID:$TOK_SECRET")
expect_status 400 "non-base64 body" "$s"
printf 'hello world, not a CSR' | base64 >"$T/notcsr"
s=$(est_post "$EST/simpleenroll" "$T/notcsr" -u "$TOK_ID:$TOK_SECRET")
expect_status 400 "base64 of something that is not a CSR" "$s"
head -c 100 "$T/dev1.der" | base64 >"$T/trunc"
s=$(est_post "$EST/simpleenroll" "$T/trunc" -u "$TOK_ID:$TOK_SECRET")
expect_status 400 "truncated CSR" "$s"
openssl req -new -newkey rsa:1024 -nodes -keyout "$T/weak.key" -subj "/CN=weak" \
    -outform DER -out "$T/weak.der" 2>/dev/null
base64 <"$T/weak.der" >"$T/weak.b64"
s=$(est_post "$EST/simpleenroll" "$T/weak.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "CSR refused by the profile" "$s"
grep -q '^csr-key-' "$T/body" || { cat "$T/body" >&2; fail "403 body should carry the policy code"; }
pass "policy refusal names its error code"
s=$(curl -sS --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" -H 'Content-Type: text/plain' \
    --data-binary @"$T/dev1.b64" -o "$T/body" -w '%{http_code}' "$EST/simpleenroll")
expect_status 415 "wrong content type" "$s"
head -c 200000 /dev/zero | tr '\0' 'A' >"$T/big"
s=$(est_post "$EST/simpleenroll" "$T/big" -u "$TOK_ID:$TOK_SECRET")
expect_status 413 "oversize body" "$s"
s=$(curl -sS --cacert "$CA/root.crt" -o "$T/body" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/pkcs10' "$EST/simpleenroll")
expect_status 411 "POST without Content-Length" "$s"
s=$(est_get "$EST/simpleenroll")
expect_status 405 "GET on simpleenroll" "$s"
grep -qi '^allow: POST' "$T/headers" || fail "405 without Allow"
s=$(est_post "$EST/cacerts" "$T/dev1.b64")
expect_status 405 "POST on cacerts" "$s"
s=$(est_get "$EST/nosuchlabel/cacerts")
expect_status 404 "unknown label" "$s"
s=$(est_get "$EST/nosuchop")
expect_status 404 "unknown operation" "$s"
s=$(curl -sS --cacert "$CA/root.crt" -H 'Content-Type: application/pkcs7-mime' \
    --data-binary @"$T/dev1.b64" -o "$T/body" -w '%{http_code}' "$EST/fullcmc")
expect_status 501 "fullcmc" "$s"
s=$(curl -sS -o /dev/null -w '%{http_code}' "http://$HTTP/.well-known/est/cacerts")
expect_status 404 "EST is not served on the plain-http listener" "$s"

# ---- TLS versions ----
port=${HTTPS##*:}
expect_fail "TLS 1.1 handshake is refused" \
    openssl s_client -connect "127.0.0.1:$port" -tls1_1 -CAfile "$CA/root.crt" </dev/null
expect_code 0 "TLS 1.2 handshake works" \
    openssl s_client -connect "127.0.0.1:$port" -tls1_2 -CAfile "$CA/root.crt" -verify_return_error </dev/null
expect_code 0 "TLS 1.3 handshake works" \
    openssl s_client -connect "127.0.0.1:$port" -tls1_3 -CAfile "$CA/root.crt" -verify_return_error </dev/null

# keep-alive: several requests on one connection
s=$(curl -sS --cacert "$CA/root.crt" -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' \
    "$EST/cacerts" "$EST/cacerts" "$EST/cacerts")
[ "$s" = "1 0 0 " ] || fail "keep-alive not used (connects per request: $s)"
pass "keep-alive reuses the connection"

# ---- log line and shutdown ----
grep -q 'method=POST path=/.well-known/est/simpleenroll status=200 identity=est:token:' "$T/server.log" ||
    fail "no structured request log line"
grep -q "$TOK_SECRET" "$T/server.log" && fail "a token secret reached the log"
pass "one structured log line per request, no secrets"
est_stop
pass "SIGTERM: clean exit 0"
