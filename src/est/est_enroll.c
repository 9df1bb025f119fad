/*
 * est_enroll.c - simpleenroll, simplereenroll, serverkeygen (RFC 7030
 * 4.2, 4.4) and manual approval.
 *
 * Flow on the worker thread: authenticate (from the TLS certificate and
 * headers only), decode the CSR, check PoP linking, then hand the request
 * to the one issuance path (fp_issue_submit, ca/issue.h) with the label's
 * project and profile, the authenticated identity, the token that pays
 * and EST's own check of the signed certificate (the name asked for is
 * the caller's, est_identity.c; a renewal keeps its names), and return
 * FP_HTTP_DEFERRED.  The done callback runs on the writer thread once the
 * certificate is durable and only posts the job back to the worker, which
 * answers: nothing of a certificate leaves before its batch is durable.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "../ca/policy.h"
#include "../common/util.h"
#include "../x509/x509util.h"
#include "est.h"

#define NID_ASYMM_DECRYPT_KEY_ID_TXT "1.2.840.113549.1.9.16.2.54" /* RFC 7030 4.4.1.2 */
#define NID_DECRYPT_KEY_ID_TXT "1.2.840.113549.1.9.16.2.37"       /* RFC 7030 4.4.1.1 */

typedef struct enroll_job {
    fp_http_req *req;
    est_state *st;
    const est_label *lb;
    est_op op;
    X509_REQ *csr;    /* the request actually signed (ours for keygen) */
    X509 *cert;
    char *cert_b64;   /* the answer's certs-only PKCS#7, built before the commit */
    size_t cert_b64_len;
    EVP_PKEY *key;    /* serverkeygen: never stored, freed after the reply */
    bool encrypt_key; /* RFC 7030 4.4.1.2 */
    X509 *recipient;  /* the client certificate to encrypt to (own reference:
                         the connection may be gone when the commit lands) */
    est_identity id;  /* id.cert points at auth_cert */
    X509 *auth_cert;  /* the client certificate, own reference (the
                         certificate being renewed, for simplereenroll) */
    fp_issue_req ir;  /* as submitted; its pointers are the job's */
    struct timespec t_submit, t_done;
    fp_http_post post; /* hands the job back to its worker: no allocation */
    int rc;
    fp_error err;
    bool counted;     /* in st->enrolling */
} enroll_job;

/* The one table from error classes (common/err.h) to EST's answer. */
static int est_status_of(int code)
{
    switch (fp_err_class(code)) {
    case FP_ERRCLASS_BAD_INPUT:
    case FP_ERRCLASS_MALFORMED:
        return 400;
    case FP_ERRCLASS_TOO_LARGE:
        return 413;
    case FP_ERRCLASS_REFUSED:
        return 403;
    case FP_ERRCLASS_UNAVAILABLE:
        return 503; /* a dependency is down: retry later, est_answer_error */
    default:
        return 500;
    }
}

void est_answer_error(fp_http_req *req, const fp_error *err)
{
    int code = err->code, status = est_status_of(code);
    if (status == 503) {
        /* a dependency is down: the CA key's token or signer process, or the
         * store (PostgreSQL restarting or failing over).  The detail is for
         * the operator's log; the client only learns to retry. */
        bool key = code == FP_ERR_KEY_UNAVAILABLE;
        fp_log(FP_LOG_WARN, "id=%s %s: %s", req->id, fp_err_name(code), err->msg);
        fp_http_add_header(req, "Retry-After", key ? "30" : "2");
        fp_http_error(req, 503, "%s: %s unavailable, retry later (request %s)",
                      fp_err_name(code), key ? "the CA's signing key is" : "the store is",
                      req->id);
    } else if (status != 500) {
        fp_http_error(req, status, "%s: %s", fp_err_name(code), err->msg);
    } else {
        fp_log(FP_LOG_ERROR, "id=%s %s: %s", req->id, fp_err_name(code), err->msg);
        fp_http_error(req, 500, "internal error (request %s)", req->id);
    }
}

