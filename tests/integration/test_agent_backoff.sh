#!/usr/bin/env bash
# fleetpki-agent with its server down, then up (issue 12: "a fleet must
# not stampede the server after an outage"), once per TLS backend built.
# From the agent's own log (one line per decision, millisecond times):
#  - the retry ceilings grow base * 2^n up to the cap, exactly;
#  - every delay lies in [0, ceiling] and the delays are jittered (not
#    the ceilings themselves, not all equal);
#  - no tight loop: one attempt per logged delay, and between the first
#    and the last attempt at least the sum of the delays elapsed (a slow
#    machine only makes that longer; nothing here depends on speed);
#  - once the server is up the agent enrolls.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/../agent/agent_lib.sh"

fp_new_ca "$CA" >/dev/null
PORT=$(agent_port)

for AGENT in $AGENTS; do
    B=$(agent_backend "$AGENT")
    W=$T/$B
    mkdir -p "$W/cred"
    fp token create --dir "$CA" --label default --uses 1 >"$W/tok.out"
    printf '%s:%s\n' "$(awk '/^id:/ {print $2}' "$W/tok.out")" "$(awk '/^secret:/ {print $2}' "$W/tok.out")" >"$W/token"
    agent_conf "$W/a.conf" "server = https://127.0.0.1:$PORT" "trust_anchor = $CA/root.crt" \
        "cred_dir = $W/cred" "bootstrap_token_file = $W/token" "common_name = backoff-$B" \
        "backoff_base = 250ms" "backoff_cap = 2s" "timeout = 10"
    LOG=$W/agent.log
    : >"$LOG"
    agent_start "$W/a.conf" "$LOG"
    N=9
    wait_log "$LOG" ' info backoff attempt=' $N
    python3 - "$LOG" $N <<'PY' || { cat "$LOG" >&2; fail "[$B] backoff schedule"; }
import re, sys, datetime
log, n = sys.argv[1], int(sys.argv[2])
def t(line):
    return datetime.datetime.strptime(line.split()[0], '%Y-%m-%dT%H:%M:%S.%fZ').timestamp()
lines = open(log).read().splitlines()
fails = [l for l in lines if ' enroll-failed ' in l]
offs = [l for l in lines if ' info backoff attempt=' in l]
assert not [l for l in lines if ' enrolled ' in l], 'enrolled with no server?'
assert all('error=io' in l or 'error=tls' in l for l in fails), 'unexpected failure kind'
ceil, delay = [], []
for l in offs[:n]:
    m = re.search(r'attempt=(\d+) ceiling_ms=(\d+) delay_ms=(\d+)', l)
    assert m, l
    ceil.append(int(m.group(2)))
    delay.append(int(m.group(3)))
want = [min(2000, 250 * 2 ** i) for i in range(n)]
assert ceil == want, 'ceilings %r, want %r' % (ceil, want)
assert all(0 <= d <= c for d, c in zip(delay, ceil)), 'delay outside [0, ceiling]: %r' % delay
assert delay != ceil, 'no jitter: every delay is its ceiling'
capped = delay[4:]
assert len(set(capped)) > 1, 'no jitter at the cap: %r' % capped
# one attempt per decision: each failure is followed by one backoff line
idx_f = [i for i, l in enumerate(lines) if ' enroll-failed ' in l]
idx_b = [i for i, l in enumerate(lines) if ' info backoff attempt=' in l]
assert len(idx_f) in (len(idx_b), len(idx_b) + 1), 'attempts %d vs delays %d' % (len(idx_f), len(idx_b))
# the waits were honoured: attempt k+1 comes at least delay k after attempt k
tf = [t(lines[i]) for i in idx_f[:n]]
for k in range(n - 1):
    gap = tf[k + 1] - tf[k]
    assert gap >= delay[k] / 1000.0 - 0.002, 'attempt %d came %.3f s after the previous, delay was %d ms' % (k + 1, gap, delay[k])
print('ceilings', ceil, 'delays', delay)
PY
    pass "[$B] server down: ceilings 250ms*2^n capped at 2s, full jitter, each wait honoured"
    serve_on "$PORT"
    wait_log "$LOG" ' info enrolled ' 1
    wait_log "$LOG" " info next-check " 1
    pass "[$B] server up: enrolled"
    agent_stop
    kill -TERM "$SRV_PID"
    wait "$SRV_PID" || fail "server exit status"
done
pass "done"
