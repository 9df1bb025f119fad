#!/usr/bin/env bash
# bench/run-signer.sh - the separate signer process against in-process
# signing (issue 16), in the same run, on the same CA:
#   est-keepalive   EST enrollments on kept-alive TLS connections (client
#                   certificate auth, pre-made P-256 CSRs): one CA signature
#                   each, through the signer's socketpair when separated
#   ocsp-post       OCSP with the response cache off (ocsp_cache = no):
#                   every answer freshly signed by the OCSP key
# Modes alternate (separate, inprocess, separate, inprocess) so drift in the
# shared machine's load hits both; the best of each mode's two rounds is
# compared.  `openssl speed ecdsap256` runs first: the signing ceiling.
#
# The cost is counted on both sides: loadgen measures the network process
# (--server-pid); the signer process's CPU over the same measured window is
# sampled here from /proc, added to "server CPU per answer" and taken out
# of loadgen's "other CPU" (which would otherwise count it as another job).
# The floor this design cannot beat is measured in the same run:
# bench/ipc_pingpong (a request-sized frame and a signature-sized answer
# between two processes over a socketpair), and from it the ratio's ceiling
# on this machine: in-process CPU per answer / (that + IPC CPU per round
# trip), what separate/in-process would be if the only extra work were the
# round trip and the machine were CPU-bound.
#
# With the separate signer the workers sign asynchronously ([server]
# signer_async, default 16 signatures out per worker; docs/keys.md): set
# SIGNER_ASYNC=N to run the separate rounds with another value (0: every
# signature waits, as before wt-async).  FLEETPKI_SIGNER_THREADS=N and
# FLEETPKI_SIGNER_SPIN_US=N pass through to the server (signer threads;
# polling before sleeping).
#
#   bench/run-signer.sh
#   SIGNER_DURATION=20 SIGNER_CONCURRENCY=32 bench/run-signer.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DUR=${SIGNER_DURATION:-10}
CONC=${SIGNER_CONCURRENCY:-32}
CSRS=${SIGNER_CSRS:-2000}
N=${SIGNER_OCSP_CERTS:-20000}

speed_p256
PINGPONG=${PINGPONG:-$BUILD_DIR/bench/ipc_pingpong}
wait_quiet
PP=$("$PINGPONG" 3 | grep '^RESULT ')
PP_RTS=$(result_field "$PP" rt_per_s)
PP_US=$(result_field "$PP" us_per_rt)
PP_CPU=$(result_field "$PP" cpu_us_per_rt)
log "ipc ping-pong (socketpair): ${PP_RTS} round trips/s, ${PP_US} us each, ${PP_CPU} us CPU each"
# and with as many pairs at once as separate mode has workers (2 x cores):
# then round trips are real switches between processes on busy cores
PPN=$((2 * $(nproc)))
wait_quiet
PPIDS=()
for i in $(seq 1 "$PPN"); do "$PINGPONG" 3 >"$W/pp.$i" & PPIDS+=($!); done
wait "${PPIDS[@]}"
PPN_RTS=$(cat "$W"/pp.* | grep '^RESULT ' | tr ' ' '\n' | awk -F= '$1=="rt_per_s"{s+=$2} END{printf "%.0f", s}')
PPN_CPU=$(cat "$W"/pp.* | grep '^RESULT ' | tr ' ' '\n' | awk -F= '$1=="cpu_us_per_rt"{s+=$2; n++} END{printf "%.2f", s/n}')
log "ipc ping-pong, $PPN pairs at once: ${PPN_RTS} round trips/s in all, ${PPN_CPU} us CPU each"

