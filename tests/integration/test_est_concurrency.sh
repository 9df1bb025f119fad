#!/usr/bin/env bash
# Group commit under concurrency: many parallel enrollments (keep-alive and
# new connections) all get distinct certificates, every certificate handed
# out is in the store, the audit chain holds; SIGTERM while requests are in
# flight still exits 0 and nothing answered 200 is missing from the store.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start
token default --uses 1000
N=40
for i in $(seq 1 $N); do est_csr "c$i" "/CN=conc-$i"; done

# N clients at once, each with its own connection
pids=()
for i in $(seq 1 $N); do
    curl -sS --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$T/c$i.b64" -o "$T/c$i.p7" -w '%{http_code}' "$EST/simpleenroll" >"$T/c$i.code" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 1 $N); do
    [ "$(cat "$T/c$i.code")" = 200 ] || fail "parallel enrollment $i: HTTP $(cat "$T/c$i.code")"
    p7_certs "$T/c$i.p7" "$T/c$i.crt"
    openssl x509 -in "$T/c$i.crt" -noout -serial | cut -d= -f2 >>"$T/serials"
    [ "$(openssl x509 -in "$T/c$i.crt" -noout -subject)" = "subject=CN = conc-$i" ] ||
        fail "enrollment $i got someone else's certificate"
done
pass "$N parallel enrollments answered 200, each with its own certificate"
[ "$(sort -u "$T/serials" | wc -l)" = "$N" ] || fail "serials are not distinct"
while read -r s; do fp show "$s" --dir "$CA" >/dev/null || fail "certificate $s not in the store"; done <"$T/serials"
pass "every certificate handed out is in the store"

# keep-alive: one connection, many enrollments in a row (curl reuses it)
args=()
for i in $(seq 1 10); do
    args+=(--data-binary @"$T/c$i.b64" -o "$T/k$i.p7" "$EST/simpleenroll")
    [ "$i" -lt 10 ] && args+=(--next -sS --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" \
        -H 'Content-Type: application/pkcs10')
done
conns=$(curl -sS --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" -H 'Content-Type: application/pkcs10' \
    -w '%{num_connects}\n' "${args[@]}" | awk '{s += $1} END {print s}')
[ "$conns" = 1 ] || fail "keep-alive enrollments used $conns connections"
for i in $(seq 1 10); do
    p7_certs "$T/k$i.p7" "$T/k$i.crt"
    verify_cert "$T/k$i.crt" || fail "keep-alive enrollment $i"
done
pass "10 enrollments on one keep-alive connection"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain broken after concurrent commits"
pass "audit chain verifies after group commits"

# SIGTERM with requests in flight.  Each request must end one of two
# ways: answered 200 with a certificate that verifies (openssl) and is
# stored, or refused cleanly: an HTTP 503, or the connection refused or
# closed without an answer (curl: 7 connect refused, 35 TLS handshake cut,
# 52 empty reply, 55 reset while sending the request, 56 reset) AND no
# certificate committed for it (the store gains exactly as many
# certificates as there were 200 answers: a request committed and then
# dropped would show).  The one exception is the server's own drain limit:
# a request still in flight when it passed may be committed unanswered,
# and the server logs how many it cut ("N requests still in flight"), so
# at most that many certificates may lack their 200.  Anything else fails
# (another status, a timeout, a 200 without a valid certificate).  SIGTERM
# is sent once the first answer is in, so at least one request succeeded
# and the rest are in flight or queued.
before=$(sqlite3 "$CA/fleetpki.db" 'SELECT count(*) FROM certificates')
pids=()
for i in $(seq 1 $N); do
    (
        rc=0
        curl -sS --max-time 60 --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" \
            -H 'Content-Type: application/pkcs10' --data-binary @"$T/c$i.b64" -o "$T/s$i.p7" \
            -w '%{http_code}' "$EST/simpleenroll" >"$T/s$i.code.tmp" 2>/dev/null || rc=$?
        echo "$rc" >"$T/s$i.rc"
        mv "$T/s$i.code.tmp" "$T/s$i.code"
    ) &
    pids+=($!)
done
first=no
for _ in $(seq 1 6000); do
    grep -qsx 200 "$T"/s*.code && { first=yes; break; }
    sleep 0.01
done
[ "$first" = yes ] || fail "no enrollment answered 200 before SIGTERM"
answered=$(find "$T" -maxdepth 1 -name 's*.code' | wc -l)
est_stop
pending=$((N - answered))
for p in "${pids[@]}"; do wait "$p" || true; done
ok=0
refused=0
for i in $(seq 1 $N); do
    code=$(cat "$T/s$i.code")
    rc=$(cat "$T/s$i.rc")
    case "$code" in
    200)
        p7_certs "$T/s$i.p7" "$T/s$i.crt" || fail "request $i during shutdown: 200 without a PKCS#7"
        verify_cert "$T/s$i.crt" || fail "request $i during shutdown: certificate does not verify"
        [ "$(openssl x509 -in "$T/s$i.crt" -noout -subject)" = "subject=CN = conc-$i" ] ||
            fail "request $i during shutdown got someone else's certificate"
        s=$(openssl x509 -in "$T/s$i.crt" -noout -serial | cut -d= -f2)
        fp show "$s" --dir "$CA" >/dev/null || fail "answered certificate $s missing after shutdown"
        ok=$((ok + 1)) ;;
    503) refused=$((refused + 1)) ;;
    000)
        case "$rc" in
        7 | 35 | 52 | 55 | 56) refused=$((refused + 1)) ;;
        *) fail "request $i during shutdown: no answer, curl exit $rc" ;;
        esac ;;
    *) fail "request $i during shutdown: HTTP $code (curl exit $rc)" ;;
    esac
done
[ "$ok" -ge 1 ] || fail "no request succeeded during shutdown"
added=$(($(sqlite3 "$CA/fleetpki.db" 'SELECT count(*) FROM certificates') - before))
cut=$(sed -n 's/.*shutdown: \([0-9]*\) requests still in flight after.*/\1/p' "$T/server.log" |
    awk '{s += $1} END {print s + 0}')
[ "$added" -ge "$ok" ] || fail "shutdown: $added certificates stored but $ok answered with one"
[ "$added" -le $((ok + cut)) ] || {
    tail -20 "$T/server.log" >&2
    fail "shutdown: $added certificates stored but $ok answered with one ($cut cut at the drain limit)"
}
[ "$cut" = 0 ] || echo "note - the drain limit passed with $cut requests in flight (server log)"
pass "SIGTERM during load ($pending of $N unanswered at SIGTERM): exit 0; $ok answered 200 with a valid, stored certificate, $refused refused cleanly, none committed unanswered"
