#!/usr/bin/env bash
# bench/run-pg.sh - fleetpki on PostgreSQL (issue 15), in one run:
#   1. EST keep-alive enrollments/s: one node on SQLite, one node on
#      PostgreSQL, two nodes on one PostgreSQL database (two loadgens at
#      once, half the clients each; the sum is reported);
#   2. OCSP from the pre-signed cache on a node of that cluster;
#   3. time from `fleetpki serve` start to the first answer, with 0 rows,
#      PG_START_MID rows and PG_ROWS certificates in the database
#      (bulk-loaded with COPY), to show it does not grow with the count;
#   4. `fleetpki crl` of PG_CRL_REVOKED revoked entries read from PostgreSQL.
# `openssl speed ecdsap256` runs first, in the same run.  PostgreSQL is a
# private 15 cluster (tests/pg_lib.sh) with fsync ON, so that its commits
# are as durable as SQLite's (synchronous = FULL).
#
#   bench/run-pg.sh
#   PG_ROWS=2000000 PG_START_MID=500000 EST_DURATION=5 bench/run-pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../tests/pg_lib.sh
source "$ROOT_DIR/tests/pg_lib.sh"
trap 'pg_cleanup; bench_cleanup' EXIT

DUR=${EST_DURATION:-10}
CONC=${EST_CONCURRENCY:-64}
CSRS=${EST_CSRS:-2000}
NROWS=${PG_ROWS:-20000000}
MID=${PG_START_MID:-1000000}
CRL_N=${PG_CRL_REVOKED:-1000000}
[ -x "$TIME_BIN" ] || { echo "bench: $TIME_BIN missing (Debian package 'time')" >&2; exit 1; }

PG_FSYNC=on pg_start || { echo "bench: cannot start PostgreSQL" >&2; exit 1; }
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') in $PG_DIR, port $PG_PORT, fsync on"
speed_p256

# pg_ca DIR NAME DB: a CA whose store is database DB, ports picked free,
# trust bundle and device identity in DIR (as est_bench_ca).
pg_ca() {
    local dir=$1 name=$2 url=$3
    if [ -n "$url" ]; then
        "$FLEETPKI" init --dir "$dir" --name "$name" --store-url "$url" >/dev/null
    else
        "$FLEETPKI" init --dir "$dir" --name "$name" >/dev/null
    fi
    cat "$dir/issuing.crt" "$dir/root.crt" >"$dir/trust.pem"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/dev.key" \
        -subj "/CN=bench-device" -out "$dir/dev.csr" 2>/dev/null
    "$FLEETPKI" issue --dir "$dir" --csr "$dir/dev.csr" --profile device --out "$dir/dev.crt" >/dev/null
}

# serve_on DIR HTTPS HTTP LOG: a node of the CA in DIR on the given ports.
serve_on() {
    "$FLEETPKI" serve --dir "$1" --https "127.0.0.1:$2" --http "127.0.0.1:$3" >"$4" 2>&1 &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    wait_port "$2" 60 || { tail -20 "$4" >&2; echo "bench: node did not start" >&2; exit 1; }
}

est_args() { # DIR PORT CONC PID
    echo --port "$2" --cacert "$1/trust.pem" --cert "$1/dev.crt" --key "$1/dev.key" \
        --concurrency "$3" --duration "$DUR" --warmup 1 --csr-count "$CSRS" --server-pid "$4"
}

# ---- 1. EST keep-alive ----
SQ=$W/sq
pg_ca "$SQ" "Bench SQLite" ""
P1=$(free_port) H1=$(free_port)
serve_on "$SQ" "$P1" "$H1" "$W/sq.log"
# shellcheck disable=SC2046
run_load "est-keepalive, 1 node, SQLite" est-keepalive $(est_args "$SQ" "$P1" "$CONC" "$SERVER_PID")
EST_SQ=$(result_field "$LAST_RESULT" rps)
stop_pid "$SERVER_PID"

