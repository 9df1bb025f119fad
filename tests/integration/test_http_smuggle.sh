#!/usr/bin/env bash
# Framing the guard (src/http/guard.c) and libevent's evhttp must read the
# same way (request smuggling, RFC 7230 3.3.3 and 9.5): where they would
# disagree on where a request ends, the guard answers 400 and closes.
# Each case ends in a request for a marker path that must never be served
# (its log line would prove that evhttp read bytes the guard took for a
# body, so they were never scanned).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/http_lib.sh"

est_start

check() { # check KIND DESC MARKER: 400, closed, marker never served (a 400 for it is ours)
    local got n
    got=$(raw "$1" "$T/req")
    sleep 0.2 # the log line is written as the answer goes out
    n=$(grep -F -- "path=$3 " "$T/server.log" | grep -cvF "status=400 " || true)
    [ "$n" = 0 ] || { tail -5 "$T/server.log" >&2; fail "$2 on $1: smuggled $3 was served"; }
    [ "$got" = "400 closed" ] || { cat "$T/raw.out"; tail -3 "$T/server.log" >&2; fail "$2 on $1: got '$got', expected '400 closed'"; }
    pass "$2 on $1: 400, connection closed, nothing smuggled"
}

for kind in plain tls; do
    # evhttp reads no body on HEAD (evhttp_method_may_have_body), so a
    # Content-Length body would be parsed as the next request by evhttp
    # while the guard skipped it as body
    inner="GET /crl/smuggled-head-$kind.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    len=$(printf "$inner" | wc -c)
    printf "HEAD /crl/none.crl HTTP/1.1\r\nHost: x\r\nContent-Length: $len\r\n\r\n$inner" >"$T/req"
    check "$kind" "HEAD with a Content-Length body" "/crl/smuggled-head-$kind.crl"

    printf "HEAD /crl/none.crl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /crl/smuggled-head-te-$kind.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >"$T/req"
    check "$kind" "HEAD with a chunked body" "/crl/smuggled-head-te-$kind.crl"

    # evhttp strips only SP before a field value, so it reads
    # "Transfer-Encoding:<HTAB>chunked" as no body while the guard (OWS is
    # SP or HTAB, RFC 7230 3.2) read a chunked one: the POST itself must
    # not be served without its body
    printf "POST /crl/te-tab-$kind.crl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" >"$T/req"
    check "$kind" "Transfer-Encoding after a tab" "/crl/te-tab-$kind.crl"
done

# what stays allowed: HEAD without a body or with Content-Length: 0, and
# "Transfer-Encoding: chunked" after spaces
printf 'HEAD /crl/none.crl HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nHEAD /crl/none2.crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T/req"
got=$(raw plain "$T/req")
[ "$(grep -c '^HTTP/1.1 404' "$T/raw.out")" = 2 ] || { cat "$T/raw.out"; fail "two HEAD requests: $got"; }
pass "HEAD with Content-Length: 0 is still served"
printf 'POST /crl/te-sp.crl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:   chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n' >"$T/req"
got=$(raw plain "$T/req")
case "$got" in 400*|none*) cat "$T/raw.out"; fail "chunked POST after spaces: got '$got'";; esac
[ "$(log_lines "path=/crl/te-sp.crl ")" = 1 ] || fail "chunked POST after spaces not served once"
pass "Transfer-Encoding after spaces is still read as chunked ($got)"
log_clean || fail "control bytes in the server log"
est_stop
