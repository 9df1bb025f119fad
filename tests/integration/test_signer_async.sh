#!/usr/bin/env bash
# Signatures that do not stop a network worker (issue 16, signer/async.h):
# with the separate signer (the default) a worker sends a signature request
# and serves other connections until the answer is in.  The signer process
# is held (SIGSTOP) so that requests are certainly out when each check
# runs, and what is out is read from the signer's own sockets (ss: receive
# queues of the signer's channels), never guessed from a delay:
#   1. many enrollments and fresh OCSP answers are out at once on 2
#      workers, and meanwhile the workers still answer requests that need
#      no signature (before: each worker slept in read() on its one
#      channel, so two requests out stopped both workers);
#   2. the signer dies with all of them out: every one is answered 503 /
#      tryLater (no hang, no 500), the supervisor starts a new signer, and
#      enrollments and fresh OCSP answers succeed again and verify;
#   3. a client closes its connection while its enrollment's signature is
#      out: the enrollment still completes, its certificate is recorded,
#      and the server goes on serving;
#   4. SIGTERM with signatures out: the drain waits for them, the clients
#      get their certificates, the server exits 0;
# and the server's exit log counts the jobs that paused (the async path
# ran; with signer_async = 0 none do, checked last).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"

command -v ss >/dev/null || { echo "skip: ss (iproute2) is needed to see the signer's queues"; exit 77; }

