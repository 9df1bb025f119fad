/*
 * cmp_cb.c - the callbacks OpenSSL's CMP server calls once it has parsed
 * a request and checked its protection (OSSL_CMP_SRV_CTX_init): what
 * fleetpki answers to ir/cr/p10cr/kur, rr, genm, certConf, pollReq and
 * error.  OpenSSL builds and protects the response from what they return.
 *
 * A refusal of a certificate request or a revocation is returned as a
 * PKIStatusInfo "rejection" with its PKIFailureInfo bit (RFC 9483 3.6.4:
 * the ip/cp/kup/rp then carries it); a callback that returns failure
 * makes OpenSSL 3.0 answer with an error message whose failInfo is
 * always badRequest (cmp_server.c), which is what genm, certConf and
 * pollReq refusals get.
 */
#define _POSIX_C_SOURCE 200809L
#include "cmp.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/cmperr.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "../ca/issue.h"
#include "../common/util.h"
#include "../est/token.h"
#include "../x509/x509util.h"

static OSSL_CMP_PKISI *reject(cmp_call *c, int info, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static OSSL_CMP_PKISI *reject(cmp_call *c, int info, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_text, sizeof(c->fail_text), fmt, ap);
    va_end(ap);
    c->fail_info = info;
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, info, c->fail_text);
}

/* The PKIFailureInfo of an issuance error (common/err.h classes). */
static int fail_info_of(int code)
{
    switch (fp_err_class(code)) {
    case FP_ERRCLASS_REFUSED:
        return code == FP_ERR_CSR_POP ? CMP_FAIL(badPOP) : CMP_FAIL(badCertTemplate);
    case FP_ERRCLASS_MALFORMED:
    case FP_ERRCLASS_BAD_INPUT:
    case FP_ERRCLASS_TOO_LARGE:
        return CMP_FAIL(badDataFormat);
    case FP_ERRCLASS_AUTH:
        return CMP_FAIL(notAuthorized);
    case FP_ERRCLASS_CONFLICT:
        return code == FP_ERR_STATE ? CMP_FAIL(notAuthorized) : CMP_FAIL(systemFailure);
    default:
        return CMP_FAIL(systemFailure);
    }
}

/* ---- names ---- */

static int san_der(X509 *x, unsigned char **out)
{
    GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = g ? i2d_GENERAL_NAMES(g, out) : 0;
    GENERAL_NAMES_free(g);
    return n;
}

/* Same subject and same subjectAltName extension (RFC 4210 5.3.5: kur
 * keeps the identity; RFC 9483 4.1.3). */
static bool same_identity(X509 *a, X509 *b)
{
    unsigned char *da = NULL, *db = NULL;
    int la, lb;
    bool same;

    if (X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) != 0)
        return false;
    la = san_der(a, &da);
    lb = san_der(b, &db);
    same = la == lb && (la <= 0 || !memcmp(da, db, (size_t)la));
    OPENSSL_free(da);
    OPENSSL_free(db);
    return same;
}

static bool cn_of(const X509_NAME *n, char *buf, int size)
{
    return X509_NAME_get_text_by_NID((X509_NAME *)n, NID_commonName, buf, size) > 0;
}

/* The issued certificate against who asked (fp_issue_req.check). */
static int identity_check(const cmp_label *lb, bool by_cert, bool ours, X509 *signer, X509 *cert,
                          fp_error *err)
{
    const char *rule = lb->cfg->cert_identity;
    char a[FP_TOKEN_CN_MAX], b[FP_TOKEN_CN_MAX];

    if (!by_cert)
        return FP_ERR_OK; /* token: its CN pattern was checked on the request */
    if (ours || !strcasecmp(rule, "same")) {
        /* kur and cr with our certificate keep its names; an anchor
         * certificate under "same" too */
        if (!same_identity(cert, signer))
            return fp_err_set(err, FP_ERR_CSR_SUBJECT,
                              "subject or subjectAltName differs from the protection certificate's");
        return FP_ERR_OK;
    }
    if (!strcasecmp(rule, "cn")) {
        if (!cn_of(X509_get_subject_name(cert), a, sizeof(a)) ||
            !cn_of(X509_get_subject_name(signer), b, sizeof(b)) || strcmp(a, b) != 0)
            return fp_err_set(err, FP_ERR_CSR_CN,
                              "commonName differs from the protection certificate's");
        return FP_ERR_OK;
    }
    return fp_err_set(err, FP_ERR_CSR_SUBJECT,
                      "cert_identity '%s' is not offered over CMP (same or cn)", rule);
}

