#!/usr/bin/env bash
# test_scep_refuse.sh - every SCEP refusal is a FAILURE CertRep signed by
# the RA (checked with openssl cms) with the right failInfo, logged with
# the request id and audited as scep.refuse: wrong, spent, malformed or
# missing challenge, bad signature, MD5, weak key, unknown label, garbage,
# a renewal by a stranger.  scepclient for the spent challenge; the rest
# with scep_load (OpenSSL CMS) for shapes scepclient will not send.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"
source "$(dirname "$0")/scep_lib.sh"
scep_require

est_start "[est]
scep_legacy_crypto = yes
"
scep_setup

audits() { sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM audit WHERE action='scep.refuse'"; }

# refused WANT DESC REQ [LABELPATH]: POST REQ, expect FAILURE with failInfo
# WANT, the request id in failInfoText and in a "refuse" log line, and one
# more scep.refuse audit row naming that request
refused() {
    local want=$1 desc=$2 req=$3 path=${4:-} before id
    before=$(audits)
    expect_status 200 "$desc: HTTP 200" "$(scep_post "$path" "$req" "$T/rep.der")"
    expect_rep "2 $want" "$desc: FAILURE failInfo $want" "$T/rep.der"
    id=$(rep_text "$T/rep.der" | sed -n 's/.*(request \([0-9a-f]*\)).*/\1/p')
    [ -n "$id" ] || fail "$desc: no request id in failInfoText"
    grep -q "id=$id .*refuse" "$T/server.log" || fail "$desc: no refuse log line for request $id"
    [ "$(audits)" = $((before + 1)) ] || fail "$desc: not audited"
    sqlite3 "$CA/fleetpki.db" "SELECT detail FROM audit WHERE action='scep.refuse' ORDER BY id DESC LIMIT 1" |
        grep -q "request=$id" || fail "$desc: audit row does not name request $id"
    pass "$desc: logged and audited with request id $id"
}

mkreq() { # OUT [scep_load req args]
    local out=$1
    shift
    "$SCEP_LOAD" req --ra "$T/ra.pem" --out "$out" "$@"
}

token default
GOOD="$TOK_ID:$TOK_SECRET"

# ---- garbage and structure ----
head -c 400 /dev/urandom >"$T/garbage.der"
refused 2 "random bytes" "$T/garbage.der"
printf '' >"$T/empty.der"
refused 2 "empty body" "$T/empty.der"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
    -subj /CN=x -outform DER -out "$T/csr.der" 2>/dev/null
refused 2 "a bare PKCS#10 instead of a pkiMessage" "$T/csr.der"

# ---- message checks ----
mkreq "$T/badsig.der" --challenge "$GOOD" --corrupt-sig
refused 1 "signature does not verify (badMessageCheck)" "$T/badsig.der"
mkreq "$T/md5.der" --challenge "$GOOD" --md md5
refused 0 "MD5 signature (badAlg)" "$T/md5.der"
mkreq "$T/weak.der" --challenge "$GOOD" --key-bits 1024
refused 0 "RSA-1024 key (badAlg: the project's key rules)" "$T/weak.der"
printf 'not a CSR' >"$T/junk.inner"
mkreq "$T/inner.der" --challenge "$GOOD" --inner "$T/junk.inner"
refused 1 "envelope holds no PKCS#10 (badMessageCheck)" "$T/inner.der"

# ---- challenge ----
mkreq "$T/nochal.der"
refused 2 "no challengePassword" "$T/nochal.der"
mkreq "$T/nocolon.der" --challenge "$TOK_SECRET"
refused 2 "challenge without the token id" "$T/nocolon.der"
mkreq "$T/wrong.der" --challenge "$TOK_ID:${TOK_SECRET%?}x"
refused 2 "wrong secret" "$T/wrong.der"
mkreq "$T/unknown.der" --challenge "0123456789abcdef:$TOK_SECRET"
refused 2 "unknown token id" "$T/unknown.der"

# none of the refusals above spent the token: it still enrolls, once
mkreq "$T/ok.der" --challenge "$GOOD" --cn ok-1 --key-out "$T/ok.key" --self-out "$T/ok.self"
expect_status 200 "good request" "$(scep_post "" "$T/ok.der" "$T/ok.rep")"
expect_rep "0 -" "the token refused above still enrolls (refusals spend nothing)" "$T/ok.rep"
mkreq "$T/again.der" --challenge "$GOOD" --cn ok-2
refused 2 "spent (single-use) token" "$T/again.der"
grep -q 'used.x20up' <(sqlite3 "$CA/fleetpki.db" \
    "SELECT detail FROM audit WHERE action='scep.refuse' ORDER BY id DESC LIMIT 1") ||
    fail "spent token: audit reason"
pass "spent token: the audit row says why"

# the same with scepclient: a spent challenge is a FAILURE badRequest
mkdir -p "$T/c1"
if scepclient -server-url "$SCEP" -private-key "$T/c1/key.pem" -challenge "$GOOD" \
    -cn scep-dev -ca-fingerprint "$RAFP" >"$T/c1.log" 2>&1; then
    fail "scepclient enrolled with a spent challenge"
fi
grep -q 'badRequest' "$T/c1.log" || { cat "$T/c1.log" >&2; fail "scepclient: expected badRequest"; }
pass "scepclient with a spent challenge: FAILURE badRequest"

# a token with --uses 2 pays for two enrollments (single use unless configured)
token default --uses 2
for i in 1 2; do
    mkreq "$T/u$i.der" --challenge "$TOK_ID:$TOK_SECRET" --cn uses-$i
    scep_post "" "$T/u$i.der" "$T/u$i.rep" >/dev/null
    expect_rep "0 -" "token with 2 uses: enrollment $i" "$T/u$i.rep"
done
mkreq "$T/u3.der" --challenge "$TOK_ID:$TOK_SECRET" --cn uses-3
refused 2 "token with 2 uses: third enrollment" "$T/u3.der"

# a token's CN pattern holds
token default --cn 'sensor-*'
mkreq "$T/cn.der" --challenge "$TOK_ID:$TOK_SECRET" --cn printer-1
refused 2 "CN outside the token's pattern" "$T/cn.der"

# ---- labels ----
token default
mkreq "$T/label.der" --challenge "$TOK_ID:$TOK_SECRET"
refused 2 "unknown label" "$T/label.der" "/nope"

# ---- renewal by a stranger: a self-signed certificate is not ours ----
mkreq "$T/stranger.der" --type 17 --cn ok-1
refused 1 "RenewalReq signed by a self-signed certificate (badMessageCheck)" "$T/stranger.der"
# and one signed by the real certificate asking for another name
rep_open "$T/ok.rep" "$T/ok.key" "$T/ok.self" "$T/ok.p7"
openssl pkcs7 -inform DER -in "$T/ok.p7" -print_certs -out "$T/ok.pem"
mkreq "$T/rename.der" --type 17 --key "$T/ok.key" --cert "$T/ok.pem" --cn someone-else
refused 2 "RenewalReq for another name" "$T/rename.der"
mkreq "$T/renew.der" --type 17 --key "$T/ok.key" --cert "$T/ok.pem" --cn ok-1
scep_post "" "$T/renew.der" "$T/renew.rep" >/dev/null
expect_rep "0 -" "RenewalReq by the holder for its own name" "$T/renew.rep"
# revoked: its renewal is refused
serial=$(openssl x509 -in "$T/ok.pem" -noout -serial | cut -d= -f2)
fp revoke --dir "$CA" "$serial" --reason keyCompromise >/dev/null
mkreq "$T/revoked.der" --type 17 --key "$T/ok.key" --cert "$T/ok.pem" --cn ok-1
refused 1 "RenewalReq signed by a revoked certificate" "$T/revoked.der"

# ---- PKCSReq signed by a key other than the request's ----
mkreq "$T/otherkey.der" --challenge "$TOK_ID:$TOK_SECRET" --other-csr-key
refused 1 "PKCSReq signed with a key that is not the request's" "$T/otherkey.der"

# ---- PKIOperation without a message ----
expect_status 400 "GET PKIOperation without message" \
    "$(curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' "$SCEP?operation=PKIOperation")"
expect_status 400 "no operation" "$(curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' "$SCEP")"
# GET PKIOperation with the base64 message (RFC 8894 4.3) works like POST
mkreq "$T/get.der" --challenge "$TOK_ID:$TOK_SECRET" --cn via-get
msg=$(base64 -w0 "$T/get.der" | sed 's/+/%2B/g; s#/#%2F#g; s/=/%3D/g')
curl -sS -o "$T/get.rep" "$SCEP?operation=PKIOperation&message=$msg"
expect_rep "0 -" "GET PKIOperation with a base64 message" "$T/get.rep"

est_stop