PGCA=$W/pg
pg_ca "$PGCA" "Bench PG" "$(pg_new_db bench)"
P1=$(free_port) H1=$(free_port) P2=$(free_port) H2=$(free_port)
serve_on "$PGCA" "$P1" "$H1" "$W/pg1.log"
N1=$SERVER_PID
# shellcheck disable=SC2046
run_load "est-keepalive, 1 node, PostgreSQL" est-keepalive $(est_args "$PGCA" "$P1" "$CONC" "$N1")
EST_PG1=$(result_field "$LAST_RESULT" rps)
serve_on "$PGCA" "$P2" "$H2" "$W/pg2.log"
N2=$SERVER_PID
wait_quiet
log "est-keepalive, 2 nodes, PostgreSQL: two loadgens of $((CONC / 2)) clients"
# shellcheck disable=SC2046
"$LOADGEN" est-keepalive $(est_args "$PGCA" "$P2" $((CONC / 2)) "$N2") >"$W/lg2.out" 2>&1 &
lg2=$!
# shellcheck disable=SC2046
out1=$("$LOADGEN" est-keepalive $(est_args "$PGCA" "$P1" $((CONC / 2)) "$N1") 2>&1) || true
wait "$lg2" || true
r1=$(echo "$out1" | grep '^RESULT ' | tail -1)
r2=$(grep '^RESULT ' "$W/lg2.out" | tail -1)
EST_PG2=$(awk -v a="$(result_field "$r1" rps)" -v b="$(result_field "$r2" rps)" 'BEGIN{printf "%.0f", a + b}')
ROWS+=("| est-keepalive, 2 nodes, PostgreSQL (sum of node 1 + node 2) | $CONC | $EST_PG2 | $(result_field "$r1" p50) / $(result_field "$r2" p50) | $(result_field "$r1" p90) / $(result_field "$r2" p90) | $(result_field "$r1" p99) / $(result_field "$r2" p99) | | $(result_field "$r1" ok) + $(result_field "$r2" ok) / $(result_field "$r1" err) + $(result_field "$r2" err) | | | | | |")
log "2 nodes: $(result_field "$r1" rps) + $(result_field "$r2" rps) = $EST_PG2 enrollments/s"
PG_DB=bench pg_psql -c "SELECT count(*), count(DISTINCT serial) FROM certificates" >"$W/dup.txt"
log "certificates in the database, distinct serials: $(tr '|' ' ' <"$W/dup.txt")"
stop_pid "$N1"
stop_pid "$N2"

# ---- 3 (and 2, 4). bulk rows: start time, OCSP from cache, CRL ----
BULK=$W/bulk
pg_ca "$BULK" "Bench Bulk" "$(pg_new_db bulk)"
# COPY rows shaped like issued certificates (16-byte serials as
# fp_serial_hex prints them; a placeholder DER: the store keeps, it does
# not parse), made by awk on the client: no superuser needed
bulk_copy() { # FROM TO: rows with ids FROM..TO-1
    local from=$1 to=$2 now
    now=$(date +%s)
    awk -v a="$from" -v b="$to" -v now="$now" 'BEGIN {
        for (i = a; i < b; i++)
            printf "7%031X\tissuing\tdevice\tCN=bulk-%d\t\t%d\t%d\t%d\t0\t\\\\x3000\tdefault\n",
                   i, i, now - 3600, now + 31536000, now - 60
    }' | PG_DB=bulk pg_psql -c "\\copy certificates (serial, ca_id, profile, subject, sans, not_before, not_after, issued_at, status, der, project) FROM STDIN"
}
start_ms() { # DIR HTTPS HTTP: serve start to the first answer of /cacerts, in ms
    local t0 t1
    t0=$(date +%s%N)
    "$FLEETPKI" serve --dir "$1" --https "127.0.0.1:$2" --http "127.0.0.1:$3" >"$W/start.log" 2>&1 &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    for _ in $(seq 1 6000); do
        curl -sf --cacert "$1/trust.pem" -o /dev/null "https://127.0.0.1:$2/.well-known/est/cacerts" && break
        sleep 0.005
    done
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}
P1=$(free_port) H1=$(free_port)
STARTS=()
loaded=0
for target in 0 "$MID" "$NROWS"; do
    if [ "$target" -gt "$loaded" ]; then
        log "COPY certificates $loaded..$target"
        t0=$(date +%s)
        step=5000000
        while [ "$loaded" -lt "$target" ]; do
            next=$((loaded + step < target ? loaded + step : target))
            bulk_copy "$loaded" "$next"
            loaded=$next
        done
        PG_DB=bulk pg_psql -c "VACUUM ANALYZE certificates"
        log "loaded $loaded rows in $(($(date +%s) - t0)) s"
    fi
    wait_quiet
    ms=$(start_ms "$BULK" "$P1" "$H1")
    stop_pid "$SERVER_PID"
    ms2=$(start_ms "$BULK" "$P1" "$H1")
    stop_pid "$SERVER_PID"
    STARTS+=("| $loaded | $ms | $ms2 |")
    log "rows $loaded: start to first answer $ms ms, again $ms2 ms"
