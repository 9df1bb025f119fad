#!/usr/bin/env bash
# Descriptor exhaustion (issue 8, defect 5).  The server runs under
# `ulimit -n 256` (soft and hard, so it cannot raise it) and is sent far
# more connections than that from three addresses (127.0.0.1, .3, .4):
# idle ones and byte-at-a-time ones, on both listeners, reopened as the
# server closes them, until the checks are done (60 s at most).  The
# per-address cap (48 here) and the total cap under the descriptor limit
# (3 x 48 = all of it) are both reached.  Meanwhile a
# well-behaved client from 127.0.0.2 is served (EST cacerts over TLS, a
# CRL over plain http), the server stays up, and its log stays bounded: no flood of
# "Too many open files" lines (before the fix: millions, 200 MB in 25 s).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null
sed -i 's/^max_connections_per_address = .*/max_connections_per_address = 48/' "$CA/fleetpki.conf"
rm -f "$T/addr"
(
    ulimit -n 256
    exec "$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --threads 2 \
        --addr-file "$T/addr" 2>"$T/server.log"
) &
SRV_PID=$!
fp_track "$SRV_PID"
for _ in $(seq 1 200); do [ -s "$T/addr" ] && break; sleep 0.05; done
[ -s "$T/addr" ] || { cat "$T/server.log" >&2; fail "server did not start under ulimit -n 256"; }
HTTPS=$(sed -n 's/^https=//p' "$T/addr")
HTTP=$(sed -n 's/^http=//p' "$T/addr")
grep -q 'connections: at most' "$T/server.log" || fail "no connection cap logged"
pass "server starts under ulimit -n 256 ($(grep -o 'connections: at most [0-9]*' "$T/server.log"))"

cat >"$T/flood.py" <<'PY'
import resource, select, socket, sys, time
import os
tls, plain, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
seconds = 60.0
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
targets = []
for a in (tls, plain):
    h, p = a.rsplit(":", 1)
    targets.append((h, int(p)))
IDLE, TRICKLE = 1200, 600
socks = {}   # fd -> (socket, kind)
opened = refused = 0

def open_one(i):
    global opened, refused
    kind = "idle" if i < IDLE else "trickle"
    try:
        s = socket.socket()
        s.bind(("127.0.0.%d" % (1, 3, 4)[i % 3], 0))
        s.setblocking(False)
        s.connect_ex(targets[i % 2])
    except OSError:
        refused += 1
        return
    opened += 1
    socks[s.fileno()] = (s, kind, i)

for i in range(IDLE + TRICKLE):
    open_one(i)
end = time.time() + seconds
next_trickle = 0
sent = set()
ready = False
while time.time() < end and not os.path.exists(stop_file):
    if not ready and time.time() > end - seconds + 2:
        open(stop_file + ".ready", "w").close()  # all opened, pressure on
        ready = True
    poller = select.poll()
    for fd in socks:
        poller.register(fd, select.POLLIN)
    r = [fd for fd, _ in poller.poll(200)]
    for fd in r:
        if fd not in socks:
            continue
        s, kind, i = socks.pop(fd)
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data:
            socks[fd] = (s, kind, i)
            continue
        s.close()
        sent.discard(i)
        if time.time() < end:
            open_one(i)  # closed by the server: come back
    if time.time() >= next_trickle:
        next_trickle = time.time() + 1.0
        for fd, (s, kind, i) in list(socks.items()):
            if kind == "trickle":
                try:
                    s.send(b"GET /slow HTTP/1.1\r\nX-Slow: " if i not in sent else b"a")
                    sent.add(i)
                except OSError:
                    pass
print("opened %d connections (%d failed), %d open at the end" % (opened, refused, len(socks)))
sys.exit(0 if os.path.exists(stop_file) and len(socks) > 256 else 1)
PY
python3 "$T/flood.py" "$HTTPS" "$HTTP" "$T/stop" >"$T/flood.out" 2>&1 &
FL=$!
fp_track "$FL"
for _ in $(seq 1 300); do [ -e "$T/stop.ready" ] && break; sleep 0.1; done
[ -e "$T/stop.ready" ] || fail "flood client did not get going: $(cat "$T/flood.out")"
s=$(curl -sS --interface 127.0.0.2 --retry 5 --retry-all-errors --retry-delay 1 --max-time 60 --cacert "$CA/root.crt" \
    -o "$T/cacerts" -w '%{http_code}' "https://$HTTPS/.well-known/est/cacerts" || true)
[ "$s" = 200 ] || { tail -20 "$T/server.log" >&2; fail "EST cacerts during the flood: $s"; }
pass "EST cacerts over TLS is served during the flood"
s=$(curl -sS --interface 127.0.0.2 --retry 5 --retry-all-errors --retry-delay 1 --max-time 60 \
    -o "$T/crl" -w '%{http_code}' "http://$HTTP/crl/issuing.crl" || true)
[ "$s" = 200 ] || { tail -20 "$T/server.log" >&2; fail "CRL during the flood: $s"; }
openssl crl -inform DER -in "$T/crl" -noout || fail "CRL served during the flood does not parse"
pass "the CRL over plain http is served during the flood"
kill -0 "$FL" 2>/dev/null || fail "the flood was over before the client was served: $(cat "$T/flood.out")"
touch "$T/stop"
wait "$FL" || fail "flood client failed or had too few connections open: $(cat "$T/flood.out")"
cat "$T/flood.out"
kill -0 "$SRV_PID" 2>/dev/null || { tail -20 "$T/server.log" >&2; fail "server died"; }
n=$(grep -ci 'too many open files' "$T/server.log" || true)
size=$(wc -c <"$T/server.log")
echo "log: $size bytes, $n lines about too many open files"
[ "$n" -le 5 ] || fail "'Too many open files' logged $n times"
[ "$size" -lt 65536 ] || fail "log grew to $size bytes"
pass "log stays bounded ($size bytes)"
fp_serve_stop
