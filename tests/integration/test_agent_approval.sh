#!/usr/bin/env bash
# fleetpki-agent and a label under manual approval (EST 202 + Retry-After,
# RFC 7030 4.2.3), once per TLS backend built: the agent waits what
# Retry-After says (no backoff of its own), repeats the SAME request (the
# server holds exactly one pending request for it, however many times it
# asked), and gets the certificate once an operator ran `fleetpki approve`.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/../agent/agent_lib.sh"

est_start "[est lab]
manual_approval = yes
retry_after_seconds = 1"

for AGENT in $AGENTS; do
    B=$(agent_backend "$AGENT")
    W=$T/$B
    mkdir -p "$W/cred"
    token lab --uses 5
    printf '%s:%s\n' "$TOK_ID" "$TOK_SECRET" >"$W/token"
    # a backoff far longer than the test: any wait not from Retry-After shows
    agent_conf "$W/a.conf" "server = https://$HTTPS" "label = lab" "trust_anchor = $CA/root.crt" \
        "cred_dir = $W/cred" "bootstrap_token_file = $W/token" "common_name = held-$B" \
        "backoff_base = 1h" "backoff_cap = 2h"
    LOG=$W/agent.log
    : >"$LOG"
    expect_code 1 "[$B] --once on a held request: exit 1 (retry later)" "$AGENT" --config "$W/a.conf" --once
    grep -q 'retry-after status=202 delay_ms=1000' "$T/last.err" || { cat "$T/last.err" >&2; fail "Retry-After logged"; }
    agent_start "$W/a.conf" "$LOG"
    wait_log "$LOG" 'retry-after status=202 delay_ms=1000' 3
    ! grep -q ' backoff ' "$LOG" || { cat "$LOG" >&2; fail "backoff used although the server gave Retry-After"; }
    fp pending --dir "$CA" >"$W/pending"
    # the --once run held one request (its process is gone), the service one
    [ "$(grep -c "held-$B" "$W/pending")" = 2 ] || { cat "$W/pending" "$LOG" >&2; fail "the service's retries must repeat one held request"; }
    grep -q 'repeat=pending-request' "$LOG" || fail "the repeat of the held request is not logged"
    pass "[$B] 202: waited Retry-After, repeated the same CSR (one held request for the service)"
    id=$(awk -v cn="held-$B" '$0 ~ cn {print $1}' "$W/pending" | tail -1)
    fp approve "$id" --dir "$CA" >/dev/null || fail "approve"
    wait_log "$LOG" ' info enrolled ' 1
    cur_cert "$W/cred" "$W/c.pem" && verify_cert "$W/c.pem" || fail "approved certificate"
    openssl x509 -in "$W/c.pem" -noout -subject | grep -q "held-$B" || fail "subject"
    pass "[$B] approved: the agent's next repeat got the certificate"
    agent_stop
done
est_stop
pass "clean shutdown"
