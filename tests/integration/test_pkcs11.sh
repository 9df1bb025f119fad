#!/usr/bin/env bash
# CA keys in a PKCS#11 token (SoftHSM2, a token made for the run): init and
# ca create generate non-exportable keys in it, no key file appears;
# issuing, CRLs (root and issuing), EST enrollment and OCSP all sign in the
# token and openssl verifies each result; wrong PIN, a missing object, a
# wrong module path and a PIN in the URI fail clearly (and the PIN is never
# printed); a token that disappears under the running server gives 503.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"
source "$(dirname "$0")/p11_lib.sh"

p11_token fleet
fp init --dir "$CA" --name "Test Org" --pkcs11 "$P11_URI" >/dev/null || fail "init --pkcs11"
for f in root.key issuing.key ocsp.key audit.key; do
    [ ! -e "$CA/$f" ] || fail "$f written although the key is in the token"
done
grep -q "^issuing_key = pkcs11:token=fleet;object=fleetpki-issuing" "$CA/fleetpki.conf" ||
    fail "config does not name the token key"
grep -q 1234 "$CA/fleetpki.conf" && fail "the PIN reached the config"
p11_objects fleet >"$T/objects.txt"
for l in root issuing ocsp audit; do
    awk -v l="fleetpki-$l" '/^Private Key Object/ {p=1; next} /^[A-Z]/ {p=0}
        p && $1=="label:" && $2==l {f=1} f && p && /Access:/ {print; exit}' "$T/objects.txt" \
        >"$T/acc.$l"
    grep -q "always sensitive" "$T/acc.$l" && grep -q "never extractable" "$T/acc.$l" ||
        { cat "$T/objects.txt" >&2; fail "private key fleetpki-$l is not sensitive/non-extractable"; }
done
pass "init --pkcs11: root, issuing, OCSP and audit keys generated in the token, sensitive, never extractable"
openssl verify -CAfile "$CA/root.crt" "$CA/issuing.crt" >/dev/null || fail "issuing CA does not verify"
openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" "$CA/ocsp.crt" "$CA/tls.crt" \
    >/dev/null || fail "OCSP/TLS certificates do not verify"
pass "root-signed issuing CA and issuing-signed service certificates verify"

# ---- CLI issue and CRLs, signed in the token ----
fp_csr cli1 /CN=cli-1
fp issue --dir "$CA" --csr "$T/cli1.csr" --profile device --out "$T/cli1.crt" >/dev/null ||
    fail "issue with the token key"
verify_cert "$T/cli1.crt" || fail "issued certificate does not verify"
fp revoke --dir "$CA" "$(openssl x509 -in "$T/cli1.crt" -noout -serial | cut -d= -f2)" \
    --reason keyCompromise >/dev/null
fp crl --dir "$CA" --out "$T/iss.crl" >/dev/null || fail "issuing CRL"
fp crl --dir "$CA" --ca root --out "$T/root.crl" >/dev/null || fail "root CRL"
openssl crl -inform DER -in "$T/iss.crl" -CAfile "$CA/issuing.crt" -noout 2>&1 | grep -q "verify OK" ||
    fail "issuing CRL signature"
openssl crl -inform DER -in "$T/root.crl" -CAfile "$CA/root.crt" -noout 2>&1 | grep -q "verify OK" ||
    fail "root CRL signature"
openssl crl -inform DER -in "$T/iss.crl" -noout -text | grep -q "Key Compromise" ||
    fail "revocation missing from the CRL"
pass "issue, revoke, issuing and root CRLs signed in the token verify"

# ---- ca create --pkcs11 ----
fp project create --dir "$CA" acme >/dev/null
fp ca create --dir "$CA" --project acme --pkcs11 "$P11_URI" >"$T/cacreate.out" || fail "ca create --pkcs11"
ACME=$(awk '{print $NF}' "$T/cacreate.out")
p11_objects fleet | grep -q "label: *fleetpki-$ACME" || fail "ca create made no key in the token"
grep -q "^pkcs11:" "$CA/ca/$ACME/ca.key" || fail "ca.key of $ACME does not name the token key"
grep -q "BEGIN" "$CA/ca/$ACME/ca.key" && fail "a private key file was written for $ACME"
fp crl --dir "$CA" --ca "$ACME" --out "$T/acme.crl" >/dev/null || fail "CRL of the token CA $ACME"
openssl crl -inform DER -in "$T/acme.crl" -CAfile "$CA/ca/$ACME/ca.crt" -noout 2>&1 |
    grep -q "verify OK" || fail "CRL of $ACME"
