#!/usr/bin/env bash
# The offline root: init --offline-root writes the root key only to the
# offline directory, encrypted; the ceremony (ca create / project create /
# crl with --root-key) signs with it, refusing a wrong passphrase or a key
# that is not the data directory's root; the server publishes an uploaded
# root CRL byte for byte (and a changed upload, and refuses to start on a
# CRL the root did not sign); root rollover makes NewWithOld and OldWithNew,
# which openssl verifies both ways, and EST cacerts serves them.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"

MEDIA=$T/media
export FLEETPKI_ROOT_PASSPHRASE=root-secret

env -u FLEETPKI_ROOT_PASSPHRASE "$FLEETPKI" init --dir "$T/nopass" --offline-root "$T/m0" \
    >/dev/null 2>"$T/np.err" && fail "offline root without a passphrase accepted"
grep -q "must be encrypted" "$T/np.err" || { cat "$T/np.err" >&2; fail "no reason given"; }
pass "init --offline-root refuses an unencrypted root key"

fp init --dir "$CA" --name "Test Org" --offline-root "$MEDIA" >/dev/null || fail "init --offline-root"
[ ! -e "$CA/root.key" ] || fail "root.key left in the data directory"
grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$MEDIA/root.key" || fail "offline root key not encrypted"
cmp -s "$MEDIA/root.crt" "$CA/root.crt" || fail "offline root.crt differs"
openssl verify -CAfile "$CA/root.crt" "$CA/issuing.crt" >/dev/null || fail "issuing CA"
pass "root key only in the offline directory, encrypted; issuing CA signed by it"

# ---- the ceremony ----
expect_fail "project create without the root key" fp project create --dir "$CA" acme
grep -q "offline" "$T/last.err" || fail "offline root not named"
fp project create --dir "$CA" acme2 --root-key "$MEDIA/root.key" >"$T/pc.out" || fail "project create --root-key"
ACME=$(awk '{print $NF}' "$T/pc.out")
openssl verify -CAfile "$CA/root.crt" "$CA/ca/$ACME/ca.crt" >/dev/null || fail "ceremony CA does not verify"
pass "ceremony: project create --root-key signs the new project CA"
FLEETPKI_ROOT_PASSPHRASE=wrong expect_fail "wrong root passphrase" \
    fp ca create --dir "$CA" --project acme2 --root-key "$MEDIA/root.key"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/other.key" 2>/dev/null
expect_fail "a key that is not the root's" fp ca create --dir "$CA" --project acme2 --root-key "$T/other.key"
grep -q "not this data directory's root key" "$T/last.err" || { cat "$T/last.err" >&2; fail "mismatch not named"; }
pass "wrong passphrase and a foreign key refused"

# ---- the root CRL: made offline, published as is ----
fp crl --dir "$CA" --ca root --root-key "$MEDIA/root.key" --out "$T/root.crl" >/dev/null || fail "root CRL"
openssl crl -inform DER -in "$T/root.crl" -CAfile "$CA/root.crt" -noout 2>&1 | grep -q "verify OK" ||
    fail "root CRL signature"
nu=$(openssl crl -inform DER -in "$T/root.crl" -noout -nextupdate | cut -d= -f2)
[ $(( $(date -d "$nu" +%s) - $(date +%s) )) -gt $((300 * 86400)) ] || fail "root CRL nextUpdate $nu is not long"
pass "root CRL signed by the offline key, nextUpdate $nu"

FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
s=$(curl -sS -o /dev/null -w '%{http_code}' "http://$HTTP/crl/root.crl")
[ "$s" = 404 ] || fail "root CRL served without an upload ($s)"
fp_serve_stop
mkdir -p "$CA/crl-upload"
cp "$T/root.crl" "$CA/crl-upload/root.crl"
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
curl -sS -o "$T/served.crl" "http://$HTTP/crl/root.crl"
cmp -s "$T/served.crl" "$T/root.crl" || fail "served root CRL is not the uploaded bytes"
pass "uploaded root CRL served as is"
# a new upload while running is picked up
fp crl --dir "$CA" --ca root --root-key "$MEDIA/root.key" --out "$T/root2.crl" >/dev/null
cp "$T/root2.crl" "$CA/crl-upload/root.crl.new"
# the replacement keeps the first upload's mtime (as a copy within the same
# second would): the server must still see the new file (its inode)
touch -r "$CA/crl-upload/root.crl" "$CA/crl-upload/root.crl.new"
mv "$CA/crl-upload/root.crl.new" "$CA/crl-upload/root.crl"
for _ in $(seq 1 100); do
    curl -sS -o "$T/served2.crl" "http://$HTTP/crl/root.crl"
    cmp -s "$T/served2.crl" "$T/root2.crl" && break
    sleep 0.1
