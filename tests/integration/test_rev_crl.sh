#!/usr/bin/env bash
# CRL distribution end to end: the server publishes /crl/<ca>.crl, republishes
# it after a revocation made by another process, and `openssl verify
# -crl_check` accepts a good certificate and rejects a revoked one.  Also the
# CLI (`fleetpki crl`) in DER and PEM, CRL numbers, reasons, holds.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rev_lib.sh"

rev_start
rev_issue good dev-good
rev_issue bad dev-bad
rev_issue held dev-held

crl_number() { printf "%d" "$(openssl crl -inform DER -in "$1" -noout -crlnumber | sed 's/.*=//')"; }
fetch() { # fetch NAME -> $T/NAME.crl (DER) and $T/NAME.pem
    local code
    code=$(curl -sS -D "$T/crl.h" -o "$T/$1.crl" -w '%{http_code}' "http://$HTTP/crl/issuing.crl")
    [ "$code" = 200 ] || fail "GET /crl/issuing.crl answered $code"
    openssl crl -inform DER -in "$T/$1.crl" -out "$T/$1.pem" || fail "downloaded CRL does not parse"
}
# wait until the published CRL lists (or no longer lists) serial
wait_crl() { # wait_crl SERIAL present|absent
    for _ in $(seq 1 75); do
        fetch cur
        if openssl crl -in "$T/cur.pem" -noout -text | grep -q "Serial Number: $1"; then
            [ "$2" = present ] && return 0
        else
            [ "$2" = absent ] && return 0
        fi
        sleep 0.2
    done
    fail "CRL never had serial $1 $2"
}

# --- the published CRL ---
fetch first
grep -qi '^Content-Type: application/pkix-crl' "$T/crl.h" || fail "CRL content type"
for h in Last-Modified Expires ETag; do grep -qi "^$h: " "$T/crl.h" || fail "CRL lacks $h"; done
openssl crl -in "$T/first.pem" -CAfile "$CA/issuing.crt" -noout -verify 2>&1 | grep -q "verify OK" \
    || fail "CRL signature"
txt=$(openssl crl -in "$T/first.pem" -noout -text)
grep -q "Version 2" <<<"$txt" || fail "not a v2 CRL"
grep -q "X509v3 Authority Key Identifier" <<<"$txt" || fail "no AKI"
grep -q "X509v3 CRL Number" <<<"$txt" || fail "no CRL number"
grep -q "No Revoked Certificates" <<<"$txt" || fail "fresh CA has entries"
n1=$(crl_number "$T/first.crl")
openssl verify -crl_check -CAfile "$CHAIN" -CRLfile "$T/first.pem" "$T/good.crt" >/dev/null \
    || fail "good certificate rejected with the CRL"
pass "published CRL: v2, AKI, number, signature; good certificate verifies"

# --- revoke from another process: republished ---
fp revoke --dir "$CA" "$(cat "$T/bad.serial")" --reason keyCompromise >/dev/null
wait_crl "$(cat "$T/bad.serial")" present
n2=$(crl_number "$T/cur.crl")
[ "$n2" -gt "$n1" ] || fail "CRL number did not increase ($n1 -> $n2)"
openssl crl -in "$T/cur.pem" -noout -text | grep -A5 "$(cat "$T/bad.serial")" | grep -q "Key Compromise" \
    || fail "reason code missing"
expect_fail "revoked certificate fails openssl verify -crl_check" \
    openssl verify -crl_check -CAfile "$CHAIN" -CRLfile "$T/cur.pem" "$T/bad.crt"
grep -q "certificate revoked" "$T/last.out" "$T/last.err" || fail "verify failed for another reason"
openssl verify -crl_check -CAfile "$CHAIN" -CRLfile "$T/cur.pem" "$T/good.crt" >/dev/null \
    || fail "good certificate rejected after another's revocation"
pass "revocation republished (number $n1 -> $n2): revoked rejected, good accepted"

# --- a hold is listed, a lifted hold disappears ---
fp revoke --dir "$CA" "$(cat "$T/held.serial")" --reason certificateHold >/dev/null
wait_crl "$(cat "$T/held.serial")" present
openssl crl -in "$T/cur.pem" -noout -text | grep -A5 "$(cat "$T/held.serial")" | grep -q "Certificate Hold" \
    || fail "hold reason missing"
