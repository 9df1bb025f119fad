#!/usr/bin/env bash
# Factory provisioning (issue 12): `fleetpki factory mint` makes device
# identities in bulk without a network.  Checked: the manifests (CSV with
# Python's csv, JSON with json) against the certificates, the PKCS#12 with
# `openssl pkcs12` and its password, `fleetpki list --project`, every
# certificate against the project's chain with `openssl verify`, the bundle
# read back by the device library's own credential store, and one minted
# device that boots from its bundle and renews over EST against the real
# `fleetpki serve` (tests/device/fp-device-cli-*).  Refusals: unknown
# project, bad name patterns, bad counts, an output directory with content,
# a profile refusing the key algorithm; names already minted are skipped.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/est_lib.sh"

CLIS=$(ls "${FP_BUILD_DIR:-/nonexistent}"/tests/device/fp-device-cli-* 2>/dev/null || true)
[ -n "$CLIS" ] || { echo "skip: no fp-device-cli-* in \$FP_BUILD_DIR/tests/device"; exit 77; }

fp_new_ca "$CA" >/dev/null
fp project create acme --dir "$CA" >/dev/null || fail "project create acme"
cat >>"$CA/fleetpki.conf" <<CONF

[profile p384only]
key_algorithms = p384

[est acme]
project = acme
CONF

mint() { fp factory mint --dir "$CA" "$@"; }

# ---- refusals, before anything is made ----
expect_code 1 "unknown project" mint --project nope --count 2 --name 'd-%04d' --out "$T/o-nope"
grep -q "project 'nope'" "$T/last.err" || fail "unknown project not named: $(cat "$T/last.err")"
[ ! -e "$T/o-nope" ] || fail "a refused run created its output directory"
for pat in 'sensor' 'sensor-%s' 'a-%d-%d' 'a/%d' '../%d' 'x..%d' '%5d' '%%d' 'sensor-%06x' \
           '.%d' 'a b%d' 'a,b%d' '%ld' "$(printf 'a%.0s' $(seq 1 64))%d"; do
    expect_code 2 "--name '$pat' refused" mint --project acme --count 2 --name "$pat" --out "$T/o-bad"
done
[ ! -e "$T/o-bad" ] || fail "a bad pattern created the output directory"
expect_code 2 "--count 0 refused" mint --project acme --count 0 --name 'd-%04d' --out "$T/o-bad"
expect_code 2 "--count over the maximum refused" mint --project acme --count 10000001 --name 'd-%04d' --out "$T/o-bad"
expect_code 2 "--count not a number refused" mint --project acme --count 5x --name 'd-%04d' --out "$T/o-bad"
expect_code 2 "a name longer than 64 characters refused" \
    mint --project acme --count 2 --start 999999999999 --name "$(printf 'a%.0s' $(seq 1 53))%d" --out "$T/o-bad"
mkdir "$T/o-full" && echo keep >"$T/o-full/precious"
expect_code 1 "an output directory with content is refused" \
    mint --project acme --count 2 --name 'd-%04d' --out "$T/o-full"
grep -q "^fleetpki: exists:" "$T/last.err" || fail "expected an 'exists' error: $(cat "$T/last.err")"
[ "$(ls "$T/o-full")" = precious ] && [ "$(cat "$T/o-full/precious")" = keep ] ||
    fail "the output directory was touched"
expect_code 3 "a profile refusing the key algorithm (P-256 on a P-384 profile)" \
    mint --project acme --count 2 --name 'd-%04d' --profile p384only --out "$T/o-alg"
grep -q "csr-key-size" "$T/last.err" || fail "refusal not named: $(cat "$T/last.err")"
expect_code 3 "a profile refusing the key algorithm (Ed25519 on a P-384 profile)" \
    mint --project acme --count 2 --name 'd-%04d' --profile p384only --algo ed25519 --out "$T/o-alg"
grep -q "csr-key-alg" "$T/last.err" || fail "refusal not named: $(cat "$T/last.err")"
[ ! -e "$T/o-alg" ] || fail "a refused run created its output directory"
fp audit list --dir "$CA" --json >"$T/audit.json"
python3 - "$T/audit.json" <<'PY' || fail "the refusals are not audited as csr.refuse"
import json, sys
rows = json.load(open(sys.argv[1]))
rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
assert sum(1 for r in rows if r["action"] == "csr.refuse" and "factory" in r.get("detail", "")) >= 2, rows[-3:]
PY
pass "refusals audited as csr.refuse"
[ -z "$(fp list --dir "$CA" --project acme)" ] || fail "refused runs issued certificates"