done
cmp -s "$T/served2.crl" "$T/root2.crl" || fail "new upload not published"
pass "a new upload is published while the server runs"
fp_serve_stop
# a CRL the root did not sign is refused at start
fp crl --dir "$CA" --out "$CA/crl-upload/root.crl" >/dev/null
rm -f "$T/addr"
"$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --addr-file "$T/addr" \
    2>"$T/bad.log" && fail "server started with a root CRL signed by the issuing CA"
grep -q "not signed by CA root" "$T/bad.log" || { cat "$T/bad.log" >&2; fail "bad upload not named"; }
cp "$T/root2.crl" "$CA/crl-upload/root.crl"
pass "an upload not signed by the root stops the start, named"

# ---- rollover ----
fp root rollover --dir "$CA" --root-key "$MEDIA/root.key" --new-root-dir "$T/media2" >/dev/null ||
    fail "root rollover"
R=$CA/rollover
grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$T/media2/root.key" || fail "new root key not encrypted offline"
openssl verify -CAfile "$CA/root.crt" "$R/newwithold.crt" >/dev/null || fail "NewWithOld does not verify under the old root"
openssl verify -CAfile "$T/media2/root.crt" "$R/oldwithnew.crt" >/dev/null || fail "OldWithNew does not verify under the new root"
cmp -s "$R/new-root.crt" "$T/media2/root.crt" || fail "served new root differs from the offline one"
[ "$(openssl x509 -in "$R/newwithold.crt" -noout -pubkey)" = "$(openssl x509 -in "$T/media2/root.crt" -noout -pubkey)" ] ||
    fail "NewWithOld does not carry the new key"
[ "$(openssl x509 -in "$R/oldwithnew.crt" -noout -pubkey)" = "$(openssl x509 -in "$CA/root.crt" -noout -pubkey)" ] ||
    fail "OldWithNew does not carry the old key"
pass "NewWithOld verifies under the old root, OldWithNew under the new one"
# a device that trusts only the new root still verifies the old chain, and
# one that trusts only the old root reaches the new root
fp_csr leaf /CN=leaf-1
fp issue --dir "$CA" --csr "$T/leaf.csr" --profile device --out "$T/leaf.crt" >/dev/null
cat "$R/oldwithnew.crt" "$CA/issuing.crt" >"$T/untrusted.pem"
openssl verify -CAfile "$T/media2/root.crt" -untrusted "$T/untrusted.pem" "$T/leaf.crt" >/dev/null ||
    fail "leaf under the old root does not verify from the new root via OldWithNew"
openssl verify -CAfile "$CA/root.crt" -untrusted "$R/newwithold.crt" "$R/newwithold.crt" >/dev/null ||
    fail "new root key not reachable from the old root"
pass "no flag day: old chain verifies from the new root, new key from the old root"
expect_fail "second rollover refused" fp root rollover --dir "$CA" --root-key "$MEDIA/root.key" --new-root-dir "$T/media3"

est_start_existing() { FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run; EST="https://$HTTPS/.well-known/est"; }
est_start_existing
s=$(est_get "$EST/cacerts")
expect_status 200 "cacerts during the rollover" "$s"
p7_certs "$T/body" "$T/cacerts.pem"
for f in "$CA/issuing.crt" "$CA/root.crt" "$R/new-root.crt" "$R/newwithold.crt" "$R/oldwithnew.crt"; do
    fpr=$(openssl x509 -in "$f" -noout -fingerprint -sha256)
    openssl crl2pkcs7 -nocrl -certfile "$T/cacerts.pem" | openssl pkcs7 -print_certs |
        awk '/BEGIN/,/END/' | csplit -s -z -f "$T/cc" - '/BEGIN/' '{*}'
    found=0
    for c in "$T"/cc*; do
        [ "$(openssl x509 -in "$c" -noout -fingerprint -sha256)" = "$fpr" ] && found=1
    done
    rm -f "$T"/cc*
    [ "$found" = 1 ] || fail "cacerts lacks $(basename "$f")"
done
pass "EST cacerts serves the chain, the new root, NewWithOld and OldWithNew (RFC 7030 4.1.3)"
fp_serve_stop
