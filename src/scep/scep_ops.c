/*
 * scep_ops.c - the PKIOperation messages (RFC 8894 3.3) on the one
 * issuance path (ca/issue.h).
 *
 *   PKCSReq     first enrollment: the challengePassword is an enrollment
 *               token of the label's project ("ID:SECRET", docs/scep.md),
 *               checked in constant time as soon as the request is
 *               decrypted; the message is signed with the key of the
 *               request (a self-signed certificate, RFC 8894 2.3).
 *   RenewalReq  signed with the current certificate, issued by a CA of
 *               the label's project, unexpired and not revoked; the new
 *               certificate keeps its subject and subjectAltNames.
 *   CertPoll    a request held for `fleetpki approve` (label with
 *               manual_approval), found again by the certificate that
 *               signed it (RFC 8894 3.3.3: the poll is signed like the
 *               request); so is a resent PKCSReq.
 *   GetCert     a certificate of the project by issuer and serial, and
 *   GetCRL      the CRL of a project CA: both for holders of a current
 *               certificate of the project.
 *
 * Every refusal is a FAILURE CertRep with a failInfo (one table,
 * fail_info_of), logged with the request id and audited as scep.refuse
 * (the issuance path audits its own refusals as csr.refuse).
 */
#define _POSIX_C_SOURCE 200809L
#define FP_SCEP_SERVER
#include "scep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "../crl/crl.h"
#include "../common/util.h"
#include "../est/token.h"
#include "../x509/x509util.h"

#define SCEP_CT_MESSAGE "application/x-pki-message"

typedef struct scep_job {
    fp_http_req *req;
    scep_state *st;
    const scep_label *lb;
    scep_msg m;
    char token_id[FP_TOKEN_ID_MAX];
    char actor[160];
    unsigned char *rep; /* the SUCCESS CertRep, built before the commit */
    size_t rep_len;
    fp_issue_req ir;    /* as submitted; its pointers are the job's */
    X509 *cert;         /* as committed */
    fp_http_post post;
    int rc;
    fp_error err;
} scep_job;

/* The one table from error classes (common/err.h) to failInfo. */
static int fail_info_of(int code)
{
    switch (code) {
    case FP_ERR_CSR_SIG_ALG:
    case FP_ERR_CSR_KEY_ALG:
    case FP_ERR_CSR_KEY_SIZE:
    case FP_ERR_CSR_KEY:
        return SCEP_BAD_ALG;
    case FP_ERR_CSR_POP:
        return SCEP_BAD_MESSAGE_CHECK;
    case FP_ERR_VALIDITY:
    case FP_ERR_ISSUER_EXPIRED:
        return SCEP_BAD_TIME;
    case FP_ERR_NOT_FOUND:
        return SCEP_BAD_CERT_ID;
    default:
        return SCEP_BAD_REQUEST;
    }
}

static const char *fail_name(int info)
{
    static const char *const names[] = {"badAlg", "badMessageCheck", "badRequest", "badTime",
                                        "badCertId"};
    return info >= 0 && info <= SCEP_BAD_CERT_ID ? names[info] : "?";
}

static const char *type_name(int type)
{
    switch (type) {
    case SCEP_PKCSREQ:
        return "PKCSReq";
    case SCEP_RENEWALREQ:
        return "RenewalReq";
    case SCEP_CERTPOLL:
        return "CertPoll";
    case SCEP_GETCERT:
        return "GetCert";
    case SCEP_GETCRL:
        return "GetCRL";
    default:
        return "unknown";
    }
}

/* Send a CertRep; FP_HTTP_DONE. */
static int send_rep(fp_http_req *req, const scep_ra *ra, const scep_msg *m, const scep_rep *rep)
{
    unsigned char *der = NULL;
    size_t len = 0;
    fp_error err = {0};

    if (scep_certrep(m, rep, ra->cert, ra->key, &der, &len, &err) != FP_ERR_OK) {
        fp_log(FP_LOG_ERROR, "id=%s scep: building the CertRep: %s", req->id, err.msg);
        fp_http_error(req, 500, "internal error (request %s)", req->id);
        return FP_HTTP_DONE;
    }
    fp_http_reply(req, 200, SCEP_CT_MESSAGE, der, len);
    OPENSSL_free(der);
    return FP_HTTP_DONE;
}

