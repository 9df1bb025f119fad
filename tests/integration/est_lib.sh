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

# est_multipart_check HEADERS BODY OUTDIR: parse a serverkeygen answer
# strictly and write its two parts, base64-decoded, to OUTDIR/part1.der and
# OUTDIR/part2.der (their content types in OUTDIR/part1.ct, part2.ct).
# Fails unless: the Content-Type is multipart/mixed with a boundary that is
# a token or a quoted-string (RFC 2045 5.1: '=' and other tspecials need
# quotes), every delimiter is CRLF "--" boundary (RFC 2046 5.1.1), the body
# has no bare LF, and Python's email parser (policy HTTP) finds exactly two
# parts, each base64, with no defect anywhere.
est_multipart_check() {
    python3 - "$1" "$2" "$3" <<'PY'
import base64, email.parser, email.policy, re, sys
hdr_file, body_file, out = sys.argv[1:]
ct = None
for line in open(hdr_file, 'rb').read().split(b'\r\n'):
    if line.lower().startswith(b'content-type:'):
        ct = line.split(b':', 1)[1].strip()
assert ct is not None, 'no Content-Type'
body = open(body_file, 'rb').read()
# RFC 2045 5.1: parameter := attribute "=" value; value := token / quoted-string
tspecials = b'()<>@,;:\\"/[]?='
m = re.fullmatch(rb'multipart/mixed\s*;\s*boundary=("(?:[^"\\\r\n]|\\.)*"|[^\s;]+)\s*', ct, re.I)
assert m, 'Content-Type is not multipart/mixed; boundary=...: %r' % ct
b = m.group(1)
if b.startswith(b'"'):
    b = re.sub(rb'\\(.)', rb'\1', b[1:-1])
else:
    bad = [c for c in b if c < 33 or c > 126 or bytes([c]) in tspecials]
    assert not bad, 'unquoted boundary holds tspecials or controls: %r' % b
# RFC 2046 5.1.1: 1-70 characters, not ending in a space
assert 1 <= len(b) <= 70 and not b.endswith(b' '), 'bad boundary length: %r' % b
# no bare LF anywhere: every line ends CRLF
assert re.search(rb'(?<!\r)\n', body) is None, 'bare LF in the body'
# every delimiter after the first is CRLF "--" boundary; the body starts
# with the first and ends with the close-delimiter
delim = b'--' + b
assert body.startswith(delim + b'\r\n'), 'body does not start with the first delimiter'
for mm in re.finditer(re.escape(delim), body):
    assert mm.start() == 0 or body[mm.start() - 2:mm.start()] == b'\r\n', \
        'delimiter at %d not preceded by CRLF' % mm.start()
assert body.endswith(b'\r\n' + delim + b'--\r\n') or body.endswith(b'\r\n' + delim + b'--'), \
    'no close-delimiter at the end'
msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
    b'Content-Type: ' + ct + b'\r\n\r\n' + body)
assert msg.is_multipart(), 'not parsed as multipart'
assert not msg.defects, 'message defects: %r' % msg.defects
parts = list(msg.iter_parts())
assert len(parts) == 2, 'expected 2 parts, got %d' % len(parts)
for i, p in enumerate(parts, 1):
    assert not p.defects, 'part %d defects: %r' % (i, p.defects)
    assert p['Content-Transfer-Encoding'].lower() == 'base64', 'part %d not base64' % i
    raw = p.get_payload(decode=False)
    # strict base64: only the alphabet and line breaks, decodes exactly
    text = re.sub(r'\r\n', '', raw)
    der = base64.b64decode(text, validate=True)
    assert der and der[0] == 0x30, 'part %d is not DER' % i
    open('%s/part%d.der' % (out, i), 'wb').write(der)
    open('%s/part%d.ct' % (out, i), 'w').write(p['Content-Type'] + '\n')
PY
}
