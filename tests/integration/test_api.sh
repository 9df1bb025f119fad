#!/usr/bin/env bash
# test_api.sh - the admin REST API (/api/v1, docs/api.md) through curl:
# every endpoint, API keys (401/403), cross-project isolation (404 for
# every object type), strict request parsing (problem+json), keyset
# pagination, revocation seen by OCSP, audit rows naming the key.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rev_lib.sh"
. "$(dirname "$0")/api_lib.sh"
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }

fp_new_ca "$CA" >/dev/null
fp project create acme --dir "$CA" >/dev/null || fail "project acme"
fp project create beta --dir "$CA" >/dev/null || fail "project beta"
cat >>"$CA/fleetpki.conf" <<CONF

[est acme]
project = acme

[est beta]
project = beta
CONF

issue() { # issue NAME CN PROJECT -> $T/NAME.crt, $T/NAME.serial
    fp_csr "$1" "/CN=$2"
    fp issue --dir "$CA" --csr "$T/$1.csr" --profile device --project "$3" --out "$T/$1.crt" \
        >/dev/null || fail "issue $1"
    openssl x509 -in "$T/$1.crt" -noout -serial | cut -d= -f2 >"$T/$1.serial"
}
for i in 1 2 3 4 5 6 7; do issue "a$i" "acme-$i" acme; done
issue b1 beta-1 beta
issue d1 default-1 default

ADMIN=$(new_key --admin)
ACME=$(new_key --project acme)
ACME_RO=$(new_key --project acme --read-only)
BETA=$(new_key --project beta)
ACME_ID=${ACME%%.*}
REVOKED=$(new_key --project acme)
fp apikey revoke "${REVOKED%%.*}" --dir "$CA" >/dev/null || fail "apikey revoke"
[ "$(fp apikey list --dir "$CA" --json | jq length)" = 5 ] || fail "apikey list"

CHAIN=$T/chain.pem
cat "$CA/root.crt" "$CA/issuing.crt" >"$CHAIN"
fp_serve_run

# ---- the document, without a key ----
expect_api 200 "openapi.json needs no key" GET /openapi.json ""
jq -e '.openapi | startswith("3.1")' "$T/r.body" >/dev/null || fail "openapi version"

# ---- 401: no key, malformed, unknown, wrong secret, revoked ----
expect_api 401 "no key" GET /projects ""
grep -qi '^WWW-Authenticate: Bearer' "$T/r.hdr" || fail "401 without a Bearer challenge"
[ "$(problem_type)" = unauthorized ] || fail "401 type"
expect_api 401 "malformed key" GET /projects "not-a-key"
grep -qi 'error="invalid_token"' "$T/r.hdr" || fail "invalid_token not said"
expect_api 401 "unknown key" GET /projects "0123456789abcdef.$(printf '%064d' 0)"
wrong="${ACME_ID}.$(printf '%064d' 7)"
expect_api 401 "wrong secret" GET /projects "$wrong"
expect_api 401 "revoked key" GET /projects "$REVOKED"
expect_api 401 "Basic is not Bearer" GET /projects "" 
curl -sk -o /dev/null -w '%{http_code}' -u "x:y" "https://$HTTPS/api/v1/projects" | grep -q 401 ||
    fail "Basic credentials accepted"
# 401 comes before the body: a POST without a key, body and all
expect_api 401 "POST without a key" POST /projects "" '{"name":"zeta"}'

# ---- projects ----
expect_api 200 "admin lists projects" GET /projects "$ADMIN"
[ "$(jq -r '[.items[].name] | join(",")' "$T/r.body")" = "acme,beta,default" ] ||
    fail "admin project list: $(cat "$T/r.body")"
expect_api 200 "project key lists its project" GET /projects "$ACME"
[ "$(jq -r '[.items[].name] | join(",")' "$T/r.body")" = "acme" ] ||
    fail "acme key sees $(cat "$T/r.body")"
expect_api 200 "get own project" GET /projects/acme "$ACME"
jq -e '.name == "acme" and (.created_at | type == "number")' "$T/r.body" >/dev/null || fail "project get"
expect_api 404 "another project is not found" GET /projects/beta "$ACME"
body404=$(cat "$T/r.body")
expect_api 404 "an absent project answers alike" GET /projects/nosuch "$ACME"
[ "$(jq -r .detail "$T/r.body" | sed 's/nosuch/X/')" = "$(echo "$body404" | jq -r .detail | sed 's/beta/X/')" ] ||
    fail "absent and foreign projects are told apart"
