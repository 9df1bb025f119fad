# http_lib.sh - raw HTTP client for the HTTP-layer tests (source lib.sh
# and est_lib.sh first).  raw KIND DATA-FILE: sends the bytes of DATA-FILE
# on one connection to the TLS (KIND=tls) or plain (KIND=plain) listener,
# reads until the server closes (at most 15 s), prints the status code of
# the first answer and "closed" or "open" (whether the server closed the
# connection), and keeps the whole answer in $T/raw.out.
cat >"$T/raw.py" <<'PY'
import socket, ssl, sys, time
kind, hostport, ca, data_file, out = sys.argv[1:6]
host, port = hostport.rsplit(":", 1)
data = open(data_file, "rb").read()
s = socket.create_connection((host, int(port)), timeout=15)
if kind == "tls":
    ctx = ssl.create_default_context(cafile=ca)
    s = ctx.wrap_socket(s, server_hostname="localhost")
try:
    s.sendall(data)
except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
    pass
resp, state = b"", "open"
deadline = time.time() + 15
while time.time() < deadline:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    except (ConnectionResetError, ssl.SSLError):
        state = "reset"
        break
    if not chunk:
        state = "closed"
        break
    resp += chunk
    if b"\r\n\r\n" in resp and kind == "keepalive":
        break
open(out, "wb").write(resp)
status = resp.split(b" ", 2)[1].decode() if resp.startswith(b"HTTP/1.") else "none"
print(status, state)
PY
raw() {
    local kind=$1 file=$2 addr
    if [ "$kind" = tls ]; then addr=$HTTPS; else addr=$HTTP; fi
    python3 "$T/raw.py" "$kind" "$addr" "$CA/root.crt" "$file" "$T/raw.out"
}

# log_lines PATTERN: request log lines matching PATTERN (fixed string)
log_lines() { grep -cF -- "$1" "$T/server.log" || true; }

# log_clean: the server log holds no control byte (other than line ends)
log_clean() {
    python3 - "$T/server.log" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
bad = [b for b in data if (b < 0x20 and b != 0x0a) or b == 0x7f]
sys.exit(1 if bad else 0)
PY
}