# ---- mint ----
N=6
mint --project acme --count $N --name 'sensor-%06d' --start 41 --p12 --out "$T/out" >"$T/mint.out" ||
    { cat "$T/mint.out"; fail "factory mint"; }
grep -q "minted $N identities sensor-000041..sensor-000046" "$T/mint.out" || fail "summary: $(cat "$T/mint.out")"
pass "minted $N identities"
[ "$(stat -c %a "$T/out")" = 700 ] || fail "output directory mode $(stat -c %a "$T/out")"
[ "$(stat -c %a "$T/out/sensor-000041/cred0.key")" = 600 ] || fail "key file mode"

# manifests: strict parsers, every row matching its certificate
python3 - "$T/out" "$N" <<'PY' || fail "manifests"
import csv, datetime, hashlib, json, os, subprocess, sys
out, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(out, "manifest.csv"), newline="") as f:
    rows = list(csv.DictReader(f, strict=True))
doc = json.load(open(os.path.join(out, "manifest.json")))
assert isinstance(doc, list) and len(doc) == n and len(rows) == n, (len(doc), len(rows))
names = ["sensor-%06d" % i for i in range(41, 41 + n)]
assert [r["name"] for r in rows] == names, [r["name"] for r in rows]
for r, j in zip(rows, doc):
    assert set(r) == {"name", "serial", "sha256", "not_after"}, r
    assert r == j, (r, j)
    crt = open(os.path.join(out, r["name"], "cred0.crt")).read()
    assert crt.startswith("fleetpki-cred 1 gen=1\n"), crt[:40]
    leaf = crt[crt.index("-----BEGIN"):crt.index("-----END CERTIFICATE-----") + 25] + "\n"
    der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=leaf.encode(),
                         capture_output=True, check=True).stdout
    assert hashlib.sha256(der).hexdigest() == r["sha256"], r["name"]
    txt = subprocess.run(["openssl", "x509", "-noout", "-serial", "-subject", "-enddate"],
                         input=leaf.encode(), capture_output=True, check=True).stdout.decode()
    assert "serial=%s\n" % r["serial"] in txt, (txt, r)
    assert "CN = %s" % r["name"] in txt or "CN=%s" % r["name"] in txt, txt
    end = datetime.datetime.strptime(txt.split("notAfter=")[1].strip(), "%b %d %H:%M:%S %Y GMT")
    assert end.strftime("%Y-%m-%dT%H:%M:%SZ") == r["not_after"], (end, r["not_after"])
print("ok - manifests: %d rows, CSV == JSON, serial, sha256 and not_after match each certificate" % n)
PY

# the bundle: what the device library's store reads; key matches; chain verifies
fp list --dir "$CA" --project acme --json >"$T/list.json"
for i in $(seq 41 46); do
    name=$(printf 'sensor-%06d' "$i")
    d=$T/out/$name
    tail -n +2 "$d/cred0.crt" >"$T/chain.pem"
    tail -n +2 "$d/cred0.key" >"$T/key.pem"
    head -1 "$d/cred0.key" | grep -qx 'fleetpki-cred 1 gen=1' || fail "$name: key header"
    openssl pkey -in "$T/key.pem" -check -noout >/dev/null 2>&1 || fail "$name: key does not parse"
    [ "$(openssl x509 -in "$T/chain.pem" -noout -pubkey)" = "$(openssl pkey -in "$T/key.pem" -pubout)" ] ||
        fail "$name: key does not match the certificate"
    openssl verify -CAfile "$T/out/anchor.pem" -untrusted "$T/chain.pem" "$T/chain.pem" >/dev/null ||
        fail "$name: does not verify against the project's chain"
    serial=$(openssl x509 -in "$T/chain.pem" -noout -serial | cut -d= -f2)
    grep -q "\"serial\": \"$serial\"" "$T/list.json" || fail "$name: not in fleetpki list --project acme"
    # PKCS#12: its password beside it; the key and certificate inside are the bundle's
    [ "$(stat -c %a "$d/identity.p12.pass")" = 600 ] || fail "$name: password file mode"
    openssl pkcs12 -info -noout -in "$d/identity.p12" -passin "file:$d/identity.p12.pass" 2>/dev/null ||
        fail "$name: openssl pkcs12 -info"
    openssl pkcs12 -in "$d/identity.p12" -passin "file:$d/identity.p12.pass" -nokeys -clcerts 2>/dev/null |
        openssl x509 -noout -serial | grep -q "=$serial$" || fail "$name: PKCS#12 certificate"
    openssl pkcs12 -in "$d/identity.p12" -passin "file:$d/identity.p12.pass" -nocerts -nodes 2>/dev/null |
        openssl pkey -pubout | cmp -s - <(openssl pkey -in "$T/key.pem" -pubout) || fail "$name: PKCS#12 key"
    ! openssl pkcs12 -info -noout -in "$d/identity.p12" -passin pass:wrong >/dev/null 2>&1 ||
        fail "$name: PKCS#12 opens with a wrong password"
