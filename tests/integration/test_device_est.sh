#!/usr/bin/env bash
# libfleetpki-device against the real `fleetpki serve` (issue 12), driven
# by tests/device/fp-device-cli: bootstrap by fingerprint (RFC 7030
# 4.1.1), cacerts, csrattrs honoured, first enrollment with a token and
# with a manufacturer (IDevID) certificate, serverkeygen (plain and
# encrypted, 4.4.2), re-enrollment (rekey and same key) through the
# credential store with confirm and rollback, and the refusals: wrong
# trust anchor, wrong fingerprint, bad token, unknown label.  Run once
# per TLS backend built (OpenSSL, mbedTLS); what mbedTLS 2.28 cannot do
# (PoP linking, encrypted keys) must fail cleanly as 'unsupported'.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

# every backend built (fp-device-cli-openssl, fp-device-cli-mbedtls)
CLIS=$(ls "${FP_BUILD_DIR:-/nonexistent}"/tests/device/fp-device-cli-* 2>/dev/null || true)
[ -n "$CLIS" ] || { echo "skip: no fp-device-cli-* in \$FP_BUILD_DIR/tests/device"; exit 77; }

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
ok() { pass "[$B] $*"; }
# expect_err NAME DESC CMD...: CMD fails with library error NAME
expect_err() {
    local name=$1 desc=$2 rc=0
    shift 2
    "$@" >"$T/last.out" 2>"$T/last.err" || rc=$?
    if [ "$rc" = 0 ] || ! grep -q "^error: $name:" "$T/last.err"; then
        cat "$T/last.out" "$T/last.err" >&2
        fail "$desc (exit $rc, expected error $name)"
    fi
    pass "[$B] $desc ($(head -1 "$T/last.err" | cut -c1-100))"
}
# store_sum DIR: digest of every file in a credential store
store_sum() { (cd "$1" && find . -type f | sort | xargs -r sha256sum | sha256sum); }
same_key() {
    [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)" ]
}

