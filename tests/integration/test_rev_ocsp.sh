#!/usr/bin/env bash
# OCSP responder end to end on the real server, driven by `openssl ocsp` and
# curl: good -> revoked after a revocation from another process, verified
# signatures, nonce echo, GET form with RFC 5019 caching headers, holds and
# their lifting, revocation by subject, unauthorized, and malformed input.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rev_lib.sh"

rev_start
rev_issue dev1 device-1
rev_issue dev2 device-2
rev_issue dev3 device-3

# --- good, signature verified, nonce round trip ---
rev_ocsp "$T/dev1.crt" -nonce || { cat "$T/ocsp.out" >&2; fail "openssl ocsp failed"; }
grep -q "Response verify OK" "$T/ocsp.out" || fail "response signature not verified"
grep -q "$T/dev1.crt: good" "$T/ocsp.out" || fail "dev1 not good"
# openssl checks the echoed nonce itself; a missing one is only a warning
grep -qi "nonce" "$T/ocsp.out" && { cat "$T/ocsp.out" >&2; fail "nonce not echoed"; }
pass "good, verified, nonce echoed"
# the nonce really is in the response and equals the request's
openssl ocsp -issuer "$CA/issuing.crt" -cert "$T/dev1.crt" -reqout "$T/n.req" -nonce >/dev/null 2>&1
curl -sS -H 'Content-Type: application/ocsp-request' --data-binary @"$T/n.req" \
    -o "$T/n.resp" "http://$HTTP/ocsp"
rn=$(openssl ocsp -reqin "$T/n.req" -req_text | grep -A1 "OCSP Nonce" | tail -1 | tr -d ' ')
sn=$(openssl ocsp -respin "$T/n.resp" -resp_text -noverify | grep -A1 "OCSP Nonce" | tail -1 | tr -d ' ')
[ -n "$rn" ] && [ "$rn" = "$sn" ] || fail "nonce in response ($sn) != request ($rn)"
pass "nonce bytes round-trip"

# --- the responder certificate: delegated, OCSPSigning, nocheck ---
openssl ocsp -respin "$T/n.resp" -resp_text -noverify >"$T/n.txt"
grep -q "OCSP Signing" "$T/n.txt" || fail "signer lacks id-kp-OCSPSigning"
grep -q "OCSP No Check" "$T/n.txt" || fail "signer lacks ocsp-nocheck"
grep -q "Responder Id: [0-9A-F]\{40\}" "$T/n.txt" || fail "responder id is not by key hash"
pass "delegated signer with OCSPSigning + nocheck, responder id by key"

# --- revocation from another process shows up (poll; no timing asserted) ---
rev_ocsp "$T/dev2.crt" -no_nonce >/dev/null # prime the cache with "good"
grep -q "$T/dev2.crt: good" "$T/ocsp.out" || fail "dev2 not good before revoke"
fp revoke --dir "$CA" "$(cat "$T/dev2.serial")" --reason keyCompromise >/dev/null
rev_wait_status "$T/dev2.crt" revoked -no_nonce
rev_wait_status "$T/dev2.crt" revoked -nonce
grep -q "Reason: keyCompromise" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "revocation reason missing"; }
grep -q "Revocation Time:" "$T/ocsp.out" || fail "revocation time missing"
pass "revoked (keyCompromise) after fleetpki revoke, cached path too"

# --- hold, then lift ---
rev_ocsp "$T/dev3.crt" -no_nonce # cached "good"
fp revoke --dir "$CA" "$(cat "$T/dev3.serial")" --reason certificateHold >/dev/null
rev_wait_status "$T/dev3.crt" revoked -no_nonce
grep -q "Reason: certificateHold" "$T/ocsp.out" || fail "hold reason missing"
fp revoke --dir "$CA" "$(cat "$T/dev3.serial")" --reason removeFromCRL >/dev/null
rev_wait_status "$T/dev3.crt" good -no_nonce
pass "certificateHold then removeFromCRL"

