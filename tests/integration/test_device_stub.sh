#!/usr/bin/env bash
# libfleetpki-device against a hostile EST server (issue 12): a Python TLS
# stub with the fleetpki CA's own TLS certificate (so the TLS check
# passes) answers simplereenroll / serverkeygen with garbage, oversize,
# truncated and otherwise wrong answers.  Each must be refused with its
# own error name and leave the credential store byte for byte as it was.
# Positive control: the stub's "good" mode (the CSR signed with the real
# issuing CA) is accepted and does change the store, so the harness can
# tell the difference.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

# every backend built (fp-device-cli-openssl, fp-device-cli-mbedtls)
CLIS=$(ls "${FP_BUILD_DIR:-/nonexistent}"/tests/device/fp-device-cli-* 2>/dev/null || true)
[ -n "$CLIS" ] || { echo "skip: no fp-device-cli-* in \$FP_BUILD_DIR/tests/device"; exit 77; }

est_start
# each backend's device identity, from the real server
for CLI in $CLIS; do
    B=${CLI##*fp-device-cli-}
    mkdir "$T/store-$B"
    token default --uses 1
    "$CLI" --server "$HTTPS" --anchor "$CA/root.crt" --store "$T/store-$B" --basic "$TOK_ID:$TOK_SECRET" \
        --cn dev-stub enroll >/dev/null || fail "[$B] first enrollment"
done
est_stop

# a rogue CA for "does not chain to the anchor"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$T/rogue.key" -subj "/CN=Rogue CA" -out "$T/rogue.crt" \
    -addext basicConstraints=critical,CA:TRUE 2>/dev/null
cat "$CA/tls.crt" "$CA/issuing.crt" >"$T/tls-chain.pem"
openssl crl2pkcs7 -nocrl -certfile "$CA/issuing.crt" -certfile "$CA/root.crt" -outform DER |
    base64 -w 64 >"$T/cacerts.b64"
# a valid certificate of the CA, for a key that is not the device's
openssl crl2pkcs7 -nocrl -certfile "$CA/tls.crt" -outform DER | base64 -w 64 >"$T/other.b64"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/otherkey.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$T/otherkey.pem" -outform DER | base64 -w 64 >"$T/otherkey.b64"
# the same key in the algorithm-specific form (SEC1), not PKCS#8
openssl ec -in "$T/otherkey.pem" -outform DER 2>/dev/null | base64 -w 64 >"$T/otherkey-sec1.b64"

# RFC 7030 4.4.2 encrypted keys made with `openssl cms` (independent of
# our server): a PKCS#8 key enveloped to the OpenSSL device's certificate,
# then signed (a) by the CA's TLS certificate, (b) by a rogue signer, and
# (c) enveloped to another certificate; the key's certificate from the CA.
if [ -d "$T/store-openssl" ]; then
    openssl x509 -in "$T/store-openssl/cred0.crt" -out "$T/devcert.pem"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/enckey.pem" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$T/enckey.pem" -outform DER -out "$T/enckey.p8"
    openssl req -new -key "$T/enckey.pem" -subj /CN=dev-stub 2>/dev/null |
        openssl x509 -req -CA "$CA/issuing.crt" -CAkey "$CA/issuing.key" -set_serial 77 -days 1 \
            -out "$T/enccert.pem" 2>/dev/null
    openssl crl2pkcs7 -nocrl -certfile "$T/enccert.pem" -outform DER | base64 -w 64 >"$T/enccert.b64"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$T/rsign.key" -subj "/CN=rogue signer" -out "$T/rsign.crt" 2>/dev/null
    envelope() { # RECIPIENT OUT
        openssl cms -encrypt -binary -aes256 -recip "$1" -in "$T/enckey.p8" -outform DER -out "$2"
    }
    sign() { # ENVELOPE SIGNER-CERT SIGNER-KEY OUT
        openssl cms -sign -binary -nodetach -nosmimecap -econtent_type pkcs7-envelopedData \
            -in "$1" -signer "$2" -inkey "$3" -outform DER | base64 -w 64 >"$4"
    }
    envelope "$T/devcert.pem" "$T/enc.env"
    envelope "$CA/tls.crt" "$T/encother.env"
    sign "$T/enc.env" "$CA/tls.crt" "$CA/tls.key" "$T/enc-good.b64"
    sign "$T/enc.env" "$T/rsign.crt" "$T/rsign.key" "$T/enc-rogue.b64"
    sign "$T/encother.env" "$CA/tls.crt" "$CA/tls.key" "$T/enc-other.b64"
fi

cat >"$T/stub.py" <<'PY'
import base64, os, socket, ssl, subprocess, sys, tempfile, threading
T = sys.argv[1]
CA = sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(T + '/tls-chain.pem', CA + '/tls.key')
rd = lambda f: open(f, 'rb').read()
CACERTS = rd(T + '/cacerts.b64')
OTHER = rd(T + '/other.b64')
OTHERKEY = rd(T + '/otherkey.b64')
SEC1KEY = rd(T + '/otherkey-sec1.b64')
ENC = {m: rd(T + '/enc-%s.b64' % m) for m in ('good', 'rogue', 'other') if os.path.exists(T + '/enc-%s.b64' % m)}
ENCCERT = rd(T + '/enccert.b64') if os.path.exists(T + '/enccert.b64') else b''

def resp(status, ct, body, extra=b''):
    return (b'HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n'
            % (status, ct, len(body), extra)) + body

def sign(csr_b64, ca, key):
    with tempfile.TemporaryDirectory() as d:
        open(d + '/csr.der', 'wb').write(base64.b64decode(csr_b64))
        subprocess.run(['openssl', 'req', '-inform', 'DER', '-in', d + '/csr.der', '-out', d + '/csr.pem'], check=True)
        subprocess.run(['openssl', 'x509', '-req', '-in', d + '/csr.pem', '-CA', ca, '-CAkey', key,
                        '-set_serial', '7', '-days', '1', '-out', d + '/c.pem'], check=True, capture_output=True)
        der = subprocess.run(['openssl', 'crl2pkcs7', '-nocrl', '-certfile', d + '/c.pem', '-outform', 'DER'],
                             check=True, capture_output=True).stdout
        return der

P7 = b'application/pkcs7-mime; smime-type=certs-only'

def multipart(keypart, certpart, close=True, keyct=b'application/pkcs8'):
    b = (b'--XyZ\r\nContent-Type: ' + keyct + b'\r\nContent-Transfer-Encoding: base64\r\n\r\n' + keypart +
         b'\r\n--XyZ\r\nContent-Type: application/pkcs7-mime; smime-type=certs-only\r\n'
         b'Content-Transfer-Encoding: base64\r\n\r\n' + certpart + b'\r\n--XyZ' + (b'--\r\n' if close else b''))
    return resp(200, b'multipart/mixed; boundary=XyZ', b)

def handle(raw):
    try:
        c = ctx.wrap_socket(raw, server_side=True)
    except Exception:
        raw.close()
        return
    try:
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = c.recv(4096)
            if not chunk:
                return
            data += chunk
        head, body = data.split(b'\r\n\r\n', 1)
        lines = head.split(b'\r\n')
        path = lines[0].split(b' ')[1].decode()
        clen = 0
        for l in lines[1:]:
            k, v = l.split(b':', 1)
            if k.strip().lower() == b'content-length':
                clen = int(v)
        while len(body) < clen:
            body += c.recv(65536)
        parts = path.strip('/').split('/')
        mode, op = (parts[2], parts[3]) if len(parts) == 4 else ('', parts[-1])
        if op == 'cacerts':
            c.sendall(resp(200, P7, CACERTS)); c.unwrap(); return
        if mode == 'good':
            c.sendall(resp(200, P7, base64.encodebytes(sign(body, CA + '/issuing.crt', CA + '/issuing.key'))))
        elif mode == 'garbage':
            c.sendall(resp(200, P7, b'%%% this is not base64 %%%\n'))
        elif mode == 'notp7':
            c.sendall(resp(200, P7, base64.encodebytes(b'hello, this is no DER at all')))
        elif mode == 'p7trailing':
            c.sendall(resp(200, P7, base64.encodebytes(sign(body, CA + '/issuing.crt', CA + '/issuing.key') + b'\0\0')))
        elif mode == 'wrongct':
            c.sendall(resp(200, b'text/html', OTHER))
        elif mode == 'oversize':
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: ' + P7 + b'\r\nContent-Length: 100000000\r\n\r\n' + b'A' * 4096)
        elif mode == 'oversizechunked':
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: ' + P7 + b'\r\nTransfer-Encoding: chunked\r\n\r\n')
            for _ in range(8):
                c.sendall(b'4000\r\n' + b'A' * 0x4000 + b'\r\n')
            c.sendall(b'0\r\n\r\n')
        elif mode == 'oversizeclose':
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: ' + P7 + b'\r\n\r\n' + b'A' * 100000)
        elif mode == 'truncated':
            good = base64.encodebytes(sign(body, CA + '/issuing.crt', CA + '/issuing.key'))
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: ' + P7 + b'\r\nContent-Length: %d\r\n\r\n' % len(good) + good[:len(good) // 2])
        elif mode == 'truncatednoclose':
            # body delimited by the end of the connection, which ends
            # without close_notify (the socket is just shut down)
            good = base64.encodebytes(sign(body, CA + '/issuing.crt', CA + '/issuing.key'))
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: ' + P7 + b'\r\n\r\n' + good)
            c.shutdown(socket.SHUT_RDWR); c.close(); return
        elif mode == 'truncatedhead':
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Ty')
        elif mode == 'barelf':
            c.sendall(b'HTTP/1.1 200 OK\nContent-Type: application/pkcs7-mime\nContent-Length: 4\n\nAAAA')
        elif mode == 'smuggle':
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: ' + P7 + b'\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nAAAA\r\n0\r\n\r\n')
        elif mode == 'hugeheader':
            c.sendall(b'HTTP/1.1 200 OK\r\nX-Big: ' + b'a' * 10000 + b'\r\nContent-Length: 0\r\n\r\n')
        elif mode == 'wrongkey':
            c.sendall(resp(200, P7, OTHER))
        elif mode == 'wrongchain':
            c.sendall(resp(200, P7, base64.encodebytes(sign(body, T + '/rogue.crt', T + '/rogue.key'))))
        elif mode == 'retry':
            c.sendall(resp(503, b'text/plain', b'busy\n', b'Retry-After: 30\r\n'))
        elif mode == 'keygenmismatch':
            c.sendall(multipart(OTHERKEY, OTHER))
        elif mode == 'keygensec1':
            c.sendall(multipart(SEC1KEY, OTHER))
        elif mode.startswith('keygenenc'):
            c.sendall(multipart(ENC[mode[9:]], ENCCERT,
                                keyct=b'application/pkcs7-mime; smime-type=server-generated-key'))
        elif mode == 'keygentruncated':
            c.sendall(multipart(OTHERKEY, OTHER, close=False))
        else:
            c.sendall(resp(404, b'text/plain', b'no such mode\n'))
        try:
            c.unwrap()
        except Exception:
            pass
    except Exception as e:
        print('stub:', repr(e), file=sys.stderr)
    finally:
        try:
            c.close()
        except Exception:
            pass

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0))
srv.listen(16)
open(T + '/stub.port.tmp', 'w').write(str(srv.getsockname()[1]))
os.rename(T + '/stub.port.tmp', T + '/stub.port')
while True:
    s, _ = srv.accept()
    threading.Thread(target=handle, args=(s,), daemon=True).start()
