#!/usr/bin/env bash
# libfleetpki-device against the real `fleetpki serve` (issue 12), driven
# by tests/device/fp-device-cli: bootstrap by fingerprint (RFC 7030
# 4.1.1), cacerts, csrattrs honoured, first enrollment with a token and
# with a manufacturer (IDevID) certificate, serverkeygen (plain and
# encrypted, 4.4.2), re-enrollment (rekey and same key) through the
# credential store with confirm and rollback, and the refusals: wrong
# trust anchor, wrong fingerprint, bad token, unknown label.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

CLI=${FP_BUILD_DIR:-}/tests/device/fp-device-cli
[ -x "$CLI" ] || { echo "skip: $CLI not built"; exit 77; }

# A manufacturer CA outside fleetpki and a device IDevID it issued.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$T/mfg.key" -subj "/O=Acme Factory/CN=Acme IDevID CA" -out "$T/mfg.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/idev.key" \
    -subj "/CN=acme-serial-0042" -out "$T/idev.csr" 2>/dev/null
openssl x509 -req -in "$T/idev.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
    -days 30 -out "$T/idev.crt" 2>/dev/null

est_start "[profile p384only]
key_algorithms = p384

[est factory]
auth = cert
trust_anchors = $T/mfg.crt

[est strict384]
profile = p384only
require_pop_linking = yes"

dev() { "$CLI" --server "$HTTPS" "$@"; }
# expect_err NAME DESC CMD...: CMD fails with library error NAME
expect_err() {
    local name=$1 desc=$2 rc=0
    shift 2
    "$@" >"$T/last.out" 2>"$T/last.err" || rc=$?
    if [ "$rc" = 0 ] || ! grep -q "^error: $name:" "$T/last.err"; then
        cat "$T/last.out" "$T/last.err" >&2
        fail "$desc (exit $rc, expected error $name)"
    fi
    pass "$desc ($(head -1 "$T/last.err"))"
}
# store_sum DIR: digest of every file in a credential store
store_sum() { (cd "$1" && find . -type f | sort | xargs -r sha256sum | sha256sum); }
same_key() {
    [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)" ]
}

# ---- bootstrap (RFC 7030 4.1.1) ----
fpr=$(openssl x509 -in "$CA/root.crt" -noout -fingerprint -sha256 | cut -d= -f2)
bad_fpr=$(openssl x509 -in "$T/mfg.crt" -noout -fingerprint -sha256 | cut -d= -f2)
expect_err fingerprint "bootstrap with the wrong fingerprint is refused" \
    dev --fingerprint "$bad_fpr" --anchor-out "$T/bad-anchor.pem" bootstrap
[ ! -e "$T/bad-anchor.pem" ] || fail "a refused bootstrap wrote an anchor"
issuing_fpr=$(openssl x509 -in "$CA/issuing.crt" -noout -fingerprint -sha256 | cut -d= -f2)
expect_err fingerprint "bootstrap naming the issuing CA (not self-signed) is refused" \
    dev --fingerprint "$issuing_fpr" bootstrap
dev --fingerprint "$fpr" --anchor-out "$T/anchor.pem" bootstrap >/dev/null ||
    fail "bootstrap with the root's fingerprint"
cmp -s <(openssl x509 -in "$T/anchor.pem" -outform DER) <(openssl x509 -in "$CA/root.crt" -outform DER) ||
    fail "bootstrap anchor is not the root"
pass "bootstrap accepts the fingerprinted root as the anchor"
A=(--anchor "$T/anchor.pem")

# ---- cacerts, csrattrs ----
dev "${A[@]}" cacerts >"$T/cacerts.pem" || fail "cacerts"
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/cacerts.pem")" = 2 ] || fail "cacerts should hold issuing CA and root"
pass "cacerts: two certificates, verified"
dev "${A[@]}" csrattrs >"$T/attrs.out" || fail "csrattrs"
grep -q 'key_type=1 digest_bits=256 challenge=0' "$T/attrs.out" || { cat "$T/attrs.out" >&2; fail "csrattrs content"; }
dev "${A[@]}" --label strict384 csrattrs >"$T/attrs.out" || fail "csrattrs strict384"
grep -q 'key_type=2 digest_bits=384 challenge=1' "$T/attrs.out" || { cat "$T/attrs.out" >&2; fail "csrattrs strict384"; }
pass "csrattrs understood (P-256/SHA-256; P-384/SHA-384 + challengePassword)"

