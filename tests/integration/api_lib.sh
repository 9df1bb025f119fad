# api_lib.sh - helpers for the admin REST API tests (source after lib.sh).
#
# api METHOD PATH KEY [BODY] [CONTENT-TYPE]: curl against https://$HTTPS/api/v1PATH
#   with 'Authorization: Bearer KEY' (KEY "" sends none).  Leaves the body
#   in $T/r.body, the status in $T/r.code, the Content-Type in $T/r.ct and
#   the headers in $T/r.hdr; prints the status.
api() {
    local method=$1 path=$2 key=$3 body=${4-} ct=${5:-application/json}
    local args=(-sk --max-time 30 -X "$method" -D "$T/r.hdr" -o "$T/r.body"
                -w '%{http_code} %{content_type}')
    [ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
    if [ -n "$body" ]; then
        args+=(-H "Content-Type: $ct" --data-binary "$body")
    elif [ "$method" = POST ]; then
        args+=(--data-binary "")  # Content-Length: 0 (RFC 9110 8.6)
    fi
    curl "${args[@]}" "https://$HTTPS/api/v1$path" >"$T/r.meta" || fail "curl $method $path"
    cut -d' ' -f1 <"$T/r.meta" >"$T/r.code"
    cut -d' ' -f2- <"$T/r.meta" | cut -d';' -f1 >"$T/r.ct"
    cat "$T/r.code"
}

# expect_api CODE DESC METHOD PATH KEY [BODY] [CT]: the status must be CODE;
# a 4xx/5xx must be application/problem+json with the RFC 9457 members
# (checked by jq), unless the HTTP layer itself answered (411/413/415).
expect_api() {
    local want=$1 desc=$2 got
    shift 2
    got=$(api "$@")
    [ "$got" = "$want" ] || fail "$desc: status $got, want $want: $(head -c 400 "$T/r.body")"
    if [ "$want" -ge 400 ] && [ "$want" != 413 ] && [ "$want" != 415 ] && [ "$want" != 411 ]; then
        [ "$(cat "$T/r.ct")" = "application/problem+json" ] ||
            fail "$desc: content type $(cat "$T/r.ct")"
        jq -e --argjson s "$want" '(.type | startswith("https://fleetpki.dev/problems/"))
            and (.title | type == "string") and .status == $s and (.detail | type == "string")' \
            "$T/r.body" >/dev/null || fail "$desc: not a problem document: $(cat "$T/r.body")"
    fi
    pass "$desc"
}

# problem_type: the last answer's problem type name.
problem_type() { jq -r '.type | sub("https://fleetpki.dev/problems/"; "")' "$T/r.body"; }

# new_key ARGS...: `fleetpki apikey create ARGS --json` -> the bearer token.
new_key() {
    fp apikey create --dir "$CA" --json "$@" | jq -r .token
}
