#!/usr/bin/env bash
# A kill at any moment of issuance leaves the store consistent, a serial is
# never reused, and every certificate the CLI handed out is in the store.
source "$(dirname "$0")/lib.sh"

CA=$(fp_new_ca)
DB=$CA/fleetpki.db
fp_csr dev "/CN=crash-test"

consistent() { # desc
    [ "$(sqlite3 "$DB" 'PRAGMA integrity_check')" = ok ] || fail "$1: integrity_check"
    fp audit verify --dir "$CA" >"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "$1: audit chain broken"; }
    local certs issued dup
    certs=$(sqlite3 "$DB" 'SELECT count(*) FROM certificates')
    issued=$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE action='cert.issue'")
    [ "$certs" = "$issued" ] || fail "$1: $certs certificates but $issued issue audit rows"
    dup=$(sqlite3 "$DB" "SELECT count(*) - count(DISTINCT object) FROM audit WHERE action='cert.issue'")
    [ "$dup" = 0 ] || fail "$1: a serial was issued twice"
    # every audited issuance has its certificate row
    [ "$(sqlite3 "$DB" "SELECT count(*) FROM audit a WHERE action='cert.issue' AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = a.object)")" = 0 ] \
        || fail "$1: audit row without certificate"
}

count() { sqlite3 "$DB" 'SELECT count(*) FROM certificates'; }

# --- deterministic crash points (SIGKILL, as a power cut or OOM kill) ---
for point in issue-after-sign store-before-commit; do
    before=$(count)
    rc=0
    FLEETPKI_TEST_CRASH=$point fp issue --dir "$CA" --csr "$T/dev.csr" --profile device >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 137 ] || fail "$point: expected death by SIGKILL, got exit $rc"
    [ ! -s "$T/out" ] || fail "$point: output before commit"
    [ "$(count)" = "$before" ] || fail "$point: a certificate was recorded although the transaction never committed"
    consistent "$point"
    pass "killed at $point: nothing recorded, nothing handed out, store consistent"
done
for point in store-after-commit issue-after-commit; do
    before=$(count)
    rc=0
    FLEETPKI_TEST_CRASH=$point fp issue --dir "$CA" --csr "$T/dev.csr" --profile device >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 137 ] || fail "$point: expected death by SIGKILL, got exit $rc"
    [ "$(count)" = $((before + 1)) ] || fail "$point: committed certificate lost"
    consistent "$point"
    pass "killed at $point: the committed certificate survives"
done
# the CA keeps working after all of that
fp issue --dir "$CA" --csr "$T/dev.csr" --profile device | openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" >/dev/null
pass "issuance works after crashes"

# --- random real kills under concurrency ---
mkdir -p "$T/out.d"
worker() { # id: issue in a loop, keep what was printed
    local i=0
    while :; do
        i=$((i + 1))
        fp issue --dir "$CA" --csr "$T/dev.csr" --profile device >"$T/out.d/$1.$i.tmp" 2>/dev/null \
            && mv "$T/out.d/$1.$i.tmp" "$T/out.d/$1.$i.pem"
    done
}
for round in 1 2 3 4 5 6; do
    pids=()
    for w in 1 2 3; do worker "r$round-w$w" & pids+=($!); done
    # let each round complete at least one issuance first (a loaded or
    # sanitizer build can be slow), then kill at a random moment
    fp_wait_more "$T/out.d" '*.pem' "$(find "$T/out.d" -name '*.pem' | wc -l)"
    sleep "0.$((RANDOM % 9 + 1))"
    # kill the loops first (so they start nothing new), then every
    # fleetpki still running on this CA, mid-flight
    kill -KILL "${pids[@]}" 2>/dev/null || true
    pkill -KILL -f -- "--dir $CA " 2>/dev/null || true
    wait 2>/dev/null || true
    while pgrep -f -- "--dir $CA " >/dev/null; do sleep 0.05; done
    consistent "random kill round $round"
done
handed=0
for f in "$T"/out.d/*.pem; do
    [ -s "$f" ] || continue
    s=$(openssl x509 -in "$f" -noout -serial | cut -d= -f2)
    [ "$(sqlite3 "$DB" "SELECT count(*) FROM certificates WHERE serial='$s'")" = 1 ] || fail "handed-out certificate $s is not in the store"
    handed=$((handed + 1))
done
[ "$handed" -gt 0 ] || fail "no issuance completed during the kill rounds"
total=$(count)
pass "6 rounds of random SIGKILL: $handed handed-out certificates all recorded, $total in store, no serial reused"