static void job_free(enroll_job *j)
{
    if (j == NULL)
        return;
    if (j->counted)
        atomic_fetch_sub(&j->st->enrolling, 1);
    X509_REQ_free(j->csr);
    X509_free(j->cert);
    free(j->cert_b64);
    EVP_PKEY_free(j->key);
    X509_free(j->auth_cert);
    X509_free(j->recipient);
    free(j);
}

/* ---- responses ---- */

static void reply_cert(fp_http_req *req, const char *b64, size_t len)
{
    fp_http_add_header(req, "Content-Transfer-Encoding", "base64");
    fp_http_reply(req, 200, EST_CT_PKCS7, b64, len);
}

/* RFC 7030 4.4.2: the key as CMS SignedData(EnvelopedData(PKCS#8)),
 * encrypted to the client's TLS certificate and signed by our TLS key. */
static int encrypt_key(fp_ca *ca, fp_http_req *req, X509 *recipient, const unsigned char *p8,
                       size_t p8len, unsigned char **out, size_t *outlen, fp_error *err)
{
    SSL_CTX *sctx = fp_http_server_ssl_ctx(fp_http_worker_server(req->worker));
    STACK_OF(X509) *rcpt = sk_X509_new_null(), *extra = sk_X509_new_null();
    BIO *in = NULL, *env_bio = NULL;
    CMS_ContentInfo *env = NULL, *sd = NULL;
    unsigned char *env_der = NULL, *der = NULL;
    int env_len, len, rc = FP_ERR_OK;

    *out = NULL;
    if (rcpt == NULL || extra == NULL || !sk_X509_push(rcpt, recipient) ||
        !sk_X509_push(extra, fp_ca_get0_cert(ca)) ||
        (in = BIO_new_mem_buf(p8, (int)p8len)) == NULL ||
        (env = CMS_encrypt(rcpt, in, EVP_aes_256_cbc(), CMS_BINARY)) == NULL ||
        (env_len = i2d_CMS_ContentInfo(env, &env_der)) <= 0 ||
        (env_bio = BIO_new_mem_buf(env_der, env_len)) == NULL ||
        (sd = CMS_sign(SSL_CTX_get0_certificate(sctx), SSL_CTX_get0_privatekey(sctx), extra,
                       NULL, CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP)) == NULL ||
        !CMS_set1_eContentType(sd, OBJ_nid2obj(NID_pkcs7_enveloped)) ||
        !CMS_final(sd, env_bio, NULL, CMS_BINARY) || (len = i2d_CMS_ContentInfo(sd, &der)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "encrypting the generated key");
        goto out;
    }
    *out = der;
    *outlen = (size_t)len;
    der = NULL;
out:
    OPENSSL_free(der);
    OPENSSL_free(env_der);
    BIO_free(in);
    BIO_free(env_bio);
    CMS_ContentInfo_free(env);
    CMS_ContentInfo_free(sd);
    sk_X509_free(rcpt);
    sk_X509_free(extra);
    return rc;
}

