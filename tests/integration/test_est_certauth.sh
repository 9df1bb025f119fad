#!/usr/bin/env bash
# EST with TLS client certificates: simplereenroll rules (RFC 7030 4.2.2),
# revoked clients, revoke-on-renew, manufacturer (IDevID) trust anchors,
# cert-only and token-only labels, serverkeygen (plain and encrypted).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

# A manufacturer CA outside fleetpki, and a device IDevID it issued.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$T/mfg.key" -subj "/O=Acme Factory/CN=Acme IDevID CA" -out "$T/mfg.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/idev.key" \
    -subj "/CN=acme-serial-0042" -out "$T/idev.csr" 2>/dev/null
openssl x509 -req -in "$T/idev.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
    -days 30 -out "$T/idev.crt" 2>/dev/null

est_start "[est factory]
auth = cert
trust_anchors = $T/mfg.crt

[est renew]
auth = cert
revoke_on_renew = yes

[est tokens]
auth = token"

# first certificate through a token
token default --uses 2
est_csr dev "/CN=device-9" -addext "subjectAltName=DNS:device-9.example"
s=$(est_post "$EST/simpleenroll" "$T/dev.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "enroll device-9 with a token" "$s"
p7_certs "$T/body" "$T/dev.crt"
cert=(--cert "$T/dev.crt" --key "$T/dev.key")

# ---- simplereenroll ----
openssl req -new -key "$T/dev.key" -subj "/CN=device-9" -addext "subjectAltName=DNS:device-9.example" \
    -outform DER 2>/dev/null | base64 >"$T/same.b64"
s=$(est_post "$EST/simplereenroll" "$T/same.b64" "${cert[@]}")
expect_status 200 "simplereenroll with the current certificate" "$s"
p7_certs "$T/body" "$T/renewed.crt"
verify_cert "$T/renewed.crt" || fail "renewed certificate does not verify"
[ "$(openssl x509 -in "$T/renewed.crt" -noout -subject)" = "$(openssl x509 -in "$T/dev.crt" -noout -subject)" ] ||
    fail "renewed subject differs"
pass "renewed certificate verifies and keeps the subject"
old_serial=$(openssl x509 -in "$T/dev.crt" -noout -serial | cut -d= -f2)
fp show "$old_serial" --dir "$CA" --json | grep -q '"status": "valid"' ||
    fail "old certificate should stay valid without revoke_on_renew"
pass "old certificate stays valid on the default label"

# rekey: new key, same names
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/rekey.key" \
    -subj "/CN=device-9" -addext "subjectAltName=DNS:device-9.example" -outform DER 2>/dev/null |
    base64 >"$T/rekey.b64"
s=$(est_post "$EST/simplereenroll" "$T/rekey.b64" "${cert[@]}")
expect_status 200 "simplereenroll with a new key (rekey)" "$s"

openssl req -new -key "$T/dev.key" -subj "/CN=device-10" -addext "subjectAltName=DNS:device-9.example" \
    -outform DER 2>/dev/null | base64 >"$T/othercn.b64"
s=$(est_post "$EST/simplereenroll" "$T/othercn.b64" "${cert[@]}")
expect_status 403 "re-enroll with a changed subject" "$s"
openssl req -new -key "$T/dev.key" -subj "/CN=device-9" -addext "subjectAltName=DNS:evil.example" \
    -outform DER 2>/dev/null | base64 >"$T/othersan.b64"
s=$(est_post "$EST/simplereenroll" "$T/othersan.b64" "${cert[@]}")
expect_status 403 "re-enroll with a changed subjectAltName" "$s"
openssl req -new -key "$T/dev.key" -subj "/CN=device-9" -outform DER 2>/dev/null | base64 >"$T/nosan.b64"
s=$(est_post "$EST/simplereenroll" "$T/nosan.b64" "${cert[@]}")
expect_status 403 "re-enroll dropping the subjectAltName" "$s"
s=$(est_post "$EST/simplereenroll" "$T/same.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "re-enroll with a token instead of the certificate" "$s"
s=$(est_post "$EST/simplereenroll" "$T/same.b64")
expect_status 401 "re-enroll without any credentials" "$s"

# a certificate chaining to nothing we trust
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$T/self.key" -subj "/CN=device-9" -out "$T/self.crt" 2>/dev/null
s=$(est_post "$EST/simplereenroll" "$T/same.b64" --cert "$T/self.crt" --key "$T/self.key")
expect_status 401 "self-signed client certificate" "$s"

# a certificate of ours that is not for client authentication (the TLS
# server certificate, EKU serverAuth) does not authenticate a client
s=$(est_post "$EST/simpleenroll" "$T/same.b64" --cert "$CA/tls.crt" --key "$CA/tls.key")
expect_status 401 "our TLS server certificate as client certificate" "$s"

# ---- revoked client ----
fp revoke "$old_serial" --dir "$CA" --reason keyCompromise >/dev/null
s=$(est_post "$EST/simplereenroll" "$T/same.b64" "${cert[@]}")
expect_status 401 "revoked client certificate cannot re-enroll" "$s"
s=$(est_post "$EST/simpleenroll" "$T/same.b64" "${cert[@]}")
expect_status 401 "revoked client certificate cannot enroll" "$s"

# ---- revoke_on_renew label ----
cert2=(--cert "$T/renewed.crt" --key "$T/dev.key")
s=$(est_post "$EST/renew/simplereenroll" "$T/same.b64" "${cert2[@]}")
expect_status 200 "re-enroll on a revoke_on_renew label" "$s"
ren_serial=$(openssl x509 -in "$T/renewed.crt" -noout -serial | cut -d= -f2)
fp show "$ren_serial" --dir "$CA" --json >"$T/show.json"
grep -q '"status": "revoked"' "$T/show.json" && grep -q '"reason": "superseded"' "$T/show.json" ||
    { cat "$T/show.json" >&2; fail "old certificate not revoked as superseded"; }
pass "revoke_on_renew revokes the old certificate (superseded)"

# ---- manufacturer trust anchors (IDevID) ----
est_csr ldev "/CN=acme-serial-0042"
idev=(--cert "$T/idev.crt" --key "$T/idev.key")
s=$(est_post "$EST/factory/simpleenroll" "$T/ldev.b64" "${idev[@]}")
expect_status 200 "enroll with a manufacturer IDevID on a label trusting it" "$s"
p7_certs "$T/body" "$T/ldev.crt"
verify_cert "$T/ldev.crt" || fail "LDevID does not verify"
s=$(est_post "$EST/simpleenroll" "$T/ldev.b64" "${idev[@]}")
expect_status 401 "the IDevID is not trusted on the default label" "$s"
s=$(est_post "$EST/factory/simplereenroll" "$T/ldev.b64" "${idev[@]}")
expect_status 403 "simplereenroll with an IDevID (not issued here)" "$s"
token factory --uses 1
s=$(est_post "$EST/factory/simpleenroll" "$T/ldev.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 401 "token on a cert-only label" "$s"
s=$(est_post "$EST/factory/simpleenroll" "$T/ldev.b64" --cert "$T/ldev.crt" --key "$T/ldev.key")
expect_status 200 "certificate from our own CA on a cert-only label" "$s"

# ---- token-only label ----
s=$(est_post "$EST/tokens/simpleenroll" "$T/ldev.b64" --cert "$T/ldev.crt" --key "$T/ldev.key")
expect_status 401 "client certificate on a token-only label" "$s"
token tokens --uses 1
s=$(est_post "$EST/tokens/simpleenroll" "$T/ldev.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "token on a token-only label" "$s"

# ---- serverkeygen (RFC 7030 4.4) ----
ldev=(--cert "$T/ldev.crt" --key "$T/ldev.key")
est_csr kg "/CN=acme-serial-0042"
s=$(est_post "$EST/serverkeygen" "$T/kg.b64" "${ldev[@]}")
expect_status 200 "serverkeygen" "$s"
# strict MIME (RFC 2045/2046) split into $T/kgparts/part{1,2}.{der,ct}
mkdir -p "$T/kgparts"
est_multipart_check "$T/headers" "$T/body" "$T/kgparts" || fail "serverkeygen answer is not strict MIME"
grep -qx 'application/pkcs8' "$T/kgparts/part1.ct" || fail "first part should be application/pkcs8"
grep -q 'application/pkcs7-mime' "$T/kgparts/part2.ct" || fail "second part should be application/pkcs7-mime"
openssl pkey -inform DER -in "$T/kgparts/part1.der" -out "$T/kg-server.key" ||
    fail "pkcs8 part does not parse"
base64 <"$T/kgparts/part2.der" >"$T/part2.b64"
p7_certs "$T/part2.b64" "$T/kg.crt"
verify_cert "$T/kg.crt" || fail "serverkeygen certificate does not verify"
[ "$(openssl x509 -in "$T/kg.crt" -noout -pubkey)" = "$(openssl pkey -in "$T/kg-server.key" -pubout)" ] ||
    fail "server-generated key does not match its certificate"
[ "$(openssl x509 -in "$T/kg.crt" -noout -pubkey)" != "$(openssl pkey -in "$T/kg.key" -pubout)" ] ||
    fail "certificate carries the CSR's key instead of a fresh one"
pass "serverkeygen key matches its certificate (and is fresh)"
# the raw private scalar must appear in no file of the CA directory
openssl pkey -in "$T/kg-server.key" -outform DER -traditional -out "$T/kg-ec.der"
python3 - "$T/kg-ec.der" "$CA" <<'PY' || fail "server-generated key found in the CA directory"
import os, sys
der = open(sys.argv[1], 'rb').read()
secret = der[7:7 + 32]          # ECPrivateKey: SEQ, INTEGER 1, OCTET STRING(32)
assert der[5:7] == b'\x04\x20', 'unexpected ECPrivateKey layout'
for root, _, files in os.walk(sys.argv[2]):
    for f in files:
        if secret in open(os.path.join(root, f), 'rb').read():
            sys.exit(1)
PY
pass "server-generated key is not stored"

# encrypted key (RFC 7030 4.4.1.2): CSR carries AsymmetricDecryptKeyIdentifier
cat >"$T/enc.cnf" <<EOF
oid_section = oids
[oids]
asymmDecryptKeyID = 1.2.840.113549.1.9.16.2.54
[req]
distinguished_name = dn
attributes = attrs
prompt = no
[dn]
CN = acme-serial-0042
[attrs]
asymmDecryptKeyID = ldev-key
EOF
openssl req -new -config "$T/enc.cnf" -key "$T/ldev.key" -outform DER 2>/dev/null | base64 >"$T/enc.b64"
s=$(est_post "$EST/serverkeygen" "$T/enc.b64" "${ldev[@]}")
expect_status 200 "serverkeygen with an encrypted key" "$s"
mkdir -p "$T/encparts"
est_multipart_check "$T/headers" "$T/body" "$T/encparts" || fail "encrypted answer is not strict MIME"
grep -q 'server-generated-key' "$T/encparts/part1.ct" || fail "encrypted key part content type"
cp "$T/encparts/part1.der" "$T/signed.der"
base64 <"$T/encparts/part2.der" >"$T/part2.b64"
openssl cms -verify -inform DER -in "$T/signed.der" -CAfile "$CA/root.crt" -certfile "$CA/issuing.crt" \
    -purpose any -out "$T/env.der" 2>/dev/null || fail "signed envelope does not verify"
openssl cms -decrypt -inform DER -in "$T/env.der" -recip "$T/ldev.crt" -inkey "$T/ldev.key" \
    -out "$T/p8.der" || fail "cannot decrypt the generated key with the client key"
openssl pkey -inform DER -in "$T/p8.der" -out "$T/enc-server.key"
p7_certs "$T/part2.b64" "$T/enc.crt"
[ "$(openssl x509 -in "$T/enc.crt" -noout -pubkey)" = "$(openssl pkey -in "$T/enc-server.key" -pubout)" ] ||
    fail "decrypted key does not match its certificate"
pass "encrypted server-generated key decrypts with the client key and matches"
expect_fail "another key cannot decrypt it" \
    openssl cms -decrypt -inform DER -in "$T/env.der" -recip "$T/kg.crt" -inkey "$T/kg-server.key"

est_stop
pass "clean shutdown"
