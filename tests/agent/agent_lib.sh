# agent_lib.sh - helpers for tests/integration/test_agent_*.sh (source after
# lib.sh and est_lib.sh).
#
# AGENTS: every fleetpki-agent built (the default backend's, and
#   fleetpki-agent-<backend> for the other one); the test skips (77)
#   without any.
# agent_conf FILE LINES...: writes a config, one argument per line.
# agent_start CONF LOG: the agent as a service in the background (tracked,
#   stopped at exit); sets AGENT_PID.  agent_stop: SIGTERM, must exit 0.
# wait_log LOG REGEX N [SECONDS]: waits until LOG has N lines matching
#   (default 120 s, generous for sanitizer builds); fails on timeout.
# agent_port: a free loopback port BELOW the kernel's ephemeral range, for a
#   server that stops and comes back on the same address: a port picked by
#   binding port 0 lies in the ephemeral range, where another process's
#   outgoing connection or port-0 listener (the machine is shared) can take
#   it while our server is down.
# serve_on PORT: `fleetpki serve` on the CA in $CA with its https
#   listener on the given port (a restarted server keeps its address).
# cur_cert DIR OUT: the credential store's current certificate (the
#   highest generation) as PEM in OUT.

AGENTS=""
for a in "${FP_BUILD_DIR:-/nonexistent}"/src/agent/fleetpki-agent "${FP_BUILD_DIR:-/nonexistent}"/src/agent/fleetpki-agent-*; do
    [ -x "$a" ] && AGENTS="$AGENTS $a"
done
[ -n "$AGENTS" ] || { echo "skip: no fleetpki-agent in \$FP_BUILD_DIR/src/agent"; exit 77; }
# the default build and fleetpki-agent-<same backend> are the same code
agent_backend() { "$1" --version | sed 's/.*(\(.*\))/\1/'; }
_seen=""
_list=""
for a in $AGENTS; do
    b=$(agent_backend "$a")
    case " $_seen " in *" $b "*) continue ;; esac
    _seen="$_seen $b"
    _list="$_list $a"
done
AGENTS=$_list

agent_conf() {
    local f=$1
    shift
    printf '%s\n' "$@" >"$f"
}

agent_start() {
    "$AGENT" --config "$1" 2>>"$2" &
    AGENT_PID=$!
    fp_track "$AGENT_PID"
}

agent_stop() {
    local rc=0
    kill -TERM "$AGENT_PID"
    wait "$AGENT_PID" || rc=$?
    [ "$rc" = 0 ] || fail "agent exited with $rc after SIGTERM"
}

wait_log() {
    local log=$1 re=$2 n=$3 secs=${4:-120} i
    for i in $(seq 1 $((secs * 10))); do
        [ "$(grep -cE "$re" "$log" 2>/dev/null || true)" -ge "$n" ] && return 0
        sleep 0.1
    done
    cat "$log" >&2
    fail "timeout waiting for $n lines matching '$re' in $log"
}

agent_port() {
    python3 - <<'PY'
import random, socket
lo = int(open('/proc/sys/net/ipv4/ip_local_port_range').read().split()[0])
for _ in range(1000):
    p = random.randrange(10000, max(lo, 10001))
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    raise SystemExit('no free port below the ephemeral range')
PY
}

serve_on() {
    rm -f "$T/addr"
    "$FLEETPKI" serve --dir "$CA" --https "127.0.0.1:$1" --http 127.0.0.1:0 \
        --threads 2 --addr-file "$T/addr" 2>>"$T/server.log" &
    SRV_PID=$!
    fp_track "$SRV_PID"
    for _ in $(seq 1 300); do
        [ -s "$T/addr" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || { tail -5 "$T/server.log" >&2; fail "server did not start on port $1"; }
        sleep 0.1
    done
    [ -s "$T/addr" ] || fail "server did not report its address"
    HTTPS=$(sed -n 's/^https=//p' "$T/addr")
}

cur_cert() {
    local best="" g bestg=-1 f pem try
    # The agent may confirm a renewal while this reads: confirm unlinks
    # the old slot (src/device/credstore.c), so a slot seen a moment ago
    # can be gone.  Each slot is read once (its text, not its name, is
    # kept), a vanished one is skipped, and the whole read is retried a
    # few times; under set -e a failed read used to end the test
    # ("sed: can't read .../cred1.crt", a flaky test_agent_renew).
    for try in 1 2 3 4 5; do
        best="" bestg=-1
        for f in "$1"/cred0.crt "$1"/cred1.crt; do
            pem=$(cat "$f" 2>/dev/null) || continue
            g=$(printf '%s\n' "$pem" | sed -n '1s/.*gen=\([0-9]*\).*/\1/p')
            [ -n "$g" ] && [ "$g" -gt "$bestg" ] && { bestg=$g; best=$pem; }
        done
        if [ -n "$best" ] && printf '%s\n' "$best" | openssl x509 -out "$2" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}
