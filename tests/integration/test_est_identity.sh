#!/usr/bin/env bash
# Which name a certificate-authenticated device may request (issue 8,
# defect 4): by default (cert_identity = same) only its own subject and
# SANs; a label may derive the new name from the certificate's CN, its
# subject serialNumber (IDevID), or a pattern.  Tokens keep their --cn.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

# A manufacturer CA and IDevIDs it issued (serialNumber in the subject).
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$T/mfg.key" -subj "/O=Acme/CN=Acme IDevID CA" -out "$T/mfg.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
idevid() { # NAME SUBJECT
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
        -subj "$2" -out "$T/$1.csr" 2>/dev/null
    openssl x509 -req -in "$T/$1.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
        -days 30 -out "$T/$1.crt" 2>/dev/null
}
idevid idev "/CN=Acme Widget/serialNumber=SN0042"
idevid idevq "/CN=Acme Widget/serialNumber=SN00?2" # PrintableString allows ?

est_start "[est sn]
auth = cert
trust_anchors = $T/mfg.crt
cert_identity = serialnumber

[est cn]
auth = cert
trust_anchors = $T/mfg.crt
cert_identity = cn

[est pat]
auth = cert
trust_anchors = $T/mfg.crt
cert_identity = pattern
cert_identity_pattern = ldev-{serialnumber}-*

[est same]
auth = cert
trust_anchors = $T/mfg.crt

[est held]
manual_approval = yes"

# two devices enrolled with tokens
for d in dev-a dev-b; do
    token default --uses 1
    est_csr "$d" "/CN=$d" -addext "subjectAltName=DNS:$d.example"
    s=$(est_post "$EST/simpleenroll" "$T/$d.b64" -u "$TOK_ID:$TOK_SECRET")
    expect_status 200 "$d enrolls with a token" "$s"
    p7_certs "$T/body" "$T/$d.crt"
done
a=(--cert "$T/dev-a.crt" --key "$T/dev-a.key")

# ---- default label (cert_identity = same) ----
est_csr a-as-b "/CN=dev-b" -addext "subjectAltName=DNS:dev-b.example"
for op in simpleenroll serverkeygen; do
    s=$(est_post "$EST/$op" "$T/a-as-b.b64" "${a[@]}")
    expect_status 403 "dev-a's certificate cannot $op dev-b's identity" "$s"
    grep -q '^csr-subject: .*cert_identity = same' "$T/body" ||
        fail "403 body should start with csr-subject and name the rule: $(cat "$T/body")"
done
est_csr a-cn-b "/CN=dev-b" -addext "subjectAltName=DNS:dev-a.example"
s=$(est_post "$EST/simpleenroll" "$T/a-cn-b.b64" "${a[@]}")
expect_status 403 "dev-a cannot take dev-b's CN with its own SAN" "$s"
est_csr a-san-b "/CN=dev-a" -addext "subjectAltName=DNS:dev-a.example,DNS:dev-b.example"
s=$(est_post "$EST/simpleenroll" "$T/a-san-b.b64" "${a[@]}")
expect_status 403 "dev-a cannot add dev-b's SAN" "$s"
est_csr a-nosan "/CN=dev-a"
s=$(est_post "$EST/simpleenroll" "$T/a-nosan.b64" "${a[@]}")
expect_status 403 "dev-a cannot drop its SAN (the identity is subject and SANs)" "$s"
s=$(est_post "$EST/held/simpleenroll" "$T/a-as-b.b64" "${a[@]}")
expect_status 403 "manual-approval label: dev-a's request for dev-b is refused, not held" "$s"
est_csr a-own "/CN=dev-a" -addext "subjectAltName=DNS:dev-a.example"
s=$(est_post "$EST/simpleenroll" "$T/a-own.b64" "${a[@]}")
expect_status 200 "dev-a enrolls its own identity (new key)" "$s"
p7_certs "$T/body" "$T/a-own.crt"
[ "$(openssl x509 -in "$T/a-own.crt" -noout -subject)" = "subject=CN = dev-a" ] || fail "wrong subject"
s=$(est_post "$EST/serverkeygen" "$T/a-own.b64" "${a[@]}")
expect_status 200 "dev-a serverkeygen for its own identity" "$s"
fp list --dir "$CA" >"$T/list"
nb=$(grep -c 'CN=dev-b' "$T/list" || true)
[ "$nb" = 1 ] || { cat "$T/list" >&2; fail "expected exactly dev-b's own certificate, found $nb"; }
pass "the store holds no certificate for dev-b beyond its own"

