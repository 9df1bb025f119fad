# bench/lib.sh - shared helpers for the bench/run-*.sh scripts (source it).
#
# Each run gets a private work dir ($W) removed on exit, fresh CAs made in
# it, loopback ports picked by the kernel, and every process it starts is
# stopped on exit.  Binaries come from $FP_BUILD_DIR (default ./build).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$BENCH_DIR")
BUILD_DIR=${FP_BUILD_DIR:-$ROOT_DIR/build}
FLEETPKI=${FLEETPKI:-$BUILD_DIR/fleetpki}
LOADGEN=${LOADGEN:-$BUILD_DIR/bench/loadgen}
POPULATE=${POPULATE:-$BUILD_DIR/bench/populate}
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
TIME_BIN=/usr/bin/time

for b in "$FLEETPKI" "$LOADGEN" "$POPULATE"; do
    [ -x "$b" ] || { echo "bench: $b not built (cmake --build build)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/fpbench.XXXXXX")
BENCH_PIDS=()

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$W"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# A free TCP port on 127.0.0.1 (the kernel picks it; tiny race accepted).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until 127.0.0.1:$1 accepts connections (at most $2 seconds, default 20).
wait_port() {
    local port=$1 limit=${2:-20} i
    for i in $(seq 1 $((limit * 10))); do
        if python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2); s.close()' "$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Busy cores of the whole machine over one second.
busy_cores() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    echo "$a $b" | awk '{n=NF/2; for (i=2;i<=n;i++) if (i!=5 && i!=6) d+=$(i+n)-$i; print d/100}'
}

# Wait (at most BENCH_QUIET_WAIT s, default 180) until other jobs leave
# the machine nearly idle, so they do not pollute the figures; measure
# anyway after that (the "other CPU" column shows the interference).
wait_quiet() {
    local limit=${BENCH_QUIET_WAIT:-180} t=0 b
    while :; do
        b=$(busy_cores)
        if awk -v b="$b" 'BEGIN{exit !(b < 0.25)}'; then
            return 0
        fi
        if [ "$t" -ge "$limit" ]; then
            log "machine still busy ($b cores used by other jobs); measuring anyway"
            return 0
        fi
        [ "$t" -eq 0 ] && log "machine busy ($b cores used by other jobs); waiting up to ${limit}s"
        sleep 2
        t=$((t + 3))
    done
}

# Stop one server we started (SIGTERM, then wait for it to exit).
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

# openssl speed for ECDSA P-256 (one core): sets SPEED_SIGN, SPEED_VERIFY.
speed_p256() {
    local line
    wait_quiet
    line=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | grep 'nistp256' | tail -1)
    SPEED_SIGN=$(echo "$line" | awk '{print $(NF-1)}')
    SPEED_VERIFY=$(echo "$line" | awk '{print $NF}')
    log "openssl speed ecdsap256 (1 core): sign ${SPEED_SIGN}/s verify ${SPEED_VERIFY}/s"
}

# Commit the figures are measured on (with "+dirty" if the tree differs).
bench_commit() {
    local c
    c=$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if ! git -C "$ROOT_DIR" diff --quiet HEAD -- src bench CMakeLists.txt 2>/dev/null; then
        c="$c+dirty"
    fi
    echo "$c"
}

