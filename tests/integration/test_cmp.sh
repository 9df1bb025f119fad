#!/usr/bin/env bash
# CMP (RFC 9483 over RFC 6712) with `openssl cmp` as the client: every
# message type with both protection kinds.  MAC (token): ir, p10cr, genm;
# signature with our own certificate: cr, kur, genm, rr; certConf/pkiConf
# after each enrollment, implicitConfirm; the TLS listener too.  Every
# response is decoded again by pyasn1 (cmp_check.py), every certificate
# checked with openssl verify and asn1parse.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cmp_lib.sh"

cmp_start ""

# ---- ir, MAC-protected with an enrollment token (RFC 9483 4.1.5) ----
cmp_token default
key dev
cmpc ir -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/dev.key" \
    -subject "/CN=dev-1" -certout "$T/dev.crt" -cacertsout "$T/capubs.pem" \
    -extracertsout "$T/extra.pem" || { cat "$T/ir.log" >&2; fail "ir with a token"; }
verify_issued "$T/dev.crt"
openssl asn1parse -in "$T/dev.crt" >/dev/null || fail "issued certificate does not parse"
[ "$(openssl x509 -in "$T/dev.crt" -noout -subject)" = "subject=CN = dev-1" ] || fail "subject"
[ "$(rsp_field ir body 1)" = ip ] && [ "$(rsp_field ir status 1)" = 0 ] || fail "ir answer: $(rsp_line ir 1)"
[ "$(rsp_field ir capubs 1)" = 1 ] || fail "ip carries the root in caPubs: $(rsp_line ir 1)"
[ "$(rsp_field ir protected 1)" = 1 ] || fail "ip is protected"
[ "$(rsp_field ir body 2)" = pkiconf ] || fail "certConf answered with pkiConf: $(rsp_line ir 2)"
[ "$(openssl x509 -in "$T/capubs.pem" -noout -fingerprint -sha256)" = \
  "$(openssl x509 -in "$CA/root.crt" -noout -fingerprint -sha256)" ] || fail "caPubs is our root"
pass "ir (MAC): certificate issued, verifies, caPubs = root, certConf -> pkiConf"
fp audit list --dir "$CA" | grep -q "cmp:token:$TOK_ID" ||
    fail "issuance audited with the token as actor"
pass "ir audited with the token"
[ "$(status_of "$(serial_of "$T/dev.crt")")" = valid ] || fail "confirmed certificate is valid"

# the MAC-protected ip is not signed: the response check used the secret
grep -q "received IP" "$T/ir.log" || fail "client saw the IP"

# ---- the token is single use ----
key dev9
cmpc ir2 -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/dev9.key" -subject "/CN=dev-9" -certout "$T/x.crt" &&
    fail "a used-up token enrolled again"
[ "$(rsp_field ir2 failinfo)" = notAuthorized ] || fail "used-up token: $(rsp_line ir2)"
pass "a used-up token is refused (notAuthorized)"

# ---- p10cr with a token ----
cmp_token default
fp_csr p10 "/CN=dev-p10"
cmpc p10 -cmd p10cr -ref "$TOK_ID" -secret "pass:$TOK_SEC" -csr "$T/p10.csr" \
    -certout "$T/p10.crt" || { cat "$T/p10.log" >&2; fail "p10cr"; }
verify_issued "$T/p10.crt"
[ "$(rsp_field p10 body)" = cp ] || fail "p10cr answered by cp: $(rsp_line p10)"
pass "p10cr (MAC): cp, certificate verifies"

# ---- genm with a token: caCerts, rootCaKeyUpdate, certReqTemplate ----
cmp_token default
for info in caCerts rootCaKeyUpdate certReqTemplate; do
    cmpc genm -cmd genm -ref "$TOK_ID" -secret "pass:$TOK_SEC" -infotype "$info" ||
        { cat "$T/genm.log" >&2; fail "genm $info"; }
    [ "$(rsp_field genm body)" = genp ] || fail "genm answered by genp"
    grep -q "genp contains ITAV of type: id-it-$info" "$T/genm.log" || { cat "$T/genm.log" >&2; fail "genp has $info"; }
done
pass "genm (MAC): caCerts, rootCaKeyUpdate, certReqTemplate answered in genp"

# ---- signature protection with our own certificate ----
TRUST=(-trusted "$CA/root.crt")
key dev2
cmpc cr -cmd cr -cert "$T/dev.crt" -key "$T/dev.key" -newkey "$T/dev2.key" -certout "$T/cr.crt" \
    "${TRUST[@]}" || { cat "$T/cr.log" >&2; fail "cr"; }
verify_issued "$T/cr.crt"
[ "$(rsp_field cr body)" = cp ] && [ "$(rsp_field cr extracerts)" -ge 2 ] ||
    fail "cr: cp signed, responder chain in extraCerts: $(rsp_line cr)"
