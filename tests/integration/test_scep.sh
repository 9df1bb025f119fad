#!/usr/bin/env bash
# test_scep.sh - SCEP (RFC 8894) with Debian's scepclient (micromdm):
# GetCACaps, GetCACert (checked with openssl and python3-cryptography),
# enrollment with an enrollment token as challenge, renewal signed with
# the current certificate, GetCert and GetCRL (scep_load + openssl cms),
# and the label's scep_legacy_crypto switch (scepclient signs with SHA-1
# and envelopes with single DES).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"
source "$(dirname "$0")/scep_lib.sh"
scep_require

est_start "[est]
scep_legacy_crypto = yes
[est strict]
"
scep_setup

# ---- GetCACaps (RFC 8894 3.5.2) ----
caps=$(curl -sS "$SCEP?operation=GetCACaps")
for c in POSTPKIOperation SHA-256 AES Renewal SCEPStandard; do
    grep -qx "$c" <<<"$caps" || fail "GetCACaps lacks $c: $caps"
done
pass "GetCACaps advertises POSTPKIOperation, SHA-256, AES, Renewal, SCEPStandard"

# ---- GetCACert (RFC 8894 4.2.1.2) ----
grep -qi '^content-type: application/x-x509-ca-ra-cert' "$T/cacert.h" || fail "GetCACert content type"
openssl asn1parse -inform DER -in "$T/cacert.der" >/dev/null || fail "GetCACert is not DER"
[ "$(grep -c BEGIN "$T/cacert.pem")" = 2 ] || fail "GetCACert: expected the RA and the CA"
# -W error: cryptography's strict DER parser warns (then falls back to BER)
# on a certificates SET OF out of DER order
python3 -W error::UserWarning - "$T/cacert.der" "$CA/issuing.crt" "$T/ra.pem" <<'EOF' || fail "GetCACert: python3-cryptography"
import sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7
certs = pkcs7.load_der_pkcs7_certificates(open(sys.argv[1], "rb").read())
issuing = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
ra = x509.load_pem_x509_certificate(open(sys.argv[3], "rb").read())
assert len(certs) == 2 and ra in certs and issuing in certs, certs
ku = ra.extensions.get_extension_for_class(x509.KeyUsage)
assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment, ku
assert not ku.value.key_cert_sign
assert ra.issuer == issuing.subject
assert ra.public_key().key_size >= 2048   # RSA: key transport
EOF
pass "GetCACert: RA (digitalSignature, keyEncipherment, RSA) + CA, python3-cryptography parses it"
verify_cert "$T/ra.pem" || fail "RA certificate does not chain to the root"
pass "RA certificate chains to the root (openssl verify)"
expect_status 404 "GetCACert of an unknown label is 404" \
    "$(curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' "$SCEP/nope?operation=GetCACert")"
expect_status 400 "unknown operation is 400" \
    "$(curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' "$SCEP?operation=Frobnicate")"

# ---- enrollment with scepclient ----
token default
mkdir -p "$T/c1"
scepclient -server-url "$SCEP" -private-key "$T/c1/key.pem" -challenge "$TOK_ID:$TOK_SECRET" \
    -cn scep-dev-1 -ca-fingerprint "$RAFP" >"$T/c1.log" 2>&1 ||
    { cat "$T/c1.log" >&2; tail -5 "$T/server.log" >&2; fail "scepclient enrollment"; }
verify_cert "$T/c1/client.pem" || fail "issued certificate does not verify"
openssl x509 -in "$T/c1/client.pem" -noout -subject | grep -q 'CN = scep-dev-1' || fail "CN"
python3 - "$T/c1/client.pem" "$T/c1/key.pem" <<'EOF' || fail "issued certificate (python3-cryptography)"
import sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
assert cert.public_key().public_numbers() == key.public_key().public_numbers()
eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku
EOF
pass "scepclient enrolls with an enrollment token as challenge; certificate verifies, key matches"
grep -q 'via.*scep/pkcsreq\|scep/pkcsreq' <(sqlite3 "$CA/fleetpki.db" "SELECT detail FROM audit WHERE action='cert.issue'") ||
    fail "issuance not audited with via scep/pkcsreq"
pass "issuance audited (via scep/pkcsreq)"

# ---- renewal, signed with the current certificate ----
old_serial=$(openssl x509 -in "$T/c1/client.pem" -noout -serial)
cp "$T/c1/client.pem" "$T/c1/old.pem"
scepclient -server-url "$SCEP" -private-key "$T/c1/key.pem" -certificate "$T/c1/client.pem" \
    -cn scep-dev-1 -ca-fingerprint "$RAFP" >"$T/r1.log" 2>&1 ||
    { cat "$T/r1.log" >&2; tail -5 "$T/server.log" >&2; fail "scepclient renewal"; }
new_serial=$(openssl x509 -in "$T/c1/client.pem" -noout -serial)
[ "$old_serial" != "$new_serial" ] || fail "renewal returned the old certificate"
verify_cert "$T/c1/client.pem" || fail "renewed certificate does not verify"
[ "$(openssl x509 -in "$T/c1/client.pem" -noout -subject)" = "$(openssl x509 -in "$T/c1/old.pem" -noout -subject)" ] ||
    fail "renewal changed the subject"
