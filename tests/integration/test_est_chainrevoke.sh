#!/usr/bin/env bash
# Revocation at every depth of a client chain (issue 8, defect 3): a leaf
# signed by a sub-CA we issued may enroll only while the sub-CA is valid
# in our store; revoking it (keyCompromise) or putting it on hold stops
# the leaf, on a new connection and on the next request of a kept-alive
# one (the chain verdict is cached per connection, the store is not).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start "[est certonly]
auth = cert"

# subca NAME: a sub-CA issued by our CA (profile sub-ca) and a clientAuth
# leaf it signs outside fleetpki; $T/NAME-leaf.pem is leaf + sub-CA (curl
# sends the chain), $T/NAME-leaf.key its key, SUB_SERIAL the sub-CA serial
subca() {
    local name=$1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$name.key" \
        -subj "/CN=$name" -out "$T/$name.csr" 2>/dev/null
    fp issue --dir "$CA" --csr "$T/$name.csr" --profile sub-ca --out "$T/$name.crt" >/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/$name-leaf.key" -subj "/CN=$name-device" -out "$T/$name-leaf.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
        >"$T/leaf.ext"
    openssl x509 -req -in "$T/$name-leaf.csr" -CA "$T/$name.crt" -CAkey "$T/$name.key" \
        -CAcreateserial -days 5 -extfile "$T/leaf.ext" -out "$T/$name-leaf.crt" 2>/dev/null
    cat "$T/$name-leaf.crt" "$T/$name.crt" >"$T/$name-leaf.pem"
    openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" -untrusted "$T/$name.crt" \
        -purpose sslclient "$T/$name-leaf.crt" >/dev/null || fail "$name leaf does not verify"
    SUB_SERIAL=$(openssl x509 -in "$T/$name.crt" -noout -serial | cut -d= -f2)
    est_csr "$name-req" "/CN=$name-device"
}

# ---- revoked sub-CA, new connections ----
subca suba
leaf=(--cert "$T/suba-leaf.pem" --key "$T/suba-leaf.key")
s=$(est_post "$EST/simpleenroll" "$T/suba-req.b64" "${leaf[@]}")
expect_status 200 "leaf of a valid sub-CA enrolls" "$s"
s=$(est_post "$EST/certonly/serverkeygen" "$T/suba-req.b64" "${leaf[@]}")
expect_status 200 "leaf of a valid sub-CA: serverkeygen on a cert-only label" "$s"
fp revoke "$SUB_SERIAL" --dir "$CA" --reason keyCompromise >/dev/null
for op in simpleenroll serverkeygen; do
    for path in "" certonly/; do
        s=$(est_post "$EST/$path$op" "$T/suba-req.b64" "${leaf[@]}")
        expect_status 401 "leaf of a revoked (keyCompromise) sub-CA: $path$op" "$s"
    done
done
grep -q 'revoked' "$T/body" || fail "401 should say why: $(cat "$T/body")"

# ---- on hold, lifted ----
subca subb
leaf=(--cert "$T/subb-leaf.pem" --key "$T/subb-leaf.key")
fp revoke "$SUB_SERIAL" --dir "$CA" --reason certificateHold >/dev/null
s=$(est_post "$EST/simpleenroll" "$T/subb-req.b64" "${leaf[@]}")
expect_status 401 "leaf of a sub-CA on hold" "$s"
fp revoke "$SUB_SERIAL" --dir "$CA" --reason removeFromCRL >/dev/null
s=$(est_post "$EST/simpleenroll" "$T/subb-req.b64" "${leaf[@]}")
expect_status 200 "leaf of a sub-CA whose hold was lifted" "$s"

# keepalive_twice CHAIN KEY REQ CMD...: on one kept-alive connection with
# client certificate CHAIN (key KEY), simpleenroll REQ, run CMD, enroll
# again; prints the two statuses ("200 401"), fails if the connection was
# not kept alive
keepalive_twice() {
    python3 - "$HTTPS" "$CA/root.crt" "$@" <<'PY'
import http.client, ssl, subprocess, sys
hostport, root, chain, key, req = sys.argv[1:6]
host, port = hostport.rsplit(':', 1)
ctx = ssl.create_default_context(cafile=root)
ctx.load_cert_chain(chain, key)
conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
body = open(req, 'rb').read()
def enroll():
    conn.request('POST', '/.well-known/est/simpleenroll', body,
                 {'Content-Type': 'application/pkcs10'})
    r = conn.getresponse()
    r.read()
    return r.status, conn.sock.getsockname()
st1, local1 = enroll()
subprocess.run(sys.argv[6:], check=True, stdout=subprocess.DEVNULL)
st2, local2 = enroll()
if local1 != local2:
    sys.exit('the connection was not kept alive')
print(st1, st2)
PY
}

# ---- keep-alive: revoked between two requests of one connection ----
subca subc
st=$(keepalive_twice "$T/subc-leaf.pem" "$T/subc-leaf.key" "$T/subc-req.b64" \
    "$FLEETPKI" revoke "$SUB_SERIAL" --dir "$CA" --reason keyCompromise) || fail "keep-alive revocation"
[ "$st" = "200 401" ] || fail "keep-alive revocation: statuses $st, expected 200 then 401"
pass "revocation of the sub-CA counts from the next request of a kept-alive connection"

# ---- keep-alive: the leaf expires between two requests of one connection ----
# The chain verdict is cached per connection; it must not outlive the
# earliest notAfter of the chain.  `openssl ca -enddate` makes a leaf that
# expires a few seconds from now.
subca subd
mkdir -p "$T/ca-d/newcerts"
: >"$T/ca-d/index.txt"
echo 01 >"$T/ca-d/serial"
cat >"$T/ca-d.cnf" <<CNF
[ca]
default_ca = d
[d]
dir = $T/ca-d
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
default_md = sha256
policy = pol
unique_subject = no
[pol]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
end=$(date -u -d '+5 seconds' +%Y%m%d%H%M%SZ)
openssl ca -batch -config "$T/ca-d.cnf" -cert "$T/subd.crt" -keyfile "$T/subd.key" \
    -in "$T/subd-leaf.csr" -enddate "$end" -extensions ext -notext \
    -out "$T/subd-short.crt" 2>"$T/ca-d.err" || { cat "$T/ca-d.err"; fail "short-lived leaf"; }
cat "$T/subd-short.crt" "$T/subd.crt" >"$T/subd-short.pem"
st=$(keepalive_twice "$T/subd-short.pem" "$T/subd-leaf.key" "$T/subd-req.b64" sleep 7) ||
    fail "keep-alive expiry"
[ "$st" = "200 401" ] ||
    fail "keep-alive expiry: statuses $st, expected 200 then 401 (leaf notAfter $end)"
pass "an expired leaf is refused on the next request of a kept-alive connection"

est_stop
pass "clean shutdown"