/* A refusal: logged with the request id, audited (unless the issuance
 * path did already: audited), answered with FAILURE + failInfo.  Internal
 * errors are logged in full and answered vaguely. */
static int refuse(fp_http_req *req, const scep_ra *ra, const char *project, const char *label,
                  const scep_msg *m, const char *actor, int info, const fp_error *why,
                  bool audited)
{
    char esc_label[160], esc_txid[2 * SCEP_TXID_MAX + 8], esc_msg[2 * FP_ERRMSG_MAX], detail[2 * FP_ERRMSG_MAX + 512],
        text[160];
    const char *reason = why->msg[0] ? why->msg : fp_err_name(why->code);
    bool internal = fp_err_class(why->code) == FP_ERRCLASS_INTERNAL;
    scep_rep rep = {.status = SCEP_FAILURE, .fail_info = info};

    fp_log_escape(esc_label, sizeof(esc_label), label);
    fp_log_escape(esc_txid, sizeof(esc_txid), m->txid);
    fp_log_escape(esc_msg, sizeof(esc_msg), reason);
    fp_log(internal ? FP_LOG_ERROR : FP_LOG_INFO,
           "id=%s [scep %s] project=%s refuse %s txid=%s failInfo=%s %s: %s", req->id, esc_label,
           project, type_name(m->type), esc_txid, fail_name(info), fp_err_name(why->code), esc_msg);
    if (!audited && req->worker_state != NULL) {
        fp_error aerr = {0};
        fp_audit_event ev = {.actor = actor, .action = "scep.refuse", .object = esc_txid,
                             .detail = detail, .project = project};
        snprintf(detail, sizeof(detail), "request=%s label=%s op=%s failInfo=%s reason=%s: %s",
                 req->id, esc_label, type_name(m->type), fail_name(info), fp_err_name(why->code),
                 esc_msg);
        if (fp_store_audit_append(req->worker_state, &ev, &aerr) != FP_ERR_OK)
            fp_log(FP_LOG_ERROR, "id=%s scep: audit: %s", req->id, aerr.msg);
    }
    if (internal)
        snprintf(text, sizeof(text), "internal error (request %s)", req->id);
    else
        snprintf(text, sizeof(text), "%s (request %s)", fp_err_name(why->code), req->id);
    rep.text = text;
    return send_rep(req, ra, m, &rep);
}

#define REFUSE(info, ...)                                                                      \
    do {                                                                                       \
        fp_err_set(&err, __VA_ARGS__);                                                         \
        return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor, (info), &err,    \
                      false);                                                                  \
    } while (0)

/* ---- helpers ---- */

/* Hex SHA-256 of the signer's certificate: the key of a held request. */
static int signer_hash(X509 *signer, char hex[65])
{
    unsigned char *der = NULL, md[32];
    int len = i2d_X509(signer, &der);
    int ok = len > 0 && EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) == 1;
    OPENSSL_free(der);
    if (!ok)
        return FP_ERR_CRYPTO;
    fp_hex(md, sizeof(md), hex);
    return FP_ERR_OK;
}

/* The challengePassword of csr (PKCS#9, RFC 2985 5.4.1) copied into buf,
 * or false when absent or not a single string value. */
static bool challenge_of(X509_REQ *csr, char *buf, size_t size)
{
    int i = X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1);
    X509_ATTRIBUTE *a = i >= 0 ? X509_REQ_get_attr(csr, i) : NULL;
    ASN1_TYPE *t = a != NULL && X509_ATTRIBUTE_count(a) == 1 ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
    const ASN1_STRING *s;
    int n;

    if (t == NULL || (t->type != V_ASN1_PRINTABLESTRING && t->type != V_ASN1_UTF8STRING &&
                      t->type != V_ASN1_IA5STRING && t->type != V_ASN1_T61STRING))
        return false;
    s = t->value.asn1_string;
    n = ASN1_STRING_length(s);
    if (n <= 0 || (size_t)n >= size)
        return false;
    memcpy(buf, ASN1_STRING_get0_data(s), (size_t)n);
    buf[n] = '\0';
    return strlen(buf) == (size_t)n;
}

