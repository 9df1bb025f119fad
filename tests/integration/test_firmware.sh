#!/usr/bin/env bash
# Signed firmware updates (issue 13, docs/firmware.md).
#
# Server: `fleetpki firmware ca create / signer create / sign / verify /
# list`; the SUIT envelope checked by an independent verifier
# (tests/firmware/suit_indep.py: Python cbor2 + cryptography), the CMS
# signature by `openssl cms -verify -binary -purpose any`; the sequence
# refusal, --force, and the audit rows.
# Device: every fp-fw-cli-<backend> (libfleetpki-device on OpenSSL and on
# mbedTLS) accepts the server's envelope and refuses, each with its own
# error name: a flipped bit in the image, the manifest and the signature;
# the wrong anchor (including the TLS root); a signer without codeSigning;
# a signer from the TLS CA; an expired and a not-yet-valid signer; a
# revoked signer (CRL from `fleetpki crl`); a replayed or older sequence
# (the stored floor, written only by --accept); wrong class and vendor;
# malformed, truncated and oversize envelopes; an image of the wrong size.
. "$(dirname "$0")/lib.sh"

CLIS=$(ls "${FP_BUILD_DIR:-/nonexistent}"/tests/device/fp-fw-cli-* 2>/dev/null || true)
[ -n "$CLIS" ] || { echo "skip: no fp-fw-cli-* in \$FP_BUILD_DIR/tests/device"; exit 77; }
PY=/usr/bin/python3
"$PY" -c 'import cbor2, cryptography' 2>/dev/null ||
    { echo "skip: python3-cbor2 / python3-cryptography missing"; exit 77; }
INDEP="$(dirname "$0")/../firmware/suit_indep.py"

VENDOR=fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe
CLASS=1492af14-2569-5e48-bf42-9b2d51f2ab45
OTHER=00000000-0000-4000-8000-000000000001
CA=$(fp_new_ca)
fw() { fp firmware "$@" --dir "$CA"; }

# ---- server side ----
expect_fail "sign before a firmware CA exists" \
    fw signer create --project default
fw ca create --project default >/dev/null || fail "firmware ca create"
expect_fail "a second firmware CA for the project" fw ca create --project default
expect_fail "activating the firmware signing CA as the TLS issuer" \
    fp ca activate default-fw-ca --dir "$CA"
# nor may the firmware root anchor an imported TLS issuing CA
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/sub.key" \
    -subj "/CN=sub under the firmware root" -out "$T/sub.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$T/sub.ext"
openssl x509 -req -in "$T/sub.csr" -CA "$CA/ca/default-fw-root/ca.crt" \
    -CAkey "$CA/ca/default-fw-root/ca.key" -CAcreateserial -days 30 -extfile "$T/sub.ext" \
    -out "$T/sub.crt" 2>/dev/null || fail "making a CA under the firmware root"
expect_fail "importing a TLS CA signed by the firmware root" \
    fp ca import --project default --cert "$T/sub.crt" --key "$T/sub.key" --dir "$CA"
fw signer create --project default >/dev/null || fail "firmware signer create"
expect_fail "a second signer without --replace" fw signer create --project default
fw anchor --project default --out "$T/anchor.pem" || fail "firmware anchor"
cmp -s "$T/anchor.pem" "$CA/root.crt" && fail "firmware anchor is the TLS root"
openssl x509 -in "$CA/firmware/default/signer.crt" -noout -ext keyUsage,extendedKeyUsage \
    | tr -d ' ' >"$T/ext.txt"
grep -q "DigitalSignature" "$T/ext.txt" && grep -q "CodeSigning" "$T/ext.txt" ||
    fail "signer certificate lacks digitalSignature / codeSigning: $(cat "$T/ext.txt")"
openssl verify -CAfile "$T/anchor.pem" -untrusted "$CA/firmware/default/signer.crt" \
    "$CA/firmware/default/signer.crt" >/dev/null || fail "signer does not chain to the firmware anchor"
# the signer certificate went through the one issuance path: in the store, audited
SERIAL=$(openssl x509 -in "$CA/firmware/default/signer.crt" -noout -serial | cut -d= -f2)
fp show "$SERIAL" --dir "$CA" >/dev/null || fail "signer certificate not in the store"
pass "firmware CA, anchor and code-signing signer"

head -c 300000 /dev/urandom >"$T/image.bin"
sign() { fw sign --project default --image "$T/image.bin" --vendor-id "$VENDOR" "$@"; }
sign --class-id "$CLASS" --version 1.4.2 --sequence 3 --out "$T/s3.suit" >/dev/null || fail "sign SUIT"
"$PY" "$INDEP" verify "$T/s3.suit" "$T/image.bin" "$T/anchor.pem" >"$T/indep.json" ||
    fail "independent verifier refuses the envelope"
