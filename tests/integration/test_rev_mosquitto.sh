#!/usr/bin/env bash
# A real Mosquitto broker as the relying party: require_certificate true,
# crlfile = the CRL published by `fleetpki serve`.  A device certificate is
# accepted; after `fleetpki revoke`, a re-downloaded CRL and SIGHUP to the
# broker (it reads the CRL at start and on reload), the same device is
# refused while another device still gets through.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rev_lib.sh"

command -v mosquitto >/dev/null || PATH=$PATH:/usr/sbin
command -v mosquitto >/dev/null || fail "mosquitto not installed (scripts/install-deps.sh)"
command -v mosquitto_pub >/dev/null || fail "mosquitto_pub not installed"

rev_start
rev_issue dev1 sensor-1
rev_issue dev2 sensor-2
# the broker's own certificate comes from fleetpki too
fp_csr broker "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
fp issue --dir "$CA" --csr "$T/broker.csr" --profile server --out "$T/broker.crt" || fail "broker cert"

get_crl() {
    curl -sS -o "$T/crl.der" "http://$HTTP/crl/issuing.crl" || fail "CRL download"
    openssl crl -inform DER -in "$T/crl.der" -out "$T/crl.pem.tmp" || fail "CRL parse"
    mv "$T/crl.pem.tmp" "$T/crl.pem"
}
get_crl

PORT=$(fp_free_port)
cat >"$T/mosquitto.conf" <<CONF
per_listener_settings false
listener $PORT 127.0.0.1
cafile $CHAIN
certfile $T/broker.crt
keyfile $T/broker.key
require_certificate true
use_identity_as_username true
crlfile $T/crl.pem
allow_anonymous false
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
user root
CONF
mosquitto -c "$T/mosquitto.conf" 2>"$T/mosquitto.log" &
MQ_PID=$!
fp_track "$MQ_PID"

pub() { # pub NAME: publish once with NAME's certificate
    timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" --cafile "$CHAIN" \
        --cert "$T/$1.crt" --key "$T/$1.key" -t "fleet/$1" -m hello -q 1 >"$T/pub.out" 2>&1
}

ok=0
for _ in $(seq 1 50); do
    if pub dev1; then ok=1; break; fi
    kill -0 "$MQ_PID" 2>/dev/null || { cat "$T/mosquitto.log" >&2; fail "mosquitto exited"; }
    sleep 0.1
done
[ "$ok" = 1 ] || { cat "$T/pub.out" "$T/mosquitto.log" >&2; fail "good device refused by the broker"; }
pass "broker accepts a good device certificate (CRL loaded)"

fp revoke --dir "$CA" "$(cat "$T/dev1.serial")" --reason keyCompromise >/dev/null
# wait for the server to republish, then hand the new CRL to the broker
for _ in $(seq 1 75); do
    get_crl
    openssl crl -in "$T/crl.pem" -noout -text | grep -q "Serial Number: $(cat "$T/dev1.serial")" && break
    sleep 0.2
done
openssl crl -in "$T/crl.pem" -noout -text | grep -q "Serial Number: $(cat "$T/dev1.serial")" \
    || fail "CRL never listed the revoked device"
kill -HUP "$MQ_PID"
refused=0
for _ in $(seq 1 50); do
    if ! pub dev1; then refused=1; break; fi
    sleep 0.2
done
[ "$refused" = 1 ] || { cat "$T/mosquitto.log" >&2; fail "revoked device still accepted after CRL reload"; }
kill -0 "$MQ_PID" 2>/dev/null || fail "mosquitto died on reload"
# refused for the right reason: the broker's TLS layer saw a revoked certificate
# refused for the right reason: the broker's alert is certificate_revoked
# (RFC 5246 7.2.2).  TLS 1.2, where the client certificate is checked inside
# the handshake, so the alert is always seen (in 1.3 it may arrive after the
# client has gone)
echo | timeout 10 openssl s_client -tls1_2 -connect "127.0.0.1:$PORT" -CAfile "$CHAIN" \
    -cert "$T/dev1.crt" -key "$T/dev1.key" >"$T/sclient.out" 2>&1 || true
grep -qi "certificate revoked" "$T/sclient.out" || { cat "$T/sclient.out" "$T/mosquitto.log" >&2; fail "refusal was not a revocation"; }
pass "broker refuses the revoked device after CRL re-download + SIGHUP"

pub dev2 || { cat "$T/pub.out" "$T/mosquitto.log" >&2; fail "other device refused too"; }
pass "other device still accepted"

kill -TERM "$MQ_PID"
wait "$MQ_PID" || true
rev_stop