/* The first commonName of name into buf ("" when none). */
static void cn_of(const X509_NAME *name, char *buf, size_t size)
{
    buf[0] = '\0';
    if (X509_NAME_get_text_by_NID((X509_NAME *)name, NID_commonName, buf, (int)size) < 0)
        buf[0] = '\0';
}

/* The subjectAltNames of a certificate or request, each as DER, sorted:
 * two sets compare equal as strings. */
static int sans_cmp(GENERAL_NAMES *a, GENERAL_NAMES *b)
{
    int na = sk_GENERAL_NAME_num(a), nb = sk_GENERAL_NAME_num(b);
    if (na != nb)
        return 1;
    for (int i = 0; i < na; i++) {
        bool found = false;
        for (int j = 0; j < nb && !found; j++)
            found = GENERAL_NAME_cmp(sk_GENERAL_NAME_value(a, i), sk_GENERAL_NAME_value(b, j)) == 0;
        if (!found)
            return 1;
    }
    return 0;
}

/* Same subject and same set of subjectAltNames (RFC 8894 3.3.1.2: a
 * renewal is for the same identity). */
static bool same_identity(X509 *a, X509 *b)
{
    GENERAL_NAMES *sa = X509_get_ext_d2i(a, NID_subject_alt_name, NULL, NULL);
    GENERAL_NAMES *sb = X509_get_ext_d2i(b, NID_subject_alt_name, NULL, NULL);
    bool same = X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) == 0 &&
                sans_cmp(sa, sb) == 0;
    GENERAL_NAMES_free(sa);
    GENERAL_NAMES_free(sb);
    return same;
}

/* The same on a request, before anything is signed: its commonName and
 * SAN set are the certificate's (the profile decides the rest of the
 * subject, so a full comparison happens on the issued certificate). */
static bool csr_keeps_identity(X509_REQ *csr, X509 *cert)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *sr = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
    GENERAL_NAMES *sc = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    char a[256], b[256];
    bool same;

    cn_of(X509_REQ_get_subject_name(csr), a, sizeof(a));
    cn_of(X509_get_subject_name(cert), b, sizeof(b));
    same = a[0] && !strcmp(a, b) && sans_cmp(sr, sc) == 0;
    GENERAL_NAMES_free(sr);
    GENERAL_NAMES_free(sc);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return same;
}

/* Is signer a current certificate of the label's project: chains to one
 * of its CAs (and stops there), valid now, in the store and not revoked?
 * *serial receives its serial.  FP_ERR_STATE / FP_ERR_NOT_FOUND with the
 * reason in err. */
static int ours_and_current(const scep_label *lb, fp_store *store, X509 *signer,
                            char serial[FP_SERIAL_HEX_MAX], fp_error *err)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    fp_cert_rec rec;
    int ok, rc;

    ok = ctx != NULL && X509_STORE_CTX_init(ctx, lb->ours, signer, NULL) == 1 &&
         X509_verify_cert(ctx) == 1;
    if (!ok) {
        int v = ctx != NULL ? X509_STORE_CTX_get_error(ctx) : X509_V_ERR_OUT_OF_MEM;
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
        return fp_err_set(err, FP_ERR_STATE, "signer certificate is not a current certificate of "
                                             "project '%s' (%s)",
                          lb->cfg->project, X509_verify_cert_error_string(v));
    }
    X509_STORE_CTX_free(ctx);
    fp_serial_hex(X509_get0_serialNumber(signer), serial);
    memset(&rec, 0, sizeof(rec));
    rc = fp_store_cert_get(store, serial, &rec, err);
    if (rc == FP_ERR_OK && (strcmp(rec.project, lb->cfg->project) != 0 ||
                            rec.status != FP_CERT_VALID))
        rc = fp_err_set(err, FP_ERR_STATE, "signer certificate %s is revoked or not of project '%s'",
                        serial, lb->cfg->project);
    else if (rc == FP_ERR_NOT_FOUND)
        rc = fp_err_set(err, FP_ERR_STATE, "signer certificate %s is not in the store", serial);
    fp_cert_rec_clear(&rec);
    return rc;
}