static int check_issued(void *arg, X509 *cert, const fp_cert_rec *rec, fp_error *err)
{
    cmp_call *c = arg;
    (void)rec;
    return identity_check(c->lb, c->tx->by_cert, c->tx->ours, c->tx->signer, cert, err);
}

/* The same for a job, which also keeps the certificate's bytes: the
 * first signature is the one answered; a second (the writer signing
 * again after a serial collision) only marks the job. */
static int check_job(void *arg, X509 *cert, const fp_cert_rec *rec, fp_error *err)
{
    cmp_job *j = arg;
    int rc = identity_check(j->lb, j->by_cert, j->ours, j->signer, cert, err);
    if (rc != FP_ERR_OK)
        return rc;
    if (j->der != NULL) {
        j->resigned = true;
        return FP_ERR_OK;
    }
    if ((j->der = malloc(rec->der_len)) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    memcpy(j->der, rec->der, rec->der_len);
    j->der_len = rec->der_len;
    return FP_ERR_OK;
}

void cmp_job_free(cmp_job *j)
{
    if (j == NULL)
        return;
    X509_REQ_free(j->csr);
    X509_free(j->signer);
    X509_free(j->cert);
    free(j->der);
    OPENSSL_free(j->rsp);
    free(j);
}

/* Writer thread: the commit's outcome; the last of commit and handler
 * hands the job to the worker. */
static void job_done(void *arg, int rc, const fp_error *err, X509 *cert)
{
    cmp_job *j = arg;
    j->rc = rc;
    j->cert = cert;
    if (err != NULL && rc != FP_ERR_OK)
        j->err = *err;
    if (__atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) == 0)
        fp_http_worker_post_item(j->req->worker, &j->post);
}

void cmp_job_arm(cmp_job *j)
{
    if (__atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) == 0)
        fp_http_worker_post_item(j->req->worker, &j->post);
}

/* Submit csr (taken) to the group commit; FP_ERR_OK with c->job set, or
 * FP_ERR_STATE when there is no committer (then nothing was done). */