enroll_bg() { # enroll_bg NAME: background enrollment; status in $T/st.NAME
    est_csr "$1" "/CN=$1"
    curl -sS --cacert "$CA/root.crt" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$T/$1.b64" -o "$T/body.$1" -w '%{http_code}' --max-time 120 \
        -u "$TOK_ID:$TOK_SECRET" "$EST/simpleenroll" >"$T/st.$1" 2>/dev/null &
    BG+=($!)
}
ocsp_bg() { # ocsp_bg CERT NAME: background fresh (nonce) OCSP; output in $T/o.NAME
    openssl ocsp -issuer "$CA/issuing.crt" -cert "$1" -url "http://$HTTP/ocsp" \
        -CAfile "$T/chain.pem" -nonce -timeout 120 >"$T/o.$2" 2>&1 &
    BG+=($!)
}
queued() { # requests waiting in signer process $1's channels: a worker
    # pipelines its requests on one channel, so count bytes, 50 a request
    # (a SIGN frame: length 4, op 1, key id 4, name length 1, "SHA2-256" 8,
    # digest 32; every key here is P-256); bytes that are not whole
    # requests count as none
    ss -xpn 2>/dev/null | awk -v p="pid=$1," 'index($0, p) {b += $3} END {print (b % 50 == 0) ? b / 50 : 0}'
}
wait_queued() { # wait_queued PID N: until N requests wait in its channels
    local _
    for _ in $(seq 1 600); do
        [ "$(queued "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "only $(queued "$1") of $2 signature requests reached the held signer at once"
}
signer_of() { pgrep -P "$1" -x fleetpki-signer || true; }
hold() { # hold PID: SIGSTOP, and wait until it took effect (state T)
    local _
    kill -STOP "$1"
    for _ in $(seq 1 300); do
        [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = T ] && return 0
        sleep 0.05
    done
    fail "process $1 did not stop"
}
new_signer() { # new_signer SUP OLD: wait for a restarted signer; prints its pid
    local n="" _
    for _ in $(seq 1 600); do
        n=$(signer_of "$1")
        [ -n "$n" ] && [ "$n" != "$2" ] && grep -q "signer process $n .*serves the network side again" "$T/server.log" && break
        sleep 0.1
    done
    [ -n "$n" ] && [ "$n" != "$2" ] || { tail -20 "$T/server.log" >&2; fail "no new signer process"; }
    echo "$n"
}

fp_new_ca "$CA" >/dev/null
cat "$CA/root.crt" "$CA/issuing.crt" >"$T/chain.pem"
# every answer freshly signed: no OCSP cache
printf '\n[server]\nocsp_cache = no\n' >>"$CA/fleetpki.conf"
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
EST="https://$HTTPS/.well-known/est"
SUP=$(pgrep -P "$SRV_PID" -x fleetpki-sigsup || true)
[ -n "$SUP" ] || fail "no signer supervisor under the server"
SIGNER=$(signer_of "$SUP")
[ -n "$SIGNER" ] || fail "no signer process"
token default --uses 1000
est_csr d0 /CN=d0
s=$(est_post "$EST/simpleenroll" "$T/d0.b64" -u "$TOK_ID:$TOK_SECRET" --max-time 60)
expect_status 200 "enrollment with the separate signer" "$s"
p7_certs "$T/body" "$T/d0.crt"
verify_cert "$T/d0.crt" || fail "d0 does not verify"

# ---- 1 and 2: many out at once, then the signer dies ----
hold "$SIGNER"
BG=()
for i in 1 2 3 4 5 6; do enroll_bg "p$i"; done
for i in 1 2 3 4; do ocsp_bg "$T/d0.crt" "p$i"; done
wait_queued "$SIGNER" 10
pass "10 signatures out at once on 2 workers"
s=$(est_get "$EST/cacerts" --max-time 30)
expect_status 200 "the workers answer cacerts while 10 signatures are out" "$s"
hold "$SUP"
kill -KILL "$SIGNER"
wait "${BG[@]}" || true
for i in 1 2 3 4 5 6; do
    [ "$(cat "$T/st.p$i")" = 503 ] || fail "enrollment p$i with the signer dead: HTTP $(cat "$T/st.p$i")"
    grep -q key-unavailable "$T/body.p$i" || fail "p$i: the 503 does not name the cause"
done
for i in 1 2 3 4; do
    grep -qi trylater "$T/o.p$i" || { cat "$T/o.p$i" >&2; fail "OCSP p$i with the signer dead is not tryLater"; }
done
pass "the signer died with 10 signatures out: 6 enrollments 503 key-unavailable, 4 OCSP tryLater"
kill -CONT "$SUP"
SIGNER=$(new_signer "$SUP" "$SIGNER")
est_csr a1 /CN=a1
s=$(est_post "$EST/simpleenroll" "$T/a1.b64" -u "$TOK_ID:$TOK_SECRET" --max-time 60)
expect_status 200 "enrollment after the restart" "$s"
p7_certs "$T/body" "$T/a1.crt"
verify_cert "$T/a1.crt" || fail "a1 does not verify"
openssl ocsp -issuer "$CA/issuing.crt" -cert "$T/a1.crt" -url "http://$HTTP/ocsp" \
    -CAfile "$T/chain.pem" -nonce -timeout 60 >"$T/o.a1" 2>&1 || true
grep -q "a1.crt: good" "$T/o.a1" && grep -q "Response verify OK" "$T/o.a1" ||
    { cat "$T/o.a1" >&2; fail "fresh OCSP after the restart"; }
pass "after the restart: enrollment and fresh OCSP signed and verified"

# ---- 3: the client goes away while its signature is out ----
hold "$SIGNER"
BG=()
enroll_bg gone
wait_queued "$SIGNER" 1
kill "${BG[0]}" 2>/dev/null || true
wait "${BG[0]}" 2>/dev/null || true
kill -CONT "$SIGNER"
found=""
for _ in $(seq 1 300); do
    fp list --dir "$CA" >"$T/list" 2>/dev/null || true
    grep -q "CN=gone" "$T/list" && { found=1; break; }
    sleep 0.1
done
[ -n "$found" ] || { cat "$T/list" >&2; fail "the enrollment of a client that left was not recorded"; }
est_csr a2 /CN=a2
s=$(est_post "$EST/simpleenroll" "$T/a2.b64" -u "$TOK_ID:$TOK_SECRET" --max-time 60)
expect_status 200 "enrollment after a client left mid-signature" "$s"
pass "a client closed its connection while its signature was out: certificate recorded, server fine"

# ---- 4: SIGTERM with signatures out ----
hold "$SIGNER"
BG=()
for i in 1 2 3; do enroll_bg "t$i"; done
wait_queued "$SIGNER" 3
kill -TERM "$SRV_PID"
for _ in $(seq 1 300); do grep -q "shutting down" "$T/server.log" && break; sleep 0.1; done
grep -q "shutting down" "$T/server.log" || fail "the server did not start its drain"
kill -CONT "$SIGNER"
rc=0
wait "$SRV_PID" || rc=$?
[ "$rc" = 0 ] || { tail -20 "$T/server.log" >&2; fail "server exited $rc after a drain with signatures out"; }
wait "${BG[@]}" || true
for i in 1 2 3; do
    [ "$(cat "$T/st.t$i")" = 200 ] || fail "enrollment t$i across the drain: HTTP $(cat "$T/st.t$i")"
    p7_certs "$T/body.t$i" "$T/t$i.crt"
    verify_cert "$T/t$i.crt" || fail "t$i does not verify"
done
pass "SIGTERM with 3 signatures out: all answered with certificates, exit 0"
grep -q "left unfinished" "$T/server.log" && fail "signing jobs left unfinished at exit"
paused=$(sed -n 's/.*signing jobs: [0-9]* run, \([0-9]*\) pauses.*/\1/p' "$T/server.log" | awk '{s+=$1} END {print s + 0}')
[ "$paused" -ge 10 ] || { grep "signing jobs" "$T/server.log" >&2; fail "too few signing jobs paused ($paused)"; }
pass "the workers' signing jobs paused $paused times (the asynchronous path ran)"

# ---- signer_async = 0: every signature waits (the blocking path) ----
printf '\n[server]\nsigner_async = 0\n' >>"$CA/fleetpki.conf"
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
EST="https://$HTTPS/.well-known/est"
est_csr b1 /CN=b1
s=$(est_post "$EST/simpleenroll" "$T/b1.b64" -u "$TOK_ID:$TOK_SECRET" --max-time 60)
expect_status 200 "enrollment with signer_async = 0" "$s"
p7_certs "$T/body" "$T/b1.crt"
verify_cert "$T/b1.crt" || fail "b1 does not verify"
fp_serve_stop
grep -q "signing jobs:" "$T/server.log" && { grep "signing jobs" "$T/server.log" >&2; fail "signer_async = 0 still ran signing jobs"; }
pass "signer_async = 0 signs the blocking way (no signing job)"