static void reply_keygen(enroll_job *j)
{
    fp_http_req *req = j->req;
    PKCS8_PRIV_KEY_INFO *p8inf = NULL;
    unsigned char *p8 = NULL, *enc = NULL;
    char *b64_key = NULL, *body = NULL, boundary[48], ct[96];
    size_t b64_key_len = 0, blen = 0, enc_len = 0;
    int p8len;
    fp_error err = {0};
    int rc;

    /* RFC 7030 4.4.2: application/pkcs8 is a PKCS#8 PrivateKeyInfo
     * (RFC 5958 OneAsymmetricKey), not the algorithm-specific form */
    if (EVP_PKEY_get_base_id(j->key) == EVP_PKEY_EC) {
        size_t n = 0;
        p8len = est_ec_pkcs8(j->key, &p8, &n, &err) == FP_ERR_OK ? (int)n : -1;
    } else {
        p8inf = EVP_PKEY2PKCS8(j->key);
        p8len = p8inf ? i2d_PKCS8_PRIV_KEY_INFO(p8inf, &p8) : -1;
        PKCS8_PRIV_KEY_INFO_free(p8inf); /* wipes the key octets */
    }
    if (p8len <= 0) {
        rc = fp_err_set(&err, FP_ERR_CRYPTO, "encoding the generated key");
        goto out;
    }
    if (j->encrypt_key) {
        if ((rc = encrypt_key(j->lb->ca, req, j->recipient, p8, (size_t)p8len, &enc, &enc_len, &err)) != FP_ERR_OK ||
            (rc = fp_b64_encode_lines(enc, enc_len, &b64_key, &b64_key_len, &err)) != FP_ERR_OK)
            goto out;
    } else if ((rc = fp_b64_encode_lines(p8, (size_t)p8len, &b64_key, &b64_key_len, &err)) !=
               FP_ERR_OK) {
        goto out;
    }
    if ((rc = est_multipart(j->encrypt_key ? "application/pkcs7-mime; smime-type=server-generated-key"
                                           : "application/pkcs8",
                            b64_key, EST_CT_PKCS7, j->cert_b64, boundary, &body, &blen, &err)) !=
        FP_ERR_OK)
        goto out;
    snprintf(ct, sizeof(ct), "multipart/mixed; boundary=%s", boundary);
    fp_http_reply_secret(req, 200, ct, body, blen); /* wiped once sent */
    body = NULL;
    req = NULL;
out:
    if (req != NULL)
        est_answer_error(req, &err);
    if (p8 != NULL)
        OPENSSL_clear_free(p8, (size_t)p8len);
    if (b64_key != NULL)
        OPENSSL_clear_free(b64_key, b64_key_len);
    if (body != NULL)
        OPENSSL_clear_free(body, blen);
    OPENSSL_free(enc);
}

/* ---- issuance ---- */

static void committed(void *arg, int rc, const fp_error *err, X509 *cert);
static void finish(void *arg);

/* EST's last word on the signed certificate (fp_issue_req.check), before
 * the commit: RFC 7030 4.2.2 for renewals, the label's identity rule for
 * the rest; then the answer is encoded from the exact bytes being stored. */
static int est_check_issued(void *arg, X509 *cert, const fp_cert_rec *rec, fp_error *err)
{
    enroll_job *j = arg;
    int rc;

    if (j->op == EST_REENROLL && !est_same_identity(cert, j->auth_cert))
        return fp_err_set(err, FP_ERR_CSR_SUBJECT,
                          "Subject or SubjectAltName differs from the certificate being renewed "
                          "(RFC 7030 4.2.2)");
    if (j->op != EST_REENROLL &&
        (rc = est_check_requested_name(j->lb, &j->id, j->csr, cert, err)) != FP_ERR_OK)
        return rc;
    free(j->cert_b64);
    j->cert_b64 = NULL;
    return est_certs_only_der_b64((const unsigned char *const *)&rec->der, &rec->der_len, 1,
                                  &j->cert_b64, &j->cert_b64_len, err);
}

static const char *op_via(est_op op)
{
    return op == EST_REENROLL ? "est/simplereenroll" : op == EST_KEYGEN ? "est/serverkeygen"
                                                                         : "est/simpleenroll";
}

static int submit(enroll_job *j, fp_store *store)
{
    j->ir = (fp_issue_req){.csr = j->csr, .profile = j->lb->cfg->profile, .actor = j->id.actor,
                           .own_key = j->op == EST_KEYGEN, .project = j->lb->cfg->project,
                           .action = j->op == EST_REENROLL ? "cert.renew" : "cert.issue",
                           .via = op_via(j->op),
                           .token_id = j->id.token_id[0] ? j->id.token_id : NULL,
                           .check = est_check_issued, .check_arg = j,
                           .auth_cert = j->auth_cert};

    clock_gettime(CLOCK_MONOTONIC, &j->t_submit);
    /* a token use is spent only in the transaction that stores the
     * certificate, on the writer thread (an fsync must not stall this
     * event loop) */
    /* the CA's signature may come later from the separate signer: this
     * worker serves other connections meanwhile (signer/async.h) */
    return fp_issue_submit_async(j->st->app->issuer, store, &j->ir, committed, j, &j->err);
}

