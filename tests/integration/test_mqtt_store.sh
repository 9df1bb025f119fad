#!/usr/bin/env bash
# Mosquitto plugin (issue 11) when the fleetpki store is unavailable: the
# broker starts and keeps running, the plugin says so in one clear log
# line, and by default (fail_closed true) refuses new connections; the
# store coming back is noticed and devices are admitted again; a store
# that goes away while the broker runs is noticed too.  With fail_closed
# false the plugin decides from what it has: a device it knows to be
# revoked stays refused, others are admitted.  The plugin never creates a
# store where the real one is missing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mqtt_lib.sh"

CA=$T/ca
fp_new_ca "$CA" >/dev/null
mq_issue dev1 dev-1
mq_issue dev2 dev-2
mq_cafile

alive() { kill -0 "$MQ_PID" 2>/dev/null || { cat "$T/mosquitto.log" >&2; fail "the broker died"; }; }

# ---- unavailable at start ----
mv "$CA" "$CA.away"
mq_start
mq_wait_log "fleetpki: store unavailable .*refusing new connections \(fail_closed true\)"
mq_pub dev1 dev-1/pub devices/dev-1/x 1 && fail "admitted without a store (fail_closed)"
grep -qi "not authori[sz]ed" "$T/pub.out" || { cat "$T/pub.out" >&2; fail "refusal is not 'not authorised'"; }
grep -q "refused client_id=dev-1/pub .*store is unavailable (fail_closed)" "$T/mosquitto.log" ||
    fail "no refusal line naming the store"
alive
[ -e "$CA/fleetpki.db" ] && fail "the plugin created a store where the real one is missing"
pass "store missing at start: the broker runs, logs it, refuses (fail-closed)"

# ---- back ----
mv "$CA.away" "$CA"
mq_wait_log "fleetpki: cache loaded"
mq_wait_log "fleetpki: store available again"
mq_pub dev1 dev-1/pub devices/dev-1/x 1 || { cat "$T/pub.out" >&2; fail "refused after the store came back"; }
pass "the store coming back is noticed: devices are admitted"

# ---- away while running ----
mv "$CA" "$CA.away"
mq_wait_log "fleetpki: store unavailable" 2
mq_pub dev1 dev-1/pub devices/dev-1/x 1 && fail "admitted after the store went away"
alive
mv "$CA.away" "$CA"
mq_wait_log "fleetpki: store available again" 2
mq_pub dev1 dev-1/pub devices/dev-1/x 1 || fail "refused after the store came back again"
pass "a store that goes away while the broker runs: refused, then admitted when back"
mq_stop

# ---- fail_closed false: the cache decides ----
fp revoke "$(cat "$T/dev2.serial")" --dir "$CA" --reason keyCompromise >/dev/null || fail "revoke"
mq_start "plugin_opt_fail_closed false"
mq_wait_log "fleetpki: cache loaded"
mv "$CA" "$CA.away"
mq_wait_log "fleetpki: store unavailable .*deciding from the last cache \(fail_closed false\)"
mq_pub dev1 dev-1/pub devices/dev-1/x 1 || fail "fail-open: a known good device refused"
mq_pub dev2 dev-2/pub devices/dev-2/x 1 && fail "fail-open: a device known to be revoked admitted"
alive
mv "$CA.away" "$CA"
pass "fail_closed false: admitted from the cache, known revocations still refused"
mq_stop

# ---- a bad option stops the broker at start, with the option named ----
mq_port=$(fp_free_port)
printf 'listener %s 127.0.0.1\nplugin %s\nplugin_opt_data_dir %s\nplugin_opt_fail_closd false\n' \
    "$mq_port" "$PLUGIN" "$CA" >"$T/bad.conf"
rc=0
LD_PRELOAD=$MQ_PRELOAD ASAN_OPTIONS=detect_leaks=0 timeout 20 mosquitto -c "$T/bad.conf" \
    >"$T/bad.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || { cat "$T/bad.log" >&2; fail "broker ran with an unknown plugin option"; }
grep -q "unknown option plugin_opt_fail_closd" "$T/bad.log" || { cat "$T/bad.log" >&2; fail "bad option not named"; }
pass "an unknown plugin_opt_ stops the broker, naming the option"
grep -qE "ERROR: AddressSanitizer|runtime error:" "$T/bad.log" && fail "sanitizer report"
echo "all mqtt store checks passed"