# ---- serialnumber (IDevID -> LDevID named by the serial) ----
i=(--cert "$T/idev.crt" --key "$T/idev.key")
est_csr sn-ok "/CN=SN0042" -addext "subjectAltName=DNS:sn0042.example"
s=$(est_post "$EST/sn/simpleenroll" "$T/sn-ok.b64" "${i[@]}")
expect_status 200 "serialnumber: CN = the IDevID's serialNumber" "$s"
est_csr sn-bad "/CN=SN0043"
s=$(est_post "$EST/sn/simpleenroll" "$T/sn-bad.b64" "${i[@]}")
expect_status 403 "serialnumber: another serial is refused" "$s"
est_csr sn-cn "/CN=Acme Widget"
s=$(est_post "$EST/sn/simpleenroll" "$T/sn-cn.b64" "${i[@]}")
expect_status 403 "serialnumber: the IDevID's CN is not its serial" "$s"
# the same IDevID on the default-rule label: only its own subject
s=$(est_post "$EST/same/simpleenroll" "$T/sn-ok.b64" "${i[@]}")
expect_status 403 "same: an IDevID cannot pick a new name" "$s"

# ---- cn ----
est_csr cn-ok "/CN=Acme Widget" -addext "subjectAltName=DNS:w.example"
s=$(est_post "$EST/cn/simpleenroll" "$T/cn-ok.b64" "${i[@]}")
expect_status 200 "cn: same CN (SANs per profile)" "$s"
est_csr cn-bad "/CN=Acme Gadget"
s=$(est_post "$EST/cn/simpleenroll" "$T/cn-bad.b64" "${i[@]}")
expect_status 403 "cn: another CN is refused" "$s"

# ---- pattern ----
est_csr pat-ok "/CN=ldev-SN0042-eth0"
s=$(est_post "$EST/pat/simpleenroll" "$T/pat-ok.b64" "${i[@]}")
expect_status 200 "pattern ldev-{serialnumber}-*: ldev-SN0042-eth0" "$s"
est_csr pat-bad "/CN=ldev-SN0043-eth0"
s=$(est_post "$EST/pat/simpleenroll" "$T/pat-bad.b64" "${i[@]}")
expect_status 403 "pattern: another serial is refused" "$s"
# the certificate's attribute is inserted literally: serialNumber "SN00?2"
# is no wildcard for SN0042
q=(--cert "$T/idevq.crt" --key "$T/idevq.key")
s=$(est_post "$EST/pat/simpleenroll" "$T/pat-ok.b64" "${q[@]}")
expect_status 403 "pattern: serialNumber 'SN00?2' is no wildcard" "$s"
est_csr pat-q "/CN=ldev-SN00?2-x"
s=$(est_post "$EST/pat/simpleenroll" "$T/pat-q.b64" "${q[@]}")
expect_status 200 "pattern: serialNumber 'SN00?2' matches itself" "$s"
# '*' never crosses '/' (nor matches a space): the CN pattern language of
# docs/policy.md, the same as token --cn, not fnmatch(3)
est_csr pat-slash "/CN=ldev-SN0042-a\/..\/x"
s=$(est_post "$EST/pat/simpleenroll" "$T/pat-slash.b64" "${i[@]}")
expect_status 403 "pattern: '*' does not match across '/'" "$s"
est_csr pat-space "/CN=ldev-SN0042-a b"
s=$(est_post "$EST/pat/simpleenroll" "$T/pat-space.b64" "${i[@]}")
expect_status 403 "pattern: '*' does not match a space" "$s"

# ---- tokens keep their --cn limit ----
token default --uses 1 --cn 'dev-*'
est_csr tok-bad "/CN=gw-1"
s=$(est_post "$EST/simpleenroll" "$T/tok-bad.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "token --cn dev-*: gw-1 is refused" "$s"
grep -q '^csr-cn' "$T/body" || fail "expected csr-cn: $(cat "$T/body")"
est_stop

# ---- config errors ----
fp_new_ca "$T/ca2" >/dev/null
printf '\n[est x]\ncert_identity = anyone\n' >>"$T/ca2/fleetpki.conf"
expect_fail "unknown cert_identity is a config error" \
    fp serve --dir "$T/ca2" --https 127.0.0.1:0 --http 127.0.0.1:0
grep -q 'cert_identity' "$T/last.err" || fail "error should name cert_identity"
sed -i 's/cert_identity = anyone/cert_identity = pattern/' "$T/ca2/fleetpki.conf"
expect_fail "cert_identity = pattern without a pattern is a config error" \
    fp serve --dir "$T/ca2" --https 127.0.0.1:0 --http 127.0.0.1:0
grep -q 'cert_identity_pattern' "$T/last.err" || fail "error should name cert_identity_pattern"
printf 'cert_identity_pattern = dev-[0-9]*\n' >>"$T/ca2/fleetpki.conf"
expect_fail "cert_identity_pattern outside the CN pattern language is a config error" \
    fp serve --dir "$T/ca2" --https 127.0.0.1:0 --http 127.0.0.1:0
grep -q 'cert_identity_pattern' "$T/last.err" || fail "error should name cert_identity_pattern"
pass "config errors name the option"
