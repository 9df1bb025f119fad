#!/usr/bin/env bash
# PostgreSQL going away under load (issue 15):
#  - restart: while the database is down a node answers 503 with
#    Retry-After on EST and the admin API (never 500, never 401 for a
#    valid credential); it reconnects by
#    itself when the database is back; every certificate a client received,
#    before, during or after, is in the database; the audit chain verifies;
#  - failover: a primary and a hot standby with synchronous replication,
#    both started here; the node's [store] url names both hosts with
#    target_session_attrs=read-write; the primary dies (immediate stop)
#    under load, the standby is promoted, the node follows it by itself and
#    every certificate a client received is on the new primary.
# No timing is asserted: only outcomes (generous deadlines against hangs).
export FP_TEST_STORE=pg
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/pg_nodes_lib.sh"
. "$(dirname "$0")/api_lib.sh"

# load_start PREFIX: two clients enrolling on node 1 in a loop until
# load_stop; they record what they received in $T/PREFIX[ab].
load_start() {
    rm -f "$T/stop"
    LOAD_PIDS=()
    for c in a b; do
        (while [ ! -e "$T/stop" ]; do enroll_loop 1 1 "$T/$1$c"; done) &
        LOAD_PIDS+=($!)
        fp_track $!
    done
}
load_stop() { touch "$T/stop"; wait "${LOAD_PIDS[@]}"; }
received() { cat "$T/$1"? 2>/dev/null | wc -l; return 0; }
wait_received() { # PREFIX N: until the clients got N more certificates
    local before
    before=$(received "$1")
    for _ in $(seq 1 600); do
        [ "$(received "$1")" -ge $((before + $2)) ] && return 0
        sleep 0.1
    done
    fail "the clients got no certificate for 60 s"
}

fp_new_ca "$CA" >/dev/null
node_start 1
token default --uses 1000000
est_csr lc "/CN=pg-restart"
ADMIN=$(new_key --admin)

# ---- restart PostgreSQL mid-load ----
load_start r
wait_received r 5
pg_stop fast
code=$(curl -sS --max-time 60 --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/lc.b64" -D "$T/down.hdr" \
    -o "$T/down.body" -w '%{http_code}' "https://${NHTTPS[1]}/.well-known/est/simpleenroll")
[ "$code" = 503 ] || fail "enrollment while the database is down: HTTP $code: $(cat "$T/down.body")"
grep -qi '^Retry-After: [0-9]' "$T/down.hdr" || fail "503 without Retry-After"
pass "database down: EST answers 503 with Retry-After"
HTTPS=${NHTTPS[1]}
expect_api 503 "database down: the admin API answers 503" GET /projects "$ADMIN"
grep -qi '^Retry-After: [0-9]' "$T/r.hdr" || fail "API 503 without Retry-After"
pg_restart
wait_received r 5
load_stop
grep -q '^500$' "$T"/r?.codes && fail "a client got 500 during the restart"
db_serials "$T/db"
n=$(cat "$T"/r? | wc -l)
missing=$(cat "$T"/r? | sort | comm -23 - "$T/db" | wc -l)
[ "$missing" = 0 ] || fail "$missing of $n received certificates are not in the database"
[ "$(cat "$T"/r? | sort | uniq -d | wc -l)" = 0 ] || fail "a serial was handed out twice"
pass "reconnected by itself; all $n received certificates are in the database"
fp audit verify --dir "$CA" >"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "audit verify"; }
pass "the audit chain verifies after the restart"
node_stop 1

# ---- primary + synchronous hot standby, promotion ----
PRIMARY_DIR=$PG_DIR PRIMARY_PORT=$PG_PORT
SB=$(mktemp -d "${TMPDIR:-/tmp}/fppg.XXXXXX")
PG_DIRS+=("$SB")
SB_PORT=$(pg_free_port)
[ "$(id -u)" = 0 ] && chown "$PG_USER" "$SB"
chmod 700 "$SB"
pg_as_owner "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$SB/data" \
    -R -X stream >"$SB/basebackup.log" 2>&1 || { cat "$SB/basebackup.log" >&2; fail "pg_basebackup"; }
cat >>"$SB/data/postgresql.conf" <<EOF
port = $SB_PORT
unix_socket_directories = '$SB'
EOF
# '*': the one standby there is (pg_basebackup -R names it walreceiver)
pg_psql -c "ALTER SYSTEM SET synchronous_standby_names = '*'" -c "SELECT pg_reload_conf()" >/dev/null
pg_as_owner "$PG_BIN/pg_ctl" -D "$SB/data" -l "$SB/server.log" -w -t 60 start >/dev/null ||
    { cat "$SB/server.log" >&2; fail "standby did not start"; }
for _ in $(seq 1 300); do
    [ "$(pg_psql -c "SELECT sync_state FROM pg_stat_replication")" = sync ] && break
    sleep 0.1
done
[ "$(pg_psql -c "SELECT sync_state FROM pg_stat_replication")" = sync ] ||
    fail "the standby is not a synchronous standby"
pass "primary and synchronous hot standby running"

# the node now names both hosts; only the read-write one is used
DB=$(store_db)
sed -i "s|^url = .*|url = host=127.0.0.1,127.0.0.1 port=$PRIMARY_PORT,$SB_PORT dbname=$DB user=fleetpki target_session_attrs=read-write connect_timeout=5|" \
    "$CA/fleetpki.conf"
node_start 1
load_start f
wait_received f 5
pg_stop immediate # the primary dies
pg_as_owner "$PG_BIN/pg_ctl" -D "$SB/data" -w -t 60 promote >/dev/null || fail "promote"
pass "primary killed, standby promoted"
wait_received f 5
load_stop
grep -q '^500$' "$T"/f?.codes && fail "a client got 500 during the failover"
PG_DIR=$SB PG_PORT=$SB_PORT
db_serials "$T/db2"
n=$(cat "$T"/f? | wc -l)
missing=$(cat "$T"/f? "$T"/r? | sort | comm -23 - "$T/db2" | wc -l)
[ "$missing" = 0 ] || fail "$missing received certificates are not on the promoted standby"
pass "the node followed the promotion; all $n received certificates are on the new primary"
fp audit verify --dir "$CA" >"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "audit verify"; }
pass "the audit chain verifies on the new primary"
node_stop 1
