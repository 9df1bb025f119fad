#!/usr/bin/env bash
# bench/run-registry-api.sh - the device registry through the admin REST
# API at 1,000,000 devices across 10 projects (issue 10): device list
# (first page, a deep page), filter by tag, get by name; p50/p99 with 64
# keep-alive clients (loadgen api-get, an admin API key as Bearer).
#
# populate_devices bulk-loads the registry (100,000 devices a project,
# tags site=s<i%100> and model=m<i%7>); each run lasts REG_DURATION
# seconds after a 3 s warm-up.  Target: p99 < 10 ms for each.
#
# The limit of this machine is measured in the same run, at the same
# concurrency, on the same server:
#   floor-auth       GET /api/v1/projects/bench-3 with the same Bearer key:
#                    the cheapest authenticated route (TLS record, HTTP
#                    parse, key lookup + SHA-256 + constant-time compare,
#                    project lookup, a small JSON answer)
#   floor-keepalive  GET /.well-known/est/cacerts on kept-alive TLS
#                    connections, no authentication (served from memory)
# With 64 clients always waiting on 2 shared cores, Little's law puts
# p50 near 64 x (server + loadgen CPU per answer) / 2 cores: the floor's
# own p99 is the best any route can reach here.  `openssl speed` is
# printed too, as in the other benches.
#
#   bench/run-registry-api.sh
#   REG_DEVICES=100000 REG_DURATION=5 bench/run-registry-api.sh
#   REG_RUNS="tag" bench/run-registry-api.sh     (some of first deep tag get)
# To compare two builds on a busy machine: bench/ab-registry.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${REG_DEVICES:-1000000}
PROJECTS=${REG_PROJECTS:-10}
DUR=${REG_DURATION:-10}
CONC=${REG_CONCURRENCY:-64}
RUNS=${REG_RUNS:-first deep tag get}
POPULATE_DEVICES=${POPULATE_DEVICES:-$BUILD_DIR/bench/populate_devices}
[ -x "$POPULATE_DEVICES" ] || { echo "bench: $POPULATE_DEVICES not built" >&2; exit 1; }

CA=$W/ca
"$FLEETPKI" init --dir "$CA" --name "Bench registry" >/dev/null
log "populating $N devices in $PROJECTS projects"
start=$(date +%s)
"$POPULATE_DEVICES" --db "$CA/fleetpki.db" --projects "$PROJECTS" --count "$N" >"$W/populate.out"
log "$(cat "$W/populate.out") in $(($(date +%s) - start)) s"
KEY=$("$FLEETPKI" apikey create --admin --dir "$CA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
HTTPS_PORT=$(free_port)
HTTP_PORT=$(free_port)
conf_set "$CA/fleetpki.conf" server https_listen "127.0.0.1:$HTTPS_PORT"
conf_set "$CA/fleetpki.conf" server http_listen "127.0.0.1:$HTTP_PORT"
BENCH_SERVER_ARGS=${BENCH_SERVER_ARGS:---quiet}
start_server "$CA" "$W/serve.log" "$HTTPS_PORT"
speed_p256

per=$((N / PROJECTS))
b64url() { printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
deep=$(b64url "$(printf 'dev-3-%08d' $((per / 2)))")
# 1,000 distinct devices spread over every project for get-by-name
python3 - "$N" "$PROJECTS" >"$W/names.txt" <<'PY'
import random, sys
n, p = int(sys.argv[1]), int(sys.argv[2])
random.seed(10)
for i in random.sample(range(n), 1000):
    print(f"/api/v1/projects/bench-{i % p}/devices/dev-{i % p}-{i // p:08d}")
PY

declare -A PATHS=(
    [first]="/api/v1/projects/bench-3/devices?limit=100"
    [deep]="/api/v1/projects/bench-3/devices?limit=100&cursor=$deep"
    [tag]="/api/v1/projects/bench-3/devices?limit=100&tag=site%3Ds53"
)
run_load "floor-keepalive (cacerts, no auth)" floor-keepalive --port "$HTTPS_PORT" \
    --concurrency "$CONC" --duration "$DUR" --warmup 3 --server-pid "$SERVER_PID"
FLOOR_KA=$LAST_RESULT
run_load "floor-auth (GET project, Bearer)" api-get --port "$HTTPS_PORT" --bearer "$KEY" \
    --path /api/v1/projects/bench-3 --concurrency "$CONC" --duration "$DUR" --warmup 3 \
    --server-pid "$SERVER_PID"
FLOOR_AUTH=$LAST_RESULT
SUMMARY=()
for run in $RUNS; do
    case $run in first | deep | tag | get) ;; *) echo "bench: unknown run $run" >&2; exit 1 ;; esac
    if [ "$run" = get ]; then
        args=(--paths "$W/names.txt")
    else
        args=(--path "${PATHS[$run]}")
        # the answer must be a full page (the filter and cursor hold)
        n=$(curl -sk --max-time 30 -H "Authorization: Bearer $KEY" "https://127.0.0.1:$HTTPS_PORT${PATHS[$run]}" |
            python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
        [ "$n" = 100 ] || { echo "bench: $run answered $n devices, want 100" >&2; exit 1; }
    fi
    run_load "device list: $run" api-get --port "$HTTPS_PORT" --bearer "$KEY" "${args[@]}" \
        --concurrency "$CONC" --duration "$DUR" --warmup 3 --server-pid "$SERVER_PID"
    r=$LAST_RESULT
    SUMMARY+=("| $run | $(result_field "$r" p50) | $(result_field "$r" p99) | $(result_field "$r" srv_us) | $(result_field "$FLOOR_AUTH" p50) | $(result_field "$FLOOR_AUTH" p99) | $(result_field "$FLOOR_AUTH" srv_us) | $(awk -v p="$(result_field "$r" p99)" 'BEGIN { print (p != "" && p + 0 < 10) ? "yes" : "no" }') |")
done
stop_pid "$SERVER_PID"

mkdir -p "$RESULTS_DIR"
{
    echo "### Device registry API ($N devices in $PROJECTS projects; $CONC keep-alive clients, ${DUR} s per run, 3 s warm-up)"
    echo
    machine_md
    echo "- $(cat "$W/populate.out"); runs: first = first page of 100 of one project, deep = the page of 100 after the project's middle device (cursor), tag = first 100 with site=s53 (1 in 100 of the project), get = GET of one of 1,000 devices spread over all projects"
    echo "- server: \`fleetpki serve $BENCH_SERVER_ARGS\`, admin API key as Bearer on every request"
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s"
    echo "- floors (same run, same $CONC clients): floor-auth p50/p99 $(result_field "$FLOOR_AUTH" p50)/$(result_field "$FLOOR_AUTH" p99) ms, floor-keepalive p50/p99 $(result_field "$FLOOR_KA" p50)/$(result_field "$FLOOR_KA" p99) ms"
    echo
    echo "| request | p50 ms | p99 ms | server CPU per answer (us) | floor-auth p50 ms | floor-auth p99 ms | floor-auth CPU (us) | p99 < 10 ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${SUMMARY[@]}"
    echo
    echo "$ROWS_HEADER"
    printf '%s\n' "${ROWS[@]}"
} >"$RESULTS_DIR/registry-api.md"
cat "$RESULTS_DIR/registry-api.md"