# ---- wrong trust anchor: refuses to talk, sends nothing ----
token default --uses 1
expect_err untrusted "a server not chaining to the anchor is refused" \
    dev --anchor "$T/mfg.crt" --basic "$TOK_ID:$TOK_SECRET" --cn dev-1 enroll
expect_err untrusted "the bootstrap anchor of another PKI is refused for cacerts too" \
    dev --anchor "$T/mfg.crt" cacerts

# ---- first enrollment with a token, into the credential store ----
mkdir "$T/store"
expect_err auth "a wrong token secret is refused (401)" \
    dev "${A[@]}" --store "$T/store" --basic "$TOK_ID:wrong" --cn dev-1 enroll
dev "${A[@]}" --store "$T/store" --basic "$TOK_ID:$TOK_SECRET" --cn dev-1 --dns dev-1.example \
    --csrattrs enroll >/dev/null || { cat "$T/server.log" >&2; fail "enroll with a token"; }
pass "enroll with a single-use token (unused by the refused attempts above)"
dev "${A[@]}" --store "$T/store" --out-cert "$T/c1.pem" --out-key "$T/k1.pem" show >"$T/show.out" ||
    fail "show"
grep -q previous=0 "$T/show.out" || fail "a first enrollment has no previous pair"
verify_cert "$T/c1.pem" || fail "enrolled certificate does not verify"
same_key "$T/c1.pem" "$T/k1.pem" || fail "stored key does not match the certificate"
openssl x509 -in "$T/c1.pem" -noout -ext subjectAltName | grep -q 'DNS:dev-1.example' || fail "SAN missing"
pass "the store holds a matching, verifying pair with the requested names"

# csrattrs honoured: the P-384 label gets a P-384 key with SHA-384 and the
# TLS channel binding as challengePassword (PoP linking, RFC 7030 3.5)
token strict384 --uses 1
expect_err auth "ignoring csrattrs (P-256, no PoP-linked challengePassword) is refused (403)" \
    dev "${A[@]}" --label strict384 --basic "$TOK_ID:$TOK_SECRET" --cn dev-384 enroll
token strict384 --uses 1
dev "${A[@]}" --label strict384 --basic "$TOK_ID:$TOK_SECRET" --cn dev-384 --csrattrs \
    --out-cert "$T/c384.pem" --out-key "$T/k384.pem" enroll >/dev/null ||
    { tail -3 "$T/server.log" >&2; fail "enroll honouring csrattrs"; }
openssl pkey -in "$T/k384.pem" -noout -text | grep -q 'NIST CURVE: P-384' || fail "csrattrs: key not P-384"
pass "csrattrs honoured: P-384 key, PoP-linked challengePassword accepted"

# ---- re-enrollment through the store (RFC 7030 4.2.2) ----
before=$(store_sum "$T/store")
dev "${A[@]}" --store "$T/store" reenroll >/dev/null || { tail -3 "$T/server.log" >&2; fail "reenroll (rekey)"; }
dev "${A[@]}" --store "$T/store" --out-cert "$T/c2.pem" --out-key "$T/k2.pem" show >"$T/show.out"
grep -q previous=1 "$T/show.out" || fail "the old pair must be kept until confirmed"
same_key "$T/c2.pem" "$T/k2.pem" || fail "renewed pair mismatched"
! same_key "$T/c2.pem" "$T/k1.pem" || fail "rekey kept the old key"
[ "$(openssl x509 -in "$T/c2.pem" -noout -subject)" = "$(openssl x509 -in "$T/c1.pem" -noout -subject)" ] ||
    fail "renewal changed the subject"
