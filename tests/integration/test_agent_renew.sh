#!/usr/bin/env bash
# fleetpki-agent renewals against the real `fleetpki serve`, once per TLS
# backend built.  A one-day profile without backdating and renew_at =
# 1/10000 of the lifetime make a renewal due ~9 s after each issuance:
#  - the service renews with a new key (rekey default on), uses the new
#    pair and confirms it (the previous pair is removed);
#  - the server stops and comes back on the same address: the agent
#    backs off meanwhile and renews after the restart;
#  - the current certificate is revoked: the server refuses the
#    re-enrollment (401), the agent falls back to the bootstrap token and
#    enrolls again; the revoked pair is dropped.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/../agent/agent_lib.sh"

fp_new_ca "$CA" >/dev/null
cat >>"$CA/fleetpki.conf" <<CONF

[profile short]
validity_days = 1
backdate_seconds = 0

[est short]
profile = short
CONF
PORT=$(agent_port)
serve_on "$PORT"

stop_server() {
    kill -TERM "$SRV_PID"
    wait "$SRV_PID" || fail "server exit status after SIGTERM"
}
same_key() { [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)" ]; }
n_renewed() { grep -c ' info renewed ' "$1" || true; }

for AGENT in $AGENTS; do
    B=$(agent_backend "$AGENT")
    W=$T/$B
    mkdir -p "$W/cred"
    token short --uses 2
    printf '%s:%s\n' "$TOK_ID" "$TOK_SECRET" >"$W/token"
    agent_conf "$W/a.conf" "server = https://127.0.0.1:$PORT" "label = short" "trust_anchor = $CA/root.crt" \
        "cred_dir = $W/cred" "bootstrap_token_file = $W/token" "common_name = renew-$B" \
        "renew_at = 0.0001" "backoff_base = 500ms" "backoff_cap = 2s" "timeout = 10"
    LOG=$W/agent.log
    : >"$LOG"

    # ---- enrollment, then a renewal with a new key, confirmed ----
    agent_start "$W/a.conf" "$LOG"
    wait_log "$LOG" ' info enrolled ' 1
    cur_cert "$W/cred" "$W/first.pem" || fail "no first certificate"
    wait_log "$LOG" ' info renewed ' 1
    wait_log "$LOG" ' info confirmed ' 1
    cur_cert "$W/cred" "$W/second.pem"
    verify_cert "$W/second.pem" || fail "renewed certificate does not verify"
    ! cmp -s "$W/first.pem" "$W/second.pem" || fail "renewal kept the certificate"
    [ "$(openssl x509 -in "$W/first.pem" -noout -pubkey)" != "$(openssl x509 -in "$W/second.pem" -noout -pubkey)" ] ||
        fail "renewal kept the key (rekey is on by default)"
    [ "$(openssl x509 -in "$W/first.pem" -noout -subject)" = "$(openssl x509 -in "$W/second.pem" -noout -subject)" ] ||
        fail "renewal changed the subject"
    grep -q ' info renew rekey=yes' "$LOG" || fail "renew decision not logged"
    pass "[$B] renewed at renew_at with a new key, same subject; confirmed"

    # ---- server restart: backoff while down, renewal after ----
    stop_server
    before=$(n_renewed "$LOG")
    fails=$(grep -c 'renew-failed\|cacerts-failed' "$LOG" || true)
    wait_log "$LOG" 'renew-failed|cacerts-failed' $((fails + 2))
    grep -q ' info backoff attempt=' "$LOG" || fail "no backoff logged while the server is down"
    serve_on "$PORT"
    wait_log "$LOG" ' info renewed ' $((before + 1))
    cur_cert "$W/cred" "$W/third.pem"
    verify_cert "$W/third.pem" || fail "certificate after the restart"
    pass "[$B] renewal across a server restart (failures backed off meanwhile)"
    agent_stop
    grep -q ' info stop signal=15' "$LOG" || fail "stop not logged"

    # ---- revoked: re-enrollment refused, fallback to the bootstrap token ----
    cur_cert "$W/cred" "$W/revoked.pem"
    serial=$(openssl x509 -in "$W/revoked.pem" -noout -serial | cut -d= -f2)
    fp revoke --dir "$CA" "$serial" --reason keyCompromise >/dev/null || fail "revoke"
    : >"$W/once.log"
    for _ in $(seq 1 60); do
        rc=0
        "$AGENT" --config "$W/a.conf" --once 2>>"$W/once.log" || rc=$?
        grep -q 'fallback-bootstrap' "$W/once.log" && break
        [ "$rc" = 0 ] || { cat "$W/once.log" >&2; fail "--once failed before the renewal was due"; }
        sleep 1
    done
    [ "$rc" = 0 ] || { cat "$W/once.log" >&2; fail "fallback run exit $rc"; }
    grep -q 'renew-failed error=auth http=401' "$W/once.log" || { cat "$W/once.log" >&2; fail "refusal not logged"; }
    grep -q 'enroll reason=reenroll-refused with=token' "$W/once.log" || fail "fallback enrollment not logged"
    grep -q ' info enrolled ' "$W/once.log" && grep -q ' info confirmed ' "$W/once.log" ||
        { cat "$W/once.log" >&2; fail "enrolled and confirmed after the fallback"; }
    cur_cert "$W/cred" "$W/fresh.pem"
    verify_cert "$W/fresh.pem" || fail "fallback certificate"
    [ "$(openssl x509 -in "$W/fresh.pem" -noout -serial | cut -d= -f2)" != "$serial" ] || fail "still the revoked one"
    ! grep -l "$(openssl x509 -in "$W/revoked.pem" | sed -n 2p)" "$W/cred"/cred*.crt 2>/dev/null ||
        fail "the revoked pair is still in the store"
    pass "[$B] revoked: re-enrollment refused (401), fell back to the token, enrolled, revoked pair dropped"
done

stop_server
pass "clean shutdown"
