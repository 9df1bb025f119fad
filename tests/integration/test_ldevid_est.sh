#!/usr/bin/env bash
# test_ldevid_est.sh - every EST operation lists its certificate under the
# registry device at issuance (issue 10; ca/issue.h step 6), not only a
# client-certificate enrollment of a device registered already:
#   - simpleenroll with an enrollment token (no client certificate): the
#     device, named by the CN, is registered with its certificate;
#   - serverkeygen with a token: the same;
#   - simplereenroll with the current certificate: the new one joins.
# Checked with `fleetpki device show --json` (python's json parser).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null
fp_serve_run
EST="https://$HTTPS/.well-known/est"

show() { fp device show --dir "$CA" --project default "$1" --json >"$T/show.json"; }
jcheck() {
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1" ||
        { cat "$1" >&2; tail -5 "$T/server.log" >&2; fail "json check failed: $2"; }
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
ours() {
    jcheck "$1" "any(c['serial'].upper() == '$(serial_of "$2")'.upper() and c['issued_by_us'] for c in j['certificates'])"
}

# ---- simpleenroll with a token ----
expect_code 1 "no device before enrollment" show est-ldev-1
token default --uses 1
est_csr e1 "/CN=est-ldev-1"
s=$(est_post "$EST/simpleenroll" "$T/e1.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "simpleenroll with a token" "$s"
p7_certs "$T/body" "$T/e1.crt"
show est-ldev-1 || fail "device show after simpleenroll"
jcheck "$T/show.json" 'j["state"] == "active" and len(j["certificates"]) == 1'
ours "$T/show.json" "$T/e1.crt"
pass "simpleenroll (token): the device is registered at issuance with its certificate"

# ---- simplereenroll with the current certificate ----
est_csr e1b "/CN=est-ldev-1"
s=$(est_post "$EST/simplereenroll" "$T/e1b.b64" --cert "$T/e1.crt" --key "$T/e1.key")
expect_status 200 "simplereenroll with the current certificate" "$s"
p7_certs "$T/body" "$T/e1b.crt"
show est-ldev-1
jcheck "$T/show.json" 'len(j["certificates"]) == 2'
ours "$T/show.json" "$T/e1.crt"
ours "$T/show.json" "$T/e1b.crt"
pass "simplereenroll: the renewed certificate joins the same device"

# ---- serverkeygen with a token ----
token default --uses 1
est_csr k1 "/CN=est-ldev-keygen"
s=$(est_post "$EST/serverkeygen" "$T/k1.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "serverkeygen with a token" "$s"
mkdir -p "$T/k1"
est_multipart_check "$T/headers" "$T/body" "$T/k1" || fail "serverkeygen answer does not parse strictly"
openssl pkcs7 -inform DER -in "$T/k1/part2.der" -print_certs -out "$T/k1.crt" || fail "serverkeygen certificate"
show est-ldev-keygen || fail "device show after serverkeygen"
jcheck "$T/show.json" 'len(j["certificates"]) == 1'
ours "$T/show.json" "$T/k1.crt"
pass "serverkeygen (token): the device is registered at issuance with its certificate"

est_stop
