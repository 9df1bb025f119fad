#!/usr/bin/env bash
# Slowloris (issue 8, defect 6): deadlines that trickled bytes do not
# extend.  With handshake/header deadlines of 3 s, a client trickling one
# byte a second into the TLS handshake, or into a request header block
# (TLS and plain), is closed by the server within 2x the deadline, though
# each byte would have reset the 30 s idle timeout.  A body trickled below
# min_body_rate is cut off the same way.  Meanwhile a normal client is
# served.  (Functional deadlines only: the bound is generous.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null
sed -i -e 's/^handshake_timeout_seconds = .*/handshake_timeout_seconds = 3/' \
    -e 's/^header_timeout_seconds = .*/header_timeout_seconds = 3/' \
    -e 's/^body_timeout_seconds = .*/body_timeout_seconds = 2/' \
    -e 's/^min_body_rate = .*/min_body_rate = 100/' "$CA/fleetpki.conf"
grep -q '^header_timeout_seconds = 3' "$CA/fleetpki.conf" || fail "config has no header_timeout_seconds row"
fp_serve_run
EST="https://$HTTPS/.well-known/est"

cat >"$T/trickle.py" <<'PY'
import select, socket, ssl, sys, threading, time
tls_addr, plain_addr, ca = sys.argv[1], sys.argv[2], sys.argv[3]
LIMIT = 6.0   # 2x the 3 s deadlines
GIVE_UP = 20.0
results = {}

def hp(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)

def closed_by_server(s):
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(4096, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True

def trickle(name, sock, data):
    t0 = time.time()
    for b in data:
        if closed_by_server(sock):
            break
        try:
            sock.send(bytes([b]))
        except OSError:
            break
        time.sleep(1.0)
        if time.time() - t0 > GIVE_UP:
            break
    else:
        # out of bytes to trickle: wait for the close
        while time.time() - t0 < GIVE_UP and not closed_by_server(sock):
            time.sleep(0.2)
    results[name] = time.time() - t0 if closed_by_server(sock) or time.time() - t0 < GIVE_UP else None
    sock.close()

def client_hello():
    ctx = ssl.create_default_context(cafile=ca)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()

def tls_handshake():
    s = socket.create_connection(hp(tls_addr))
    trickle("tls handshake", s, client_hello() * 4)

def tls_header():
    raw = socket.create_connection(hp(tls_addr))
    ctx = ssl.create_default_context(cafile=ca)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    t0 = time.time()
    req = b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    closed = None
    for b in req:
        try:
            s.send(bytes([b]))
        except OSError:
            closed = time.time() - t0
            break
        s.settimeout(1.0)
        try:
            if s.recv(4096) == b"":
                closed = time.time() - t0
                break
        except socket.timeout:
            pass
        except (OSError, ssl.SSLError):
            closed = time.time() - t0
            break
        if time.time() - t0 > GIVE_UP:
            break
    results["tls header"] = closed

def plain_header():
    s = socket.create_connection(hp(plain_addr))
    trickle("plain header", s, b"GET /crl/x.crl HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40)

def plain_body():
    s = socket.create_connection(hp(plain_addr))
    s.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
              b"Content-Length: 5000\r\n\r\n")
    trickle("plain body", s, b"\x30" * 40)

ts = [threading.Thread(target=f) for f in (tls_handshake, tls_header, plain_header, plain_body)]
for t in ts:
    t.start()
for t in ts:
    t.join()
bad = 0
for k in sorted(results):
    v = results[k]
    ok = v is not None and v <= LIMIT
    print("%s: %s after %s" % ("ok" if ok else "LATE", k, "never" if v is None else "%.1f s" % v))
    bad += not ok
sys.exit(1 if bad or len(results) != 4 else 0)
PY
python3 "$T/trickle.py" "$HTTPS" "$HTTP" "$CA/root.crt" >"$T/trickle.out" 2>&1 &
TR=$!
fp_track "$TR"
sleep 1
s=$(est_get "$EST/cacerts" --max-time 30)
expect_status 200 "a normal client is served while four connections trickle" "$s"
rc=0
wait "$TR" || rc=$?
cat "$T/trickle.out"
[ "$rc" = 0 ] || fail "a trickling connection outlived its deadline"
pass "handshake, header (TLS and plain) and slow-body connections closed at their deadlines"
sleep 0.3
est_stop
grep -q 'closed .* connections at the header deadline' "$T/server.log" || fail "deadline closes not reported"
pass "deadline closes are reported in the log summary"