# --- revoke by subject CN ---
rev_issue dev4 fleet-7
rev_issue dev5 fleet-7
fp revoke --dir "$CA" --subject fleet-7 --reason cessationOfOperation >"$T/bysub.out"
[ "$(grep -c revoked "$T/bysub.out")" = 2 ] || fail "revoke --subject did not report 2 certificates"
rev_wait_status "$T/dev4.crt" revoked -no_nonce
rev_wait_status "$T/dev5.crt" revoked -no_nonce
expect_code 1 "revoke --subject with no match fails" fp revoke --dir "$CA" --subject nobody --reason superseded
# by device id carried in a URI SAN
fp_csr dev6 "/CN=gw" -addext "subjectAltName=URI:urn:fleet:gw-9"
fp issue --dir "$CA" --csr "$T/dev6.csr" --profile device --out "$T/dev6.crt" || fail "issue dev6"
expect_code 1 "--subject does not match SANs" fp revoke --dir "$CA" --subject urn:fleet:gw-9 --reason superseded
fp revoke --dir "$CA" --device urn:fleet:gw-9 --reason superseded --json >"$T/bydev.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d)==1 and "error" not in d[0]' "$T/bydev.json" \
    || fail "revoke --device --json"
rev_wait_status "$T/dev6.crt" revoked -no_nonce
expect_code 2 "--subject and --device together" fp revoke --dir "$CA" --subject a --device b --reason superseded
fp audit list --dir "$CA" 2>/dev/null | grep -c "cert.revoke" >"$T/nrev" || true
[ "$(cat "$T/nrev")" -ge 4 ] || fail "revocations not audited"
pass "revoke --subject and --device, audited"

# --- several certificates in one request ---
openssl ocsp -issuer "$CA/issuing.crt" -cert "$T/dev1.crt" -cert "$T/dev2.crt" \
    -url "http://$HTTP/ocsp" -CAfile "$CHAIN" >"$T/multi.out" 2>&1 || fail "multi request failed"
grep -q "$T/dev1.crt: good" "$T/multi.out" && grep -q "$T/dev2.crt: revoked" "$T/multi.out" \
    || { cat "$T/multi.out" >&2; fail "multi-certificate answers wrong"; }
pass "two certificates in one request"

# --- unknown serial, unauthorized issuer ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/o.key" \
    -subj "/CN=Other CA" -days 2 -out "$T/other.crt" 2>/dev/null
openssl ocsp -issuer "$CA/issuing.crt" -serial 0x4242424242 -url "http://$HTTP/ocsp" \
    -CAfile "$CHAIN" >"$T/unk.out" 2>&1 || true
grep -q ": unknown" "$T/unk.out" || { cat "$T/unk.out" >&2; fail "never-issued serial not unknown"; }
openssl ocsp -issuer "$T/other.crt" -serial 0x01 -url "http://$HTTP/ocsp" -CAfile "$CHAIN" \
    >"$T/unauth.out" 2>&1 || true
grep -qi "unauthorized" "$T/unauth.out" || { cat "$T/unauth.out" >&2; fail "foreign issuer not unauthorized"; }
# the root key is online in a fresh CA: the root's own certificate (the
# issuing CA) is answered too, signed by the root
openssl ocsp -issuer "$CA/root.crt" -cert "$CA/issuing.crt" -url "http://$HTTP/ocsp" \
    -CAfile "$CHAIN" >"$T/root.out" 2>&1 || { cat "$T/root.out" >&2; fail "OCSP for the issuing CA"; }
grep -q "Response verify OK" "$T/root.out" && grep -q "issuing.crt: good" "$T/root.out" \
    || { cat "$T/root.out" >&2; fail "issuing CA status from the root"; }
pass "unknown serial, unauthorized issuer, issuing CA good (root-signed)"

