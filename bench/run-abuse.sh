#!/usr/bin/env bash
# bench/run-abuse.sh - how well a well-behaved client is served while the
# server is under connection abuse (README "Limits and abuse").
#
# `fleetpki serve` runs under `ulimit -n 1024` (soft and hard, as systemd
# gives services) with its default limits, restarted fresh for each
# scenario.  In each, after the abusers (bench/abuse.py flood, from
# 127.0.0.3 and up, 250 connections per address) have opened everything,
# a measuring client from 127.0.0.2 (bench/abuse.py client) makes
# ABUSE_REQUESTS sequential requests of each kind, paced over ABUSE_SECONDS:
# a new TCP + TLS connection + GET /.well-known/est/cacerts, and a plain
# GET /crl/issuing.crl.  Scenarios:
#   1 baseline   no abuse
#   2 idle       ABUSE_IDLE idle connections (more than the descriptor
#                limit), half on each listener, reopened as soon as the
#                server closes them
#   3 slowloris  ABUSE_SLOW connections trickling one byte per second:
#                a real ClientHello on the TLS listener, a request line
#                and header that never ends on the plain one; reopened
#   4 both       2 and 3 at once
# Per scenario: the client's p50/p99/max and errors, the server's CPU
# seconds (/proc/PID/stat, from the abusers' start to the client's end),
# its peak RSS (VmHWM; each scenario has its own server process) and
# how much its log grew; also the abusers' own CPU and churn.
#
#   bench/run-abuse.sh
#   ABUSE_IDLE=300 ABUSE_SLOW=200 ABUSE_REQUESTS=10 ABUSE_SECONDS=2 ABUSE_SCENARIOS="1 4" \
#       bench/run-abuse.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IDLE=${ABUSE_IDLE:-3000}
SLOW=${ABUSE_SLOW:-2000}
REQS=${ABUSE_REQUESTS:-200}
SECS=${ABUSE_SECONDS:-20}
NOFILE=${ABUSE_NOFILE:-1024}
# after the abusers have opened everything, before the client starts: long
# enough for the server to have closed (and the abusers reopened) at least
# one round of deadline-bound connections (handshake/header: 10 s)
RAMP=${ABUSE_RAMP:-5}
ABUSE_PY=$BENCH_DIR/abuse.py

speed_p256

est_bench_ca "$FLEETPKI" "Bench abuse"

# fleetpki serve with the descriptor limit of a systemd service; exec keeps
# the PID, so SERVER_PID is the server itself
cat >"$W/serve-limited.sh" <<EOF
#!/bin/sh
ulimit -n $NOFILE || exit 1
exec "$FLEETPKI" "\$@"
EOF
chmod +x "$W/serve-limited.sh"

clk_tck=$(getconf CLK_TCK)
# utime + stime of a process, in seconds
cpu_s() { awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"; }
hwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
busy_jiffies() { head -1 /proc/stat | awk '{ d = 0; for (i = 2; i <= NF; i++) if (i != 5 && i != 6) d += $i; print d }'; }
# machine-wide TcpExt counter (e.g. ListenOverflows: SYNs dropped because
# an accept queue was full; other jobs on the machine count too)
tcpext() { awk -v k="$1" '$1 == "TcpExt:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == k) c = i; h = 1 } else print $c }' /proc/net/netstat; }
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }

