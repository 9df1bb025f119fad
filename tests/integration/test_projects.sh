#!/usr/bin/env bash
# Projects (tenants) with their own CAs (issue 9): two projects, each with
# an EST label; nothing of one authenticates, enrolls or renews in the
# other (tokens, client certificates, bring-your-own roots); each CA has
# its own CRL and OCSP answers, checked with `openssl verify -crl_check`
# and `openssl ocsp`; AIA/CDP point at the CA's own URLs; `root add` and
# `ca import` refuse bad certificates naming the rule.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null

# ---- projects and their CAs ----
fp project create acme --dir "$CA" >"$T/p.out" || fail "project create acme"
grep -q "issuing CA acme-1" "$T/p.out" || fail "project create names its CA: $(cat "$T/p.out")"
fp project create beta --dir "$CA" >/dev/null || fail "project create beta"
pass "two projects created, each with an issuing CA"
expect_code 1 "a project name is taken once" fp project create acme --dir "$CA"
grep -q "exists" "$T/last.err" || fail "duplicate project: $(cat "$T/last.err")"
expect_code 2 "a project name with capitals or '/' is refused" fp project create 'Acme/1' --dir "$CA"
fp ca list --dir "$CA" --json >"$T/cas.json"
python3 - "$T/cas.json" <<'PY' || fail "ca list --json"
import json, sys
cas = {c["id"]: c for c in json.load(open(sys.argv[1]))}
assert cas["acme-1"]["project"] == "acme" and cas["acme-1"]["active"], cas
assert cas["beta-1"]["project"] == "beta" and cas["beta-1"]["kind"] == "issuing", cas
assert cas["issuing"]["project"] == "default" and cas["root"]["kind"] == "root", cas
assert cas["acme-1"]["parent"] == "root", cas
PY
pass "ca list shows each project's active CA under the root"
[ "$(stat -c %a "$CA/ca/acme-1/ca.key")" = 600 ] || fail "CA key mode"
pass "a project CA key is created 0600"

# A manufacturer root for acme only (bring-your-own), and a device under it.
mkroot() { # name subj [extra openssl req args]
    local n=$1 s=$2
    shift 2
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -keyout "$T/$n.key" -subj "$s" -out "$T/$n.crt" "$@" 2>/dev/null
}
mkroot mfg "/O=Acme Factory/CN=Acme Factory Root" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/idev.key" \
    -subj "/CN=acme-0042" -out "$T/idev.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$T/leaf.ext"
openssl x509 -req -in "$T/idev.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
    -days 30 -extfile "$T/leaf.ext" -out "$T/idev.crt" 2>/dev/null

# ---- root add: every rule named ----
mkroot leafy "/CN=not a CA" -addext basicConstraints=critical,CA:FALSE
expect_code 3 "root add refuses a certificate that is not a CA" \
    fp root add --dir "$CA" --project acme "$T/leafy.crt"
grep -q "rule 'ca'" "$T/last.err" || fail "not a CA: rule not named: $(cat "$T/last.err")"
mkroot nokcs "/CN=no keyCertSign" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,digitalSignature
expect_code 3 "root add refuses a CA certificate without keyCertSign" \
    fp root add --dir "$CA" --project acme "$T/nokcs.crt"
grep -q "keyCertSign" "$T/last.err" || fail "no keyCertSign: $(cat "$T/last.err")"
# an expired CA: openssl ca with dates in the past
mkdir -p "$T/old/newcerts"
: >"$T/old/index.txt"
echo 01 >"$T/old/serial"
cat >"$T/old.cnf" <<CNF
[ca]
default_ca = d
[d]
dir = $T/old
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
default_md = sha256
policy = pol
unique_subject = no
[pol]
commonName = supplied
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
CNF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/old.key" \
    -subj "/CN=expired root" -out "$T/old.csr" 2>/dev/null
openssl ca -batch -selfsign -config "$T/old.cnf" -keyfile "$T/old.key" -in "$T/old.csr" \
    -startdate 20200101000000Z -enddate 20210101000000Z -extensions ext -notext \
    -out "$T/old.crt" 2>"$T/old.err" || { cat "$T/old.err"; fail "expired root"; }
expect_code 3 "root add refuses an expired CA certificate" \
    fp root add --dir "$CA" --project acme "$T/old.crt"
