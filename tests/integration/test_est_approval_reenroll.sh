#!/usr/bin/env bash
# simplereenroll on a manual-approval label keeps Subject and SAN
# (RFC 7030 4.2.2) whatever the label's cert_identity: a renewal that asks
# for other names is refused (403 csr-subject) before it is held, since the
# operator's approval issues the CSR as it is.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

est_start "[est lab]
manual_approval = yes
cert_identity = cn"

token lab --uses 1
est_csr a "/CN=lab-a" -addext "subjectAltName=DNS:a.fleet.example"
s=$(est_post "$EST/lab/simpleenroll" "$T/a.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 202 "first enrollment held" "$s"
id=$(fp pending --dir "$CA" | awk '/lab-a/ {print $1}')
expect_code 0 "approve" fp approve "$id" --dir "$CA"
s=$(est_post "$EST/lab/simpleenroll" "$T/a.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "approved certificate" "$s"
p7_certs "$T/body" "$T/a.crt"
me=(--cert "$T/a.crt" --key "$T/a.key")

est_csr same "/CN=lab-a" -addext "subjectAltName=DNS:a.fleet.example"
s=$(est_post "$EST/lab/simplereenroll" "$T/same.b64" "${me[@]}")
expect_status 202 "renewal with the same names is held" "$s"

est_csr san "/CN=lab-a" -addext "subjectAltName=DNS:bank.example"
s=$(est_post "$EST/lab/simplereenroll" "$T/san.b64" "${me[@]}")
expect_status 403 "renewal asking for another SAN" "$s"
grep -q 'csr-subject' "$T/body" || fail "403 should be csr-subject: $(cat "$T/body")"

est_csr subj "/CN=lab-a/O=Other Org" -addext "subjectAltName=DNS:a.fleet.example"
s=$(est_post "$EST/lab/simplereenroll" "$T/subj.b64" "${me[@]}")
expect_status 403 "renewal asking for another subject" "$s"

fp pending --dir "$CA" >"$T/pending"
[ "$(wc -l <"$T/pending")" -le 2 ] && ! grep -q 'Other Org' "$T/pending" ||
    { cat "$T/pending" >&2; fail "a refused renewal must not be held"; }
pass "refused renewals are not held"
est_stop
