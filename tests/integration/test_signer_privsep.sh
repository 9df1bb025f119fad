#!/usr/bin/env bash
# The separate signer process: with [server] signer = separate the
# network process never holds a CA private key - its memory
# is searched for the issuing and OCSP keys' secret bytes (the same search
# finds them in an in-process server, and in the signer process) and no key
# file is mapped or open in it; signing failures when the signer dies are
# 503s, not crashes, until its supervisor starts a new one; started as root
# with [server] user = nobody, the network side runs as nobody while the
# signer keeps the keys, also a signer started after the drop.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/est_lib.sh"

[ "$(id -u)" = 0 ] || { echo "skip: reading another process's memory needs root"; exit 77; }
python3 -c 'import cryptography' 2>/dev/null || { echo "skip: python3-cryptography missing"; exit 77; }
MEMSCAN="python3 $(dirname "$0")/memscan.py"

enroll() { # enroll NAME -> HTTP status; certificate in $T/NAME.crt on 200
    local s
    est_csr "$1" "/CN=$1"
    s=$(est_post "$EST/simpleenroll" "$T/$1.b64" -u "$TOK_ID:$TOK_SECRET")
    [ "$s" = 200 ] && p7_certs "$T/body" "$T/$1.crt"
    echo "$s"
}
ocsp_fresh() { # a fresh (nonce) OCSP answer for $1, verified
    openssl ocsp -issuer "$CA/issuing.crt" -cert "$1" -url "http://$HTTP/ocsp" \
        -CAfile "$T/chain.pem" -nonce >"$T/ocsp.out" 2>&1
}

fp_new_ca "$CA" >/dev/null
cat "$CA/root.crt" "$CA/issuing.crt" >"$T/chain.pem"
cp "$CA/fleetpki.conf" "$T/conf.orig"

# ---- control: in-process signing, the key is found in the server ----
printf '\n[server]\nsigner = inprocess\n' >>"$CA/fleetpki.conf"
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
EST="https://$HTTPS/.well-known/est"
token default --uses 10
[ "$(enroll c1)" = 200 ] || fail "in-process enrollment"
[ -z "$(pgrep -P "$SRV_PID" || true)" ] || fail "signer = inprocess started a child process"
[ "$($MEMSCAN "$SRV_PID" "$CA/issuing.key")" = found ] ||
    fail "control: the issuing key is not found in an in-process server (the search is blind)"
pass "control: the memory search finds the issuing key in an in-process server"
fp_serve_stop

# ---- separated ----
cp "$T/conf.orig" "$CA/fleetpki.conf"
printf '\n[server]\nsigner = separate\n' >>"$CA/fleetpki.conf"
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
EST="https://$HTTPS/.well-known/est"
SUP=$(pgrep -P "$SRV_PID")
[ -n "$SUP" ] && [ "$(wc -w <<<"$SUP")" = 1 ] || fail "expected one child (the supervisor), got '$SUP'"
[ "$(cat "/proc/$SUP/comm")" = fleetpki-sigsup ] || fail "the child is not the signer's supervisor"
SIGNER=$(pgrep -P "$SUP")
[ -n "$SIGNER" ] && [ "$(wc -w <<<"$SIGNER")" = 1 ] || fail "expected one signer, got '$SIGNER'"
[ "$(cat "/proc/$SIGNER/comm")" = fleetpki-signer ] || fail "the supervisor's child is not the signer"
[ "$(enroll d1)" = 200 ] || fail "enrollment through the signer"
verify_cert "$T/d1.crt" || fail "certificate signed through the signer does not verify"
ocsp_fresh "$T/d1.crt" && grep -q "Response verify OK" "$T/ocsp.out" &&
    grep -q "d1.crt: good" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "fresh OCSP through the signer"; }
pass "EST enrollment and fresh OCSP signed by the signer process verify"
for k in issuing ocsp root audit; do
    [ "$($MEMSCAN "$SRV_PID" "$CA/$k.key")" = absent ] ||
        fail "the $k key is in the network process's memory"
done
pass "issuing, OCSP, root and audit keys absent from the network process's memory"
if got=$($MEMSCAN "$SIGNER" "$CA/issuing.key" 2>/dev/null); then
    [ "$got" = found ] || fail "the issuing key is not in the signer process either (search broken?)"
    pass "... and present in the signer process's memory"
else
    echo "note: the signer's memory is not readable here (non-dumpable); not compared"
