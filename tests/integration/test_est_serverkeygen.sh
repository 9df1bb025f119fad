#!/usr/bin/env bash
# serverkeygen answers (RFC 7030 4.4.2) read by a strict MIME parser
# (issue 8, defect 8): CRLF before every delimiter (RFC 2046 5.1.1), a
# boundary needing no quotes or quoted (RFC 2045 5.1), two base64 parts a
# client can use.  And the key algorithm: [est] serverkeygen_algo, auto
# being the profile's first allowed of p256, p384, ed25519, rsa, p521.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start "[profile rsaonly]
key_algorithms = rsa
rsa_min_bits = 3072

[est rsa]
serverkeygen_algo = rsa2048

[est p384]
serverkeygen_algo = p384

[est rsaauto]
profile = rsaonly"

# keygen LABEL-PATH NAME: serverkeygen with a fresh token, answer split
# strictly into $T/NAME.key (PEM) and $T/NAME.crt
keygen() {
    local path=$1 name=$2 label=${1%/}
    token "${label:-default}" --uses 1
    est_csr "$name-req" "/CN=$name"
    s=$(est_post "$EST/${path}serverkeygen" "$T/$name-req.b64" -u "$TOK_ID:$TOK_SECRET")
    expect_status 200 "serverkeygen on ${label:-the default label} ($name)" "$s"
    mkdir -p "$T/$name"
    est_multipart_check "$T/headers" "$T/body" "$T/$name" ||
        fail "$name: the multipart answer does not parse strictly"
    pass "$name: multipart/mixed parses strictly (two parts, no defects, CRLF delimiters)"
    grep -qx 'application/pkcs8' "$T/$name/part1.ct" || fail "$name: part 1 is $(cat "$T/$name/part1.ct")"
    grep -q '^application/pkcs7-mime; *smime-type="\?certs-only' "$T/$name/part2.ct" ||
        fail "$name: part 2 is $(cat "$T/$name/part2.ct")"
    openssl pkey -inform DER -in "$T/$name/part1.der" -out "$T/$name.key" ||
        fail "$name: part 1 is not a PKCS#8 private key"
    openssl pkcs7 -inform DER -in "$T/$name/part2.der" -print_certs -out "$T/$name.crt" ||
        fail "$name: part 2 is not a certs-only PKCS#7"
    verify_cert "$T/$name.crt" || fail "$name: certificate does not verify"
    [ "$(openssl x509 -in "$T/$name.crt" -noout -pubkey)" = "$(openssl pkey -in "$T/$name.key" -pubout)" ] ||
        fail "$name: key does not match its certificate"
    pass "$name: the key is PKCS#8 and matches its certificate"
}

keygen "" dflt
openssl pkey -in "$T/dflt.key" -noout -text | grep -q 'NIST CURVE: P-256' ||
    fail "default label (device profile, auto) should generate P-256"
pass "auto on the device profile generates P-256"

keygen "p384/" k384
openssl pkey -in "$T/k384.key" -noout -text | grep -q 'NIST CURVE: P-384' || fail "p384 label key is not P-384"
pass "serverkeygen_algo = p384 generates P-384"

keygen "rsa/" krsa
openssl pkey -in "$T/krsa.key" -noout -text | grep -q 'Private-Key: (2048 bit' ||
    fail "rsa label key is not RSA 2048"
pass "serverkeygen_algo = rsa2048 generates an RSA 2048 key"
# the client can use it: TLS client authentication with the RSA key and
# its certificate, renewing its own name
est_csr krsa-renew "/CN=krsa"
s=$(est_post "$EST/simplereenroll" "$T/krsa-renew.b64" --cert "$T/krsa.crt" --key "$T/krsa.key")
expect_status 200 "the RSA key and certificate authenticate a simplereenroll" "$s"

keygen "rsaauto/" kauto
openssl pkey -in "$T/kauto.key" -noout -text | grep -q 'Private-Key: (3072 bit' ||
    fail "auto on an RSA-only profile (rsa_min_bits 3072) should generate RSA 3072"
pass "auto on an RSA-only profile generates RSA of its minimum size"

# the encrypted form (RFC 7030 4.4.1.2) has the same framing
cat >"$T/enc.cnf" <<CNF
oid_section = oids
[oids]
asymmDecryptKeyID = 1.2.840.113549.1.9.16.2.54
[req]
distinguished_name = dn
attributes = attrs
prompt = no
[dn]
CN = dflt
[attrs]
asymmDecryptKeyID = dflt-key
CNF
openssl req -new -config "$T/enc.cnf" -key "$T/dflt.key" -outform DER 2>/dev/null | base64 >"$T/enc.b64"
s=$(est_post "$EST/serverkeygen" "$T/enc.b64" --cert "$T/dflt.crt" --key "$T/dflt.key")
expect_status 200 "encrypted serverkeygen" "$s"
mkdir -p "$T/enc"
est_multipart_check "$T/headers" "$T/body" "$T/enc" || fail "encrypted answer does not parse strictly"
grep -q 'server-generated-key' "$T/enc/part1.ct" || fail "encrypted part type: $(cat "$T/enc/part1.ct")"
openssl cms -verify -inform DER -in "$T/enc/part1.der" -CAfile "$CA/root.crt" -certfile "$CA/issuing.crt" \
    -purpose any -out "$T/env.der" 2>/dev/null || fail "signed envelope does not verify"
openssl cms -decrypt -inform DER -in "$T/env.der" -recip "$T/dflt.crt" -inkey "$T/dflt.key" \
    -out "$T/p8.der" || fail "cannot decrypt the key"
openssl pkey -inform DER -in "$T/p8.der" -noout || fail "decrypted key is not PKCS#8"
pass "encrypted answer parses strictly and decrypts to a usable key"
est_stop

# a label may not ask for a key its profile refuses
fp_new_ca "$T/ca2" >/dev/null
printf '\n[est bad]\nprofile = rsaonly\nserverkeygen_algo = p256\n[profile rsaonly]\nkey_algorithms = rsa\n' \
    >>"$T/ca2/fleetpki.conf"
expect_fail "serverkeygen_algo outside the profile is a config error" \
    fp serve --dir "$T/ca2" --https 127.0.0.1:0 --http 127.0.0.1:0
line=$(($(wc -l <"$T/ca2/fleetpki.conf") - 2)) # the serverkeygen_algo line
grep -q "line $line: \[est bad\]: serverkeygen_algo p256 is not allowed" "$T/last.err" ||
    { cat "$T/last.err" >&2; fail "error message names line $line and serverkeygen_algo"; }
pass "the error names the option"
sed -i 's/serverkeygen_algo = p256/serverkeygen_algo = dsa1024/' "$T/ca2/fleetpki.conf"
expect_fail "unknown serverkeygen_algo is a config error" \
    fp serve --dir "$T/ca2" --https 127.0.0.1:0 --http 127.0.0.1:0
