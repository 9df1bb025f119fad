#!/usr/bin/env bash
# bench/run-cmp.sh - CMP ir enrollments per second, beside the EST
# keep-alive figure and `openssl speed` of the same run, same server.
#
# A fresh CA and `fleetpki serve`; then, one after the other:
#   est-keepalive      loadgen's EST simpleenroll on kept-alive TLS
#                      connections (as bench/run-est.sh (b))
#   cmp-ir             cmp_load: MAC-protected ir with implicitConfirm,
#                      one round trip, OpenSSL's CMP client (a new TCP
#                      connection per message, plain HTTP)
#   cmp-ir-confirm     the same with certConf/pkiConf (two round trips)
# Every CMP enrollment is committed to the store before its ip is sent
# (the issuance path's synchronous commit on the worker); the store is
# checked to hold at least as many certificates as were answered.
#
#   bench/run-cmp.sh
#   CMP_DURATION=20 CMP_CONCURRENCY=32 bench/run-cmp.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DUR=${CMP_DURATION:-10}
CONC=${CMP_CONCURRENCY:-16}
CMP_LOAD=${CMP_LOAD:-$BUILD_DIR/bench/cmp_load}
[ -x "$CMP_LOAD" ] || { echo "bench: $CMP_LOAD not built" >&2; exit 1; }

speed_p256
est_bench_ca "$FLEETPKI" "Bench CMP"
out=$("$FLEETPKI" token create --dir "$CA" --label default --uses 1000000)
TOK=$(printf '%s\n' "$out" | sed -n 's/^id: *//p')
SEC=$("$FLEETPKI" cmp-secret --dir "$CA" --label default "$TOK")
count_certs() { sqlite3 "$CA/fleetpki.db" 'SELECT count(*) FROM certificates'; }

start_server "$CA" "$W/serve.log" "$HTTPS_PORT"
log "server pid $SERVER_PID on https 127.0.0.1:$HTTPS_PORT, http 127.0.0.1:$HTTP_PORT"
before=$(count_certs)
run_load "est-keepalive" est-keepalive --port "$HTTPS_PORT" --cacert "$W/trust.pem" \
    --cert "$W/dev.crt" --key "$W/dev.key" --concurrency 64 --duration "$DUR" --warmup 1 \
    --csr-count 2000 --server-pid "$SERVER_PID"
EST_RPS=$(result_field "$LAST_RESULT" rps)
EST_OK=$(result_field "$LAST_RESULT" ok)

cmp_row() { # LABEL CONFIRM
    local r
    wait_quiet
    log "$1: cmp_load --concurrency $CONC --duration $DUR --confirm $2"
    r=$("$CMP_LOAD" --port "$HTTP_PORT" --ref "$TOK" --secret "$SEC" --concurrency "$CONC" \
        --duration "$DUR" --warmup 1 --confirm "$2" 2>&1 | grep '^RESULT ' | tail -1) || true
    echo "$r" >&2
    CMP_ROWS+=("| $1 | $CONC | $(result_field "$r" rps) | $(result_field "$r" p50) | $(result_field "$r" p90) | $(result_field "$r" p99) | $(result_field "$r" max) | $(result_field "$r" ok) / $(result_field "$r" err) |")
    LAST_CMP=$r
}
CMP_ROWS=()
cmp_row cmp-ir 0
CMP_RPS=$(result_field "$LAST_CMP" rps)
CMP_OK=$(result_field "$LAST_CMP" ok)
cmp_row cmp-ir-confirm 1
CMP2_OK=$(result_field "$LAST_CMP" ok)
stop_pid "$SERVER_PID"
stored=$(( $(count_certs) - before ))
answered=$(( ${EST_OK:-0} + ${CMP_OK:-0} + ${CMP2_OK:-0} ))
durable="yes ($stored stored >= $answered answered in measured windows)"
[ "$stored" -ge "$answered" ] || durable="NO: only $stored stored for $answered answered"

mkdir -p "$RESULTS_DIR"
{
    echo "### CMP ir enrollment ($CONC clients, ${DUR} s per run, 1 s warm-up)"
    echo
    machine_md
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s"
    echo "- same server, same run: EST keep-alive (64 clients) ${EST_RPS}/s; CMP ir (implicitConfirm) ${CMP_RPS}/s"
    echo "- per CMP enrollment: server 1 ECDSA sign (certificate) + 2 PBM MACs (verify, answer); client 2 PBM MACs; no ECDSA on the client (POPO signature: 1 sign client, 1 verify server)"
    echo "- durability check: $durable"
    echo
    echo "| run | clients | enrollments/s | p50 ms | p90 ms | p99 ms | max ms | ok / err |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${CMP_ROWS[@]}"
    echo
    echo "EST keep-alive row (loadgen's columns):"
    echo
    echo "$ROWS_HEADER"
    printf '%s\n' "${ROWS[@]}"
} >"$RESULTS_DIR/cmp.md"
cat "$RESULTS_DIR/cmp.md"