fp revoke --dir "$CA" "$(cat "$T/held.serial")" --reason removeFromCRL >/dev/null
wait_crl "$(cat "$T/held.serial")" absent
openssl verify -crl_check -CAfile "$CHAIN" -CRLfile "$T/cur.pem" "$T/held.crt" >/dev/null \
    || fail "lifted hold still rejected"
pass "hold listed, lifted hold gone"

# --- root CRL too: full-chain checking ---
curl -sS -o "$T/root.crl" "http://$HTTP/crl/root.crl"
openssl crl -inform DER -in "$T/root.crl" -out "$T/root.pem"
cat "$T/cur.pem" "$T/root.pem" >"$T/both.pem"
openssl verify -crl_check_all -CAfile "$CHAIN" -CRLfile "$T/both.pem" "$T/good.crt" >/dev/null \
    || fail "crl_check_all with root + issuing CRLs"
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://$HTTP/crl/nope.crl")
[ "$code" = 404 ] || fail "unknown CA CRL answered $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: $(sed -n 's/^[Ee][Tt]ag: *\(.*\)\r$/\1/p' "$T/crl.h")" \
    "http://$HTTP/crl/issuing.crl")
[ "$code" = 304 ] || fail "conditional CRL GET answered $code"
len=$(curl -sS -I "http://$HTTP/crl/issuing.crl" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ength: //p')
[ "$len" = "$(stat -c %s "$T/cur.crl")" ] || fail "HEAD Content-Length $len"
pass "root CRL (crl_check_all), HEAD, 404 for unknown CA"

# --- curl as a relying party: the server's own TLS certificate (curl checks
# the CRL of every CA in the chain, so it gets both) ---
curl -sS --cacert "$CHAIN" --crlfile "$T/both.pem" -o /dev/null "https://$HTTPS/.well-known/est/cacerts" \
    || fail "curl with the CRL refused a good server certificate"
tls_serial=$(openssl x509 -in "$CA/tls.crt" -noout -serial | cut -d= -f2)
fp revoke --dir "$CA" "$tls_serial" --reason superseded >/dev/null
wait_crl "$tls_serial" present
cat "$T/cur.pem" "$T/root.pem" >"$T/both.pem"
rc=0
curl -sS --cacert "$CHAIN" --crlfile "$T/both.pem" -o /dev/null "https://$HTTPS/.well-known/est/cacerts" \
    2>"$T/curl.err" || rc=$?
[ "$rc" != 0 ] || fail "curl accepted a revoked server certificate"
grep -qi "revoked" "$T/curl.err" || { cat "$T/curl.err" >&2; fail "curl failed for another reason"; }
pass "curl --crlfile: good server certificate accepted, revoked one refused"

rev_stop

# --- CLI: fleetpki crl ---
fp crl --dir "$CA" --out "$T/cli.crl" >"$T/cli.out" || fail "fleetpki crl"
grep -q "entries" "$T/cli.out" || fail "crl summary"
openssl crl -inform DER -in "$T/cli.crl" -CAfile "$CA/issuing.crt" -noout -verify 2>&1 | grep -q "verify OK" \
    || fail "CLI CRL does not verify"
n3=$(crl_number "$T/cli.crl")
[ "$n3" -gt "$n2" ] || fail "CLI CRL number not above the server's"
fp crl --dir "$CA" --pem --out "$T/cli.pem" >/dev/null
openssl crl -in "$T/cli.pem" -noout -text | grep -q "Serial Number: $(cat "$T/bad.serial")" || fail "PEM CRL entry"
fp crl --dir "$CA" --pem >"$T/stdout.pem"
openssl crl -in "$T/stdout.pem" -noout || fail "PEM CRL on stdout"
fp crl --dir "$CA" --json --out "$T/j.crl" >"$T/j.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["entries"]==2 and d["number"]>0' "$T/j.json" \
    || fail "crl --json"
fp crl --dir "$CA" --ca root --out "$T/cliroot.crl" >/dev/null || fail "root CRL via CLI"
expect_code 1 "unknown --ca fails" fp crl --dir "$CA" --ca nope --out "$T/x.crl"
[ ! -e "$T/x.crl" ] || fail "failed crl left a file"
expect_code 2 "bad --next-update-hours is a usage error" fp crl --dir "$CA" --next-update-hours 0
pass "fleetpki crl: DER, PEM, stdout, JSON, root, errors"