static int submit_job(cmp_call *c, int type, X509_REQ **csr, bool own_key, const char *via,
                      fp_error *err)
{
    const fp_est_label *l = c->lb->cfg;
    cmp_job *j = calloc(1, sizeof(*j));
    int rc;

    if (j == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    j->csr = *csr;
    *csr = NULL;
    j->lb = c->lb;
    j->by_cert = c->tx->by_cert;
    j->ours = c->tx->ours;
    if (c->tx->signer != NULL && X509_up_ref(c->tx->signer))
        j->signer = c->tx->signer;
    snprintf(j->actor, sizeof(j->actor), "%s", c->tx->actor);
    snprintf(j->token_id, sizeof(j->token_id), "%s", c->tx->token_id);
    memcpy(j->tid, c->tx->tid, (size_t)c->tx->tid_len);
    j->tid_len = c->tx->tid_len;
    j->label = c->lb->index;
    j->refs = 2;
    j->ir = (fp_issue_req){.csr = j->csr, .profile = l->profile, .actor = j->actor,
                           .own_key = own_key, .project = l->project,
                           .action = type == CMP_BODY_KUR ? "cert.renew" : "cert.issue",
                           .via = via, .token_id = j->token_id[0] ? j->token_id : NULL,
                           .check = check_job, .check_arg = j,
                           .auth_cert = j->by_cert ? j->signer : NULL};
    rc = fp_issue_submit(c->st->app->issuer, c->store, &j->ir, job_done, j, err);
    if (rc != FP_ERR_OK) {
        *csr = j->csr; /* back to the caller (a fallback to fp_issue) */
        j->csr = NULL;
        cmp_job_free(j);
        return rc;
    }
    c->job = j;
    return FP_ERR_OK;
}

/* ---- certificate requests ---- */

static STACK_OF(X509) *dup_certs(STACK_OF(X509) *in)
{
    return in ? X509_chain_up_ref(in) : sk_X509_new_null();
}

/* Hand cert (decoded from der) to OpenSSL with the chain and, for an
 * ir, the root in caPubs (3GPP TS 33.310 9.5.4: the eNB learns the
 * operator root from the ip). */
static OSSL_CMP_PKISI *grant(cmp_call *c, int type, const unsigned char *der, size_t len,
                             X509 **certOut, STACK_OF(X509) **chainOut, STACK_OF(X509) **caPubs)
{
    X509 *cert = fp_cert_from_der(der, len);
    if (cert == NULL)
        return reject(c, CMP_FAIL(systemFailure), "issued certificate does not decode");
    *chainOut = dup_certs(c->lb->resp_chain);
    if (type == CMP_BODY_IR && c->lb->root != NULL) {
        *caPubs = sk_X509_new_null();
        if (*caPubs != NULL && X509_up_ref(c->lb->root) && !sk_X509_push(*caPubs, c->lb->root))
            X509_free(c->lb->root);
    }
    X509_free(c->tx->cert);
    c->tx->cert = cert;
    /* a second reference, not a copy: X509_dup would decode the key again
     * (OpenSSL 3.0's decoders are a large part of an enrollment's CPU) */
    if (X509_up_ref(cert))
        *certOut = cert;
    fp_serial_hex(X509_get0_serialNumber(cert), c->tx->serial);
    c->issued = true;
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

/* A held request polled again: its decision (RFC 9483 4.4). */
static OSSL_CMP_PKISI *held_answer(cmp_call *c, int type, X509 **certOut,
                                   STACK_OF(X509) **chainOut, STACK_OF(X509) **caPubs)
{
    fp_pending_rec pr;
    fp_cert_rec rec;
    fp_error err = {0};
    OSSL_CMP_PKISI *si;

    if (fp_store_pending_get(c->store, c->tx->pending_id, &pr, &err) != FP_ERR_OK)
        return reject(c, CMP_FAIL(systemFailure), "held request: %s", err.msg);
    if (pr.status == FP_PENDING_WAITING) {
        fp_pending_rec_clear(&pr);
        c->waiting = true;
        return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_waiting, 0, NULL);
    }
    if (pr.status == FP_PENDING_REJECTED) {
        si = reject(c, CMP_FAIL(notAuthorized), "request %lld was rejected by an operator",
                    (long long)pr.id);
        fp_pending_rec_clear(&pr);
        return si;
    }
    if (fp_store_cert_get(c->store, pr.serial, &rec, &err) != FP_ERR_OK) {
        fp_pending_rec_clear(&pr);
        return reject(c, CMP_FAIL(systemFailure), "approved certificate: %s", err.msg);
    }
    si = grant(c, type, rec.der, rec.der_len, certOut, chainOut, caPubs);
    fp_cert_rec_clear(&rec);
    fp_pending_rec_clear(&pr);
    return si;
}

/* Manual approval: hold the request (p10cr only, see docs/cmp.md) and
 * answer "waiting"; the client polls (pollReq). */
static OSSL_CMP_PKISI *hold(cmp_call *c, const OSSL_CMP_MSG *req, X509_REQ *csr, int type,
                            X509 **certOut, STACK_OF(X509) **chainOut, STACK_OF(X509) **caPubs)
{
    const fp_est_label *l = c->lb->cfg;
    unsigned char *der = NULL, md[32];
    int len;
    char hash[65];
    fp_pending_rec pr;
    fp_error err = {0};
    int rc;
    OSSL_CMP_PKISI *si = NULL;

    if (type != CMP_BODY_P10CR)
        return reject(c, CMP_FAIL(badRequest),
                      "label '%s' holds requests for manual approval: send a p10cr", l->name);
    if ((len = i2d_X509_REQ(csr, &der)) <= 0 || EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) != 1) {
        OPENSSL_free(der);
        return reject(c, CMP_FAIL(systemFailure), "hashing the request");
    }
    fp_hex(md, sizeof(md), hash);
    rc = fp_store_pending_find(c->store, l->project, l->name, hash, &pr, &err);
    if (rc == FP_ERR_NOT_FOUND) {
        fp_pending_rec add;
        fp_audit_event ev = {.actor = c->tx->actor, .action = "csr.hold", .object = "",
                             .detail = "", .project = l->project};
        fp_issue_req ir = {.csr = csr, .profile = l->profile, .actor = c->tx->actor,
                           .project = l->project, .via = "cmp/hold"};
        if ((rc = fp_issue_precheck(c->st->app->issuer, c->store, &ir, &err)) != FP_ERR_OK) {
            si = reject(c, fail_info_of(rc), "%s: %s", fp_err_name(rc), err.msg);
            goto out;
        }
        memset(&add, 0, sizeof(add));
        snprintf(add.label, sizeof(add.label), "%s", l->name);
        snprintf(add.project, sizeof(add.project), "%s", l->project);
        memcpy(add.csr_hash, hash, sizeof(hash));
        add.csr = der;
        add.csr_len = (size_t)len;
        add.subject = fp_name_string(X509_REQ_get_subject_name(csr));
        add.actor = c->tx->actor;
        rc = fp_store_pending_add(c->store, &add, &c->tx->pending_id, &ev, &err);
        free(add.subject);
        if (rc != FP_ERR_OK) {
            si = reject(c, CMP_FAIL(systemFailure), "holding the request: %s", err.msg);
            goto out;
        }
        fp_log(FP_LOG_INFO, "id=%s cmp: request held for approval as %lld", c->req_id,
               (long long)c->tx->pending_id);
    } else if (rc != FP_ERR_OK) {
        si = reject(c, CMP_FAIL(systemFailure), "held requests: %s", err.msg);
        goto out;
    } else {
        c->tx->pending_id = pr.id;
        fp_pending_rec_clear(&pr);
    }
    if ((c->tx->certreq = OSSL_CMP_MSG_dup(req)) == NULL) {
        si = reject(c, CMP_FAIL(systemFailure), "out of memory");
        goto out;
    }
    si = held_answer(c, type, certOut, chainOut, caPubs);
out:
    OPENSSL_free(der);
    return si;
}

