#!/usr/bin/env bash
# Smoke test of the benchmark tools (bench/) against the real server: the
# load generator's EST and OCSP modes get only correct answers, its checks
# catch a wrong OCSP status, it refuses non-loopback targets, and populate
# writes what it claims (counts, revocations, serial list, audit chain).
# Fixed request counts, generous duration caps; no timing is asserted.
source "$(dirname "$0")/lib.sh"

LOADGEN=${FP_BUILD_DIR:-}/bench/loadgen
POPULATE=${FP_BUILD_DIR:-}/bench/populate
# Nothing to test without the tools: say so with ctest's skip code (77,
# SKIP_RETURN_CODE in tests/CMakeLists.txt), never a silent pass.
if [ ! -x "$LOADGEN" ] || [ ! -x "$POPULATE" ]; then
    echo "SKIP: bench tools not built (FP_BENCH=OFF, or FP_BUILD_DIR unset: '${FP_BUILD_DIR:-}')"
    exit 77
fi
for tool in sqlite3 python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
db_count() { sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM certificates $1"; }

CA=$(fp_new_ca "$T/ca")

# ---- populate ----
base=$(db_count '')
base_rev=$(db_count 'WHERE status = 1')
"$POPULATE" --dir "$CA" --count 3000 --revoked-pct 20 --batch 500 \
    --serials-out "$T/serials.txt" >"$T/pop.out" 2>&1 || { cat "$T/pop.out"; fail "populate"; }
[ $(($(db_count '') - base)) = 3000 ] || fail "populate stored $(($(db_count '') - base)) certificates, expected 3000"
[ "$(wc -l <"$T/serials.txt")" = 3000 ] || fail "serial list length"
rev_file=$(grep -c ' revoked$' "$T/serials.txt")
[ $(($(db_count 'WHERE status = 1') - base_rev)) = "$rev_file" ] || fail "revoked count differs from serial list"
[ "$rev_file" -gt 300 ] && [ "$rev_file" -lt 900 ] || fail "revoked fraction far from 20% ($rev_file)"
[ "$(sqlite3 "$CA/fleetpki.db" 'SELECT count(DISTINCT reason) FROM certificates WHERE status = 1')" -ge 3 ] ||
    fail "revocation reasons not varied"
s=$(grep -m1 ' revoked$' "$T/serials.txt" | cut -d' ' -f1)
fp show --dir "$CA" "$s" | grep -qi revoked || fail "fleetpki show does not see a populated revocation"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain broken by populate"
pass "populate: counts, revocations, serial list, audit chain"

"$POPULATE" --dir "$CA" --count 200 --revoked-pct 50 --revoke-mode api >/dev/null 2>&1 ||
    fail "populate --revoke-mode api"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain after api revocations"
pass "populate --revoke-mode api"

# ---- server ----
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/dev.key" \
    -subj "/CN=bench-smoke" -out "$T/dev.csr" 2>/dev/null
fp issue --dir "$CA" --csr "$T/dev.csr" --profile device --out "$T/dev.crt" >/dev/null
cat "$CA/issuing.crt" "$CA/root.crt" >"$T/trust.pem"
"$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --quiet \
    --addr-file "$T/addr" 2>"$T/server.log" &
SRV=$!
fp_track "$SRV"
for _ in $(seq 1 200); do [ -s "$T/addr" ] && break; sleep 0.05; done
[ -s "$T/addr" ] || { cat "$T/server.log" >&2; fail "server did not start"; }
HTTPS_PORT=$(sed -n 's/^https=.*://p' "$T/addr")
HTTP_PORT=$(sed -n 's/^http=.*://p' "$T/addr")

run() {
    local out
    out=$("$LOADGEN" "$@" --duration 120 --server-pid "$SRV" 2>&1) || true
    grep '^RESULT ' <<<"$out" || { echo "$out" >&2; echo "RESULT none"; }
}

# ---- OCSP: every answer checked against the store's truth ----
for m in ocsp-post ocsp-get; do
    r=$(run "$m" --port "$HTTP_PORT" --issuer "$CA/issuing.crt" --serials "$T/serials.txt" \
        --ocsp-count 500 --concurrency 4 --requests 400 --validate-every 1)
    [ "$(field "$r" ok)" = 400 ] && [ "$(field "$r" err)" = 0 ] || fail "$m: $r"
    pass "loadgen $m: 400 answers, statuses as stored"
done

# a serial list that lies (every serial "good") must produce status errors
sed 's/ revoked$/ good/' "$T/serials.txt" >"$T/lying.txt"
r=$(run ocsp-post --port "$HTTP_PORT" --issuer "$CA/issuing.crt" --serials "$T/lying.txt" \
    --ocsp-count 3000 --unknown-pct 0 --concurrency 2 --requests 300 --validate-every 1)
[ "$(field "$r" err)" -gt 0 ] || fail "wrong OCSP statuses went unnoticed: $r"
pass "loadgen notices a wrong OCSP status"

# ---- EST ----
before=$(db_count '')
est=(--port "$HTTPS_PORT" --cacert "$T/trust.pem" --cert "$T/dev.crt" --key "$T/dev.key"
     --concurrency 4 --csr-count 8 --validate-every 1)
for m in est-keepalive est-newconn est-serverkeygen; do
    r=$(run "$m" "${est[@]}" --requests 24)
    [ "$(field "$r" ok)" = 24 ] && [ "$(field "$r" err)" = 0 ] || fail "$m: $r"
    pass "loadgen $m: 24 enrollments"
done
[ $(($(db_count '') - before)) -ge 72 ] || fail "fewer certificates stored than answered"
pass "every answered enrollment is in the store"

# the floors: cacerts over new and kept-alive connections, no certificate issued
before=$(db_count '')
for m in floor-newconn floor-keepalive; do
    r=$(run "$m" "${est[@]}" --requests 20)
    [ "$(field "$r" ok)" = 20 ] && [ "$(field "$r" err)" = 0 ] || fail "$m: $r"
    pass "loadgen $m: 20 cacerts answers, each a valid PKCS#7"
done
[ "$(db_count '')" = "$before" ] || fail "a floor run issued certificates"
# a path that is not a certs-only PKCS#7 is not counted as an answer
r=$(run floor-keepalive "${est[@]}" --requests 10 --path /.well-known/est/csrattrs)
[ "$(field "$r" ok)" = 0 ] || fail "floor counted a non-PKCS#7 answer: $r"
pass "loadgen floor mode checks what it counts"

# without a client certificate the server must refuse; loadgen counts errors
r=$(run est-keepalive --port "$HTTPS_PORT" --cacert "$T/trust.pem" --concurrency 2 \
    --csr-count 2 --requests 10)
[ "$(field "$r" ok)" = 0 ] && [ "$(field "$r" err)" -gt 0 ] || fail "unauthenticated enrollments: $r"
pass "loadgen reports refused enrollments as errors"

# ---- loopback only ----
expect_code 2 "loadgen refuses a non-loopback target" \
    "$LOADGEN" ocsp-get --host 192.0.2.1 --port 80 --issuer "$CA/issuing.crt" --duration 1
expect_code 2 "loadgen refuses an unbounded duration" \
    "$LOADGEN" ocsp-get --port "$HTTP_PORT" --issuer "$CA/issuing.crt" --duration 0

kill -TERM "$SRV"
wait "$SRV" || fail "server exit status after SIGTERM"
pass "server stopped cleanly"

# ---- bench/run-abuse.sh, reduced: scenario 4 (idle + slowloris) only,
# fewer connections than the server's cap so none is closed during the
# short run: every abuser connection is still open at the end, the
# measuring client sent all its requests, the table has its row ----
BENCH_SRC=$(cd "$(dirname "$0")/../.." && pwd)/bench
out=$(BENCH_RESULTS="$T/results" BENCH_QUIET_WAIT=0 FLEETPKI="$FLEETPKI" \
    ABUSE_IDLE=60 ABUSE_SLOW=40 ABUSE_REQUESTS=5 ABUSE_SECONDS=1 ABUSE_RAMP=1 ABUSE_SCENARIOS=4 \
    timeout 120 "$BENCH_SRC/run-abuse.sh" 2>&1) || { echo "$out" >&2; fail "run-abuse.sh failed"; }
row=$(grep '^| 4-both |' "$T/results/abuse.md") || { echo "$out" >&2; fail "run-abuse.sh: no 4-both row"; }
grep -q 'open_at_end=100 opened=100 ' "$T/results/abuse.md" || { echo "$out" >&2; fail "run-abuse.sh: abusers not all open"; }
grep -q 'server died' <<<"$row" && fail "run-abuse.sh: server died: $row"
grep -q 'not sent' <<<"$row" && fail "run-abuse.sh: client requests not sent: $row"
pass "bench/run-abuse.sh (reduced) runs and reports: $row"
