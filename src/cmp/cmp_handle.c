/*
 * cmp_handle.c - one CMP request, start to answer, on the worker thread.
 *
 *   1. d2i_OSSL_CMP_MSG (the whole body, nothing after it); what OpenSSL
 *      3.0 keeps private is read by cmp_peek.c.
 *   2. The transaction: a new one (ir, cr, p10cr, kur, rr, genm, error)
 *      must use an unknown transactionID (replay, cmp_txn.c) and a
 *      messageTime near our clock; a continuation (certConf, pollReq)
 *      takes its open transaction and the OpenSSL context that holds it.
 *   3. Who sent it (new transactions; a continuation must be protected
 *      the same way, which OpenSSL checks on the kept context):
 *        MAC (PasswordBasedMac): senderKID = enrollment token id of the
 *          label's project, secret = cmp_secret.c's derivation;
 *        signature: the first extraCert (RFC 9483 3.3) is checked here:
 *          one we issued must be byte for byte our valid record in the
 *          label's project; any other must chain to the label's anchors
 *          (project CAs, `fleetpki root add` roots, trust_anchors: the
 *          vendor IDevID CA of an eNodeB, 3GPP TS 33.310 9.5), every
 *          certificate of that chain we issued still valid.  It is then
 *          pinned as the only certificate OpenSSL verifies the signature
 *          with (OSSL_CMP_CTX_set1_srvCert).
 *      OpenSSL's OSSL_CMP_validate_msg then checks the protection itself.
 *   4. OSSL_CMP_SRV_process_request with the callbacks of cmp_cb.c.
 *      Responses are signed by the CA's CMP responder certificate with
 *      its chain in extraCerts, or MAC-protected with the same secret when
 *      the request was (RFC 9483 4.1.5: the EE has no trust anchor yet and
 *      learns the root from caPubs under that MAC).
 *   5. A refusal found in 2 or 3 is still answered in CMP form: the
 *      request runs through OpenSSL with acceptUnprotected set and every
 *      callback answering "rejection" with the refusal's PKIFailureInfo
 *      (signed by the responder: the sender's secret is not known to be
 *      right).  It is logged with the request id and audited (cmp.refuse).
 */
#define _POSIX_C_SOURCE 200809L
#include "cmp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cmp_util.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "../ca/chain_check.h"
#include "../common/util.h"
#include "../est/token.h"
#include "../registry/registry.h"
#include "../x509/x509util.h"

static _Thread_local cmp_call *tl_call;

/* OpenSSL's CMP log: kept out of stderr, its first error line kept for
 * our own log line of the request. */
static int cmp_log_cb(const char *func, const char *file, int line, OSSL_CMP_severity level,
                      const char *msg)
{
    (void)func;
    (void)file;
    (void)line;
    if (tl_call != NULL && level <= OSSL_CMP_LOG_ERR && !tl_call->fail_text[0])
        snprintf(tl_call->fail_text, sizeof(tl_call->fail_text), "%s", msg);
    return 1;
}

OSSL_CMP_SRV_CTX *cmp_srv_new(void)
{
    OSSL_CMP_SRV_CTX *srv = OSSL_CMP_SRV_CTX_new(NULL, NULL);
    OSSL_CMP_CTX *ctx = srv ? OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv) : NULL;

    if (ctx == NULL || !OSSL_CMP_CTX_set_log_cb(ctx, cmp_log_cb) ||
        /* RFC 9481 6.1: HMAC-SHA256 for our MAC-protected answers */
        !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_MAC_ALGNID, NID_hmacWithSHA256) ||
        !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_OWF_ALGNID, NID_sha256) ||
        !OSSL_CMP_SRV_CTX_set_send_unprotected_errors(srv, 0) ||
        !OSSL_CMP_SRV_CTX_set_accept_raverified(srv, 0)) {
        OSSL_CMP_SRV_CTX_free(srv);
        return NULL;
    }
    OSSL_CMP_CTX_set_log_verbosity(ctx, OSSL_CMP_LOG_ERR);
    return srv;
}