/* kur (RFC 4210 5.3.5, RFC 9483 4.1.3): protected by the certificate
 * being updated, which the oldCertID control (when present) names. */
static bool kur_names_signer(const OSSL_CRMF_MSG *crm, X509 *signer)
{
    const OSSL_CRMF_CERTID *cid = OSSL_CRMF_MSG_get0_regCtrl_oldCertID(crm);
    if (cid == NULL)
        return true;
    return X509_NAME_cmp(OSSL_CRMF_CERTID_get0_issuer(cid), X509_get_issuer_name(signer)) == 0 &&
           ASN1_INTEGER_cmp(OSSL_CRMF_CERTID_get0_serialNumber(cid),
                            X509_get0_serialNumber(signer)) == 0;
}

static OSSL_CMP_PKISI *cb_cert_request(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req,
                                       int certReqId, const OSSL_CRMF_MSG *crm,
                                       const X509_REQ *p10cr, X509 **certOut,
                                       STACK_OF(X509) **chainOut, STACK_OF(X509) **caPubs)
{
    cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    cmp_txn *tx = c->tx;
    const fp_est_label *l = c->lb->cfg;
    int type = OSSL_CMP_MSG_get_bodytype(req);
    X509_REQ *csr = NULL;
    X509 *cert = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    fp_error err = {0};
    OSSL_CMP_PKISI *si = NULL;
    const char *via = type == CMP_BODY_IR    ? "cmp/ir"
                      : type == CMP_BODY_CR  ? "cmp/cr"
                      : type == CMP_BODY_KUR ? "cmp/kur"
                                             : "cmp/p10cr";
    int rc;

    (void)certReqId;
    *certOut = NULL;
    *chainOut = NULL;
    *caPubs = NULL;
    if (c->refuse_info >= 0)
        return reject(c, c->refuse_info, "%s", c->refuse_text);
    if (tx->pending_id > 0)
        return held_answer(c, type, certOut, chainOut, caPubs);
    if (type == CMP_BODY_KUR && (!tx->by_cert || !tx->ours))
        return reject(c, CMP_FAIL(notAuthorized),
                      "kur must be protected by the current certificate, issued here");
    if (type == CMP_BODY_KUR && !kur_names_signer(crm, tx->signer))
        return reject(c, CMP_FAIL(badCertId), "oldCertID is not the protection certificate");
    if (p10cr != NULL) {
        if ((csr = X509_REQ_dup(p10cr)) == NULL)
            return reject(c, CMP_FAIL(systemFailure), "out of memory");
    } else if ((rc = cmp_crmf_to_req(crm, &csr, &err)) != FP_ERR_OK) {
        return reject(c, rc == FP_ERR_CSR_MALFORMED ? CMP_FAIL(badCertTemplate)
                                                    : CMP_FAIL(systemFailure),
                      "%s: %s", fp_err_name(rc), err.msg);
    }
    /* a token's CN limit is a property of the request: refused unsigned */
    if (!tx->by_cert && tx->cn_pattern[0]) {
        char cn[FP_TOKEN_CN_MAX];
        if (!cn_of(X509_REQ_get_subject_name(csr), cn, sizeof(cn)) ||
            !fp_token_cn_match(tx->cn_pattern, cn)) {
            si = reject(c, CMP_FAIL(badCertTemplate), "%s: common name not allowed by the token",
                        fp_err_name(FP_ERR_CSR_CN));
            goto out;
        }
    }
    if (l->manual_approval) {
        si = hold(c, req, csr, type, certOut, chainOut, caPubs);
        goto out;
    }
    /* p10cr carries its own signature (PoP checked by the policy); the
     * CRMF POPO was verified by OpenSSL before this callback (RFC 4211
     * 4), so the template is certified as its own key */
    rc = FP_ERR_STATE;
    if (c->async && (rc = submit_job(c, type, &csr, p10cr == NULL, via, &err)) == FP_ERR_OK) {
        si = grant(c, type, c->job->der, c->job->der_len, certOut, chainOut, caPubs);
        goto out;
    }
    if (rc == FP_ERR_STATE) { /* no group commit here: commit on this thread */
        fp_issue_req ir = {.csr = csr, .profile = l->profile, .actor = tx->actor,
                           .own_key = p10cr == NULL, .project = l->project,
                           .action = type == CMP_BODY_KUR ? "cert.renew" : "cert.issue",
                           .via = via, .token_id = tx->token_id[0] ? tx->token_id : NULL,
                           .check = check_issued, .check_arg = c,
                           .auth_cert = tx->by_cert ? tx->signer : NULL};
        rc = fp_issue(c->st->app->issuer, c->store, &ir, &cert, &err);
    }
    if (rc != FP_ERR_OK) {
        if (rc == FP_ERR_STATE && tx->token_id[0])
            si = reject(c, CMP_FAIL(notAuthorized), "enrollment token: %s", err.msg);
        else if (fp_err_class(rc) == FP_ERRCLASS_INTERNAL || fp_err_class(rc) == FP_ERRCLASS_CONFLICT)
            si = reject(c, CMP_FAIL(systemFailure), "internal error (request %s)", c->req_id);
        else
            si = reject(c, fail_info_of(rc), "%s: %s", fp_err_name(rc), err.msg);
        c->audited = fp_err_is_refusal(rc) != 0;
        if (fp_err_class(rc) == FP_ERRCLASS_INTERNAL)
            fp_log(FP_LOG_ERROR, "id=%s cmp issue: %s", c->req_id, err.msg);
        goto out;
    }
    if (fp_cert_to_der(cert, &der, &derlen, &err) != FP_ERR_OK) {
        si = reject(c, CMP_FAIL(systemFailure), "encoding the certificate");
        goto out;
    }
    si = grant(c, type, der, derlen, certOut, chainOut, caPubs);
out:
    OPENSSL_free(der);
    X509_free(cert);
    X509_REQ_free(csr);
    return si;
}

