#!/usr/bin/env bash
# test_api_devices.sh - the device endpoints of the admin REST API: list
# with keyset pages and filters (state, tag, name prefix), get, suspend /
# resume / decommission (state rules), tags, a device's certificates,
# cross-project isolation (404), read-only keys (403), bad cursors.
# The registry is filled by bench/populate_devices (35 devices over the
# projects bench-0..bench-2).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/api_lib.sh"
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
POP=${FP_BUILD_DIR:-}/bench/populate_devices
[ -x "$POP" ] || { echo "SKIP: bench/populate_devices not built (FP_BUILD_DIR '${FP_BUILD_DIR:-}')"; exit 77; }

CA=$T/ca
fp_new_ca "$CA" >/dev/null
"$POP" --db "$CA/fleetpki.db" --projects 3 --count 35 >/dev/null || fail "populate_devices"
K0=$(new_key --project bench-0)
K0_RO=$(new_key --project bench-0 --read-only)
K1=$(new_key --project bench-1)
K0_ID=${K0%%.*}
fp_serve_run

# bench-0 holds i = 0, 3, ..., 33: 12 devices named dev-0-00000000 .. dev-0-00000011
expect_api 200 "list devices" GET "/projects/bench-0/devices" "$K0"
[ "$(jq '.items | length' "$T/r.body")" = 12 ] || fail "device count: $(cat "$T/r.body")"
jq -e '.next_cursor == null and (.items[0] | .name == "dev-0-00000000" and .state == "active"
    and .tags.site == "s0" and (.first_seen | type == "number"))' "$T/r.body" >/dev/null ||
    fail "device list shape: $(jq -c '.items[0]' "$T/r.body")"
jq -r '.items[].name' "$T/r.body" >"$T/all"

# pages of 5: every device once, in name order
: >"$T/seen"
cursor=""
pages=0
while :; do
    q="limit=5"
    [ -n "$cursor" ] && q="$q&cursor=$cursor"
    expect_api 200 "device page $pages" GET "/projects/bench-0/devices?$q" "$K0_RO" >/dev/null
    jq -r '.items[].name' "$T/r.body" >>"$T/seen"
    cursor=$(jq -r '.next_cursor // ""' "$T/r.body")
    pages=$((pages + 1))
    [ -n "$cursor" ] || break
    [ "$pages" -lt 10 ] || fail "pages do not end"
done
cmp -s "$T/seen" "$T/all" || fail "pages: $(tr '\n' ' ' <"$T/seen")"
[ "$pages" = 3 ] || fail "12 devices in pages of 5 took $pages pages"
pass "pages walk every device exactly once, in name order"

# filters: i % 10 == 9 is suspended (i = 9, 39...: in bench-0, i = 9 -> dev-0-00000003)
expect_api 200 "state filter" GET "/projects/bench-0/devices?state=suspended" "$K0"
[ "$(jq -r '[.items[].name] | join(",")' "$T/r.body")" = "dev-0-00000003" ] ||
    fail "state filter: $(cat "$T/r.body")"
expect_api 200 "tag filter KEY=VALUE" GET "/projects/bench-0/devices?tag=site%3Ds3" "$K0"
[ "$(jq -r '[.items[].name] | join(",")' "$T/r.body")" = "dev-0-00000001" ] ||
    fail "tag filter: $(cat "$T/r.body")"
expect_api 200 "tag filter KEY" GET "/projects/bench-0/devices?tag=model" "$K0"
[ "$(jq '.items | length' "$T/r.body")" = 12 ] || fail "tag key filter"
expect_api 200 "name prefix" GET "/projects/bench-0/devices?name_prefix=dev-0-0000001" "$K0"
[ "$(jq -r '[.items[].name] | join(",")' "$T/r.body")" = "dev-0-00000010,dev-0-00000011" ] ||
    fail "prefix filter: $(cat "$T/r.body")"
expect_api 400 "bad state" GET "/projects/bench-0/devices?state=sleepy" "$K0"
expect_api 400 "bad tag" GET "/projects/bench-0/devices?tag=%3Dx" "$K0"
expect_api 400 "bad cursor" GET "/projects/bench-0/devices?cursor=%2A%2A" "$K0"
expect_api 400 "a cursor with a control byte" GET "/projects/bench-0/devices?cursor=$(printf 'a\001b' | base64 | tr -d =)" "$K0"

# get, isolation
expect_api 200 "get a device" GET /projects/bench-0/devices/dev-0-00000001 "$K0"
jq -e '.name == "dev-0-00000001" and .project == "bench-0" and .tags.model == "m3"' "$T/r.body" \
    >/dev/null || fail "device get: $(cat "$T/r.body")"
expect_api 404 "a device of another project (own path)" GET /projects/bench-0/devices/dev-1-00000001 "$K0"
expect_api 404 "a device of another project (its path)" GET /projects/bench-1/devices/dev-1-00000001 "$K0"
expect_api 404 "list another project's devices" GET /projects/bench-1/devices "$K0"
expect_api 404 "suspend another project's device" POST /projects/bench-1/devices/dev-1-00000001/suspend "$K0"
expect_api 404 "tag another project's device" PUT /projects/bench-0/devices/dev-1-00000001/tags/x "$K0" '{"value":"y"}'
expect_api 404 "another project's device certificates" GET /projects/bench-1/devices/dev-1-00000001/certificates "$K0"
expect_api 404 "an absent device" GET /projects/bench-0/devices/nosuch "$K0"
grep -q "no device" "$T/r.body" || fail "an absent device: $(cat "$T/r.body")"
# an admin key sees every project: an absent project is told from an
# empty page or an absent device (the list and the get ask for the
# project only when they found nothing)
KA=$(new_key --admin)
expect_api 404 "list an absent project's devices" GET "/projects/nosuch/devices" "$KA"
grep -q "no project" "$T/r.body" || fail "absent project list: $(cat "$T/r.body")"
expect_api 404 "a page past the end of an absent project" \
    GET "/projects/nosuch/devices?cursor=$(printf 'dev' | base64 | tr -d =)" "$KA"