ROWS=()
NOTES=()
run_scenario() {
    local label=$1 idle=$2 slow=$3 logf="$W/serve-$1.log" fl_pid="" fl_out="" c0 c1 l0 l1 b0 b1 t0 t1 cl
    FLEETPKI_REAL=$FLEETPKI
    FLEETPKI=$W/serve-limited.sh start_server "$CA" "$logf" "$HTTPS_PORT"
    FLEETPKI=$FLEETPKI_REAL
    # the first client request warms nothing up in the server that later
    # ones would not; still, give the server a moment after start-up
    sleep 0.5
    rm -f "$W/stop" "$W/ready"
    c0=$(cpu_s "$SERVER_PID"); l0=$(stat -c %s "$logf"); b0=$(busy_jiffies); t0=$(date +%s.%N)
    local o0 o1
    o0=$(tcpext ListenOverflows)
    if [ $((idle + slow)) -gt 0 ]; then
        fl_out=$W/flood-$label.out
        python3 "$ABUSE_PY" flood --tls "127.0.0.1:$HTTPS_PORT" --plain "127.0.0.1:$HTTP_PORT" \
            --idle "$idle" --slow "$slow" --ready "$W/ready" --stop "$W/stop" \
            --max-seconds $((RAMP + 4 * SECS + 30)) >"$fl_out" 2>&1 &
        fl_pid=$!
        BENCH_PIDS+=("$fl_pid")
        for _ in $(seq 1 300); do [ -e "$W/ready" ] && break; sleep 0.1; done
        [ -e "$W/ready" ] || { cat "$fl_out" >&2; echo "bench: abusers did not get going" >&2; exit 1; }
        sleep "$RAMP"
    fi
    log "$label: client, $REQS x 2 requests over ${SECS}s (idle $idle, slow $slow)"
    cl=$(python3 "$ABUSE_PY" client --tls "127.0.0.1:$HTTPS_PORT" --plain "127.0.0.1:$HTTP_PORT" \
        --cafile "$W/trust.pem" --requests "$REQS" --seconds "$SECS" 2>&1 | tail -1) || true
    echo "$cl" >&2
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        NOTES+=("- $label: THE SERVER DIED during the scenario; log tail: $(tail -3 "$logf" | tr '\n' ' ')")
        ROWS+=("| $label | - | - | - | server died | | | | |")
        return 0
    fi
    c1=$(cpu_s "$SERVER_PID"); l1=$(stat -c %s "$logf"); b1=$(busy_jiffies); t1=$(date +%s.%N)
    o1=$(tcpext ListenOverflows)
    local hwm open_fds
    hwm=$(hwm_mb "$SERVER_PID")
    open_fds=$(ls "/proc/$SERVER_PID/fd" | wc -l)
    local fl_line="-" fl_cpu="-"
    if [ -n "$fl_pid" ]; then
        touch "$W/stop"
        wait "$fl_pid" || true
        fl_line=$(grep '^FLOOD ' "$fl_out" || echo "FLOOD failed: $(tail -1 "$fl_out")")
        echo "$fl_line" >&2
        fl_cpu=$(kv "$fl_line" cpu_s)
        NOTES+=("- $label abusers: ${fl_line#FLOOD }")
    fi
    stop_pid "$SERVER_PID"
    local busy
    busy=$(awk -v a="$b0" -v b="$b1" -v t0="$t0" -v t1="$t1" -v hz="$clk_tck" \
        'BEGIN { printf "%.2f", (b - a) / hz / (t1 - t0) }')
    local errs why
    errs="$(kv "$cl" err)"
    [ "$(kv "$cl" not_sent)" = 0 ] || errs="$errs (+$(kv "$cl" not_sent) not sent)"
    why=$(kv "$cl" why)
    [ -z "$why" ] || [ "$why" = "-" ] || NOTES+=("- $label client errors: $why")
    # the server's 10-s summaries: connections it closed to make room at the cap
    local evicted
    evicted=$( (grep -o 'closed [0-9]* idle ones' "$logf" || true) | awk '{ n += $2 } END { print n + 0 }')
    NOTES+=("- $label server: $open_fds descriptors open at the end; $evicted waiting connections closed at the cap (summed 10-s summaries); machine-wide TCP ListenOverflows +$((o1 - o0)) (SYNs dropped on a full accept queue; a client then retries after 1 s); log $(grep -c '' "$logf") lines, summaries like: $(grep -m1 -E 'refused|closed|deadline|accept' "$logf" | cut -c1-240 || true)")
    ROWS+=("| $label | $(kv "$cl" tls_p50) / $(kv "$cl" tls_p99) / $(kv "$cl" tls_max) | $(kv "$cl" plain_p50) / $(kv "$cl" plain_p99) / $(kv "$cl" plain_max) | $(kv "$cl" all_p50) / $(kv "$cl" all_p99) / $(kv "$cl" all_max) | ${errs:-?} | $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }') | $hwm | $((l1 - l0)) | $fl_cpu | $busy |")
}

for sc in ${ABUSE_SCENARIOS:-1 2 3 4}; do
    case $sc in
        1) run_scenario "1-baseline" 0 0 ;;
        2) run_scenario "2-idle" "$IDLE" 0 ;;
        3) run_scenario "3-slowloris" 0 "$SLOW" ;;
        4) run_scenario "4-both" "$IDLE" "$SLOW" ;;
        *) echo "bench: ABUSE_SCENARIOS: unknown scenario '$sc' (1 2 3 4)" >&2; exit 2 ;;
    esac
done

mkdir -p "$RESULTS_DIR"
{
    echo "### Serving under connection abuse ($REQS + $REQS client requests over ${SECS} s per scenario)"
    echo
    machine_md
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s"
    echo "- server: \`fleetpki serve ${BENCH_SERVER_ARGS:-}\` under \`ulimit -n $NOFILE\`, default limits (per-request log lines written to a file), a fresh process per scenario"
    echo "- client (from 127.0.0.2): one request per connection, sequential, alternating TLS (new TCP + TLS 1.3 handshake + GET cacerts) and plain http (GET /crl/issuing.crl); latency of successful requests, ms; starts ${RAMP} s after the abusers have opened all their connections"
    echo "- abusers (python3, from 127.0.0.3 up, 250 connections per address): idle $IDLE, slowloris $SLOW (1 byte/s: a ClientHello on TLS, an endless header on http), half on each listener, reopened as soon as the server closes them"
    echo "- server CPU and machine busy cores: from the abusers' start to the client's end; abuser CPU: the abusing process's own"
    echo
    echo "| scenario | TLS p50 / p99 / max ms | http p50 / p99 / max ms | both p50 / p99 / max ms | errors | server CPU s | server peak RSS MB | log bytes | abuser CPU s | machine busy cores |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
    echo
    printf '%s\n' "${NOTES[@]}"
} >"$RESULTS_DIR/abuse.md"
cat "$RESULTS_DIR/abuse.md"
