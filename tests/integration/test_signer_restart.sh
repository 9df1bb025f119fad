#!/usr/bin/env bash
# A signer process that dies is restarted (issue 16): `fleetpki serve` with
# the separate signer (the default) is loaded with fresh OCSP requests and
# EST enrollments, the signer is killed with SIGKILL in the middle, and:
# meanwhile signatures answer 503 / tryLater (never a crash, a 500 or a
# dropped connection), the supervisor logs the death and starts a new
# signer, and afterwards enrollments and fresh OCSP answers succeed again
# and verify. The 503 window is made certain by stopping the supervisor
# (SIGSTOP) before the kill and letting it go after the checks. Before the
# supervisor existed a dead signer stayed dead: every later signature 503.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"

enroll() { # enroll NAME -> HTTP status; certificate in $T/NAME.crt on 200
    local s
    est_csr "$1" "/CN=$1"
    s=$(est_post "$EST/simpleenroll" "$T/$1.b64" -u "$TOK_ID:$TOK_SECRET" --max-time 60)
    [ "$s" = 200 ] && p7_certs "$T/body" "$T/$1.crt"
    echo "$s"
}
ocsp_fresh() { # a fresh (nonce) OCSP answer for $1, verified; output in $2
    openssl ocsp -issuer "$CA/issuing.crt" -cert "$1" -url "http://$HTTP/ocsp" \
        -CAfile "$T/chain.pem" -nonce -timeout 60 >"$2" 2>&1
}
signer_of() { # the signer process under supervisor $1 ('' if none yet)
    pgrep -P "$1" -x fleetpki-signer || true
}

fp_new_ca "$CA" >/dev/null
cat "$CA/root.crt" "$CA/issuing.crt" >"$T/chain.pem"
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
EST="https://$HTTPS/.well-known/est"
SUP=$(pgrep -P "$SRV_PID" -x fleetpki-sigsup || true)
[ -n "$SUP" ] || fail "no signer supervisor under the server (is separate the default?)"
SIGNER=$(signer_of "$SUP")
[ -n "$SIGNER" ] || fail "no signer process under the supervisor"
token default --uses 1000
[ "$(enroll d0)" = 200 ] || fail "enrollment before the kill"

# ---- load: fresh OCSP answers and enrollments, in the background ----
load() { # load TAG: until $T/stop exists, one status per line in $T/load.TAG
    local i=0
    while [ ! -e "$T/stop" ]; do
        i=$((i + 1))
        if [ "$1" = ocsp ]; then
            if ocsp_fresh "$T/d0.crt" "$T/lo.$1"; then
                if grep -q "d0.crt: good" "$T/lo.$1" && grep -q "Response verify OK" "$T/lo.$1"; then
                    echo good
                else
                    echo bad
                fi
            elif grep -qi trylater "$T/lo.$1"; then
                echo trylater
            else
                echo "fail: $(head -c 200 "$T/lo.$1" | tr '\n' ' ')"
            fi
        else
            est_csr "l$i" "/CN=l$i"
            curl -sS --cacert "$CA/root.crt" -H 'Content-Type: application/pkcs10' \
                --data-binary @"$T/l$i.b64" -o /dev/null -w '%{http_code}\n' --max-time 60 \
                -u "$TOK_ID:$TOK_SECRET" "$EST/simpleenroll" || echo "curl-failed"
        fi
    done >"$T/load.$1"
}
load ocsp & L1=$!; fp_track "$L1"
load est & L2=$!; fp_track "$L2"
for _ in $(seq 1 300); do # until each loop has at least one answer (hang guard)
    [ -s "$T/load.ocsp" ] && [ -s "$T/load.est" ] && break
    sleep 0.1
done

# ---- the kill, with the supervisor held so the 503 window is certain ----
kill -STOP "$SUP"
kill -KILL "$SIGNER"
for _ in $(seq 1 300); do [ -d "/proc/$SIGNER" ] && [ "$(awk '{print $3}' "/proc/$SIGNER/stat" 2>/dev/null)" != Z ] || break; sleep 0.1; done
s=$(enroll dead1)
expect_status 503 "signer dead: EST enrollment answers 503" "$s"
grep -q key-unavailable "$T/body" || fail "the 503 does not name the cause"
ocsp_fresh "$T/d0.crt" "$T/o.dead" || true
grep -qi trylater "$T/o.dead" || { cat "$T/o.dead" >&2; fail "fresh OCSP without a signer is not tryLater"; }
pass "signer killed mid-load: enrollments 503, fresh OCSP tryLater"
kill -CONT "$SUP"

# ---- the new signer ----
NEW=""
for _ in $(seq 1 600); do # hang guard; the first restart comes after 0.1 s
    NEW=$(signer_of "$SUP")
    [ -n "$NEW" ] && [ "$NEW" != "$SIGNER" ] && grep -q "signer process $NEW .*serves the network side again" "$T/server.log" && break
    sleep 0.1
done
[ -n "$NEW" ] && [ "$NEW" != "$SIGNER" ] || { tail -20 "$T/server.log" >&2; fail "no new signer process"; }
grep -q "signer process $SIGNER died (killed by signal 9)" "$T/server.log" ||
    { tail -20 "$T/server.log" >&2; fail "the death is not logged"; }
pass "the supervisor logged the death and started signer $NEW"
[ "$(enroll after1)" = 200 ] || { cat "$T/body" >&2; fail "enrollment after the restart"; }
verify_cert "$T/after1.crt" || fail "certificate signed by the new signer does not verify"
ocsp_fresh "$T/after1.crt" "$T/o.after" && grep -q "Response verify OK" "$T/o.after" &&
    grep -q "after1.crt: good" "$T/o.after" || { cat "$T/o.after" >&2; fail "fresh OCSP after the restart"; }
pass "after the restart: enrollment and fresh OCSP answers signed and verified"

# the load loops see success again too
n_ocsp=$(wc -l <"$T/load.ocsp"); n_est=$(wc -l <"$T/load.est")
for _ in $(seq 1 600); do
    [ "$(tail -n +"$((n_ocsp + 1))" "$T/load.ocsp" | grep -c '^good$')" -ge 2 ] &&
        [ "$(tail -n +"$((n_est + 1))" "$T/load.est" | grep -c '^200$')" -ge 2 ] && break
    sleep 0.1
done
touch "$T/stop"
wait "$L1" "$L2"
[ "$(tail -n +"$((n_ocsp + 1))" "$T/load.ocsp" | grep -c '^good$')" -ge 2 ] || fail "OCSP load did not recover"
[ "$(tail -n +"$((n_est + 1))" "$T/load.est" | grep -c '^200$')" -ge 2 ] || fail "EST load did not recover"
bad=$(grep -hvE '^(good|trylater|200|503)$' "$T/load.ocsp" "$T/load.est" || true)
[ -z "$bad" ] || { echo "$bad" | sort | uniq -c >&2; fail "under load: answers other than success, 503 or tryLater"; }
pass "load: $(grep -c . "$T/load.ocsp") OCSP and $(grep -c . "$T/load.est") EST requests, only successes and 503/tryLater, success after the restart"
kill -0 "$SRV_PID" || fail "the server died"
fp_serve_stop
