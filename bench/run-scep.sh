#!/usr/bin/env bash
# bench/run-scep.sh - SCEP PKCSReq enrollments per second, beside the EST
# keep-alive figure of the same run and the crypto limit (`openssl speed`).
#
# A fresh CA, `fleetpki serve` on free loopback ports, one enrollment token
# with enough uses for the run, then:
#   scep            scep_load bench: SCEP_COUNT distinct PKCSReq messages
#                   (built before the clock starts: 16 RSA-2048 client
#                   keys, a fresh self-signed certificate, CN, transactionID
#                   and nonce each; SHA-256, AES-128) POSTed over
#                   SCEP_CONCURRENCY keep-alive HTTP/1.1 connections
#                   (plain http: SCEP secures its messages itself)
#   est-keepalive   loadgen, the EST keep-alive mode of run-est.sh
# Distinct messages, not one replayed: each must carry the challenge, and
# with single-use tokens no message could be sent twice; here one token
# with SCEP_COUNT uses pays for all of them.
#
# Per SCEP enrollment the server does two RSA-3072 private-key operations
# with the RA key (decrypt the request's key transport, sign the CertRep),
# two RSA-2048 public operations (the request's signature and its CSR's),
# one RSA-2048 public encryption (the answer, to the client) and one P-256
# signature (the certificate).  The crypto ceiling printed is 2 cores /
# (2 / rsa3072 sign/s + 1 / ecdsap256 sign/s), ignoring the cheap public
# operations.
#
#   bench/run-scep.sh
#   SCEP_COUNT=4000 SCEP_CONCURRENCY=16 bench/run-scep.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCEP_LOAD=${SCEP_LOAD:-$BUILD_DIR/bench/scep_load}
[ -x "$SCEP_LOAD" ] || { echo "bench: $SCEP_LOAD not built" >&2; exit 1; }
COUNT=${SCEP_COUNT:-2000}
CONC=${SCEP_CONCURRENCY:-8}
DUR=${EST_DURATION:-10}

speed_p256
line=$(openssl speed -seconds 3 rsa3072 2>/dev/null | grep '^rsa 3072' | tail -1)
RSA_SIGN=$(echo "$line" | awk '{print $(NF-1)}')
log "openssl speed rsa3072 (1 core): sign ${RSA_SIGN}/s"
CEIL=$(awk -v r="$RSA_SIGN" -v e="$SPEED_SIGN" -v n="$(nproc)" 'BEGIN { printf "%.0f", n / (2 / r + 1 / e) }')

est_bench_ca "$FLEETPKI" "Bench SCEP"
start_server "$CA" "$W/serve.log" "$HTTPS_PORT"
wait_port "$HTTP_PORT" 30
log "server pid $SERVER_PID on https $HTTPS_PORT, http $HTTP_PORT"

curl -sS -o "$W/cacert.der" "http://127.0.0.1:$HTTP_PORT/scep?operation=GetCACert"
python3 - "$W/cacert.der" "$W/ra.pem" <<'EOF'
import sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
certs = pkcs7.load_der_pkcs7_certificates(open(sys.argv[1], "rb").read())
ra = [c for c in certs if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca]
open(sys.argv[2], "wb").write(ra[0].public_bytes(Encoding.PEM))
EOF
"$FLEETPKI" token create --dir "$CA" --label default --uses $((COUNT + 10)) >"$W/token.out"
TOK="$(awk '/^id:/ {print $2}' "$W/token.out"):$(awk '/^secret:/ {print $2}' "$W/token.out")"

before=$(sqlite3 "$CA/fleetpki.db" 'SELECT count(*) FROM certificates')
# server CPU (user + system clock ticks) around the SCEP run
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
wait_quiet
t0=$(cpu_ticks)
log "scep: $COUNT PKCSReq, $CONC connections"
SCEP_LINE=$("$SCEP_LOAD" bench --port "$HTTP_PORT" --ra "$W/ra.pem" --challenge "$TOK" \
    --count "$COUNT" --concurrency "$CONC") || true
echo "$SCEP_LINE" >&2
t1=$(cpu_ticks)
after=$(sqlite3 "$CA/fleetpki.db" 'SELECT count(*) FROM certificates')
SRV_US=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n=$((after - before)) \
    'BEGIN { if (n > 0) printf "%.0f", d / hz * 1e6 / n; else print "-" }')

run_load "est-keepalive" est-keepalive --port "$HTTPS_PORT" --cacert "$W/trust.pem" \
    --cert "$W/dev.crt" --key "$W/dev.key" --concurrency 64 --duration "$DUR" --warmup 1 \
    --csr-count 2000 --server-pid "$SERVER_PID"
EST_RPS=$(result_field "$LAST_RESULT" rps)
stop_pid "$SERVER_PID"

field() { echo "$SCEP_LINE" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
echo
echo "## SCEP PKCSReq ($(date -u '+%Y-%m-%d'))"
machine_md
echo "- openssl speed (1 core): rsa3072 sign ${RSA_SIGN}/s, ecdsap256 sign ${SPEED_SIGN}/s;" \
     "crypto ceiling for SCEP PKCSReq on $(nproc) cores: ${CEIL}/s"
echo
echo "| run | clients | enrollments/s | p50 ms | p99 ms | ok / failed | stored | server CPU per enrollment (us) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
echo "| scep PKCSReq | $CONC | $(field rps) | $(field p50_ms) | $(field p99_ms) | $(field ok) / $(field fail) | $((after - before)) | $SRV_US |"
echo "| est-keepalive (same run) | 64 | ${EST_RPS:-failed} | $(result_field "$LAST_RESULT" p50) | $(result_field "$LAST_RESULT" p99) | $(result_field "$LAST_RESULT" ok) / $(result_field "$LAST_RESULT" err) | | $(result_field "$LAST_RESULT" srv_us) |"
