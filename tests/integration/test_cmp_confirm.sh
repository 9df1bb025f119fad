#!/usr/bin/env bash
# certConf (RFC 4210 5.3.18, RFC 9483 4.1.1): a certificate sent without
# implicit confirmation that is never confirmed is revoked once
# [server] cmp_confirm_wait_seconds ends; one the client rejects in its
# certConf is revoked at once; a confirmed one stays valid past the wait;
# with cmp_implicit_confirm = no the server asks for certConf even when
# the client offers implicitConfirm.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cmp_lib.sh"

cmp_start '
[server]
cmp_confirm_wait_seconds = 2
cmp_implicit_confirm = no'

# wait_status SERIAL WANT: up to 30 s (the sweeper runs every second)
wait_status() {
    for _ in $(seq 1 300); do
        [ "$(status_of "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# confirmed: stays valid after the wait
key a
cmp_token default
cmpc conf -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/a.key" -subject /CN=conf \
    -certout "$T/conf.crt" || { cat "$T/conf.log" >&2; fail "ir"; }
[ "$(rsp_field conf body 2)" = pkiconf ] || fail "certConf answered"

# never confirmed: -disable_confirm sends no certConf
key b
cmp_token default
cmpc noconf -cmd ir -disable_confirm -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/b.key" \
    -subject /CN=noconf -certout "$T/noconf.crt" || { cat "$T/noconf.log" >&2; fail "ir without certConf"; }
[ ! -e "$T/noconf.rsp.2.der" ] || fail "no certConf was sent"
s_no=$(serial_of "$T/noconf.crt")
wait_status "$s_no" revoked || { cat "$T/server.log" >&2; fail "unconfirmed certificate not revoked after the wait"; }
pass "an unconfirmed certificate is revoked after cmp_confirm_wait_seconds"
grep -q "no certConf within" "$T/server.log" || fail "the revocation is logged"
fp audit list --dir "$CA" | grep -q "server:cmp-confirm-timeout" || fail "the revocation is audited"
[ "$(status_of "$(serial_of "$T/conf.crt")")" = valid ] || fail "the confirmed certificate stays valid"
pass "a confirmed certificate stays valid past the wait"

# rejected in certConf: the client cannot validate the new certificate
# against -out_trusted (here: our TLS certificate, not a CA of it)
key c
cmp_token default
cmpc rej -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/c.key" -subject /CN=rej \
    -out_trusted "$CA/tls.crt" -certout "$T/rej.crt" && fail "client accepted a certificate it cannot validate"
[ -e "$T/rej.req.2.der" ] || { cat "$T/rej.log" >&2; fail "client sent a certConf"; }
s_rej=$(fp list --dir "$CA" | awk '$NF == "CN=rej" {print $1}')
[ -n "$s_rej" ] || fail "the rejected certificate was issued"
[ "$(status_of "$s_rej")" = revoked ] || fail "a certificate rejected in certConf is revoked at once"
grep -q "rejected by the client in certConf" "$T/server.log" || fail "logged"
pass "a certificate rejected in certConf is revoked at once"

# implicitConfirm asked for but not granted: the client must confirm
key d
cmp_token default
cmpc imp -cmd ir -implicit_confirm -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/d.key" \
    -subject /CN=imp -certout "$T/imp.crt" || { cat "$T/imp.log" >&2; fail "ir asking implicitConfirm"; }
[ "$(rsp_field imp body 2)" = pkiconf ] || fail "implicitConfirm not granted: certConf expected"
pass "cmp_implicit_confirm = no: certConf required"
fp_serve_stop
