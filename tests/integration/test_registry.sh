#!/usr/bin/env bash
# Device registry (issue 10): a bring-your-own root uploaded with `root
# add`, factory certificates made with openssl; first contact over EST
# client-certificate auth and over the device API (GET /api/v1/device)
# registers the device, named from its certificate; two racing first
# contacts make one device; last-seen advances after a flush; suspend ->
# refused at once on EST and the device API, resume -> accepted;
# decommission -> certificates revoked (openssl ocsp) and refused; a device
# of project acme is invisible in beta; IDevID and LDevID are listed under
# one device.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null
fp project create acme --dir "$CA" >/dev/null || fail "project create acme"
fp project create beta --dir "$CA" >/dev/null || fail "project create beta"

# the vendor's root, uploaded once
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$T/mfg.key" -subj "/O=Acme Factory/CN=Acme Factory Root" -out "$T/mfg.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
fp root add --dir "$CA" --project acme "$T/mfg.crt" >/dev/null || fail "root add"
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$T/leaf.ext"
# factory certificate NAME CN: $T/NAME.key, $T/NAME.crt
factory() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
        -subj "/CN=$2" -out "$T/$1.csr" 2>/dev/null
    openssl x509 -req -in "$T/$1.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
        -days 30 -extfile "$T/leaf.ext" -out "$T/$1.crt" 2>/dev/null || fail "factory $1"
}
factory idev1 dev-0001
factory idev2 dev-0002
factory twin1 twin
factory twin2 twin

cat >>"$CA/fleetpki.conf" <<CONF

[server]
public_url = http://pki.example

[est acme-dev]
project = acme
auth = cert
CONF
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
EST="https://$HTTPS/.well-known/est"
API="https://$HTTPS/api/v1/device"

# device_api NAME: GET the device API with $T/NAME.crt; status printed,
# body in $T/body
device_api() {
    curl -sS --max-time 30 --cacert "$CA/root.crt" --cert "$T/$1.crt" --key "$T/$1.key" \
        -D "$T/headers" -o "$T/body" -w '%{http_code}' "$API"
}
# show NAME [PROJECT]: `device show --json` into $T/show.json
show() {
    fp device show --dir "$CA" --project "${2:-acme}" "$1" --json >"$T/show.json"
}
# jq-like check with python: jcheck FILE EXPR (EXPR sees the parsed JSON as j)
jcheck() {
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1" ||
        { cat "$1" >&2; fail "json check failed: $2"; }
}

