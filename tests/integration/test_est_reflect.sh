#!/usr/bin/env bash
# Client-controlled text in an error answer is escaped (fp_log_escape):
# an unsupported Content-Transfer-Encoding is named in the 400 answer, and
# its value (any octet the HTTP guard lets through, e.g. UTF-8 U+202E, the
# right-to-left override, or a '"') must come back as \xNN, not raw.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start
token default --uses 1
est_csr dev "/CN=dev-1"
s=$(est_post "$EST/simpleenroll" "$T/dev.b64" -u "$TOK_ID:$TOK_SECRET" \
    -H $'Content-Transfer-Encoding: gzip\xe2\x80\xaeexe.png"x')
expect_status 400 "unsupported Content-Transfer-Encoding" "$s"
grep -q 'Content-Transfer-Encoding' "$T/body" || fail "400 should name the header: $(cat "$T/body")"
if LC_ALL=C grep -q $'\xe2\x80\xae' "$T/body"; then
    fail "the header value came back unescaped: $(od -c "$T/body" | head -5)"
fi
grep -qF 'gzip\xe2\x80\xaeexe.png\x22x' "$T/body" || fail "escaped value missing: $(cat "$T/body")"
pass "header value escaped in the answer"
# the token was not spent on the refused request
s=$(est_post "$EST/simpleenroll" "$T/dev.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "the same token then enrolls" "$s"
est_stop
