#!/usr/bin/env bash
# CLI end to end: init, issue under every leaf profile, check with openssl,
# list/show/revoke, JSON output, help and error conventions.
source "$(dirname "$0")/lib.sh"

CA=$(fp_new_ca)

# --- the hierarchy init made ---
openssl verify -CAfile "$CA/root.crt" "$CA/issuing.crt" >/dev/null || fail "issuing does not chain to root"
for k in root issuing tls ocsp; do
    [ "$(stat -c %a "$CA/$k.key")" = 600 ] || fail "$k.key is not 0600"
done
pass "CA keys are 0600"
rt=$(openssl x509 -in "$CA/root.crt" -noout -text)
grep -A1 "Basic Constraints: critical" <<<"$rt" | grep -q "CA:TRUE, pathlen:2" || fail "root basicConstraints"
grep -A1 "Key Usage: critical" <<<"$rt" | grep -q "Certificate Sign, CRL Sign" || fail "root keyUsage"
grep -q "Subject Key Identifier" <<<"$rt" || fail "root SKI"
it=$(openssl x509 -in "$CA/issuing.crt" -noout -text)
grep -A1 "Basic Constraints: critical" <<<"$it" | grep -q "CA:TRUE, pathlen:1" || fail "issuing basicConstraints"
ski_root=$(openssl x509 -in "$CA/root.crt" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ')
aki_iss=$(openssl x509 -in "$CA/issuing.crt" -noout -ext authorityKeyIdentifier | tail -1 | tr -d ' ' | sed 's/^keyid://')
[ "$ski_root" = "$aki_iss" ] || fail "issuing AKI ($aki_iss) != root SKI ($ski_root)"
# validity: root ~20y, issuing ~10y
ry=$(( ($(date -d "$(openssl x509 -in "$CA/root.crt" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 / 365 ))
iy=$(( ($(date -d "$(openssl x509 -in "$CA/issuing.crt" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 / 365 ))
[ "$ry" -ge 19 ] && [ "$iy" -ge 9 ] && [ "$iy" -lt "$ry" ] || fail "validity root=${ry}y issuing=${iy}y"
pass "root and issuing CA extensions and validity"

# --- issue under each profile and check with openssl ---
check_leaf() { # name profile eku-text
    local crt=$T/$1.crt
    fp issue --dir "$CA" --csr "$T/$1.csr" --profile "$2" >"$crt" || fail "issue $1"
    openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" "$crt" >/dev/null || fail "verify $1"
    local txt
    txt=$(openssl x509 -in "$crt" -noout -text)
    grep -A1 "Basic Constraints: critical" <<<"$txt" | grep -q "CA:FALSE" || fail "$1 basicConstraints"
    grep -q "Key Usage: critical" <<<"$txt" || fail "$1 keyUsage critical"
    grep -A1 "Extended Key Usage" <<<"$txt" | grep -q "$3" || fail "$1 EKU $3"
    grep -q "Authority Key Identifier" <<<"$txt" || fail "$1 AKI"
    # notAfter never past the issuer's
    [ "$(date -d "$(openssl x509 -in "$crt" -noout -enddate | cut -d= -f2)" +%s)" -le \
      "$(date -d "$(openssl x509 -in "$CA/issuing.crt" -noout -enddate | cut -d= -f2)" +%s)" ] || fail "$1 outlives issuer"
    pass "profile $2: verifies, extensions as profiled"
}
fp_csr dev "/CN=sensor-0001/serialNumber=SN-1" -addext "subjectAltName=URI:urn:dev:sensor-0001"
check_leaf dev device "TLS Web Client Authentication"
fp_csr web "/CN=gw.example" -addext "subjectAltName=DNS:gw.example,IP:192.0.2.7"
check_leaf web server "TLS Web Server Authentication"
openssl x509 -in "$T/web.crt" -noout -ext subjectAltName | grep -q "IP Address:192.0.2.7" || fail "server SAN"
fp_csr cli "/CN=operator"
check_leaf cli client "TLS Web Client Authentication"
fp_csr fw "/CN=firmware-signer"
check_leaf fw code-signing "Code Signing"

# RSA and Ed25519 subjects work too
openssl req -new -newkey rsa:2048 -nodes -keyout "$T/r.key" -subj "/CN=rsa-dev" -out "$T/r.csr" 2>/dev/null
fp issue --dir "$CA" --csr "$T/r.csr" --profile device | openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" >/dev/null || fail "rsa leaf"
openssl req -new -newkey ed25519 -nodes -keyout "$T/e.key" -subj "/CN=ed-dev" -out "$T/e.csr" 2>/dev/null
fp issue --dir "$CA" --csr "$T/e.csr" --profile device | openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" >/dev/null || fail "ed25519 leaf"
pass "RSA and Ed25519 subject keys"

# sub-ca profile produces a CA that can itself sign a verifiable leaf
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$T/sub.key" -subj "/CN=Line 7 CA" -out "$T/sub.csr" 2>/dev/null
fp issue --dir "$CA" --csr "$T/sub.csr" --profile sub-ca >"$T/sub.crt"
openssl x509 -in "$T/sub.crt" -noout -text | grep -q "CA:TRUE, pathlen:0" || fail "sub-ca constraints"
openssl req -new -key "$T/dev.key" -subj "/CN=under-sub" -out "$T/u.csr"
openssl x509 -req -in "$T/u.csr" -CA "$T/sub.crt" -CAkey "$T/sub.key" -CAcreateserial -days 5 -out "$T/u.crt" 2>/dev/null
cat "$CA/issuing.crt" "$T/sub.crt" >"$T/chain.pem"
openssl verify -CAfile "$CA/root.crt" -untrusted "$T/chain.pem" "$T/u.crt" >/dev/null || fail "leaf under sub-ca"
pass "sub-ca profile yields a working intermediate"

# --days and the chain option
fp issue --dir "$CA" --csr "$T/cli.csr" --profile client --days 3 --chain --out "$T/short.pem"
[ "$(grep -c BEGIN "$T/short.pem")" = 2 ] || fail "--chain should append the issuing CA"
end=$(date -d "$(openssl x509 -in "$T/short.pem" -noout -enddate | cut -d= -f2)" +%s)
[ $(( end - $(date +%s) )) -le $((3 * 86400 + 60)) ] || fail "--days 3 not honoured"
expect_code 3 "--days beyond profile maximum is refused" fp issue --dir "$CA" --csr "$T/cli.csr" --profile client --days 5000
grep -q "validity" "$T/last.err" || fail "validity error code missing"

# --- list / show / revoke ---
serial=$(openssl x509 -in "$T/dev.crt" -noout -serial | cut -d= -f2)
fp list --dir "$CA" | grep "$serial" | grep -q " valid " || fail "list shows new cert as valid"
fp show --dir "$CA" "$serial" | grep -q "^status:     valid" || fail "show valid"
fp show --dir "$CA" "$(tr 'A-F' 'a-f' <<<"$serial")" --pem | cmp -s - "$T/dev.crt" || fail "show --pem returns the issued PEM (lowercase serial accepted)"
fp revoke --dir "$CA" "$serial" --reason keyCompromise >/dev/null
fp list --dir "$CA" --status revoked | grep -q "$serial" || fail "revoked cert listed as revoked"
fp list --dir "$CA" --status valid | grep -q "$serial" && fail "revoked cert listed as valid"
fp show --dir "$CA" "$serial" | grep -q "^revoked: .*keyCompromise" || fail "show revocation reason"
fp show --dir "$CA" "$serial" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["status"]=="revoked" and d["reason"]=="keyCompromise", d'
pass "revoke is visible in list and show"
expect_code 1 "revoking twice is refused" fp revoke --dir "$CA" "$serial" --reason superseded
grep -q "already revoked" "$T/last.err" || fail "double revoke message"

# certificateHold is reversible
s2=$(openssl x509 -in "$T/web.crt" -noout -serial | cut -d= -f2)
fp revoke --dir "$CA" "$s2" --reason certificateHold >/dev/null
fp show --dir "$CA" "$s2" | grep -q "status:     on-hold" || fail "on hold"
fp revoke --dir "$CA" "$s2" --reason removeFromCRL >/dev/null
fp show --dir "$CA" "$s2" | grep -q "status:     valid" || fail "hold lifted"
pass "certificateHold then removeFromCRL"

# JSON list is valid JSON with the fields scripts need
fp list --dir "$CA" --json | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert len(d) >= 8, len(d)
for c in d:
    for k in ("serial","status","subject","not_after","profile"): assert k in c, (k, c)
'
n=$(fp list --dir "$CA" --expiring-within 4 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 1 ] || fail "--expiring-within 4 should list only the 3-day cert, got $n"
pass "list --json and --expiring-within"

# --- conventions: --help everywhere, errors on stderr with non-zero exit ---
for c in init issue list show revoke audit check-config; do
    fp "$c" --help | grep -q "usage: fleetpki $c" || fail "$c --help"
done
pass "--help for every command"
expect_code 2 "unknown command" fp frobnicate
expect_code 2 "issue without --profile" fp issue --dir "$CA" --csr "$T/dev.csr"
expect_code 2 "bad --reason" fp revoke --dir "$CA" "$serial" --reason because
expect_code 1 "show unknown serial" fp show --dir "$CA" 00DEADBEEF
[ -s "$T/last.err" ] && [ ! -s "$T/last.out" ] || fail "errors must go to stderr only"
expect_code 1 "commands on a missing CA dir say how to init" fp list --dir "$T/nowhere"
grep -q "fleetpki init" "$T/last.err" || fail "hint to run init"

# --- a second init never destroys keys ---
before=$(sha256sum "$CA/root.key")
expect_code 1 "second init refuses" fp init --dir "$CA"
[ "$(sha256sum "$CA/root.key")" = "$before" ] || fail "root key changed"
fp init --dir "$CA" --force >"$T/force.out"
bdir=$(sed -n 's/^previous CA moved to //p' "$T/force.out")
[ -n "$bdir" ] && [ "$(cd "$bdir" && sha256sum root.key | cut -d' ' -f1)" = "$(cut -d' ' -f1 <<<"$before")" ] || fail "--force kept the old key in the backup"
pass "second init refuses; --force moves the old CA aside intact"

# config validation
fp check-config --dir "$CA" | grep -q "^ok" || fail "check-config ok"
cp "$CA/fleetpki.conf" "$T/good.conf"
printf '\n[profile device]\nvalidity_days = abc\n' >>"$CA/fleetpki.conf"
expect_code 1 "check-config catches a bad value" fp check-config --dir "$CA"
line=$(wc -l <"$CA/fleetpki.conf")
grep -q "line $line: profile device: validity_days" "$T/last.err" || fail "config error names line $line and option: $(cat "$T/last.err")"
# a rule between two options: named both, at the line of the later one
cp "$T/good.conf" "$CA/fleetpki.conf"
printf '\n[profile device]\nvalidity_days = 900\nmax_validity_days = 800\n' >>"$CA/fleetpki.conf"
expect_code 1 "check-config catches validity_days above max_validity_days" fp check-config --dir "$CA"
line=$(wc -l <"$CA/fleetpki.conf")
grep -q "line $line: profile device: validity_days exceeds max_validity_days" "$T/last.err" ||
    fail "config error names line $line and both options: $(cat "$T/last.err")"
cp "$T/good.conf" "$CA/fleetpki.conf"