grep -q "rule 'validity'" "$T/last.err" || fail "expired: $(cat "$T/last.err")"
# an intermediate CA whose file carries a root that did not sign it
mkroot other "/CN=Unrelated Root" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/fac.key" \
    -subj "/CN=Acme Factory CA 2" -out "$T/fac.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n' >"$T/ca.ext"
openssl x509 -req -in "$T/fac.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
    -days 30 -extfile "$T/ca.ext" -out "$T/fac.crt" 2>/dev/null
cat "$T/fac.crt" "$T/other.crt" >"$T/fac-wrong.pem"
expect_code 3 "root add refuses a chain that does not verify" \
    fp root add --dir "$CA" --project acme "$T/fac-wrong.pem"
grep -q "rule 'chain'" "$T/last.err" || fail "bad chain: $(cat "$T/last.err")"
expect_code 1 "root add into an unknown project fails" \
    fp root add --dir "$CA" --project nope "$T/mfg.crt"
fp root add --dir "$CA" --project acme "$T/mfg.crt" >"$T/root.out" || fail "root add mfg"
fp root add --dir "$CA" --project acme "$T/mfg.crt" >/dev/null || fail "root add twice is a no-op"
pass "root add takes a good root, and again as a no-op"

# ---- ca import: a CA made elsewhere, signed by acme's trust root ----
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/imp.key" \
    -subj "/O=Acme/CN=Acme Imported Issuing CA" -out "$T/imp.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' >"$T/imp.ext"
openssl x509 -req -in "$T/imp.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
    -days 30 -extfile "$T/imp.ext" -out "$T/imp.crt" 2>/dev/null
expect_code 3 "ca import refuses a key that is not the certificate's" \
    fp ca import --dir "$CA" --project acme --cert "$T/imp.crt" --key "$T/idev.key"
grep -q "rule 'key-match'" "$T/last.err" || fail "key mismatch: $(cat "$T/last.err")"
expect_code 3 "ca import refuses a CA that does not chain to the root or beta's trust roots" \
    fp ca import --dir "$CA" --project beta --cert "$T/imp.crt" --key "$T/imp.key"
grep -q "rule 'chain'" "$T/last.err" || fail "import chain: $(cat "$T/last.err")"
expect_code 3 "ca import refuses a leaf certificate" \
    fp ca import --dir "$CA" --project acme --cert "$T/idev.crt" --key "$T/idev.key"

# ---- EST: labels name their project ----
cat >>"$CA/fleetpki.conf" <<CONF

[server]
public_url = http://pki.example

[est acme]
project = acme

[est beta]
project = beta

[est acme-dev]
project = acme
auth = cert
CONF
fp_serve_run
EST="https://$HTTPS/.well-known/est"

token acme
A_ID=$TOK_ID A_SECRET=$TOK_SECRET
token beta
B_ID=$TOK_ID B_SECRET=$TOK_SECRET
est_csr a1 "/CN=sensor-a1"
est_csr b1 "/CN=sensor-b1"
s=$(est_post "$EST/beta/simpleenroll" "$T/a1.b64" -u "$A_ID:$A_SECRET")
expect_status 401 "a token of project acme does not enroll in beta" "$s"
s=$(est_post "$EST/simpleenroll" "$T/a1.b64" -u "$A_ID:$A_SECRET")
expect_status 401 "a token of project acme does not enroll in default" "$s"
s=$(est_post "$EST/acme/simpleenroll" "$T/a1.b64" -u "$A_ID:$A_SECRET")
expect_status 200 "a token of project acme enrolls in acme" "$s"
p7_certs "$T/body" "$T/a1.crt"
s=$(est_post "$EST/beta/simpleenroll" "$T/b1.b64" -u "$B_ID:$B_SECRET")
expect_status 200 "a token of project beta enrolls in beta" "$s"
p7_certs "$T/body" "$T/b1.crt"

# each project's cacerts is its own chain, and its certificates verify with it
s=$(est_get "$EST/acme/cacerts"); expect_status 200 "acme cacerts" "$s"
p7_certs "$T/body" "$T/acme-chain.pem"
s=$(est_get "$EST/beta/cacerts"); expect_status 200 "beta cacerts" "$s"
p7_certs "$T/body" "$T/beta-chain.pem"
# (the certificates' SET OF is in DER order, not chain order: look at all)
openssl crl2pkcs7 -nocrl -certfile "$T/acme-chain.pem" | openssl pkcs7 -print_certs -noout |
    grep -q "subject=.*acme Issuing CA" || fail "acme cacerts holds acme's CA"
