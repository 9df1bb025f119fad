#!/usr/bin/env bash
# bench/run-factory.sh - `fleetpki factory mint` throughput (issue 12:
# target 1,000,000 P-256 identities in under 2 minutes, store durable at
# the end).
#
# In one run, on a fresh CA and project:
#   openssl speed -seconds 3 ecdsap256 (sign) and ecdhp256: the machine's
#       raw EC rates on one core;
#   floor-keys   `factory floor --mode keys`: keys + their PKCS#8 PEM only;
#   floor-sign   `factory floor --mode sign`: + request, certificate built
#                and signed (throwaway CA): the CPU limit of minting, no
#                store, no files;
#   mint         `factory mint`: everything (store commits with audit rows,
#                bundles, manifests, final sync), then checked: the store
#                holds exactly the minted certificates, one bundle each.
# Every phase reports wall time, rate, CPU seconds per identity (user+sys,
# from GNU time) and peak RSS; the machine is shared, so the CPU per
# identity is the figure that survives other jobs' load, and
# 2 cores / (CPU per identity) is what an idle machine would reach.
#
#   bench/run-factory.sh                        # 100,000 identities
#   FACTORY_COUNT=1000000 bench/run-factory.sh  # the full million
# Knobs: FACTORY_COUNT (mint), FACTORY_FLOOR_COUNT (floors, default
# min(FACTORY_COUNT, 200000)), FACTORY_THREADS (default: online CPUs),
# FACTORY_P12=1 (mint with --p12), BENCH_QUIET_WAIT.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=${FACTORY_COUNT:-100000}
FLOOR_COUNT=${FACTORY_FLOOR_COUNT:-$((COUNT < 200000 ? COUNT : 200000))}
THREADS=${FACTORY_THREADS:-$(nproc)}
P12=()
[ "${FACTORY_P12:-0}" = 1 ] && P12=(--p12)

speed_p256
ECDH=$(openssl speed -seconds 3 ecdhp256 2>/dev/null | grep 'nistp256' | tail -1 | awk '{print $NF}')
log "openssl speed ecdhp256 (1 core): ${ECDH} op/s"

CA=$W/ca
"$FLEETPKI" init --dir "$CA" --name "Bench Factory" >/dev/null
"$FLEETPKI" project create factory --dir "$CA" >/dev/null

# timed NAME CMD...: run under GNU time; sets T_WALL, T_CPU (s), T_RSS (KB)
timed() {
    local name=$1
    shift
    wait_quiet
    log "$name: $*"
    "$TIME_BIN" -f '%e %U %S %M' -o "$W/$name.time" "$@" >"$W/$name.out" 2>"$W/$name.err" ||
        { cat "$W/$name.out" "$W/$name.err" >&2; echo "bench: $name failed" >&2; exit 1; }
    read -r T_WALL T_USER T_SYS T_RSS <"$W/$name.time"
    T_CPU=$(awk -v u="$T_USER" -v s="$T_SYS" 'BEGIN { printf "%.1f", u + s }')
    cat "$W/$name.out" >&2
}

declare -A ROW
row() { # name count
    local name=$1 n=$2
    ROW[$name]=$(awk -v n="$n" -v w="$T_WALL" -v c="$T_CPU" -v r="$T_RSS" -v t="$THREADS" 'BEGIN {
        printf "| %d | %.1f | %.0f | %.1f | %.0f | %.0f |", n, w, n / w, c * 1e6 / n, t * n / c, r / 1024 }')
}

timed floor-keys "$FLEETPKI" factory floor --dir "$CA" --mode keys --count "$FLOOR_COUNT" --threads "$THREADS"
row floor-keys "$FLOOR_COUNT"
timed floor-sign "$FLEETPKI" factory floor --dir "$CA" --mode sign --count "$FLOOR_COUNT" --threads "$THREADS"
row floor-sign "$FLOOR_COUNT"
OTHER_BEFORE=$(busy_cores)
timed mint "$FLEETPKI" factory mint --dir "$CA" --project factory --count "$COUNT" \
    --name 'sensor-%07d' --out "$W/out" --threads "$THREADS" "${P12[@]}"
row mint "$COUNT"

# every minted certificate is in the store (with its audit row), one bundle each
STORED=$(sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM certificates WHERE project = 'factory'")
AUDITED=$(sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM audit WHERE project = 'factory' AND action = 'cert.issue'")
ROWS=$(($(wc -l <"$W/out/manifest.csv") - 1))
[ "$STORED" = "$COUNT" ] && [ "$AUDITED" = "$COUNT" ] && [ "$ROWS" = "$COUNT" ] ||
    { echo "bench: stored $STORED, audited $AUDITED, manifest $ROWS, expected $COUNT" >&2; exit 1; }
sqlite3 "$CA/fleetpki.db" 'PRAGMA integrity_check' | grep -qx ok || { echo "bench: store integrity" >&2; exit 1; }
OUT_MIB=$(du -sm "$W/out" | cut -f1)
DB_MIB=$(du -sm "$CA" | cut -f1)

mkdir -p "$RESULTS_DIR"
{
    echo "### factory mint: $COUNT P-256 identities"
    echo
    machine_md
    echo "- threads: $THREADS; other jobs used ~${OTHER_BEFORE} cores just before the mint"
    echo "- openssl speed (1 core): ecdsap256 sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s; ecdhp256 ${ECDH} op/s"
    echo
    echo "| phase | identities | wall s | identities/s | CPU us / identity | /s on $THREADS idle cores | peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|"
    echo "| floor: keys + PKCS#8 PEM ${ROW[floor-keys]}"
    echo "| floor: keys + certificates (no store, no files) ${ROW[floor-sign]}"
    echo "| mint${P12:+ --p12} (store durable, bundles synced) ${ROW[mint]}"
    echo
    echo "- checked: $STORED certificates and $AUDITED cert.issue audit rows in the store, $ROWS manifest rows, store integrity ok"
    echo "- output: ${OUT_MIB} MiB for $COUNT bundles; data directory ${DB_MIB} MiB"
} | tee "$RESULTS_DIR/factory.md"
