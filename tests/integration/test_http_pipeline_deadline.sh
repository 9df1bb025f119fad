#!/usr/bin/env bash
# A pipelined request whose header arrived while the handler of the one
# before it was running is in its body when that answer goes out: it gets
# the body deadline (body_timeout_seconds, here 60 s), not the header one
# (here 2 s).  The client pauses 5 s inside the body; the server must
# still answer it.  (Only generous bounds: a slow machine makes the
# server wait longer, never less.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null
sed -i -e 's/^header_timeout_seconds = .*/header_timeout_seconds = 2/' \
    -e 's/^body_timeout_seconds = .*/body_timeout_seconds = 60/' "$CA/fleetpki.conf"
grep -q '^header_timeout_seconds = 2' "$CA/fleetpki.conf" || fail "config has no header_timeout_seconds row"
fp_serve_run

cat >"$T/pipe.py" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=30)
# one write: the second request's header is read with the first request
s.sendall(b"GET /crl/first.crl HTTP/1.1\r\nHost: x\r\n\r\n"
          b"POST /crl/second.crl HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
          b"Connection: close\r\n\r\nab")
resp = b""
while resp.count(b"HTTP/1.1 ") < 1 or b"\r\n\r\n" not in resp:
    chunk = s.recv(65536)
    if not chunk:
        break
    resp += chunk
time.sleep(5)  # inside the second body: past the header deadline
try:
    s.sendall(b"cd")
except OSError:
    pass
while True:
    try:
        chunk = s.recv(65536)
    except OSError:
        break
    if not chunk:
        break
    resp += chunk
n = resp.count(b"HTTP/1.1 ")
print("answers=%d" % n)
sys.exit(0 if n == 2 else 1)
PY
out=$(python3 "$T/pipe.py" "$HTTP") || { echo "$out"; tail -5 "$T/server.log" >&2; fail "pipelined request cut off in its body: $out"; }
pass "a pipelined request paused 5 s in its body is answered (body deadline, not header deadline)"
[ "$(grep -cF 'path=/crl/second.crl ' "$T/server.log")" = 1 ] || fail "second request not logged once"
pass "the second request has one log line"
fp_serve_stop
