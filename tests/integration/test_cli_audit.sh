#!/usr/bin/env bash
# The audit log is append-only and hash-chained: `audit verify` passes on an
# honest log and fails on any edited, deleted or truncated row.
source "$(dirname "$0")/lib.sh"

CA=$(fp_new_ca)
fp_csr a "/CN=audit-a"
for i in 1 2 3; do fp issue --dir "$CA" --csr "$T/a.csr" --profile device >/dev/null; done
s=$(fp list --dir "$CA" --profile device --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["serial"])')
fp revoke --dir "$CA" "$s" --reason superseded >/dev/null
fp audit verify --dir "$CA" | grep -q "chain intact" || fail "honest log verifies"
fp audit verify --dir "$CA" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"] and d["rows"] >= 8, d'
fp audit list --dir "$CA" | grep -q "cert.revoke" || fail "revocation in audit list"
pass "honest audit log verifies"

# casual edits are blocked by the schema
if sqlite3 "$CA/fleetpki.db" "UPDATE audit SET actor='x' WHERE id=1" 2>/dev/null; then fail "UPDATE allowed"; fi
if sqlite3 "$CA/fleetpki.db" "DELETE FROM audit WHERE id=1" 2>/dev/null; then fail "DELETE allowed"; fi
pass "UPDATE and DELETE on the audit table are refused"

tamper() { # desc sql expected-message-part
    rm -rf "$T/c"
    cp -r "$CA" "$T/c"
    sqlite3 "$T/c/fleetpki.db" "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; $2"
    expect_code 1 "$1 is detected" fp audit verify --dir "$T/c"
    grep -q "$3" "$T/last.err" || { cat "$T/last.err"; fail "$1: message should mention '$3'"; }
}
tamper "an edited detail" "UPDATE audit SET detail='{}' WHERE id=3" "row 3"
tamper "an edited actor" "UPDATE audit SET actor='mallory' WHERE action='cert.revoke'" "edited"
tamper "a deleted middle row" "DELETE FROM audit WHERE id=2" "deleted"
tamper "a deleted last row" "DELETE FROM audit WHERE id=(SELECT max(id) FROM audit)" "head"
tamper "swapped rows" "UPDATE audit SET id=-1 WHERE id=4; UPDATE audit SET id=4 WHERE id=5; UPDATE audit SET id=5 WHERE id=-1" "row 4"