for CLI in $CLIS; do
    B=${CLI##*fp-device-cli-}
    W=$T/$B
    mkdir -p "$W"
    # ---- bootstrap (RFC 7030 4.1.1) ----
    fpr=$(openssl x509 -in "$CA/root.crt" -noout -fingerprint -sha256 | cut -d= -f2)
    bad_fpr=$(openssl x509 -in "$T/mfg.crt" -noout -fingerprint -sha256 | cut -d= -f2)
    expect_err fingerprint "bootstrap with the wrong fingerprint is refused" \
        dev --fingerprint "$bad_fpr" --anchor-out "$W/bad-anchor.pem" bootstrap
    [ ! -e "$W/bad-anchor.pem" ] || fail "a refused bootstrap wrote an anchor"
    issuing_fpr=$(openssl x509 -in "$CA/issuing.crt" -noout -fingerprint -sha256 | cut -d= -f2)
    expect_err fingerprint "bootstrap naming the issuing CA (not self-signed) is refused" \
        dev --fingerprint "$issuing_fpr" bootstrap
    dev --fingerprint "$fpr" --anchor-out "$W/anchor.pem" bootstrap >/dev/null ||
        fail "bootstrap with the root's fingerprint"
    cmp -s <(openssl x509 -in "$W/anchor.pem" -outform DER) <(openssl x509 -in "$CA/root.crt" -outform DER) ||
        fail "bootstrap anchor is not the root"
    ok "bootstrap accepts the fingerprinted root as the anchor"
    A=(--anchor "$W/anchor.pem")

    # ---- cacerts, csrattrs ----
    dev "${A[@]}" cacerts >"$W/cacerts.pem" || fail "cacerts"
    [ "$(grep -c 'BEGIN CERTIFICATE' "$W/cacerts.pem")" = 2 ] || fail "cacerts should hold issuing CA and root"
    ok "cacerts: two certificates, verified"
    dev "${A[@]}" csrattrs >"$W/attrs.out" || fail "csrattrs"
    grep -q 'key_type=1 digest_bits=256 challenge=0' "$W/attrs.out" || { cat "$W/attrs.out" >&2; fail "csrattrs content"; }
    dev "${A[@]}" --label strict384 csrattrs >"$W/attrs.out" || fail "csrattrs strict384"
    grep -q 'key_type=2 digest_bits=384 challenge=1' "$W/attrs.out" || { cat "$W/attrs.out" >&2; fail "csrattrs strict384"; }
    ok "csrattrs understood (P-256/SHA-256; P-384/SHA-384 + challengePassword)"

    # ---- wrong trust anchor: refuses to talk, sends nothing ----
    token default --uses 1
    expect_err untrusted "a server not chaining to the anchor is refused" \
        dev --anchor "$T/mfg.crt" --basic "$TOK_ID:$TOK_SECRET" --cn dev-1 enroll
    expect_err untrusted "the bootstrap anchor of another PKI is refused for cacerts too" \
        dev --anchor "$T/mfg.crt" cacerts

    # ---- first enrollment with a token, into the credential store ----
    mkdir "$W/store"
    expect_err auth "a wrong token secret is refused (401)" \
        dev "${A[@]}" --store "$W/store" --basic "$TOK_ID:wrong" --cn dev-1 enroll
    dev "${A[@]}" --store "$W/store" --basic "$TOK_ID:$TOK_SECRET" --cn dev-1 --dns dev-1.example \
        --csrattrs enroll >/dev/null || { cat "$T/server.log" >&2; fail "enroll with a token"; }
    ok "enroll with a single-use token (unused by the refused attempts above)"
    dev "${A[@]}" --store "$W/store" --out-cert "$W/c1.pem" --out-key "$W/k1.pem" show >"$W/show.out" ||
        fail "show"
    grep -q previous=0 "$W/show.out" || fail "a first enrollment has no previous pair"
    verify_cert "$W/c1.pem" || fail "enrolled certificate does not verify"
    same_key "$W/c1.pem" "$W/k1.pem" || fail "stored key does not match the certificate"
    openssl x509 -in "$W/c1.pem" -noout -ext subjectAltName | grep -q 'DNS:dev-1.example' || fail "SAN missing"
    ok "the store holds a matching, verifying pair with the requested names"

    # csrattrs honoured: the P-384 label gets a P-384 key with SHA-384 and the
    # TLS channel binding as challengePassword (PoP linking, RFC 7030 3.5)
    token strict384 --uses 1
    expect_err auth "ignoring csrattrs (P-256, no PoP-linked challengePassword) is refused (403)" \
        dev "${A[@]}" --label strict384 --basic "$TOK_ID:$TOK_SECRET" --cn dev-384 enroll
    token strict384 --uses 1
    if [ "$B" = mbedtls ]; then
        expect_err unsupported "PoP linking (tls-unique) is not available on mbedTLS 2.28" \
            dev "${A[@]}" --label strict384 --basic "$TOK_ID:$TOK_SECRET" --cn dev-384 --csrattrs enroll
        dev "${A[@]}" --basic "$TOK_ID:$TOK_SECRET" --key-type p384 --cn dev-384 \
            --out-cert "$W/c384.pem" --out-key "$W/k384.pem" enroll >/dev/null 2>"$T/last.err" && fail "token of another label"
        token default --uses 1
        dev "${A[@]}" --basic "$TOK_ID:$TOK_SECRET" --key-type p384 --cn dev-384 \
            --out-cert "$W/c384.pem" --out-key "$W/k384.pem" enroll >/dev/null || fail "P-384 enrollment"
        openssl x509 -in "$W/c384.pem" -noout -text | grep -q 'NIST CURVE: P-384' || fail "key not P-384"
        ok "P-384 key enrolled"
    else
    dev "${A[@]}" --label strict384 --basic "$TOK_ID:$TOK_SECRET" --cn dev-384 --csrattrs \
        --out-cert "$W/c384.pem" --out-key "$W/k384.pem" enroll >/dev/null ||
        { tail -3 "$T/server.log" >&2; fail "enroll honouring csrattrs"; }
    openssl pkey -in "$W/k384.pem" -noout -text | grep -q 'NIST CURVE: P-384' || fail "csrattrs: key not P-384"
    ok "csrattrs honoured: P-384 key, PoP-linked challengePassword accepted"
    fi

    # ---- re-enrollment through the store (RFC 7030 4.2.2) ----
    before=$(store_sum "$W/store")
    dev "${A[@]}" --store "$W/store" reenroll >/dev/null || { tail -3 "$T/server.log" >&2; fail "reenroll (rekey)"; }
    dev "${A[@]}" --store "$W/store" --out-cert "$W/c2.pem" --out-key "$W/k2.pem" show >"$W/show.out"
    grep -q previous=1 "$W/show.out" || fail "the old pair must be kept until confirmed"
    same_key "$W/c2.pem" "$W/k2.pem" || fail "renewed pair mismatched"
    ! same_key "$W/c2.pem" "$W/k1.pem" || fail "rekey kept the old key"
    [ "$(openssl x509 -in "$W/c2.pem" -noout -subject)" = "$(openssl x509 -in "$W/c1.pem" -noout -subject)" ] ||
        fail "renewal changed the subject"
    ok "reenroll with a new key; old pair kept as fallback"
    dev "${A[@]}" --store "$W/store" rollback >/dev/null || fail "rollback"
    dev "${A[@]}" --store "$W/store" --out-cert "$W/cr.pem" show >/dev/null
    cmp -s "$W/cr.pem" "$W/c1.pem" || fail "rollback did not return to the first pair"
    [ "$(store_sum "$W/store")" = "$before" ] || fail "rollback did not restore the store"
    ok "rollback returns to the previous pair"
    dev "${A[@]}" --store "$W/store" reenroll >/dev/null || fail "reenroll again"
    dev "${A[@]}" --store "$W/store" confirm >/dev/null || fail "confirm"
    dev "${A[@]}" --store "$W/store" --out-cert "$W/c3.pem" --out-key "$W/k3.pem" show >"$W/show.out"
    grep -q previous=0 "$W/show.out" || fail "confirm should drop the previous pair"
    same_key "$W/c3.pem" "$W/k3.pem" && verify_cert "$W/c3.pem" || fail "confirmed pair"
    ok "confirm keeps only the new pair"
    dev "${A[@]}" --store "$W/store" --no-rekey reenroll >/dev/null || fail "reenroll without rekey"
    dev "${A[@]}" --store "$W/store" --out-cert "$W/c4.pem" --out-key "$W/k4.pem" show >/dev/null
    same_key "$W/c4.pem" "$W/k3.pem" || fail "--no-rekey changed the key"
    ! cmp -s "$W/c4.pem" "$W/c3.pem" || fail "--no-rekey returned the same certificate"
    ok "reenroll keeping the key gives a new certificate for the same key"

    # ---- manufacturer certificate (IDevID) on a label trusting its CA ----
    mkdir "$W/store2"
    expect_err auth "the IDevID is refused on the default label" \
        dev "${A[@]}" --client-cert "$T/idev.crt" --client-key "$T/idev.key" --cn acme-serial-0042 enroll
    dev "${A[@]}" --label factory --store "$W/store2" --client-cert "$T/idev.crt" --client-key "$T/idev.key" \
        --cn acme-serial-0042 enroll >/dev/null || { tail -3 "$T/server.log" >&2; fail "enroll with an IDevID"; }
    dev "${A[@]}" --store "$W/store2" --out-cert "$W/ldev.pem" show >/dev/null
    verify_cert "$W/ldev.pem" || fail "LDevID does not verify"
    ok "first enrollment with a manufacturer certificate (label factory)"

    # ---- serverkeygen (RFC 7030 4.4) ----
    token default --uses 1
    dev "${A[@]}" --basic "$TOK_ID:$TOK_SECRET" --cn dev-kg --out-cert "$W/kg.pem" --out-key "$W/kg.key" \
        serverkeygen >/dev/null || { tail -3 "$T/server.log" >&2; fail "serverkeygen"; }
    verify_cert "$W/kg.pem" && same_key "$W/kg.pem" "$W/kg.key" || fail "serverkeygen pair"
    ok "serverkeygen: key and certificate match and verify"
    # encrypted to the client certificate (the LDevID from store2)
    if [ "$B" = mbedtls ]; then
        expect_err unsupported "encrypted serverkeygen (CMS) is not available on mbedTLS" \
            dev "${A[@]}" --label factory --store "$W/store2" --cn acme-serial-0042 --encrypt serverkeygen
    else
    dev "${A[@]}" --label factory --store "$W/store2" --cn acme-serial-0042 --encrypt \
        --out-cert "$W/kge.pem" --out-key "$W/kge.key" serverkeygen >/dev/null ||
        { tail -3 "$T/server.log" >&2; fail "serverkeygen with an encrypted key"; }
    verify_cert "$W/kge.pem" && same_key "$W/kge.pem" "$W/kge.key" || fail "encrypted serverkeygen pair"
    ok "serverkeygen with the key encrypted to our certificate (CMS, 4.4.2) decrypted and matching"
    fi
    expect_err bad-argument "an encrypted key needs a client certificate" \
        dev "${A[@]}" --cn x --encrypt serverkeygen

    # ---- labels ----
    expect_err http-status "an unknown label is an HTTP error (404)" dev "${A[@]}" --label nosuch cacerts


done

est_stop
pass "clean shutdown"