openssl verify -CAfile "$CA/root.crt" -untrusted "$T/acme-chain.pem" "$T/a1.crt" >/dev/null ||
    fail "acme certificate verifies under acme's chain"
if openssl verify -CAfile "$CA/root.crt" -untrusted "$T/beta-chain.pem" "$T/a1.crt" >/dev/null 2>&1; then
    fail "acme certificate verified under beta's chain"
fi
openssl x509 -in "$T/a1.crt" -noout -issuer | grep -q "acme Issuing CA" || fail "a1 issuer"
openssl x509 -in "$T/b1.crt" -noout -issuer | grep -q "beta Issuing CA" || fail "b1 issuer"
pass "each label's certificates come from its project's CA, and cacerts is that CA's chain"
# AIA and CDP name the certificate's own CA
openssl x509 -in "$T/a1.crt" -noout -text >"$T/a1.txt"
grep -q "http://pki.example/crl/acme-1.crl" "$T/a1.txt" || fail "CDP of acme certificate"
grep -q "http://pki.example/ca/acme-1.crt" "$T/a1.txt" || fail "caIssuers of acme certificate"
grep -q "http://pki.example/ocsp" "$T/a1.txt" || fail "OCSP URL"
pass "CDP and AIA point at the issuing CA's own URLs"

# client certificates stay in their project
s=$(est_post "$EST/beta/simplereenroll" "$T/a1.b64" --cert "$T/a1.crt" --key "$T/a1.key")
expect_status 401 "an acme certificate does not renew in beta" "$s"
s=$(est_post "$EST/simplereenroll" "$T/a1.b64" --cert "$T/a1.crt" --key "$T/a1.key")
expect_status 401 "an acme certificate does not renew in default" "$s"
cat "$T/a1.crt" "$T/acme-chain.pem" >"$T/a1-chain.pem"
s=$(est_post "$EST/beta/simpleenroll" "$T/a1.b64" --cert "$T/a1-chain.pem" --key "$T/a1.key")
expect_status 401 "an acme certificate with its full chain does not enroll in beta (the shared root is no anchor)" "$s"
s=$(est_post "$EST/acme/simplereenroll" "$T/a1.b64" --cert "$T/a1.crt" --key "$T/a1.key")
expect_status 200 "an acme certificate renews in acme" "$s"
# bring-your-own root: acme's factory devices enroll on acme's labels only
openssl req -new -key "$T/idev.key" -subj "/CN=acme-0042" -outform DER -out "$T/idv.der"
base64 <"$T/idv.der" >"$T/idv.b64"
s=$(est_post "$EST/acme-dev/simpleenroll" "$T/idv.b64" --cert "$T/idev.crt" --key "$T/idev.key")
expect_status 200 "a device under acme's bring-your-own root enrolls in acme" "$s"
s=$(est_post "$EST/beta/simpleenroll" "$T/idv.b64" --cert "$T/idev.crt" --key "$T/idev.key")
expect_status 401 "a device under acme's root does not enroll in beta" "$s"

# the CLI issues per project too
fp_csr cli1 "/CN=cli-beta-1"
fp issue --dir "$CA" --csr "$T/cli1.csr" --profile device --project beta --out "$T/cli1.crt" ||
    fail "issue --project beta"
openssl x509 -in "$T/cli1.crt" -noout -issuer | grep -q "beta Issuing CA" || fail "cli issuer"
expect_code 1 "issue into an unknown project fails" \
    fp issue --dir "$CA" --csr "$T/cli1.csr" --profile device --project nope
pass "fleetpki issue --project signs with the project's CA"

# ---- revocation: per-CA CRL and OCSP ----
a1_serial=$(openssl x509 -in "$T/a1.crt" -noout -serial | cut -d= -f2)
fp revoke "$a1_serial" --reason keyCompromise --dir "$CA" >/dev/null || fail "revoke a1"
listed=no
for _ in $(seq 1 600); do
    if curl -sf -o "$T/acme.crl" "http://$HTTP/crl/acme-1.crl" &&
        openssl crl -inform DER -in "$T/acme.crl" -noout -text 2>/dev/null | grep -q "$a1_serial"; then
        listed=yes
        break
    fi
    sleep 0.1
