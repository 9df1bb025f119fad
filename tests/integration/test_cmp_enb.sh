#!/usr/bin/env bash
# The eNodeB flow of 3GPP TS 33.310 (9.5) over CMP: a base station's
# vendor certificate (IDevID) under a vendor root uploaded to the
# operator's project (`fleetpki root add`) protects its ir; the answer is
# an operator certificate from the project's CA, the operator root in
# caPubs, signed by the CA's CMP responder with its chain in extraCerts.
# Then kur with the operator certificate.  Negative: a vendor root not
# uploaded, the vendor root of another project, a name the label's
# cert_identity does not allow.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cmp_lib.sh"

fp_new_ca "$CA" >/dev/null
fp project create lte --dir "$CA" >/dev/null

# vendor PKI: root -> IDevID of base station enb-0001
vendor_ca() { # NAME
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
        -subj "/O=Vendor $1/CN=$1 Root" -days 30 -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign -out "$T/$1.crt" 2>/dev/null
}
idevid() { # CA NAME CN
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$2.key" \
        -subj "/O=Vendor/CN=$3/serialNumber=SN-$3" -out "$T/$2.csr" 2>/dev/null
    printf 'keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' >"$T/ext.cnf"
    openssl x509 -req -in "$T/$2.csr" -CA "$T/$1.crt" -CAkey "$T/$1.key" -CAcreateserial -days 30 \
        -extfile "$T/ext.cnf" -out "$T/$2.crt" 2>/dev/null
}
vendor_ca vendorA
vendor_ca vendorB
idevid vendorA idev "enb-0001"
idevid vendorB idevB "enb-0002"
fp root add --project lte "$T/vendorA.crt" --dir "$CA" >/dev/null
cat >>"$CA/fleetpki.conf" <<'CONF'

[est enb]
project = lte
profile = device
auth = cert
cert_identity = cn
CONF
fp_serve_run
CMPURL="http://$HTTP/.well-known/cmp"
ENB="$CMPURL/p/enb"

key op
URL=$ENB cmpc enb -cmd ir -cert "$T/idev.crt" -key "$T/idev.key" -newkey "$T/op.key" \
    -subject "/CN=enb-0001" -trusted "$CA/root.crt" -certout "$T/op.crt" \
    -cacertsout "$T/capubs.pem" -extracertsout "$T/extra.pem" ||
    { cat "$T/enb.log" "$T/server.log" >&2; fail "eNodeB ir with its vendor certificate"; }
line=$(rsp_line enb 1)
case "$line" in *"body=ip status=0 "*"capubs=1 protected=1"*) ;; *) fail "ip: $line" ;; esac
[ "$(rsp_field enb extracerts 1)" -ge 2 ] || fail "responder and CA chain in extraCerts: $line"
[ "$(openssl x509 -in "$T/capubs.pem" -noout -fingerprint -sha256)" = \
  "$(openssl x509 -in "$CA/root.crt" -noout -fingerprint -sha256)" ] || fail "caPubs holds the operator root"
openssl verify -CAfile "$T/capubs.pem" -untrusted "$T/extra.pem" "$T/op.crt" >/dev/null ||
    fail "operator certificate verifies under the caPubs root and the extraCerts chain"
openssl asn1parse -in "$T/op.crt" >/dev/null || fail "operator certificate parses"
issuer=$(openssl x509 -in "$T/op.crt" -noout -issuer)
case "$issuer" in *lte*) ;; *) fail "issued by the lte project's CA: $issuer" ;; esac
[ "$(openssl x509 -in "$T/op.crt" -noout -subject)" = "subject=CN = enb-0001" ] || fail "subject"
pass "eNodeB ir (vendor IDevID): operator certificate, operator root in caPubs, chain in extraCerts"
# the responder certificate signed the ip: digitalSignature, id-kp-cmcRA
openssl x509 -in "$T/extra.pem" -noout -ext keyUsage,extendedKeyUsage >"$T/resp.txt"
grep -q "Digital Signature" "$T/resp.txt" && grep -qi "CMC Registration Authority\|1.3.6.1.5.5.7.3.28" "$T/resp.txt" ||
    { cat "$T/resp.txt" >&2; fail "responder certificate usages"; }
pass "ip signed by the CMP responder (digitalSignature, id-kp-cmcRA)"
fp audit list --dir "$CA" | grep -q "cmp:anchor-cert:.*enb-0001" || fail "issuance audited with the vendor identity"

# kur with the operator certificate (ours now)
key op2
URL=$ENB cmpc kur -cmd kur -cert "$T/op.crt" -key "$T/op.key" -newkey "$T/op2.key" \
    -trusted "$CA/root.crt" -untrusted "$T/extra.pem" -certout "$T/op2.crt" ||
    { cat "$T/kur.log" >&2; fail "kur with the operator certificate"; }
openssl verify -CAfile "$CA/root.crt" -untrusted "$T/extra.pem" "$T/op2.crt" >/dev/null || fail "kur cert"
pass "kur with the operator certificate"

# a name the label does not allow (cert_identity = cn)
key x
URL=$ENB cmpc name -cmd ir -cert "$T/idev.crt" -key "$T/idev.key" -newkey "$T/x.key" \
    -subject "/CN=enb-9999" -trusted "$CA/root.crt" -certout "$T/x.crt" && fail "foreign CN enrolled"
[ "$(rsp_field name failinfo)" = badCertTemplate ] || fail "foreign CN: $(rsp_line name)"
pass "a CN other than the IDevID's is refused (badCertTemplate)"

# vendor B was never uploaded
URL=$ENB cmpc vendb -cmd ir -cert "$T/idevB.crt" -key "$T/idevB.key" -newkey "$T/x.key" \
    -subject "/CN=enb-0002" -trusted "$CA/root.crt" -certout "$T/x.crt" && fail "vendor B enrolled"
[ "$(rsp_field vendb failinfo)" = signerNotTrusted ] || fail "vendor B: $(rsp_line vendb)"
pass "an IDevID of a vendor root not uploaded is refused (signerNotTrusted)"

# vendor A's root belongs to project lte only: the default label does not trust it
cmpc otherproj -cmd ir -cert "$T/idev.crt" -key "$T/idev.key" -newkey "$T/x.key" \
    -subject "/CN=enb-0001" -trusted "$CA/root.crt" -certout "$T/x.crt" && fail "vendor root crossed projects"
[ "$(rsp_field otherproj failinfo)" = signerNotTrusted ] || fail "other project: $(rsp_line otherproj)"
pass "the vendor root authenticates on its own project's labels only"
fp_serve_stop