static void refuse(cmp_call *c, int info, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void refuse(cmp_call *c, int info, const char *fmt, ...)
{
    va_list ap;
    if (c->refuse_info >= 0)
        return; /* the first reason stands */
    c->refuse_info = info;
    va_start(ap, fmt);
    vsnprintf(c->refuse_text, sizeof(c->refuse_text), fmt, ap);
    va_end(ap);
}

/* ---- who sent it ---- */

static int auth_mac(cmp_call *c, cmp_txn *tx, const cmp_peek *pk, OSSL_CMP_CTX *ctx)
{
    const fp_est_label *l = c->lb->cfg;
    char id[FP_TOKEN_ID_MAX], secret[CMP_SECRET_MAX], esc[FP_LOG_ESCAPED_MAX(64)];
    fp_token_rec t;
    fp_error err = {0};
    int rc;

    if (l->auth == FP_EST_AUTH_CERT) {
        refuse(c, CMP_FAIL(notAuthorized), "label '%s' takes signature-protected requests only",
               l->name);
        return FP_ERR_PASSPHRASE;
    }
    if (pk->kid_len <= 0 || pk->kid_len >= (int)sizeof(id)) {
        refuse(c, CMP_FAIL(badMessageCheck), "MAC protection needs the token id as senderKID");
        return FP_ERR_PASSPHRASE;
    }
    memcpy(id, pk->kid, (size_t)pk->kid_len);
    id[pk->kid_len] = '\0';
    if (strlen(id) != (size_t)pk->kid_len) {
        refuse(c, CMP_FAIL(badMessageCheck), "senderKID is not a token id");
        return FP_ERR_PASSPHRASE;
    }
    rc = fp_store_token_get(c->store, l->project, id, &t, &err);
    if (rc != FP_ERR_OK && rc != FP_ERR_NOT_FOUND) {
        fp_log(FP_LOG_ERROR, "id=%s cmp token lookup: %s", c->req_id, err.msg);
        refuse(c, CMP_FAIL(systemFailure), "internal error (request %s)", c->req_id);
        return rc;
    }
    /* unknown id, another label's token and a wrong secret (found by the
     * MAC check below) get the same answer */
    if (rc != FP_ERR_OK || strcmp(t.label, l->name) != 0) {
        fp_log(FP_LOG_DEBUG, "id=%s cmp: no token %s on label %s", c->req_id,
               fp_log_escape(esc, sizeof(esc), id), l->name);
        refuse(c, CMP_FAIL(badMessageCheck), "MAC protection does not verify");
        return FP_ERR_PASSPHRASE;
    }
    if (t.uses_left <= 0 || (t.expires_at != 0 && fp_now() >= t.expires_at)) {
        refuse(c, CMP_FAIL(notAuthorized), "enrollment token %s", t.uses_left <= 0 ? "is used up"
                                                                                  : "has expired");
        return FP_ERR_STATE;
    }
    if ((rc = cmp_token_secret(c->st->mac_key, t.id, t.hash, secret, &err)) != FP_ERR_OK ||
        !OSSL_CMP_CTX_set1_secretValue(ctx, (unsigned char *)secret, (int)strlen(secret)) ||
        !OSSL_CMP_CTX_set1_srvCert(ctx, NULL)) {
        OPENSSL_cleanse(secret, sizeof(secret));
        refuse(c, CMP_FAIL(systemFailure), "internal error (request %s)", c->req_id);
        return FP_ERR_CRYPTO;
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    snprintf(tx->token_id, sizeof(tx->token_id), "%s", t.id);
    snprintf(tx->cn_pattern, sizeof(tx->cn_pattern), "%s", t.cn_pattern);
    snprintf(tx->actor, sizeof(tx->actor), "cmp:token:%s", t.id);
    return FP_ERR_OK;
}

static bool issued_by_project(const cmp_label *lb, X509 *cert)
{
    for (int i = 0; i < lb->n_cas; i++)
        if (X509_check_issued(fp_ca_get0_cert(lb->cas[i]), cert) == X509_V_OK)
            return true;
    return false;
}

/* One we issued: byte for byte our valid record, of the label's project. */
static int ours_check(cmp_call *c, X509 *cert, char serial[FP_SERIAL_HEX_MAX])
{
    unsigned char *der = NULL;
    int der_len, rc;
    int64_t now = fp_now();
    fp_cert_rec rec;
    fp_error err = {0};

    if (fp_serial_hex(X509_get0_serialNumber(cert), serial) != 0)
        return FP_ERR_STATE;
    rc = fp_store_cert_get(c->store, serial, &rec, &err);
    if (rc != FP_ERR_OK)
        return rc == FP_ERR_NOT_FOUND ? FP_ERR_STATE : rc;
    der_len = i2d_X509(cert, &der);
    if (der_len <= 0 || (size_t)der_len != rec.der_len ||
        CRYPTO_memcmp(der, rec.der, rec.der_len) != 0 || rec.status != FP_CERT_VALID ||
        now < rec.not_before || now > rec.not_after || strcmp(rec.project, c->lb->cfg->project) != 0)
        rc = FP_ERR_STATE;
    OPENSSL_free(der);
    fp_cert_rec_clear(&rec);
    return rc;
}

/* Any other: chains to the label's anchors, every certificate of the
 * chain that our CA issued still valid in our records. */
static int anchor_check(cmp_call *c, X509 *leaf, STACK_OF(X509) *untrusted, fp_error *err)
{
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    int rc;

    if (vctx == NULL || X509_STORE_CTX_init(vctx, c->lb->anchors, leaf, untrusted) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "chain verification set-up");
        goto out;
    }
    if (X509_verify_cert(vctx) != 1) {
        rc = fp_err_set(err, FP_ERR_STATE, "%s",
                        X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
        goto out;
    }
    for (int i = 1; i < sk_X509_num(X509_STORE_CTX_get0_chain(vctx)); i++) {
        fp_error kerr = {0};
        if (fp_x509_cert_key_check(sk_X509_value(X509_STORE_CTX_get0_chain(vctx), i), &kerr) !=
            FP_ERR_OK) {
            rc = fp_err_set(err, FP_ERR_STATE, "chain certificate at depth %d: %s", i, kerr.msg);
            goto out;
        }
    }
    rc = fp_chain_check_store(c->store, fp_ca_get0_cert(c->lb->ca), fp_ca_id(c->lb->ca),
                              X509_STORE_CTX_get0_chain(vctx), fp_now(), err);
out:
    X509_STORE_CTX_free(vctx);
    return rc;
}

/* Device registry (issue 10): the signer is a device of the project;
 * a suspended or decommissioned one is refused. */
static int registry_contact(cmp_call *c, X509 *cert)
{
    fp_error err = {0};
    int rc;

    if (c->st->app->registry == NULL)
        return FP_ERR_OK;
    rc = fp_registry_contact(c->st->app->registry, c->store, c->lb->cfg->project, cert, NULL, &err);
    if (rc == FP_ERR_OK)
        return rc;
    if (rc == FP_ERR_STATE || rc == FP_ERR_ARG || rc == FP_ERR_DUPLICATE)
        refuse(c, CMP_FAIL(notAuthorized), "device refused: %s", err.msg);
    else
        refuse(c, CMP_FAIL(systemFailure), "internal error (request %s)", c->req_id);
    return rc;
}

static int auth_sig(cmp_call *c, cmp_txn *tx, const cmp_peek *pk, OSSL_CMP_CTX *ctx)
{
    const fp_est_label *l = c->lb->cfg;
    STACK_OF(X509) *rest = NULL;
    X509 *leaf;
    fp_error err = {0}, kerr = {0};
    char serial[FP_SERIAL_HEX_MAX];
    int rc;

    if (l->auth == FP_EST_AUTH_TOKEN) {
        refuse(c, CMP_FAIL(notAuthorized), "label '%s' takes MAC-protected requests only", l->name);
        return FP_ERR_PASSPHRASE;
    }
    if (pk->extra == NULL || sk_X509_num(pk->extra) == 0) {
        refuse(c, CMP_FAIL(signerNotTrusted),
               "signature protection needs the protection certificate first in extraCerts");
        return FP_ERR_PASSPHRASE;
    }
    leaf = sk_X509_value(pk->extra, 0);
    if (fp_x509_cert_key_check(leaf, &kerr) != FP_ERR_OK) {
        refuse(c, CMP_FAIL(signerNotTrusted), "protection certificate key: %s", kerr.msg);
        return FP_ERR_PASSPHRASE;
    }
    if (issued_by_project(c->lb, leaf)) {
        rc = ours_check(c, leaf, serial);
        if (rc != FP_ERR_OK) {
            if (rc != FP_ERR_STATE)
                fp_log(FP_LOG_ERROR, "id=%s cmp: certificate lookup failed", c->req_id);
            refuse(c, rc == FP_ERR_STATE ? CMP_FAIL(signerNotTrusted) : CMP_FAIL(systemFailure),
                   "protection certificate is revoked, expired or not issued here");
            return FP_ERR_PASSPHRASE;
        }
        tx->ours = true;
        snprintf(tx->actor, sizeof(tx->actor), "cmp:cert:%s", serial);
    } else {
        char *subj;
        rest = sk_X509_dup(pk->extra);
        if (rest != NULL)
            (void)sk_X509_shift(rest);
        rc = anchor_check(c, leaf, rest, &err);
        sk_X509_free(rest);
        if (rc != FP_ERR_OK) {
            if (rc != FP_ERR_STATE)
                fp_log(FP_LOG_ERROR, "id=%s cmp chain check: %s", c->req_id, err.msg);
            refuse(c, rc == FP_ERR_STATE ? CMP_FAIL(signerNotTrusted) : CMP_FAIL(systemFailure),
                   "protection certificate does not chain to a trust anchor of label '%s': %s",
                   l->name, rc == FP_ERR_STATE ? err.msg : "internal error");
            return FP_ERR_PASSPHRASE;
        }
        subj = fp_name_string(X509_get_subject_name(leaf));
        snprintf(tx->actor, sizeof(tx->actor), "cmp:anchor-cert:%.120s", subj ? subj : "?");
        free(subj);
    }
    if ((rc = registry_contact(c, leaf)) != FP_ERR_OK)
        return rc;
    if (!X509_up_ref(leaf)) {
        refuse(c, CMP_FAIL(systemFailure), "internal error (request %s)", c->req_id);
        return FP_ERR_NOMEM;
    }
    tx->signer = leaf;
    tx->by_cert = true;
    /* the signature is checked with exactly this certificate */
    if (!OSSL_CMP_CTX_set1_secretValue(ctx, NULL, 0) || !OSSL_CMP_CTX_set1_srvCert(ctx, leaf)) {
        refuse(c, CMP_FAIL(systemFailure), "internal error (request %s)", c->req_id);
        return FP_ERR_CRYPTO;
    }
    return FP_ERR_OK;
}

/* The CA's responder signs; its chain goes in extraCerts. */
static bool set_responder(const cmp_label *lb, OSSL_CMP_CTX *ctx)
{
    return OSSL_CMP_CTX_set1_cert(ctx, lb->resp_cert) && OSSL_CMP_CTX_set1_pkey(ctx, lb->resp_key) &&
           OSSL_CMP_CTX_set1_extraCertsOut(ctx, lb->resp_chain);
}

static int authenticate(cmp_call *c, cmp_txn *tx, const cmp_peek *pk, const OSSL_CMP_MSG *msg,
                        OSSL_CMP_CTX *ctx)
{
    int rc;

    tx->label = c->lb->index;
    snprintf(tx->project, sizeof(tx->project), "%s", c->lb->cfg->project);
    if (pk->prot_nid == NID_undef) {
        /* RFC 9483 3.2: every request is protected */
        refuse(c, CMP_FAIL(badMessageCheck), "request is not protected");
        return FP_ERR_PASSPHRASE;
    }
    rc = pk->prot_nid == NID_id_PasswordBasedMAC ? auth_mac(c, tx, pk, ctx)
                                                 : auth_sig(c, tx, pk, ctx);
    if (rc != FP_ERR_OK)
        return rc;
    /* the protection itself, by OpenSSL */
    if (OSSL_CMP_validate_msg(ctx, msg) != 1) {
        refuse(c, CMP_FAIL(badMessageCheck), "%s protection does not verify",
               pk->prot_nid == NID_id_PasswordBasedMAC ? "MAC" : "signature");
        return FP_ERR_PASSPHRASE;
    }
    return FP_ERR_OK;
}

/* ---- the request ---- */

static const char *type_name(int t)
{
    static const char *const names[] = {"ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr",
                                        "kur", "kup", "krr", "krp", "rr", "rp", "ccr", "ccp",
                                        "ckuann", "cann", "rann", "crlann", "pkiconf", "nested",
                                        "genm", "genp", "error", "certConf", "pollReq", "pollRep"};
    return t >= 0 && t < (int)(sizeof(names) / sizeof(names[0])) ? names[t] : "?";
}

static void audit_refusal(cmp_call *c, fp_store *store, const char *actor, const char *tid,
                          const char *why)
{
    fp_error err = {0};
    fp_audit_event ev = {.actor = actor[0] ? actor : "cmp:unauthenticated", .action = "cmp.refuse",
                         .object = tid, .detail = why, .project = c->lb->cfg->project};
    if (fp_store_audit_append(store, &ev, &err) != FP_ERR_OK)
        fp_log(FP_LOG_ERROR, "id=%s cmp: audit: %s", c->req_id, err.msg);
}

int cmp_handle(cmp_state *st, cmp_worker *wk, const cmp_label *lb, const char *unknown_label,
               const char *req_id, const unsigned char *der, size_t len, unsigned char **out,
               size_t *outlen, char *who, size_t whosize, cmp_job **job, fp_error *err)
{
    const unsigned char *p = der;
    OSSL_CMP_MSG *msg = NULL, *rsp = NULL;
    OSSL_CMP_SRV_CTX *srv = NULL;
    OSSL_CMP_CTX *ctx;
    ASN1_OCTET_STRING *tidos;
    cmp_peek pk;
    cmp_call call;
    cmp_txn *tx = NULL;
    bool continuation = false, from_worker = false;
    char tid[2 * CMP_TID_MAX + 1] = "-", actor[160] = "", esc[FP_LOG_ESCAPED_MAX(256)];
    /* the actor may carry a certificate subject: escaped for the log */
    char eact[FP_LOG_ESCAPED_MAX(160)];
    const char *lname;
    int type, rsp_type, rc = FP_ERR_OK, n;
    int64_t now = fp_now();

    *out = NULL;
    *outlen = 0;
    memset(&call, 0, sizeof(call));
    memset(&pk, 0, sizeof(pk));
    call.st = st;
    call.lb = lb;
    call.store = wk->store;
    call.req_id = req_id;
    call.refuse_info = -1;
    call.async = job != NULL;
    if (job != NULL)
        *job = NULL;
    if (len > LONG_MAX || (msg = d2i_OSSL_CMP_MSG(NULL, &p, (long)len)) == NULL || p != der + len) {
        rc = fp_err_set(err, FP_ERR_ARG, "body is not one DER PKIMessage (RFC 4210 5.1)");
        goto out;
    }
    if (cmp_peek_msg(der, len, &pk, err) != FP_ERR_OK) {
        rc = fp_err_set(err, FP_ERR_ARG, "PKIMessage header: %s", err->msg);
        goto out;
    }
    type = OSSL_CMP_MSG_get_bodytype(msg);
    if (unknown_label != NULL)
        refuse(&call, CMP_FAIL(badRequest), "unknown CMP label '%s'",
               fp_log_escape(esc, sizeof(esc), unknown_label));
    tidos = OSSL_CMP_HDR_get0_transactionID(OSSL_CMP_MSG_get0_header(msg));
    if (tidos != NULL && ASN1_STRING_length(tidos) > 0 &&
        ASN1_STRING_length(tidos) <= CMP_TID_MAX)
        fp_hex(ASN1_STRING_get0_data(tidos), (size_t)ASN1_STRING_length(tidos), tid);
    else
        refuse(&call, CMP_FAIL(badRequest), "transactionID missing or longer than %d octets",
               CMP_TID_MAX);
    if (call.refuse_info < 0 &&
        (type == CMP_BODY_CERTCONF || type == CMP_BODY_POLLREQ ||
         type == CMP_BODY_ERROR)) {
        bool other = false;
        tx = cmp_txn_take(st->txns, ASN1_STRING_get0_data(tidos), ASN1_STRING_length(tidos),
                          lb->index, &other);
        if (other) {
            refuse(&call, CMP_FAIL(badRequest), "transaction belongs to another label");
        } else if (tx != NULL) {
            /* OpenSSL 3.0 closes its transaction on any failed check (its
             * error answer resets the context), so a replayed or forged
             * continuation would end the client's transaction, and revoke
             * its certificate: check nonce and protection first, on the
             * side, and refuse such a message without touching it */
            ASN1_OCTET_STRING *rn = OSSL_CMP_HDR_get0_recipNonce(OSSL_CMP_MSG_get0_header(msg));
            int bad = 0;
            if (rn == NULL || tx->nonce_len <= 0 || ASN1_STRING_length(rn) != tx->nonce_len ||
                CRYPTO_memcmp(ASN1_STRING_get0_data(rn), tx->nonce, (size_t)tx->nonce_len) != 0)
                bad = CMP_FAIL(badRecipientNonce);
            else if (OSSL_CMP_validate_msg(OSSL_CMP_SRV_CTX_get0_cmp_ctx(tx->srv), msg) != 1)
                bad = CMP_FAIL(badMessageCheck);
            ERR_clear_error();
            if (bad != 0) {
                cmp_txn_put(st->txns, tx, tx->taken_state, tx->deadline);
                tx = NULL;
                refuse(&call, bad, "%s", bad == CMP_FAIL(badRecipientNonce)
                                             ? "recipNonce is not the senderNonce of our last "
                                               "answer in this transaction (replay?)"
                                             : "protection does not verify for this transaction");
            } else {
                continuation = true;
                srv = tx->srv;
                snprintf(actor, sizeof(actor), "%s", tx->actor);
            }
        } else if (type != CMP_BODY_ERROR) {
            refuse(&call, CMP_FAIL(badRequest),
                   "no open transaction with this transactionID (finished, expired or unknown)");
        }
    }
    if (call.refuse_info < 0 && !continuation) {
        /* RFC 9483 3.1: messageTime near ours, so an old request cannot
         * come back once its transactionID is forgotten */
        if (pk.has_time && (pk.msg_time < now - st->msgtime_skew || pk.msg_time > now + st->msgtime_skew))
            refuse(&call, CMP_FAIL(badTime), "messageTime is more than %lld s from the server's clock",
                   (long long)st->msgtime_skew);
        else if ((n = cmp_txn_begin(st->txns, ASN1_STRING_get0_data(tidos),
                                    ASN1_STRING_length(tidos), &tx)) == FP_ERR_EXISTS)
            refuse(&call, CMP_FAIL(transactionIdInUse),
                   "transactionID is in use or was used before (replay?)");
        else if (n != FP_ERR_OK)
            refuse(&call, CMP_FAIL(systemUnavail), "too many open CMP transactions, retry later");
    }
    if (call.refuse_info < 0 && !continuation) {
        srv = wk->srv;
        from_worker = true;
        ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv);
        call.tx = tx;
        (void)authenticate(&call, tx, &pk, msg, ctx);
        if (call.refuse_info < 0) /* a claimed identity is not an actor */
            snprintf(actor, sizeof(actor), "%s", tx->actor);
    }
    if (call.refuse_info >= 0) {
        /* answered in CMP form by the worker's context, signed by the
         * responder, every callback rejecting */
        srv = wk->srv;
        from_worker = true;
        ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv);
        if (!OSSL_CMP_CTX_set1_secretValue(ctx, NULL, 0) || !OSSL_CMP_CTX_set1_srvCert(ctx, NULL)) {
            rc = fp_err_set(err, FP_ERR_CRYPTO, "CMP context");
            goto out;
        }
        OSSL_CMP_SRV_CTX_set_accept_unprotected(srv, 1);
    }
    ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv);
    call.tx = tx;
    if (!set_responder(lb, ctx) || !cmp_srv_set_callbacks(srv, &call) ||
        !OSSL_CMP_SRV_CTX_set_grant_implicit_confirm(srv, st->grant_implicit)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CMP context");
        goto out;
    }
    tl_call = &call;
    rsp = OSSL_CMP_SRV_process_request(srv, msg);
    tl_call = NULL;
    ERR_clear_error();
    OSSL_CMP_SRV_CTX_set_accept_unprotected(srv, 0);
    if (rsp == NULL) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "OpenSSL produced no CMP response");
        goto out;
    }
    rsp_type = OSSL_CMP_MSG_get_bodytype(rsp);
    if ((n = i2d_OSSL_CMP_MSG(rsp, out)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "encoding the CMP response");
        goto out;
    }
    *outlen = (size_t)n;
    /* what is left open, and who holds OpenSSL's state of it */
    if (tx != NULL && (call.refuse_info < 0 || continuation)) {
        bool cert_rsp = rsp_type == CMP_BODY_IP || rsp_type == CMP_BODY_CP ||
                        rsp_type == CMP_BODY_KUP;
        int state = CMP_TX_DONE;
        int64_t deadline = 0;
        if (call.refuse_info < 0 && cert_rsp && call.issued &&
            OSSL_CMP_CTX_get_option(ctx, OSSL_CMP_OPT_IMPLICIT_CONFIRM) != 1) {
            state = CMP_TX_CONFIRM;
            deadline = now + st->confirm_wait;
        } else if (call.refuse_info < 0 && (call.waiting || rsp_type == CMP_BODY_POLLREP)) {
            state = CMP_TX_POLL;
            deadline = now + CMP_POLL_SECONDS;
        } else if (call.issued) {
            tx->confirmed = true; /* implicitly confirmed */
        } else if (continuation && tx->cert != NULL && !tx->confirmed) {
            /* the transaction ends without a valid certConf (an error
             * message, a certConf that failed its checks): OpenSSL has
             * closed it, so the certificate can no longer be confirmed */
            cmp_revoke_unconfirmed(&call, "its transaction ended without confirmation");
        }
        if (state != CMP_TX_DONE) {
            /* the nonce the continuation must echo (RFC 4210 5.1.1) */
            cmp_peek rp;
            if (cmp_peek_msg(*out, *outlen, &rp, NULL) == FP_ERR_OK && rp.nonce_len > 0) {
                memcpy(tx->nonce, rp.nonce, (size_t)rp.nonce_len);
                tx->nonce_len = rp.nonce_len;
            } else {
                tx->nonce_len = 0; /* no continuation can match */
            }
            cmp_peek_clear(&rp);
        }
        if (state != CMP_TX_DONE && from_worker) {
            OSSL_CMP_SRV_CTX *fresh = cmp_srv_new();
            if (fresh == NULL) {
                /* cannot keep it open: the sweeper's rule applies at once */
                state = CMP_TX_CONFIRM;
                deadline = now;
            } else {
                wk->srv = fresh;
            }
            tx->srv = srv;
        }
        if (state == CMP_TX_DONE && !from_worker)
            tx->srv = srv; /* freed with the record's resources */
        if (state == CMP_TX_DONE && from_worker) {
            /* the worker's context keeps no secret between requests */
            (void)OSSL_CMP_CTX_set1_secretValue(ctx, NULL, 0);
            (void)OSSL_CMP_CTX_set1_srvCert(ctx, NULL);
        }
        cmp_txn_put(st->txns, tx, state, deadline);
        tx = NULL;
    } else if (tx != NULL) {
        cmp_txn_put(st->txns, tx, CMP_TX_DONE, 0);
        tx = NULL;
    }
    lname = lb->cfg->name[0] ? lb->cfg->name : "default";
    fp_log_escape(eact, sizeof(eact), actor[0] ? actor : "-");
    if (call.refuse_info >= 0) {
        fp_log(FP_LOG_INFO, "id=%s cmp %s refused (label %s, transaction %s, actor %s): %s",
               req_id, type_name(type), lname, tid, eact,
               fp_log_escape(esc, sizeof(esc), call.refuse_text));
        audit_refusal(&call, wk->store, actor, tid, call.refuse_text);
    } else if (call.fail_info != 0 || rsp_type == CMP_BODY_ERROR) {
        const char *why = call.fail_text[0] ? call.fail_text : "rejected";
        fp_log(FP_LOG_INFO, "id=%s cmp %s -> %s (label %s, transaction %s, actor %s): %s", req_id,
               type_name(type), type_name(rsp_type), lname, tid, eact,
               fp_log_escape(esc, sizeof(esc), why));
        /* refusals of the issuance path are audited there (csr.refuse) */
        if (!call.audited)
            audit_refusal(&call, wk->store, actor, tid, why);
    } else {
        fp_log(FP_LOG_DEBUG, "id=%s cmp %s -> %s (label %s, transaction %s, actor %s)", req_id,
               type_name(type), type_name(rsp_type), lname, tid, eact);
    }
out:
    /* a certificate in the group commit: the caller holds the answer */
    if (job != NULL)
        *job = call.job;
    if (who != NULL && whosize > 0)
        snprintf(who, whosize, "%s", call.refuse_info < 0 ? actor : "");
    if (tx != NULL)
        cmp_txn_put(st->txns, tx, CMP_TX_DONE, 0);
    cmp_peek_clear(&pk);
    OSSL_CMP_MSG_free(msg);
    OSSL_CMP_MSG_free(rsp);
    ERR_clear_error();
    return rc;
}
