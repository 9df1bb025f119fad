#!/usr/bin/env bash
# CSR policy through the CLI: every refusal has a stable code, exit 3, and
# is recorded in the audit log.
source "$(dirname "$0")/lib.sh"

CA=$(fp_new_ca)

refused() { # code desc csr profile
    expect_code 3 "$2" fp issue --dir "$CA" --csr "$3" --profile "$4"
    grep -q "fleetpki: $1:" "$T/last.err" || { cat "$T/last.err"; fail "$2: expected error code $1"; }
}

# a tampered CSR: flip one byte inside the signed subject
fp_csr good "/CN=sensor-tamper"
openssl req -in "$T/good.csr" -outform DER -out "$T/good.der"
python3 - "$T/good.der" "$T/tampered.der" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
i = d.find(b'sensor-tamper')
d[i] ^= 0x01
open(sys.argv[2], 'wb').write(d)
PY
refused csr-pop "tampered CSR is refused" "$T/tampered.der" device

openssl req -new -newkey rsa:1024 -nodes -keyout "$T/w.key" -subj "/CN=weak" -out "$T/weak.csr" 2>/dev/null
refused csr-key-size "1024-bit RSA is refused" "$T/weak.csr" device
openssl req -new -key "$T/good.key" -subj "/CN=sha1" -sha1 -out "$T/sha1.csr"
refused csr-sig-alg "SHA-1 signature is refused" "$T/sha1.csr" device
fp_csr ca "/CN=wannabe" -addext "basicConstraints=critical,CA:TRUE"
refused csr-ca "CA:TRUE on a leaf profile is refused" "$T/ca.csr" device
fp_csr kcs "/CN=signer" -addext "keyUsage=keyCertSign"
refused csr-key-usage "keyCertSign on a leaf profile is refused" "$T/kcs.csr" device
fp_csr ip "/CN=dev" -addext "subjectAltName=IP:10.1.1.1"
refused csr-san "IP SAN on the device profile is refused" "$T/ip.csr" device
fp_csr nosan "/CN=web"
refused csr-san "server profile requires a SAN" "$T/nosan.csr" server
fp_csr wild "/CN=web" -addext "subjectAltName=DNS:*.example.com"
refused csr-san "wildcard DNS SAN is refused" "$T/wild.csr" server
fp_csr nocn "/O=Nameless" -addext "subjectAltName=URI:urn:x"
refused csr-cn "missing CN is refused" "$T/nocn.csr" device
# OpenSSL's own tools cap CN at 64; description (ub 1024) carries a 200-byte value past our 128 limit
openssl req -new -key "$T/good.key" -subj "/CN=x/description=$(printf 'b%.0s' $(seq 1 200))" -out "$T/long.csr"
refused csr-subject "oversize subject attribute is refused" "$T/long.csr" device
refused profile-unknown "unknown profile is refused" "$T/good.csr" nope

printf 'garbage, not a CSR\n' >"$T/junk.csr"
expect_code 3 "garbage input is a clear error" fp issue --dir "$CA" --csr "$T/junk.csr" --profile device
grep -q "csr-malformed" "$T/last.err" || fail "garbage: csr-malformed"
head -c 100000 /dev/zero >"$T/huge.csr"
expect_code 3 "oversize input is refused" fp issue --dir "$CA" --csr "$T/huge.csr" --profile device
grep -q "too-large" "$T/last.err" || fail "oversize: too-large"

# a custom profile from the config: CN pattern and forced O
cat >>"$CA/fleetpki.conf" <<'CONF'

[profile line7]
cn_pattern = line7-*
subject_force = O=Acme Plant 7
key_algorithms = p256
requested_extensions = reject
CONF
fp check-config --dir "$CA" >/dev/null
fp_csr l7 "/CN=line7-0042/O=Spoofed Org"
fp issue --dir "$CA" --csr "$T/l7.csr" --profile line7 >"$T/l7.crt"
openssl x509 -in "$T/l7.crt" -noout -subject | grep -q "O = Acme Plant 7, CN = line7-0042" || fail "forced O replaces requested O"
pass "custom profile forces O"
fp_csr l8 "/CN=line8-0001"
refused csr-cn "CN outside the profile pattern is refused" "$T/l8.csr" line7
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$T/p384.key" -subj "/CN=line7-1" -out "$T/p384.csr" 2>/dev/null
refused csr-key-size "P-384 outside the profile allow-list is refused" "$T/p384.csr" line7
fp_csr ext "/CN=line7-2" -addext "nsComment=hi"
refused csr-ext "reject mode refuses extra extensions" "$T/ext.csr" line7

# every refusal is in the audit log, and the chain still verifies
n=$(fp audit list --dir "$CA" --json | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["action"]=="csr.refuse"))')
[ "$n" -ge 13 ] || fail "expected >= 13 audited refusals, got $n"
fp audit verify --dir "$CA" >/dev/null || fail "audit chain"
pass "refusals are audited ($n)"