# signer_cpu_sampler PID WARMUP DUR OUTFILE: the signer's CPU seconds over
# loadgen's measured window (after its warm-up), written to OUTFILE
proc_cpu_s() {
    awk '{ sub(/^.*\) /, ""); print ($12 + $13) / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# loadgen is started through a wrapper that leaves a mark, so the window
# starts with loadgen and not before run_load's wait for a quiet machine
REAL_LOADGEN=$LOADGEN
LOADGEN=$W/loadgen-mark
printf '#!/bin/sh\ntouch "%s/lg-started"\nexec "%s" "$@"\n' "$W" "$REAL_LOADGEN" >"$LOADGEN"
chmod +x "$LOADGEN"
signer_cpu_sampler() {
    local pid=$1 warm=$2 dur=$3 out=$4 a b
    for _ in $(seq 1 3000); do [ -e "$W/lg-started" ] && break; sleep 0.1; done
    sleep "$warm"
    a=$(proc_cpu_s "$pid")
    sleep "$dur"
    b=$(proc_cpu_s "$pid")
    awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f\n", b - a}' >"$out"
}
# With BENCH_PERF=1 the signer process is profiled too (run_load profiles
# the network process): perf-signer-LABEL.txt beside perf-LABEL.txt
perf_signer() {
    local pid=$1 label=$2
    [ "${BENCH_PERF:-0}" = 1 ] && [ -n "$pid" ] && command -v perf >/dev/null || return 0
    for _ in $(seq 1 3000); do [ -e "$W/lg-started" ] && break; sleep 0.1; done
    perf record --call-graph dwarf,16384 -F 99 -p "$pid" -o "$W/perf-signer.data" \
        -- sleep "$((DUR + 1))" >/dev/null 2>&1
    mkdir -p "$RESULTS_DIR"
    {
        echo "# signer process, inclusive (children) by symbol, >= 2%"
        perf report -i "$W/perf-signer.data" --stdio --children --sort symbol -g none \
            --percent-limit 2 2>/dev/null | grep -E '^ +[0-9]' | grep -v ' 0x0000' | head -80
    } >"$RESULTS_DIR/perf-signer-${label// /_}.txt" || true
    rm -f "$W/perf-signer.data"
}
# extra columns for the row run_load just added: signer cores, total
# server CPU per answer (network + signer), other CPU without the signer
SROWS=()
note_signer() {
    local mode=$1 spid=$2 f=$3 r=$LAST_RESULT sc=0 rps srv other tot
    rps=$(result_field "$r" rps); srv=$(result_field "$r" srv_us); other=$(result_field "$r" other_cpu)
    [ "$mode" = separate ] && [ -s "$f" ] && sc=$(awk -v c="$(cat "$f")" -v d="$DUR" 'BEGIN{printf "%.2f", c / d}')
    tot=$(awk -v s="${srv:-0}" -v c="$sc" -v r="${rps:-0}" 'BEGIN{ if (r > 0) printf "%.0f", s + c * 1e6 / r; else print 0 }')
    other=$(awk -v o="${other:-0}" -v c="$sc" 'BEGIN{printf "%.2f", o - c}')
    SROWS+=("${ROWS[-1]% |*} | $sc | $tot | $other |")
    LAST_TOTAL_US=$tot
    LAST_NET_US=${srv:-0}
    LAST_SIGNER_US=$(awk -v c="$sc" -v r="${rps:-0}" 'BEGIN{ if (r > 0) printf "%.0f", c * 1e6 / r; else print 0 }')
    # the busiest other load seen during any run (the machine is shared)
    MAX_OTHER=$(awk -v a="${MAX_OTHER:-0}" -v b="$other" 'BEGIN{print (b > a ? b : a)}')
}
est_bench_ca "$FLEETPKI" "Bench signer"
"$POPULATE" --dir "$CA" --count "$N" --revoked-pct 10 --serials-out "$W/serials.txt" >/dev/null
conf_set "$CA/fleetpki.conf" server ocsp_cache no
[ -n "${SIGNER_ASYNC:-}" ] && conf_set "$CA/fleetpki.conf" server signer_async "$SIGNER_ASYNC"

declare -A BEST_EST BEST_OCSP US_EST US_OCSP NET_EST NET_OCSP SIG_EST SIG_OCSP
for round in 1 2; do
    for mode in separate inprocess; do
        conf_set "$CA/fleetpki.conf" server signer "$mode"
        start_server "$CA" "$W/serve-$mode-$round.log" "$HTTPS_PORT"
        wait_port "$HTTP_PORT" 30
        # the signer runs under its supervisor (the server's child)
        SUPPID=$(pgrep -P "$SERVER_PID" -x fleetpki-sigsup | head -1 || true)
        SPID=""; [ -n "$SUPPID" ] && SPID=$(pgrep -P "$SUPPID" -x fleetpki-signer | head -1 || true)
        log "round $round, signer = $mode: server $SERVER_PID, signer process ${SPID:-none}"
        rm -f "$W/lg-started"
        SAMP=""; if [ -n "$SPID" ]; then signer_cpu_sampler "$SPID" 1 "$DUR" "$W/scpu" & SAMP=$!; fi
        PSAMP=""; if [ -n "$SPID" ] && [ "${BENCH_PERF:-0}" = 1 ]; then perf_signer "$SPID" "est-$mode-$round" & PSAMP=$!; fi
        run_load "est-keepalive signer=$mode #$round" est-keepalive --port "$HTTPS_PORT" \
            --cacert "$W/trust.pem" --cert "$W/dev.crt" --key "$W/dev.key" \
            --concurrency "$CONC" --duration "$DUR" --warmup 1 --csr-count "$CSRS" \
            --server-pid "$SERVER_PID"
        [ -n "$SAMP" ] && wait "$SAMP"; [ -n "$PSAMP" ] && wait "$PSAMP"; note_signer "$mode" "$SPID" "$W/scpu"; rm -f "$W/scpu"
        r=$(result_field "$LAST_RESULT" rps)
        if awk -v a="${r:-0}" -v b="${BEST_EST[$mode]:-0}" 'BEGIN{exit !(a > b)}'; then
            BEST_EST[$mode]=$r; US_EST[$mode]=$LAST_TOTAL_US
            NET_EST[$mode]=$LAST_NET_US; SIG_EST[$mode]=$LAST_SIGNER_US
        fi
        rm -f "$W/lg-started"
        SAMP=""; if [ -n "$SPID" ]; then signer_cpu_sampler "$SPID" 1 "$DUR" "$W/scpu" & SAMP=$!; fi
        PSAMP=""; if [ -n "$SPID" ] && [ "${BENCH_PERF:-0}" = 1 ]; then perf_signer "$SPID" "ocsp-$mode-$round" & PSAMP=$!; fi
        run_load "ocsp-post fresh signer=$mode #$round" ocsp-post --port "$HTTP_PORT" \
            --issuer "$CA/issuing.crt" --serials "$W/serials.txt" --ocsp-count 5000 \
            --unknown-pct 0 --concurrency "$CONC" --duration "$DUR" --warmup 1 \
            --server-pid "$SERVER_PID"
        [ -n "$SAMP" ] && wait "$SAMP"; [ -n "$PSAMP" ] && wait "$PSAMP"; note_signer "$mode" "$SPID" "$W/scpu"; rm -f "$W/scpu"
        r=$(result_field "$LAST_RESULT" rps)
        if awk -v a="${r:-0}" -v b="${BEST_OCSP[$mode]:-0}" 'BEGIN{exit !(a > b)}'; then
            BEST_OCSP[$mode]=$r; US_OCSP[$mode]=$LAST_TOTAL_US
            NET_OCSP[$mode]=$LAST_NET_US; SIG_OCSP[$mode]=$LAST_SIGNER_US
        fi
        stop_pid "$SERVER_PID"
    done
done

# per-answer overhead of separation (total server CPU, best runs) and the
# ratio's ceiling from the measured IPC floor
over() { awk -v s="${1:-0}" -v i="${2:-0}" 'BEGIN{printf "%.0f", s - i}'; }
ceil() { awk -v i="${1:-0}" -v p="${2:-$PP_CPU}" 'BEGIN{ if (i > 0) printf "%.0f%%", 100 * i / (i + p); else print "n/a" }'; }
cpuratio() { awk -v s="${1:-0}" -v i="${2:-0}" 'BEGIN{ if (s > 0) printf "%.0f%%", 100 * i / s; else print "n/a" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
mkdir -p "$RESULTS_DIR"
{
    echo "### Separate signer vs in-process signing ($CONC clients, ${DUR} s per run, 1 s warm-up)"
    echo
    machine_md
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s"
    echo "  (signing ceiling on $(nproc) cores: $(awk -v s="$SPEED_SIGN" -v c="$(nproc)" 'BEGIN{printf "%.0f", s*c}')/s)"
    echo "- separate mode: signer_async ${SIGNER_ASYNC:-16 (default)} per worker, signer threads" \
         "${FLEETPKI_SIGNER_THREADS:-default (as many as cores)}, spin ${FLEETPKI_SIGNER_SPIN_US:-0} us"
    echo "- EST keep-alive, best of 2: separate ${BEST_EST[separate]:-0}/s, in-process ${BEST_EST[inprocess]:-0}/s:" \
         "**$(pct "${BEST_EST[separate]:-0}" "${BEST_EST[inprocess]:-0}")**"
    echo "- OCSP fresh-signed (cache off), best of 2: separate ${BEST_OCSP[separate]:-0}/s, in-process ${BEST_OCSP[inprocess]:-0}/s:" \
         "**$(pct "${BEST_OCSP[separate]:-0}" "${BEST_OCSP[inprocess]:-0}")**"
    echo "- IPC floor (bench/ipc_pingpong, same run): ${PP_RTS} round trips/s on one socketpair," \
         "${PP_US} us per round trip, ${PP_CPU} us CPU per round trip (both processes);" \
         "$PPN pairs at once: ${PPN_RTS} round trips/s in all, ${PPN_CPU} us CPU per round trip"
    echo "- server CPU per answer (network + signer process), best runs: EST separate ${US_EST[separate]:-0} us," \
         "in-process ${US_EST[inprocess]:-0} us: separation costs $(over "${US_EST[separate]}" "${US_EST[inprocess]}") us" \
         "per answer (floor ${PP_CPU} us, ${PPN_CPU} us with $PPN pairs); CPU-bound ratio $(cpuratio "${US_EST[separate]}" "${US_EST[inprocess]}")," \
         "ceiling $(ceil "${US_EST[inprocess]}") ($(ceil "${US_EST[inprocess]}" "$PPN_CPU") with $PPN pairs)"
    echo "- OCSP: separate ${US_OCSP[separate]:-0} us, in-process ${US_OCSP[inprocess]:-0} us:" \
         "separation costs $(over "${US_OCSP[separate]}" "${US_OCSP[inprocess]}") us per answer (floor ${PP_CPU} us, ${PPN_CPU} us with $PPN pairs);" \
         "CPU-bound ratio $(cpuratio "${US_OCSP[separate]}" "${US_OCSP[inprocess]}"), ceiling $(ceil "${US_OCSP[inprocess]}") ($(ceil "${US_OCSP[inprocess]}" "$PPN_CPU") with $PPN pairs)"
    # what the measured extra CPU is made of, and what it allows: the
    # ceiling from the IPC floor alone assumes a round trip is the only
    # extra work; the measured CPU ratio is what a CPU-bound machine would
    # give with the extra work as it really is
    for l in EST OCSP; do
        if [ $l = EST ]; then ns=${NET_EST[separate]:-0}; ni=${NET_EST[inprocess]:-0}; sg=${SIG_EST[separate]:-0}; ts=${US_EST[separate]:-0}; ti=${US_EST[inprocess]:-0}
        else ns=${NET_OCSP[separate]:-0}; ni=${NET_OCSP[inprocess]:-0}; sg=${SIG_OCSP[separate]:-0}; ts=${US_OCSP[separate]:-0}; ti=${US_OCSP[inprocess]:-0}; fi
        echo "- $l, where the extra CPU per answer goes (best runs): network process $ns us separate vs $ni us in-process" \
             "($(over "$ns" "$ni") us; it no longer signs, so this is the round trip, the remote-key provider, sleeping" \
             "for the answer and whatever else changed, e.g. smaller group commits at a lower rate)," \
             "plus the signer process's $sg us (the signature and its half of the round trip; one ECDSA P-256 signature" \
             "alone costs $(awk -v s="$SPEED_SIGN" 'BEGIN{ if (s > 0) printf "%.0f", 1e6 / s; else print "?" }') us here)." \
             "Ceiling if only the IPC floor were added: $(ceil "$ti"); measured CPU ratio (the ceiling on a CPU-bound" \
             "machine with the costs as measured): $(cpuratio "$ts" "$ti")"
    done
    if awk -v o="${MAX_OTHER:-0}" 'BEGIN{exit !(o >= 0.25)}'; then
        echo "- **other jobs used up to ${MAX_OTHER} cores of $(nproc) during these runs** (last column): the rates" \
             "compare two modes on a shared, oversubscribed machine, where a worker waiting for the signer also waits" \
             "for the scheduler; the CPU per answer is the figure that survives the sharing"
    fi
    echo
    echo "${ROWS_HEADER%%$'\n'*} signer CPU (cores) | server + signer CPU per answer (us) | other CPU without the signer (cores) |"
    echo "$(echo "$ROWS_HEADER" | tail -1)---:|---:|---:|"
    printf '%s\n' "${SROWS[@]}"
} >"$RESULTS_DIR/signer.md"
cat "$RESULTS_DIR/signer.md"
