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

# SIGTERM with requests in flight
pids=()
for i in $(seq 1 $N); do
    curl -sS --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$T/c$i.b64" -o "$T/s$i.p7" -w '%{http_code}' "$EST/simpleenroll" \
        >"$T/s$i.code" 2>/dev/null &
    pids+=($!)
done
sleep 0.05
est_stop
for p in "${pids[@]}"; do wait "$p" || true; done
ok=0
for i in $(seq 1 $N); do
    code=$(cat "$T/s$i.code" 2>/dev/null || true)
    case "$code" in
    200)
        p7_certs "$T/s$i.p7" "$T/s$i.crt"
        s=$(openssl x509 -in "$T/s$i.crt" -noout -serial | cut -d= -f2)
        fp show "$s" --dir "$CA" >/dev/null || fail "answered certificate $s missing after shutdown"
        ok=$((ok + 1)) ;;
    000 | 503) ;; # refused or never connected: fine
    *) fail "request $i during shutdown: HTTP $code" ;;
    esac
done
pass "SIGTERM during load: exit 0; all $ok certificates answered with 200 are stored"