done
grep -c '"project": "acme"' "$T/list.json" | grep -qx $N || fail "fleetpki list --project acme: $(grep -c serial "$T/list.json") rows"
pass "bundles: key matches, chain verifies against the project's root, listed in the project"
pass "PKCS#12: opens with its own password (openssl pkcs12 -info), not with another"

# ---- names already minted are skipped ----
mint --project acme --count 8 --name 'sensor-%06d' --start 41 --out "$T/out2" >"$T/mint2.out" ||
    fail "second run: $(cat "$T/mint2.out")"
grep -q "minted 2 identities.*skipped 6 already minted" "$T/mint2.out" || fail "second run: $(cat "$T/mint2.out")"
[ "$(ls "$T/out2" | grep -c '^sensor-')" = 2 ] && [ -d "$T/out2/sensor-000047" ] && [ -d "$T/out2/sensor-000048" ] ||
    fail "second run wrote $(ls "$T/out2")"
[ "$(tail -n +2 "$T/out2/manifest.csv" | wc -l)" = 2 ] || fail "second manifest"
pass "a re-run skips the names already minted and mints only the rest"

# ---- a crash after a committed chunk: the same command re-run mints the rest ----
rc=0
FLEETPKI_TEST_CRASH=batch-after-commit mint --project acme --count 2100 --name 'crash-%05d' --threads 1 \
    --out "$T/oc1" >/dev/null 2>&1 || rc=$?
[ "$rc" = 137 ] || fail "the crash point did not kill the run (exit $rc)"
committed=$(fp list --dir "$CA" --project acme | grep -c 'CN=crash-' || true)
[ "$committed" = 2048 ] || fail "expected one chunk (2048) committed before the crash, found $committed"
mint --project acme --count 2100 --name 'crash-%05d' --out "$T/oc2" >"$T/mint3.out" ||
    fail "re-run after the crash: $(cat "$T/mint3.out")"
grep -q "minted 52 identities.*skipped 2048 already minted" "$T/mint3.out" || fail "re-run: $(cat "$T/mint3.out")"
[ "$(fp list --dir "$CA" --project acme | grep -c 'CN=crash-')" = 2100 ] || fail "after the re-run"
[ -d "$T/oc2/crash-02100" ] && [ ! -e "$T/oc2/crash-00001" ] || fail "the re-run wrote the wrong bundles"
pass "after a crash the same command re-run (new --out) mints only what was not committed"

# ---- a minted device boots from its bundle and renews over EST ----
fp_serve_run
for CLI in $CLIS; do
    B=${CLI##*fp-device-cli-}
    case $B in openssl) name=sensor-000042 ;; mbedtls) name=sensor-000043 ;; *) name=sensor-000044 ;; esac
    store=$T/out/$name
    dev() { "$CLI" --server "$HTTPS" --anchor "$T/out/anchor.pem" --label acme "$@"; }
    dev --store "$store" --out-cert "$T/boot-$B.pem" show >"$T/show.out" ||
        fail "[$B] the device library does not load the bundle"
    cmp -s <(openssl x509 -in "$T/boot-$B.pem" -outform DER) \
        <(tail -n +2 "$store/cred0.crt" | openssl x509 -outform DER) || fail "[$B] booted with another identity"
    dev --store "$store" reenroll >/dev/null 2>"$T/re.err" ||
        { cat "$T/re.err"; tail -5 "$T/server.log" >&2; fail "[$B] reenroll with the factory bundle"; }
    dev --store "$store" --out-cert "$T/renewed-$B.pem" --out-key "$T/renewed-$B.key" show >/dev/null
    ! cmp -s "$T/renewed-$B.pem" "$T/boot-$B.pem" || fail "[$B] no new certificate"
    openssl verify -CAfile "$T/out/anchor.pem" -untrusted "$CA/ca/acme-1/ca.crt" "$T/renewed-$B.pem" >/dev/null ||
        fail "[$B] renewed certificate does not verify"
    openssl x509 -in "$T/renewed-$B.pem" -noout -subject | grep -q "CN *= *$name" || fail "[$B] renewed subject"
    dev --store "$store" confirm >/dev/null || fail "[$B] confirm"
    pass "[$B] a device flashed with the $name bundle boots and renews over EST"
done
fp_serve_stop
