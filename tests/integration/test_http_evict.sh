#!/usr/bin/env bash
# A full server makes room by closing a waiting connection (issue 8,
# "Limits and abuse").  Under a flood that reopens every closed connection
# at once, the victim must come out of the flood, not be the one client
# with a single connection: among the longest waiters, the one whose
# address holds the most connections is closed (src/http/conn.c).  Here
# 127.0.0.3 keeps 40 connections churning against max_connections = 16
# while 127.0.0.2 holds one idle connection for 3 s (long enough to be
# the oldest waiter many times over), then sends its request: it must be
# answered.  With the oldest waiter as the victim, it was closed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null
sed -i -e 's/^max_connections = .*/max_connections = 16/' "$CA/fleetpki.conf"
grep -q '^max_connections = 16$' "$CA/fleetpki.conf" || fail "config has no max_connections row"
fp_serve_run

python3 - "$HTTP" <<'PY' || { tail -20 "$T/server.log" >&2; fail "the lone client was not served during the flood"; }
import selectors, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
port = int(port)
sel = selectors.DefaultSelector()
opened = closed = 0

def flood_one():
    global opened
    s = socket.socket()
    s.setblocking(False)
    s.bind(("127.0.0.3", 0))
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    sel.register(s, selectors.EVENT_READ)
    opened += 1

def pump(seconds):
    """Keep 40 flood connections open: reopen each one the server closes."""
    global closed
    end = time.time() + seconds
    while time.time() < end:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                closed += 1
                flood_one()

for _ in range(40):
    flood_one()
pump(1.0)
client = socket.socket()
client.bind(("127.0.0.2", 0))
client.settimeout(10)
client.connect((host, port))
pump(3.0)  # the client waits, idle, while the flood churns
if closed < 40:
    sys.exit("the flood was not churning (%d closed): the test proves nothing" % closed)
try:
    client.sendall(b"GET /crl/issuing.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = client.recv(64)
except OSError as e:
    sys.exit("client connection failed: %r" % e)
print("flood connections opened %d, closed by the server %d; client got %r" % (opened, closed, resp[:20]))
if not resp.startswith(b"HTTP/1.1 200"):
    sys.exit("client not served: %r" % resp)
PY
pass "a lone client's waiting connection survives a churning flood from another address"
fp_serve_stop
