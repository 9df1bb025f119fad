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

# jiffies: the server's (utime + stime), and every core's busy time
srv_jiffies() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
busy_jiffies() { head -1 /proc/stat | awk '{print $2 + $3 + $4 + $7 + $8 + $9}'; }
cmp_row() { # LABEL CONFIRM
    local r s0 s1 b0 b1 t0 t1 hz all srv_us cli_us other
    wait_quiet
    log "$1: cmp_load --concurrency $CONC --duration $DUR --confirm $2"
    hz=$(getconf CLK_TCK)
    s0=$(srv_jiffies); b0=$(busy_jiffies); t0=$(date +%s.%N)
    r=$("$CMP_LOAD" --port "$HTTP_PORT" --ref "$TOK" --secret "$SEC" --concurrency "$CONC" \
        --duration "$DUR" --warmup 1 --confirm "$2" 2>&1 | grep '^RESULT ' | tail -1) || true
    s1=$(srv_jiffies); b1=$(busy_jiffies); t1=$(date +%s.%N)
    echo "$r" >&2
    all=$(result_field "$r" all)
    cli_us=$(result_field "$r" cli_us)
    srv_us=$(awk -v d=$((s1 - s0)) -v hz="$hz" -v n="${all:-0}" 'BEGIN { if (n > 0) printf "%.0f", d / hz * 1e6 / n; else print "-" }')
    # other jobs' CPU: all busy time minus the server's and the client's
    other=$(awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) -v hz="$hz" -v c="${cli_us:-0}" -v n="${all:-0}" \
        -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
        'BEGIN { o = (b - s) / hz - c * n / 1e6; if (o < 0) o = 0; printf "%.2f", o / t }')
    CMP_ROWS+=("| $1 | $CONC | $(result_field "$r" rps) | $(result_field "$r" p50) | $(result_field "$r" p90) | $(result_field "$r" p99) | $(result_field "$r" max) | $(result_field "$r" ok) / $(result_field "$r" err) | $srv_us | ${cli_us:-} | $other |")
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
    echo "| run | clients | enrollments/s | p50 ms | p90 ms | p99 ms | max ms | ok / err | server CPU per enrollment (us) | client CPU per enrollment (us) | other jobs' CPU (cores) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${CMP_ROWS[@]}"
    echo
    echo "EST keep-alive row (loadgen's columns):"
    echo
    echo "$ROWS_HEADER"
    printf '%s\n' "${ROWS[@]}"
} >"$RESULTS_DIR/cmp.md"
cat "$RESULTS_DIR/cmp.md"