# ---- first contact over EST cert auth: IDevID -> LDevID ----
openssl req -new -key "$T/idev1.key" -subj "/CN=dev-0001" -outform DER -out "$T/l1.der"
base64 <"$T/l1.der" >"$T/l1.b64"
expect_code 1 "no device before its first contact" show dev-0001
s=$(est_post "$EST/acme-dev/simpleenroll" "$T/l1.b64" --cert "$T/idev1.crt" --key "$T/idev1.key")
expect_status 200 "a factory certificate under the uploaded root enrolls over EST" "$s"
p7_certs "$T/body" "$T/ldev1.crt"
cp "$T/idev1.key" "$T/ldev1.key"
show dev-0001 || fail "device show after EST first contact"
jcheck "$T/show.json" 'j["name"] == "dev-0001" and j["state"] == "active" and j["project"] == "acme"'
pass "first contact over EST registered the device, named from its CN"
# the LDevID is linked to the device when it is issued: the admin API lists
# both certificates before the LDevID was ever presented
KEY=$(fp apikey create --project acme --read-only --dir "$CA" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || fail "apikey create"
s=$(curl -sS --max-time 30 --cacert "$CA/root.crt" -H "Authorization: Bearer $KEY" \
    -o "$T/certs.json" -w '%{http_code}' "https://$HTTPS/api/v1/projects/acme/devices/dev-0001/certificates")
expect_status 200 "the admin API lists the device's certificates" "$s"
ldev_serial=$(openssl x509 -in "$T/ldev1.crt" -noout -serial | cut -d= -f2)
jcheck "$T/certs.json" "len(j['items']) == 2 and sorted(c['profile'] == 'byo' for c in j['items']) == [False, True] and any(c['serial'].upper() == '$ldev_serial'.upper() for c in j['items'])"
pass "the LDevID issued over EST is listed under its device before it is presented"

# ---- first contact over the device API ----
s=$(device_api idev2)
expect_status 200 "the device API answers a factory certificate" "$s"
grep -qi '^content-type: application/json' "$T/headers" || fail "device API content type"
jcheck "$T/body" 'j["name"] == "dev-0002" and j["state"] == "active" and j["tags"] == {}'
show dev-0002 || fail "device show after device API first contact"
pass "first contact over the device API registered the device"

# the LDevID is the same device: both certificates listed under it
s=$(device_api ldev1)
expect_status 200 "the operational certificate (LDevID) reaches the device API" "$s"
jcheck "$T/body" 'j["name"] == "dev-0001"'
show dev-0001
jcheck "$T/show.json" 'len(j["certificates"]) == 2 and sorted(c["issued_by_us"] for c in j["certificates"]) == [False, True]'
pass "IDevID and LDevID are both listed under one device"

# ---- two first contacts racing ----
curl -sS --max-time 30 --cacert "$CA/root.crt" --cert "$T/twin1.crt" --key "$T/twin1.key" \
    -o "$T/race1" -w '%{http_code}' "$API" >"$T/race1.code" &
r1=$!
curl -sS --max-time 30 --cacert "$CA/root.crt" --cert "$T/twin2.crt" --key "$T/twin2.key" \
    -o "$T/race2" -w '%{http_code}' "$API" >"$T/race2.code" &
r2=$!
wait $r1 $r2
[ "$(cat "$T/race1.code") $(cat "$T/race2.code")" = "200 200" ] ||
    fail "racing first contacts: $(cat "$T/race1.code") $(cat "$T/race2.code")"
fp device list --dir "$CA" --project acme --prefix twin --json >"$T/list.json"
jcheck "$T/list.json" 'len(j["devices"]) == 1 and j["devices"][0]["name"] == "twin"'
show twin
jcheck "$T/show.json" 'len(j["certificates"]) == 2'
pass "two racing first contacts made one device with both certificates"

# ---- cross-project isolation ----
expect_code 1 "a device of acme is not found in beta" show dev-0001 beta
grep -q "not-found" "$T/last.err" || fail "beta lookup: $(cat "$T/last.err")"
fp device list --dir "$CA" --project beta --json >"$T/list.json"
jcheck "$T/list.json" 'j["devices"] == []'
expect_code 1 "beta cannot suspend acme's device" \
    fp device suspend --dir "$CA" --project beta dev-0001
pass "a device of project acme is invisible in beta"

# ---- suspend: refused at once (on a kept-alive connection too); resume: accepted ----
# one TLS connection: a request, the suspension (CLI), a second request
python3 - "$HTTPS" "$CA/root.crt" "$T/idev1.crt" "$T/idev1.key" "$FLEETPKI" "$CA" <<'PY' ||
import http.client, json, ssl, subprocess, sys
hostport, cafile, cert, key, fleetpki, ca = sys.argv[1:]
host, port = hostport.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
c.request("GET", "/api/v1/device")
r = c.getresponse(); body = r.read()
assert r.status == 200, (r.status, body)
sock = c.sock
subprocess.run([fleetpki, "device", "suspend", "--dir", ca, "--project", "acme", "dev-0001"],
               check=True, stdout=subprocess.DEVNULL)
c.request("GET", "/api/v1/device")
r = c.getresponse(); body = r.read()
assert c.sock is sock, "the connection was not kept alive"
assert r.status == 403, (r.status, body)
p = json.loads(body)
assert p["type"] == "https://fleetpki.dev/problems/bad-state" and "suspended" in p["detail"], p
PY
    fail "suspension on a kept-alive connection"
pass "a device suspended between two requests of one connection is refused on the second"
openssl req -new -key "$T/ldev1.key" -subj "/CN=dev-0001" -outform DER -out "$T/r1.der"
base64 <"$T/r1.der" >"$T/r1.b64"
s=$(est_post "$EST/acme-dev/simplereenroll" "$T/r1.b64" --cert "$T/ldev1.crt" --key "$T/ldev1.key")
expect_status 403 "a suspended device is refused on its next EST request" "$s"
grep -q "suspended" "$T/body" || fail "EST refusal names the state: $(cat "$T/body")"
s=$(device_api idev1)
expect_status 403 "a suspended device is refused by the device API" "$s"
grep -qi '^content-type: application/problem+json' "$T/headers" || fail "problem+json type"
jcheck "$T/body" 'j["type"] == "https://fleetpki.dev/problems/bad-state" and j["status"] == 403 and "suspended" in j["detail"] and j["title"]'
fp device resume --dir "$CA" --project acme dev-0001 >/dev/null || fail "resume"
s=$(device_api idev1)
expect_status 200 "a resumed device is accepted again" "$s"
s=$(est_post "$EST/acme-dev/simplereenroll" "$T/r1.b64" --cert "$T/ldev1.crt" --key "$T/ldev1.key")
expect_status 200 "a resumed device re-enrolls over EST" "$s"
p7_certs "$T/body" "$T/ldev1b.crt"

# ---- tags ----
fp device tag --dir "$CA" --project acme dev-0002 site=berlin >/dev/null || fail "tag"
fp device list --dir "$CA" --project acme --tag site=berlin --json >"$T/list.json"
jcheck "$T/list.json" '[d["name"] for d in j["devices"]] == ["dev-0002"]'
expect_code 1 "a tag key with a control byte is refused" \
    fp device tag --dir "$CA" --project acme dev-0002 "$(printf 'a\tb')=c"
grep -q "bad-argument" "$T/last.err" || fail "tag refusal: $(cat "$T/last.err")"
pass "tags set and filtered"

# ---- decommission: every certificate we issued revoked, device refused ----
fp device decommission --dir "$CA" --project acme dev-0001 --json >"$T/dec.json" ||
    fail "decommission"
jcheck "$T/dec.json" 'j["state"] == "decommissioned" and all(c["status"] == "revoked" for c in j["certificates"] if c["issued_by_us"])'
cat "$CA/root.crt" "$CA/ca/acme-1/ca.crt" >"$T/acme-chain.pem"
for c in ldev1 ldev1b; do
    openssl ocsp -issuer "$CA/ca/acme-1/ca.crt" -cert "$T/$c.crt" -url "http://$HTTP/ocsp" \
        -CAfile "$T/acme-chain.pem" >"$T/ocsp.out" 2>&1 || { cat "$T/ocsp.out" >&2; fail "ocsp $c"; }
    grep -q "Response verify OK" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "ocsp verify"; }
    grep -q "$T/$c.crt: revoked" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "ocsp $c not revoked"; }
    grep -q "cessationOfOperation" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "reason"; }
