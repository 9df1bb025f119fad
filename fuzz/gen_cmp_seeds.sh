#!/usr/bin/env bash
# gen_cmp_seeds.sh FLEETPKI OUTDIR: requests of every CMP message type, as
# `openssl cmp` sends them, for the seed corpus of fuzz_cmp (corpus/cmp).
# The server gets the harness's fixed MAC key (32 octets of 0x42) and a
# token with the harness's id and hash (SHA-256 of "fuzz"), so the
# MAC-protected seeds verify in the harness too.  Signature-protected
# seeds (cr, kur, rr, genm with a certificate issued here) do not verify
# there (its CA is made per run): they exercise the refusal path.
set -euo pipefail
FLEETPKI=$1
OUT=$2
T=$(mktemp -d)
trap 'kill $SRV 2>/dev/null || true; rm -rf "$T"' EXIT
mkdir -p "$OUT"
"$FLEETPKI" init --dir "$T/ca" --name "Seed Org" >/dev/null
head -c 32 /dev/zero | tr '\0' 'B' >"$T/ca/cmp-mac.key"
chmod 600 "$T/ca/cmp-mac.key"
cat >>"$T/ca/fleetpki.conf" <<'CONF'

[est held]
project = default
profile = device
manual_approval = yes
retry_after_seconds = 1
CONF
out=$("$FLEETPKI" token create --dir "$T/ca" --label default --uses 1000000)
id=$(printf '%s\n' "$out" | sed -n 's/^id: *//p')
hash=$(printf fuzz | sha256sum | cut -c1-64)
sqlite3 "$T/ca/fleetpki.db" "UPDATE enroll_tokens SET id='f0220000000c0001', hash=X'$hash' WHERE id='$id'"
out=$("$FLEETPKI" token create --dir "$T/ca" --label held --uses 1000000)
hid=$(printf '%s\n' "$out" | sed -n 's/^id: *//p')
hsec=$("$FLEETPKI" cmp-secret --dir "$T/ca" --label held "$hid")
sec=$("$FLEETPKI" cmp-secret --dir "$T/ca" --label default f0220000000c0001)
"$FLEETPKI" serve --dir "$T/ca" --https 127.0.0.1:0 --http 127.0.0.1:0 --threads 1 \
    --addr-file "$T/addr" 2>"$T/log" &
SRV=$!
for _ in $(seq 100); do [ -s "$T/addr" ] && break; sleep 0.1; done
U="http://$(sed -n 's/^http=//p' "$T/addr")/.well-known/cmp"
for k in a b c d; do openssl ecparam -genkey -name prime256v1 -noout -out "$T/$k.key" 2>/dev/null; done
openssl req -new -key "$T/a.key" -subj /CN=seed-p10 -out "$T/p10.csr" 2>/dev/null
run() { # NAME ARGS...
    local n=$1
    shift
    timeout 30 openssl cmp -server "${URL:-$U}" -reqout "$OUT/$n-1,$OUT/$n-2,$OUT/$n-3" "$@" \
        >"$T/$n.log" 2>&1 || true
}
MAC=(-ref f0220000000c0001 -secret "pass:$sec")
run ir "${MAC[@]}" -cmd ir -newkey "$T/a.key" -subject /CN=seed-ir -certout "$T/ir.crt"
run ir-implicit "${MAC[@]}" -cmd ir -implicit_confirm -newkey "$T/b.key" -subject /CN=seed-imp -certout "$T/x.crt"
run cr-mac "${MAC[@]}" -cmd cr -newkey "$T/c.key" -subject "/CN=seed-cr" -sans "seed.example DNS:x.example" -certout "$T/x.crt"
run p10cr "${MAC[@]}" -cmd p10cr -csr "$T/p10.csr" -certout "$T/x.crt"
run genm-cacerts "${MAC[@]}" -cmd genm -infotype caCerts
run genm-rootupd "${MAC[@]}" -cmd genm -infotype rootCaKeyUpdate
run genm-tmpl "${MAC[@]}" -cmd genm -infotype certReqTemplate
run bad-secret -ref f0220000000c0001 -secret pass:wrong -cmd ir -newkey "$T/d.key" -subject /CN=x -certout "$T/x.crt"
run unprotected -unprotected_requests -cmd ir -newkey "$T/d.key" -subject /CN=x -certout "$T/x.crt"
run reject-conf "${MAC[@]}" -cmd ir -newkey "$T/d.key" -subject /CN=seed-rej -out_trusted "$T/ca/tls.crt" -certout "$T/x.crt"
if [ -s "$T/ir.crt" ]; then
    TR=(-trusted "$T/ca/root.crt")
    run cr-sig -cmd cr -cert "$T/ir.crt" -key "$T/a.key" -newkey "$T/c.key" -certout "$T/x.crt" "${TR[@]}"
    run kur -cmd kur -cert "$T/ir.crt" -key "$T/a.key" -newkey "$T/d.key" -certout "$T/x.crt" "${TR[@]}"
    run rr -cmd rr -cert "$T/ir.crt" -key "$T/a.key" -oldcert "$T/ir.crt" "${TR[@]}"
fi
URL="$U/p/held" run poll -ref "$hid" -secret "pass:$hsec" -cmd p10cr -csr "$T/p10.csr" -certout "$T/x.crt" -total_timeout 3
# drop empty leftovers of the file lists
find "$OUT" -size 0 -delete
ls "$OUT" | wc -l
