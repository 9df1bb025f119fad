#!/usr/bin/env bash
# bench/run-registry-contact.sh - device registry first contacts per second.
#
# A fresh CA, a project "fleet" with a bring-your-own root uploaded by
# `fleetpki root add`, then two bounded loadgen runs in the same run:
#   floor-newconn    new TCP + full TLS handshake with a client certificate
#                    + GET cacerts (served from memory): the handshake floor
#   device-newconn   N distinct device certificates under the uploaded root
#                    (made by loadgen before timing), each on a new TLS
#                    connection calling GET /api/v1/device once: N first
#                    contacts (chain verification, naming, one registration
#                    transaction each)
# The ratio of the two is what the issue's target (>= 80%) is about.  On a
# machine other jobs share, the two runs need not get the same CPU (the
# "other CPU" column), so two CPU-normalised ratios are printed too:
#   server: floor's server CPU per answer / first contact's
#   machine: (server + loadgen CPU per answer) floor / first contact: the
#            rate ratio when both runs saturate the same cores
# When other jobs took more than REG_MAX_OTHER_CPU cores (default 0.3) in
# either run, the rate ratio is marked unreliable.
# Afterwards the store must hold exactly N more devices of "fleet".
#
#   bench/run-registry-contact.sh
#   REG_DEVICES=100000 REG_CONCURRENCY=64 bench/run-registry-contact.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${REG_DEVICES:-20000}
CONC=${REG_CONCURRENCY:-64}
DUR=${REG_FLOOR_DURATION:-10}

est_bench_ca "$FLEETPKI" "Bench Registry"
"$FLEETPKI" project create fleet --dir "$CA" >/dev/null
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$W/mfg.key" -subj "/O=Bench Factory/CN=Bench Factory Root" -out "$W/mfg.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
"$FLEETPKI" root add --dir "$CA" --project fleet "$W/mfg.crt" >/dev/null
count_devices() { sqlite3 "$CA/fleetpki.db" "SELECT count(*) FROM devices WHERE project = 'fleet'"; }

start_server "$CA" "$W/serve.log" "$HTTPS_PORT"
log "server pid $SERVER_PID on https 127.0.0.1:$HTTPS_PORT"
us_of() { local v; v=$(result_field "$LAST_RESULT" "$1"); echo "${v:-0}"; }

run_load "floor-newconn" floor-newconn --port "$HTTPS_PORT" --cacert "$W/trust.pem" \
    --cert "$W/dev.crt" --key "$W/dev.key" --concurrency "$CONC" --duration "$DUR" --warmup 1 \
    --server-pid "$SERVER_PID"
FLOOR_RPS=$(us_of rps)
FLOOR_SRV=$(us_of srv_us); FLOOR_CLI=$(us_of cli_us); FLOOR_OTHER=$(us_of other_cpu)
before=$(count_devices)
run_load "device-newconn" device-newconn --port "$HTTPS_PORT" --cacert "$W/trust.pem" \
    --device-ca "$W/mfg.crt" --device-ca-key "$W/mfg.key" --device-count "$N" \
    --concurrency "$CONC" --duration 600 --server-pid "$SERVER_PID"
DEV_RPS=$(us_of rps)
DEV_OK=$(us_of ok)
DEV_SRV=$(us_of srv_us); DEV_CLI=$(us_of cli_us); DEV_OTHER=$(us_of other_cpu)
stop_pid "$SERVER_PID"
after=$(count_devices)
made=$((after - before))
RATIO=$(awk -v a="$DEV_RPS" -v b="$FLOOR_RPS" 'BEGIN { if (b > 0) printf "%.0f", 100 * a / b; else print "n/a" }')
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", 100 * a / b; else print "n/a" }'; }
SRV_RATIO=$(ratio_of "$FLOOR_SRV" "$DEV_SRV")
MACH_RATIO=$(ratio_of "$((FLOOR_SRV + FLOOR_CLI))" "$((DEV_SRV + DEV_CLI))")
MAX_OTHER=${REG_MAX_OTHER_CPU:-0.3}
NOISY=$(awk -v a="$FLOOR_OTHER" -v b="$DEV_OTHER" -v m="$MAX_OTHER" 'BEGIN { print (a > m || b > m) ? 1 : 0 }')
check="yes ($made devices registered for $DEV_OK answered first contacts)"
[ "$made" -ge "$DEV_OK" ] || check="NO: $made devices registered for $DEV_OK answered"

mkdir -p "$RESULTS_DIR"
{
    echo "### Registry first contacts ($N devices, $CONC clients, new TLS connection each)"
    echo
    machine_md
    echo "- first contacts: ${DEV_RPS}/s; TLS-handshake floor (same run): ${FLOOR_RPS}/s; ratio ${RATIO}% (target >= 80%)$([ "$NOISY" = 1 ] && echo "; UNRELIABLE: other jobs took ${FLOOR_OTHER} / ${DEV_OTHER} cores during the two runs")"
    echo "- CPU-normalised: server CPU per answer ${FLOOR_SRV} us (floor) / ${DEV_SRV} us (first contact) = ${SRV_RATIO}%; server + loadgen = ${MACH_RATIO}%"
    echo "- registrations check: $check"
    echo
    echo "$ROWS_HEADER"
    printf '%s\n' "${ROWS[@]}"
} >"$RESULTS_DIR/registry-contact.md"
cat "$RESULTS_DIR/registry-contact.md"
