#!/usr/bin/env bash
# fleetpki-agent and an EST server answering 503 (RFC 7030 4.2.3, RFC 9110
# 10.2.3), once per TLS backend built.  A Python TLS stub holding the
# fleetpki CA's own TLS certificate serves the real /cacerts and answers
# /simpleenroll with 503 + Retry-After: 1 three times, then 503 without
# Retry-After.  The agent must wait what Retry-After says (its own backoff
# is set to an hour, so no other wait can explain a retry), repeat the
# same CSR byte for byte, and fall back to its backoff schedule when the
# header is absent.  The stub records when each request came.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/../agent/agent_lib.sh"

fp_new_ca "$CA" >/dev/null
cat "$CA/tls.crt" "$CA/issuing.crt" >"$T/tls-chain.pem"
openssl crl2pkcs7 -nocrl -certfile "$CA/issuing.crt" -certfile "$CA/root.crt" -outform DER |
    base64 -w 64 >"$T/cacerts.b64"

cat >"$T/stub.py" <<'PY'
import socket, ssl, sys, threading, time
T, CA = sys.argv[1], sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(T + '/tls-chain.pem', CA + '/tls.key')
CACERTS = open(T + '/cacerts.b64', 'rb').read()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0))
srv.listen(16)
open(T + '/stub.port', 'w').write('%d\n' % srv.getsockname()[1])
n = 0
lock = threading.Lock()

def reply(c, status, ct, body, extra=b''):
    c.sendall(b'HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n'
              % (status, ct, len(body), extra) + body)

def handle(raw):
    global n
    try:
        c = ctx.wrap_socket(raw, server_side=True)
        c.settimeout(20)
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = c.recv(4096)
            if not chunk:
                return
            data += chunk
        head, body = data.split(b'\r\n\r\n', 1)
        length = 0
        for line in head.split(b'\r\n')[1:]:
            k, v = line.split(b':', 1)
            if k.strip().lower() == b'content-length':
                length = int(v)
        while len(body) < length:
            body += c.recv(4096)
        path = head.split(b' ')[1].decode()
        if path.endswith('/cacerts'):
            reply(c, 200, b'application/pkcs7-mime', CACERTS)
        elif path.endswith('/csrattrs'):
            reply(c, 204, b'application/csrattrs', b'')
        elif path.endswith('/simpleenroll'):
            with lock:
                n += 1
                k = n
                open('%s/csr.%d' % (T, k), 'wb').write(body)
                with open(T + '/enroll.times', 'a') as f:
                    f.write('%.3f\n' % time.time())
            extra = b'Retry-After: 1\r\n' if k <= 3 else b''
            reply(c, 503, b'text/plain', b'busy, come back later\n', extra)
        else:
            reply(c, 404, b'text/plain', b'no\n')
        c.unwrap()
    except Exception as e:
        print('stub:', e, file=sys.stderr)
    finally:
        raw.close()

while True:
    s, _ = srv.accept()
    threading.Thread(target=handle, args=(s,), daemon=True).start()
PY

for AGENT in $AGENTS; do
    B=$(agent_backend "$AGENT")
    W=$T/$B
    mkdir -p "$W/cred"
    rm -f "$T"/csr.* "$T/enroll.times" "$T/stub.port"
    python3 "$T/stub.py" "$T" "$CA" 2>"$W/stub.log" &
    STUB=$!
    fp_track "$STUB"
    for _ in $(seq 1 100); do [ -s "$T/stub.port" ] && break; sleep 0.1; done
    [ -s "$T/stub.port" ] || fail "stub did not start"
    printf 'id:secret\n' >"$W/token"
    agent_conf "$W/a.conf" "server = https://127.0.0.1:$(cat "$T/stub.port")" "trust_anchor = $CA/root.crt" \
        "cred_dir = $W/cred" "bootstrap_token_file = $W/token" "common_name = busy-$B" \
        "backoff_base = 1h" "backoff_cap = 2h"
    LOG=$W/agent.log
    : >"$LOG"
    agent_start "$W/a.conf" "$LOG"
    wait_log "$LOG" ' info backoff attempt=' 1
    agent_stop
    kill "$STUB" 2>/dev/null || true
    wait "$STUB" 2>/dev/null || true
    [ "$(grep -c 'retry-after status=503 delay_ms=1000' "$LOG")" = 3 ] || { cat "$LOG" >&2; fail "[$B] three Retry-After waits"; }
    [ "$(grep -c ' backoff attempt=' "$LOG")" = 1 ] || { cat "$LOG" >&2; fail "[$B] backoff only after the 503 without Retry-After"; }
    [ "$(wc -l <"$T/enroll.times")" = 4 ] || { cat "$T/enroll.times" "$LOG" >&2; fail "[$B] four enrollment attempts"; }
    python3 - "$T/enroll.times" <<'PY' || fail "[$B] Retry-After not waited"
import sys
t = [float(x) for x in open(sys.argv[1])]
for a, b in zip(t, t[1:]):
    assert b - a >= 0.999, 'retry %.3f s after the previous, Retry-After was 1 s' % (b - a)
PY
    for k in 2 3 4; do
        cmp -s "$T/csr.1" "$T/csr.$k" || fail "[$B] retry $k sent another CSR (RFC 7030 4.2.3: the same request)"
    done
    pass "[$B] 503: Retry-After waited each time, the same CSR repeated; without the header, backoff"
done
pass "done"