pass "ca create --pkcs11: key in the token, its CRL verifies"

# ---- the server: EST enroll, OCSP, CRL over HTTP ----
# the token sessions live in the signer process (the CLI above used them
# in-process)
printf '\n[server]\nsigner = separate\n' >>"$CA/fleetpki.conf"
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
[ "$(pgrep -c -P "$SRV_PID" || true)" = 1 ] || fail "no signer process"
EST="https://$HTTPS/.well-known/est"
token default --uses 3
est_csr dev1 "/CN=device-1"
s=$(est_post "$EST/simpleenroll" "$T/dev1.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "EST simpleenroll signed in the token" "$s"
p7_certs "$T/body" "$T/dev1.crt"
verify_cert "$T/dev1.crt" || fail "enrolled certificate does not verify"
cat "$CA/root.crt" "$CA/issuing.crt" >"$T/chain.pem"
openssl ocsp -issuer "$CA/issuing.crt" -cert "$T/dev1.crt" -url "http://$HTTP/ocsp" \
    -CAfile "$T/chain.pem" -nonce >"$T/ocsp.out" 2>&1 || { cat "$T/ocsp.out" >&2; fail "openssl ocsp"; }
grep -q "Response verify OK" "$T/ocsp.out" && grep -q "dev1.crt: good" "$T/ocsp.out" ||
    { cat "$T/ocsp.out" >&2; fail "OCSP answer signed by the token's OCSP key"; }
pass "OCSP answer (fresh, nonce) signed in the token verifies"
curl -sS -o "$T/http.crl" "http://$HTTP/crl/issuing.crl"
openssl crl -inform DER -in "$T/http.crl" -CAfile "$CA/issuing.crt" -noout 2>&1 | grep -q "verify OK" ||
    fail "served CRL"
pass "served CRL verifies"
grep -q 1234 "$T/server.log" && fail "PIN in the server log"

# the token disappears under the running server: 503, no crash
mv "$T/softhsm/tokens" "$T/softhsm/tokens.away"
est_csr dev2 "/CN=device-2"
s=$(est_post "$EST/simpleenroll" "$T/dev2.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 503 "token gone: EST answers 503" "$s"
grep -q "key-unavailable" "$T/body" || { cat "$T/body" >&2; fail "503 does not name the cause"; }
kill -0 "$SRV_PID" || fail "server died when the token went away"
mv "$T/softhsm/tokens.away" "$T/softhsm/tokens"
s=$(est_post "$EST/simpleenroll" "$T/dev2.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "token back: session re-opened, enrollment signed" "$s"
# the signer dies: its supervisor starts a new one, which opens sessions
# of its own to the same token keys
SUP=$(pgrep -P "$SRV_PID" -x fleetpki-sigsup || true)
OLD=$(pgrep -P "$SUP" -x fleetpki-signer || true)
[ -n "$OLD" ] || fail "no signer under the supervisor"
kill -KILL "$OLD"
est_csr dev3 "/CN=device-3"
for _ in $(seq 1 600); do # hang guard
    s=$(est_post "$EST/simpleenroll" "$T/dev3.b64" -u "$TOK_ID:$TOK_SECRET")
    [ "$s" = 200 ] && break
    sleep 0.1
done
expect_status 200 "signer restarted: token keys reopened, enrollment signed" "$s"
p7_certs "$T/body" "$T/dev3.crt"
verify_cert "$T/dev3.crt" || fail "certificate from the restarted signer does not verify"
openssl ocsp -issuer "$CA/issuing.crt" -cert "$T/dev3.crt" -url "http://$HTTP/ocsp" \
    -CAfile "$T/chain.pem" -nonce >"$T/ocsp.out" 2>&1 && grep -q "Response verify OK" "$T/ocsp.out" &&
    grep -q "dev3.crt: good" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "fresh OCSP from the restarted signer"; }
grep -Eq "signer process [0-9]+ started: ([0-9]+) of \1 keys reopened" "$T/server.log" ||
    { tail "$T/server.log" >&2; fail "the new signer did not reopen every token key"; }
pass "signer killed: the new one reopens the token keys (new sessions), EST and fresh OCSP verify"
grep -q 1234 "$T/server.log" && fail "PIN in the server log"
fp_serve_stop
# the audit checkpoints were signed in the token too (start, shutdown)
fp audit verify --dir "$CA" --checkpoints "$CA/audit-checkpoints.log" >"$T/cp.out" ||
    { cat "$T/cp.out" >&2; fail "checkpoints signed by the token's audit key"; }
grep -q "checkpoints ok: [1-9]" "$T/cp.out" || fail "no checkpoint verified"
pass "audit checkpoints signed by the token's audit key verify"

# ---- negative: wrong PIN, missing object, wrong module, PIN in the URI ----
FP_PKCS11_PIN=9999 expect_fail "wrong PIN refused" fp issue --dir "$CA" --csr "$T/cli1.csr" --profile device
grep -q "wrong PIN" "$T/last.err" || { cat "$T/last.err" >&2; fail "wrong PIN not named"; }
grep -q 9999 "$T/last.err" && fail "the wrong PIN was printed"
pass "wrong PIN: 'wrong PIN', PIN not printed"
env -u FP_PKCS11_PIN "$FLEETPKI" issue --dir "$CA" --csr "$T/cli1.csr" --profile device \
    >/dev/null 2>"$T/nopin.err" && fail "no PIN accepted"
grep -q "no PKCS#11 PIN" "$T/nopin.err" || { cat "$T/nopin.err" >&2; fail "missing PIN not named"; }
pass "no PIN: says where to put it"
cp "$CA/fleetpki.conf" "$T/conf.good"
sed -i 's/object=fleetpki-issuing/object=nope/' "$CA/fleetpki.conf"
expect_fail "missing object refused" fp issue --dir "$CA" --csr "$T/cli1.csr" --profile device
grep -q "no private key 'nope'" "$T/last.err" || { cat "$T/last.err" >&2; fail "missing object not named"; }
cp "$T/conf.good" "$CA/fleetpki.conf"
sed -i "s|module-path=$P11_MODULE|module-path=/nonexistent/libnope.so|" "$CA/fleetpki.conf"
expect_fail "wrong module path refused" fp issue --dir "$CA" --csr "$T/cli1.csr" --profile device
grep -q "PKCS#11 module /nonexistent/libnope.so" "$T/last.err" ||
    { cat "$T/last.err" >&2; fail "wrong module not named"; }
rm -f "$T/addr"
"$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --addr-file "$T/addr" \
    2>"$T/bad.log" && fail "serve started with a wrong module path"
grep -q "libnope.so" "$T/bad.log" || { cat "$T/bad.log" >&2; fail "serve does not name the module"; }
pass "wrong module path: issue and serve refuse, naming the module"
cp "$T/conf.good" "$CA/fleetpki.conf"
sed -i "s|module-path=|pin-value=1234\&module-path=|" "$CA/fleetpki.conf"
expect_fail "pin-value in a URI refused" fp issue --dir "$CA" --csr "$T/cli1.csr" --profile device
grep -q "pin-value is refused" "$T/last.err" || { cat "$T/last.err" >&2; fail "pin-value not refused"; }
cp "$T/conf.good" "$CA/fleetpki.conf"
# the PIN from a file: the URI's pin-source=file:, or [ca] pkcs11_pin_file
echo 1234 >"$T/pin"
sed -i "s|module-path=|pin-source=file:$T/pin\&module-path=|" "$CA/fleetpki.conf"
env -u FP_PKCS11_PIN "$FLEETPKI" crl --dir "$CA" --out "$T/pinsrc.crl" >/dev/null ||
    fail "pin-source=file: not used"
openssl crl -inform DER -in "$T/pinsrc.crl" -CAfile "$CA/issuing.crt" -noout 2>&1 |
    grep -q "verify OK" || fail "CRL signed with the PIN from pin-source"
cp "$T/conf.good" "$CA/fleetpki.conf"
sed -i "s|^pkcs11_pin_file = .*|pkcs11_pin_file = $T/pin|" "$CA/fleetpki.conf"
env -u FP_PKCS11_PIN "$FLEETPKI" issue --dir "$CA" --csr "$T/cli1.csr" --profile device \
    --out "$T/cli2.crt" >/dev/null || fail "[ca] pkcs11_pin_file not used"
verify_cert "$T/cli2.crt" || fail "certificate with the PIN from pkcs11_pin_file"
pass "missing object named; pin-value refused; pin-source=file: and pkcs11_pin_file work"
