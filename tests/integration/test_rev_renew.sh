#!/usr/bin/env bash
# The server checks the delegated OCSP signer at start: a certificate that no
# longer matches its key (as an interrupted renewal would leave it) is
# replaced by a fresh one, issued and audited through the CA, and used at once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rev_lib.sh"

fp_new_ca "$CA" >/dev/null
old=$(openssl x509 -in "$CA/ocsp.crt" -noout -serial)
# break the pair: a new key beside the old certificate
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/other.key" 2>/dev/null
cp "$T/other.key" "$CA/ocsp.key"
chmod 600 "$CA/ocsp.key"
# rev_start makes a fresh CA: start the server on this one by hand
CHAIN=$T/chain.pem
cat "$CA/root.crt" "$CA/issuing.crt" >"$CHAIN"
"$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --threads 2 \
    --addr-file "$T/addr" 2>"$T/server.log" &
SRV_PID=$!
fp_track "$SRV_PID"
for _ in $(seq 1 200); do [ -s "$T/addr" ] && break; sleep 0.05; done
[ -s "$T/addr" ] || { cat "$T/server.log" >&2; fail "server did not start"; }
HTTP=$(sed -n 's/^http=//p' "$T/addr")
grep -q "OCSP signer certificate renewed" "$T/server.log" || fail "no renewal logged"
new=$(openssl x509 -in "$CA/ocsp.crt" -noout -serial)
[ "$old" != "$new" ] || fail "ocsp.crt not replaced"
cmp -s <(openssl x509 -in "$CA/ocsp.crt" -noout -pubkey) <(openssl pkey -in "$CA/ocsp.key" -pubout) \
    || fail "renewed certificate does not match ocsp.key"
rev_issue dev renew-dev
[ "$(rev_ocsp_status "$T/dev.crt")" = good ] || { cat "$T/ocsp.out" >&2; fail "OCSP after renewal"; }
fp audit list --dir "$CA" | grep -q "server:ocsp-renew" || fail "renewal not audited"
pass "mismatched OCSP signer repaired at start, audited, used"
rev_stop

# the same with encrypted keys: the renewed key is encrypted with the
# server's passphrase, and the server signs with it
ENC=$T/enc
echo "correct horse battery" >"$T/pass"
fp init --dir "$ENC" --name "Enc Org" --passphrase-file "$T/pass" >/dev/null
cp "$T/other.key" "$ENC/ocsp.key"
chmod 600 "$ENC/ocsp.key"
rm -f "$T/addr"
"$FLEETPKI" serve --dir "$ENC" --passphrase-file "$T/pass" --https 127.0.0.1:0 --http 127.0.0.1:0 \
    --threads 1 --addr-file "$T/addr" 2>"$T/server2.log" &
SRV_PID=$!
fp_track "$SRV_PID"
for _ in $(seq 1 200); do [ -s "$T/addr" ] && break; sleep 0.05; done
[ -s "$T/addr" ] || { cat "$T/server2.log" >&2; fail "server with encrypted keys did not start"; }
HTTP=$(sed -n 's/^http=//p' "$T/addr")
grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$ENC/ocsp.key" || fail "renewed OCSP key is not encrypted"
CA=$ENC
CHAIN=$T/chain2.pem
cat "$ENC/root.crt" "$ENC/issuing.crt" >"$CHAIN"
fp_csr edev "/CN=enc-dev"
fp issue --dir "$ENC" --passphrase-file "$T/pass" --csr "$T/edev.csr" --profile device \
    --out "$T/edev.crt" || fail "issue with encrypted keys"
[ "$(rev_ocsp_status "$T/edev.crt")" = good ] || { cat "$T/ocsp.out" >&2; fail "OCSP with encrypted keys"; }
pass "encrypted keys: renewed signer key encrypted, responses signed"
rev_stop