/* ---- rr (RFC 9483 4.2) ---- */

static OSSL_CMP_PKISI *cb_rr(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req,
                             const X509_NAME *issuer, const ASN1_INTEGER *serial)
{
    cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    cmp_txn *tx = c->tx;
    char hex[FP_SERIAL_HEX_MAX];
    fp_error err = {0};
    int rc;

    (void)req;
    if (c->refuse_info >= 0)
        return reject(c, c->refuse_info, "%s", c->refuse_text);
    /* revocation by the holder: protected by the very certificate */
    if (!tx->by_cert || !tx->ours)
        return reject(c, CMP_FAIL(notAuthorized),
                      "rr must be protected by the certificate to revoke, issued here");
    if (issuer == NULL || serial == NULL)
        return reject(c, CMP_FAIL(badCertId), "rr names no issuer and serialNumber");
    if (X509_NAME_cmp(issuer, X509_get_issuer_name(tx->signer)) != 0 ||
        ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(tx->signer)) != 0)
        return reject(c, CMP_FAIL(notAuthorized),
                      "rr names another certificate than the protection certificate");
    fp_serial_hex(serial, hex);
    /* OpenSSL 3.0 offers no getter for crlEntryDetails: reason unspecified */
    rc = fp_ca_revoke(c->store, hex, FP_REASON_UNSPECIFIED, tx->actor, &err);
    if (rc != FP_ERR_OK)
        return reject(c, rc == FP_ERR_NOT_FOUND ? CMP_FAIL(badCertId)
                         : rc == FP_ERR_STATE   ? CMP_FAIL(certRevoked)
                                                : CMP_FAIL(systemFailure),
                      "%s: %s", fp_err_name(rc), err.msg);
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

