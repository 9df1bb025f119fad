#!/usr/bin/env bash
# Manual approval: 202 + Retry-After, `fleetpki pending/approve/reject`,
# the retried CSR then gets its certificate (or 403).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start "[est lab]
manual_approval = yes
retry_after_seconds = 7"

token lab --uses 3
auth=(-u "$TOK_ID:$TOK_SECRET")
est_csr a "/CN=lab-a"
s=$(est_post "$EST/lab/simpleenroll" "$T/a.b64" "${auth[@]}")
expect_status 202 "enrollment is held for approval" "$s"
grep -qi '^retry-after: 7' "$T/headers" || fail "202 without Retry-After"
pass "202 carries Retry-After"
s=$(est_post "$EST/lab/simpleenroll" "$T/a.b64" "${auth[@]}")
expect_status 202 "retry before a decision is still 202" "$s"

fp pending --dir "$CA" >"$T/pending"
[ "$(grep -c 'lab-a' "$T/pending")" = 1 ] || { cat "$T/pending" >&2; fail "pending should list lab-a once"; }
pass "pending lists the request once"
id=$(awk '/lab-a/ {print $1}' "$T/pending")

# a CSR the profile refuses is refused at once, not held
openssl req -new -newkey rsa:1024 -nodes -keyout "$T/weak.key" -subj "/CN=weak" \
    -outform DER 2>/dev/null | base64 >"$T/weak.b64"
s=$(est_post "$EST/lab/simpleenroll" "$T/weak.b64" "${auth[@]}")
expect_status 403 "a CSR the profile refuses is not held" "$s"
s=$(est_post "$EST/lab/simpleenroll" "$T/a.b64")
expect_status 401 "unauthenticated retry is refused" "$s"

expect_code 0 "approve" fp approve "$id" --dir "$CA"
expect_code 1 "approving twice fails" fp approve "$id" --dir "$CA"
s=$(est_post "$EST/lab/simpleenroll" "$T/a.b64" "${auth[@]}")
expect_status 200 "retry after approval returns the certificate" "$s"
p7_certs "$T/body" "$T/a.crt"
verify_cert "$T/a.crt" || fail "approved certificate does not verify"
[ "$(openssl x509 -in "$T/a.crt" -noout -pubkey)" = "$(openssl pkey -in "$T/a.key" -pubout)" ] ||
    fail "approved certificate is not for the CSR's key"
pass "approved certificate verifies and matches the key"
s=$(est_post "$EST/lab/simpleenroll" "$T/a.b64" "${auth[@]}")
expect_status 200 "a later retry returns the same certificate" "$s"
p7_certs "$T/body" "$T/a2.crt"
cmp -s "$T/a.crt" "$T/a2.crt" || fail "second retry returned a different certificate"

est_csr b "/CN=lab-b"
s=$(est_post "$EST/lab/simpleenroll" "$T/b.b64" "${auth[@]}")
expect_status 202 "second device held" "$s"
id=$(fp pending --dir "$CA" | awk '/lab-b/ {print $1}')
expect_code 0 "reject" fp reject "$id" --dir "$CA"
s=$(est_post "$EST/lab/simpleenroll" "$T/b.b64" "${auth[@]}")
expect_status 403 "retry after rejection is refused" "$s"
fp pending --dir "$CA" >"$T/pending"
[ ! -s "$T/pending" ] || { cat "$T/pending" >&2; fail "nothing should be waiting"; }
fp pending --all --dir "$CA" --json | grep -q '"status": "rejected"' || fail "--all should show the rejection"
pass "pending is empty; --all shows decisions"
expect_code 2 "approve needs an ID" fp approve --dir "$CA"
expect_code 1 "approve of an unknown ID" fp approve 999 --dir "$CA"
s=$(est_post "$EST/lab/serverkeygen" "$T/a.b64" "${auth[@]}")
expect_status 403 "serverkeygen on a manual-approval label" "$s"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain broken"
pass "audit chain verifies"
est_stop