/* Writer thread (or this worker, for a refusal or failure after the
 * signature): only hand the job back to its worker. */
static void committed(void *arg, int rc, const fp_error *err, X509 *cert)
{
    enroll_job *j = arg;
    clock_gettime(CLOCK_MONOTONIC, &j->t_done);
    j->rc = rc;
    j->cert = cert;
    if (err != NULL && rc != FP_ERR_OK)
        j->err = *err;
    j->post = (fp_http_post){finish, j, false, NULL};
    fp_http_worker_post_item(j->req->worker, &j->post);
}

static void finish(void *arg)
{
    enroll_job *j = arg;
    fp_http_req *req = j->req;
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    fp_log(FP_LOG_DEBUG, "id=%s commit wait %.2f ms, post wait %.2f ms", req->id,
           (j->t_done.tv_sec - j->t_submit.tv_sec) * 1e3 + (j->t_done.tv_nsec - j->t_submit.tv_nsec) / 1e6,
           (now.tv_sec - j->t_done.tv_sec) * 1e3 + (now.tv_nsec - j->t_done.tv_nsec) / 1e6);
    if (j->rc == FP_ERR_STATE && j->id.token_id[0]) {
        /* the token was used up or expired between check and commit */
        fp_http_add_header(req, "WWW-Authenticate", "Basic realm=\"fleetpki EST\"");
        fp_http_error(req, 401, "enrollment token: %s", j->err.msg);
        job_free(j);
        return;
    }
    if (j->rc != FP_ERR_OK) {
        est_answer_error(req, &j->err);
        job_free(j);
        return;
    }
    if (j->op == EST_REENROLL && j->lb->cfg->revoke_on_renew) {
        fp_error err = {0};
        if (fp_ca_revoke(req->worker_state, j->id.serial, FP_REASON_SUPERSEDED,
                         j->id.actor, &err) != FP_ERR_OK)
            fp_log(FP_LOG_WARN, "id=%s revoke-on-renew of %s failed: %s", req->id, j->id.serial,
                   err.msg);
    }
    /* step 6 of the issuance path (ca/issue.h): the new certificate (an
     * LDevID) is listed under its device before the device ever presents
     * it, on this worker's store handle, before the answer */
    fp_issue_after(j->st->app->issuer, req->worker_state, &j->ir, j->cert);
    if (j->op == EST_KEYGEN)
        reply_keygen(j);
    else
        reply_cert(req, j->cert_b64, j->cert_b64_len);
    job_free(j);
}

/* ---- serverkeygen request ---- */

/* The label's serverkeygen_algo, or for "auto" the profile's first allowed
 * in this order (the profile keeps a set, not a list). */
static const char *keygen_algo(const fp_est_label *l, const fp_profile *p)
{
    if (strcasecmp(l->serverkeygen_algo, "auto") != 0)
        return l->serverkeygen_algo;
    if (p->algs & FP_ALG_P256)
        return "p256";
    if (p->algs & FP_ALG_P384)
        return "p384";
    if (p->algs & FP_ALG_ED25519)
        return "ed25519";
    if (p->algs & FP_ALG_RSA)
        return p->rsa_min_bits > 2048 ? (p->rsa_min_bits > 3072 ? "rsa4096" : "rsa3072") : "rsa2048";
    return "p521";
}

static bool has_attr(X509_REQ *csr, const char *oid)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    bool found = o != NULL && X509_REQ_get_attr_by_OBJ(csr, o, -1) >= 0;
    ASN1_OBJECT_free(o);
    return found;
}