expect_api 403 "a project key cannot create projects" POST /projects "$ACME" '{"name":"zeta"}'
expect_api 201 "admin creates a project" POST /projects "$ADMIN" '{"name":"gamma"}'
jq -e '.name == "gamma" and (.ca_id | length > 0)' "$T/r.body" >/dev/null || fail "create answer"
expect_api 409 "a taken name" POST /projects "$ADMIN" '{"name":"gamma"}'
expect_api 400 "a bad name" POST /projects "$ADMIN" '{"name":"Bad/Name"}'

# ---- strict parsing ----
expect_api 400 "bad JSON" POST /projects "$ADMIN" '{"name":'
grep -q "not valid JSON" "$T/r.body" || fail "bad JSON message"
expect_api 400 "wrong type" POST /projects "$ADMIN" '{"name":5}'
grep -q 'must be a string' "$T/r.body" || fail "wrong type message"
expect_api 400 "unknown field" POST /projects "$ADMIN" '{"name":"delta","owner":"x"}'
grep -q 'unknown field' "$T/r.body" || fail "unknown field message"
expect_api 400 "not an object" POST /projects "$ADMIN" '["delta"]'
expect_api 400 "duplicate member" POST /projects "$ADMIN" '{"name":"d1","name":"d2"}'
expect_api 400 "missing field" POST /projects "$ADMIN" '{}'
big=$(head -c 5000 /dev/zero | tr '\0' 'a')
expect_api 413 "oversize body" POST /projects "$ADMIN" "{\"name\":\"$big\"}"
expect_api 415 "not JSON" POST /projects "$ADMIN" 'name=x' application/x-www-form-urlencoded
expect_api 400 "unknown query parameter" GET "/projects/acme/certificates?colour=red" "$ACME"
expect_api 400 "bad limit" GET "/projects/acme/certificates?limit=0" "$ACME"
expect_api 400 "bad cursor (not base64url)" GET "/projects/acme/certificates?cursor=%21%21" "$ACME"
expect_api 400 "bad cursor (not ours)" GET "/projects/acme/certificates?cursor=$(printf 'hello' | base64)" "$ACME"
expect_api 400 "bad audit cursor" GET "/projects/acme/audit?cursor=eA" "$ACME"

# ---- certificates: get, list, filters, pages ----
sa=$(cat "$T/a1.serial") sb=$(cat "$T/b1.serial")
expect_api 200 "get a certificate" GET "/projects/acme/certificates/$sa" "$ACME"
jq -e --arg s "$sa" '.serial == $s and .status == "valid" and .project == "acme"' "$T/r.body" \
    >/dev/null || fail "cert get: $(cat "$T/r.body")"
expect_api 404 "a certificate of another project (own path)" GET "/projects/acme/certificates/$sb" "$ACME"
expect_api 404 "a certificate of another project (its path)" GET "/projects/beta/certificates/$sb" "$ACME"
expect_api 400 "a malformed serial" GET "/projects/acme/certificates/xyz" "$ACME"
# every certificate exactly once over pages of 3
: >"$T/seen"
cursor=""
pages=0
while :; do
    q="limit=3"
    [ -n "$cursor" ] && q="$q&cursor=$cursor"
    expect_api 200 "certificate page $pages" GET "/projects/acme/certificates?$q" "$ACME" >/dev/null
    jq -r '.items[].serial' "$T/r.body" >>"$T/seen"
    cursor=$(jq -r '.next_cursor // ""' "$T/r.body")
    pages=$((pages + 1))
    [ -n "$cursor" ] || break
    [ "$pages" -lt 10 ] || fail "pagination does not end"
