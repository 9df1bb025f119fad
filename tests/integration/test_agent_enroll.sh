#!/usr/bin/env bash
# fleetpki-agent first boot against the real `fleetpki serve` (issue 12),
# once per TLS backend built: enrollment with a token and with a
# manufacturer certificate (label trusting its CA), the trust anchor by
# RFC 7030 4.1.1 fingerprint bootstrap, a second run that has nothing to
# do, a wrong trust anchor or fingerprint (refuses to talk: the
# single-use token is still unused afterwards), and config errors that
# name the line and the key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"
. "$(dirname "$0")/../agent/agent_lib.sh"

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$T/mfg.key" -subj "/O=Acme Factory/CN=Acme IDevID CA" -out "$T/mfg.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/idev.key" \
    -subj "/CN=acme-serial-0042" -out "$T/idev.csr" 2>/dev/null
openssl x509 -req -in "$T/idev.csr" -CA "$T/mfg.crt" -CAkey "$T/mfg.key" -CAcreateserial \
    -days 30 -out "$T/idev.crt" 2>/dev/null

est_start "[est factory]
auth = cert
trust_anchors = $T/mfg.crt"
fpr=$(openssl x509 -in "$CA/root.crt" -noout -fingerprint -sha256 | cut -d= -f2)
bad_fpr=$(openssl x509 -in "$T/mfg.crt" -noout -fingerprint -sha256 | cut -d= -f2)

