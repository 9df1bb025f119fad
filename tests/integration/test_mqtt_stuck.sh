#!/usr/bin/env bash
# Mosquitto plugin (issue 11) when the store stops answering without
# failing: a call that never returns must not leave the plugin silently
# stuck.  Here another PostgreSQL session holds an ACCESS EXCLUSIVE lock,
# so the plugin's queries wait for ever (as they would on a server that
# hangs; libpq has no query timeout).  The broker says so in one line
# once a store step has waited plugin_opt_stale_ms, naming the thread and
# the step: the poller before its first load (the cache never loads) and
# after it (fail_closed refuses new connections meanwhile), and the
# registration writer; it says again when the store answers, and devices
# are admitted again.
#
# PostgreSQL only: a SQLite store does not hang (a lock is SQLITE_BUSY
# after its busy timeout, which the plugin reports as unavailable;
# test_mqtt_store.sh), so the SQLite copy of this test skips.
. "$(dirname "$0")/lib.sh"
if [ "${FP_TEST_STORE:-sqlite}" != pg ]; then
    echo "skip: needs a PostgreSQL store (a lock held by another session); its integration_pg_ copy runs it"
    exit 77
fi
. "$(dirname "$0")/mqtt_lib.sh"

CA=$T/ca
fp_new_ca "$CA" >/dev/null
mq_issue dev1 dev-1
mq_issue dev2 dev-2
mq_cafile
DB=$(sed -n 's/^url = .*dbname=\([^ ]*\).*/\1/p' "$CA/fleetpki.conf")
[ -n "$DB" ] || fail "no PostgreSQL database in $CA/fleetpki.conf"

# lock_hold TABLE: a background session takes TABLE in ACCESS EXCLUSIVE
# mode and keeps it; returns once the lock is granted.
LOCK_PID=
lock_hold() {
    PGAPPNAME=fp_test_lock PG_DB=$DB pg_psql \
        -c "BEGIN; LOCK TABLE $1 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600)" >/dev/null 2>&1 &
    LOCK_PID=$!
    fp_track "$LOCK_PID"
    for _ in $(seq 1 600); do
        [ "$(PG_DB=$DB pg_psql -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid =
            l.relation WHERE c.relname = '$1' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] &&
            return 0
        sleep 0.1
    done
    fail "the lock on $1 was never granted"
}
# lock_release: end that session (its transaction rolls back).
lock_release() {
    PG_DB=$DB pg_psql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE application_name = 'fp_test_lock'" >/dev/null
    wait "$LOCK_PID" 2>/dev/null || true
}

# ---- stuck before the first load: the cache cannot load ----
lock_hold fleetpki_schema # the first thing a store open reads
mq_start "plugin_opt_stale_ms 500"
mq_wait_log "fleetpki: store not answering: the poller has waited [0-9]+ ms on connecting to the store \(cache not loaded yet\); refusing new connections \(fail_closed true\)"
grep -q "fleetpki: cache loaded" "$T/mosquitto.log" && fail "cache loaded while the store was locked"
mq_pub dev1 dev-1/pub devices/dev-1/x 1 && fail "admitted without a cache (fail_closed)"
grep -qi "not authori[sz]ed" "$T/pub.out" || { cat "$T/pub.out" >&2; fail "refusal is not 'not authorised'"; }
pass "a store that hangs before the first load: one clear line, connections refused"
lock_release
mq_wait_log "fleetpki: cache loaded"
mq_wait_log "fleetpki: store answering again: the poller is done after [0-9]+ ms \(stuck on connecting to the store\)"
mq_pub dev1 dev-1/pub devices/dev-1/x 1 || { cat "$T/pub.out" >&2; fail "refused once the store answered"; }
pass "the store answering again is said; the cache loads and devices are admitted"

# ---- stuck while polling the change log ----
lock_hold cert_status_log
mq_wait_log "fleetpki: store not answering: the poller has waited [0-9]+ ms on reading the status-change log; refusing new connections \(fail_closed true\)"
mq_pub dev1 dev-1/pub devices/dev-1/x 1 && fail "admitted while the store hangs (fail_closed)"
grep -q "refused client_id=dev-1/pub .*store is unavailable (fail_closed)" "$T/mosquitto.log" ||
    fail "no refusal line naming the store"
lock_release
mq_wait_log "fleetpki: store answering again: the poller is done after [0-9]+ ms \(stuck on reading the status-change log\)"
mq_pub dev1 dev-1/pub devices/dev-1/x 1 || { cat "$T/pub.out" >&2; fail "refused once the store answered again"; }
pass "a store that hangs while polled: one clear line, refused, admitted again when it answers"

# ---- the registration writer stuck ----
lock_hold devices
mq_pub dev2 dev-2/pub devices/dev-2/x 1 || { cat "$T/pub.out" >&2; fail "a new device refused (the cache decides)"; }
mq_wait_log "fleetpki: store not answering: the registration writer has waited [0-9]+ ms on registering a device"
lock_release
mq_wait_log "fleetpki: store answering again: the registration writer is done after [0-9]+ ms \(stuck on registering a device\)"
fp device show --project default dev-2 --dir "$CA" >/dev/null 2>&1 || fail "dev-2 not registered once the store answered"
pass "a registration writer stuck on the store is said, and registers once it answers"
mq_stop
echo "all mqtt stuck-store checks passed"
