#!/usr/bin/env bash
# Root rollover end to end, once per TLS backend built: the agent enrolls
# with the real `fleetpki serve`, then talks to a TLS stub (the CA's own
# TLS certificate, so the server still verifies) whose /cacerts offers
#  1. a new root with NewWithOld + OldWithNew made from the CA's root key
#     (RFC 4210 4.4): accepted, cred_dir/anchors.pem becomes new root +
#     old root, the stored credentials stay usable;
#  2. a rogue root with no link: refused, anchors.pem unchanged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/../agent/agent_lib.sh"

est_start
cd "$T"
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >ca.ext
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out new.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rogue.key 2>/dev/null
newsubj="/O=Test Org/CN=Test Org Root G2"
openssl req -x509 -new -key new.key -subj "$newsubj" -days 30 -out new.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -x509 -new -key rogue.key -subj "$newsubj" -days 30 -out rogue.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -key new.key -subj "$newsubj" -out nwo.csr 2>/dev/null
openssl x509 -req -in nwo.csr -CA "$CA/root.crt" -CAkey "$CA/root.key" -CAcreateserial -days 30 \
    -extfile ca.ext -out nwo.pem 2>/dev/null
oldsubj=$(openssl x509 -in "$CA/root.crt" -noout -subject -nameopt compat | sed 's/^subject=//')
openssl req -new -key "$CA/root.key" -subj "$oldsubj" -out own.csr 2>/dev/null
openssl x509 -req -in own.csr -CA new.pem -CAkey new.key -CAcreateserial -days 30 \
    -extfile ca.ext -out own.pem 2>/dev/null
p7() { local a=() f; for f in "$@"; do a+=(-certfile "$f"); done; openssl crl2pkcs7 -nocrl "${a[@]}" -outform DER | base64 -w 64; }
p7 "$CA/issuing.crt" "$CA/root.crt" new.pem nwo.pem own.pem >linked.b64
p7 "$CA/issuing.crt" "$CA/root.crt" rogue.pem >rogue.b64
cat "$CA/tls.crt" "$CA/issuing.crt" >tls-chain.pem

cat >stub.py <<'PY'
import socket, ssl, sys, threading
T, CA, answer = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(T + '/tls-chain.pem', CA + '/tls.key')
body = open(answer, 'rb').read()
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(8)
open(T + '/stub.port', 'w').write('%d\n' % srv.getsockname()[1])
def handle(raw):
    try:
        c = ctx.wrap_socket(raw, server_side=True)
        c.settimeout(20)
        data = b''
        while b'\r\n\r\n' not in data:
            d = c.recv(4096)
            if not d:
                return
            data += d
        path = data.split(b' ')[1]
        if path.endswith(b'/cacerts'):
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime\r\nContent-Length: %d\r\n'
                      b'Connection: close\r\n\r\n' % len(body) + body)
        else:
            c.sendall(b'HTTP/1.1 404 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
        c.unwrap()
    except Exception as e:
        print('stub:', e, file=sys.stderr)
    finally:
        raw.close()
while True:
    s, _ = srv.accept()
    threading.Thread(target=handle, args=(s,), daemon=True).start()
PY
stub() { # ANSWER-FILE: starts the stub, sets STUB and SPORT
    rm -f "$T/stub.port"
    python3 "$T/stub.py" "$T" "$CA" "$1" 2>>"$T/stub.log" &
    STUB=$!
    fp_track "$STUB"
    for _ in $(seq 1 100); do [ -s "$T/stub.port" ] && break; sleep 0.1; done
    [ -s "$T/stub.port" ] || fail "stub did not start"
    SPORT=$(cat "$T/stub.port")
}
stub_stop() { kill "$STUB" 2>/dev/null || true; wait "$STUB" 2>/dev/null || true; }
conf() { # SERVER
    agent_conf "$W/a.conf" "server = https://$1" "trust_anchor = $CA/root.crt" "cred_dir = $W/cred" \
        "bootstrap_token_file = $W/token" "common_name = roll-$B"
}

for AGENT in $AGENTS; do
    B=$(agent_backend "$AGENT")
    W=$T/$B
    mkdir -p "$W/cred"
    token default --uses 1
    printf '%s:%s\n' "$TOK_ID" "$TOK_SECRET" >"$W/token"
    conf "$HTTPS"
    expect_code 0 "[$B] enrolled with the real server" "$AGENT" --config "$W/a.conf" --once
    [ ! -e "$W/cred/anchors.pem" ] || fail "no rollover yet: no anchors.pem"

    stub "$T/rogue.b64"
    conf "127.0.0.1:$SPORT"
    expect_code 0 "[$B] /cacerts with an unlinked new root" "$AGENT" --config "$W/a.conf" --once
    grep -q 'anchor-rollover-refused .*action=keep-current' "$T/last.err" || { cat "$T/last.err" >&2; fail "refusal logged"; }
    [ ! -e "$W/cred/anchors.pem" ] || fail "an unlinked root changed the anchors"
    stub_stop
    pass "[$B] unlinked root refused, anchors unchanged"

    stub "$T/linked.b64"
    conf "127.0.0.1:$SPORT"
    expect_code 0 "[$B] /cacerts with a linked new root" "$AGENT" --config "$W/a.conf" --once
    grep -q 'anchor-rollover-accepted .*link=NewWithOld+OldWithNew' "$T/last.err" &&
        grep -q 'anchors-updated roots_added=1' "$T/last.err" || { cat "$T/last.err" >&2; fail "acceptance logged"; }
    [ "$(grep -c 'BEGIN CERTIFICATE' "$W/cred/anchors.pem")" = 2 ] || fail "anchors.pem holds new and old root"
    cmp -s <(openssl x509 -in "$W/cred/anchors.pem" -outform DER) <(openssl x509 -in "$T/new.pem" -outform DER) ||
        fail "the new root comes first"
    stub_stop
    pass "[$B] linked root accepted: anchors.pem = new root + old root"
    # the saved anchors are used from now on, and the stored pair still verifies
    conf "$HTTPS"
    expect_code 0 "[$B] the next run with the real server uses the saved anchors" "$AGENT" --config "$W/a.conf" --once
    grep -q 'anchors-loaded from=anchors.pem' "$T/last.err" && grep -q ' next-check ' "$T/last.err" &&
        ! grep -q ' enroll ' "$T/last.err" || { cat "$T/last.err" >&2; fail "credentials lost after the rollover"; }
done
est_stop
pass "clean shutdown"