for AGENT in $AGENTS; do
    B=$(agent_backend "$AGENT")
    W=$T/$B
    mkdir -p "$W"

    # ---- config errors name the line and the key ----
    agent_conf "$W/bad.conf" "server = https://$HTTPS" "cred_dir = $W/x" "renew_at = 1.5"
    expect_code 2 "[$B] renew_at out of range is a config error" "$AGENT" --config "$W/bad.conf" --once
    grep -q "bad.conf:3: key 'renew_at'" "$T/last.err" || { cat "$T/last.err" >&2; fail "message names line and key"; }
    agent_conf "$W/bad.conf" "server = https://$HTTPS" "sever = x"
    expect_code 2 "[$B] an unknown key is refused" "$AGENT" --config "$W/bad.conf" --check-config
    grep -q 'bad.conf:2: unknown key "sever"' "$T/last.err" || { cat "$T/last.err" >&2; fail "unknown key message"; }
    expect_code 2 "[$B] a missing config file" "$AGENT" --config "$W/none.conf" --once
    expect_code 2 "[$B] an unknown argument" "$AGENT" --frobnicate

    # ---- wrong trust anchor: refuses to talk, the token is not used ----
    token default --uses 1
    printf '%s:%s\n' "$TOK_ID" "$TOK_SECRET" >"$W/token"
    mkdir -p "$W/c1"
    agent_conf "$W/wrong.conf" "server = https://$HTTPS" "trust_anchor = $T/mfg.crt" "cred_dir = $W/c1" \
        "bootstrap_token_file = $W/token" "common_name = dev-$B-1"
    expect_code 3 "[$B] a server not chaining to the anchor: exit 3 (refused)" \
        "$AGENT" --config "$W/wrong.conf" --once
    grep -q 'enroll-failed error=untrusted\|cacerts-failed error=untrusted\|error=untrusted' "$T/last.err" ||
        { cat "$T/last.err" >&2; fail "the refusal is logged as untrusted"; }
    [ -z "$(ls "$W/c1")" ] || fail "a refused server left files in the credential directory"

    # ---- first enrollment with a token ----
    agent_conf "$W/tok.conf" "server = https://$HTTPS" "trust_anchor = $CA/root.crt" "cred_dir = $W/c1" \
        "bootstrap_token_file = $W/token" "common_name = dev-$B-1" "dns_name = dev-$B-1.example"
    expect_code 0 "[$B] --once enrolls with the token (unused by the refused run)" \
        "$AGENT" --config "$W/tok.conf" --once
    cp "$T/last.err" "$W/tok.log"
    grep -q ' info enrolled serial=' "$W/tok.log" || { cat "$W/tok.log" >&2; fail "enrollment logged"; }
    cur_cert "$W/c1" "$W/c1.pem" || fail "no certificate in the store"
    verify_cert "$W/c1.pem" || fail "enrolled certificate does not verify"
    openssl x509 -in "$W/c1.pem" -noout -subject | grep -q "CN *= *dev-$B-1" || fail "subject"
    openssl x509 -in "$W/c1.pem" -noout -ext subjectAltName | grep -q "DNS:dev-$B-1.example" || fail "SAN"
    serial=$(openssl x509 -in "$W/c1.pem" -noout -serial | cut -d= -f2)
    grep -q "enrolled serial=$serial " "$W/tok.log" || fail "the log names the serial"
    ! grep -q "$TOK_SECRET" "$W/tok.log" || fail "the token secret reached the log"
    pass "[$B] the stored certificate verifies, carries the names, and the log names its serial"
    expect_code 0 "[$B] a second --once has nothing to do" "$AGENT" --config "$W/tok.conf" --once
    grep -q ' next-check ' "$T/last.err" && ! grep -qE ' (enroll|renew) ' "$T/last.err" ||
        { cat "$T/last.err" >&2; fail "second run should only check"; }
    cur_cert "$W/c1" "$W/c1b.pem"
    cmp -s "$W/c1.pem" "$W/c1b.pem" || fail "the second run changed the certificate"
    pass "[$B] the second run leaves the credentials alone"

    # ---- a refused token: exit 3 ----
    mkdir -p "$W/c2"
    printf '%s:%s\n' "$TOK_ID" "wrong-secret" >"$W/badtoken"
    agent_conf "$W/badtok.conf" "server = https://$HTTPS" "trust_anchor = $CA/root.crt" "cred_dir = $W/c2" \
        "bootstrap_token_file = $W/badtoken" "common_name = dev-$B-2"
    expect_code 3 "[$B] a refused bootstrap token: exit 3" "$AGENT" --config "$W/badtok.conf" --once
    ! grep -q "wrong-secret" "$T/last.err" || fail "the token secret reached the log"

    # ---- manufacturer certificate on a label trusting its CA ----
    mkdir -p "$W/c3"
    agent_conf "$W/mfg.conf" "server = https://$HTTPS" "label = factory" "trust_anchor = $CA/root.crt" \
        "cred_dir = $W/c3" "bootstrap_cert = $T/idev.crt" "bootstrap_key = $T/idev.key" \
        "common_name = acme-serial-0042"
    expect_code 0 "[$B] --once enrolls with the manufacturer certificate" "$AGENT" --config "$W/mfg.conf" --once
    grep -q 'enroll reason=no-credentials with=manufacturer-certificate' "$T/last.err" || fail "logged"
    cur_cert "$W/c3" "$W/c3.pem" && verify_cert "$W/c3.pem" || fail "LDevID does not verify"
    pass "[$B] LDevID stored and verifying"

    # ---- trust anchor by fingerprint (RFC 7030 4.1.1) ----
    token default --uses 1
    printf '%s:%s\n' "$TOK_ID" "$TOK_SECRET" >"$W/token4"
    mkdir -p "$W/c4"
    agent_conf "$W/fpr.conf" "server = https://$HTTPS" "bootstrap_fingerprint = $bad_fpr" "cred_dir = $W/c4" \
        "bootstrap_token_file = $W/token4" "common_name = dev-$B-4"
    expect_code 3 "[$B] a wrong bootstrap fingerprint: exit 3" "$AGENT" --config "$W/fpr.conf" --once
    grep -q 'bootstrap-failed error=fingerprint' "$T/last.err" || { cat "$T/last.err" >&2; fail "logged"; }
    [ ! -e "$W/c4/anchors.pem" ] || fail "a refused bootstrap saved an anchor"
    sed -i "s/^bootstrap_fingerprint = .*/bootstrap_fingerprint = $fpr/" "$W/fpr.conf"
    expect_code 0 "[$B] the right fingerprint: anchor saved, then enrolled (token unused before)" \
        "$AGENT" --config "$W/fpr.conf" --once
    cmp -s <(openssl x509 -in "$W/c4/anchors.pem" -outform DER) <(openssl x509 -in "$CA/root.crt" -outform DER) ||
        fail "saved anchor is not the root"
    grep -q 'bootstrap-anchor-accepted' "$T/last.err" && grep -q ' enrolled ' "$T/last.err" || fail "logged"
    expect_code 0 "[$B] the next run uses the saved anchor" "$AGENT" --config "$W/fpr.conf" --once
    grep -q 'anchors-loaded from=anchors.pem' "$T/last.err" || fail "saved anchor not used"
done

est_stop
pass "clean shutdown"
