#!/usr/bin/env bash
# Proof-of-possession linking (RFC 7030 3.5): on a label that requires it,
# the CSR challengePassword must be the TLS channel binding of the very
# connection the CSR is sent on: tls-unique (RFC 5929) under TLS 1.2,
# tls-exporter (RFC 9266) under TLS 1.3.  The binding is only known after
# the handshake, so the client makes its CSR mid-connection:
#   TLS 1.2: python's ssl module (get_channel_binding("tls-unique")),
#   TLS 1.3: openssl s_client -keymatexport EXPORTER-Channel-Binding.
# The CSR itself is always made by `openssl req`.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start "[est linked]
require_pop_linking = yes"

# csrattrs of a linking label asks for challengePassword
s=$(est_get "$EST/linked/csrattrs")
expect_status 200 "csrattrs of the linking label" "$s"
openssl base64 -d -in "$T/body" | openssl asn1parse -inform DER | grep -q challengePassword ||
    fail "csrattrs should ask for challengePassword"
pass "csrattrs asks for challengePassword"

token linked --uses 10
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/pop.key" 2>/dev/null

# make_csr PASSWORD OUT: CSR with challengePassword PASSWORD (base64 DER)
cat >"$T/mkcsr.sh" <<EOF
#!/bin/sh
cat >"$T/pop.cnf" <<CNF
[req]
distinguished_name = dn
attributes = attrs
prompt = no
[dn]
CN = linked-device
[attrs]
challengePassword = \$1
CNF
openssl req -new -config "$T/pop.cnf" -key "$T/pop.key" -outform DER 2>/dev/null | base64 -w0 >"\$2"
EOF
chmod +x "$T/mkcsr.sh"

est_csr plain "/CN=linked-device"
s=$(est_post "$EST/linked/simpleenroll" "$T/plain.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "CSR without challengePassword on a linking label" "$s"
grep -q '^csr-pop:' "$T/body" || fail "403 should name csr-pop"
"$T/mkcsr.sh" "bm90IHRoZSBiaW5kaW5nIGF0IGFsbCBub3QgYXQgYWxs" "$T/wrong.b64"
s=$(est_post "$EST/linked/simpleenroll" "$T/wrong.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "challengePassword that is not this connection's binding" "$s"

cat >"$T/client.py" <<'PY'
import base64, socket, ssl, subprocess, sys
host, port, ca, user, pw, mkcsr, tmp, mode = sys.argv[1:9]
ctx = ssl.create_default_context(cafile=ca)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.check_hostname = False
def enroll(binding):
    with socket.create_connection((host, int(port))) as raw:
        with ctx.wrap_socket(raw) as s:
            cb = s.get_channel_binding("tls-unique")
            pw_csr = base64.b64encode(cb if binding == "this" else b"\0" * len(cb)).decode()
            subprocess.run([mkcsr, pw_csr, tmp + "/py.b64"], check=True)
            body = open(tmp + "/py.b64", "rb").read()
            auth = base64.b64encode(f"{user}:{pw}".encode()).decode()
            req = (f"POST /.well-known/est/linked/simpleenroll HTTP/1.1\r\nHost: {host}\r\n"
                   f"Authorization: Basic {auth}\r\nContent-Type: application/pkcs10\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    status = data.split(b"\r\n", 1)[0].split()[1].decode()
    open(tmp + "/py.body", "wb").write(data.split(b"\r\n\r\n", 1)[1])
    return status
print(enroll(mode))
PY
host=${HTTPS%:*}
port=${HTTPS##*:}
s=$(python3 "$T/client.py" "$host" "$port" "$CA/root.crt" "$TOK_ID" "$TOK_SECRET" "$T/mkcsr.sh" "$T" this)
[ "$s" = 200 ] || { cat "$T/py.body" >&2; fail "TLS 1.2 with tls-unique in challengePassword (HTTP $s)"; }
p7_certs "$T/py.body" "$T/linked12.crt"
verify_cert "$T/linked12.crt" || fail "linked certificate does not verify"
pass "TLS 1.2: CSR carrying this connection's tls-unique is accepted"
s=$(python3 "$T/client.py" "$host" "$port" "$CA/root.crt" "$TOK_ID" "$TOK_SECRET" "$T/mkcsr.sh" "$T" other)
[ "$s" = 403 ] || fail "TLS 1.2 with a wrong binding (HTTP $s, expected 403)"
pass "TLS 1.2: a binding of the right length but wrong value is refused"

# TLS 1.3: drive openssl s_client; read the exported binding, then send.
cat >"$T/s_client.py" <<'PY'
import base64, subprocess, sys
host_port, ca, user, pw, mkcsr, tmp = sys.argv[1:7]
p = subprocess.Popen(["openssl", "s_client", "-connect", host_port, "-tls1_3", "-CAfile", ca,
                      "-keymatexport", "EXPORTER-Channel-Binding", "-keymatexportlen", "32",
                      "-ign_eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL)
km = None
for line in p.stdout:
    line = line.decode(errors="replace").strip()
    if line.startswith("Keying material:"):
        km = bytes.fromhex(line.split(":", 1)[1].strip())
    if line == "---" and km is not None:
        break
if km is None:
    sys.exit("no keying material from s_client")
subprocess.run([mkcsr, base64.b64encode(km).decode(), tmp + "/s13.b64"], check=True)
body = open(tmp + "/s13.b64", "rb").read()
auth = base64.b64encode(f"{user}:{pw}".encode()).decode()
p.stdin.write((f"POST /.well-known/est/linked/simpleenroll HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Basic {auth}\r\nContent-Type: application/pkcs10\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
p.stdin.close()
out = p.stdout.read().decode(errors="replace")
p.wait()
for line in out.splitlines():
    if line.startswith("HTTP/1.1 "):
        print(line.split()[1])
        break
else:
    print("none")
PY
s=$(python3 "$T/s_client.py" "127.0.0.1:$port" "$CA/root.crt" "$TOK_ID" "$TOK_SECRET" "$T/mkcsr.sh" "$T")
[ "$s" = 200 ] || { tail -5 "$T/server.log" >&2; fail "TLS 1.3 with tls-exporter in challengePassword (HTTP $s)"; }
pass "TLS 1.3: CSR carrying this connection's tls-exporter binding is accepted"

# a binding from one connection replayed on another is refused
s=$(est_post "$EST/linked/simpleenroll" "$T/s13.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "binding replayed on a different connection" "$s"
est_stop
