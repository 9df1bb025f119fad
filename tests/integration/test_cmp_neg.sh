#!/usr/bin/env bash
# CMP refusals: each answered in CMP form with the right PKIFailureInfo
# (decoded by pyasn1, independently of OpenSSL), logged with the request
# id and audited (cmp.refuse): wrong secret, unknown token, unprotected,
# untrusted signer, policy violations, unknown label, replayed
# transaction, replayed certConf, kur/rr not by the holder, a label's auth
# mode; and bodies that are not CMP at all (HTTP 400 / 415).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cmp_lib.sh"

cmp_start '
[est tokenonly]
project = default
profile = device
auth = token

[est certonly]
project = default
profile = device
auth = cert'

# post NAME FILE [PATH]: the raw request, answer in $T/NAME.rsp.1.der
post() {
    curl -s --max-time 30 -o "$T/$1.rsp.1.der" -w '%{http_code}' \
        -H 'Content-Type: application/pkixcmp' --data-binary "@$2" "http://$HTTP${3:-/.well-known/cmp}"
}
# refused NAME FAILINFO DESC: client failed, the answer carries FAILINFO
refused() {
    local line
    line=$(rsp_line "$1") || { cat "$T/$1.log" >&2; fail "$3: answer does not decode"; }
    case " $line " in
    *" failinfo=$2 "*) ;;
    *) cat "$T/$1.log" >&2; fail "$3: expected failInfo $2, got: $line" ;;
    esac
    pass "$3 ($2)"
}

key a
cmp_token default
GOOD_ID=$TOK_ID GOOD_SEC=$TOK_SEC

cmpc badsec -cmd ir -ref "$GOOD_ID" -secret pass:not-the-secret -newkey "$T/a.key" -subject /CN=a \
    -certout "$T/x.crt" && fail "wrong secret enrolled"
refused badsec badMessageCheck "wrong MAC secret"
[ "$(rsp_field badsec protected)" = 1 ] || fail "the refusal is protected (signed)"

cmpc unktok -cmd ir -ref 0123456789abcdef -secret "pass:$GOOD_SEC" -newkey "$T/a.key" -subject /CN=a \
    -certout "$T/x.crt" && fail "unknown token enrolled"
refused unktok badMessageCheck "unknown token id"

cmpc unprot -cmd ir -unprotected_requests -newkey "$T/a.key" -subject /CN=a -certout "$T/x.crt" &&
    fail "unprotected ir enrolled"
refused unprot badMessageCheck "unprotected request"

# a self-signed certificate nobody trusts
openssl req -x509 -new -key "$T/a.key" -subj /CN=stranger -days 1 -out "$T/stranger.crt" 2>/dev/null
key b
cmpc untrusted -cmd ir -cert "$T/stranger.crt" -key "$T/a.key" -newkey "$T/b.key" -subject /CN=stranger \
    -certout "$T/x.crt" -trusted "$CA/root.crt" && fail "untrusted signer enrolled"
refused untrusted signerNotTrusted "untrusted signer"

# policy: the device profile takes no IP address SAN; the token's CN limit
cmpc policy -cmd ir -ref "$GOOD_ID" -secret "pass:$GOOD_SEC" -newkey "$T/a.key" -subject /CN=a \
    -sans 192.0.2.1 -certout "$T/x.crt" && fail "IP SAN enrolled on the device profile"
refused policy badCertTemplate "policy violation (SAN type)"
grep -q "csr-san" <(rsp_line policy) || fail "the refusal names the rule: $(rsp_line policy)"
fp audit list --dir "$CA" | grep -q "csr.refuse" || fail "policy refusal audited (csr.refuse)"
cmp_token default --cn 'sensor-*'
cmpc cnlimit -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/a.key" -subject /CN=camera-1 \
    -certout "$T/x.crt" && fail "token CN limit ignored"
refused cnlimit badCertTemplate "token CN limit"

# the good token was not spent by any of this
cmpc ok -cmd ir -ref "$GOOD_ID" -secret "pass:$GOOD_SEC" -newkey "$T/a.key" -subject /CN=a \
    -certout "$T/a.crt" || { cat "$T/ok.log" >&2; fail "the token enrolls after the refusals"; }
pass "refusals did not spend the token"

# unknown label
cmp_token default
URL="$CMPURL/p/nosuch" cmpc unklabel -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/b.key" \
    -subject /CN=b -certout "$T/x.crt" && fail "unknown label enrolled"
refused unklabel badRequest "unknown label"
grep -q "unknown_CMP_label" <(rsp_line unklabel) || fail "says why: $(rsp_line unklabel)"

# replay: the same ir again (its transactionID is remembered)
code=$(post replay "$T/ok.req.1.der")
[ "$code" = 200 ] || fail "replay answered $code"
refused replay transactionIdInUse "replayed ir"
# a certConf of a finished transaction
code=$(post replayconf "$T/ok.req.2.der")
[ "$(rsp_field replayconf body)" = error ] || fail "replayed certConf: $(rsp_line replayconf)"
pass "replayed certConf answered with an error message"

# kur with a MAC; rr of a certificate that is not the signer's
cmp_token default
cmpc kurmac -cmd kur -ref "$TOK_ID" -secret "pass:$TOK_SEC" -oldcert "$T/a.crt" -newkey "$T/b.key" \
    -certout "$T/x.crt" && fail "kur with a MAC"
refused kurmac notAuthorized "kur not protected by the certificate"
cmp_token default
key c
cmpc other -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/c.key" -subject /CN=c \
    -certout "$T/c.crt" || fail "second device"
cmpc rrother -cmd rr -cert "$T/a.crt" -key "$T/a.key" -oldcert "$T/c.crt" -trusted "$CA/root.crt" &&
    fail "rr of another device's certificate"
refused rrother notAuthorized "rr of another certificate"
[ "$(status_of "$(serial_of "$T/c.crt")")" = valid ] || fail "the other certificate stays valid"

# a label's auth mode
URL="$CMPURL/p/certonly" cmpc certonly -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/b.key" \
    -subject /CN=b -certout "$T/x.crt" && fail "MAC on a cert-only label"
refused certonly notAuthorized "MAC on an auth=cert label"
URL="$CMPURL/p/tokenonly" cmpc tokenonly -cmd cr -cert "$T/a.crt" -key "$T/a.key" -newkey "$T/b.key" \
    -certout "$T/x.crt" -trusted "$CA/root.crt" && fail "signature on a token-only label"
refused tokenonly notAuthorized "signature on an auth=token label"

# not CMP at all
printf 'hello' >"$T/junk"
[ "$(post junk "$T/junk")" = 400 ] || fail "junk body: not 400"
code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' \
    --data-binary @"$T/ok.req.1.der" "http://$HTTP/.well-known/cmp")
[ "$code" = 415 ] || fail "wrong content type: $code"
pass "a body that is not a PKIMessage: 400; wrong content type: 415"

# every refusal: one log line with the request id, one audit row
n_log=$(grep -c 'id=[0-9a-f]* cmp [a-zA-Z0-9]* refused' "$T/server.log" || true)
n_audit=$(fp audit list --dir "$CA" | grep -c 'cmp.refuse' || true)
[ "$n_log" -ge 9 ] || { cat "$T/server.log" >&2; fail "refusals logged with the request id ($n_log)"; }
[ "$n_audit" -ge 9 ] || fail "refusals audited ($n_audit)"
grep 'cmp ir refused' "$T/server.log" | grep -q 'transaction [0-9a-f]*' || fail "log names the transaction"
pass "refusals logged with request id and transaction ($n_log) and audited ($n_audit)"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain verifies"
fp_serve_stop
