#!/usr/bin/env bash
# A SIGTERM sent the moment the server announces itself (its --addr-file
# appears, as supervisors and these tests do) stops it cleanly with exit 0.
# It used to arrive before the main loop's handlers were installed and kill
# the process with the default action (exit 143): 7 of 15 tries here on
# that code; 10 tries make a miss very unlikely.
source "$(dirname "$0")/lib.sh"

CA=$(fp_new_ca)
for i in $(seq 1 10); do
    rm -f "$T/addr"
    "$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --threads 1 \
        --addr-file "$T/addr" 2>"$T/server.log" &
    pid=$!
    fp_track "$pid"
    for _ in $(seq 1 2000); do
        [ -s "$T/addr" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$T/server.log" >&2; fail "server did not start"; }
        sleep 0.005
    done
    [ -s "$T/addr" ] || fail "server did not report its address"
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || { cat "$T/server.log" >&2; fail "try $i: exit $rc after an early SIGTERM"; }
    grep -q "received SIGTERM" "$T/server.log" || fail "try $i: SIGTERM not logged"
done
pass "an early SIGTERM stops the server cleanly (10 tries)"
