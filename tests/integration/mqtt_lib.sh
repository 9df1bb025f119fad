# mqtt_lib.sh - helpers for the Mosquitto plugin tests (source after
# lib.sh): a real `mosquitto` with TLS, client certificates and
# fleetpki_mosquitto.so on a free loopback port, driven by mosquitto_pub
# and mosquitto_sub with certificates that `fleetpki issue` made.
#
# Skips (77) when the broker, its clients or the plugin are missing.

for tool in mosquitto mosquitto_pub mosquitto_sub; do
    command -v "$tool" >/dev/null || { echo "skip: $tool not installed (apt-get install mosquitto mosquitto-clients)"; exit 77; }
done
PLUGIN=${FP_BUILD_DIR:-}/src/mqtt/fleetpki_mosquitto.so
[ -f "$PLUGIN" ] || { echo "skip: $PLUGIN not built (mosquitto-dev and libmosquitto-dev headers missing?)"; exit 77; }

# A sanitizer build of the plugin needs the sanitizer runtimes loaded
# first into the (uninstrumented) broker, and then
# fleetpki_asan_initfirst.so, which starts ASan before any other
# library's constructor: started later, from inside glibc's
# bindtextdomain() in libgpg-error's constructor, ASan leaves gettext's
# lock broken and libpq's first connection hangs for ever (issue 11,
# src/mqtt/asan_initfirst.c).
MQ_PRELOAD=
# (nm's output is read whole: grep -q would stop early and pipefail
# would count nm's SIGPIPE as a failure)
if nm -D --undefined-only "$PLUGIN" | grep -c '__asan_\|__ubsan_' >/dev/null; then
    for lib in libasan.so libubsan.so; do
        p=$(gcc -print-file-name="$lib" 2>/dev/null || true)
        [ -f "$p" ] || { echo "skip: sanitizer plugin build but no $lib to preload into mosquitto"; exit 77; }
        MQ_PRELOAD="$MQ_PRELOAD${MQ_PRELOAD:+:}$p"
    done
    p=$FP_BUILD_DIR/src/mqtt/fleetpki_asan_initfirst.so
    [ -f "$p" ] || { echo "skip: sanitizer plugin build but $p not built"; exit 77; }
    MQ_PRELOAD="$MQ_PRELOAD:$p"
fi

MQ_PID=
# mq_start [EXTRA-CONFIG-LINES...]: broker on $MQ_PORT with the plugin
# (plugin_opt_data_dir $CA unless an extra line names the store), config
# in $T/mosquitto.conf, log in $T/mosquitto.log.  The broker's cafile is
# $MQ_CAFILE (default: every CA certificate of $CA).
mq_start() {
    MQ_PORT=$(fp_free_port)
    {
        echo "per_listener_settings false"
        echo "listener $MQ_PORT 127.0.0.1"
        echo "cafile ${MQ_CAFILE:-$T/broker-ca.pem}"
        echo "certfile $T/broker-tls.crt"
        echo "keyfile $T/broker-tls.key"
        echo "require_certificate true"
        # tests run as root here; mosquitto would switch to 'mosquitto'
        # and lose access to the temp dir
        echo "user $(id -un)"
        echo "log_dest stderr"
        echo "log_type all"
        echo "plugin $PLUGIN"
        local has_store=0 line
        for line in "$@"; do
            case $line in plugin_opt_data_dir* | plugin_opt_store*) has_store=1 ;; esac
        done
        [ "$has_store" = 1 ] || echo "plugin_opt_data_dir $CA"
        for line in "$@"; do echo "$line"; done
    } >"$T/mosquitto.conf"
    : >"$T/mosquitto.log"
    LD_PRELOAD=$MQ_PRELOAD ASAN_OPTIONS=detect_leaks=0 \
        mosquitto -c "$T/mosquitto.conf" >>"$T/mosquitto.log" 2>&1 &
    MQ_PID=$!
    fp_track "$MQ_PID"
    for _ in $(seq 1 100); do
        grep -q "mosquitto version .* running" "$T/mosquitto.log" && break
        kill -0 "$MQ_PID" 2>/dev/null || { cat "$T/mosquitto.log" >&2; fail "mosquitto did not start"; }
        sleep 0.1
    done
    grep -q "mosquitto version .* running" "$T/mosquitto.log" || fail "mosquitto not running"
}

