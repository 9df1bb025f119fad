#!/usr/bin/env bash
# test_ldevid_cmp.sh - certificates issued over CMP (RFC 9483, `openssl
# cmp`) are listed under their registry device at issuance (issue 10;
# ca/issue.h step 6), before the device ever presents them:
#   - ir and p10cr MAC-protected with an enrollment token: the device,
#     named by the CN, is registered with its certificate;
#   - the IDevID -> LDevID flow: an ir signature-protected with a vendor
#     (factory) certificate under a `fleetpki root add` root gets an
#     operator certificate; the device lists both, the factory certificate
#     as "byo" and the operator one as ours;
#   - kur with the operator certificate: the new one joins the device.
# Checked with `fleetpki device show --json` (python's json parser).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cmp_lib.sh"

fp_new_ca "$CA" >/dev/null
fp project create lte --dir "$CA" >/dev/null

# vendor PKI: root -> IDevID of base station enb-0001 (openssl x509 -req)
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/vendor.key" \
    -subj "/O=Vendor/CN=Vendor Root" -days 30 -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -out "$T/vendor.crt" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/idev.key" \
    -subj "/O=Vendor/CN=enb-0001/serialNumber=SN-enb-0001" -out "$T/idev.csr" 2>/dev/null
printf 'keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' >"$T/ext.cnf"
openssl x509 -req -in "$T/idev.csr" -CA "$T/vendor.crt" -CAkey "$T/vendor.key" -CAcreateserial \
    -days 30 -extfile "$T/ext.cnf" -out "$T/idev.crt" 2>/dev/null
fp root add --project lte "$T/vendor.crt" --dir "$CA" >/dev/null
cat >>"$CA/fleetpki.conf" <<'CONF'

[est enb]
project = lte
profile = device
auth = cert
cert_identity = cn
CONF
fp_serve_run
CMPURL="http://$HTTP/.well-known/cmp"

# show PROJECT NAME: `device show --json` into $T/show.json
show() { fp device show --dir "$CA" --project "$1" "$2" --json >"$T/show.json"; }
# jcheck FILE EXPR: EXPR (python, the parsed JSON as j) must hold
jcheck() {
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1" ||
        { cat "$1" >&2; tail -5 "$T/server.log" >&2; fail "json check failed: $2"; }
}
# ours FILE CERT: CERT is listed, issued by us
ours() {
    jcheck "$1" "any(c['serial'].upper() == '$(serial_of "$2")'.upper() and c['issued_by_us'] for c in j['certificates'])"
}

# ---- ir, MAC-protected with a token ----
expect_code 1 "no device before the ir" show default cmp-ldev-1
cmp_token default
key dev
cmpc ir -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/dev.key" \
    -subject "/CN=cmp-ldev-1" -certout "$T/dev.crt" || { cat "$T/ir.log" >&2; fail "ir with a token"; }
verify_issued "$T/dev.crt"
show default cmp-ldev-1 || fail "device show after the ir"
jcheck "$T/show.json" 'j["state"] == "active" and len(j["certificates"]) == 1'
ours "$T/show.json" "$T/dev.crt"
pass "ir (MAC): the device is registered at issuance with its certificate"

# ---- p10cr, MAC-protected with a token ----
cmp_token default
fp_csr p10 "/CN=cmp-ldev-p10"
cmpc p10 -cmd p10cr -ref "$TOK_ID" -secret "pass:$TOK_SEC" -csr "$T/p10.csr" \
    -certout "$T/p10.crt" || { cat "$T/p10.log" >&2; fail "p10cr"; }
show default cmp-ldev-p10 || fail "device show after the p10cr"
ours "$T/show.json" "$T/p10.crt"
pass "p10cr (MAC): the device is registered at issuance with its certificate"

# ---- IDevID -> LDevID: ir signed with the vendor certificate ----
key op
URL="$CMPURL/p/enb" cmpc enb -cmd ir -cert "$T/idev.crt" -key "$T/idev.key" -newkey "$T/op.key" \
    -subject "/CN=enb-0001" -trusted "$CA/root.crt" -certout "$T/op.crt" \
    -extracertsout "$T/extra.pem" || { cat "$T/enb.log" "$T/server.log" >&2; fail "ir with the vendor certificate"; }
openssl verify -CAfile "$CA/root.crt" -untrusted "$T/extra.pem" "$T/op.crt" >/dev/null ||
    fail "operator certificate verifies"
show lte enb-0001 || fail "device show of enb-0001"
jcheck "$T/show.json" 'j["project"] == "lte" and len(j["certificates"]) == 2'
ours "$T/show.json" "$T/op.crt"
jcheck "$T/show.json" "any(c['serial'].upper() == '$(serial_of "$T/idev.crt")'.upper() and not c['issued_by_us'] and c['profile'] == 'byo' for c in j['certificates'])"
pass "ir (vendor IDevID): the device lists its factory certificate (byo) and its operator certificate (ours)"
expect_code 1 "not registered in the default project" show default enb-0001

# ---- kur with the operator certificate ----
key op2
URL="$CMPURL/p/enb" cmpc kur -cmd kur -cert "$T/op.crt" -key "$T/op.key" -newkey "$T/op2.key" \
    -trusted "$CA/root.crt" -untrusted "$T/extra.pem" -certout "$T/op2.crt" ||
    { cat "$T/kur.log" >&2; fail "kur with the operator certificate"; }
show lte enb-0001
jcheck "$T/show.json" 'len(j["certificates"]) == 3'
ours "$T/show.json" "$T/op2.crt"
pass "kur: the updated certificate joins the same device"

fp_serve_stop
