#!/usr/bin/env bash
# Abuse limits from [server] (issue 8): over rate_per_address a client
# gets 429 with Retry-After (RFC 6585 4) while another address is still
# served; over max_connections_per_address extra connections are closed
# at once while another address still connects; over
# max_requests_per_connection the answer closes the keep-alive connection.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/http_lib.sh"

fp_new_ca "$CA" >/dev/null
sed -i -e 's/^rate_per_address = .*/rate_per_address = 1/' \
    -e 's/^rate_burst_per_address = .*/rate_burst_per_address = 5/' \
    -e 's/^max_connections_per_address = .*/max_connections_per_address = 4/' \
    -e 's/^max_requests_per_connection = .*/max_requests_per_connection = 3/' "$CA/fleetpki.conf"
grep -q '^rate_per_address = 1$' "$CA/fleetpki.conf" || fail "config has no rate_per_address row"
fp check-config --dir "$CA" >/dev/null || fail "edited config does not validate"
fp_serve_run

# ---- request rate per address: burst 5, then 429 ----
codes=""
for i in $(seq 1 12); do
    codes="$codes $(curl -sS -o /dev/null -D "$T/h$i" -w '%{http_code}' --interface 127.0.0.3 "http://$HTTP/crl/issuing.crl")"
done
echo "codes:$codes"
[ "$(tr ' ' '\n' <<<"$codes" | grep -c '^200$')" -ge 5 ] || fail "burst not served:$codes"
last=$(tr ' ' '\n' <<<"$codes" | tail -1)
# 12 requests in far less than the 7 s that would refill 7 tokens
[ "$last" = 429 ] || fail "request 12 from one address answered $last, expected 429"
grep -qi '^retry-after: [1-9]' "$T/h12" || { cat "$T/h12"; fail "429 without Retry-After"; }
grep -qi '^content-type: text/plain' "$T/h12" || fail "429 is not text/plain"
pass "over rate_per_address: 429 with Retry-After"
s=$(curl -sS -o /dev/null -w '%{http_code}' --interface 127.0.0.4 "http://$HTTP/crl/issuing.crl")
expect_status 200 "another address is served meanwhile" "$s"
# the bucket is (nearly) empty: of three quick requests over TLS at least
# one is refused (at most one token comes back per second)
tls=""
for i in 1 2 3; do
    tls="$tls $(curl -sS -o /dev/null -w '%{http_code}' --interface 127.0.0.3 --cacert "$CA/root.crt" "https://$HTTPS/.well-known/est/cacerts")"
done
grep -q 429 <<<"$tls" || fail "no 429 over TLS from the limited address:$tls"
pass "the limit covers the TLS listener too"
[ "$(grep -c 'status=429' "$T/server.log")" -ge 2 ] || fail "429s not logged"

# ---- connections per address: 4, the 5th is closed at once ----
cat >"$T/conns.py" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
def conn(src):
    s = socket.socket()
    s.bind((src, 0))
    s.connect((host, int(port)))
    return s
def closed_soon(s):
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True
held = [conn("127.0.0.5") for _ in range(4)]
time.sleep(0.5)
extra = conn("127.0.0.5")
if not closed_soon(extra):
    sys.exit("5th connection from one address was kept open")
other = conn("127.0.0.6")
other.sendall(b"GET /crl/issuing.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
other.settimeout(10)
resp = other.recv(64)
if not resp.startswith(b"HTTP/1.1 200"):
    sys.exit("other address not served: %r" % resp)
for s in held:
    s.settimeout(0.2)
    try:
        if s.recv(1) == b"":
            sys.exit("a connection under the cap was closed")
    except socket.timeout:
        pass
print("ok")
PY
python3 "$T/conns.py" "$HTTP" || fail "per-address connection cap"
pass "max_connections_per_address: the 5th connection is closed, another address still served, the 4 stay"

# ---- requests per keep-alive connection: the 3rd answer closes it ----
printf 'GET /nothing HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\n\r\n' >"$T/req"
sleep 1.2 # let 127.0.0.1's bucket refill
got=$(raw plain "$T/req")
n=$(grep -c '^HTTP/1.1 ' "$T/raw.out")
[ "$n" = 3 ] && [ "${got#* }" = closed ] || { cat "$T/raw.out"; fail "max_requests_per_connection: $n answers, $got"; }
grep -qi '^connection: close' "$T/raw.out" || fail "last answer does not say Connection: close"
pass "max_requests_per_connection: 3 answers, then the server closes"
fp_serve_stop
grep -q 'over max_connections_per_address' "$T/server.log" || fail "per-address refusals not reported"
