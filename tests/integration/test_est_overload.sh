#!/usr/bin/env bash
# Overload and drain, made deterministic with FLEETPKI_TEST_COMMIT_DELAY_MS
# (a test-only pause before each group commit):
#  - more enrollments waiting for the commit than [server]
#    max_pending_commits get 503 with Retry-After, the others 200;
#  - so do more than that waiting for their signature (signer stopped);
#  - SIGTERM while enrollments wait for their commit: they still finish
#    with 200 and their certificates are stored, then the server exits 0.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

start_server() {
    rm -f "$T/addr"
    FLEETPKI_TEST_COMMIT_DELAY_MS=$1 "$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 \
        --http '' --addr-file "$T/addr" 2>"$T/server.log" &
    SRV_PID=$!
    fp_track "$SRV_PID"
    for _ in $(seq 1 100); do [ -s "$T/addr" ] && break; sleep 0.05; done
    [ -s "$T/addr" ] || { cat "$T/server.log" >&2; fail "server did not start"; }
    EST="https://$(sed -n 's/^https=//p' "$T/addr")/.well-known/est"
}

enroll_bg() { # enroll_bg NAME: background enrollment, status in $T/NAME.code
    curl -sS --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$T/$1.b64" -D "$T/$1.h" -o "$T/$1.p7" -w '%{http_code}' "$EST/simpleenroll" \
        >"$T/$1.code" 2>/dev/null &
    pids+=($!)
}

fp_new_ca "$CA" >/dev/null
sed -i 's/^max_pending_commits = .*/max_pending_commits = 1/' "$CA/fleetpki.conf"
grep -q '^max_pending_commits = 1$' "$CA/fleetpki.conf" || fail "max_pending_commits not in the config"
start_server 1500
token default --uses 100
N=8
for i in $(seq 1 $N); do est_csr "o$i" "/CN=over-$i"; done
pids=()
for i in $(seq 1 $N); do enroll_bg "o$i"; done
for p in "${pids[@]}"; do wait "$p" || true; done
ok=0 busy=0
for i in $(seq 1 $N); do
    case "$(cat "$T/o$i.code")" in
    200)
        p7_certs "$T/o$i.p7" "$T/o$i.crt"
        s=$(openssl x509 -in "$T/o$i.crt" -noout -serial | cut -d= -f2)
        fp show "$s" --dir "$CA" >/dev/null || fail "answered certificate not stored"
        ok=$((ok + 1)) ;;
    503)
        grep -qi '^retry-after: ' "$T/o$i.h" || fail "503 without Retry-After"
        busy=$((busy + 1)) ;;
    *) fail "enrollment $i under overload: HTTP $(cat "$T/o$i.code")" ;;
    esac
done
[ "$ok" -ge 1 ] || fail "no enrollment got through"
[ "$busy" -ge 1 ] || fail "no 503 although $N enrollments waited for one slow commit"
pass "over max_pending_commits: $busy x 503 with Retry-After, $ok x 200 (all stored)"
est_stop

# enrollments still waiting for their signature count too: with the
# signer process stopped none reaches the committer's queue, yet only
# max_pending_commits (1) of them may be in progress
start_server 0
SUP=$(pgrep -P "$SRV_PID" -x fleetpki-sigsup || true)
SIGNER=""; [ -n "$SUP" ] && SIGNER=$(pgrep -P "$SUP" -x fleetpki-signer || true)
[ -n "$SIGNER" ] || fail "no signer process under the server"
kill -STOP "$SUP" "$SIGNER"
pids=()
for i in 1 2 3; do est_csr "s$i" "/CN=sign-$i"; enroll_bg "s$i"; done
# two of the three are refused at once while the signer is stopped
for _ in $(seq 1 600); do
    n=0
    for i in 1 2 3; do [ "$(cat "$T/s$i.code" 2>/dev/null)" = 503 ] && n=$((n + 1)); done
    [ "$n" -ge 2 ] && break
    sleep 0.1
done
kill -CONT "$SIGNER" "$SUP"
for p in "${pids[@]}"; do wait "$p" || true; done
ok=0 busy=0
for i in 1 2 3; do
    case "$(cat "$T/s$i.code")" in
    200) ok=$((ok + 1)) ;;
    503) busy=$((busy + 1)) ;;
    *) fail "enrollment s$i while the signer was stopped: HTTP $(cat "$T/s$i.code")" ;;
    esac
done
[ "$ok" = 1 ] && [ "$busy" = 2 ] ||
    fail "enrollments waiting for their signature not counted: $ok x 200, $busy x 503 (expected 1 and 2)"
pass "enrollments waiting for their signature count against max_pending_commits (1 x 200, 2 x 503)"
est_stop

# drain: requests waiting for their commit finish before the exit
sed -i 's/^max_pending_commits = .*/max_pending_commits = 4096/' "$CA/fleetpki.conf"
start_server 2000
pids=()
for i in 1 2 3; do est_csr "d$i" "/CN=drain-$i"; enroll_bg "d$i"; done
sleep 1 # the enrollments reach the server and wait for the 2 s commit
est_stop
for p in "${pids[@]}"; do wait "$p" || true; done
ok=0
for i in 1 2 3; do
    code=$(cat "$T/d$i.code")
    case "$code" in
    200)
        p7_certs "$T/d$i.p7" "$T/d$i.crt"
        s=$(openssl x509 -in "$T/d$i.crt" -noout -serial | cut -d= -f2)
        fp show "$s" --dir "$CA" >/dev/null || fail "certificate answered during drain not stored"
        ok=$((ok + 1)) ;;
    *) fail "enrollment $i in flight at SIGTERM: HTTP $code (expected 200)" ;;
    esac
done
pass "SIGTERM: the $ok enrollments waiting for their commit finished with 200 and are stored"
grep -q 'shutting down' "$T/server.log" || fail "no shutdown log line"
