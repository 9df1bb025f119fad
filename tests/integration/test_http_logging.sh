#!/usr/bin/env bash
# Log injection (issue 8, defect 7): request paths carrying %0a, %0d, %1b
# and spaces, on the TLS and the plain listener, give exactly one log line
# per request, no control byte in the log, and a client cannot make
# "status=200 identity=est:cert:admin" appear as fields of a line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/http_lib.sh"

est_start

forged='status=200%20identity=est:cert:admin%20peer=10.0.0.1'
paths=(
    "/inj-lf-%0a2026-01-01T00:00:00.000Z%20info%20http%20id=x%20method=GET%20path=/x%20$forged"
    "/inj-cr-%0d$forged"
    "/inj-esc-%1b%5b2J%1b%5bH$forged"
    "/inj-sp-a%20b%20$forged"
    "/.well-known/est/inj-lbl%0a$forged/cacerts"
    "/crl/inj-crl%0a$forged.crl"
    "/ocsp/inj-ocsp%0d%0a$forged"
)
n=0
for p in "${paths[@]}"; do
    n=$((n + 1))
    curl -sS --path-as-is --cacert "$CA/root.crt" -o /dev/null "https://$HTTPS$p" || true
    curl -sS --path-as-is -o /dev/null "http://$HTTP$p" || true
done
sleep 0.3
lines=$(grep -c ' http id=' "$T/server.log")
[ "$lines" = $((2 * n)) ] || { cat "$T/server.log" >&2; fail "$lines request log lines for $((2 * n)) requests"; }
pass "one log line per request ($lines)"
for m in inj-lf- inj-cr- inj-esc- inj-sp- inj-lbl inj-crl inj-ocsp; do
    [ "$(grep -c -- "$m" "$T/server.log")" = 2 ] || fail "$m: not exactly one line per listener"
done
pass "each injected path is on exactly one line per listener"
log_clean || fail "control bytes in the server log"
pass "no control byte in the log"
# a field is a space-separated key=value: no line may carry the forged ones
if grep -E '(^| )(identity=est:cert:admin|peer=10[.]0[.]0[.]1)( |$)' "$T/server.log"; then
    fail "a forged field appears in the log"
fi
pass "forged identity/peer fields do not appear as fields"
# every request line still has exactly one status= and one identity= field
bad=$(grep ' http id=' "$T/server.log" | awk '{c=0; d=0; for (i=1;i<=NF;i++) { if ($i ~ /^status=/) c++; if ($i ~ /^identity=/) d++ } if (c != 1 || d != 1) print}')
[ -z "$bad" ] || { echo "$bad" >&2; fail "a log line with more than one status/identity field"; }
pass "every request line has one status and one identity field"
est_stop
