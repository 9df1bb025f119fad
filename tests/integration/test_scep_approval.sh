#!/usr/bin/env bash
# test_scep_approval.sh - SCEP on a manual_approval label: PENDING, then
# `fleetpki approve` and the certificate on the client's next try.
# scepclient resends its PKCSReq every 30 s while PENDING (micromdm 2.1
# has no CertPoll); CertPoll itself (RFC 8894 3.3.3) with scep_load:
# PENDING, SUCCESS after approve, FAILURE after reject, badCertId for a
# poll signed by a certificate that signed no held request.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"
source "$(dirname "$0")/scep_lib.sh"
scep_require

# scepclient resends after exactly 30 s on the same keep-alive connection,
# and the default idle timeout is 30 s too: the server's close and the
# client's POST race (Go does not retry a POST on EOF).  A shorter idle
# timeout closes the connection well before, and Go then dials anew.
est_start "[server]
idle_timeout_seconds = 10
[est held]
manual_approval = yes
scep_legacy_crypto = yes
"
scep_setup

waiting() { sqlite3 "$CA/fleetpki.db" "SELECT id FROM pending_requests WHERE status=0 ORDER BY id"; }

# ---- scepclient: PENDING, approve, SUCCESS on its next try ----
token held
mkdir -p "$T/c1"
timeout 150 scepclient -server-url "$SCEP/held" -private-key "$T/c1/key.pem" \
    -challenge "$TOK_ID:$TOK_SECRET" -cn held-dev-1 -ca-fingerprint "$RAFP" >"$T/c1.log" 2>&1 &
CLIENT=$!
fp_track "$CLIENT"
for _ in $(seq 1 200); do
    [ -n "$(waiting)" ] && break
    sleep 0.1
done
id=$(waiting)
[ -n "$id" ] || { cat "$T/c1.log" >&2; fail "no request held"; }
grep -q 'PENDING' "$T/c1.log" || sleep 1
grep -q 'PENDING' "$T/c1.log" || { cat "$T/c1.log" >&2; fail "scepclient did not see PENDING"; }
pass "scepclient's PKCSReq is held (PENDING) as request $id"
fp approve --dir "$CA" "$id" >/dev/null
wait "$CLIENT" || { cat "$T/c1.log" >&2; tail -5 "$T/server.log" >&2; fail "scepclient after approval"; }
verify_cert "$T/c1/client.pem" || fail "approved certificate does not verify"
openssl x509 -in "$T/c1/client.pem" -noout -subject | grep -q 'CN = held-dev-1' || fail "CN"
pass "after fleetpki approve, scepclient's next try gets the certificate"
[ "$(sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM audit WHERE action='token.use' AND object='$TOK_ID'")" = 1 ] ||
    fail "holding did not spend the token"
pass "holding spent the token once (resends did not)"

# the spent token holds nothing more
mkdir -p "$T/c2"
"$SCEP_LOAD" req --ra "$T/ra.pem" --challenge "$TOK_ID:$TOK_SECRET" --cn held-dev-2 \
    --out "$T/spent.der"
scep_post "/held" "$T/spent.der" "$T/spent.rep" >/dev/null
expect_rep "2 2" "a second request with the token that paid for the held one: badRequest" "$T/spent.rep"

# ---- CertPoll ----
token held
"$SCEP_LOAD" req --ra "$T/ra.pem" --challenge "$TOK_ID:$TOK_SECRET" --cn poll-1 \
    --key-out "$T/p1.key" --self-out "$T/p1.self" --out "$T/p1.der"
scep_post "/held" "$T/p1.der" "$T/p1.rep" >/dev/null
expect_rep "3 -" "PKCSReq on a manual-approval label: PENDING" "$T/p1.rep"
poll() { # KEY SELF OUT
    "$SCEP_LOAD" req --ra "$T/ra.pem" --type 20 --key "$1" --cert "$2" --about "$2" --out "$3.der"
    scep_post "/held" "$3.der" "$3" >/dev/null
}
poll "$T/p1.key" "$T/p1.self" "$T/poll1.rep"
expect_rep "3 -" "CertPoll before approval: PENDING" "$T/poll1.rep"
id=$(waiting)
fp approve --dir "$CA" "$id" >/dev/null
poll "$T/p1.key" "$T/p1.self" "$T/poll2.rep"
expect_rep "0 -" "CertPoll after approval: SUCCESS" "$T/poll2.rep"
rep_open "$T/poll2.rep" "$T/p1.key" "$T/p1.self" "$T/poll2.p7"
openssl pkcs7 -inform DER -in "$T/poll2.p7" -print_certs -out "$T/poll2.pem"
verify_cert "$T/poll2.pem" || fail "polled certificate does not verify"
serial=$(openssl x509 -in "$T/poll2.pem" -noout -serial | cut -d= -f2)
[ "$(sqlite3 "$CA/fleetpki.db" "SELECT serial FROM pending_requests WHERE id=$id")" = "$serial" ] ||
    fail "polled certificate is not the approved one"
pass "CertPoll returns the approved certificate (verifies, enveloped to the requester)"

# a poll signed by a certificate that signed no held request
"$SCEP_LOAD" req --ra "$T/ra.pem" --type 20 --about "$T/p1.self" --out "$T/stranger.der"
scep_post "/held" "$T/stranger.der" "$T/stranger.rep" >/dev/null
expect_rep "2 4" "CertPoll by a stranger: FAILURE badCertId" "$T/stranger.rep"

# rejected: the poll fails
token held
"$SCEP_LOAD" req --ra "$T/ra.pem" --challenge "$TOK_ID:$TOK_SECRET" --cn poll-2 \
    --key-out "$T/p2.key" --self-out "$T/p2.self" --out "$T/p2.der"
scep_post "/held" "$T/p2.der" "$T/p2.rep" >/dev/null
expect_rep "3 -" "second held request: PENDING" "$T/p2.rep"
fp reject --dir "$CA" "$(waiting)" >/dev/null
poll "$T/p2.key" "$T/p2.self" "$T/poll3.rep"
expect_rep "2 2" "CertPoll after reject: FAILURE badRequest" "$T/poll3.rep"

# a request the profile refuses is refused at once, not held
token held
# (a Unicode bidi override in the CN: the default profile refuses it)
"$SCEP_LOAD" req --ra "$T/ra.pem" --challenge "$TOK_ID:$TOK_SECRET" --cn "$(printf 'x\u202egnp.exe')" \
    --out "$T/bidi.der"
scep_post "/held" "$T/bidi.der" "$T/bidi.rep" >/dev/null
expect_rep "2 2" "a request the profile refuses is refused at once on a manual-approval label" "$T/bidi.rep"
[ "$(sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM audit WHERE action='csr.refuse' AND detail LIKE '%scep/hold%'")" = 1 ] ||
    fail "the profile's refusal is not audited (csr.refuse)"
[ -z "$(waiting)" ] || fail "the refused request was held"
pass "nothing held for it"

est_stop
