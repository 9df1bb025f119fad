#!/usr/bin/env bash
# Issue 10: a suspended or decommissioned device is refused from then on,
# on the paths that do not authenticate with the device's own certificate
# too: `fleetpki issue` with a CSR naming it, an EST token enrollment
# (RFC 7030 4.2.1, HTTP basic auth with the token), a CMP ir with the
# token's MAC secret (RFC 9483 4.1.5).  The refusal comes before anything
# is recorded (no certificate row), is audited as csr.refuse with the
# device and its state, and lifts with `device resume`.  A device never
# seen before is issued as usual.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

# fp_serve_start (not est_start): ctest runs this on PostgreSQL too
fp_serve_start "[est lab]
auth = token"
EST="https://$HTTPS/.well-known/est"

# ncerts: how many certificates the CA has recorded
ncerts() { fp list --dir "$CA" | grep -c . || true; }

# ---- a device registered by its first certificate ----
fp_csr d1 "/CN=dev-r1"
expect_code 0 "a new device is issued its first certificate" \
    fp issue --dir "$CA" --csr "$T/d1.csr" --profile device --out "$T/d1.crt"
fp device show --dir "$CA" --project default dev-r1 --json >"$T/show.json" || fail "the device was registered"
grep -q '"active"' "$T/show.json" || fail "registered active: $(cat "$T/show.json")"

# ---- suspended: refused by the CLI ----
fp device suspend --dir "$CA" --project default dev-r1 >/dev/null || fail "device suspend"
before=$(ncerts)
fp_csr d1b "/CN=dev-r1"
rc=0
fp issue --dir "$CA" --csr "$T/d1b.csr" --profile device --out "$T/d1b.crt" \
    >"$T/last.out" 2>"$T/last.err" || rc=$?
[ "$rc" != 0 ] || fail "fleetpki issue for a suspended device succeeded"
grep -q 'csr-subject' "$T/last.err" && grep -q 'device dev-r1' "$T/last.err" &&
    grep -q 'suspended' "$T/last.err" || fail "refusal message: $(cat "$T/last.err")"
[ ! -s "$T/d1b.crt" ] || fail "a certificate was written for a suspended device"
[ "$(ncerts)" = "$before" ] || fail "a certificate was recorded for a suspended device"
pass "fleetpki issue for a suspended device is refused (exit $rc): $(head -1 "$T/last.err")"

# the SAN URI rule names it too when the project is so configured is
# covered by the naming rule itself (registry); here the CN rule

# ---- suspended: refused over EST with a token ----
token lab --uses 10
est_csr e1 "/CN=dev-r1"
s=$(est_post "$EST/lab/simpleenroll" "$T/e1.b64" --max-time 30 -u "$TOK_ID:$TOK_SECRET")
[ "$s" = 403 ] || [ "$s" = 400 ] || { cat "$T/body" >&2; fail "EST token enrollment for a suspended device: HTTP $s"; }
grep -q 'csr-subject' "$T/body" || fail "EST refusal body: $(cat "$T/body")"
[ "$(ncerts)" = "$before" ] || fail "EST recorded a certificate for a suspended device"
pass "EST token enrollment for a suspended device is refused (HTTP $s)"

# ---- suspended: refused over CMP with a MAC secret ----
if openssl cmp -help >/dev/null 2>&1; then
    out=$(fp token create --dir "$CA" --label default)
    cid=$(printf '%s\n' "$out" | sed -n 's/^id: *//p')
    csec=$(fp cmp-secret --dir "$CA" --label default "$cid")
    openssl ecparam -genkey -name prime256v1 -noout -out "$T/c1.key" 2>/dev/null
    if timeout 60 openssl cmp -server "http://$HTTP/.well-known/cmp" -cmd ir -ref "$cid" \
        -secret "pass:$csec" -newkey "$T/c1.key" -subject "/CN=dev-r1" \
        -certout "$T/c1.crt" -rspout "$T/c1.rsp.der" >"$T/cmp.log" 2>&1; then
        fail "CMP ir for a suspended device succeeded"
    fi
    grep -qi 'rejection' "$T/cmp.log" || fail "CMP answer: $(cat "$T/cmp.log")"
    # the answer decoded by pyasn1 (RFC 4210 module), independent of OpenSSL
    if /usr/bin/python3 -c 'import pyasn1_modules.rfc4210' 2>/dev/null; then
        line=$(/usr/bin/python3 "$(dirname "$0")/cmp_check.py" "$T/c1.rsp.der")
        case "$line" in
        *"body=ip status=2 failinfo=badCertTemplate "*) ;;
        *) fail "CMP ip should be a rejection with badCertTemplate: $line" ;;
        esac
    fi
    [ "$(ncerts)" = "$before" ] || fail "CMP recorded a certificate for a suspended device"
    pass "CMP ir (MAC) for a suspended device is rejected"
else
    echo "# openssl has no cmp command: CMP case not run"
fi

# ---- the refusals are audited ----
fp audit list --dir "$CA" >"$T/audit"
[ "$(grep 'csr.refuse' "$T/audit" | grep -c 'dev-r1')" -ge 2 ] ||
    { cat "$T/audit" >&2; fail "refusals audited as csr.refuse"; }
grep 'csr.refuse' "$T/audit" | grep -q 'suspended' || fail "audit names the state"
pass "the refusals are audited as csr.refuse with the device's state"

# ---- resumed: issued again ----
fp device resume --dir "$CA" --project default dev-r1 >/dev/null || fail "device resume"
expect_code 0 "fleetpki issue after resume" \
    fp issue --dir "$CA" --csr "$T/d1b.csr" --profile device --out "$T/d1b.crt"
s=$(est_post "$EST/lab/simpleenroll" "$T/e1.b64" --max-time 30 -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "EST token enrollment after resume" "$s"

# ---- decommissioned: refused for good ----
fp device decommission --dir "$CA" --project default dev-r1 >/dev/null || fail "device decommission"
before=$(ncerts)
fp_csr d1c "/CN=dev-r1"
expect_fail "fleetpki issue for a decommissioned device" \
    fp issue --dir "$CA" --csr "$T/d1c.csr" --profile device --out "$T/d1c.crt"
grep -q 'decommissioned' "$T/last.err" || fail "refusal message: $(cat "$T/last.err")"
est_csr e2 "/CN=dev-r1"
s=$(est_post "$EST/lab/simpleenroll" "$T/e2.b64" --max-time 30 -u "$TOK_ID:$TOK_SECRET")
[ "$s" = 403 ] || [ "$s" = 400 ] || fail "EST token enrollment for a decommissioned device: HTTP $s"
[ "$(ncerts)" = "$before" ] || fail "a certificate was recorded for a decommissioned device"
pass "a decommissioned device is refused (CLI and EST)"

# ---- a device never seen is issued as usual ----
fp_csr n1 "/CN=dev-new"
expect_code 0 "a device not registered yet is issued" \
    fp issue --dir "$CA" --csr "$T/n1.csr" --profile device --out "$T/n1.crt"

fp audit verify --dir "$CA" >/dev/null || fail "audit chain"
est_stop
