#!/usr/bin/env bash
# With [server] public_url set, issued certificates point relying parties at
# the server (CRL Distribution Point, AIA OCSP and caIssuers), and each of
# those URLs, taken from the certificate itself, works.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rev_lib.sh"

PORT=$(fp_free_port)
REV_HTTP_LISTEN=127.0.0.1:$PORT
rev_start "[server]
public_url = http://127.0.0.1:$PORT"
rev_issue dev url-device

cdp=$(openssl x509 -in "$T/dev.crt" -noout -ext crlDistributionPoints | sed -n 's/.*URI:\(.*\)/\1/p')
ocsp=$(openssl x509 -in "$T/dev.crt" -noout -ocsp_uri)
cai=$(openssl x509 -in "$T/dev.crt" -noout -text | sed -n 's/.*CA Issuers - URI:\(.*\)/\1/p')
[ "$cdp" = "http://127.0.0.1:$PORT/crl/issuing.crl" ] || fail "CDP is '$cdp'"
[ "$ocsp" = "http://127.0.0.1:$PORT/ocsp" ] || fail "AIA OCSP is '$ocsp'"
[ "$cai" = "http://127.0.0.1:$PORT/ca/issuing.crt" ] || fail "caIssuers is '$cai'"
pass "CDP and AIA name the server"

curl -sS -o "$T/cdp.crl" "$cdp"
openssl crl -inform DER -in "$T/cdp.crl" -CAfile "$CA/issuing.crt" -noout -verify 2>&1 | grep -q "verify OK" \
    || fail "CRL from the CDP does not verify"
curl -sS -o "$T/cai.der" "$cai"
openssl x509 -inform DER -in "$T/cai.der" -out "$T/cai.pem" || fail "caIssuers is not a certificate"
openssl verify -CAfile "$CA/root.crt" -untrusted "$T/cai.pem" "$T/dev.crt" >/dev/null \
    || fail "chain through the caIssuers certificate"
openssl ocsp -issuer "$T/cai.pem" -cert "$T/dev.crt" -url "$ocsp" -CAfile "$CHAIN" >"$T/o.out" 2>&1 \
    || { cat "$T/o.out" >&2; fail "OCSP at the AIA URL"; }
grep -q "dev.crt: good" "$T/o.out" || fail "AIA OCSP status"
pass "CDP, caIssuers and OCSP URLs from the certificate all work"
rev_stop