/* ---- issuance (deferred: the group committer) ---- */

static void job_free(scep_job *j)
{
    if (j == NULL)
        return;
    scep_msg_clear(&j->m);
    OPENSSL_free(j->rep);
    X509_free(j->cert);
    free(j);
}

/* SCEP's last word on the signed certificate before its commit: a renewal
 * keeps the current certificate's identity; then the SUCCESS CertRep is
 * built from the exact bytes being stored. */
static int scep_check_issued(void *arg, X509 *cert, const fp_cert_rec *rec, fp_error *err)
{
    scep_job *j = arg;
    scep_rep rep = {.status = SCEP_SUCCESS};

    if (j->m.type == SCEP_RENEWALREQ && !same_identity(cert, j->m.signer))
        return fp_err_set(err, FP_ERR_CSR_SUBJECT,
                          "subject or subjectAltName differs from the certificate being renewed");
    OPENSSL_free(j->rep);
    j->rep = NULL;
    rep.cert_der = rec->der;
    rep.cert_der_len = rec->der_len;
    return scep_certrep(&j->m, &rep, j->lb->ra->cert, j->lb->ra->key, &j->rep, &j->rep_len, err);
}

static void finish(void *arg);

/* Writer thread: only hand the job back to its worker. */
static void committed(void *arg, int rc, const fp_error *err, X509 *cert)
{
    scep_job *j = arg;
    j->cert = cert; /* the answer was built from its DER; kept for step 6 */
    j->rc = rc;
    if (err != NULL && rc != FP_ERR_OK)
        j->err = *err;
    j->post = (fp_http_post){finish, j, false, NULL};
    fp_http_worker_post_item(j->req->worker, &j->post);
}

static void finish(void *arg)
{
    scep_job *j = arg;
    fp_http_req *req = j->req;
    const scep_label *lb = j->lb;

    if (j->rc != FP_ERR_OK) {
        /* FP_ERR_STATE / NOT_FOUND: the token was spent or expired
         * between the check and the commit */
        if (j->rc == FP_ERR_STATE && j->token_id[0])
            fp_err_prefix(&j->err, "enrollment token: ");
        refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, &j->m, j->actor,
               fail_info_of(j->err.code), &j->err, false);
        job_free(j);
        return;
    }
    if (j->m.type == SCEP_RENEWALREQ && lb->cfg->revoke_on_renew) {
        fp_error err = {0};
        char serial[FP_SERIAL_HEX_MAX];
        fp_serial_hex(X509_get0_serialNumber(j->m.signer), serial);
        if (fp_ca_revoke(req->worker_state, serial, FP_REASON_SUPERSEDED, j->actor, &err) !=
            FP_ERR_OK)
            fp_log(FP_LOG_WARN, "id=%s revoke-on-renew of %s failed: %s", req->id, serial,
                   err.msg);
    }
    /* step 6 of the issuance path (ca/issue.h): listed under its device
     * (a renewal: beside the certificate it renews) before the answer */
    fp_issue_after(j->st->app->issuer, req->worker_state, &j->ir, j->cert);
    fp_http_reply(req, 200, SCEP_CT_MESSAGE, j->rep, j->rep_len);
    job_free(j);
}

/* ---- manual approval ---- */

/* Answer for a held request found again (CertPoll, resent PKCSReq). */
static int answer_held(fp_http_req *req, const scep_label *lb, const scep_msg *m,
                       const char *actor, const fp_pending_rec *pr)
{
    fp_error err = {0};
    scep_rep rep = {.status = SCEP_PENDING};

    if (pr->status == FP_PENDING_WAITING)
        return send_rep(req, lb->ra, m, &rep);
    if (pr->status == FP_PENDING_REJECTED) {
        fp_err_set(&err, FP_ERR_STATE, "request %lld was rejected by an operator",
                   (long long)pr->id);
        return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor, SCEP_BAD_REQUEST,
                      &err, false);
    } else {
        fp_cert_rec rec;
        int rc;
        memset(&rec, 0, sizeof(rec));
        if ((rc = fp_store_cert_get(req->worker_state, pr->serial, &rec, &err)) != FP_ERR_OK) {
            fp_cert_rec_clear(&rec);
            return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                          SCEP_BAD_REQUEST, &err, false);
        }
        rep.status = SCEP_SUCCESS;
        rep.cert_der = rec.der;
        rep.cert_der_len = rec.der_len;
        rc = send_rep(req, lb->ra, m, &rep);
        fp_cert_rec_clear(&rec);
        return rc;
    }
}

