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
#   bench/run-signer.sh
#   SIGNER_DURATION=20 SIGNER_CONCURRENCY=32 bench/run-signer.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DUR=${SIGNER_DURATION:-10}
CONC=${SIGNER_CONCURRENCY:-32}
CSRS=${SIGNER_CSRS:-2000}
N=${SIGNER_OCSP_CERTS:-20000}

speed_p256
est_bench_ca "$FLEETPKI" "Bench signer"
"$POPULATE" --dir "$CA" --count "$N" --revoked-pct 10 --serials-out "$W/serials.txt" >/dev/null
conf_set "$CA/fleetpki.conf" server ocsp_cache no

declare -A BEST_EST BEST_OCSP
for round in 1 2; do
    for mode in separate inprocess; do
        conf_set "$CA/fleetpki.conf" server signer "$mode"
        start_server "$CA" "$W/serve-$mode-$round.log" "$HTTPS_PORT"
        wait_port "$HTTP_PORT" 30
        kids=$(pgrep -c -P "$SERVER_PID" || true)
        log "round $round, signer = $mode: server $SERVER_PID, $kids child process(es)"
        run_load "est-keepalive signer=$mode #$round" est-keepalive --port "$HTTPS_PORT" \
            --cacert "$W/trust.pem" --cert "$W/dev.crt" --key "$W/dev.key" \
            --concurrency "$CONC" --duration "$DUR" --warmup 1 --csr-count "$CSRS" \
            --server-pid "$SERVER_PID"
        r=$(result_field "$LAST_RESULT" rps)
        awk -v a="${r:-0}" -v b="${BEST_EST[$mode]:-0}" 'BEGIN{exit !(a > b)}' && BEST_EST[$mode]=$r
        run_load "ocsp-post fresh signer=$mode #$round" ocsp-post --port "$HTTP_PORT" \
            --issuer "$CA/issuing.crt" --serials "$W/serials.txt" --ocsp-count 5000 \
            --unknown-pct 0 --concurrency "$CONC" --duration "$DUR" --warmup 1 \
            --server-pid "$SERVER_PID"
        r=$(result_field "$LAST_RESULT" rps)
        awk -v a="${r:-0}" -v b="${BEST_OCSP[$mode]:-0}" 'BEGIN{exit !(a > b)}' && BEST_OCSP[$mode]=$r
        stop_pid "$SERVER_PID"
    done
done

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
mkdir -p "$RESULTS_DIR"
{
    echo "### Separate signer vs in-process signing ($CONC clients, ${DUR} s per run, 1 s warm-up)"
    echo
    machine_md
    echo "- openssl speed ecdsap256 (1 core, same run): sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s"
    echo "  (signing ceiling on $(nproc) cores: $(awk -v s="$SPEED_SIGN" -v c="$(nproc)" 'BEGIN{printf "%.0f", s*c}')/s)"
    echo "- EST keep-alive, best of 2: separate ${BEST_EST[separate]:-0}/s, in-process ${BEST_EST[inprocess]:-0}/s:" \
         "**$(pct "${BEST_EST[separate]:-0}" "${BEST_EST[inprocess]:-0}")**"
    echo "- OCSP fresh-signed (cache off), best of 2: separate ${BEST_OCSP[separate]:-0}/s, in-process ${BEST_OCSP[inprocess]:-0}/s:" \
         "**$(pct "${BEST_OCSP[separate]:-0}" "${BEST_OCSP[inprocess]:-0}")**"
    echo
    echo "$ROWS_HEADER"
    printf '%s\n' "${ROWS[@]}"
} >"$RESULTS_DIR/signer.md"
cat "$RESULTS_DIR/signer.md"