/* For an EC key, the public half in a form X509_REQ_set_pubkey encodes
 * cheaply (OpenSSL 3.0 would run the key through its encoder and decoder,
 * a third of a serverkeygen's CPU); NULL for other keys. */
static EVP_PKEY *cheap_public(EVP_PKEY *key)
{
    unsigned char pub[160];
    char group[64];
    size_t publen = 0;
    int nid;

    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) ||
        (nid = OBJ_txt2nid(group)) == NID_undef ||
        !EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub),
                                         &publen))
        return NULL;
    return est_ec_public_key(OBJ_nid2obj(nid), pub, (long)publen);
}

/* A request for a fresh key with the client's subject and extensions,
 * unsigned: the key is ours, so there is no possession to prove (the
 * client's own request was verified), and fp_ca_sign checks it with
 * fp_policy_check_own_key. */
static int keygen_csr(const fp_est_label *l, const fp_profile *p, X509_REQ *client, EVP_PKEY **key, X509_REQ **out,
                      fp_error *err)
{
    X509_REQ *r = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    EVP_PKEY *pub = NULL;
    int rc;

    *out = NULL;
    if ((rc = fp_key_generate(keygen_algo(l, p), key, err)) != FP_ERR_OK)
        return rc;
    pub = cheap_public(*key);
    exts = X509_REQ_get_extensions(client);
    r = X509_REQ_new();
    if (r == NULL || !X509_REQ_set_subject_name(r, X509_REQ_get_subject_name(client)) ||
        !X509_REQ_set_pubkey(r, pub != NULL ? pub : *key) ||
        (exts != NULL && sk_X509_EXTENSION_num(exts) > 0 && !X509_REQ_add_extensions(r, exts))) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "building the serverkeygen request");
        X509_REQ_free(r);
        r = NULL;
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    EVP_PKEY_free(pub);
    *out = r;
    return rc;
}

/* ---- manual approval ---- */

typedef struct {
    const est_label *lb;
    const est_identity *id;
    X509_REQ *csr;
} held_check;

/* The requested name, checked on the request (no certificate yet). */
static int held_name_check(void *arg, X509 *cert, const fp_cert_rec *rec, fp_error *err)
{
    held_check *h = arg;
    (void)cert;
    (void)rec;
    return est_check_requested_name(h->lb, h->id, h->csr, NULL, err);
}

