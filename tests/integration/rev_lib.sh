# rev_lib.sh - revocation (OCSP/CRL) helpers on top of lib.sh (source lib.sh first).
#
# rev_start [CONFIG-SNIPPET]: fresh CA in $CA (snippet appended to its
#   fleetpki.conf, e.g. "[server]" options), `fleetpki serve` on free loopback
#   ports (port 0 unless REV_HTTP_LISTEN names the plain listener; the
#   server reports what it bound).  Sets SRV_PID, HTTPS, HTTP
#   (host:port of the plain listener), CHAIN (root + issuing PEM).
# rev_stop: SIGTERM the server; fails unless it exits 0.
# rev_issue NAME CN [PROFILE]: key $T/NAME.key, certificate $T/NAME.crt,
#   serial in $T/NAME.serial.
# rev_ocsp CERT [openssl ocsp args]: `openssl ocsp` against the server
#   (POST, nonce by default, signature verified against $CHAIN); output in
#   $T/ocsp.out; returns openssl's exit status.
# rev_ocsp_status CERT [args]: good|revoked|unknown|error from rev_ocsp.
# rev_wait_status CERT WANT [args]: poll (up to ~15 s) until the responder
#   says WANT; fails otherwise.  No timing is asserted: only the outcome.
#   Pass -no_nonce to poll the cached path (nonce requests are always fresh).

CA=$T/ca

rev_start() {
    FP_HTTP_LISTEN=${REV_HTTP_LISTEN:-127.0.0.1:0} fp_serve_start "$@"
    CHAIN=$T/chain.pem
    cat "$CA/root.crt" "$CA/issuing.crt" >"$CHAIN"
}

rev_stop() { fp_serve_stop; }

rev_issue() {
    local name=$1 cn=$2 profile=${3:-device}
    fp_csr "$name" "/CN=$cn"
    fp issue --dir "$CA" --csr "$T/$name.csr" --profile "$profile" --out "$T/$name.crt" \
        || fail "issue $name"
    openssl x509 -in "$T/$name.crt" -noout -serial | cut -d= -f2 >"$T/$name.serial"
}

rev_ocsp() {
    local cert=$1
    shift
    openssl ocsp -issuer "$CA/issuing.crt" -cert "$cert" -url "http://$HTTP/ocsp" \
        -CAfile "$CHAIN" "$@" >"$T/ocsp.out" 2>&1
}

rev_ocsp_status() {
    rev_ocsp "$@" || { echo error; return 0; }
    grep -q "Response verify OK" "$T/ocsp.out" || { echo error; return 0; }
    sed -n "s|^$1: \([a-z]*\).*|\1|p" "$T/ocsp.out"
}

rev_wait_status() {
    local cert=$1 want=$2 got=
    shift 2
    for _ in $(seq 1 75); do
        got=$(rev_ocsp_status "$cert" "$@")
        [ "$got" = "$want" ] && return 0
        sleep 0.2
    done
    cat "$T/ocsp.out" >&2
    fail "OCSP for $cert says '$got', expected '$want'"
}