expect_api 404 "a device of an absent project" GET "/projects/nosuch/devices/dev-0-00000001" "$KA"
grep -q "no project" "$T/r.body" || fail "absent project get: $(cat "$T/r.body")"
expect_api 200 "an empty page of a project" GET "/projects/bench-0/devices?name_prefix=zzz" "$KA"
jq -e '.items == [] and .next_cursor == null' "$T/r.body" >/dev/null ||
    fail "empty page: $(cat "$T/r.body")"

# lifecycle and its rules
expect_api 403 "read-only cannot suspend" POST /projects/bench-0/devices/dev-0-00000001/suspend "$K0_RO"
expect_api 200 "suspend" POST /projects/bench-0/devices/dev-0-00000001/suspend "$K0"
jq -e '.state == "suspended"' "$T/r.body" >/dev/null || fail "suspend answer"
expect_api 409 "suspend twice" POST /projects/bench-0/devices/dev-0-00000001/suspend "$K0"
expect_api 200 "resume" POST /projects/bench-0/devices/dev-0-00000001/resume "$K0"
jq -e '.state == "active"' "$T/r.body" >/dev/null || fail "resume answer"
expect_api 200 "decommission" POST /projects/bench-0/devices/dev-0-00000002/decommission "$K0"
jq -e '.state == "decommissioned"' "$T/r.body" >/dev/null || fail "decommission answer"
expect_api 409 "resume a decommissioned device" POST /projects/bench-0/devices/dev-0-00000002/resume "$K0"

# tags
expect_api 403 "read-only cannot tag" PUT /projects/bench-0/devices/dev-0-00000001/tags/floor "$K0_RO" '{"value":"3"}'
expect_api 200 "set a tag" PUT /projects/bench-0/devices/dev-0-00000001/tags/floor "$K0" '{"value":"3"}'
jq -e '.tags.floor == "3"' "$T/r.body" >/dev/null || fail "tag set: $(cat "$T/r.body")"
expect_api 400 "a tag value of the wrong type" PUT /projects/bench-0/devices/dev-0-00000001/tags/floor "$K0" '{"value":3}'
expect_api 400 "a bad tag value" PUT /projects/bench-0/devices/dev-0-00000001/tags/floor "$K0" "{\"value\":\"$(head -c 200 /dev/zero | tr '\0' 'v')\"}"
expect_api 200 "delete a tag" DELETE /projects/bench-0/devices/dev-0-00000001/tags/floor "$K0"
jq -e '.tags | has("floor") | not' "$T/r.body" >/dev/null || fail "tag delete"
# at most 32 tags a device (it has site and model): a 33rd key is 409,
# a new value of a key it has is not
for i in $(seq 1 30); do
    api PUT "/projects/bench-0/devices/dev-0-00000007/tags/t$i" "$K0" '{"value":"x"}' >/dev/null
    [ "$(cat "$T/r.code")" = 200 ] || fail "tag t$i: $(cat "$T/r.body")"
done
expect_api 409 "a 33rd tag" PUT /projects/bench-0/devices/dev-0-00000007/tags/t31 "$K0" '{"value":"x"}'
[ "$(problem_type)" = bad-state ] || fail "a 33rd tag: $(cat "$T/r.body")"
expect_api 200 "a new value at 32 tags" PUT /projects/bench-0/devices/dev-0-00000007/tags/t30 "$K0" '{"value":"y"}'
[ "$(jq '.tags | length' "$T/r.body")" = 32 ] || fail "tags at the bound: $(cat "$T/r.body")"
expect_api 200 "a device's certificates" GET /projects/bench-0/devices/dev-0-00000001/certificates "$K0"
jq -e '.items == []' "$T/r.body" >/dev/null || fail "certificates of a bulk-loaded device"

# the audit log names the key for every change
expect_api 200 "audit" GET "/projects/bench-0/audit?limit=1000" "$K0"
for a in device.suspend device.resume device.decommission device.tag; do
    jq -e --arg a "$a" --arg k "api:$K0_ID" 'any(.items[]; .action == $a and .actor == $k)' \
        "$T/r.body" >/dev/null || fail "no $a by api:$K0_ID"
done
pass "device changes are audited with the key"
expect_api 200 "audit of one device" GET "/projects/bench-0/audit?device=dev-0-00000002" "$K0"
[ "$(jq -r '[.items[] | .action + " " + .object] | join(",")' "$T/r.body")" = "device.decommission dev-0-00000002" ] ||
    fail "audit ?device=: $(cat "$T/r.body")"
expect_api 200 "bench-1 untouched" GET /projects/bench-1/devices/dev-1-00000001 "$K1"
jq -e '.state == "active"' "$T/r.body" >/dev/null || fail "bench-1 device changed"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain"
fp_serve_stop
echo "all device API tests passed"
