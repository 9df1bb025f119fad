#!/usr/bin/env bash
# bench/ab-est.sh - compare two server builds on the same CA, interleaved.
#
# This machine's speed drifts by 20-30% from one minute to the next, so a
# single run of each build cannot tell changes of that size apart.  Here
# the two builds take turns (A B, B A, A B, ...) on one fresh CA, one
# device certificate and one loadgen; each run's figures are printed and
# the medians compared at the end.
#
#   bench/ab-est.sh BUILD_A/fleetpki BUILD_B/fleetpki [MODE] [ROUNDS]
#   MODE: est-keepalive (default), est-newconn, est-serverkeygen,
#         floor-keepalive, floor-newconn; ROUNDS: runs per build (default 3)
#   AB_DURATION (default 8 s), AB_CONCURRENCY (64); AB_ARGS_A / AB_ARGS_B:
#   extra `fleetpki serve` flags per side (e.g. the same binary twice with
#   AB_ARGS_A="--threads 2" AB_ARGS_B="--threads 3")
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

A=${1:?usage: bench/ab-est.sh A/fleetpki B/fleetpki [MODE] [ROUNDS]}
B=${2:?usage: bench/ab-est.sh A/fleetpki B/fleetpki [MODE] [ROUNDS]}
MODE=${3:-est-keepalive}
ROUNDS=${4:-3}
DUR=${AB_DURATION:-8}
CONC=${AB_CONCURRENCY:-64}
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "ab-est: $bin is not executable" >&2; exit 2; }; done

est_bench_ca "$A" "Bench A/B"
# one copy of the CA per build: the same keys and device certificate, but
# each build keeps its own store (a newer build migrates the store it
# opens, which an older one then refuses)
cp -a "$CA" "$W/ca-A"
cp -a "$CA" "$W/ca-B"

# one run of build $2 (label $1) with serve flags $3: prints
# "label rps p99 srv_us other_cpu"
one_run() {
    local label=$1 bin=$2 r
    FLEETPKI=$bin BENCH_SERVER_ARGS=$3 start_server "$W/ca-$label" "$W/serve-$label.log" "$HTTPS_PORT"
    r=$("$LOADGEN" "$MODE" --port "$HTTPS_PORT" --cacert "$W/trust.pem" --cert "$W/dev.crt" \
        --key "$W/dev.key" --concurrency "$CONC" --duration "$DUR" --warmup 1 --csr-count 2000 \
        --server-pid "$SERVER_PID" 2>&1 | grep '^RESULT ' | tail -1) || true
    stop_pid "$SERVER_PID"
    [ -n "$r" ] || { echo "$label failed"; return 0; }
    echo "$label $(result_field "$r" rps) $(result_field "$r" p99) $(result_field "$r" srv_us) $(result_field "$r" other_cpu)"
}

median() { sort -n | awk '{v[NR] = $1} END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

speed_p256
echo "| run | build | req/s | p99 ms | server us/answer | other CPU |"
echo "|---|---|---:|---:|---:|---:|"
: >"$W/runs"
for i in $(seq 1 "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
    for x in $order; do
        wait_quiet
        if [ "$x" = A ]; then line=$(one_run A "$A" "${AB_ARGS_A:-}"); else line=$(one_run B "$B" "${AB_ARGS_B:-}"); fi
        echo "$line" >>"$W/runs"
        echo "$line" | awk -v i="$i" '{printf "| %d | %s | %s | %s | %s | %s |\n", i, $1, $2, $3, $4, $5}'
    done
done
ma=$(awk '$1 == "A" {print $2}' "$W/runs" | median)
mb=$(awk '$1 == "B" {print $2}' "$W/runs" | median)
ua=$(awk '$1 == "A" {print $4}' "$W/runs" | median)
ub=$(awk '$1 == "B" {print $4}' "$W/runs" | median)
echo
echo "$MODE, $ROUNDS runs each, ${DUR} s, $CONC clients; openssl speed ecdsap256: sign ${SPEED_SIGN}/s verify ${SPEED_VERIFY}/s"
echo "median req/s: A $ma, B $mb; median server us/answer: A $ua, B $ub"
awk -v a="$ma" -v b="$mb" 'BEGIN { if (a > 0 && b > 0) printf "B/A throughput: %.2f\n", b / a }'