/* Answers the request; returns FP_HTTP_DONE. */
static int manual_approval(est_state *st, const est_label *lb, fp_http_req *req, X509_REQ *csr,
                           const unsigned char *der, size_t der_len, const est_identity *id)
{
    fp_store *store = req->worker_state;
    unsigned char md[32];
    char hash[65], retry[16];
    fp_pending_rec pr;
    fp_error err = {0};
    int rc;

    if (EVP_Digest(der, der_len, md, NULL, EVP_sha256(), NULL) != 1) {
        fp_err_set(&err, FP_ERR_CRYPTO, "hash");
        est_answer_error(req, &err);
        return FP_HTTP_DONE;
    }
    fp_hex(md, sizeof(md), hash);
    snprintf(retry, sizeof(retry), "%d", lb->cfg->retry_after_seconds);
    rc = fp_store_pending_find(store, lb->cfg->project, lb->cfg->name, hash, &pr, &err);
    if (rc == FP_ERR_NOT_FOUND) {
        fp_pending_rec add;
        fp_audit_event ev = {.actor = id->actor, .action = "csr.hold", .object = "",
                             .detail = "", .project = lb->cfg->project};
        int64_t pid = 0;
        /* refuse at once what an operator could not approve anyway: the
         * issuance path's own checks, without signing */
        held_check hc = {lb, id, csr};
        fp_issue_req ir = {.csr = csr, .profile = lb->cfg->profile, .actor = id->actor,
                           .project = lb->cfg->project, .via = "est/hold",
                           .check = held_name_check, .check_arg = &hc};
        if ((rc = fp_issue_precheck(st->app->issuer, store, &ir, &err)) != FP_ERR_OK) {
            est_answer_error(req, &err);
            return FP_HTTP_DONE;
        }
        memset(&add, 0, sizeof(add));
        snprintf(add.label, sizeof(add.label), "%s", lb->cfg->name);
        snprintf(add.project, sizeof(add.project), "%s", lb->cfg->project);
        memcpy(add.csr_hash, hash, sizeof(hash));
        add.csr = (unsigned char *)der;
        add.csr_len = der_len;
        add.subject = fp_name_string(X509_REQ_get_subject_name(csr));
        add.actor = (char *)id->actor;
        rc = fp_store_pending_add(store, &add, &pid, &ev, &err);
        free(add.subject);
        if (rc != FP_ERR_OK) {
            est_answer_error(req, &err);
            return FP_HTTP_DONE;
        }
        fp_log(FP_LOG_INFO, "id=%s enrollment held for approval as request %lld", req->id,
               (long long)pid);
        fp_http_add_header(req, "Retry-After", retry);
        fp_http_error(req, 202, "held for manual approval as request %lld", (long long)pid);
        return FP_HTTP_DONE;
    }
    if (rc != FP_ERR_OK) {
        est_answer_error(req, &err);
        return FP_HTTP_DONE;
    }
    if (pr.status == FP_PENDING_WAITING) {
        fp_http_add_header(req, "Retry-After", retry);
        fp_http_error(req, 202, "request %lld is waiting for approval", (long long)pr.id);
    } else if (pr.status == FP_PENDING_REJECTED) {
        fp_http_error(req, 403, "request %lld was rejected by an operator", (long long)pr.id);
    } else {
        fp_cert_rec rec;
        if (fp_store_cert_get(store, pr.serial, &rec, &err) != FP_ERR_OK) {
            est_answer_error(req, &err);
        } else {
            char *b64 = NULL;
            size_t len = 0;
            if (est_certs_only_der_b64((const unsigned char *const *)&rec.der, &rec.der_len, 1,
                                       &b64, &len, &err) != FP_ERR_OK)
                est_answer_error(req, &err);
            else
                reply_cert(req, b64, len);
            free(b64);
            fp_cert_rec_clear(&rec);
        }
    }
    fp_pending_rec_clear(&pr);
    return FP_HTTP_DONE;
}

/* ---- entry ---- */