done
# the reference: one page holding everything (the server's OCSP signer
# certificates of acme are in it too, besides the 7 issued above)
expect_api 200 "all in one page" GET "/projects/acme/certificates?limit=1000" "$ACME" >/dev/null
jq -r '.items[].serial' "$T/r.body" | sort >"$T/want.s"
total=$(wc -l <"$T/want.s")
for s in "$T"/a?.serial; do grep -qx "$(cat "$s")" "$T/want.s" || fail "$s not listed"; done
[ "$(sort "$T/seen" | uniq | wc -l)" = "$(wc -l <"$T/seen")" ] || fail "a certificate twice"
sort "$T/seen" >"$T/seen.s"
cmp -s "$T/seen.s" "$T/want.s" || fail "pages: $(tr '\n' ' ' <"$T/seen") want $(tr '\n' ' ' <"$T/want.s")"
[ "$pages" = $(((total + 2) / 3)) ] || fail "$total certificates in pages of 3 took $pages pages"
pass "pagination walks every certificate exactly once"
expect_api 200 "expiring within 1s" GET "/projects/acme/certificates?expiring_within=1s" "$ACME"
[ "$(jq '.items | length' "$T/r.body")" = 0 ] || fail "expiring_within=1s matched"
expect_api 200 "expiring within 3650d" GET "/projects/acme/certificates?expiring_within=3650d&limit=100" "$ACME"
[ "$(jq '.items | length' "$T/r.body")" = "$total" ] || fail "expiring_within=3650d"
expect_api 400 "bad duration" GET "/projects/acme/certificates?expiring_within=soon" "$ACME"
expect_api 200 "status filter" GET "/projects/acme/certificates?status=revoked" "$ACME"
[ "$(jq '.items | length' "$T/r.body")" = 0 ] || fail "status=revoked before any revocation"

# ---- revoke: read-only refused, isolation, then OCSP says revoked ----
expect_api 403 "a read-only key cannot revoke" POST "/projects/acme/certificates/$sa/revoke" "$ACME_RO" '{"reason":"keyCompromise"}'
[ "$(problem_type)" = forbidden ] || fail "403 type"
expect_api 404 "revoke another project's certificate" POST "/projects/acme/certificates/$sb/revoke" "$ACME" '{"reason":"keyCompromise"}'
expect_api 400 "a bad reason" POST "/projects/acme/certificates/$sa/revoke" "$ACME" '{"reason":"bored"}'
sd=$(cat "$T/d1.serial")
[ "$(rev_ocsp_status "$T/d1.crt")" = good ] || fail "OCSP before revoke: $(cat "$T/ocsp.out")"
expect_api 200 "admin revokes" POST "/projects/default/certificates/$sd/revoke" "$ADMIN" '{"reason":"keyCompromise"}'
jq -e '.status == "revoked" and .reason == "keyCompromise"' "$T/r.body" >/dev/null || fail "revoke answer"
for _ in $(seq 1 100); do
    [ "$(rev_ocsp_status "$T/d1.crt")" = revoked ] && break
    sleep 0.1
done
[ "$(rev_ocsp_status "$T/d1.crt")" = revoked ] || fail "OCSP after API revoke: $(cat "$T/ocsp.out")"
pass "openssl ocsp says revoked after the API revoked it"
expect_api 409 "revoking twice" POST "/projects/default/certificates/$sd/revoke" "$ADMIN" '{}'
expect_api 200 "revoke with the project key" POST "/projects/acme/certificates/$sa/revoke" "$ACME" '{}'

# ---- tokens ----
expect_api 403 "read-only key cannot create tokens" POST /projects/acme/tokens "$ACME_RO" '{"label":"acme"}'
expect_api 201 "create a token" POST /projects/acme/tokens "$ACME" '{"label":"acme","uses":2,"ttl":"1h","cn":"acme-*"}'
tid=$(jq -r .id "$T/r.body")
jq -e '(.secret | length) > 20 and .uses == 2' "$T/r.body" >/dev/null || fail "token answer"
expect_api 404 "a label of another project" POST /projects/acme/tokens "$ACME" '{"label":"beta"}'
expect_api 201 "create a beta token" POST /projects/beta/tokens "$BETA" '{"label":"beta"}'
btid=$(jq -r .id "$T/r.body")
expect_api 200 "list tokens" GET /projects/acme/tokens "$ACME_RO"
jq -e --arg t "$tid" '[.items[].id] == [$t] and (.items[0] | has("secret") | not)' "$T/r.body" \
    >/dev/null || fail "token list: $(cat "$T/r.body")"
