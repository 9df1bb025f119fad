#!/usr/bin/env bash
# bench/ab-registry.sh - compare two server builds on the admin API's
# device routes at 1,000,000 devices, interleaved (A B, B A, A B, ...).
#
# This machine is shared and its speed drifts from one minute to the
# next, so one run of each build cannot tell a 20% change apart; the
# builds take turns on copies of one populated store (one copy each: a
# newer build migrates the store it opens, which an older one refuses),
# and the medians of each build's server CPU per answer are compared.
# Server CPU per answer is the figure to trust on a busy machine; p99
# only on a quiet one.
#
#   bench/ab-registry.sh BUILD_A/fleetpki BUILD_B/fleetpki [RUN] [ROUNDS]
#   RUN: tag (default), first, deep, tagkey, get, auth; ROUNDS: runs per
#   build (default 3).  AB_DURATION (default 10 s), AB_CONCURRENCY (64),
#   REG_DEVICES (1,000,000), REG_PROJECTS (10).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

A=${1:?usage: bench/ab-registry.sh A/fleetpki B/fleetpki [RUN] [ROUNDS]}
B=${2:?usage: bench/ab-registry.sh A/fleetpki B/fleetpki [RUN] [ROUNDS]}
RUN=${3:-tag}
ROUNDS=${4:-3}
DUR=${AB_DURATION:-10}
CONC=${AB_CONCURRENCY:-64}
N=${REG_DEVICES:-1000000}
PROJECTS=${REG_PROJECTS:-10}
POPULATE_DEVICES=${POPULATE_DEVICES:-$BUILD_DIR/bench/populate_devices}
for bin in "$A" "$B" "$POPULATE_DEVICES"; do
    [ -x "$bin" ] || { echo "ab-registry: $bin is not executable" >&2; exit 2; }
done

# the store is made and filled by build A (the older one, normally)
CA=$W/ca
"$A" init --dir "$CA" --name "Bench registry A/B" >/dev/null
log "populating $N devices in $PROJECTS projects"
"$POPULATE_DEVICES" --db "$CA/fleetpki.db" --projects "$PROJECTS" --count "$N" >/dev/null
KEY=$("$A" apikey create --admin --dir "$CA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
HTTPS_PORT=$(free_port)
HTTP_PORT=$(free_port)
conf_set "$CA/fleetpki.conf" server https_listen "127.0.0.1:$HTTPS_PORT"
conf_set "$CA/fleetpki.conf" server http_listen "127.0.0.1:$HTTP_PORT"
cp -a "$CA" "$W/ca-A"
mv "$CA" "$W/ca-B"
# each build opens its copy once before any timed run: a newer build
# migrates the store here (at 1,000,000 devices that can take seconds),
# not inside start_server's port wait or its first run
for x in A B; do
    if [ "$x" = A ]; then bin=$A; else bin=$B; fi
    start=$(date +%s)
    "$bin" project list --dir "$W/ca-$x" >/dev/null
    log "build $x opened its store in $(($(date +%s) - start)) s"
done

per=$((N / PROJECTS))
b64url() { printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
args=()
case $RUN in
first) args=(--path "/api/v1/projects/bench-3/devices?limit=100") ;;
deep) args=(--path "/api/v1/projects/bench-3/devices?limit=100&cursor=$(b64url "$(printf 'dev-3-%08d' $((per / 2)))")") ;;
tag) args=(--path "/api/v1/projects/bench-3/devices?limit=100&tag=site%3Ds53") ;;
tagkey) args=(--path "/api/v1/projects/bench-3/devices?limit=100&tag=site") ;;
auth) args=(--path "/api/v1/projects/bench-3") ;;
get)
    python3 - "$N" "$PROJECTS" >"$W/names.txt" <<'PY'
import random, sys
n, p = int(sys.argv[1]), int(sys.argv[2])
random.seed(10)
for i in random.sample(range(n), 1000):
    print(f"/api/v1/projects/bench-{i % p}/devices/dev-{i % p}-{i // p:08d}")
PY
    args=(--paths "$W/names.txt") ;;
*) echo "ab-registry: unknown run $RUN" >&2; exit 2 ;;
esac

# one run of build $2 (label $1): prints "label rps p50 p99 srv_us other_cpu"
# and keeps each build's answer to compare them
one_run() {
    local label=$1 bin=$2 r
    FLEETPKI=$bin BENCH_SERVER_ARGS=--quiet start_server "$W/ca-$label" "$W/serve-$label.log" "$HTTPS_PORT"
    if [ "$RUN" != get ]; then
        curl -sk --max-time 30 -H "Authorization: Bearer $KEY" \
            "https://127.0.0.1:$HTTPS_PORT${args[1]}" >"$W/answer-$label.json"
    fi
    r=$("$LOADGEN" api-get --port "$HTTPS_PORT" --bearer "$KEY" "${args[@]}" \
        --concurrency "$CONC" --duration "$DUR" --warmup 3 --server-pid "$SERVER_PID" 2>&1 |
        grep '^RESULT ' | tail -1) || true
    stop_pid "$SERVER_PID"
    [ -n "$r" ] || { echo "$label failed"; return 0; }
    echo "$label $(result_field "$r" rps) $(result_field "$r" p50) $(result_field "$r" p99) $(result_field "$r" srv_us) $(result_field "$r" other_cpu)"
}

median() { sort -n | awk '{v[NR] = $1} END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "| round | build | req/s | p50 ms | p99 ms | server us/answer | other CPU |"
echo "|---|---|---:|---:|---:|---:|---:|"
: >"$W/runs"
for i in $(seq 1 "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
    for x in $order; do
        wait_quiet
        if [ "$x" = A ]; then line=$(one_run A "$A"); else line=$(one_run B "$B"); fi
        echo "$line" >>"$W/runs"
        echo "$line" | awk -v i="$i" '{printf "| %d | %s | %s | %s | %s | %s | %s |\n", i, $1, $2, $3, $4, $5, $6}'
    done
done
if [ "$RUN" != get ]; then
    if cmp -s "$W/answer-A.json" "$W/answer-B.json"; then
        echo "answers: A and B sent the same bytes"
    else
        echo "answers: A and B DIFFER"
    fi
fi
for x in A B; do
    echo "$x median: srv_us $(awk -v x="$x" '$1 == x {print $5}' "$W/runs" | median)," \
        "p99 $(awk -v x="$x" '$1 == x {print $4}' "$W/runs" | median) ms," \
        "req/s $(awk -v x="$x" '$1 == x {print $2}' "$W/runs" | median)"
done