/* ---- genm (RFC 9483 4.3) ---- */

static int cb_genm(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req,
                   const STACK_OF(OSSL_CMP_ITAV) *in, STACK_OF(OSSL_CMP_ITAV) **out)
{
    cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    fp_error err = {0};

    (void)req;
    *out = NULL;
    if (c->refuse_info >= 0) {
        ERR_raise_data(ERR_LIB_CMP, CMP_R_REQUEST_NOT_ACCEPTED, "%s", c->refuse_text);
        return 0;
    }
    if (cmp_genm_answer(c->lb, in, out, &err) != FP_ERR_OK) {
        ERR_raise_data(ERR_LIB_CMP, CMP_R_ERROR_PROCESSING_MESSAGE, "%s", err.msg);
        return 0;
    }
    return 1;
}

/* ---- error (RFC 9483 3.6.4) ---- */

void cmp_revoke_unconfirmed(cmp_call *c, const char *why)
{
    fp_error err = {0};
    if (c->tx->cert == NULL || !c->tx->serial[0])
        return;
    if (fp_ca_revoke(c->store, c->tx->serial, FP_REASON_CESSATION, c->tx->actor, &err) != FP_ERR_OK)
        fp_log(FP_LOG_ERROR, "id=%s cmp: revoking %s: %s", c->req_id, c->tx->serial, err.msg);
    else
        fp_log(FP_LOG_INFO, "id=%s cmp: certificate %s revoked: %s", c->req_id, c->tx->serial, why);
    X509_free(c->tx->cert);
    c->tx->cert = NULL;
}

static void cb_error(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, const OSSL_CMP_PKISI *si,
                     const ASN1_INTEGER *code, const OSSL_CMP_PKIFREETEXT *details)
{
    cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    char buf[OSSL_CMP_PKISI_BUFLEN], esc[FP_LOG_ESCAPED_MAX(256)];

    (void)req;
    (void)code;
    (void)details;
    fp_log(FP_LOG_INFO, "id=%s cmp: client sent error: %s", c->req_id,
           fp_log_escape(esc, sizeof(esc),
                         si ? OSSL_CMP_snprint_PKIStatusInfo(si, buf, sizeof(buf)) : "-"));
    /* an error in place of certConf rejects the certificate */
    if (c->refuse_info < 0 && c->tx != NULL && c->tx->cert != NULL && !c->tx->confirmed)
        cmp_revoke_unconfirmed(c, "the client answered the ip with an error");
}