expect_api 404 "list another project's tokens" GET /projects/beta/tokens "$ACME"
expect_api 404 "delete another project's token" DELETE "/projects/acme/tokens/$btid" "$ACME"
expect_api 403 "read-only key cannot delete" DELETE "/projects/acme/tokens/$tid" "$ACME_RO"
expect_api 204 "delete a token" DELETE "/projects/acme/tokens/$tid" "$ACME"
expect_api 404 "delete it again" DELETE "/projects/acme/tokens/$tid" "$ACME"
expect_api 200 "beta's token is still there" GET /projects/beta/tokens "$BETA"
jq -e --arg t "$btid" '[.items[].id] == [$t]' "$T/r.body" >/dev/null || fail "beta token gone"

# ---- CAs and roots ----
expect_api 200 "list CAs" GET /projects/acme/cas "$ACME"
acme_ca=$(jq -r '.items[0].id' "$T/r.body")
expect_api 200 "beta's CAs" GET /projects/beta/cas "$BETA"
beta_ca=$(jq -r '.items[0].id' "$T/r.body")
expect_api 404 "list another project's CAs" GET /projects/beta/cas "$ACME"
expect_api 404 "activate another project's CA" POST "/projects/acme/cas/$beta_ca/activate" "$ACME"
expect_api 403 "read-only cannot create a CA" POST /projects/acme/cas "$ACME_RO" '{}'
expect_api 201 "create a CA" POST /projects/acme/cas "$ACME" '{"algo":"p256"}'
expect_api 200 "activate the first CA again" POST "/projects/acme/cas/$acme_ca/activate" "$ACME"
expect_api 200 "list roots" GET /projects/acme/roots "$ACME"
expect_api 404 "list another project's roots" GET /projects/beta/roots "$ACME"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/leafy.key" \
    -subj "/CN=not a CA" -days 30 -addext basicConstraints=critical,CA:FALSE \
    -out "$T/leafy.crt" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/mfg.key" \
    -subj "/CN=Acme Factory Root" -days 30 -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign -out "$T/mfg.crt" 2>/dev/null
expect_api 422 "a root that is not a CA" POST /projects/acme/roots "$ACME" \
    "$(jq -n --rawfile p "$T/leafy.crt" '{pem: $p}')"
[ "$(problem_type)" = ca-cert-rejected ] || fail "not-a-CA type: $(cat "$T/r.body")"
grep -q "rule 'ca'" "$T/r.body" || fail "the rule is not named: $(cat "$T/r.body")"
expect_api 403 "read-only cannot add a root" POST /projects/acme/roots "$ACME_RO" \
    "$(jq -n --rawfile p "$T/mfg.crt" '{pem: $p}')"
expect_api 201 "add a root" POST /projects/acme/roots "$ACME" \
    "$(jq -n --rawfile p "$T/mfg.crt" '{pem: $p}')"
expect_api 200 "the root is listed" GET /projects/acme/roots "$ACME"
[ "$(jq '.items | length' "$T/r.body")" = 1 ] || fail "roots: $(cat "$T/r.body")"

# ---- audit: rows carry the key; pages; isolation ----
expect_api 404 "another project's audit log" GET /projects/beta/audit "$ACME"
: >"$T/aseen"
cursor=""
while :; do
    q="limit=2"
    [ -n "$cursor" ] && q="$q&cursor=$cursor"
    expect_api 200 "audit page" GET "/projects/acme/audit?$q" "$ACME_RO" >/dev/null
    jq -r '.items[] | "\(.id) \(.actor) \(.action) \(.project)"' "$T/r.body" >>"$T/aseen"
    cursor=$(jq -r '.next_cursor // ""' "$T/r.body")
    [ -n "$cursor" ] || break
done
[ "$(cut -d' ' -f1 "$T/aseen" | sort -n | uniq | wc -l)" = "$(wc -l <"$T/aseen")" ] ||
    fail "audit pages repeat rows"
[ "$(cut -d' ' -f4 "$T/aseen" | sort -u)" = acme ] || fail "audit rows of other projects"
for action in cert.revoke token.create token.delete ca.create ca.activate root.add; do
    grep -q "api:$ACME_ID $action" "$T/aseen" ||
        grep -q "^[0-9]* api:$ACME_ID .*$action" "$T/aseen" ||
        fail "no $action row by api:$ACME_ID: $(cat "$T/aseen")"
done
pass "every mutation is audited with the API key's id"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain"

fp_serve_stop
echo "all API tests passed"
