#!/usr/bin/env bash
# Three `fleetpki serve` nodes on one PostgreSQL database (issue 15):
#  - a revocation through node 2's API reaches OCSP on node 3, whose cached
#    "good" answer is dropped (change log, woken by NOTIFY), and every node
#    then serves one CRL listing it, signed by one node only;
#  - a token with 24 uses, spent from three nodes at once, pays for exactly
#    24 certificates;
#  - enrollments on three nodes at once, node 2 killed (SIGKILL) in the
#    middle: every certificate a client received is in the database, no
#    serial twice, and `fleetpki audit verify` passes;
#  - five processes opening an empty database at once: one migrates, the
#    others wait for it.
# No timing is asserted: only outcomes (generous deadlines against hangs).
export FP_TEST_STORE=pg
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/rev_lib.sh"
. "$(dirname "$0")/api_lib.sh"
. "$(dirname "$0")/pg_nodes_lib.sh"

fp_new_ca "$CA" >/dev/null
grep -q '^url = host=' "$CA/fleetpki.conf" || fail "init did not record the PostgreSQL store"
for i in 1 2 3; do node_start "$i"; done
pass "three nodes serve one database"

# ---- revoke on node 2, OCSP on node 3 ----
CHAIN=$T/chain.pem
cat "$CA/root.crt" "$CA/issuing.crt" >"$CHAIN"
rev_issue d1 pg-node-device
HTTP=${NHTTP[3]}
[ "$(rev_ocsp_status "$T/d1.crt" -no_nonce)" = good ] || fail "OCSP on node 3: $(cat "$T/ocsp.out")"
[ "$(rev_ocsp_status "$T/d1.crt" -no_nonce)" = good ] || fail "cached OCSP on node 3"
ADMIN=$(new_key --admin)
HTTPS=${NHTTPS[2]}
expect_api 200 "revoke through node 2's API" POST \
    "/projects/default/certificates/$(cat "$T/d1.serial")/revoke" "$ADMIN" '{"reason":"keyCompromise"}'
rev_wait_status "$T/d1.crt" revoked -no_nonce
pass "node 3 answers revoked from its cache path after node 2 revoked"

# every node serves the CRL listing it, and the same one: one node signed
# it (under the per-CA lock), the others took its bytes from the database
crl_of() { # NODE OUT: the node's CRL once it lists d1 (up to 30 s)
    for _ in $(seq 1 150); do
        curl -sS --max-time 10 -o "$2" "http://${NHTTP[$1]}/crl/issuing.crl" &&
            openssl crl -inform DER -in "$2" -noout -text 2>/dev/null |
            grep -q "Serial Number: $(cat "$T/d1.serial")" && return 0
        sleep 0.2
    done
    fail "node $1's CRL does not list the revoked certificate"
}
for i in 1 2 3; do
    crl_of "$i" "$T/n$i.crl"
    openssl crl -inform DER -in "$T/n$i.crl" -CAfile "$CA/issuing.crt" -noout 2>&1 | grep -q 'verify OK' ||
        fail "node $i's CRL does not verify"
done
for _ in $(seq 1 150); do
    cmp -s "$T/n1.crl" "$T/n2.crl" && cmp -s "$T/n2.crl" "$T/n3.crl" && break
    sleep 0.2
    for i in 1 2 3; do crl_of "$i" "$T/n$i.crl"; done
done
cmp -s "$T/n1.crl" "$T/n2.crl" && cmp -s "$T/n2.crl" "$T/n3.crl" ||
    fail "nodes serve different CRLs: $(for i in 1 2 3; do openssl crl -inform DER -in "$T/n$i.crl" -noout -crlnumber; done | tr '\n' ' ')"
num=$(openssl crl -inform DER -in "$T/n1.crl" -noout -crlnumber | cut -d= -f2)
signers=$(grep -l "crl ca=issuing number=$((num)) entries" "$T"/node?.log | wc -l)
[ "$signers" = 1 ] || fail "CRL number $num was signed by $signers nodes"
pass "all three nodes serve one CRL (number $num) listing it, signed by one node"

# ---- one token, three nodes spending it at once ----
token default --uses 24
est_csr lc "/CN=pg-load"
pids=()
for i in 1 2 3; do enroll_loop "$i" 12 "$T/spend$i" & pids+=($!); done
wait "${pids[@]}"
ok=$(cat "$T"/spend{1,2,3} 2>/dev/null | wc -l)
[ "$ok" = 24 ] || fail "a 24-use token paid for $ok certificates across three nodes"
[ "$(cat "$T"/spend{1,2,3}.codes | grep -vc '^200$')" = 12 ] ||
    fail "expected 12 refusals: $(sort "$T"/spend{1,2,3}.codes | uniq -c | tr '\n' ' ')"
left=$(PG_DB=$(store_db) pg_psql -c "SELECT uses_left FROM enroll_tokens WHERE id = '$TOK_ID'")
[ "$left" = 0 ] || fail "token has $left uses left"
pass "a 24-use token spent from three nodes at once paid for exactly 24 certificates"

# ---- kill -9 a node under load ----
token default --uses 100000
pids=()
for i in 1 2 3; do
    for c in a b; do enroll_loop "$i" 25 "$T/load$i$c" & pids+=($!); done
done
for _ in $(seq 1 600); do
    [ "$(cat "$T"/load2? 2>/dev/null | wc -l)" -ge 5 ] && break
    sleep 0.1
done
node_kill 2
wait "${pids[@]}"
cat "$T"/load?? >"$T/received"
n=$(wc -l <"$T/received")
[ "$n" -gt 0 ] || fail "no enrollment succeeded"
[ "$(sort "$T/received" | uniq -d | wc -l)" = 0 ] || fail "a serial was handed out twice"
db_serials "$T/db"
missing=$(sort "$T/received" | comm -23 - "$T/db" | wc -l)
[ "$missing" = 0 ] || fail "$missing received certificates are not in the database"
pass "$n certificates received under load with node 2 killed: all in the database, none twice"
fp audit verify --dir "$CA" >"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "audit verify"; }
pass "the audit chain written by three nodes verifies"

# the survivors still serve
node_start 2
est_csr after "/CN=pg-after"
code=$(curl -sS --max-time 60 --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/after.b64" -o "$T/after.p7" \
    -w '%{http_code}' "https://${NHTTPS[2]}/.well-known/est/simpleenroll")
[ "$code" = 200 ] || fail "restarted node 2: HTTP $code"
for i in 1 2 3; do node_stop "$i"; done
pass "every node stops cleanly"

# ---- processes opening a new database at once ----
# an empty schema: every process finds no schema and migrates; the
# advisory lock lets one do it while the others wait and then find it done
PG_DB=$(store_db) pg_psql -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION fleetpki"
pids=()
for i in 1 2 3 4 5; do fp project list --dir "$CA" >"$T/plist$i" 2>&1 & pids+=($!); done
for i in 1 2 3 4 5; do
    wait "${pids[$((i - 1))]}" || { cat "$T/plist$i" >&2; fail "process $i could not open a new database"; }
    grep -q default "$T/plist$i" || fail "process $i: $(cat "$T/plist$i")"
done
v=$(PG_DB=$(store_db) pg_psql -c "SELECT count(*) FROM fleetpki_schema")
[ "$v" = 1 ] || fail "schema version table has $v rows"
pass "five processes opening an empty database at once: one migrated, all work"
