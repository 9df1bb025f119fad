#!/usr/bin/env bash
# test_ldevid_scep.sh - certificates issued over SCEP (RFC 8894) are listed
# under their registry device at issuance (issue 10; ca/issue.h step 6),
# before the device ever presents them: Debian's scepclient enrolls with a
# token (the device is registered, named by its CN, with the certificate;
# the throw-away self-signed certificate that signed the PKCSReq, RFC 8894
# 2.3, is not listed), renews (the new certificate joins the same device),
# and a request held for manual approval is listed once `fleetpki approve`
# issues it.  Checked through the admin API
# (GET /api/v1/projects/P/devices/NAME/certificates) and `device show`.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"
source "$(dirname "$0")/scep_lib.sh"
scep_require

fp_new_ca "$CA" >/dev/null
cat >>"$CA/fleetpki.conf" <<'CONF'

[est]
scep_legacy_crypto = yes
[est held]
manual_approval = yes
scep_legacy_crypto = yes
CONF
fp_serve_run
scep_setup

KEY=$(fp apikey create --project default --read-only --dir "$CA" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || fail "apikey create"
# certs NAME: the admin API's list of the device's certificates -> $T/certs.json; prints the status
certs() {
    curl -sS --max-time 30 --cacert "$CA/root.crt" -H "Authorization: Bearer $KEY" \
        -o "$T/certs.json" -w '%{http_code}' "https://$HTTPS/api/v1/projects/default/devices/$1/certificates"
}
# jcheck FILE EXPR: EXPR (python, the parsed JSON as j) must hold
jcheck() {
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1" ||
        { cat "$1" >&2; tail -5 "$T/server.log" >&2; fail "json check failed: $2"; }
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
# listed FILE SERIAL...: exactly these serials, all issued by us
listed() {
    local f=$1 want
    shift
    want=$(printf "'%s'," "$@" | tr 'a-f' 'A-F')
    jcheck "$f" "sorted(c['serial'].upper() for c in j['items']) == sorted([$want]) and all(c['profile'] != 'byo' for c in j['items'])"
}

# ---- PKCSReq with a token ----
expect_status 404 "no device before enrollment" "$(certs scep-ldev-1)"
token default
mkdir -p "$T/c1"
scepclient -server-url "$SCEP" -private-key "$T/c1/key.pem" -challenge "$TOK_ID:$TOK_SECRET" \
    -cn scep-ldev-1 -ca-fingerprint "$RAFP" >"$T/c1.log" 2>&1 ||
    { cat "$T/c1.log" >&2; tail -5 "$T/server.log" >&2; fail "scepclient enrollment"; }
verify_cert "$T/c1/client.pem" || fail "issued certificate does not verify"
first=$(serial_of "$T/c1/client.pem")
expect_status 200 "the device exists right after enrollment" "$(certs scep-ldev-1)"
listed "$T/certs.json" "$first"
pass "PKCSReq: device registered at issuance, its one certificate listed (not the self-signed signer)"
fp device show --dir "$CA" --project default scep-ldev-1 --json >"$T/show.json" || fail "device show"
jcheck "$T/show.json" 'j["state"] == "active" and len(j["certificates"]) == 1'
pass "fleetpki device show agrees"

# ---- RenewalReq signed with the current certificate ----
cp "$T/c1/client.pem" "$T/c1/old.pem"
scepclient -server-url "$SCEP" -private-key "$T/c1/key.pem" -certificate "$T/c1/client.pem" \
    -cn scep-ldev-1 -ca-fingerprint "$RAFP" >"$T/r1.log" 2>&1 ||
    { cat "$T/r1.log" >&2; tail -5 "$T/server.log" >&2; fail "scepclient renewal"; }
second=$(serial_of "$T/c1/client.pem")
[ "$first" != "$second" ] || fail "renewal returned the old certificate"
expect_status 200 "device certificates after renewal" "$(certs scep-ldev-1)"
listed "$T/certs.json" "$first" "$second"
pass "RenewalReq: the renewed certificate joins the same device, beside the one it renews"

# ---- held for approval, issued by fleetpki approve ----
token held
"$SCEP_LOAD" req --ra "$T/ra.pem" --challenge "$TOK_ID:$TOK_SECRET" --cn scep-held-1 \
    --key-out "$T/h1.key" --self-out "$T/h1.self" --out "$T/h1.der"
scep_post "/held" "$T/h1.der" "$T/h1.rep" >/dev/null
expect_rep "3 -" "PKCSReq on a manual-approval label: PENDING" "$T/h1.rep"
id=$(fp pending --dir "$CA" --json | python3 -c 'import json,sys; print([p["id"] for p in json.load(sys.stdin)][0])') ||
    fail "pending list"
expect_status 404 "no device while the request is held" "$(certs scep-held-1)"
fp approve --dir "$CA" "$id" >"$T/approve.out" || fail "approve"
serial=$(sed -n 's/.*issued \([0-9A-Fa-f]*\).*/\1/p' "$T/approve.out")
[ -n "$serial" ] || { cat "$T/approve.out" >&2; fail "approve printed no serial"; }
expect_status 200 "the device exists once approved" "$(certs scep-held-1)"
listed "$T/certs.json" "$serial"
pass "fleetpki approve: the approved certificate is listed under its device at issuance"

est_stop
