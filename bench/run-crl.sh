#!/usr/bin/env bash
# bench/run-crl.sh - CRL generation time and memory at 100k and 1M entries.
#
# For each size: a fresh CA, a store filled by populate with that many
# revoked certificates (varied reasons), then `fleetpki crl --out F` timed
# by GNU time (wall clock, CPU, peak RSS).  The CRL is checked with
# `openssl crl -CAfile` (signature) before its figures are reported.
#
#   bench/run-crl.sh                 # sizes 100000 1000000
#   CRL_SIZES="10000" bench/run-crl.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZES=${CRL_SIZES:-100000 1000000}
[ -x "$TIME_BIN" ] || { echo "bench: $TIME_BIN missing (Debian package 'time')" >&2; exit 1; }

speed_p256
rows=()
for n in $SIZES; do
    d=$W/crl-$n
    log "CRL with $n entries: populating"
    "$FLEETPKI" init --dir "$d" --name "Bench CRL" >/dev/null
    t0=$(date +%s.%N)
    "$POPULATE" --dir "$d" --count "$n" --revoked-pct 100 >"$W/pop-$n.out" 2>/dev/null
    pop_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b - a}')
    cat "$W/pop-$n.out" >&2
    wait_quiet
    log "CRL with $n entries: fleetpki crl"
    "$TIME_BIN" -v "$FLEETPKI" crl --dir "$d" --out "$d/crl.der" >"$W/crl-$n.out" 2>"$W/time-$n.txt"
    cat "$W/crl-$n.out" >&2
    openssl crl -inform DER -in "$d/crl.der" -CAfile "$d/issuing.crt" -noout 2>&1 | grep -q 'verify OK' ||
        { echo "bench: CRL signature does not verify" >&2; exit 1; }
    entries=$(grep -o '[0-9]* entries' "$W/crl-$n.out" | awk '{print $1}')
    [ "$entries" = "$n" ] || { echo "bench: CRL lists $entries entries, expected $n" >&2; exit 1; }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$W/time-$n.txt" |
           awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    usr=$(awk -F': ' '/User time/ {print $2}' "$W/time-$n.txt")
    sys=$(awk -F': ' '/System time/ {print $2}' "$W/time-$n.txt")
    rss=$(awk -F': ' '/Maximum resident/ {printf "%.1f", $2/1024}' "$W/time-$n.txt")
    size=$(stat -c %s "$d/crl.der")
    rows+=("| $n | $(printf %.1f "$pop_s") | $(printf %.2f "$wall") | $(awk -v u="$usr" -v s="$sys" 'BEGIN{printf "%.2f", u + s}') | $rss | $(awk -v s="$size" 'BEGIN{printf "%.1f", s/1048576}') |")
    rm -rf "$d"
done

mkdir -p "$RESULTS_DIR"
{
    echo "### CRL generation (\`fleetpki crl --out F\`)"
    echo
    machine_md
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s"
    echo
    echo "| revoked entries | populate (s) | crl wall (s) | crl CPU (s) | peak RSS (MiB) | CRL size (MiB) |"
    echo "|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
} >"$RESULTS_DIR/crl.md"
cat "$RESULTS_DIR/crl.md"
