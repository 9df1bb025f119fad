#!/usr/bin/env bash
# bench/run-mqtt.sh - the Mosquitto plugin (issue 11): MQTT connections per
# second without and with fleetpki_mosquitto.so, and revoke-to-disconnect
# times.
#
# One fresh CA and MQTT_DEVICES device identities (`fleetpki factory
# mint`), one stock mosquitto 2.0 configured the same way twice (TLS,
# require_certificate, the same cafile and server key): without the plugin
# (allow_anonymous) and with it (plugin_opt_data_dir, defaults).  Then:
#   connections   bench/mqtt_load conn, MQTT_THREADS clients for
#                 MQTT_SECONDS: new TCP + full TLS handshake with a client
#                 certificate + CONNECT + PUBLISH QoS 1 (PUBACK awaited) +
#                 DISCONNECT, as a random one of the devices; rounds
#                 alternate without / with (MQTT_ROUNDS each).  Also the
#                 broker's own CPU time per connection (its /proc stat),
#                 which does not depend on the client sharing the machine.
#   revocations   bench/mqtt_revoke.py: MQTT_REVOKES devices connected and
#                 idle; `fleetpki revoke` of one at a time, and the time
#                 until the broker closes its connection (p50/p99/max).
# Beside them, the same run's `openssl speed` for the key type of the
# handshake (ECDSA P-256 sign/verify, ECDH P-256).
#
#   bench/run-mqtt.sh
#   MQTT_REVOKES=200 MQTT_SECONDS=5 bench/run-mqtt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${MQTT_DEVICES:-1000}
REVOKES=${MQTT_REVOKES:-1000}
THREADS=${MQTT_THREADS:-4}
SECS=${MQTT_SECONDS:-10}
ROUNDS=${MQTT_ROUNDS:-2}
MQTT_LOAD=$BUILD_DIR/bench/mqtt_load
PLUGIN=$BUILD_DIR/src/mqtt/fleetpki_mosquitto.so
for b in "$MQTT_LOAD" "$PLUGIN"; do
    [ -e "$b" ] || { echo "bench: $b not built" >&2; exit 1; }
done
command -v mosquitto >/dev/null || { echo "bench: mosquitto not installed" >&2; exit 1; }
[ "$REVOKES" -le "$N" ] || REVOKES=$N
ulimit -n 8192

CA=$W/ca
"$FLEETPKI" init --dir "$CA" --name "Bench MQTT" >/dev/null
"$FLEETPKI" factory mint --dir "$CA" --project default --count "$N" --start 0 \
    --name 'dev-%d' --out "$W/devs" >/dev/null
cat "$CA/root.crt" "$CA/issuing.crt" >"$W/broker-ca.pem"

# broker_conf NAME PORT [EXTRA LINES...]
broker_conf() {
    local name=$1 port=$2
    shift 2
    {
        echo "per_listener_settings false"
        echo "listener $port 127.0.0.1"
        echo "cafile $W/broker-ca.pem"
        echo "certfile $CA/tls.crt"
        echo "keyfile $CA/tls.key"
        echo "require_certificate true"
        echo "user $(id -un)"
        echo "log_dest file $W/$name.log"
        echo "log_type error"
        echo "log_type warning"
        echo "log_type notice"
        echo "connection_messages false"
        echo "set_tcp_nodelay true"
        printf '%s\n' "$@"
    } >"$W/$name.conf"
}
PORT=$(free_port)
broker_conf plain "$PORT" "allow_anonymous true"
broker_conf plugin "$PORT" "plugin $PLUGIN" "plugin_opt_data_dir $CA"

