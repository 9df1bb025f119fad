# est_lib.sh - EST helpers on top of lib.sh (source lib.sh first).
#
# est_start [CONFIG-SNIPPET]: fresh CA in $CA, CONFIG-SNIPPET appended to
#   its fleetpki.conf, `fleetpki serve` on free loopback ports (port 0, the
#   server reports what it bound).  Sets SRV_PID, HTTPS, HTTP, EST.
# est_stop: SIGTERM the server; fails unless it exits 0.
# est_csr NAME SUBJ [openssl req args]: key $T/NAME.key, base64 DER CSR $T/NAME.b64
# est_post URL FILE [curl args]: POST FILE as application/pkcs10; prints the
#   HTTP status; body in $T/body, headers in $T/headers.
# est_get URL [curl args]: same for GET.
# p7_certs FILE OUT: base64 certs-only PKCS#7 -> PEM certificates in OUT.

CA=$T/ca

est_start() {
    fp_serve_start "$@"
    # the TLS certificate names localhost and 127.0.0.1
    EST="https://$HTTPS/.well-known/est"
}

est_stop() { fp_serve_stop; }

est_csr() {
    local name=$1 subj=$2
    shift 2
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/$name.key" -subj "$subj" "$@" -outform DER -out "$T/$name.der" 2>/dev/null
    base64 <"$T/$name.der" >"$T/$name.b64"
}

est_post() {
    local url=$1 file=$2
    shift 2
    curl -sS --cacert "$CA/root.crt" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$file" -D "$T/headers" -o "$T/body" -w '%{http_code}' "$@" "$url"
}

est_get() {
    local url=$1
    shift
    curl -sS --cacert "$CA/root.crt" -D "$T/headers" -o "$T/body" -w '%{http_code}' "$@" "$url"
}

p7_certs() {
    openssl base64 -d -in "$1" | openssl pkcs7 -inform DER -print_certs -out "$2"
}

# expect_status WANT DESC STATUS
expect_status() {
    if [ "$3" != "$1" ]; then
        cat "$T/headers" "$T/body" >&2 2>/dev/null || true
        tail -5 "$T/server.log" >&2
        fail "$2 (HTTP $3, expected $1)"
    fi
    pass "$2"
}

# token LABEL [args]: sets TOK_ID and TOK_SECRET
token() {
    local label=$1
    shift
    fp token create --dir "$CA" --label "$label" "$@" >"$T/token.out"
    TOK_ID=$(awk '/^id:/ {print $2}' "$T/token.out")
    TOK_SECRET=$(awk '/^secret:/ {print $2}' "$T/token.out")
    [ -n "$TOK_ID" ] && [ -n "$TOK_SECRET" ] || fail "token create printed no credentials"
}

verify_cert() {
    openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" "$1" >/dev/null
}
