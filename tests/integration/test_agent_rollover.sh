#!/usr/bin/env bash
# Root rollover decisions of fleetpki-agent (src/agent/rollover.c, driven
# by tests/agent/fpa-rollover-check) on certificates made here with
# openssl: a new root in /cacerts is accepted only when linked to the
# current anchor (RFC 7030 4.1.3, RFC 4210 4.4): re-issued with the same
# key, or with both NewWithOld and OldWithNew; otherwise the old anchor
# stays and the refusal is logged.
. "$(dirname "$0")/lib.sh"

CHK=${FP_BUILD_DIR:-/nonexistent}/tests/agent/fpa-rollover-check
[ -x "$CHK" ] || { echo "skip: no $CHK"; exit 77; }
cd "$T"
ext() { printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' >"$T/ca.ext"; }
ext
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# root NAME KEY SUBJ [days]
root() {
    openssl req -x509 -new -key "$2" -subj "$3" -days "${4:-30}" -out "$1" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
# cross OUT SUBJECT-KEY SUBJ ISSUER-CERT ISSUER-KEY: SUBJ's key certified by the issuer
cross() {
    openssl req -new -key "$2" -subj "$3" -out "$T/x.csr" 2>/dev/null
    openssl x509 -req -in "$T/x.csr" -CA "$4" -CAkey "$5" -CAcreateserial -days 30 \
        -extfile "$T/ca.ext" -out "$1" 2>/dev/null
}
key old.key; key new.key; key rogue.key
root old.pem old.key "/O=Fleet/CN=Fleet Root G1"
root new.pem new.key "/O=Fleet/CN=Fleet Root G2"
root rogue.pem rogue.key "/O=Fleet/CN=Fleet Root G2"
cross nwo.pem new.key "/O=Fleet/CN=Fleet Root G2" old.pem old.key      # NewWithOld
cross own.pem old.key "/O=Fleet/CN=Fleet Root G1" new.pem new.key      # OldWithNew
cross fake_nwo.pem new.key "/O=Fleet/CN=Fleet Root G2" rogue.pem rogue.key
root reissued.pem old.key "/O=Fleet/CN=Fleet Root G1 (2027)"
# a linked new root that expired (same key and name as new.pem); the
# openssl command line of Debian 12 cannot set past dates, Python can
python3 - <<'PY' || { echo "skip: python3-cryptography is needed"; exit 77; }
import datetime
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
key = serialization.load_pem_private_key(open('new.key', 'rb').read(), None)
name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Fleet'),
                  x509.NameAttribute(NameOID.COMMON_NAME, 'Fleet Root G2')])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2020, 1, 1)).not_valid_after(datetime.datetime(2021, 1, 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256()))
open('new_expired.pem', 'wb').write(cert.public_bytes(serialization.Encoding.PEM))
PY

# check NAME WANT FILES...: the decision over the concatenated FILES
check() {
    local name=$1 want=$2 out
    shift 2
    cat "$@" >"$T/cacerts.pem"
    out=$("$CHK" old.pem "$T/cacerts.pem" "$T/next.pem" 2>"$T/log") || { cat "$T/log" >&2; fail "$name: error"; }
    [ "$out" = "$want" ] || { cat "$T/log" >&2; fail "$name: got '$out', want '$want'"; }
    pass "$name: $want"
}

check "/cacerts with only the current root" unchanged old.pem
check "new root with NewWithOld and OldWithNew" "accepted 1" new.pem nwo.pem own.pem old.pem
grep -q 'anchor-rollover-accepted subject="/O=Fleet/CN=Fleet Root G2" link=NewWithOld+OldWithNew' "$T/log" ||
    { cat "$T/log" >&2; fail "acceptance not logged"; }
# the new anchor set: the new root, then the old one (still valid)
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/next.pem")" = 2 ] || fail "new anchor set should hold two roots"
openssl x509 -in "$T/next.pem" -noout -subject | grep -q 'Root G2' || fail "new root first"
cmp -s <(openssl x509 -in "$T/next.pem" -outform DER) <(openssl x509 -in new.pem -outform DER) || fail "not the new root"
pass "new anchor set: new root first, old root kept"
check "new root alone (not linked)" unchanged new.pem
grep -q 'anchor-rollover-refused subject="/O=Fleet/CN=Fleet Root G2".*action=keep-current' "$T/log" ||
    { cat "$T/log" >&2; fail "refusal not logged"; }
check "new root with NewWithOld only (no OldWithNew)" unchanged new.pem nwo.pem
check "new root with OldWithNew only (no NewWithOld)" unchanged new.pem own.pem
check "rogue root of the same name with its own 'NewWithOld'" unchanged rogue.pem fake_nwo.pem own.pem
check "rogue root beside a real NewWithOld/OldWithNew pair for another key" unchanged rogue.pem nwo.pem own.pem
check "the current root re-issued with the same key" "accepted 1" reissued.pem old.pem
grep -q 'link=signed-by-current' "$T/log" || fail "re-issue link not logged"
check "an expired new root, even linked" unchanged new_expired.pem nwo.pem own.pem
grep -q 'outside its validity' "$T/log" || fail "expiry refusal not logged"
printf 'garbage\n' >junk.pem
check "no certificates at all" unchanged junk.pem
