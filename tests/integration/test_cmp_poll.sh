#!/usr/bin/env bash
# Manual approval over CMP (RFC 9483 4.4): a p10cr on a manual_approval
# label is held (ip/cp "waiting"), the client polls (pollReq -> pollRep
# with checkAfter) until an operator approves (`fleetpki approve`), then
# gets its certificate; a rejected one gets a rejection.  ir/cr on such a
# label are refused (the held request must be a signed PKCS#10).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cmp_lib.sh"

cmp_start '
[est held]
project = default
profile = device
manual_approval = yes
retry_after_seconds = 1'
HELD="$CMPURL/p/held"

# held_id CN: the pending request id for CN, waiting up to 30 s
held_id() {
    local id
    for _ in $(seq 1 300); do
        id=$(fp pending --dir "$CA" | awk -v cn="CN=$1" 'index($0, cn) {print $1; exit}')
        [ -n "$id" ] && { echo "$id"; return 0; }
        sleep 0.1
    done
    return 1
}

cmp_token held
fp_csr dev "/CN=held-1"
URL=$HELD cmpc poll -cmd p10cr -ref "$TOK_ID" -secret "pass:$TOK_SEC" -csr "$T/dev.csr" \
    -certout "$T/dev.crt" -total_timeout 120 &
client=$!
id=$(held_id held-1) || { kill $client; fail "request not held"; }
pass "p10cr held for approval as request $id"
# let it poll at least once before the approval
for _ in $(seq 1 300); do grep -q "received POLLREP" "$T/poll.log" 2>/dev/null && break; sleep 0.1; done
grep -q "received POLLREP" "$T/poll.log" || { kill $client; cat "$T/poll.log" >&2; fail "client polled"; }
# a replay of its first pollReq (an old recipNonce) is refused without
# ending the transaction: OpenSSL alone would close it on the nonce error
code=$(curl -s --max-time 30 -o "$T/replay.rsp.1.der" -w '%{http_code}' -H 'Content-Type: application/pkixcmp' \
    --data-binary @"$T/poll.req.2.der" "$HELD")
[ "$code" = 200 ] || { kill $client; fail "replayed pollReq: HTTP $code"; }
case "$(rsp_line replay)" in
*"body=error "*) ;;
*) kill $client; fail "replayed pollReq: $(rsp_line replay)" ;;
esac
grep -q "cmp pollReq refused.*recipNonce" "$T/server.log" || { kill $client; fail "replay logged as such"; }
pass "a replayed pollReq is refused (recipNonce), the transaction stays open"
fp approve "$id" --dir "$CA" >/dev/null || { kill $client; fail "approve"; }
wait $client || { cat "$T/poll.log" >&2; fail "client did not get its certificate after approval"; }
verify_issued "$T/dev.crt"
[ "$(openssl x509 -in "$T/dev.crt" -noout -subject)" = "subject=CN = held-1" ] || fail "subject"
[ "$(rsp_field poll body 1)" = cp ] && [ "$(rsp_field poll status 1)" = 3 ] ||
    fail "first answer: cp waiting: $(rsp_line poll 1)"
[ "$(rsp_field poll body 2)" = pollRep ] || fail "then pollRep: $(rsp_line poll 2)"
pass "polled (pollReq/pollRep), approved, certificate delivered and verifies"

cmp_token held
fp_csr dev2 "/CN=held-2"
URL=$HELD cmpc poll2 -cmd p10cr -ref "$TOK_ID" -secret "pass:$TOK_SEC" -csr "$T/dev2.csr" \
    -certout "$T/dev2.crt" -total_timeout 120 &
client=$!
id=$(held_id held-2) || { kill $client; fail "second request not held"; }
fp reject "$id" --dir "$CA" >/dev/null || { kill $client; fail "reject"; }
if wait $client; then fail "a rejected request got a certificate"; fi
grep -q "rejected by an operator" "$T/poll2.log" || { cat "$T/poll2.log" >&2; fail "rejection reason"; }
pass "a rejected request is answered with a rejection"

key k
cmp_token held
URL=$HELD cmpc irheld -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/k.key" \
    -subject /CN=held-3 -certout "$T/x.crt" && fail "ir on a manual-approval label"
[ "$(rsp_field irheld failinfo)" = badRequest ] || fail "ir held: $(rsp_line irheld)"
pass "ir on a manual-approval label: badRequest (send a p10cr)"
fp_serve_stop
