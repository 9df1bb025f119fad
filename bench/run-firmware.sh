#!/usr/bin/env bash
# bench/run-firmware.sh - device-side firmware verification throughput
# (issue 13), per device backend, beside this run's crypto limits.
#
# A fresh CA with a firmware CA and signer signs two all-zero images: a big
# one (FW_BENCH_MB MiB, default 64) and a 1 KiB one.  bench/fw_bench.c
# (fw-bench-openssl, fw-bench-mbedtls: libfleetpki-device on each backend)
# verifies them with fp_dev_firmware_verify, the reader handing out zeros:
#   - MB/s hashed: the big image streamed through SHA-256 in the library's
#     1 KiB chunks (plus one chain check and one ES256 per verification),
#   - verifications/s: whole verifications of the small envelope (parse,
#     chain to the anchor, ES256, the manifest, a 1 KiB image).
# Beside them: `openssl speed sha256` (16 KiB blocks, best case) and
# `openssl speed ecdsap256` verify/s on one core of the same machine.
#
#   bench/run-firmware.sh
#   FW_BENCH_MB=256 bench/run-firmware.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MB=${FW_BENCH_MB:-64}
ROUNDS=${FW_BENCH_ROUNDS:-3}
CHECKS=${FW_BENCH_CHECKS:-300}
VENDOR=fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe
CLASS=1492af14-2569-5e48-bf42-9b2d51f2ab45
BENCHES=$(ls "$BUILD_DIR"/bench/fw-bench-* 2>/dev/null || true)
[ -n "$BENCHES" ] || { echo "bench: no fw-bench-* in $BUILD_DIR/bench" >&2; exit 1; }

speed_p256
wait_quiet
SHA_LINE=$(openssl speed -seconds 3 sha256 2>/dev/null | grep '^sha256' | tail -1)
# the last column: 16384-byte blocks, in 1000s of bytes per second
SHA_MBPS=$(echo "$SHA_LINE" | awk '{v = $NF; sub(/k$/, "", v); printf "%.0f", v / 1000}')
# and 1024-byte blocks: the library hashes the image in 1 KiB chunks
SHA_1K=$(echo "$SHA_LINE" | awk '{v = $(NF-2); sub(/k$/, "", v); printf "%.0f", v / 1000}')
log "openssl speed sha256 (1 core): ${SHA_MBPS} MB/s (16 KiB blocks), ${SHA_1K} MB/s (1 KiB blocks)"

d=$W/ca
"$FLEETPKI" init --dir "$d" --name "Bench FW" >/dev/null
"$FLEETPKI" firmware ca create --project default --dir "$d" >/dev/null
"$FLEETPKI" firmware signer create --project default --dir "$d" >/dev/null
"$FLEETPKI" firmware anchor --project default --dir "$d" --out "$W/anchor.pem"
head -c "${MB}M" /dev/zero >"$W/big.img"
head -c 1024 /dev/zero >"$W/small.img"
"$FLEETPKI" firmware sign --project default --dir "$d" --image "$W/big.img" --version 1 \
    --sequence 1 --vendor-id $VENDOR --class-id $CLASS --out "$W/big.suit" >/dev/null
"$FLEETPKI" firmware sign --project default --dir "$d" --image "$W/small.img" --version 2 \
    --sequence 2 --vendor-id $VENDOR --class-id $CLASS --out "$W/small.suit" >/dev/null
rm -f "$W/big.img"

rows=()
for b in $BENCHES; do
    wait_quiet
    log "$(basename "$b"): $ROUNDS x $MB MiB, $CHECKS small verifications"
    out=$("$b" --anchors "$W/anchor.pem" --vendor $VENDOR --class $CLASS \
        --big "$W/big.suit" --big-size $((MB * 1048576)) --rounds "$ROUNDS" \
        --small "$W/small.suit" --small-size 1024 --checks "$CHECKS")
    echo "$out" >&2
    be=$(result_field "$out" backend)
    mbps=$(result_field "$out" hash_MBps)
    vps=$(result_field "$out" verify_per_s)
    rows+=("| $be | $mbps | $(awk -v a="$mbps" -v b="$SHA_MBPS" 'BEGIN{printf "%.0f%%", 100 * a / b}') | $vps | $(awk -v a="$vps" -v b="$SPEED_VERIFY" 'BEGIN{printf "%.0f%%", 100 * a / b}') |")
done

mkdir -p "$RESULTS_DIR"
{
    echo "### Device-side firmware verification (\`bench/run-firmware.sh\`)"
    echo
    machine_md
    echo "- openssl speed (1 core, same run): sha256 ${SHA_MBPS} MB/s (16 KiB blocks), ${SHA_1K} MB/s (1 KiB blocks); ecdsap256 verify ${SPEED_VERIFY}/s"
    echo "- one verification = 3 ECDSA P-256 verifications (COSE signature, signer and signing-CA certificates) + anchor PEM and certificate parsing"
    echo "- big image ${MB} MiB x ${ROUNDS}; small image 1 KiB x ${CHECKS}"
    echo
    echo "| backend | image hashed (MB/s) | of openssl sha256 | verifications/s (1 KiB image) | of openssl ecdsap256 verify |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
} >"$RESULTS_DIR/firmware.md"
cat "$RESULTS_DIR/firmware.md"
