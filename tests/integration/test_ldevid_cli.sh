#!/usr/bin/env bash
# test_ldevid_cli.sh - a certificate issued by `fleetpki issue` is listed
# under its registry device at issuance (issue 10; ca/issue.h step 6):
# the device, named by the project's rule, is registered if new (audited
# device.register), a second certificate of the same name joins it, a
# certificate that names no device under the rule makes none, and a CA
# certificate (profile sub-ca) is no device's.  Checked with `fleetpki
# device show --json` and python's json parser.
source "$(dirname "$0")/lib.sh"

CA=$(fp_new_ca)

# show NAME [PROJECT]: `device show --json` into $T/show.json
show() {
    fp device show --dir "$CA" --project "${2:-default}" "$1" --json >"$T/show.json"
}
# jcheck FILE EXPR: EXPR (python, the parsed JSON as j) must hold
jcheck() {
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1" ||
        { cat "$1" >&2; fail "json check failed: $2"; }
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
# has_serial FILE SERIAL: the device's certificates list SERIAL, issued by us
has_serial() {
    jcheck "$1" "any(c['serial'].upper() == '$2'.upper() and c['issued_by_us'] for c in j['certificates'])"
}

expect_code 1 "no device before issuance" show cli-dev-1

# ---- fleetpki issue: the device appears with its certificate ----
fp_csr d1 "/CN=cli-dev-1"
fp issue --dir "$CA" --csr "$T/d1.csr" --profile device --out "$T/d1.crt" || fail "issue cli-dev-1"
show cli-dev-1 || fail "device show after fleetpki issue"
jcheck "$T/show.json" 'j["name"] == "cli-dev-1" and j["state"] == "active" and j["project"] == "default" and len(j["certificates"]) == 1'
has_serial "$T/show.json" "$(serial_of "$T/d1.crt")"
pass "fleetpki issue registers the device named by its CN, the certificate listed under it"
fp audit list --dir "$CA" >"$T/audit.txt"
grep -q "device.register" "$T/audit.txt" || { cat "$T/audit.txt" >&2; fail "registration audited"; }
pass "the registration at issuance is audited (device.register)"

# a second certificate of the same device joins it, no second device
fp_csr d1b "/CN=cli-dev-1"
fp issue --dir "$CA" --csr "$T/d1b.csr" --profile device --out "$T/d1b.crt" || fail "issue again"
show cli-dev-1
jcheck "$T/show.json" 'len(j["certificates"]) == 2'
has_serial "$T/show.json" "$(serial_of "$T/d1.crt")"
has_serial "$T/show.json" "$(serial_of "$T/d1b.crt")"
[ "$(fp device list --dir "$CA" --project default --json |
    python3 -c 'import json,sys; print(sum(d["name"] == "cli-dev-1" for d in json.load(sys.stdin)["devices"]))')" = 1 ] ||
    fail "one device for two certificates"
pass "a second certificate of the device is listed under the same device"

# ---- a project of its own, naming by subject serialNumber ----
fp project create plant --dir "$CA" >/dev/null
fp device naming --dir "$CA" --project plant serialnumber >/dev/null || fail "naming serialnumber"
fp_csr p1 "/CN=sensor/serialNumber=SN-0042"
fp issue --dir "$CA" --project plant --csr "$T/p1.csr" --profile device --out "$T/p1.crt" ||
    fail "issue in project plant"
show SN-0042 plant || fail "device SN-0042 of project plant"
has_serial "$T/show.json" "$(serial_of "$T/p1.crt")"
expect_code 1 "the default project has no such device" show SN-0042
pass "the device is named by its project's rule (serialnumber), in its project"
# naming nothing under the rule: issued, no device
fp_csr p2 "/CN=no-serial"
fp issue --dir "$CA" --project plant --csr "$T/p2.csr" --profile device --out "$T/p2.crt" ||
    fail "issue without serialNumber"
n=$(fp device list --dir "$CA" --project plant --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["devices"]))')
[ "$n" = 1 ] || fail "a certificate naming no device made one ($n devices)"
pass "a certificate naming no device under the rule is issued and makes no device"

# ---- a CA certificate is no device's ----
fp_csr sub "/CN=cli-sub-ca"
fp issue --dir "$CA" --csr "$T/sub.csr" --profile sub-ca --out "$T/sub.crt" || fail "issue sub-ca"
expect_code 1 "a sub-CA certificate registers no device" show cli-sub-ca

# ---- the firmware signer is no device's (fp_issue_req.not_device) ----
fp firmware ca create --project default --dir "$CA" >/dev/null || fail "firmware ca create"
fp firmware signer create --project default --dir "$CA" >/dev/null || fail "firmware signer create"
n=$(fp device list --dir "$CA" --project default --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["devices"]))')
[ "$n" = 1 ] || { fp device list --dir "$CA" --project default >&2; fail "the firmware signer made a device ($n devices)"; }
pass "the firmware signer certificate registers no device"