# Markdown description of the machine and the run.
machine_md() {
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), bench commit \`$(bench_commit)\`${BENCH_SERVER_REV:+, server built from $BENCH_SERVER_REV}"
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'),"\
         "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo),"\
         "kernel $(uname -r)"
    echo "- $(openssl version | awk "{print \$1, \$2}"), $(sqlite3 --version 2>/dev/null | awk '{print "SQLite " $1}')"
}

# Value of key=... in a loadgen RESULT line.
result_field() {
    echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'
}

# Set "key = value" in section [sect] of a fleetpki.conf (key must exist).
conf_set() {
    local file=$1 sect=$2 key=$3 value=$4
    python3 - "$file" "$sect" "$key" "$value" <<'EOF'
import sys, re
path, sect, key, value = sys.argv[1:]
out, cur, done = [], None, False
for line in open(path):
    m = re.match(r'\s*\[([^\]]+)\]', line)
    if m:
        if cur == sect and not done:
            out.append(f"{key} = {value}\n"); done = True
        cur = m.group(1).strip()
    elif cur == sect and re.match(rf'\s*{re.escape(key)}\s*=', line):
        line = f"{key} = {value}\n"; done = True
    out.append(line)
if not done:
    if cur != sect:
        out.append(f"[{sect}]\n")
    out.append(f"{key} = {value}\n")
open(path, "w").writelines(out)
EOF
}

# run_load LABEL LOADGEN-ARGS...: run loadgen, echo its report to stderr,
# append a markdown row to ROWS and leave the RESULT line in LAST_RESULT.
# With BENCH_PERF=1 and --server-pid among the args, the server is
# profiled (perf record -g) for the run and the top of the report saved
# to $RESULTS_DIR/perf-LABEL.txt.
ROWS=()
LAST_RESULT=
run_load() {
    local label=$1 out pid="" perf_pid="" a prev="" dur=10
    shift
    for a in "$@"; do
        [ "$prev" = "--server-pid" ] && pid=$a
        [ "$prev" = "--duration" ] && dur=$a
        prev=$a
    done
    wait_quiet
    if [ "${BENCH_PERF:-0}" = 1 ] && [ -n "$pid" ] && command -v perf >/dev/null; then
        # DWARF unwinding: Debian's libcrypto has no frame pointers
        perf record --call-graph dwarf,16384 -F 99 -p "$pid" -o "$W/perf-$label.data" \
            -- sleep "$dur" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    log "$label: loadgen $*"
    out=$("$LOADGEN" "$@" 2>&1) || true
    echo "$out" >&2
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" 2>/dev/null || true
        mkdir -p "$RESULTS_DIR"
        {
            echo "# inclusive (children) by symbol, >= 2%"
            perf report -i "$W/perf-$label.data" --stdio --children --sort symbol -g none \
                --percent-limit 2 2>/dev/null | grep -E '^ +[0-9]' | grep -v ' 0x0000' | head -80
            echo "# self by library"
            perf report -i "$W/perf-$label.data" --stdio --no-children --sort dso -g none \
                --percent-limit 1 2>/dev/null | grep -E '^ +[0-9]'
        } >"$RESULTS_DIR/perf-${label// /_}.txt" || true
        rm -f "$W/perf-$label.data"
    fi
    LAST_RESULT=$(echo "$out" | grep '^RESULT ' | tail -1)
    if [ -z "$LAST_RESULT" ]; then
        ROWS+=("| $label | - | failed | | | | | | | | | | |")
        return 0
    fi
    local r=$LAST_RESULT
    ROWS+=("| $label | $(result_field "$r" conc) | $(result_field "$r" rps) | $(result_field "$r" p50) | $(result_field "$r" p90) | $(result_field "$r" p99) | $(result_field "$r" max) | $(result_field "$r" ok) / $(result_field "$r" err) | $(result_field "$r" rss_mib) | $(result_field "$r" srv_cpu) | $(result_field "$r" srv_us) | $(result_field "$r" cli_us) | $(result_field "$r" other_cpu) |")
}

ROWS_HEADER="| run | clients | req/s | p50 ms | p90 ms | p99 ms | max ms | ok / errors | server peak RSS MiB | server CPU (cores) | server CPU per answer (us) | loadgen CPU per answer (us) | other CPU (cores) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

# Start `fleetpki serve` for the CA in $1 (ports already in its config),
# logging to $2; sets SERVER_PID and waits for port $3.
start_server() {
    local dir=$1 logf=$2 port=$3
    # shellcheck disable=SC2086 # BENCH_SERVER_ARGS: extra flags, e.g. --quiet
    "$FLEETPKI" serve --dir "$dir" ${BENCH_SERVER_ARGS:-} >"$logf" 2>&1 &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    if ! wait_port "$port" 30; then
        echo "bench: server did not open port $port; log:" >&2
        tail -20 "$logf" >&2
        exit 1
    fi
}

# est_bench_ca BIN NAME: a fresh CA in $W/ca made by BIN, its listeners on
# free loopback ports (sets CA, HTTPS_PORT, HTTP_PORT), the trust bundle
# $W/trust.pem, and a device identity $W/dev.key + $W/dev.crt issued by it
# that authenticates enrollments (RFC 7030 3.3.2).
est_bench_ca() {
    local bin=$1 name=$2
    CA=$W/ca
    "$bin" init --dir "$CA" --name "$name" >/dev/null
    HTTPS_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    conf_set "$CA/fleetpki.conf" server https_listen "127.0.0.1:$HTTPS_PORT"
    conf_set "$CA/fleetpki.conf" server http_listen "127.0.0.1:$HTTP_PORT"
    cat "$CA/issuing.crt" "$CA/root.crt" >"$W/trust.pem"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/dev.key" \
        -subj "/CN=bench-device" -out "$W/dev.csr" 2>/dev/null
    "$bin" issue --dir "$CA" --csr "$W/dev.csr" --profile device --out "$W/dev.crt" >/dev/null
}