# --- GET form (RFC 6960 A.1, RFC 5019 5) with caching headers ---
openssl ocsp -issuer "$CA/issuing.crt" -cert "$T/dev1.crt" -no_nonce -reqout "$T/g.req" >/dev/null 2>&1
b64=$(base64 -w0 <"$T/g.req")
enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$b64")
code=$(curl -sS -D "$T/g.h" -o "$T/g.resp" -w '%{http_code}' "http://$HTTP/ocsp/$enc")
[ "$code" = 200 ] || fail "GET /ocsp answered $code"
grep -qi '^Content-Type: application/ocsp-response' "$T/g.h" || fail "GET content type"
grep -qi '^Cache-Control: max-age=[0-9]' "$T/g.h" || fail "GET Cache-Control max-age"
for h in Last-Modified Expires ETag; do grep -qi "^$h: " "$T/g.h" || fail "GET lacks $h"; done
openssl ocsp -respin "$T/g.resp" -issuer "$CA/issuing.crt" -cert "$T/dev1.crt" -CAfile "$CHAIN" \
    -no_nonce >"$T/g.out" 2>&1 || { cat "$T/g.out" >&2; fail "GET response does not verify"; }
grep -q "dev1.crt: good" "$T/g.out" || fail "GET status"
etag=$(sed -n 's/^[Ee][Tt]ag: *\(.*\)\r$/\1/p' "$T/g.h")
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "http://$HTTP/ocsp/$enc")
[ "$code" = 304 ] || fail "If-None-Match answered $code, expected 304"
# URL-safe alphabet without padding works too
safe=$(tr '+/' '-_' <<<"$b64" | tr -d '=')
curl -sS -o "$T/g2.resp" "http://$HTTP/ocsp/$safe"
openssl ocsp -respin "$T/g2.resp" -resp_text -noverify | grep -q "Cert Status: good" || fail "url-safe GET"
pass "GET form: headers, verification, 304, url-safe base64"

# --- malformed / oversize / wrong type ---
resp_status() { openssl ocsp -respin "$1" -resp_text -noverify 2>&1 |
    sed -n 's/.*Response Status: \([a-z]*\).*/\1/p; s/^Responder Error: \([a-z]*\).*/\1/p'; }
post() { curl -sS -H "Content-Type: ${2:-application/ocsp-request}" --data-binary @"$1" \
    -o "$T/p.resp" -w '%{http_code}' "http://$HTTP/ocsp"; }
printf 'definitely not DER' >"$T/garbage"
[ "$(post "$T/garbage")" = 200 ] && [ "$(resp_status "$T/p.resp")" = malformedrequest ] || fail "garbage"
head -c 40 "$T/g.req" >"$T/trunc"
[ "$(post "$T/trunc")" = 200 ] && [ "$(resp_status "$T/p.resp")" = malformedrequest ] || fail "truncated"
: >"$T/empty"
[ "$(post "$T/empty")" = 200 ] && [ "$(resp_status "$T/p.resp")" = malformedrequest ] || fail "empty"
{ cat "$T/g.req"; head -c 9000 /dev/zero; } >"$T/over"
[ "$(post "$T/over")" = 200 ] && [ "$(resp_status "$T/p.resp")" = malformedrequest ] || fail "oversize"
head -c 200000 /dev/zero >"$T/huge"
[ "$(post "$T/huge")" = 413 ] || fail "huge body not 413"
[ "$(post "$T/g.req" text/plain)" = 415 ] || fail "wrong content type not 415"
code=$(curl -sS -o "$T/p.resp" -w '%{http_code}' "http://$HTTP/ocsp/@@not-base64@@")
[ "$code" = 200 ] && [ "$(resp_status "$T/p.resp")" = malformedrequest ] || fail "bad base64 GET"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT --data x "http://$HTTP/ocsp")
[ "$code" = 405 ] || fail "PUT /ocsp answered $code"
# still serving after all that
[ "$(rev_ocsp_status "$T/dev1.crt")" = good ] || fail "server unhealthy after bad input"
pass "malformed, truncated, empty, oversize, 413, 415, bad base64, 405"

# --- caIssuers ---
curl -sS -o "$T/ca.der" "http://$HTTP/ca/issuing.crt"
cmp -s "$T/ca.der" <(openssl x509 -in "$CA/issuing.crt" -outform DER) || fail "/ca/issuing.crt differs"
pass "/ca/issuing.crt serves the issuing CA"

rev_stop
pass "server stopped cleanly"
