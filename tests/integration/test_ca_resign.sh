#!/usr/bin/env bash
# The offline root ceremony for an existing issuing CA: `ca resign ID
# --root-key F [--days N]` gives the CA a new certificate (same key and
# subject, new serial, new validity) signed by the offline root, stored as
# the CA's certificate (store row and file): openssl verifies it against the
# root, a leaf issued before verifies through it (same name and SKI), the
# server serves it after a restart; a foreign key, a wrong passphrase, an
# unknown or non-issuing CA and a validity past the root's are refused and
# change nothing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"

MEDIA=$T/media
export FLEETPKI_ROOT_PASSPHRASE=root-secret
fp init --dir "$CA" --name "Test Org" --offline-root "$MEDIA" >/dev/null || fail "init --offline-root"
fp project create --dir "$CA" acme --root-key "$MEDIA/root.key" >"$T/pc.out" || fail "project create"
ACME=$(awk '{print $NF}' "$T/pc.out")
[ -f "$CA/ca/$ACME/ca.crt" ] || fail "no ca/$ACME/ca.crt"

leaf() { # leaf NAME [--project P]: a device certificate issued now
    local n=$1
    shift
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$n.key" \
        -subj "/CN=$n" -out "$T/$n.csr" 2>/dev/null
    fp issue --dir "$CA" --csr "$T/$n.csr" --profile device --out "$T/$n.crt" "$@" >/dev/null ||
        fail "issue $n"
}
field() { openssl x509 -in "$1" -noout "-$2"; }

leaf before --project acme
cp "$CA/ca/$ACME/ca.crt" "$T/acme-old.crt"

# ---- refusals first: nothing changes ----
expect_fail "resign without --root-key" fp ca resign --dir "$CA" "$ACME"
grep -q "root-key" "$T/last.err" || fail "missing --root-key not named"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/other.key" 2>/dev/null
expect_fail "resign with a foreign key" fp ca resign --dir "$CA" "$ACME" --root-key "$T/other.key"
grep -q "not this data directory's root key" "$T/last.err" || { cat "$T/last.err" >&2; fail "mismatch not named"; }
FLEETPKI_ROOT_PASSPHRASE=wrong expect_fail "resign with a wrong passphrase" \
    fp ca resign --dir "$CA" "$ACME" --root-key "$MEDIA/root.key"
expect_fail "resign an unknown CA" fp ca resign --dir "$CA" nope --root-key "$MEDIA/root.key"
grep -q "no CA 'nope'" "$T/last.err" || { cat "$T/last.err" >&2; fail "unknown CA not named"; }
ROOT_ID=$(fp ca list --dir "$CA" --json | python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin) if c["kind"]=="root"][0])')
expect_fail "resign the root" fp ca resign --dir "$CA" "$ROOT_ID" --root-key "$MEDIA/root.key"
grep -q "not an issuing CA" "$T/last.err" || { cat "$T/last.err" >&2; fail "root not refused by kind"; }
expect_fail "resign past the root's validity" \
    fp ca resign --dir "$CA" "$ACME" --root-key "$MEDIA/root.key" --days 36000
grep -q "outlive the root" "$T/last.err" || { cat "$T/last.err" >&2; fail "validity past the root not named"; }
expect_fail "resign with --days 0" fp ca resign --dir "$CA" "$ACME" --root-key "$MEDIA/root.key" --days 0
cmp -s "$CA/ca/$ACME/ca.crt" "$T/acme-old.crt" || fail "a refused resign changed ca.crt"
pass "refused: no root key, foreign key, wrong passphrase, unknown CA, the root, past the root, 0 days"

# ---- the ceremony ----
fp ca resign --dir "$CA" "$ACME" --root-key "$MEDIA/root.key" --days 400 >"$T/rs.out" ||
    fail "ca resign"
NEW=$CA/ca/$ACME/ca.crt
openssl verify -CAfile "$CA/root.crt" "$NEW" >/dev/null || fail "re-signed CA does not verify against the root"
[ "$(field "$NEW" serial)" != "$(field "$T/acme-old.crt" serial)" ] || fail "serial unchanged"
grep -q "$(field "$NEW" serial | cut -d= -f2)" "$T/rs.out" || fail "new serial not printed"
[ "$(field "$NEW" subject)" = "$(field "$T/acme-old.crt" subject)" ] || fail "subject changed"
cmp -s <(field "$NEW" pubkey) <(field "$T/acme-old.crt" pubkey) || fail "key changed"
na=$(date -d "$(field "$NEW" enddate | cut -d= -f2)" +%s)
d=$(( (na - $(date +%s)) / 86400 ))
[ "$d" -ge 399 ] && [ "$d" -le 400 ] || fail "notAfter is $d days away, expected 400"
openssl x509 -in "$NEW" -noout -ext subjectKeyIdentifier,basicConstraints,keyUsage >"$T/ext.new"
openssl x509 -in "$T/acme-old.crt" -noout -ext subjectKeyIdentifier,basicConstraints,keyUsage >"$T/ext.old"
cmp -s "$T/ext.new" "$T/ext.old" || fail "extensions changed"
openssl verify -CAfile "$CA/root.crt" -untrusted "$NEW" "$T/before.crt" >/dev/null ||
    fail "a leaf issued before does not verify through the re-signed CA"
fp ca list --dir "$CA" --json | python3 -c '
import json, sys
c = [c for c in json.load(sys.stdin) if c["id"] == sys.argv[1]][0]
assert c["active"], c
' "$ACME" || fail "the CA row lost its active flag"
fp audit list --dir "$CA" | grep -q "ca.resign" || fail "resign not audited"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain broken"
pass "re-signed: verifies against the root, same subject, key and extensions, new serial, 400 days; old leaf verifies; audited"

# the CA made by init (its certificate is issuing.crt)
ISS_ID=$(fp ca list --dir "$CA" --json | python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin) if c["kind"]=="issuing" and c["project"]=="default"][0])')
cp "$CA/issuing.crt" "$T/iss-old.crt"
fp ca resign --dir "$CA" "$ISS_ID" --root-key "$MEDIA/root.key" >/dev/null || fail "resign init's CA"
openssl verify -CAfile "$CA/root.crt" "$CA/issuing.crt" >/dev/null || fail "re-signed issuing.crt"
[ "$(field "$CA/issuing.crt" serial)" != "$(field "$T/iss-old.crt" serial)" ] || fail "issuing.crt not replaced"
pass "init's issuing CA re-signed in issuing.crt"

# ---- the server uses the new certificates after a restart ----
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
EST="https://$HTTPS/.well-known/est"
s=$(est_get "$EST/cacerts")
expect_status 200 "cacerts after resign" "$s"
p7_certs "$T/body" "$T/cacerts.pem"
grep -q "$(sed -n 2p "$CA/issuing.crt")" "$T/cacerts.pem" || fail "cacerts does not serve the re-signed issuing CA"
leaf after
openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" "$T/after.crt" >/dev/null ||
    fail "a leaf issued after the resign does not verify"
fp_serve_stop
pass "server restarted: cacerts serves the re-signed issuing CA; issuance chains to it"
