#!/usr/bin/env bash
# Request framing (issue 8, "smaller" items): an ambiguous or malformed
# message length (duplicate, signed or 64-bit-overflowing Content-Length)
# gets 400 AND the connection closed (RFC 7230 3.3.2-3.3.3: a server that
# keeps reading after such a request can be desynchronised: request
# smuggling); a 100 KB header block gets 431 (RFC 6585 5), not a reset; an
# answer libevent would write itself (here 417 for an unknown Expect) is
# text/plain and logged.  Each on both listeners; each answered request
# has exactly one log line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/http_lib.sh"

est_start

req() { printf "$@" >"$T/req"; }

check() { # check KIND WANT-STATUS DESC MARKER
    local got
    got=$(raw "$1" "$T/req")
    [ "$got" = "$2 closed" ] || { cat "$T/raw.out"; tail -3 "$T/server.log" >&2; fail "$3 on $1: got '$got', expected '$2 closed'"; }
    grep -qi '^content-type: text/plain' "$T/raw.out" || fail "$3 on $1: answer is not text/plain"
    if grep -qi '<html' "$T/raw.out"; then fail "$3 on $1: HTML body"; fi
    sleep 0.2 # the log line is written as the answer goes out
    n=$(log_lines "path=$4 status=$2 ")
    [ "$n" = 1 ] || { tail -5 "$T/server.log" >&2; fail "$3 on $1: $n log lines for $4, expected 1"; }
    pass "$3 on $1: $2, connection closed, one log line"
}

for kind in plain tls; do
    req 'POST /dup-cl-%s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcdGET / HTTP/1.1\r\nHost: x\r\n\r\n' "$kind"
    check "$kind" 400 "duplicate Content-Length" "/dup-cl-$kind"

    req 'POST /plus-cl-%s HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd' "$kind"
    check "$kind" 400 "Content-Length +4" "/plus-cl-$kind"

    req 'POST /big-cl-%s HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\nabcd' "$kind"
    check "$kind" 400 "Content-Length over 64 bits" "/big-cl-$kind"

    req 'POST /te-cl-%s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' "$kind"
    check "$kind" 400 "Content-Length with Transfer-Encoding" "/te-cl-$kind"

    { printf 'GET /huge-hdr-%s HTTP/1.1\r\nHost: x\r\nX-Pad: ' "$kind"
      head -c 102400 /dev/zero | tr '\0' 'a'
      printf '\r\n\r\n'; } >"$T/req"
    check "$kind" 431 "100 KB header block" "/huge-hdr-$kind"

    # libevent answers an unknown expectation itself (RFC 7231 5.1.1)
    req 'POST /expect-%s HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 4\r\n\r\nabcd' "$kind"
    check "$kind" 417 "libevent's own answer (417)" "/expect-$kind"
done

# absolute-form (RFC 7230 5.3.2: a server MUST accept it) reaches the same
# route as origin-form; a malformed one is a 400 from the guard
req 'GET http://localhost/crl/issuing.crl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
got=$(raw plain "$T/req")
[ "$got" = "200 closed" ] || { cat "$T/raw.out"; fail "absolute-form GET of the CRL: got '$got'"; }
pass "absolute-form request target is served like origin-form"
req 'GET http:///crl/issuing.crl HTTP/1.1\r\nHost: x\r\n\r\n'
check plain 400 "absolute-form with an empty host" "http://"

# a 100 KB header from curl: 431 (a reset would be status 000)
s=$(est_get "$EST/cacerts" -H "X-Pad: $(head -c 102400 /dev/zero | tr '\0' 'b')" || true)
expect_status 431 "curl with a 100 KB header gets 431" "$s"

# well-formed requests are unaffected, pipelined ones too
s=$(est_get "$EST/cacerts")
expect_status 200 "cacerts still served" "$s"
printf 'GET /crl/none1.crl HTTP/1.1\r\nHost: x\r\n\r\nGET /crl/none2.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T/req"
got=$(raw plain "$T/req")
[ "$(grep -c '^HTTP/1.1 404' "$T/raw.out")" = 2 ] || { cat "$T/raw.out"; fail "two pipelined requests: $got"; }
pass "two pipelined requests get two answers"
log_clean || fail "control bytes in the server log"
est_stop
