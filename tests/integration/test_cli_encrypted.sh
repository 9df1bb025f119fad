#!/usr/bin/env bash
# Keys encrypted at rest with a passphrase: standard PKCS#8 that openssl
# reads, and the CLI needs the passphrase to sign.
source "$(dirname "$0")/lib.sh"

printf 'correct horse battery\n' >"$T/pass"
chmod 600 "$T/pass"
fp init --dir "$T/ca" --algo p384 --name "Enc Org" --passphrase-file "$T/pass" >"$T/init.out"
grep -q "keys encrypted" "$T/init.out" || fail "init reports encryption"
for k in root issuing tls ocsp; do
    head -1 "$T/ca/$k.key" | grep -q "BEGIN ENCRYPTED PRIVATE KEY" || fail "$k.key not encrypted"
    [ "$(stat -c %a "$T/ca/$k.key")" = 600 ] || fail "$k.key mode"
done
openssl asn1parse -in "$T/ca/issuing.key" | grep -q ":scrypt" || fail "scrypt KDF"
openssl asn1parse -in "$T/ca/issuing.key" | grep -qi "aes-256-cbc" || fail "AES-256"
openssl pkey -in "$T/ca/issuing.key" -passin "file:$T/pass" -noout || fail "openssl reads the key with the passphrase"
if openssl pkey -in "$T/ca/issuing.key" -passin pass:wrong -noout 2>/dev/null; then fail "wrong passphrase accepted"; fi
pass "CA keys are PKCS#8, scrypt + AES-256, 0600"
grep -q "^keys_encrypted = yes" "$T/ca/fleetpki.conf" || fail "config records encryption"
openssl x509 -in "$T/ca/root.crt" -noout -text | grep -q "ecdsa-with-SHA384" || fail "p384 CA signs with SHA-384"

fp_csr d "/CN=enc-device"
unset FLEETPKI_PASSPHRASE
expect_code 1 "issuing without the passphrase fails" fp issue --dir "$T/ca" --csr "$T/d.csr" --profile device
grep -q "passphrase" "$T/last.err" || fail "error names the passphrase"
FLEETPKI_PASSPHRASE=nope expect_code 1 "a wrong passphrase fails" fp issue --dir "$T/ca" --csr "$T/d.csr" --profile device
fp issue --dir "$T/ca" --csr "$T/d.csr" --profile device --passphrase-file "$T/pass" >"$T/d1.crt"
FLEETPKI_PASSPHRASE="correct horse battery" fp issue --dir "$T/ca" --csr "$T/d.csr" --profile device >"$T/d2.crt"
for c in d1 d2; do openssl verify -CAfile "$T/ca/root.crt" -untrusted "$T/ca/issuing.crt" "$T/$c.crt" >/dev/null || fail "$c"; done
pass "passphrase from file or environment unlocks issuance"
# the passphrase never reaches output or the audit log
! grep -rq "correct horse" "$T/init.out" "$T/d1.crt" || fail "passphrase printed"
! fp audit list --dir "$T/ca" | grep -q "correct horse" || fail "passphrase audited"
! strings "$T/ca/fleetpki.db" | grep -q "correct horse" || fail "passphrase in the store"
pass "passphrase appears in no output, log or store"

fp init --dir "$T/ed" --algo ed25519 >/dev/null
openssl x509 -in "$T/ed/issuing.crt" -noout -text | grep -q "ED25519" || fail "ed25519 CA"
fp issue --dir "$T/ed" --csr "$T/d.csr" --profile device | openssl verify -CAfile "$T/ed/root.crt" -untrusted "$T/ed/issuing.crt" >/dev/null || fail "ed25519 chain"
fp init --dir "$T/rsa" --algo rsa3072 >/dev/null
openssl x509 -in "$T/rsa/root.crt" -noout -text | grep -q "Public-Key: (3072 bit)" || fail "rsa3072 CA"
fp issue --dir "$T/rsa" --csr "$T/d.csr" --profile device | openssl verify -CAfile "$T/rsa/root.crt" -untrusted "$T/rsa/issuing.crt" >/dev/null || fail "rsa chain"
pass "ed25519 and rsa3072 hierarchies"
expect_code 1 "unknown --algo" fp init --dir "$T/bad" --algo dsa1024