pass "cr (signature, own certificate): cp with the responder's chain"

key dev3
cmpc kur -cmd kur -cert "$T/dev.crt" -key "$T/dev.key" -newkey "$T/dev3.key" \
    -certout "$T/kur.crt" "${TRUST[@]}" || { cat "$T/kur.log" >&2; fail "kur"; }
verify_issued "$T/kur.crt"
[ "$(rsp_field kur body)" = kup ] || fail "kur answered by kup: $(rsp_line kur)"
[ "$(openssl x509 -in "$T/kur.crt" -noout -subject)" = "subject=CN = dev-1" ] || fail "kur keeps the name"
[ "$(openssl x509 -in "$T/kur.crt" -noout -pubkey)" = "$(openssl pkey -in "$T/dev3.key" -pubout)" ] ||
    fail "kur certifies the new key"
pass "kur (signature, current certificate): kup, same name, new key"

cmpc genm2 -cmd genm -cert "$T/kur.crt" -key "$T/dev3.key" -infotype caCerts "${TRUST[@]}" ||
    { cat "$T/genm2.log" >&2; fail "genm signed"; }
pass "genm (signature)"

# ---- implicit confirmation: one round trip, no certConf ----
key dev4
cmpc imp -cmd cr -cert "$T/kur.crt" -key "$T/dev3.key" -newkey "$T/dev4.key" -implicit_confirm \
    -certout "$T/imp.crt" "${TRUST[@]}" || { cat "$T/imp.log" >&2; fail "implicitConfirm"; }
[ -e "$T/imp.rsp.1.der" ] && [ ! -e "$T/imp.rsp.2.der" ] || fail "implicitConfirm: one response only"
grep -q CERTCONF "$T/imp.log" && fail "implicitConfirm granted: no certConf sent"
pass "implicitConfirm granted: cp only, no certConf"

# ---- rr by the holder ----
s=$(serial_of "$T/imp.crt")
cmpc rr -cmd rr -cert "$T/imp.crt" -key "$T/dev4.key" -oldcert "$T/imp.crt" "${TRUST[@]}" ||
    { cat "$T/rr.log" >&2; fail "rr"; }
[ "$(rsp_field rr body)" = rp ] && [ "$(rsp_field rr status)" = 0 ] || fail "rp: $(rsp_line rr)"
[ "$(status_of "$s")" = revoked ] || fail "rr revoked the certificate"
pass "rr (signature, the certificate itself): rp accepted, certificate revoked"
# revoked: it no longer authenticates
key dev5
cmpc rr2 -cmd cr -cert "$T/imp.crt" -key "$T/dev4.key" -newkey "$T/dev5.key" -certout "$T/x.crt" "${TRUST[@]}" &&
    fail "a revoked certificate still authenticates"
[ "$(rsp_field rr2 failinfo)" = signerNotTrusted ] || fail "revoked signer: $(rsp_line rr2)"
pass "a revoked certificate is refused (signerNotTrusted)"

# ---- the TLS listener ----
key dev6
cmp_token default
URL="https://$HTTPS/.well-known/cmp" cmpc tls -cmd ir -tls_used -tls_trusted "$CA/root.crt" \
    -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/dev6.key" -subject "/CN=dev-6" \
    -certout "$T/tls.crt" || { cat "$T/tls.log" >&2; fail "ir over TLS"; }
verify_issued "$T/tls.crt"
pass "ir over https"

# ---- concurrent enrollments through the group commit: a token of 6 uses ----
cmp_token default --uses 6
pids=()
for i in 1 2 3 4 5 6; do
    key "par$i"
    cmpc "par$i" -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/par$i.key" \
        -subject "/CN=par-$i" -certout "$T/par$i.crt" &
    pids+=($!)
done
for i in 0 1 2 3 4 5; do wait "${pids[$i]}" || { cat "$T/par$((i + 1)).log" >&2; fail "parallel ir $((i + 1))"; }; done
for i in 1 2 3 4 5 6; do
    verify_issued "$T/par$i.crt"
    [ "$(status_of "$(serial_of "$T/par$i.crt")")" = valid ] || fail "parallel certificate $i stored"
done
key par7
cmpc par7 -cmd ir -ref "$TOK_ID" -secret "pass:$TOK_SEC" -newkey "$T/par7.key" -subject /CN=par-7 \
    -certout "$T/x.crt" && fail "a 7th enrollment on a token of 6 uses"
[ "$(rsp_field par7 failinfo)" = notAuthorized ] || fail "7th use: $(rsp_line par7)"
pass "6 parallel ir on a 6-use token: all stored and valid; the 7th refused"

fp_serve_stop
pass "server stops cleanly"