BROKER_PID=
start_broker() {
    mosquitto -c "$W/$1.conf" 2>>"$W/$1.err" &
    BROKER_PID=$!
    BENCH_PIDS+=("$BROKER_PID")
    wait_port "$PORT" 20 || { cat "$W/$1.err" "$W/$1.log" >&2; exit 1; }
    if [ "$1" = plugin ]; then
        for _ in $(seq 1 100); do grep -q "cache loaded" "$W/plugin.log" && break; sleep 0.1; done
    fi
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -A RATE CPU
run_round() { # run_round NAME ROUND
    local out t0 t1 conns
    start_broker "$1"
    "$MQTT_LOAD" conn --port "$PORT" --cafile "$CA/root.crt" --certs "$W/devs" --devices "$N" \
        --threads "$THREADS" --each >/dev/null # warm-up: every device once (registered)
    sleep 1
    wait_quiet
    t0=$(cpu_ticks "$BROKER_PID")
    out=$("$MQTT_LOAD" conn --port "$PORT" --cafile "$CA/root.crt" --certs "$W/devs" \
        --devices "$N" --threads "$THREADS" --seconds "$SECS")
    t1=$(cpu_ticks "$BROKER_PID")
    conns=$(result_field "$out" conns)
    RATE[$1.$2]=$(result_field "$out" rate)
    CPU[$1.$2]=$(awk -v d=$((t1 - t0)) -v c="$conns" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.0f", (c > 0 ? d / hz * 1e6 / c : 0) }')
    log "$1 round $2: $out broker_cpu_us_per_conn=${CPU[$1.$2]}"
    [ "$(result_field "$out" failures)" = 0 ] || log "WARNING: $1 round $2 had failures"
    stop_pid "$BROKER_PID"
}
for r in $(seq 1 "$ROUNDS"); do
    run_round plain "$r"
    run_round plugin "$r"
done
mean() { # mean rate|cpu plain|plugin
    local r v sum=0
    for r in $(seq 1 "$ROUNDS"); do
        if [ "$1" = rate ]; then v=${RATE[$2.$r]}; else v=${CPU[$2.$r]}; fi
        sum=$(awk -v a="$sum" -v b="$v" 'BEGIN { print a + b }')
    done
    awk -v s="$sum" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }'
}
PLAIN_RATE=$(mean rate plain)
PLUGIN_RATE=$(mean rate plugin)
PLAIN_CPU=$(mean cpu plain)
PLUGIN_CPU=$(mean cpu plugin)
RATIO=$(awk -v a="$PLUGIN_RATE" -v b="$PLAIN_RATE" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')
CPU_RATIO=$(awk -v a="$PLAIN_CPU" -v b="$PLUGIN_CPU" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')

# ---- revoke to disconnect ----
start_broker plugin
wait_quiet
REV=$(python3 "$BENCH_DIR/mqtt_revoke.py" "$FLEETPKI" "$CA" "$W/devs/manifest.csv" "$REVOKES" -- \
    "$MQTT_LOAD" hold --port "$PORT" --cafile "$CA/root.crt" --certs "$W/devs" \
    --devices "$REVOKES" --seconds 1800 | grep '^RESULT')
log "revocations: $REV"
stop_pid "$BROKER_PID"

speed_p256
ECDH=$(openssl speed -seconds 3 ecdhp256 2>/dev/null | awk '/nistp256/ {print $NF}' | tail -1)
log "openssl speed ecdhp256 (1 core): ${ECDH}/s"
f() { result_field "$REV" "$1"; }

mkdir -p "$RESULTS_DIR"
{
    echo "### Mosquitto plugin ($N devices, $THREADS client threads, ${SECS}s x $ROUNDS rounds each)"
    echo
    machine_md
    echo "- $(mosquitto -h 2>/dev/null | head -1)"
    echo "- crypto limit (openssl speed, 1 core): ECDSA P-256 sign ${SPEED_SIGN}/s, verify ${SPEED_VERIFY}/s, ECDH P-256 ${ECDH}/s"
    echo "- connections/s (TLS client cert + CONNECT + PUBLISH QoS 1 + DISCONNECT): without plugin ${PLAIN_RATE}, with plugin ${PLUGIN_RATE}: ${RATIO}% (target >= 90%)"
    for r in $(seq 1 "$ROUNDS"); do
        echo "  - round $r: without ${RATE[plain.$r]}/s (${CPU[plain.$r]} us broker CPU each), with ${RATE[plugin.$r]}/s (${CPU[plugin.$r]} us)"
    done
    echo "- broker CPU per connection: without ${PLAIN_CPU} us, with ${PLUGIN_CPU} us (without/with = ${CPU_RATIO}%)"
    echo "- revoke to disconnect over $(f revocations) revocations (one at a time, \`fleetpki revoke\` process start to the client seeing its connection closed): p50 $(f p50_ms) ms, p99 $(f p99_ms) ms, max $(f max_ms) ms; over 1 s: $(f over_1s)"
    echo "  - from the revocation committed (the CLI returned): p50 $(f commit_p50_ms) ms, p99 $(f commit_p99_ms) ms, max $(f commit_max_ms) ms; the CLI itself: p50 $(f cli_p50_ms) ms"
    echo
} | tee "$RESULTS_DIR/mqtt.md"
