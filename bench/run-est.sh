#!/usr/bin/env bash
# bench/run-est.sh - EST enrollment throughput, latency and server memory.
#
# A fresh CA, `fleetpki serve` on free loopback ports, a device client
# certificate issued by the CA, then three bounded loadgen runs with
# pre-made P-256 CSRs:
#   (a) est-newconn       new TCP + full TLS handshake with the client
#                         certificate for every enrollment (no resumption)
#   (b) est-keepalive     many enrollments per connection
#   (c) est-serverkeygen  server-generated keys, keep-alive
# and two floors with no enrollment work at all (GET cacerts, served from
# memory), which bound what (a) and (b) could reach on this machine:
#   floor-newconn         TCP + TLS handshake with client certificate + GET
#   floor-keepalive       GET on kept-alive TLS connections
# `openssl speed ecdsap256` runs first in the same run; the crypto ceiling
# per mode is computed from it (see BENCHMARKS.md for the counting).
# Afterwards the store is checked to hold at least as many certificates as
# loadgen received (every answered enrollment was durably committed).
#
#   bench/run-est.sh
#   EST_DURATION=20 EST_CONCURRENCY=64 BENCH_PERF=1 bench/run-est.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DUR=${EST_DURATION:-10}
CONC=${EST_CONCURRENCY:-64}
CSRS=${EST_CSRS:-2000}

speed_p256

est_bench_ca "$FLEETPKI" "Bench EST"

ok_of() { local v; v=$(result_field "$LAST_RESULT" ok); echo "${v:-0}"; }
count_certs() { sqlite3 "$CA/fleetpki.db" 'SELECT count(*) FROM certificates'; }

start_server "$CA" "$W/serve.log" "$HTTPS_PORT"
log "server pid $SERVER_PID on https 127.0.0.1:$HTTPS_PORT"
common=(--port "$HTTPS_PORT" --cacert "$W/trust.pem" --cert "$W/dev.crt" --key "$W/dev.key"
        --concurrency "$CONC" --duration "$DUR" --warmup 1 --csr-count "$CSRS"
        --server-pid "$SERVER_PID")

total_ok=0
before=$(count_certs)
run_load "a-newconn" est-newconn "${common[@]}"
total_ok=$((total_ok + $(ok_of)))
run_load "b-keepalive" est-keepalive "${common[@]}"
total_ok=$((total_ok + $(ok_of)))
run_load "c-serverkeygen" est-serverkeygen "${common[@]}"
total_ok=$((total_ok + $(ok_of)))
# the floors: CPU per request with no enrollment (TLS, HTTP, routing, log)
us_of() { local v; v=$(result_field "$LAST_RESULT" "$1"); echo "${v:-0}"; }
run_load "floor-newconn" floor-newconn "${common[@]}"
FLOOR_A_SRV=$(us_of srv_us); FLOOR_A_CLI=$(us_of cli_us); FLOOR_A_RPS=$(us_of rps)
run_load "floor-keepalive" floor-keepalive "${common[@]}"
FLOOR_B_SRV=$(us_of srv_us); FLOOR_B_CLI=$(us_of cli_us); FLOOR_B_RPS=$(us_of rps)
# sizes while the server still runs (a clean exit checkpoints and removes the log)
WAL_MIB=$(awk -v b="$(stat -c %s "$CA/fleetpki.db-wal" 2>/dev/null || echo 0)" 'BEGIN { printf "%.1f", b / 1048576 }')
DB_MIB=$(awk -v b="$(stat -c %s "$CA/fleetpki.db")" 'BEGIN { printf "%.1f", b / 1048576 }')
stop_pid "$SERVER_PID"
after=$(count_certs)
stored=$((after - before))
log "certificates stored during the runs: $stored; measured answers: $total_ok"
durable="yes ($stored stored >= $total_ok answered in measured windows, warm-up included in stored)"
[ "$stored" -ge "$total_ok" ] || durable="NO: only $stored stored for $total_ok answered"

# Crypto ceilings on all cores from openssl speed (signatures S, verifies V
# per enrollment, client and server together, as counted in BENCHMARKS.md).
ceiling() { awk -v s="$SPEED_SIGN" -v v="$SPEED_VERIFY" -v ns="$1" -v nv="$2" -v c="$(nproc)" \
    'BEGIN { printf "%.0f", c / (ns / s + nv / v) }'; }
CEIL_A=$(ceiling 3 5)
CEIL_B=$(ceiling 1 1)
CEIL_C=$(ceiling 2 1)
# Floor + the enrollment's own ECDSA (1 signature + 1 verification): what
# a server doing no other work (no ASN.1, no storage) would reach.
floor_ceiling() { awk -v s="$SPEED_SIGN" -v v="$SPEED_VERIFY" -v fs="$1" -v fc="$2" -v c="$(nproc)" \
    'BEGIN { us = fs + fc + 1e6 / s + 1e6 / v; if (fs + fc <= 0) { print "n/a"; exit }
             printf "%.0f", c * 1e6 / us }'; }
FCEIL_A=$(floor_ceiling "$FLOOR_A_SRV" "$FLOOR_A_CLI")
FCEIL_B=$(floor_ceiling "$FLOOR_B_SRV" "$FLOOR_B_CLI")

mkdir -p "$RESULTS_DIR"
{
    echo "### EST enrollment ($CONC clients, ${DUR} s per run, 1 s warm-up)"
    echo
    machine_md
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s"
    echo "- crypto-only ceiling on $(nproc) cores: (a) ${CEIL_A}/s (3 sign + 5 verify), (b) ${CEIL_B}/s (1 + 1), (c) ${CEIL_C}/s (1 sign + 1 keygen + 1 verify)"
    echo "- floors (no enrollment work): new connection ${FLOOR_A_RPS}/s (server ${FLOOR_A_SRV} us + loadgen ${FLOOR_A_CLI} us CPU each); keep-alive ${FLOOR_B_RPS}/s (server ${FLOOR_B_SRV} us + loadgen ${FLOOR_B_CLI} us)"
    echo "- ceiling = floor CPU + the enrollment's 1 sign + 1 verify, nothing else: (a) ${FCEIL_A}/s, (b) ${FCEIL_B}/s"
    echo "- durability check: $durable"
    echo "- store at the end of the runs (server still up): database ${DB_MIB} MiB, write-ahead log ${WAL_MIB} MiB"
    echo "- server: \`fleetpki serve ${BENCH_SERVER_ARGS:-}\` (per-request log lines ${BENCH_SERVER_ARGS:+as per these flags}${BENCH_SERVER_ARGS:-on, written to a file}); client certificate auth; TLS 1.3; $CSRS distinct pre-made P-256 CSRs"
    echo
    echo "$ROWS_HEADER"
    printf '%s\n' "${ROWS[@]}"
} >"$RESULTS_DIR/est.md"
cat "$RESULTS_DIR/est.md"