/* Hold m for `fleetpki approve`: the issuance path's own checks first
 * (refused at once what an operator could not approve), then the token
 * (if any) is spent and the request stored.  Answers PENDING. */
static int hold(scep_state *st, const scep_label *lb, fp_http_req *req, const scep_msg *m,
                const char *actor, const char *token_id, const char *key)
{
    fp_store *store = req->worker_state;
    fp_pending_rec add;
    fp_audit_event ev = {.actor = actor, .action = "csr.hold", .object = "", .detail = "",
                         .project = lb->cfg->project};
    fp_issue_req ir = {.csr = m->csr, .profile = lb->cfg->profile, .actor = actor,
                       .project = lb->cfg->project, .via = "scep/hold"};
    scep_rep rep = {.status = SCEP_PENDING};
    int64_t pid = 0;
    fp_error err = {0};
    int rc;

    if ((rc = fp_issue_precheck(st->app->issuer, store, &ir, &err)) != FP_ERR_OK)
        return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                      fail_info_of(err.code), &err, fp_err_is_refusal(err.code));
    if (token_id != NULL) {
        fp_audit_event tev = {.actor = actor, .action = "token.use", .object = token_id,
                              .detail = "scep/hold", .project = lb->cfg->project};
        if ((rc = fp_store_token_use(store, lb->cfg->project, token_id, fp_now(), &tev, &err)) !=
            FP_ERR_OK)
            return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                          SCEP_BAD_REQUEST, &err, false);
    }
    memset(&add, 0, sizeof(add));
    snprintf(add.label, sizeof(add.label), "%s", lb->cfg->name);
    snprintf(add.project, sizeof(add.project), "%s", lb->cfg->project);
    snprintf(add.csr_hash, sizeof(add.csr_hash), "%s", key);
    add.csr = m->csr_der;
    add.csr_len = m->csr_der_len;
    add.subject = fp_name_string(X509_REQ_get_subject_name(m->csr));
    add.actor = (char *)actor;
    rc = fp_store_pending_add(store, &add, &pid, &ev, &err);
    free(add.subject);
    if (rc != FP_ERR_OK)
        return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor, SCEP_BAD_REQUEST,
                      &err, false);
    fp_log(FP_LOG_INFO, "id=%s [scep %s] project=%s %s held for approval as request %lld",
           req->id, lb->cfg->name, lb->cfg->project, type_name(m->type), (long long)pid);
    return send_rep(req, lb->ra, m, &rep);
}

/* ---- operations ---- */

