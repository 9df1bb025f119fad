#!/usr/bin/env bash
# RSA public exponents (issue 8, defect 1): only odd 65537 <= e < 2^256 is
# certified (docs/policy.md).  With e = 1 a request's "signature" is the
# padded hash itself, so it proves nothing and the certificate works as a
# password.  Each refused request here carries a signature OpenSSL itself
# verifies; the CLI and EST must both refuse it with csr-key-params, and
# a TLS client certificate with e = 3 must not authenticate at EST.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

MKRSA="$(dirname "$0")/policy/mkrsa.py"

# rsa NAME E BITS: key $T/NAME.pem with exponent E, CSR $T/NAME.csr (PEM)
# and $T/NAME.b64 (base64 DER) for CN=NAME
rsa() {
    python3 "$MKRSA" "$2" "$3" "$T/$1.der" || fail "$1: key construction"
    openssl pkey -inform DER -in "$T/$1.der" -out "$T/$1.pem"
    openssl req -new -key "$T/$1.pem" -subj "/CN=$1" -out "$T/$1.csr"
    openssl req -in "$T/$1.csr" -outform DER | base64 >"$T/$1.b64"
}

est_start "[est tokens]
auth = token"
token tokens --uses 20

# the construction is sound: a key made the same way with e = 65537 is issued
rsa e65537 65537 2048
fp issue --dir "$CA" --csr "$T/e65537.csr" --profile device >"$T/e65537.crt" ||
    fail "a constructed key with e = 65537 must be issued"
pass "CLI issues the constructed e = 65537 request"
s=$(est_post "$EST/tokens/simpleenroll" "$T/e65537.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "EST issues the constructed e = 65537 request" "$s"

refuse_both() { # NAME DESCRIPTION
    expect_code 3 "CLI refuses $2" fp issue --dir "$CA" --csr "$T/$1.csr" --profile device
    grep -q "fleetpki: csr-key-params:" "$T/last.err" || { cat "$T/last.err"; fail "$2: CLI code"; }
    s=$(est_post "$EST/tokens/simpleenroll" "$T/$1.b64" -u "$TOK_ID:$TOK_SECRET")
    expect_status 403 "EST refuses $2" "$s"
    grep -q "csr-key-params" "$T/body" || { cat "$T/body"; fail "$2: EST body names the code"; }
}

for e in 1 3 65535 '2**256+1'; do
    name=e$(printf '%s' "$e" | tr -c 'a-z0-9' '_')
    rsa "$name" "$e" 2048
    openssl req -in "$T/$name.csr" -verify -noout 2>/dev/null || fail "$name: OpenSSL should verify it"
    refuse_both "$name" "e = $e (a request OpenSSL verifies)"
done

# a 3070-bit exponent on a 3072-bit modulus (below the 3072-bit line past
# which OpenSSL itself caps e at 64 bits): refused before any verification
rsa ehuge '2**3069+2**1234+1' 3072
openssl req -in "$T/ehuge.csr" -verify -noout 2>/dev/null || fail "ehuge: OpenSSL should verify it"
refuse_both ehuge "a 3070-bit exponent"

# an even exponent: no private key exists; e = 65537 -> 65538 in the DER
python3 - "$T/e65537.csr" "$T/eeven.der" <<'PY'
import base64, sys
pem = open(sys.argv[1]).read().split("-----")[2]
d = bytearray(base64.b64decode(pem))
i = d.find(b"\x02\x03\x01\x00\x01")
assert i > 0
d[i + 4] = 0x02
open(sys.argv[2], "wb").write(bytes(d))
PY
cp "$T/eeven.der" "$T/eeven.csr"
base64 <"$T/eeven.der" >"$T/eeven.b64"
refuse_both eeven "an even exponent (65538)"

# ---- a TLS client certificate whose key has e = 3 ----
# a manufacturer CA made here, configured as a label's trust anchor
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$T/mfg.key" -subj "/CN=Test IDevID CA" -out "$T/mfg.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
idev() { # NAME: client certificate for $T/NAME.pem from the manufacturer CA
    openssl x509 -req -in "$T/$1.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
        -days 2 -extfile <(printf 'extendedKeyUsage=clientAuth\n') -out "$T/$1.crt" 2>/dev/null
}
idev e65537
idev e3
est_stop
cat >>"$CA/fleetpki.conf" <<CONF

[est factory]
auth = cert
trust_anchors = $T/mfg.crt
cert_identity = pattern
cert_identity_pattern = factory-*
CONF
fp_serve_run
EST="https://$HTTPS/.well-known/est"
est_csr dev "/CN=factory-1"
s=$(est_post "$EST/factory/simpleenroll" "$T/dev.b64" --cert "$T/e65537.crt" --key "$T/e65537.pem")
expect_status 200 "client certificate with e = 65537 from the anchor enrolls" "$s"
s=$(est_post "$EST/factory/simpleenroll" "$T/dev.b64" --cert "$T/e3.crt" --key "$T/e3.pem")
case "$s" in
401 | 403) pass "client certificate with e = 3 is refused ($s)" ;;
*) cat "$T/body" >&2; fail "client certificate with e = 3: HTTP $s, expected 401 or 403" ;;
esac
grep -q "csr-key-params" "$T/body" || { cat "$T/body"; fail "e = 3 client certificate: body names the code"; }