fi
grep -E '\.key$' "/proc/$SRV_PID/maps" && fail "a key file is mapped in the network process"
for fd in /proc/"$SRV_PID"/fd/*; do
    case "$(readlink "$fd" || true)" in *.key) fail "key file open in the network process: $fd";; esac
done
pass "no key file mapped or open in the network process"

# the signer dies: signatures fail as 503, the server stays up (the
# supervisor is held meanwhile, so it does not restart the signer yet)
kill -STOP "$SUP"
kill -KILL "$SIGNER"
s=$(enroll d2)
expect_status 503 "signer gone: EST enrollment answers 503" "$s"
grep -q key-unavailable "$T/body" || fail "the 503 does not name the cause"
ocsp_fresh "$T/d1.crt" || true
grep -qi "trylater" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "fresh OCSP without a signer is not tryLater"; }
kill -0 "$SRV_PID" || fail "the server died with its signer"
curl -sS -o /dev/null -w '%{http_code}' "http://$HTTP/crl/issuing.crl" >"$T/crl.status"
[ "$(cat "$T/crl.status")" = 200 ] || fail "published CRL no longer served"
pass "server up, OCSP answers tryLater (RFC 6960 2.3), published CRL still served"
kill -CONT "$SUP"
for _ in $(seq 1 600); do # hang guard
    s=$(enroll d3)
    [ "$s" = 200 ] && break
    sleep 0.1
done
[ "$s" = 200 ] || fail "no enrollment after the supervisor restarted the signer"
[ "$($MEMSCAN "$SRV_PID" "$CA/issuing.key")" = absent ] ||
    fail "the issuing key is in the network process's memory after the restart"
pass "the supervisor restarts the signer: enrollment works again, keys still out of the network process"
fp_serve_stop

# ---- OCSP signer renewed while the server runs: made by the signer ----
# a certificate that no longer matches its key (as an interrupted renewal
# leaves it) makes the server renew the delegated signer at its next check
# (every second here); the new key is in use at once and must never be in
# the network process (before GEN it was generated there and kept)
FP_OCSP_RENEW_CHECK_S=1 FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
old_serial=$(openssl x509 -in "$CA/ocsp.crt" -noout -serial)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/other.key" 2>/dev/null
install -m 600 "$T/other.key" "$CA/ocsp.key.tmp" && mv "$CA/ocsp.key.tmp" "$CA/ocsp.key"
for _ in $(seq 1 100); do
    grep -q "OCSP signer certificate renewed" "$T/server.log" && break
    sleep 0.2
done
grep -q "OCSP signer certificate renewed" "$T/server.log" || { tail -5 "$T/server.log" >&2; fail "no OCSP signer renewal while running"; }
[ "$(openssl x509 -in "$CA/ocsp.crt" -noout -serial)" != "$old_serial" ] || fail "ocsp.crt not renewed"
cmp -s <(openssl x509 -in "$CA/ocsp.crt" -noout -pubkey) <(openssl pkey -in "$CA/ocsp.key" -pubout) ||
    fail "renewed certificate does not match ocsp.key"
[ "$(stat -c %a "$CA/ocsp.key")" = 600 ] || fail "renewed ocsp.key is not mode 0600"
[ ! -e "$CA/ocsp.key.new" ] || fail "ocsp.key.new left behind"
ocsp_fresh "$T/d1.crt" && grep -q "Response verify OK" "$T/ocsp.out" &&
    grep -q "d1.crt: good" "$T/ocsp.out" || { cat "$T/ocsp.out" >&2; fail "fresh OCSP after renewal"; }
[ "$($MEMSCAN "$SRV_PID" "$CA/ocsp.key")" = absent ] ||
    fail "the renewed OCSP key is in the network process's memory"
pass "OCSP signer renewed while running: key made by the signer, absent from the network process, answers verify"
fp_serve_stop

# ---- root: the network side drops to nobody, the signer keeps the keys ----
if ! id nobody >/dev/null 2>&1; then
    echo "note: no user nobody; privilege drop not tested"
    exit 0
fi
NOBODY=$(id -u nobody)
# the store must be the network side's; the keys stay root's (0600)
chown nobody "$CA" "$CA"/fleetpki.db* "$CA"/*.crt "$CA"/audit-checkpoints.log
[ -d "$CA/ca" ] && chown -R nobody "$CA/ca"
chown root "$CA"/*.key
printf '\n[server]\nuser = nobody\n' >>"$CA/fleetpki.conf" # signer = separate from above
chmod 1777 "$T" # the address file is written after the drop
FP_HTTP_LISTEN=127.0.0.1:0 fp_serve_run
EST="https://$HTTPS/.well-known/est"
SUP=$(pgrep -P "$SRV_PID")
SIGNER=$(pgrep -P "$SUP")
read -r _ ru eu su fu < <(grep '^Uid:' "/proc/$SRV_PID/status")
[ "$ru $eu $su $fu" = "$NOBODY $NOBODY $NOBODY $NOBODY" ] ||
    fail "network side uids are '$ru $eu $su $fu', expected nobody ($NOBODY)"
read -r _ ru eu _ _ < <(grep '^Uid:' "/proc/$SIGNER/status")
[ "$ru $eu" = "0 0" ] || fail "the signer is not root ($ru $eu)"
grep -q "network side runs as nobody" "$T/server.log" || fail "drop not logged"
[ "$(enroll n1)" = 200 ] || { tail -5 "$T/server.log" >&2; fail "enrollment after the drop"; }
verify_cert "$T/n1.crt" || fail "certificate after the drop"
pass "root start: network side runs as nobody (all uids), signer as root, enrollment works"
# a signer started after the drop: by the supervisor, still root's
kill -KILL "$SIGNER"
NEW=""
for _ in $(seq 1 600); do # hang guard
    NEW=$(pgrep -P "$SUP" || true)
    [ -n "$NEW" ] && [ "$NEW" != "$SIGNER" ] && break
    sleep 0.1
done
[ -n "$NEW" ] && [ "$NEW" != "$SIGNER" ] || fail "no signer restarted after the drop"
read -r _ ru eu _ _ < <(grep '^Uid:' "/proc/$NEW/status")
[ "$ru $eu" = "0 0" ] || fail "the restarted signer is not root ($ru $eu)"
read -r _ ru eu su fu < <(grep '^Uid:' "/proc/$SRV_PID/status")
[ "$ru $eu $su $fu" = "$NOBODY $NOBODY $NOBODY $NOBODY" ] || fail "network side uids changed after the restart"
for _ in $(seq 1 600); do # hang guard
    s=$(enroll n2)
    [ "$s" = 200 ] && break
    sleep 0.1
done
[ "$s" = 200 ] || { tail -5 "$T/server.log" >&2; fail "enrollment after the restart (dropped network side)"; }
verify_cert "$T/n2.crt" || fail "certificate after the restart"
pass "restart after the drop: new signer root's (supervisor forked before the drop), network side still nobody, enrollment works"
fp_serve_stop