/* ---- certConf (RFC 4210 5.3.18, RFC 9483 4.1.1) ---- */

static int cb_certConf(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int certReqId,
                       const ASN1_OCTET_STRING *certHash, const OSSL_CMP_PKISI *si)
{
    cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    ASN1_OCTET_STRING *digest = NULL;
    bool match;

    (void)req;
    (void)certReqId;
    if (c->refuse_info >= 0) {
        ERR_raise_data(ERR_LIB_CMP, CMP_R_REQUEST_NOT_ACCEPTED, "%s", c->refuse_text);
        return 0;
    }
    if (c->tx->cert == NULL) {
        ERR_raise_data(ERR_LIB_CMP, CMP_R_ERROR_UNEXPECTED_CERTCONF, "no certificate to confirm");
        return 0;
    }
    /* RFC 4210 5.3.18: certHash over the certificate as sent, with the
     * hash of its signature algorithm (RFC 9481 2) */
    digest = X509_digest_sig(c->tx->cert, NULL, NULL);
    match = digest != NULL && certHash != NULL && ASN1_OCTET_STRING_cmp(certHash, digest) == 0;
    ASN1_OCTET_STRING_free(digest);
    if (!match) {
        snprintf(c->fail_text, sizeof(c->fail_text), "certHash does not match the certificate");
        ERR_raise(ERR_LIB_CMP, CMP_R_CERTHASH_UNMATCHED);
        return 0;
    }
    if (si != NULL) {
        OSSL_CMP_PKISI *copy = OSSL_CMP_PKISI_dup(si);
        char buf[OSSL_CMP_PKISI_BUFLEN];
        /* status "rejection": the client does not accept the certificate */
        bool rejected = copy != NULL && OSSL_CMP_snprint_PKIStatusInfo(copy, buf, sizeof(buf)) &&
                        strncmp(buf, "PKIStatus: rejection", 20) == 0;
        OSSL_CMP_PKISI_free(copy);
        if (rejected) {
            cmp_revoke_unconfirmed(c, "rejected by the client in certConf");
            return 1;
        }
    }
    c->tx->confirmed = true;
    return 1;
}

/* ---- pollReq (RFC 9483 4.4) ---- */

static int cb_pollReq(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int certReqId,
                      OSSL_CMP_MSG **certReq, int64_t *check_after)
{
    cmp_call *c = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
    fp_pending_rec pr;
    fp_error err = {0};

    (void)req;
    (void)certReqId;
    *certReq = NULL;
    if (c->refuse_info >= 0) {
        ERR_raise_data(ERR_LIB_CMP, CMP_R_REQUEST_NOT_ACCEPTED, "%s", c->refuse_text);
        return 0;
    }
    if (c->tx->pending_id <= 0 || c->tx->certreq == NULL) {
        ERR_raise_data(ERR_LIB_CMP, CMP_R_UNEXPECTED_PKIBODY, "nothing is held in this transaction");
        return 0;
    }
    if (fp_store_pending_get(c->store, c->tx->pending_id, &pr, &err) != FP_ERR_OK) {
        ERR_raise_data(ERR_LIB_CMP, CMP_R_ERROR_PROCESSING_MESSAGE, "%s", err.msg);
        return 0;
    }
    if (pr.status == FP_PENDING_WAITING) {
        *check_after = c->lb->cfg->retry_after_seconds;
        c->waiting = true;
    } else if ((*certReq = OSSL_CMP_MSG_dup(c->tx->certreq)) == NULL) {
        fp_pending_rec_clear(&pr);
        return 0;
    }
    /* decided: OpenSSL answers the held request again (cb_cert_request
     * -> held_answer) with the certificate or the rejection */
    fp_pending_rec_clear(&pr);
    return 1;
}

int cmp_srv_set_callbacks(OSSL_CMP_SRV_CTX *srv, cmp_call *call)
{
    return OSSL_CMP_SRV_CTX_init(srv, call, cb_cert_request, cb_rr, cb_genm, cb_error,
                                 cb_certConf, cb_pollReq);
}