# mq_wait_log REGEX [N]: wait (up to 60 s: a hang guard; sanitizer builds on a
# loaded machine are slow) until the broker log has a line
# matching REGEX (N-th occurrence, default 1).
mq_wait_log() {
    local n=${2:-1}
    for _ in $(seq 1 600); do
        [ "$(grep -cE "$1" "$T/mosquitto.log" || true)" -ge "$n" ] && return 0
        sleep 0.1
    done
    cat "$T/mosquitto.log" >&2
    fail "broker log never showed: $1"
}

# mq_stop: stop the broker; a sanitizer report in its log fails the test.
mq_stop() {
    [ -n "$MQ_PID" ] || return 0
    kill -TERM "$MQ_PID" 2>/dev/null || true
    wait "$MQ_PID" 2>/dev/null || true
    MQ_PID=
    if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$T/mosquitto.log"; then
        cat "$T/mosquitto.log" >&2
        fail "sanitizer report in the broker log"
    fi
}

# mq_issue NAME CN [PROJECT]: $T/NAME.key, $T/NAME.crt, $T/NAME.serial
mq_issue() {
    fp_csr "$1" "/CN=$2"
    fp issue --dir "$CA" --csr "$T/$1.csr" --profile device --project "${3:-default}" \
        --out "$T/$1.crt" >/dev/null || fail "issue $1"
    openssl x509 -in "$T/$1.crt" -noout -serial | cut -d= -f2 >"$T/$1.serial"
}

# The broker trusts every CA certificate of the data directory (root,
# issuing CAs of every project); its TLS key and certificate and the
# clients' root are copies, so the data directory can go away.
mq_cafile() {
    cp "$CA/tls.crt" "$T/broker-tls.crt"
    cp "$CA/tls.key" "$T/broker-tls.key"
    cp "$CA/root.crt" "$T/root.crt"
    cat "$CA/root.crt" "$CA/issuing.crt" >"$T/broker-ca.pem"
    local f
    for f in "$CA"/ca/*/ca.crt; do [ -f "$f" ] && cat "$f" >>"$T/broker-ca.pem"; done
    return 0
}

# mq_pub NAME CLIENT-ID TOPIC [MSG]: MQTT 5 publish, QoS 1, as device NAME;
# exit status of mosquitto_pub, output in $T/pub.out (a refused publish
# prints "Not authorized").
mq_pub() {
    timeout 20 mosquitto_pub -h 127.0.0.1 -p "$MQ_PORT" -V 5 -q 1 --cafile "$T/root.crt" \
        --cert "$T/$1.crt" --key "$T/$1.key" -i "$2" -t "$3" -m "${4:-hello}" >"$T/pub.out" 2>&1
}

# mq_sub_bg NAME CLIENT-ID FILTER OUT: background subscriber; its pid in
# SUB_PID, messages in OUT, "exit=N" appended to OUT when it ends.
mq_sub_bg() {
    local before
    before=$(grep -c "Sending SUBACK to $2\$" "$T/mosquitto.log" || true)
    (
        rc=0
        timeout 60 mosquitto_sub -h 127.0.0.1 -p "$MQ_PORT" -V 5 -q 1 --cafile "$T/root.crt" \
            --cert "$T/$1.crt" --key "$T/$1.key" -i "$2" -t "$3" -v >"$4" 2>"$4.err" || rc=$?
        echo "exit=$rc" >>"$4"
    ) &
    SUB_PID=$!
    fp_track "$SUB_PID"
    # subscribed once the broker logged its SUBACK
    mq_wait_log "Sending SUBACK to $2\$" "$((before + 1))"
}

# mq_wait_file_has FILE REGEX [SECONDS]: wait until FILE has a match
# (a hang guard, not a timing check).
mq_wait_file_has() {
    for _ in $(seq 1 $((${3:-20} * 10))); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