/* PKCSReq and RenewalReq.  m is taken (moved into the job). */
static int op_enroll(scep_state *st, const scep_label *lb, fp_http_req *req, scep_msg *m,
                     char *actor)
{
    fp_store *store = req->worker_state;
    fp_token_rec t;
    fp_error err = {0};
    scep_job *j = NULL;
    char key[65], ident[96];
    char challenge[256];
    const char *token_id = NULL;
    int rc;

    if (signer_hash(m->signer, key) != FP_ERR_OK)
        REFUSE(SCEP_BAD_REQUEST, FP_ERR_CRYPTO, "hashing the signer certificate");
    if (m->type == SCEP_PKCSREQ) {
        char *colon;
        bool ok;
        /* a held request seen again (a client resends until approved) */
        if (lb->cfg->manual_approval) {
            fp_pending_rec pr;
            rc = fp_store_pending_find(store, lb->cfg->project, lb->cfg->name, key, &pr, &err);
            if (rc == FP_ERR_OK) {
                rc = answer_held(req, lb, m, actor, &pr);
                fp_pending_rec_clear(&pr);
                return rc;
            }
            if (rc != FP_ERR_NOT_FOUND)
                return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                              SCEP_BAD_REQUEST, &err, false);
        }
        /* the challenge before any signature, key or policy work on the
         * request: "ID:SECRET" of an enrollment token of this label */
        if (!challenge_of(m->csr, challenge, sizeof(challenge)) ||
            (colon = strchr(challenge, ':')) == NULL) {
            OPENSSL_cleanse(challenge, sizeof(challenge));
            REFUSE(SCEP_BAD_REQUEST, FP_ERR_PASSPHRASE,
                   "challengePassword missing or not an enrollment token (ID:SECRET)");
        }
        *colon = '\0';
        memset(&t, 0, sizeof(t));
        rc = fp_store_token_get(store, lb->cfg->project, challenge, &t, &err);
        if (rc != FP_ERR_OK && rc != FP_ERR_NOT_FOUND) {
            OPENSSL_cleanse(challenge, sizeof(challenge));
            return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                          SCEP_BAD_REQUEST, &err, false);
        }
        /* the same answer for an unknown id and a wrong secret */
        ok = rc == FP_ERR_OK && fp_token_matches(&t, colon + 1, strlen(colon + 1)) &&
             !strcmp(t.label, lb->cfg->name);
        OPENSSL_cleanse(challenge, sizeof(challenge));
        if (!ok)
            REFUSE(SCEP_BAD_REQUEST, FP_ERR_PASSPHRASE, "invalid challenge password");
        if (t.uses_left <= 0 || (t.expires_at != 0 && fp_now() >= t.expires_at))
            REFUSE(SCEP_BAD_REQUEST, FP_ERR_STATE, "%s",
                   t.uses_left <= 0 ? "enrollment token is used up"
                                    : "enrollment token has expired");
        /* RFC 8894 2.3: a first request is signed with its own key (the
         * request's key is decoded only now, after the challenge) */
        if (X509_REQ_get0_pubkey(m->csr) == NULL ||
            EVP_PKEY_eq(X509_REQ_get0_pubkey(m->csr), X509_get0_pubkey(m->signer)) != 1)
            REFUSE(SCEP_BAD_MESSAGE_CHECK, FP_ERR_CSR_POP,
                   "PKCSReq is not signed with the key of its certificate request");
        snprintf(actor, 160, "scep:token:%s", t.id);
        snprintf(ident, sizeof(ident), "token:%s", t.id);
        if (fp_http_limit_identity(req, ident))
            return FP_HTTP_DONE;
        token_id = t.id;
        if (t.cn_pattern[0]) {
            char cn[FP_TOKEN_CN_MAX + 1];
            cn_of(X509_REQ_get_subject_name(m->csr), cn, sizeof(cn));
            if (!fp_token_cn_match(t.cn_pattern, cn))
                REFUSE(SCEP_BAD_REQUEST, FP_ERR_CSR_CN,
                       "the requested CN does not match the enrollment token's pattern");
        }
    } else {
        char serial[FP_SERIAL_HEX_MAX];
        /* RFC 8894 3.3.1.2: signed with the certificate being renewed;
         * its challengePassword, if any, is not looked at */
        if ((rc = ours_and_current(lb, store, m->signer, serial, &err)) != FP_ERR_OK)
            return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                          rc == FP_ERR_STATE ? SCEP_BAD_MESSAGE_CHECK : SCEP_BAD_REQUEST, &err,
                          false);
        snprintf(actor, 160, "scep:cert:%s", serial);
        snprintf(ident, sizeof(ident), "cert:%s", serial);
        if (fp_http_limit_identity(req, ident))
            return FP_HTTP_DONE;
        if (!csr_keeps_identity(m->csr, m->signer))
            REFUSE(SCEP_BAD_REQUEST, FP_ERR_CSR_SUBJECT,
                   "commonName or subjectAltName differs from the certificate being renewed");
        if (lb->cfg->manual_approval) {
            fp_pending_rec pr;
            rc = fp_store_pending_find(store, lb->cfg->project, lb->cfg->name, key, &pr, &err);
            if (rc == FP_ERR_OK) {
                rc = answer_held(req, lb, m, actor, &pr);
                fp_pending_rec_clear(&pr);
                return rc;
            }
        }
    }
    if (lb->cfg->manual_approval)
        return hold(st, lb, req, m, actor, token_id, key);

    j = calloc(1, sizeof(*j));
    if (j == NULL)
        REFUSE(SCEP_BAD_REQUEST, FP_ERR_NOMEM, "out of memory");
    j->req = req;
    j->st = st;
    j->lb = lb;
    j->m = *m;
    memset(m, 0, sizeof(*m)); /* moved */
    snprintf(j->actor, sizeof(j->actor), "%s", actor);
    if (token_id != NULL)
        snprintf(j->token_id, sizeof(j->token_id), "%s", token_id);
    {
        /* the signer of a PKCSReq is a throw-away self-signed certificate
         * (RFC 8894 2.3), no device's; a RenewalReq's is the current
         * certificate of the device */
        j->ir = (fp_issue_req){
            .csr = j->m.csr, .profile = lb->cfg->profile, .actor = j->actor,
            .project = lb->cfg->project,
            .action = j->m.type == SCEP_RENEWALREQ ? "cert.renew" : "cert.issue",
            .via = j->m.type == SCEP_RENEWALREQ ? "scep/renewalreq" : "scep/pkcsreq",
            .token_id = j->token_id[0] ? j->token_id : NULL,
            .check = scep_check_issued, .check_arg = j,
            .auth_cert = j->m.type == SCEP_RENEWALREQ ? j->m.signer : NULL};
        /* a token use is spent only in the transaction that stores the
         * certificate, on the writer thread */
        if ((rc = fp_issue_submit(st->app->issuer, store, &j->ir, committed, j, &j->err)) !=
            FP_ERR_OK) {
            rc = refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, &j->m, j->actor,
                        fail_info_of(j->err.code), &j->err, fp_err_is_refusal(j->err.code));
            job_free(j);
            return rc;
        }
    }
    return FP_HTTP_DEFERRED; /* finish() answers */
}