"$PY" - "$T/indep.json" <<'PYEOF' || fail "independent verifier read other values"
import json, sys
j = json.load(open(sys.argv[1]))
assert j == {"sequence": 3, "vendor": "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe",
             "class": "1492af14-2569-5e48-bf42-9b2d51f2ab45", "size": 300000,
             "version": "1.4.2"}, j
PYEOF
cp "$T/image.bin" "$T/flipped.bin"
printf '\x01' | dd of="$T/flipped.bin" bs=1 seek=1000 conv=notrunc 2>/dev/null
expect_fail "independent verifier on a flipped image" \
    "$PY" "$INDEP" verify "$T/s3.suit" "$T/flipped.bin" "$T/anchor.pem"
fw verify --project default --image "$T/image.bin" --signature "$T/s3.suit" \
    --vendor-id "$VENDOR" --class-id "$CLASS" >/dev/null || fail "fleetpki firmware verify (SUIT)"
rc=0; fw verify --project default --image "$T/flipped.bin" --signature "$T/s3.suit" \
    --vendor-id "$VENDOR" --class-id "$CLASS" 2>"$T/err" >/dev/null || rc=$?
[ "$rc" = 3 ] && grep -q fw-image-digest "$T/err" || fail "verify of a flipped image: rc $rc $(cat "$T/err")"
pass "SUIT signed, checked by the independent verifier and by 'firmware verify'"

sign --class-id "$CLASS" --version 1.4.3 --sequence 4 --format cms --out "$T/s4.p7" >/dev/null ||
    fail "sign CMS"
openssl cms -verify -binary -purpose any -inform DER -in "$T/s4.p7" -content "$T/image.bin" \
    -CAfile "$T/anchor.pem" -out /dev/null 2>/dev/null || fail "openssl cms -verify refuses"
expect_fail "openssl cms -verify on a flipped image" openssl cms -verify -binary -purpose any \
    -inform DER -in "$T/s4.p7" -content "$T/flipped.bin" -CAfile "$T/anchor.pem" -out /dev/null
expect_fail "openssl cms -verify against the TLS root" openssl cms -verify -binary -purpose any \
    -inform DER -in "$T/s4.p7" -content "$T/image.bin" -CAfile "$CA/root.crt" -out /dev/null
fw verify --project default --format cms --image "$T/image.bin" --signature "$T/s4.p7" >/dev/null ||
    fail "fleetpki firmware verify (CMS)"
expect_fail "firmware verify (CMS) of a flipped image" fw verify --project default --format cms \
    --image "$T/flipped.bin" --signature "$T/s4.p7"
pass "CMS detached signature verifies with openssl cms, refuses a flipped image"

# sequence: equal and lower refused (audited), --force signs (audited), other classes apart
rc=0; sign --class-id "$CLASS" --version 1.4.3 --sequence 4 --out "$T/x" 2>"$T/err" || rc=$?
[ "$rc" != 0 ] && grep -q "bad-state" "$T/err" && [ ! -e "$T/x" ] || fail "equal sequence signed: $(cat "$T/err")"
expect_fail "lower sequence" sign --class-id "$CLASS" --version 1.0 --sequence 2 --out "$T/x"
[ ! -e "$T/x" ] || fail "a refused signature was written"
sign --class-id "$CLASS" --version 1.0 --sequence 2 --force --out "$T/s2.suit" >/dev/null ||
    fail "--force"
sign --class-id "$OTHER" --version 9 --sequence 1 --out "$T/other.suit" >/dev/null ||
    fail "another class has its own sequence"
sign --class-id "$CLASS" --version 1.5.0 --sequence 5 --out "$T/s5.suit" >/dev/null || fail "sequence 5"
fp audit list --dir "$CA" >"$T/audit.txt"
[ "$(grep -c ' firmware.sign ' "$T/audit.txt")" = 4 ] || fail "firmware.sign rows: $(grep firmware "$T/audit.txt")"
[ "$(grep -c 'firmware.sign.refuse' "$T/audit.txt")" = 2 ] || fail "refusals not audited"
[ "$(grep -c 'firmware.sign.forced' "$T/audit.txt")" = 1 ] || fail "forced signature not audited"
grep 'firmware.sign ' "$T/audit.txt" | grep -q "$(sha256sum "$T/image.bin" | cut -c1-64)" ||
    fail "audit row without the image digest"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain"
fw list --project default --json >"$T/list.json"
"$PY" - "$T/list.json" <<'PYEOF' || fail "firmware list"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [(r["sequence"], r["format"], r["forced"]) for r in rows] == \
    [(3, "suit", False), (4, "cms", False), (2, "suit", True), (1, "suit", False), (5, "suit", False)], rows