# An intermediate CA under the anchor whose key has e = 3: every key of the
# chain meets the rules, not only the leaf's (a leaf with a good key under
# it is refused).  The same chain through a good intermediate enrolls.
inter() { # NAME KEY: intermediate CA $T/NAME.crt with key $T/KEY.pem under mfg
    openssl req -new -key "$T/$2.pem" -subj "/CN=$1" -out "$T/$1.csr" 2>/dev/null
    openssl x509 -req -in "$T/$1.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial -days 2 \
        -extfile <(printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n') \
        -out "$T/$1.crt" 2>/dev/null
}
inter inter-weak e3
inter inter-good e65537
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/leaf.key" \
    -subj "/CN=leaf" -out "$T/leaf.csr" 2>/dev/null
for i in weak good; do
    openssl x509 -req -in "$T/leaf.csr" -CA "$T/inter-$i.crt" -CAkey "$T/$([ $i = weak ] && echo e3 || echo e65537).pem" \
        -CAcreateserial -days 2 -extfile <(printf 'extendedKeyUsage=clientAuth\n') \
        -out "$T/leaf-$i.crt" 2>/dev/null || fail "leaf under inter-$i"
    cat "$T/leaf-$i.crt" "$T/inter-$i.crt" >"$T/leaf-$i.chain"
done
s=$(est_post "$EST/factory/simpleenroll" "$T/dev.b64" --cert "$T/leaf-good.chain" --key "$T/leaf.key")
expect_status 200 "a leaf under a good intermediate of the anchor enrolls" "$s"
s=$(est_post "$EST/factory/simpleenroll" "$T/dev.b64" --cert "$T/leaf-weak.chain" --key "$T/leaf.key")
expect_status 401 "a leaf under an intermediate with e = 3 is refused" "$s"
est_stop

# A trust anchor's own key meets the same rules, and it must be a CA
# certificate: checked when the label is loaded, so the server does not
# start with an anchor whose "signatures" an e = 3 key could make forgeable.
openssl req -x509 -new -key "$T/e3.pem" -subj "/CN=Weak IDevID CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -out "$T/weak-ca.crt" 2>/dev/null || fail "weak CA certificate"
sed -i "s|^trust_anchors = .*|trust_anchors = $T/weak-ca.crt|" "$CA/fleetpki.conf"
expect_fail "a trust anchor with e = 3 stops the server at start" \
    fp serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0
grep -q "trust_anchors" "$T/last.err" && grep -q "exponent" "$T/last.err" ||
    fail "error should name trust_anchors and the exponent: $(cat "$T/last.err")"
sed -i "s|^trust_anchors = .*|trust_anchors = $T/e65537.crt|" "$CA/fleetpki.conf"
expect_fail "a trust anchor that is not a CA certificate stops the server at start" \
    fp serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0
grep -q "not a CA certificate" "$T/last.err" || fail "error should say why: $(cat "$T/last.err")"
# an unreadable block after a good anchor is an error, not a silent stop
{ cat "$T/mfg.crt"; printf -- '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n'; cat "$T/mfg.crt"; } >"$T/bad-bundle.pem"
sed -i "s|^trust_anchors = .*|trust_anchors = $T/bad-bundle.pem|" "$CA/fleetpki.conf"
expect_fail "a trust_anchors bundle with an unreadable block stops the server at start" \
    fp serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0
grep -q "certificate 2 cannot be read" "$T/last.err" || fail "error should name the block: $(cat "$T/last.err")"
