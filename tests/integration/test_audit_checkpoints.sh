#!/usr/bin/env bash
# Signed audit checkpoints: the server signs the audit head at start, every
# audit_checkpoint_seconds and at shutdown, appending to a file outside the
# database; `audit verify --checkpoints` accepts the honest log, and catches
# what the chain alone cannot: a rewrite of the database that re-hashed the
# chain's tail (made here with sqlite3), naming the first checkpoint that no
# longer matches; also a deleted tail, a forged checkpoint line, and a
# checkpoint file checked with another key.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"

command -v sqlite3 >/dev/null || { echo "skip: sqlite3 missing"; exit 77; }
CP=$T/checkpoints.log
fp_new_ca "$CA" >/dev/null
[ -s "$CA/audit.pub" ] && [ -s "$CA/audit.key" ] || fail "init made no audit key"
printf '\n[server]\naudit_checkpoint_seconds = 1\naudit_checkpoint_file = %s\n' "$CP" >>"$CA/fleetpki.conf"

lines() { [ -f "$CP" ] && wc -l <"$CP" || echo 0; }
wait_lines() { # wait_lines N: until the file holds at least N lines (30 s at most)
    for _ in $(seq 1 300); do [ "$(lines)" -ge "$1" ] && return 0; sleep 0.1; done
    fail "only $(lines) checkpoints, expected $1"
}

FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
wait_lines 1
for i in 1 2 3; do
    fp_csr "c$i" "/CN=cp-$i"
    fp issue --dir "$CA" --csr "$T/c$i.csr" --profile device --out "$T/c$i.crt" >/dev/null
    n=$(lines)
    wait_lines $((n + 1)) # a checkpoint after each issuance
done
fp_serve_stop
grep -q "seq=" "$CP" || fail "no checkpoint lines"
head_seq=$(sqlite3 "$CA/fleetpki.db" "SELECT max(id) FROM audit")
[ "$(tail -1 "$CP" | sed -n 's/.* seq=\([0-9]*\) .*/\1/p')" = "$head_seq" ] ||
    fail "the shutdown checkpoint is not at the head ($head_seq)"
fp audit verify --dir "$CA" --checkpoints "$CP" >"$T/v.out" || { cat "$T/v.out" >&2; fail "honest log refused"; }
grep -q "checkpoints ok" "$T/v.out" || fail "no checkpoint summary"
pass "checkpoints at start, per interval and at shutdown; the honest log verifies"

# another key's public half: every signature fails
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null | openssl pkey -pubout >"$T/other.pub"
expect_fail "checkpoints checked with another key" fp audit verify --dir "$CA" --checkpoints "$CP" --pubkey "$T/other.pub"
grep -q "line 1 .*signature does not verify" "$T/last.err" || { cat "$T/last.err" >&2; fail "bad key not named"; }
# a forged line: the hash of line 2 changed (still valid hex)
cp "$CP" "$T/forged.log"
sed -i '2s/hash=\(.\)/hash=X\1/; 2s/hash=X0/hash=1/; 2s/hash=X[^0]/hash=0/' "$T/forged.log"
cmp -s "$CP" "$T/forged.log" && fail "forgery did not change the file"
expect_fail "forged checkpoint" fp audit verify --dir "$CA" --checkpoints "$T/forged.log"
grep -q "line 2 .*signature does not verify" "$T/last.err" || { cat "$T/last.err" >&2; fail "forged line not named"; }
pass "another key and a forged checkpoint line are refused, naming the line"

# ---- the consistent rewrite ----
cp "$CA/fleetpki.db" "$T/pristine.db"
# rewrite the row of the third distinct checkpoint: those before it still match
X=$(sed -n 's/.* seq=\([0-9]*\) .*/\1/p' "$CP" | uniq | sed -n 3p)
[ -n "$X" ] || fail "fewer than three distinct checkpoints"
FIRST=$(awk -v x="$X" '{ match($0, /seq=[0-9]+/); s = substr($0, RSTART + 4, RLENGTH - 4) + 0;
                         if (s >= x) { print NR; exit } }' "$CP")
python3 "$(dirname "$0")/rehash_audit.py" "$CA/fleetpki.db" "$X"
fp audit verify --dir "$CA" >/dev/null ||
    fail "the rewrite was not consistent (the chain alone should not see it)"
pass "a consistent rewrite of row $X passes the chain check alone"
expect_fail "rewrite caught by the checkpoints" fp audit verify --dir "$CA" --checkpoints "$CP"
grep -q "line $FIRST (seq $X) no longer matches" "$T/last.err" ||
    { cat "$T/last.err" >&2; fail "expected the checkpoint at line $FIRST (seq $X) named"; }
pass "checkpoints catch it, naming the first mismatching checkpoint (line $FIRST, seq $X)"

# ---- a deleted tail, head re-pointed ----
cp "$T/pristine.db" "$CA/fleetpki.db"
rm -f "$CA/fleetpki.db-wal" "$CA/fleetpki.db-shm"
LASTSEQ=$(tail -1 "$CP" | sed -n 's/.* seq=\([0-9]*\) .*/\1/p')
python3 "$(dirname "$0")/rehash_audit.py" "$CA/fleetpki.db" $((LASTSEQ - 2)) $((LASTSEQ - 1))
fp audit verify --dir "$CA" >/dev/null || fail "tail deletion was not consistent"
expect_fail "deleted tail caught" fp audit verify --dir "$CA" --checkpoints "$CP"
grep -q "no longer" "$T/last.err" || { cat "$T/last.err" >&2; fail "deleted tail not named"; }
pass "a deleted and re-hashed tail is caught too"