[ "$(sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM audit WHERE action='cert.renew' AND detail LIKE '%scep/renewalreq%'")" = 1 ] ||
    fail "renewal not audited as cert.renew"
pass "scepclient renews (RenewalReq signed with the current certificate): new serial, same subject"

# ---- GetCert and GetCRL (scep_load: scepclient has no such command) ----
"$SCEP_LOAD" req --ra "$T/ra.pem" --type 21 --key "$T/c1/key.pem" --cert "$T/c1/client.pem" \
    --about "$T/c1/old.pem" --out "$T/getcert.der"
expect_status 200 "GetCert answered" "$(scep_post "" "$T/getcert.der" "$T/getcert.rep")"
expect_rep "0 -" "GetCert: SUCCESS" "$T/getcert.rep"
rep_open "$T/getcert.rep" "$T/c1/key.pem" "$T/c1/client.pem" "$T/getcert.p7"
openssl pkcs7 -inform DER -in "$T/getcert.p7" -print_certs -out "$T/getcert.pem"
python3 -W error::UserWarning -c 'import sys; from cryptography.hazmat.primitives.serialization import pkcs7
assert len(pkcs7.load_der_pkcs7_certificates(open(sys.argv[1], "rb").read())) == 1' "$T/getcert.p7" ||
    fail "GetCert answer: python3-cryptography"
cmp <(openssl x509 -in "$T/getcert.pem" -outform DER) <(openssl x509 -in "$T/c1/old.pem" -outform DER) ||
    fail "GetCert returned another certificate"
pass "GetCert returns the certificate named by issuer and serial, enveloped to the requester"

"$SCEP_LOAD" req --ra "$T/ra.pem" --type 22 --key "$T/c1/key.pem" --cert "$T/c1/client.pem" \
    --about "$T/c1/old.pem" --out "$T/getcrl.der"
expect_status 200 "GetCRL answered" "$(scep_post "" "$T/getcrl.der" "$T/getcrl.rep")"
expect_rep "0 -" "GetCRL: SUCCESS" "$T/getcrl.rep"
rep_open "$T/getcrl.rep" "$T/c1/key.pem" "$T/c1/client.pem" "$T/getcrl.p7"
openssl pkcs7 -inform DER -in "$T/getcrl.p7" -print_certs -out "$T/getcrl.pem"
grep -q 'BEGIN X509 CRL' "$T/getcrl.pem" || fail "GetCRL: no CRL inside"
openssl crl -in "$T/getcrl.pem" -CAfile "$CA/issuing.crt" -noout 2>&1 | grep -q 'verify OK' ||
    fail "GetCRL: CRL signature does not verify"
pass "GetCRL returns the issuing CA's CRL (signature verifies)"

# GetCert signed by a self-signed certificate: not a holder
"$SCEP_LOAD" req --ra "$T/ra.pem" --type 21 --about "$T/c1/old.pem" --out "$T/getcert-anon.der"
scep_post "" "$T/getcert-anon.der" "$T/getcert-anon.rep" >/dev/null
expect_rep "2 1" "GetCert signed by a stranger: FAILURE badMessageCheck" "$T/getcert-anon.rep"

# ---- scep_legacy_crypto: without it (label strict) scepclient's SHA-1 and DES are refused ----
token strict
mkdir -p "$T/c2"
if scepclient -server-url "$SCEP/strict" -private-key "$T/c2/key.pem" \
    -challenge "$TOK_ID:$TOK_SECRET" -cn scep-dev-2 -ca-fingerprint "$RAFP" >"$T/c2.log" 2>&1; then
    fail "a SHA-1/DES request was accepted on a label without scep_legacy_crypto"
fi
grep -q 'badAlg' "$T/c2.log" || { cat "$T/c2.log" >&2; fail "expected failInfo badAlg"; }
pass "without scep_legacy_crypto a SHA-1 / single-DES request gets FAILURE badAlg"
# and the same label takes a SHA-256 / AES request with the unspent token
"$SCEP_LOAD" req --ra "$T/ra.pem" --challenge "$TOK_ID:$TOK_SECRET" --cn scep-dev-2 \
    --key-out "$T/c2/k.pem" --self-out "$T/c2/self.pem" --out "$T/c2/req.der"
scep_post "/strict" "$T/c2/req.der" "$T/c2/rep.der" >/dev/null
expect_rep "0 -" "label strict enrolls a SHA-256/AES-256 request" "$T/c2/rep.der"
rep_open "$T/c2/rep.der" "$T/c2/k.pem" "$T/c2/self.pem" "$T/c2/p7.der"
openssl pkcs7 -inform DER -in "$T/c2/p7.der" -print_certs -out "$T/c2/cert.pem"
verify_cert "$T/c2/cert.pem" || fail "strict label certificate"
pass "its certificate verifies"

est_stop