done
pass "decommission revoked the device's certificates (OCSP says revoked, cessationOfOperation)"
s=$(device_api idev1)
expect_status 403 "a decommissioned device is refused by the device API" "$s"
grep -q "decommissioned" "$T/body" || fail "decommissioned detail: $(cat "$T/body")"
s=$(est_post "$EST/acme-dev/simpleenroll" "$T/l1.b64" --cert "$T/idev1.crt" --key "$T/idev1.key")
expect_status 403 "a decommissioned device is refused on EST" "$s"
expect_code 1 "a decommissioned device cannot be resumed" \
    fp device resume --dir "$CA" --project acme dev-0001

# ---- a certificate not under any project root ----
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$T/stray.key" -subj "/CN=stray" -out "$T/stray.crt" 2>/dev/null
s=$(device_api stray)
expect_status 403 "a certificate under no project root is refused" "$s"
curl -sS --max-time 30 --cacert "$CA/root.crt" -o /dev/null -w '%{http_code}' "$API" >"$T/code" || true
[ "$(cat "$T/code")" = 401 ] || fail "device API without a client certificate: $(cat "$T/code")"
pass "the device API needs a client certificate (401)"

# ---- last seen advances once flushed (the server flushes when it stops) ----
show dev-0002
before=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_seen"])' "$T/show.json")
sleep 1.1 # the clock must move on by a second for last_seen to differ
s=$(device_api idev2)
expect_status 200 "a later contact" "$s"
fp_serve_stop
show dev-0002
jcheck "$T/show.json" "j['last_seen'] > $before and j['first_seen'] <= $before"
pass "last seen advanced after the flush"
grep -q "ERROR" "$T/server.log" && { cat "$T/server.log" >&2; fail "server logged an error"; }
exit 0