PY
python3 "$T/stub.py" "$T" "$CA" 2>"$T/stub.log" &
fp_track $!
for _ in $(seq 1 100); do [ -s "$T/stub.port" ] && break; sleep 0.05; done
[ -s "$T/stub.port" ] || { cat "$T/stub.log" >&2; fail "stub did not start"; }
STUB=127.0.0.1:$(cat "$T/stub.port")

store_sum() { (cd "$1" && find . -type f | sort | xargs -r sha256sum | sha256sum); }
dev() { "$CLI" --server "$STUB" --anchor "$CA/root.crt" --store "$T/store-$B" "$@"; }

# refused MODE OP ERROR DESC: the answer of MODE is refused with ERROR and
# the store is unchanged
refused() {
    local mode=$1 op=$2 name=$3 desc=$4 rc=0 before
    before=$(store_sum "$T/store-$B")
    # shellcheck disable=SC2086 # op may carry an option
    dev --label "$mode" --cn dev-stub $op >"$T/last.out" 2>"$T/last.err" || rc=$?
    if [ "$rc" = 0 ] || ! grep -q "^error: $name:" "$T/last.err"; then
        cat "$T/last.out" "$T/last.err" "$T/stub.log" >&2
        fail "[$B] $desc (exit $rc, expected error $name)"
    fi
    [ "$(store_sum "$T/store-$B")" = "$before" ] || fail "[$B] $desc: the credential store changed"
    pass "[$B] $desc: $(head -1 "$T/last.err" | cut -c1-100)"
}

