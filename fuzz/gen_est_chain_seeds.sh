#!/usr/bin/env bash
# gen_est_chain_seeds.sh - (re)make the fixed PKI of fuzz_est_chain.c and its
# seed corpus.  Throwaway keys live in a temp dir that is removed: only
# public certificates are written (fuzz/est_chain_pki.h, corpus/est_chain).
#
#   root -> issuing -> sub-good -> leaf-good     (sub-good valid in the store)
#                   -> sub-revoked -> leaf-rev   (sub-revoked revoked in it)
#                   -> leaf-direct               (valid in the store)
#                   -> sub-unknown -> leaf-unk   (not in the store)
#   mfg (second anchor) -> idevid
#
# Seeds: a leaf followed by its untrusted chain, DER certificates
# concatenated.  Validity is 50 years so the seeds keep verifying.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
days=18250

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca_ext='basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'
sub_ext='basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'
leaf_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

selfsigned() { # NAME SUBJ
    key "$1"
    openssl req -x509 -new -key "$1.key" -subj "$2" -days $days -out "$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
signed() { # NAME SUBJ ISSUER EXT
    key "$1"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "0x$(openssl rand -hex 16)" \
        -days $days -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}

selfsigned root "/O=Fuzz/CN=Fuzz Root"
signed issuing "/O=Fuzz/CN=Fuzz Issuing" root "$ca_ext"
signed sub-good "/CN=Sub Good" issuing "$sub_ext"
signed sub-revoked "/CN=Sub Revoked" issuing "$sub_ext"
signed sub-unknown "/CN=Sub Unknown" issuing "$sub_ext"
signed leaf-good "/CN=leaf-good" sub-good "$leaf_ext"
signed leaf-rev "/CN=leaf-rev" sub-revoked "$leaf_ext"
signed leaf-unk "/CN=leaf-unk" sub-unknown "$leaf_ext"
signed leaf-direct "/CN=leaf-direct" issuing "$leaf_ext"
selfsigned mfg "/O=Acme/CN=Acme IDevID CA"
signed idevid "/CN=Acme Widget/serialNumber=SN0042" mfg "$leaf_ext"

der() { openssl x509 -in "$1.pem" -outform DER; }
out=$here/corpus/est_chain
mkdir -p "$out"
rm -f "$out"/*.der
{ der leaf-good; der sub-good; } >"$out/good-chain.der"
{ der leaf-rev; der sub-revoked; } >"$out/revoked-sub.der"
{ der leaf-unk; der sub-unknown; } >"$out/unknown-sub.der"
der leaf-direct >"$out/direct.der"
der idevid >"$out/idevid.der"
der leaf-good >"$out/missing-intermediate.der"
{ der leaf-good; der sub-good; der issuing; der root; } >"$out/full-chain.der"
{ der leaf-good; der sub-revoked; der sub-good; } >"$out/extra-cert.der"

{
    echo "/* est_chain_pki.h - public certificates of fuzz_est_chain.c's fixed PKI,"
    echo " * made by gen_est_chain_seeds.sh (the keys were discarded). */"
    for n in root issuing mfg sub-good sub-revoked leaf-direct; do
        c=$(echo "$n" | tr 'a-z-' 'A-Z_')
        echo "static const char PEM_$c[] ="
        sed 's/^/    "/; s/$/\\n"/' "$n.pem"
        echo "    ;"
    done
} >"$here/est_chain_pki.h"
echo "wrote $here/est_chain_pki.h and $(ls "$out" | wc -l) seeds"