done
[ "$listed" = yes ] || { tail -20 "$T/server.log" >&2; fail "acme's CRL does not list the revoked certificate after 60 s"; }
openssl crl -inform DER -in "$T/acme.crl" -out "$T/acme-crl.pem"
curl -sf -o "$T/beta.crl" "http://$HTTP/crl/beta-1.crl" || fail "beta CRL"
openssl crl -inform DER -in "$T/beta.crl" -out "$T/beta-crl.pem"
openssl crl -in "$T/acme-crl.pem" -noout -issuer | grep -q "acme Issuing CA" || fail "acme CRL issuer"
openssl crl -in "$T/beta-crl.pem" -noout -issuer | grep -q "beta Issuing CA" || fail "beta CRL issuer"
openssl asn1parse -inform DER -in "$T/acme.crl" >/dev/null || fail "acme CRL does not parse strictly"
# the issuing CA of each chain, picked by subject (DER order is not chain order)
pick_ca() { # CHAIN SUBJECT-PART OUT
    python3 - "$@" <<'PY'
import sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
certs = x509.load_pem_x509_certificates(open(sys.argv[1], "rb").read())
hit = [c for c in certs if sys.argv[2] in c.subject.rfc4514_string()]
assert len(hit) == 1, [c.subject.rfc4514_string() for c in certs]
open(sys.argv[3], "wb").write(hit[0].public_bytes(Encoding.PEM))
PY
}
pick_ca "$T/acme-chain.pem" "acme Issuing CA" "$T/acme-ca.pem" || fail "acme chain has one acme CA"
pick_ca "$T/beta-chain.pem" "beta Issuing CA" "$T/beta-ca.pem" || fail "beta chain has one beta CA"
if openssl verify -crl_check -CAfile "$CA/root.crt" -untrusted "$T/acme-chain.pem" \
    -CRLfile "$T/acme-crl.pem" "$T/a1.crt" >"$T/v.out" 2>&1; then
    fail "revoked acme certificate verified with acme's CRL"
fi
grep -q "revoked" "$T/v.out" || fail "verify -crl_check: $(cat "$T/v.out")"
openssl verify -crl_check -CAfile "$CA/root.crt" -untrusted "$T/beta-chain.pem" \
    -CRLfile "$T/beta-crl.pem" "$T/b1.crt" >/dev/null || fail "beta certificate with beta's CRL"
pass "each CA publishes its own CRL: acme's lists the revoked certificate, beta's verifies"

openssl ocsp -issuer "$T/acme-ca.pem" -cert "$T/a1.crt" -url "http://$HTTP/ocsp" \
    -CAfile "$CA/root.crt" -no_nonce -resp_text >"$T/ocsp.out" 2>&1 || true
grep -q "Response verify OK" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "acme OCSP verify"; }
grep -q "$T/a1.crt: revoked" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "acme OCSP status"; }
grep -q "Subject: .*OCSP responder (acme-1)" "$T/ocsp.out" ||
    { grep "Subject" "$T/ocsp.out" >&2; fail "acme's answer is signed by acme's delegated responder"; }
openssl ocsp -issuer "$T/beta-ca.pem" -cert "$T/b1.crt" -url "http://$HTTP/ocsp" \
    -CAfile "$CA/root.crt" -no_nonce -resp_text >"$T/ocsp.out" 2>&1 || true
grep -q "Response verify OK" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "beta OCSP verify"; }
grep -q "$T/b1.crt: good" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "beta OCSP status"; }
grep -q "Subject: .*OCSP responder (beta-1)" "$T/ocsp.out" || fail "beta's responder"
pass "OCSP answers for every CA, each signed by that CA's delegated responder"