for CLI in $CLIS; do
    B=${CLI##*fp-device-cli-}
    refused garbage reenroll malformed "a body that is not base64"
    refused notp7 reenroll malformed "base64 of something that is not PKCS#7"
    refused p7trailing reenroll malformed "a PKCS#7 with bytes after it"
    refused wrongct reenroll malformed "a certificate answer with Content-Type text/html"
    refused oversize reenroll too-big "a Content-Length of 100 MB"
    refused oversizechunked reenroll too-big "a chunked body over the limit"
    refused oversizeclose reenroll too-big "a close-delimited body over the limit"
    refused truncated reenroll truncated "a body shorter than its Content-Length"
    refused truncatednoclose reenroll truncated "a close-delimited body ended without close_notify"
    refused truncatedhead reenroll truncated "an answer cut inside its header"
    refused barelf reenroll malformed "bare LF line ends"
    refused smuggle reenroll malformed "Content-Length together with chunked"
    refused hugeheader reenroll too-big "a header over 8 KiB"
    refused wrongkey reenroll key-mismatch "a valid certificate of the CA for another key"
    refused wrongchain reenroll untrusted "a certificate for our key from a rogue CA"
    refused retry reenroll retry-later "503 with Retry-After"
    refused keygenmismatch serverkeygen key-mismatch "serverkeygen: key and certificate do not match"
    refused keygensec1 serverkeygen malformed "serverkeygen: a key that is not PKCS#8 (RFC 7030 4.4.2)"
    refused keygentruncated serverkeygen truncated "serverkeygen: multipart without its close-delimiter"

    if [ "$B" = openssl ]; then
        refused keygenencrogue "--encrypt serverkeygen" untrusted \
            "encrypted key (openssl cms) signed by a signer not chaining to the anchor"
        refused keygenencother "--encrypt serverkeygen" crypto "encrypted key enveloped to another certificate"
        refused keygenencgood serverkeygen malformed "an encrypted key when a key in clear was asked for"
        before=$(store_sum "$T/store-$B")
        dev --label keygenencgood --cn dev-stub --encrypt --out-key "$T/dec.pem" serverkeygen >/dev/null ||
            { cat "$T/last.err" "$T/stub.log" >&2; fail "[$B] encrypted key made by openssl cms"; }
        [ "$(openssl pkey -in "$T/dec.pem" -pubout)" = "$(openssl pkey -in "$T/enckey.pem" -pubout)" ] ||
            fail "[$B] decrypted key is not the enveloped one"
        [ "$(store_sum "$T/store-$B")" != "$before" ] || fail "[$B] accepted encrypted key not stored"
        pass "[$B] an encrypted key made with openssl cms (SignedData(EnvelopedData(PKCS#8))) is decrypted and stored"
    fi
    # positive control: the harness sees an accepted answer change the store
    before=$(store_sum "$T/store-$B")
    dev --label good reenroll >/dev/null || { cat "$T/stub.log" >&2; fail "[$B] good mode should be accepted"; }
    [ "$(store_sum "$T/store-$B")" != "$before" ] || fail "[$B] good mode did not change the store"
    pass "[$B] control: a well-formed answer through the stub is accepted and stored"
done