assert all(r["actor"].startswith("cli:") and len(r["sha256"]) == 64 for r in rows)
PYEOF
pass "sequence monotonic per class; refusals and --force audited; list"

# ---- envelopes the server would not make (independent encoder) ----
mk() { "$PY" "$INDEP" make --image "$T/image.bin" --vendor "$VENDOR" --class "$CLASS" "$@"; }
# a signer without codeSigning, under the firmware signing CA
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/noeku.key" \
    -subj /CN=noeku -out "$T/noeku.csr" 2>/dev/null
printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$T/noeku.ext"
openssl x509 -req -in "$T/noeku.csr" -CA "$CA/ca/default-fw-ca/ca.crt" \
    -CAkey "$CA/ca/default-fw-ca/ca.key" -CAcreateserial -days 30 -extfile "$T/noeku.ext" \
    -out "$T/noeku.crt" 2>/dev/null || fail "making a signer without codeSigning"
cat "$T/noeku.crt" "$CA/ca/default-fw-ca/ca.crt" >"$T/noeku.chain"
mk --key "$T/noeku.key" --chain "$T/noeku.chain" --seq 10 "$T/noeku.suit"
# a code-signing certificate from the project's TLS CA: a leaked TLS CA key
fp_csr tlscs /CN=tls-code-signer
fp issue --dir "$CA" --profile code-signing --csr "$T/tlscs.csr" --out "$T/tlscs.crt" >/dev/null ||
    fail "issuing a code-signing certificate from the TLS CA"
cat "$T/tlscs.crt" "$CA/issuing.crt" >"$T/tlscs.chain"
mk --key "$T/tlscs.key" --chain "$T/tlscs.chain" --seq 10 "$T/tlscs.suit"
# a second project's firmware anchor
fp project create other --dir "$CA" >/dev/null
fw ca create --project other >/dev/null
fw anchor --project other --out "$T/other-anchor.pem"
# the firmware signing CA's CRL before the signer is revoked
fp crl --ca default-fw-ca --pem --out "$T/fw-good.crl" --dir "$CA" >/dev/null || fail "firmware CA CRL"
# the signer revoked, in a CRL of the firmware signing CA
fp revoke "$SERIAL" --reason keyCompromise --dir "$CA" >/dev/null || fail "revoke the signer"
fp crl --ca default-fw-ca --pem --out "$T/fw.crl" --dir "$CA" >/dev/null || fail "firmware CA CRL"
fp crl --pem --out "$T/tls.crl" --dir "$CA" >/dev/null || fail "TLS CA CRL"
# corrupted envelopes: one bit in the manifest (inside the image digest it
# carries), one in the signature
"$PY" - "$T/s3.suit" "$T" <<'PYEOF'
import cbor2, hashlib, sys
env = open(sys.argv[1], "rb").read()
img = open(sys.argv[2] + "/image.bin", "rb").read()
def flip(data, at, name):
    b = bytearray(data); b[at] ^= 0x01; open(sys.argv[2] + "/" + name, "wb").write(bytes(b))
