#!/usr/bin/env bash
# HTTP limits from the config: header block size, body size, idle and
# slow clients are cut off; the server keeps serving others meanwhile.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

fp_new_ca "$CA" >/dev/null
# tighten [server] limits in place (the options already exist in the file)
sed -i -e 's/^max_header_bytes = .*/max_header_bytes = 2048/' \
    -e 's/^max_body_bytes = .*/max_body_bytes = 1024/' \
    -e 's/^idle_timeout_seconds = .*/idle_timeout_seconds = 1/' "$CA/fleetpki.conf"
fp check-config --dir "$CA" >/dev/null || fail "edited config does not validate"
# est_start would make a new CA: start the server on this one by hand
rm -f "$T/addr"
"$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --addr-file "$T/addr" \
    2>"$T/server.log" &
SRV_PID=$!
fp_track "$SRV_PID"
for _ in $(seq 1 100); do [ -s "$T/addr" ] && break; sleep 0.05; done
HTTPS=$(sed -n 's/^https=//p' "$T/addr")
EST="https://$HTTPS/.well-known/est"
port=${HTTPS##*:}

token default --uses 5
est_csr ok "/CN=limits-ok"
s=$(est_post "$EST/simpleenroll" "$T/ok.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "a normal enrollment fits the limits" "$s"

# body just over max_body_bytes
head -c 1025 /dev/zero | tr '\0' 'A' >"$T/over"
s=$(est_post "$EST/simpleenroll" "$T/over" -u "$TOK_ID:$TOK_SECRET")
expect_status 413 "body of max_body_bytes + 1" "$s"
# an RSA-4096 CSR is a legitimate request larger than this limit
openssl req -new -newkey rsa:4096 -nodes -keyout "$T/big.key" -subj "/CN=big" -outform DER 2>/dev/null |
    base64 >"$T/big.b64"
s=$(est_post "$EST/simpleenroll" "$T/big.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 413 "a CSR larger than max_body_bytes" "$s"

# header block over max_header_bytes: refused, not processed
s=$(est_get "$EST/cacerts" -H "X-Padding: $(head -c 3000 /dev/zero | tr '\0' 'x')" || true)
case "$s" in 4??) pass "oversize header block refused ($s)" ;;
000) pass "oversize header block: connection closed" ;;
*) fail "oversize header block answered $s" ;; esac
s=$(est_get "$EST/cacerts")
expect_status 200 "server still serves after oversize headers" "$s"

# idle and slow clients (idle_timeout_seconds = 1): the server hangs up
# by itself; the client waits up to 30 s, so a server that never hangs up
# fails the test, and a request that was answered fails it too
cat >"$T/idle.py" <<'PY'
import socket, ssl, sys, time
port, ca, first = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port)) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        if first:
            s.sendall(first.decode("unicode_escape").encode())
        s.settimeout(30)
        try:
            data = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        except socket.timeout:
            sys.exit("still open after 30 s")
        sys.exit("answered: %r" % data[:40] if data else 0)
PY
python3 "$T/idle.py" "$port" "$CA/root.crt" "" || fail "idle TLS connection not closed by the server"
pass "idle TLS connection is closed by the server"
python3 "$T/idle.py" "$port" "$CA/root.crt" 'GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\n' ||
    fail "stalled half request not cut off"
pass "a stalled half request is cut off without an answer"

# plain-http listener is up and answers 404 for unknown paths
s=$(curl -sS -o /dev/null -w '%{http_code}' "http://$(sed -n 's/^http=//p' "$T/addr")/nothing")
expect_status 404 "plain http listener answers" "$s"
est_stop