int est_enroll(est_state *st, const est_label *lb, fp_http_req *req, est_op op)
{
    const fp_profile *p = fp_config_profile(st->cfg, lb->cfg->profile);
    enroll_job *j = NULL;
    X509_REQ *csr = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    fp_error err = {0};
    int ret = FP_HTTP_DONE;

    /* max_pending_commits bounds the enrollments that wait for the group
     * commit, counted from the moment they pass here: with the separate
     * signer an enrollment first waits for its signature without holding
     * its worker (signer/async.h), and a burst whose signatures come back
     * together would otherwise all pass before the first reached the
     * committer's queue.  The queue itself also holds other front ends'
     * certificates (CMP, SCEP, the API). */
    if (atomic_fetch_add(&st->enrolling, 1) >= (size_t)st->cfg->max_pending_commits ||
        fp_committer_backlog(st->committer) >= (size_t)st->cfg->max_pending_commits) {
        atomic_fetch_sub(&st->enrolling, 1);
        fp_http_add_header(req, "Retry-After", "1");
        fp_http_error(req, 503, "overloaded, retry later");
        return FP_HTTP_DONE;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        atomic_fetch_sub(&st->enrolling, 1);
        fp_http_error(req, 500, "out of memory");
        goto out;
    }
    j->st = st;
    j->counted = true;
    /* who is asking comes first: no base64, DER, key or signature work on
     * the body of an unauthenticated request (issue 8, defect 2) */
    if (est_authenticate(st, lb, req, &j->id) != FP_ERR_OK)
        goto out;
    if (j->id.cert != NULL) {
        if (!X509_up_ref(j->id.cert)) {
            fp_http_error(req, 500, "internal error");
            goto out;
        }
        j->auth_cert = j->id.cert; /* outlives the connection, unlike peer_cert */
        j->id.cert = j->auth_cert;
    }
    if (est_decode_csr(req, &csr, &der, &der_len, &err) != FP_ERR_OK) {
        est_answer_error(req, &err);
        goto out;
    }
    /* serverkeygen: the client's CSR must still prove possession of its
     * key (RFC 7030 4.4.1) with an accepted signature algorithm and key;
     * for the other operations fp_policy_check does */
    if (op == EST_KEYGEN && fp_policy_check_pop(csr, &err) != FP_ERR_OK) {
        est_answer_error(req, &err);
        goto out;
    }
    /* the token's CN limit needs no signature: refuse before signing
     * (certificate identities are checked against the issued certificate) */
    if (!j->id.by_cert && est_check_requested_name(lb, &j->id, csr, NULL, &err) != FP_ERR_OK) {
        est_answer_error(req, &err);
        goto out;
    }
    if (lb->cfg->require_pop_linking && est_check_pop_linking(req, csr) != FP_ERR_OK)
        goto out;
    if (op == EST_REENROLL) {
        if (!j->id.by_cert || !j->id.ours) {
            fp_http_error(req, 403, "%s: simplereenroll needs the current certificate, issued "
                                    "by this CA, as TLS client certificate",
                          fp_err_name(FP_ERR_STATE));
            goto out;
        }
    }
    if (lb->cfg->manual_approval) {
        if (op == EST_KEYGEN) {
            fp_http_error(req, 403, "serverkeygen is not offered on a manual-approval label");
            goto out;
        }
        /* RFC 7030 4.2.2 for a held renewal: the operator's approval
         * issues this CSR as it is, and no issued certificate exists yet
         * to compare with the one being renewed (est_check_issued),
         * so the CSR itself must keep its subject and SANs */
        if (op == EST_REENROLL && !est_csr_same_identity(csr, j->auth_cert)) {
            fp_err_set(&err, FP_ERR_CSR_SUBJECT, "Subject or SubjectAltName differs from the "
                                                 "certificate being renewed (RFC 7030 4.2.2)");
            est_answer_error(req, &err);
            goto out;
        }
        ret = manual_approval(st, lb, req, csr, der, der_len, &j->id);
        goto out;
    }
    if (op == EST_KEYGEN) {
        X509_REQ *mine = NULL;
        if (has_attr(csr, NID_DECRYPT_KEY_ID_TXT)) {
            fp_http_error(req, 501, "symmetric key encryption (DecryptKeyIdentifier) is not supported");
            goto out;
        }
        if (has_attr(csr, NID_ASYMM_DECRYPT_KEY_ID_TXT)) {
            if (req->peer_cert == NULL) {
                fp_http_error(req, 400, "an encrypted key needs a TLS client certificate to encrypt to");
                goto out;
            }
            j->encrypt_key = true;
            if (!X509_up_ref(req->peer_cert)) {
                fp_http_error(req, 500, "internal error");
                goto out;
            }
            j->recipient = req->peer_cert;
        }
        if (keygen_csr(lb->cfg, p, csr, &j->key, &mine, &err) != FP_ERR_OK) {
            est_answer_error(req, &err);
            goto out;
        }
        X509_REQ_free(csr);
        csr = mine;
    }
    j->req = req;
    j->st = st;
    j->lb = lb;
    j->op = op;
    j->csr = csr;
    csr = NULL;
    /* refusals are audited by the issuance path; done is not called for
     * one found before the signature, and answers one found after it */
    if (submit(j, req->worker_state) != FP_ERR_OK) {
        est_answer_error(req, &j->err);
        goto out;
    }
    /* the job now belongs to the committer; finish() answers the request */
    j = NULL;
    ret = FP_HTTP_DEFERRED;
out:
    job_free(j);
    X509_REQ_free(csr);
    free(der);
    return ret;
}
