# cmp_lib.sh - helpers for the CMP tests (source after lib.sh).
#
# The client is `openssl cmp` (OpenSSL 3.0); responses are saved with
# -rspout and decoded again by cmp_check.py (pyasn1, RFC 4210 module), a
# parser independent of OpenSSL.

CA=$T/ca
PY=/usr/bin/python3
CHECK="$(dirname "${BASH_SOURCE[0]}")/cmp_check.py"

command -v openssl >/dev/null || { echo "skip: no openssl" >&2; exit 77; }
openssl cmp -help >/dev/null 2>&1 || { echo "skip: openssl has no cmp command" >&2; exit 77; }
"$PY" -c 'import pyasn1_modules.rfc4210' 2>/dev/null ||
    { echo "skip: python3-pyasn1-modules (independent CMP parser) not installed" >&2; exit 77; }

# cmp_start [CONFIG-SNIPPET]: fresh CA and server; CMPURL is the default label.
cmp_start() {
    fp_serve_start "${1:-}"
    CMPURL="http://$HTTP/.well-known/cmp"
}

# cmp_token LABEL [token create args]: TOK_ID and TOK_SEC (its CMP secret).
cmp_token() {
    local label=$1 out
    shift
    out=$(fp token create --dir "$CA" --label "$label" "$@")
    TOK_ID=$(printf '%s\n' "$out" | sed -n 's/^id: *//p')
    TOK_SEC=$(fp cmp-secret --dir "$CA" --label "$label" "$TOK_ID")
    [ -n "$TOK_ID" ] && [ -n "$TOK_SEC" ] || fail "token for label $label"
}

# cmpc NAME ARGS...: openssl cmp against $URL (default CMPURL); requests
# and responses are saved in order as $T/NAME.req.N.der / NAME.rsp.N.der
# (N = 1, 2, ...), the output in $T/NAME.log.
cmpc() {
    local name=$1 i reqs="" rsps=""
    shift
    rm -f "$T/$name".r*.der
    for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
        reqs="$reqs${reqs:+,}$T/$name.req.$i.der"
        rsps="$rsps${rsps:+,}$T/$name.rsp.$i.der"
    done
    # line-buffered: tests grep the log while the client still runs
    timeout 60 stdbuf -oL -eL openssl cmp -server "${URL:-$CMPURL}" -reqout "$reqs" -rspout "$rsps" "$@" \
        >"$T/$name.log" 2>&1
}

# key NAME: a fresh P-256 key in $T/NAME.key
key() { openssl ecparam -genkey -name prime256v1 -noout -out "$T/$1.key" 2>/dev/null; }

# rsp_line NAME [N]: cmp_check.py's line for response N of NAME
# (default: the first).  rsp_field NAME FIELD [N]: one field of it.
rsp_line() { "$PY" "$CHECK" "$T/$1.rsp.${2:-1}.der"; }
rsp_field() { rsp_line "$1" "${3:-1}" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# verify_issued CERT: the certificate verifies against our root and issuing CA
verify_issued() {
    openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/issuing.crt" "$1" >/dev/null ||
        fail "$1 does not verify against the CA"
}

# status_of SERIAL: valid | revoked (fleetpki list)
status_of() { fp list --dir "$CA" | awk -v s="$1" '$1 == s {print $2}'; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
