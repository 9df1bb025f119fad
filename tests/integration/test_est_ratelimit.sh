#!/usr/bin/env bash
# Per-identity request rate at EST ([server] rate_per_identity, issue 8
# "Limits and abuse"): counted once the caller is authenticated and before
# any work on the body, so a token or device over its rate gets 429 with
# Retry-After (RFC 6585 4) even for a body that would be refused, spends
# no token use, and another identity from the same address is still served.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null
sed -i -e 's/^rate_per_identity = .*/rate_per_identity = 1/' \
    -e 's/^rate_burst_per_identity = .*/rate_burst_per_identity = 3/' "$CA/fleetpki.conf"
grep -q '^rate_per_identity = 1$' "$CA/fleetpki.conf" || fail "config has no rate_per_identity row"
fp_serve_run
EST="https://$HTTPS/.well-known/est"

token default --uses 10
A_ID=$TOK_ID A_SECRET=$TOK_SECRET
token default --uses 10
B_ID=$TOK_ID B_SECRET=$TOK_SECRET
printf 'not base64 at all!\n' >"$T/garbage"

# token A: a burst of 3 malformed bodies (400 each: authenticated, then the
# body is refused), then 429 before the body is even decoded
codes=""
for i in $(seq 1 8); do
    codes="$codes $(est_post "$EST/simpleenroll" "$T/garbage" -u "$A_ID:$A_SECRET")"
    cp "$T/headers" "$T/h$i"
done
echo "codes:$codes"
[ "$(tr ' ' '\n' <<<"$codes" | grep -c '^400$')" -ge 3 ] || fail "burst not answered 400:$codes"
[ "$(tr ' ' '\n' <<<"$codes" | tail -1)" = 429 ] || fail "8th request of one token: expected 429:$codes"
grep -qi '^retry-after: [1-9]' "$T/h8" || { cat "$T/h8"; fail "429 without Retry-After"; }
pass "over rate_per_identity: 429 with Retry-After, before the body is looked at"

# token B from the same address still enrolls
est_csr dev-b "/CN=dev-b"
s=$(est_post "$EST/simpleenroll" "$T/dev-b.b64" -u "$B_ID:$B_SECRET")
expect_status 200 "another token from the same address is served" "$s"
p7_certs "$T/body" "$T/dev-b.crt"

# an unauthenticated caller is not counted against token A's identity: bad
# secrets are answered 401, not 429
s=$(est_post "$EST/simpleenroll" "$T/garbage" -u "$A_ID:wrong")
expect_status 401 "a wrong secret for token A is 401, not 429" "$s"

# certificate identities are limited too (B's certificate: its own bucket)
codes=""
for i in $(seq 1 8); do
    codes="$codes $(est_post "$EST/simplereenroll" "$T/garbage" --cert "$T/dev-b.crt" --key "$T/dev-b.key")"
done
echo "cert codes:$codes"
[ "$(tr ' ' '\n' <<<"$codes" | tail -1)" = 429 ] || fail "certificate identity not limited:$codes"
pass "a client certificate identity is limited as well"

# no token use was spent by any refused request: A has all 10 left
sqlite3 "$CA/fleetpki.db" "SELECT uses_left FROM enroll_tokens WHERE id='$A_ID'" >"$T/uses"
[ "$(cat "$T/uses")" = 10 ] || fail "token A uses left: $(cat "$T/uses"), expected 10"
pass "refused and limited requests spent no token use"
[ "$(grep -c 'status=429' "$T/server.log")" -ge 2 ] || fail "429s not logged"
fp_serve_stop