pass "reenroll with a new key; old pair kept as fallback"
dev "${A[@]}" --store "$T/store" rollback >/dev/null || fail "rollback"
dev "${A[@]}" --store "$T/store" --out-cert "$T/cr.pem" show >/dev/null
cmp -s "$T/cr.pem" "$T/c1.pem" || fail "rollback did not return to the first pair"
[ "$(store_sum "$T/store")" = "$before" ] || fail "rollback did not restore the store"
pass "rollback returns to the previous pair"
dev "${A[@]}" --store "$T/store" reenroll >/dev/null || fail "reenroll again"
dev "${A[@]}" --store "$T/store" confirm >/dev/null || fail "confirm"
dev "${A[@]}" --store "$T/store" --out-cert "$T/c3.pem" --out-key "$T/k3.pem" show >"$T/show.out"
grep -q previous=0 "$T/show.out" || fail "confirm should drop the previous pair"
same_key "$T/c3.pem" "$T/k3.pem" && verify_cert "$T/c3.pem" || fail "confirmed pair"
pass "confirm keeps only the new pair"
dev "${A[@]}" --store "$T/store" --no-rekey reenroll >/dev/null || fail "reenroll without rekey"
dev "${A[@]}" --store "$T/store" --out-cert "$T/c4.pem" --out-key "$T/k4.pem" show >/dev/null
same_key "$T/c4.pem" "$T/k3.pem" || fail "--no-rekey changed the key"
! cmp -s "$T/c4.pem" "$T/c3.pem" || fail "--no-rekey returned the same certificate"
pass "reenroll keeping the key gives a new certificate for the same key"

# ---- manufacturer certificate (IDevID) on a label trusting its CA ----
mkdir "$T/store2"
expect_err auth "the IDevID is refused on the default label" \
    dev "${A[@]}" --client-cert "$T/idev.crt" --client-key "$T/idev.key" --cn acme-serial-0042 enroll
dev "${A[@]}" --label factory --store "$T/store2" --client-cert "$T/idev.crt" --client-key "$T/idev.key" \
    --cn acme-serial-0042 enroll >/dev/null || { tail -3 "$T/server.log" >&2; fail "enroll with an IDevID"; }
dev "${A[@]}" --store "$T/store2" --out-cert "$T/ldev.pem" show >/dev/null
verify_cert "$T/ldev.pem" || fail "LDevID does not verify"
pass "first enrollment with a manufacturer certificate (label factory)"

# ---- serverkeygen (RFC 7030 4.4) ----
token default --uses 1
dev "${A[@]}" --basic "$TOK_ID:$TOK_SECRET" --cn dev-kg --out-cert "$T/kg.pem" --out-key "$T/kg.key" \
    serverkeygen >/dev/null || { tail -3 "$T/server.log" >&2; fail "serverkeygen"; }
verify_cert "$T/kg.pem" && same_key "$T/kg.pem" "$T/kg.key" || fail "serverkeygen pair"
pass "serverkeygen: key and certificate match and verify"
# encrypted to the client certificate (the LDevID from store2)
dev "${A[@]}" --label factory --store "$T/store2" --cn acme-serial-0042 --encrypt \
    --out-cert "$T/kge.pem" --out-key "$T/kge.key" serverkeygen >/dev/null ||
    { tail -3 "$T/server.log" >&2; fail "serverkeygen with an encrypted key"; }
verify_cert "$T/kge.pem" && same_key "$T/kge.pem" "$T/kge.key" || fail "encrypted serverkeygen pair"
pass "serverkeygen with the key encrypted to our certificate (CMS, 4.4.2) decrypted and matching"
expect_err bad-argument "an encrypted key needs a client certificate" \
    dev "${A[@]}" --cn x --encrypt serverkeygen

# ---- labels ----
expect_err http-status "an unknown label is an HTTP error (404)" dev "${A[@]}" --label nosuch cacerts

est_stop
pass "clean shutdown"