# the CLI sees the same per-project, per-CA state
fp list --dir "$CA" --project beta --json >"$T/lb.json"
python3 - "$T/lb.json" <<'PY' || fail "list --project beta"
import json, sys
rows = json.load(open(sys.argv[1]))
assert all(r["project"] == "beta" and r["ca"] == "beta-1" for r in rows), rows
# serve made the CA's OCSP and CMP responders (docs/cmp.md) and the SCEP RA
# certificate (docs/scep.md)
assert sorted(r["profile"] for r in rows) == ["cmp-responder", "device", "device", "ocsp-signer", "scep-ra"], rows
PY
fp crl --dir "$CA" --ca acme-1 --out "$T/acme-cli.crl" >/dev/null || fail "crl --ca acme-1"
openssl crl -inform DER -in "$T/acme-cli.crl" -noout -text | grep -q "$a1_serial" || fail "CLI CRL of acme-1"
openssl ocsp -issuer "$T/acme-ca.pem" -cert "$T/a1.crt" -no_nonce -reqout "$T/a1.ocspreq" >/dev/null 2>&1
fp ocsp --dir "$CA" --request "$T/a1.ocspreq" --out "$T/a1.ocspresp" || fail "offline OCSP"
openssl ocsp -respin "$T/a1.ocspresp" -issuer "$T/acme-ca.pem" -cert "$T/a1.crt" \
    -CAfile "$CA/root.crt" >"$T/ocsp.out" 2>&1 || true
grep -q "$T/a1.crt: revoked" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "offline OCSP status"; }
pass "list --project, crl --ca and offline OCSP answer per project and CA"

# a revoked acme device falls back to nothing: its renewal is refused
s=$(est_post "$EST/acme/simplereenroll" "$T/a1.b64" --cert "$T/a1.crt" --key "$T/a1.key")
expect_status 401 "a revoked acme certificate no longer renews" "$s"
fp_serve_stop

# ---- import makes the imported CA active; the next server issues from it ----
fp ca import --dir "$CA" --project acme --cert "$T/imp.crt" --key "$T/imp.key" >"$T/imp.out" ||
    fail "ca import $(cat "$T/imp.out")"
imp_id=$(sed -n 's/.*issuing CA //p' "$T/imp.out")
[ -n "$imp_id" ] || fail "ca import printed no id"
fp_serve_run
EST="https://$HTTPS/.well-known/est"
token acme
est_csr a2 "/CN=sensor-a2"
s=$(est_post "$EST/acme/simpleenroll" "$T/a2.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "acme enrolls after the import" "$s"
p7_certs "$T/body" "$T/a2.crt"
openssl x509 -in "$T/a2.crt" -noout -issuer | grep -q "Acme Imported Issuing CA" ||
    fail "the imported CA is acme's active CA"
openssl verify -CAfile "$T/mfg.crt" -untrusted "$T/imp.crt" "$T/a2.crt" >/dev/null ||
    fail "a certificate of the imported CA verifies under the vendor's root"
curl -sf -o /dev/null "http://$HTTP/crl/$imp_id.crl" || fail "the imported CA has its CRL"
pass "an imported CA signed by a trust root becomes the project's active CA, with its own CRL"
fp_serve_stop

# rolling back: acme-1 active again; the root and trust roots never issue
expect_code 1 "the shared root cannot be made a project's issuing CA" fp ca activate root --dir "$CA"
grep -q "not an issuing CA" "$T/last.err" || fail "activate root: $(cat "$T/last.err")"
expect_code 1 "an unknown CA cannot be activated" fp ca activate nope-9 --dir "$CA"
fp ca activate acme-1 --dir "$CA" >/dev/null || fail "ca activate acme-1"
fp ca list --dir "$CA" --project acme --json >"$T/acme-cas.json"
python3 - "$T/acme-cas.json" "$imp_id" <<'PY' || fail "one active CA per project after activate"
import json, sys
cas = {c["id"]: c for c in json.load(open(sys.argv[1]))}
assert cas["acme-1"]["active"] and not cas[sys.argv[2]]["active"], cas
PY
fp_serve_run
EST="https://$HTTPS/.well-known/est"
token acme
est_csr a3 "/CN=sensor-a3"
s=$(est_post "$EST/acme/simpleenroll" "$T/a3.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "acme enrolls after the rollback" "$s"
p7_certs "$T/body" "$T/a3.crt"
openssl x509 -in "$T/a3.crt" -noout -issuer | grep -q "acme Issuing CA (acme-1)" ||
    fail "after ca activate acme-1, acme's certificates come from acme-1"
pass "ca activate rolls a project back to an earlier CA; the root cannot be activated"
fp_serve_stop
fp audit verify --dir "$CA" >/dev/null || fail "audit chain"
pass "audit chain verifies"
