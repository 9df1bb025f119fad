#!/usr/bin/env bash
# test_scep_certmonger.sh - a second SCEP client: certmonger's scep-submit
# helper (the C transport and response verifier certmonger runs for every
# SCEP CA).  It runs without D-Bus: it only speaks HTTP and checks
# answers; building the pkiMessage is the certmonger daemon's work (D-Bus
# and its request store), so the messages here come from scep_load.
#   -c  GetCACaps;  -C  GetCACert (it picks RA and CA itself);
#   -p  PKIOperation, response signature verified against the RA
#       certificate; exit 0 + the pkcsPKIEnvelope (PEM), 1/5 pending,
#       2 rejected.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"
source "$(dirname "$0")/scep_lib.sh"
scep_require
SUBMIT=""
for c in /usr/libexec/certmonger/scep-submit /usr/lib/certmonger/scep-submit; do
    [ -x "$c" ] && SUBMIT=$c && break
done
[ -n "$SUBMIT" ] || { echo "skip: certmonger's scep-submit is not installed (apt-get install certmonger)"; exit 77; }

est_start "[est held]
manual_approval = yes
"
scep_setup

"$SUBMIT" -u "$SCEP" -c >"$T/caps" || fail "scep-submit -c"
grep -qx SCEPStandard "$T/caps" && grep -qx POSTPKIOperation "$T/caps" || fail "caps: $(cat "$T/caps")"
pass "scep-submit -c reads GetCACaps"

"$SUBMIT" -u "$SCEP" -C >"$T/cm-certs" || fail "scep-submit -C"
openssl x509 -in "$T/cm-certs" -out "$T/cm-ra.pem"
cmp <(openssl x509 -in "$T/cm-ra.pem" -outform DER) <(openssl x509 -in "$T/ra.pem" -outform DER) ||
    fail "scep-submit -C did not pick our RA certificate first"
awk '/BEGIN/{n++} n==2' "$T/cm-certs" | openssl x509 -outform DER >"$T/cm-ca.der"
cmp "$T/cm-ca.der" <(openssl x509 -in "$CA/issuing.crt" -outform DER) ||
    fail "scep-submit -C: second certificate is not the issuing CA"
{ awk '/BEGIN/{n++} n>=2' "$T/cm-certs"; cat "$CA/root.crt"; } >"$T/cm-others.pem"
pass "scep-submit -C finds the RA certificate, then the CA"

pem() { { echo "-----BEGIN PKCS7-----"; base64 -w64 "$1"; echo "-----END PKCS7-----"; } >"$2"; }

token default
"$SCEP_LOAD" req --ra "$T/ra.pem" --challenge "$TOK_ID:$TOK_SECRET" --cn cm-dev-1 \
    --key-out "$T/k.pem" --self-out "$T/self.pem" --out "$T/req.der"
pem "$T/req.der" "$T/req.pem"
rc=0
"$SUBMIT" -u "$SCEP" -r "$T/cm-ra.pem" -I "$T/cm-others.pem" -p "$T/req.pem" >"$T/env.pem" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] || { cat "$T/err" >&2; fail "scep-submit -p (exit $rc)"; }
openssl cms -decrypt -inform PEM -in "$T/env.pem" -inkey "$T/k.pem" -recip "$T/self.pem" -binary \
    -out "$T/p7.der" || fail "envelope from scep-submit does not decrypt"
openssl pkcs7 -inform DER -in "$T/p7.der" -print_certs -out "$T/cert.pem"
verify_cert "$T/cert.pem" || fail "certificate via scep-submit does not verify"
pass "scep-submit -p: response signature verified by certmonger, certificate issued and verifies"

rc=0
"$SUBMIT" -u "$SCEP" -r "$T/cm-ra.pem" -I "$T/cm-others.pem" -p "$T/req.pem" >"$T/out2" 2>&1 || rc=$?
[ "$rc" = 2 ] || { cat "$T/out2" >&2; fail "spent challenge: scep-submit exit $rc, expected 2 (rejected)"; }
pass "scep-submit -p with the spent challenge: rejected (exit 2)"

token held
"$SCEP_LOAD" req --ra "$T/ra.pem" --challenge "$TOK_ID:$TOK_SECRET" --cn cm-dev-2 --out "$T/held.der"
pem "$T/held.der" "$T/held.pem"
rc=0
"$SUBMIT" -u "$SCEP/held" -r "$T/cm-ra.pem" -I "$T/cm-others.pem" -p "$T/held.pem" >"$T/out3" 2>&1 || rc=$?
[ "$rc" = 1 ] || [ "$rc" = 5 ] || { cat "$T/out3" >&2; fail "held: scep-submit exit $rc, expected 1 or 5 (pending)"; }
pass "scep-submit -p on a manual-approval label: pending (exit $rc)"

est_stop