done
DB_GIB=$(PG_DB=bulk pg_psql -c "SELECT round(pg_database_size('bulk') / 1073741824.0, 2)")

# OCSP from the cache on a node of a two-node cluster on this database
serve_on "$BULK" "$P1" "$H1" "$W/b1.log"
B1=$SERVER_PID
P2=$(free_port) H2=$(free_port)
serve_on "$BULK" "$P2" "$H2" "$W/b2.log"
B2=$SERVER_PID
awk -v n="$loaded" 'BEGIN { srand(7); for (k = 0; k < 10000; k++) printf "7%031X\n", int(rand() * n) }' \
    >"$W/serials.txt"
run_load "ocsp-get from cache, node 2 of 2, $loaded rows" ocsp-get --port "$H2" \
    --issuer "$BULK/issuing.crt" --serials "$W/serials.txt" --ocsp-count 10000 --unknown-pct 0 \
    --concurrency "$CONC" --duration "$DUR" --warmup 4 --server-pid "$B2"
OCSP_RPS=$(result_field "$LAST_RESULT" rps)
stop_pid "$B1"
stop_pid "$B2"

# CRL of CRL_N revoked entries from PostgreSQL
log "revoking $CRL_N rows"
PG_DB=bulk pg_psql -c "UPDATE certificates SET status = 1, revoked_at = issued_at + 1,
    reason = (rid % 5)::int WHERE rid <= $CRL_N" -c "VACUUM ANALYZE certificates"
wait_quiet
"$TIME_BIN" -v "$FLEETPKI" crl --dir "$BULK" --out "$W/crl.der" >"$W/crl.out" 2>"$W/crl-time.txt"
openssl crl -inform DER -in "$W/crl.der" -CAfile "$BULK/issuing.crt" -noout 2>&1 | grep -q 'verify OK' ||
    { echo "bench: CRL signature does not verify" >&2; exit 1; }
entries=$(grep -o '[0-9]* entries' "$W/crl.out" | awk '{print $1}')
[ "$entries" = "$CRL_N" ] || { echo "bench: CRL lists $entries entries, expected $CRL_N" >&2; exit 1; }
CRL_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$W/crl-time.txt" |
           awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
CRL_RSS=$(awk -F': ' '/Maximum resident/ {printf "%.1f", $2/1024}' "$W/crl-time.txt")

mkdir -p "$RESULTS_DIR"
{
    echo "### fleetpki on PostgreSQL (\`bench/run-pg.sh\`)"
    echo
    machine_md
    echo "- PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), private cluster on the same machine, fsync on, synchronous_commit on"
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s"
    echo
    echo "EST keep-alive enrollments/s: SQLite 1 node **$EST_SQ**, PostgreSQL 1 node **$EST_PG1**, PostgreSQL 2 nodes **$EST_PG2**."
    echo
    echo "$ROWS_HEADER"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Start to first answer (\`serve\` spawned until GET /cacerts answers; database $DB_GIB GiB at the end):"
    echo
    echo "| certificates in the database | start (ms) | again (ms) |"
    echo "|---:|---:|---:|"
    printf '%s\n' "${STARTS[@]}"
    echo
    echo "OCSP from cache on node 2 of 2 ($loaded rows): **$OCSP_RPS** responses/s."
    echo "CRL of $CRL_N revoked entries generated from PostgreSQL: **${CRL_WALL} s** wall, peak RSS $CRL_RSS MiB."
} >"$RESULTS_DIR/pg.md"
cat "$RESULTS_DIR/pg.md"
