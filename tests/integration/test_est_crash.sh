#!/usr/bin/env bash
# An enrollment token's use and the certificate it paid for are stored
# together or not at all: the EST server killed (SIGKILL, as a power cut)
# between the token use and the commit leaves the token unspent and no
# certificate; killed after the commit, both are there.  Either way the
# device can still enroll with the uses it has left.  Then random kills
# under concurrent enrollments: uses spent always equal certificates stored.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"

DB=$CA/fleetpki.db
q() { sqlite3 "$DB" "$1"; }

run_server() { # [crash point]
    if [ -n "${1:-}" ]; then
        FLEETPKI_TEST_CRASH=$1 fp_serve_run
    else
        fp_serve_run
    fi
    EST="https://$HTTPS/.well-known/est"
}

# state: uses left / certificates for the device / token.use audit rows
state() {
    echo "$(q "SELECT uses_left FROM enroll_tokens WHERE id = '$TOK_ID'")/$(q "SELECT count(*) FROM certificates WHERE subject LIKE 'CN=crash-dev%'")/$(q "SELECT count(*) FROM audit WHERE action = 'token.use' AND object = '$TOK_ID'")"
}

consistent() { # desc
    [ "$(q 'PRAGMA integrity_check')" = ok ] || fail "$1: integrity_check"
    fp audit verify --dir "$CA" >"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "$1: audit chain broken"; }
}

enroll_killed_at() { # point: the enrollment must kill the server there
    local s rc=0
    run_server "$1"
    rm -f "$T/body"
    s=$(est_post "$EST/simpleenroll" "$T/dev.b64" -u "$TOK_ID:$TOK_SECRET" 2>/dev/null) || true
    wait "$SRV_PID" || rc=$?
    [ "$rc" = 137 ] || { cat "$T/server.log" >&2; fail "$1: expected death by SIGKILL, got exit $rc"; }
    [ "$s" != 200 ] || fail "$1: a certificate was handed out"
    [ ! -s "$T/body" ] || fail "$1: the client got a body"
}

fp_new_ca "$CA" >/dev/null
token default --uses 2
est_csr dev "/CN=crash-dev"
[ "$(state)" = "2/0/0" ] || fail "unexpected start state $(state)"

for point in store-after-token-use store-before-commit; do
    enroll_killed_at "$point"
    [ "$(state)" = "2/0/0" ] || fail "$point: token use and certificate disagree: uses/certs/audited $(state), want 2/0/0"
    consistent "$point"
    pass "killed at $point: token unspent, no certificate"
done

enroll_killed_at store-after-commit
[ "$(state)" = "1/1/1" ] || fail "store-after-commit: uses/certs/audited $(state), want 1/1/1"
consistent store-after-commit
pass "killed at store-after-commit: token use and certificate both durable"

# the device is not locked out: the remaining use still pays, then no more
run_server
s=$(est_post "$EST/simpleenroll" "$T/dev.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "the token's last use enrolls after the crashes" "$s"
p7_certs "$T/body" "$T/dev.pem"
verify_cert "$T/dev.pem"
serial=$(openssl x509 -in "$T/dev.pem" -noout -serial | cut -d= -f2)
[ "$(q "SELECT count(*) FROM certificates WHERE serial = '$serial'")" = 1 ] || fail "handed-out certificate not in the store"
s=$(est_post "$EST/simpleenroll" "$T/dev.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 401 "the used-up token is refused" "$s"
[ "$(state)" = "0/2/2" ] || fail "end: uses/certs/audited $(state), want 0/2/2"
est_stop
consistent end
pass "two uses, two certificates, two token.use rows"

# --- random SIGKILLs while clients enroll concurrently (group commit) ---
token default --uses 1000000
BIG=$TOK_ID
BIG_SECRET=$TOK_SECRET
mkdir -p "$T/out.d"
client() { # name: enroll in a loop, keep what was handed out
    local i=0 s
    while :; do
        i=$((i + 1))
        # a whole answer only: a kill mid-body still reports 200
        if s=$(curl -sS --cacert "$CA/root.crt" -H 'Content-Type: application/pkcs10' \
            --data-binary @"$T/dev.b64" -u "$BIG:$BIG_SECRET" -o "$T/out.d/$1.$i.tmp" \
            -w '%{http_code}' "$EST/simpleenroll" 2>/dev/null) && [ "$s" = 200 ]; then
            mv "$T/out.d/$1.$i.tmp" "$T/out.d/$1.$i.p7"
        fi
    done
}
for round in 1 2 3; do
    run_server
    pids=()
    for c in 1 2 3 4; do client "r$round-c$c" & pids+=($!); done
    # at least one enrollment per round first (sanitizer builds are slow),
    # then a kill at a random moment
    fp_wait_more "$T/out.d" '*.p7' "$(find "$T/out.d" -name '*.p7' | wc -l)"
    sleep "0.$((RANDOM % 9 + 1))"
    kill -KILL "$SRV_PID"
    wait "$SRV_PID" 2>/dev/null || true
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    consistent "random kill round $round"
    spent=$((1000000 - $(q "SELECT uses_left FROM enroll_tokens WHERE id = '$BIG'")))
    used=$(q "SELECT count(*) FROM audit WHERE action = 'token.use' AND object = '$BIG'")
    certs=$(q "SELECT count(*) FROM certificates WHERE serial IN (SELECT object FROM audit
               WHERE action = 'cert.issue' AND actor = 'est:token:$BIG')")
    [ "$spent" = "$used" ] && [ "$spent" = "$certs" ] \
        || fail "round $round: $spent uses spent, $used audited, $certs certificates paid for"
done
handed=0
for f in "$T"/out.d/*.p7; do
    p7_certs "$f" "$T/h.pem"
    serial=$(openssl x509 -in "$T/h.pem" -noout -serial | cut -d= -f2)
    [ "$(q "SELECT count(*) FROM certificates WHERE serial = '$serial'")" = 1 ] \
        || fail "handed-out certificate $serial is not in the store"
    handed=$((handed + 1))
done
[ "$handed" -gt 0 ] || fail "no enrollment completed during the kill rounds"
pass "3 rounds of random SIGKILL: $certs uses spent = certificates stored, $handed handed out, all stored"
