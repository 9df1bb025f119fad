#!/usr/bin/env bash
# Shutdown drain (issue 3: "in-flight requests finish"): a request whose
# body is still arriving when SIGTERM comes is received to the end and
# answered (200, certificate stored, connection closed after it) before the
# server exits 0; a request that never completes holds the exit back only
# until the drain limit, then the server exits 0 and says so in its log.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start
token default --uses 5
est_csr d1 "/CN=drain-1"
est_csr d2 "/CN=drain-2"

# client.py HOST:PORT BODY-FILE OUT-PREFIX: POST simpleenroll in two halves;
# after the first it creates OUT.half and waits for OUT.go (or gives up on
# the second half if OUT.never exists), then reads the whole answer.
cat >"$T/client.py" <<'EOF'
import base64, os, socket, ssl, sys, time
hostport, body_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = hostport.rsplit(":", 1)
body = open(body_file, "rb").read()
auth = base64.b64encode((os.environ["TOK_ID"] + ":" + os.environ["TOK_SECRET"]).encode()).decode()
ctx = ssl.create_default_context(cafile=os.environ["CA_ROOT"])
s = ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)
head = ("POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: %s\r\n"
        "Content-Type: application/pkcs10\r\nAuthorization: Basic %s\r\n"
        "Content-Length: %d\r\n\r\n" % (hostport, auth, len(body))).encode()
half = len(body) // 2
s.sendall(head + body[:half])
open(out + ".half", "w").close()
for _ in range(600):
    if os.path.exists(out + ".go") or os.path.exists(out + ".never"):
        break
    time.sleep(0.05)
if os.path.exists(out + ".never"):
    time.sleep(30)  # never finishes; the server must give up on its own
    sys.exit(0)
s.sendall(body[half:])
resp = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    resp += chunk
open(out + ".resp", "wb").write(resp)
EOF
export TOK_ID TOK_SECRET CA_ROOT="$CA/root.crt"

wait_file() {
    for _ in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.05; done
    fail "$1 did not appear"
}

# 1. half a request in, SIGTERM, the rest: answered in full
python3 "$T/client.py" "$HTTPS" "$T/d1.b64" "$T/c1" &
CLI=$!
fp_track "$CLI"
wait_file "$T/c1.half"
sleep 0.5 # let the server read what was sent
kill -TERM "$SRV_PID"
sleep 0.3
kill -0 "$SRV_PID" 2>/dev/null || fail "server exited with a request half received"
touch "$T/c1.go"
wait "$CLI" || fail "client failed"
rc=0
wait "$SRV_PID" || rc=$?
[ "$rc" = 0 ] || { cat "$T/server.log" >&2; fail "server exit status $rc"; }
head -1 "$T/c1.resp" | grep -q '^HTTP/1.1 200' || fail "request in flight at SIGTERM: $(head -1 "$T/c1.resp")"
grep -qi '^connection: close' "$T/c1.resp" || fail "answer during the drain does not close the connection"
sed '1,/^\r$/d' "$T/c1.resp" >"$T/c1.p7"
p7_certs "$T/c1.p7" "$T/c1.crt"
verify_cert "$T/c1.crt" || fail "certificate answered during the drain does not verify"
s=$(openssl x509 -in "$T/c1.crt" -noout -serial | cut -d= -f2)
fp show "$s" --dir "$CA" >/dev/null || fail "certificate answered during the drain is not stored"
pass "a request half received at SIGTERM is finished: 200, stored, connection closed, exit 0"

# 2. a request that never completes holds the exit only until the limit
fp_serve_run
python3 "$T/client.py" "$HTTPS" "$T/d2.b64" "$T/c2" &
CLI=$!
fp_track "$CLI"
wait_file "$T/c2.half"
touch "$T/c2.never"
sleep 0.5
kill -TERM "$SRV_PID"
rc=0
wait "$SRV_PID" || rc=$?
[ "$rc" = 0 ] || { cat "$T/server.log" >&2; fail "server exit status $rc"; }
grep -q 'still in flight' "$T/server.log" || fail "no log line about the request cut at the drain limit"
kill "$CLI" 2>/dev/null || true
pass "a request that never completes: exit 0 at the drain limit, logged"
