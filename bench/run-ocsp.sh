#!/usr/bin/env bash
# bench/run-ocsp.sh - OCSP responder throughput on a store of 1,000,000
# certificates, 10% revoked (varied reasons).
#
# A fresh CA, populate (serial list kept for loadgen), then for the
# response cache on and off: `fleetpki serve` on free loopback ports and
# bounded keep-alive runs of GET and POST with 64 clients.  Each client
# cycles through OCSP_SAMPLE distinct requests (default 10,000) drawn from
# the store's serials plus 5% never-issued serials, so answers mix good,
# revoked and unknown; loadgen checks every 10th answer's status against
# the store's truth.  `openssl speed ecdsap256` runs first.
#
#   bench/run-ocsp.sh
#   OCSP_CERTS=100000 OCSP_DURATION=5 BENCH_PERF=1 bench/run-ocsp.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${OCSP_CERTS:-1000000}
PCT=${OCSP_REVOKED_PCT:-10}
DUR=${OCSP_DURATION:-10}
CONC=${OCSP_CONCURRENCY:-64}
SAMPLE=${OCSP_SAMPLE:-10000}
UNKNOWN=${OCSP_UNKNOWN_PCT:-5}
# the responder's switch for its pre-signed response cache
CACHE_KEY=${OCSP_CACHE_KEY:-ocsp_cache}

speed_p256

CA=$W/ca
"$FLEETPKI" init --dir "$CA" --name "Bench OCSP" >/dev/null
log "populating $N certificates ($PCT% revoked)"
"$POPULATE" --dir "$CA" --count "$N" --revoked-pct "$PCT" --serials-out "$W/serials.txt" \
    >"$W/populate.out"
cat "$W/populate.out" >&2
HTTPS_PORT=$(free_port)
HTTP_PORT=$(free_port)
conf_set "$CA/fleetpki.conf" server https_listen "127.0.0.1:$HTTPS_PORT"
conf_set "$CA/fleetpki.conf" server http_listen "127.0.0.1:$HTTP_PORT"

for cache in yes no; do
    conf_set "$CA/fleetpki.conf" server "$CACHE_KEY" "$cache"
    start_server "$CA" "$W/serve-$cache.log" "$HTTP_PORT"
    log "server pid $SERVER_PID, $CACHE_KEY = $cache, http 127.0.0.1:$HTTP_PORT"
    for m in get post; do
        run_load "ocsp-$m cache=$cache" "ocsp-$m" --port "$HTTP_PORT" --issuer "$CA/issuing.crt" \
            --serials "$W/serials.txt" --ocsp-count "$SAMPLE" --unknown-pct "$UNKNOWN" \
            --concurrency "$CONC" --duration "$DUR" --warmup 4 --server-pid "$SERVER_PID"
    done
    if [ "$cache" = yes ] && [ "$UNKNOWN" != 0 ]; then
        # answers for never-issued serials are not cached (so a client cannot
        # fill the cache with made-up serials): also measure pure cache hits
        for m in get post; do
            run_load "ocsp-$m cache=yes, issued serials only" "ocsp-$m" --port "$HTTP_PORT" \
                --issuer "$CA/issuing.crt" --serials "$W/serials.txt" --ocsp-count "$SAMPLE" \
                --unknown-pct 0 --concurrency "$CONC" --duration "$DUR" --warmup 2 \
                --server-pid "$SERVER_PID"
        done
    fi
    stop_pid "$SERVER_PID"
done

mkdir -p "$RESULTS_DIR"
{
    echo "### OCSP responder ($N certificates, $PCT% revoked; $CONC keep-alive clients, ${DUR} s per run, 4 s warm-up)"
    echo
    machine_md
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s;" \
         "cache-off ceiling (1 signature per response, all $(nproc) cores): $(awk -v s="$SPEED_SIGN" -v c="$(nproc)" 'BEGIN{printf "%.0f", s*c}')/s"
    echo "- $(cat "$W/populate.out")"
    echo "- $SAMPLE distinct requests per run sampled from the store (about $PCT% revoked) plus $UNKNOWN% never-issued serials (unknown) unless noted; SHA-1 CertIDs, no nonce (RFC 5019); every answer's status checked against the store"
    echo "- server: \`fleetpki serve ${BENCH_SERVER_ARGS:-}\` (per-request log lines ${BENCH_SERVER_ARGS:+as per these flags}${BENCH_SERVER_ARGS:-on, written to a file})"
    echo
    echo "$ROWS_HEADER"
    printf '%s\n' "${ROWS[@]}"
} >"$RESULTS_DIR/ocsp.md"
cat "$RESULTS_DIR/ocsp.md"
