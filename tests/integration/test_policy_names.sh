#!/usr/bin/env bash
# Names and one verdict for all front ends (issue 8, defect 9 and the
# smaller items): bidi controls in a subject are refused by the CLI and by
# EST unless the profile says allow_bidi; an EC request signed with SHA-1
# gets csr-sig-alg (403) from EST as from the CLI; a token's CN pattern
# 'sensor-*' does not match 'sensor-/../x'; `token create` refuses
# patterns outside the language (docs/policy.md).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

RLO=$(printf '\xe2\x80\xae')

est_start "[profile lax]
allow_bidi = yes

[est lax]
auth = token
profile = lax"

# ---- bidi controls ----
fp_csr bidi "/CN=sensor-${RLO}gnp.exe" -utf8
expect_code 3 "CLI refuses a CN with U+202E" fp issue --dir "$CA" --csr "$T/bidi.csr" --profile device
grep -q "fleetpki: csr-subject:.*bidirectional" "$T/last.err" || { cat "$T/last.err"; fail "bidi: CLI code"; }
fp issue --dir "$CA" --csr "$T/bidi.csr" --profile lax >"$T/bidi.crt" || fail "allow_bidi = yes issues it"
pass "a profile with allow_bidi = yes issues it"
fp_csr nel "/CN=sensor-$(printf '\xc2\x85')1" -utf8
expect_code 3 "CLI refuses a C1 control even with allow_bidi" fp issue --dir "$CA" --csr "$T/nel.csr" --profile lax
grep -q "fleetpki: csr-subject:" "$T/last.err" || { cat "$T/last.err"; fail "C1: CLI code"; }

token default --uses 5
openssl req -in "$T/bidi.csr" -outform DER | base64 >"$T/bidi.b64"
s=$(est_post "$EST/simpleenroll" "$T/bidi.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "EST refuses a CN with U+202E" "$s"
grep -q "csr-subject" "$T/body" || { cat "$T/body"; fail "bidi: EST code"; }

# ---- defect 9: EC request signed with SHA-1 / SHA-224 ----
for md in sha1 sha224; do
    est_csr "ec$md" "/CN=sensor-$md" "-$md"
    expect_code 3 "CLI refuses EC with $md" fp issue --dir "$CA" --csr <(base64 -d "$T/ec$md.b64") --profile device
    grep -q "fleetpki: csr-sig-alg:" "$T/last.err" || { cat "$T/last.err"; fail "$md: CLI code"; }
    s=$(est_post "$EST/simpleenroll" "$T/ec$md.b64" -u "$TOK_ID:$TOK_SECRET")
    expect_status 403 "EST refuses EC with $md as the CLI does" "$s"
    grep -q "csr-sig-alg" "$T/body" || { cat "$T/body"; fail "$md: EST code"; }
    # serverkeygen certifies a key of its own, but the client's request
    # must still prove possession under the same algorithm rules
    s=$(est_post "$EST/serverkeygen" "$T/ec$md.b64" -u "$TOK_ID:$TOK_SECRET")
    expect_status 403 "EST serverkeygen refuses a client request signed with $md" "$s"
    grep -q "csr-sig-alg" "$T/body" || { cat "$T/body"; fail "$md: serverkeygen code"; }
done

# ---- token CN patterns ----
token default --cn 'sensor-*' --uses 3
est_csr slash "/CN=sensor-\/..\/x"
openssl req -in <(base64 -d "$T/slash.b64") -inform DER -noout -subject | grep -q 'sensor-/../x' ||
    fail "test CSR should carry CN sensor-/../x"
s=$(est_post "$EST/simpleenroll" "$T/slash.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "token pattern sensor-* does not match sensor-/../x" "$s"
grep -q "csr-cn" "$T/body" || { cat "$T/body"; fail "slash: EST code"; }
est_csr bare "/CN=sensor-"
s=$(est_post "$EST/simpleenroll" "$T/bare.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 403 "token pattern sensor-* does not match sensor-" "$s"
est_csr ok "/CN=sensor-17"
s=$(est_post "$EST/simpleenroll" "$T/ok.b64" -u "$TOK_ID:$TOK_SECRET")
expect_status 200 "token pattern sensor-* matches sensor-17" "$s"

expect_code 2 "token create refuses a pattern with '['" \
    fp token create --dir "$CA" --label default --cn 'sensor-[0-9]'
grep -q "reserved" "$T/last.err" || { cat "$T/last.err"; fail "bracket pattern: message"; }
expect_code 2 "token create refuses a pattern with a control character" \
    fp token create --dir "$CA" --label default --cn "$(printf 'sensor-\t*')"
fp token --help | grep -q "never '/'" || fail "token --help documents the pattern language"
pass "token --help documents the pattern language"
est_stop