static int op_certpoll(const scep_label *lb, fp_http_req *req, const scep_msg *m,
                       const char *actor)
{
    fp_pending_rec pr;
    fp_error err = {0};
    char key[65];
    int rc;

    if (signer_hash(m->signer, key) != FP_ERR_OK)
        REFUSE(SCEP_BAD_REQUEST, FP_ERR_CRYPTO, "hashing the signer certificate");
    rc = fp_store_pending_find(req->worker_state, lb->cfg->project, lb->cfg->name, key, &pr, &err);
    if (rc == FP_ERR_NOT_FOUND)
        REFUSE(SCEP_BAD_CERT_ID, FP_ERR_NOT_FOUND,
               "no held request was signed by this certificate");
    if (rc != FP_ERR_OK)
        return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor, SCEP_BAD_REQUEST,
                      &err, false);
    rc = answer_held(req, lb, m, actor, &pr);
    fp_pending_rec_clear(&pr);
    return rc;
}

/* The project CA whose subject is name, or NULL. */
static fp_ca *ca_by_name(const scep_label *lb, const X509_NAME *name)
{
    for (int i = 0; i < lb->n_cas; i++)
        if (X509_NAME_cmp(X509_get_subject_name(fp_ca_get0_cert(lb->cas[i])), name) == 0)
            return lb->cas[i];
    return NULL;
}