flip(env, env.index(hashlib.sha256(img).digest()) + 5, "badman.suit")
sign1 = cbor2.loads(cbor2.loads(cbor2.loads(env).value[2])[1]).value
flip(env, env.index(sign1[3]) + 10, "badsig.suit")
open(sys.argv[2] + "/trunc.suit", "wb").write(env[: len(env) // 2])
open(sys.argv[2] + "/garbage.suit", "wb").write(b"\xa2\x02\x41\x00\x03\x05")
open(sys.argv[2] + "/big.suit", "wb").write(b"\x41" * (70 * 1024))
PYEOF
head -c 300001 /dev/urandom >"$T/longer.bin"
head -c 299999 "$T/image.bin" >"$T/shorter.bin"

# ---- device side, each backend ----
NOW=$(date +%s)
for cli in $CLIS; do
    b=${cli##*-}
    dev() { "$cli" --anchors "$T/anchor.pem" --vendor "$VENDOR" "$@"; }
    # refused NAME DESC ARGS...: the device refuses with exactly that error
    refused() {
        local want=$1 desc=$2 rc=0
        shift 2
        dev "$@" >/dev/null 2>"$T/err" || rc=$?
        [ "$rc" -ge 10 ] && grep -q "^refused $want:" "$T/err" ||
            fail "$b: $desc: want $want, got rc $rc: $(cat "$T/err")"
    }
    out=$(dev --class "$CLASS" --envelope "$T/s3.suit" --image "$T/image.bin") || fail "$b: accept"
    [ "$out" = "ok sequence=3 version=1.4.2 sha256=$(sha256sum "$T/image.bin" | cut -c1-64)" ] ||
        fail "$b: accept said: $out"
    dev --class "$CLASS" --envelope "$T/s3.suit" --image "$T/image.bin" --no-clock >/dev/null ||
        fail "$b: clockless accept"
    S="--class $CLASS --envelope $T/s3.suit"
    refused fw-image-digest "flipped image bit" $S --image "$T/flipped.bin"
    refused fw-image-size "longer image" $S --image "$T/longer.bin"
    refused fw-image-size "shorter image" $S --image "$T/shorter.bin"
    refused fw-manifest-digest "flipped manifest bit" --class "$CLASS" --envelope "$T/badman.suit" --image "$T/image.bin"
    refused fw-bad-signature "flipped signature bit" --class "$CLASS" --envelope "$T/badsig.suit" --image "$T/image.bin"
    refused fw-untrusted "another project's firmware anchor" $S --image "$T/image.bin" --anchors "$T/other-anchor.pem"
    refused fw-untrusted "the TLS root as anchor" $S --image "$T/image.bin" --anchors "$CA/root.crt"
    refused fw-untrusted "a code-signing signer from the TLS CA" --class "$CLASS" --envelope "$T/tlscs.suit" --image "$T/image.bin"
    refused fw-not-code-signing "a signer without codeSigning" --class "$CLASS" --envelope "$T/noeku.suit" --image "$T/image.bin"
    refused fw-expired "an expired signer" $S --image "$T/image.bin" --now $((NOW + 20 * 365 * 86400))
    refused fw-expired "a signer not yet valid" $S --image "$T/image.bin" --now 1000000000
    dev $S --image "$T/image.bin" --crl "$T/fw-good.crl" >/dev/null || fail "$b: CRL without the signer"
    refused fw-revoked "a revoked signer" $S --image "$T/image.bin" --crl "$T/fw.crl"
    refused fw-untrusted "CRLs given, none of the signer's CA (fail closed)" $S --image "$T/image.bin" --crl "$T/tls.crl"
    cat "$T/tls.crl" "$T/fw.crl" >"$T/both.crl"
    refused fw-revoked "a revoked signer among two CRLs" $S --image "$T/image.bin" --crl "$T/both.crl"
    refused fw-wrong-class "wrong class" --class "$OTHER" --envelope "$T/s3.suit" --image "$T/image.bin"
    refused fw-wrong-vendor "wrong vendor" $S --image "$T/image.bin" --vendor "$OTHER"
    refused fw-truncated "truncated envelope" --class "$CLASS" --envelope "$T/trunc.suit" --image "$T/image.bin"
    refused fw-malformed "not a SUIT envelope" --class "$CLASS" --envelope "$T/garbage.suit" --image "$T/image.bin"
    refused fw-too-big "oversize envelope" --class "$CLASS" --envelope "$T/big.suit" --image "$T/image.bin"
    refused fw-too-big "image above the device's limit" $S --image "$T/image.bin" --max-image 1000
    refused fw-rollback "sequence not above --min-seq" $S --image "$T/image.bin" --min-seq 3
    # anti-rollback floor in the credential storage
    mkdir -p "$T/store-$b"
    dev $S --image "$T/image.bin" --store "$T/store-$b" >/dev/null || fail "$b: verify with a store"
    ls "$T/store-$b" | grep -q fwseq && fail "$b: verify wrote the floor"
    dev $S --image "$T/image.bin" --store "$T/store-$b" --accept >/dev/null || fail "$b: accept 3"
    grep -q "seq=3$" "$T/store-$b"/fwseq-* || fail "$b: floor not stored"
    refused fw-rollback "replayed sequence 3" $S --image "$T/image.bin" --store "$T/store-$b"
    refused fw-rollback "older (forced) sequence 2" --class "$CLASS" --envelope "$T/s2.suit" --image "$T/image.bin" --store "$T/store-$b"
    dev --class "$CLASS" --envelope "$T/s5.suit" --image "$T/image.bin" --store "$T/store-$b" >/dev/null ||
        fail "$b: newer sequence 5"
    grep -q "seq=3$" "$T/store-$b"/fwseq-* || fail "$b: a verify without --accept moved the floor"
    dev --class "$CLASS" --envelope "$T/s5.suit" --image "$T/image.bin" --store "$T/store-$b" --accept >/dev/null ||
        fail "$b: accept 5"
    refused fw-rollback "sequence 3 after 5" $S --image "$T/image.bin" --store "$T/store-$b"
    dev --class "$OTHER" --envelope "$T/other.suit" --image "$T/image.bin" --store "$T/store-$b" >/dev/null ||
        fail "$b: another class's floor is apart"
    echo "garbage" >"$T/store-$b/fwseq-$(echo "$CLASS" | tr -d -)"
    refused fw-store "a damaged floor file" $S --image "$T/image.bin" --store "$T/store-$b"
    pass "$b: accepts the server's envelope; every refusal has its own error"
done
