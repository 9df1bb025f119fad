# scep_lib.sh - SCEP helpers on top of lib.sh and est_lib.sh (source those first).
#
# scep_setup: after est_start, fetch GetCACert of the default label, write
#   the RA certificate to $T/ra.pem, root + issuing CA to $T/bundle.pem,
#   the RA's SHA-256 fingerprint to RAFP; SCEP=http://$HTTP/scep.
# scep_post LABELPATH FILE OUT: POST a pkiMessage (LABELPATH "" or
#   "/label"); prints the HTTP status.
# rep_status FILE: checks the CertRep's signature (RA certificate chained to
#   the root, openssl cms) and prints "pkiStatus failInfo" ("-" if none).
# rep_text FILE: its failInfoText.
# rep_open FILE KEY CERT OUT: the pkcsPKIEnvelope decrypted with KEY/CERT
#   (openssl cms), the degenerate PKCS#7 inside written to OUT (DER).

SCEP_LOAD=${FP_BUILD_DIR:-}/bench/scep_load

scep_require() {
    command -v scepclient >/dev/null ||
        { echo "skip: scepclient (Debian package scep) is not installed"; exit 77; }
    [ -x "$SCEP_LOAD" ] ||
        { echo "skip: $SCEP_LOAD not built (FP_BENCH=OFF?)"; exit 77; }
}

scep_setup() {
    SCEP="http://$HTTP/scep"
    curl -sS -D "$T/cacert.h" -o "$T/cacert.der" "$SCEP?operation=GetCACert"
    openssl pkcs7 -inform DER -in "$T/cacert.der" -print_certs -out "$T/cacert.pem"
    # the RA is the certificate that is not a CA (the SET OF is in DER order)
    python3 - "$T/cacert.der" "$T/ra.pem" <<'EOF'
import sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
certs = pkcs7.load_der_pkcs7_certificates(open(sys.argv[1], "rb").read())
ra = [c for c in certs if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca]
assert len(ra) == 1, ra
open(sys.argv[2], "wb").write(ra[0].public_bytes(Encoding.PEM))
EOF
    cat "$CA/root.crt" "$CA/issuing.crt" >"$T/bundle.pem"
    RAFP=$(openssl x509 -in "$T/ra.pem" -outform DER | sha256sum | cut -d' ' -f1)
}

scep_post() {
    curl -sS -o "$3" -w '%{http_code}' -H 'Content-Type: application/x-pki-message' \
        --data-binary @"$2" "http://$HTTP/scep$1?operation=PKIOperation"
}

rep_status() {
    openssl cms -verify -inform DER -in "$1" -CAfile "$T/bundle.pem" -purpose any -binary \
        -out "$1.content" 2>"$1.verr" || { cat "$1.verr" >&2; fail "CertRep signature does not verify"; }
    openssl cms -inform DER -in "$1" -cmsout -print | awk '
        /\(2\.16\.840\.1\.113733\.1\.9\.[34]\)/ { o = $0; sub(/.*\(/, "", o); sub(/\).*/, "", o); want = 1; next }
        want && /PRINTABLESTRING:/ { sub(/.*PRINTABLESTRING:/, ""); v[o] = $0; want = 0 }
        END { f = "2.16.840.1.113733.1.9.4"; print v["2.16.840.1.113733.1.9.3"], ((f in v) ? v[f] : "-") }'
}

rep_text() {
    openssl cms -inform DER -in "$1" -cmsout -print | awk '
        /\(1\.3\.6\.1\.5\.5\.7\.24\.1\)/ { want = 1; next }
        want && /UTF8STRING:/ { sub(/.*UTF8STRING:/, ""); print; exit }'
}

rep_open() {
    openssl cms -decrypt -inform DER -in "$1.content" -inkey "$2" -recip "$3" -binary -out "$4"
}

# expect_rep WANT DESC FILE: rep_status must print WANT ("2 0" ...)
expect_rep() {
    local got
    got=$(rep_status "$3")
    if [ "$got" != "$1" ]; then
        tail -5 "$T/server.log" >&2
        fail "$2 (pkiStatus/failInfo '$got', expected '$1')"
    fi
    pass "$2"
}