static int op_getcert_crl(const scep_label *lb, fp_http_req *req, const scep_msg *m, char *actor)
{
    fp_store *store = req->worker_state;
    fp_error err = {0};
    char serial[FP_SERIAL_HEX_MAX], ident[96];
    scep_rep rep = {.status = SCEP_SUCCESS};
    fp_ca *ca;
    int rc;

    /* RFC 8894 3.3.4, 3.3.5: signed with the requester's certificate;
     * here a current one of the project */
    if ((rc = ours_and_current(lb, store, m->signer, serial, &err)) != FP_ERR_OK)
        return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                      SCEP_BAD_MESSAGE_CHECK, &err, false);
    snprintf(actor, 160, "scep:cert:%s", serial);
    snprintf(ident, sizeof(ident), "cert:%s", serial);
    if (fp_http_limit_identity(req, ident))
        return FP_HTTP_DONE;
    if ((ca = ca_by_name(lb, m->issuer)) == NULL)
        REFUSE(SCEP_BAD_CERT_ID, FP_ERR_NOT_FOUND, "the issuer is not a CA of project '%s'",
               lb->cfg->project);
    if (m->type == SCEP_GETCERT) {
        fp_cert_rec rec;
        memset(&rec, 0, sizeof(rec));
        fp_serial_hex(m->serial, serial);
        rc = fp_store_cert_get(store, serial, &rec, &err);
        if (rc == FP_ERR_OK && (strcmp(rec.project, lb->cfg->project) != 0 ||
                                strcmp(rec.ca_id, fp_ca_id(ca)) != 0))
            rc = FP_ERR_NOT_FOUND;
        if (rc != FP_ERR_OK) {
            fp_cert_rec_clear(&rec);
            if (rc == FP_ERR_NOT_FOUND)
                REFUSE(SCEP_BAD_CERT_ID, FP_ERR_NOT_FOUND, "no certificate %s of CA %s", serial,
                       fp_ca_id(ca));
            return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                          SCEP_BAD_REQUEST, &err, false);
        }
        rep.cert_der = rec.der;
        rep.cert_der_len = rec.der_len;
        rc = send_rep(req, lb->ra, m, &rep);
        fp_cert_rec_clear(&rec);
        return rc;
    } else {
        /* a fresh CRL of that CA, as /crl/<ca-id>.crl publishes */
        fp_crl_params p = {.ca_id = fp_ca_id(ca), .issuer = fp_ca_get0_cert(ca),
                           .signer = fp_ca_get0_signer(ca),
                           .next_update_hours = fp_ca_config(ca)->crl_next_update_hours};
        fp_crl_info info;
        BIO *mem = BIO_new(BIO_s_mem());
        unsigned char *d = NULL;
        long n;
        if (mem == NULL || fp_crl_generate(store, &p, mem, &info, &err) != FP_ERR_OK) {
            BIO_free(mem);
            if (err.code == FP_ERR_OK)
                fp_err_set(&err, FP_ERR_NOMEM, NULL);
            return refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor,
                          SCEP_BAD_REQUEST, &err, false);
        }
        n = BIO_get_mem_data(mem, (char **)&d);
        rep.crl_der = d;
        rep.crl_der_len = n > 0 ? (size_t)n : 0;
        rc = send_rep(req, lb->ra, m, &rep);
        BIO_free(mem);
        return rc;
    }
}

int scep_pkioperation(scep_state *st, const scep_label *lb, fp_http_req *req,
                      const unsigned char *der, size_t len)
{
    const scep_label *signer_lb = lb != NULL ? lb : &st->labels[0];
    scep_msg msg;
    scep_msg *m = &msg;
    scep_fail f;
    fp_error err = {0};
    char actor[160];
    int rc;

    snprintf(actor, sizeof(actor), "scep:anonymous:%s", req->peer_addr);
    rc = scep_msg_parse(der, len, signer_lb->ra->cert, signer_lb->ra->key,
                        signer_lb->cfg->scep_legacy_crypto ? st->legacy : NULL, m, &f);
    if (lb == NULL) {
        char esc[96];
        const char *name = fp_http_param(req, "label");
        fp_log_escape(esc, sizeof(esc), name != NULL ? name : "");
        fp_err_set(&err, FP_ERR_NOT_FOUND, "unknown SCEP label '%s'", esc);
        rc = refuse(req, signer_lb->ra, "", name != NULL ? name : "", m, actor, SCEP_BAD_REQUEST,
                    &err, false);
        scep_msg_clear(m);
        return rc;
    }
    if (rc != FP_ERR_OK) {
        rc = refuse(req, lb->ra, lb->cfg->project, lb->cfg->name, m, actor, f.info, &f.err, false);
        scep_msg_clear(m);
        return rc;
    }
    switch (m->type) {
    case SCEP_PKCSREQ:
    case SCEP_RENEWALREQ:
        rc = op_enroll(st, lb, req, m, actor);
        break;
    case SCEP_CERTPOLL:
        rc = op_certpoll(lb, req, m, actor);
        break;
    default:
        rc = op_getcert_crl(lb, req, m, actor);
        break;
    }
    scep_msg_clear(m);
    return rc;
}
