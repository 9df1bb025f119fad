/* ocsp.c - OCSP responder core; see ocsp.h for the answers and the cache
 * policy. */
#define _POSIX_C_SOURCE 200809L
#include "ocsp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../x509/der.h"
#include "../x509/x509util.h"
#include "ocsp_cache.h"

/* Hash algorithms a CertID may use (RFC 6960 4.1.1 leaves it open; RFC
 * 5019 2.1.1 requires SHA-1 to be accepted). */
static const int cid_alg_nids[] = {NID_sha1, NID_sha256, NID_sha384, NID_sha512};
#define N_ALGS ((int)(sizeof(cid_alg_nids) / sizeof(*cid_alg_nids)))

/* The identity that signs for a CA; refcounted so a renewal can swap it
 * while requests still use the old one. */
typedef struct {
    atomic_int refs;
    fp_signer *signer;
    X509 *cert;
} identity;

typedef struct {
    char id[64];
    X509 *cert;
    unsigned char name_hash[N_ALGS][EVP_MAX_MD_SIZE];
    unsigned char key_hash[N_ALGS][EVP_MAX_MD_SIZE];
    unsigned hash_len[N_ALGS];
    identity *ident; /* guarded by fp_ocsp_responder.lock */
    char children[FP_OCSP_MAX_CHILDREN][FP_SERIAL_HEX_MAX]; /* sub-CA serials, always good */
    int n_children;
} served_ca;

struct fp_ocsp_responder {
    fp_ocsp_opts opts;
    served_ca cas[FP_OCSP_MAX_CAS];
    int n_cas;
    pthread_mutex_t lock;
    ocsp_cache *cache; /* NULL when disabled */
};

static void identity_put(identity *id)
{
    if (id == NULL || atomic_fetch_sub(&id->refs, 1) != 1)
        return;
    fp_signer_free(id->signer);
    X509_free(id->cert);
    free(id);
}

static identity *identity_get(fp_ocsp_responder *r, int ca)
{
    identity *id;
    pthread_mutex_lock(&r->lock);
    id = r->cas[ca].ident;
    atomic_fetch_add(&id->refs, 1);
    pthread_mutex_unlock(&r->lock);
    return id;
}

static identity *identity_new(fp_signer *signer, X509 *cert)
{
    identity *id = calloc(1, sizeof(*id));
    if (id == NULL || !X509_up_ref(cert)) {
        free(id);
        fp_signer_free(signer);
        return NULL;
    }
    atomic_init(&id->refs, 1);
    id->signer = signer;
    id->cert = cert;
    return id;
}

int fp_ocsp_responder_new(const fp_ocsp_opts *o, fp_ocsp_responder **out, fp_error *err)
{
    fp_ocsp_responder *r;

    *out = NULL;
    if (o->validity_seconds < 60)
        return fp_err_set(err, FP_ERR_ARG, "OCSP validity must be at least 60 seconds");
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    r->opts = *o;
    pthread_mutex_init(&r->lock, NULL);
    if (o->cache && o->cache_entries > 0) {
        r->cache = ocsp_cache_new(o->cache_entries);
        if (r->cache == NULL) {
            fp_ocsp_responder_free(r);
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        }
    }
    *out = r;
    return FP_ERR_OK;
}

void fp_ocsp_responder_free(fp_ocsp_responder *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->n_cas; i++) {
        X509_free(r->cas[i].cert);
        identity_put(r->cas[i].ident);
    }
    ocsp_cache_free(r->cache);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int fp_ocsp_responder_add_ca(fp_ocsp_responder *r, const char *ca_id, X509 *ca_cert,
                             fp_signer *signer, X509 *signer_cert, fp_error *err)
{
    served_ca *ca;
    const ASN1_BIT_STRING *key;
    unsigned char *name_der = NULL;
    int name_len;

    if (r->n_cas >= FP_OCSP_MAX_CAS || strlen(ca_id) >= sizeof(ca->id)) {
        fp_signer_free(signer);
        return fp_err_set(err, FP_ERR_ARG, "too many CAs or CA id too long");
    }
    ca = &r->cas[r->n_cas];
    memset(ca, 0, sizeof(*ca));
    snprintf(ca->id, sizeof(ca->id), "%s", ca_id);
    /* RFC 6960 4.1.1: issuerNameHash over the DER of the issuer's subject
     * name, issuerKeyHash over the value of its subjectPublicKey BIT STRING */
    key = X509_get0_pubkey_bitstr(ca_cert);
    name_len = i2d_X509_NAME(X509_get_subject_name(ca_cert), &name_der);
    if (key == NULL || name_len <= 0) {
        OPENSSL_free(name_der);
        fp_signer_free(signer);
        return fp_err_set(err, FP_ERR_CRYPTO, "CA certificate name or key");
    }
    for (int a = 0; a < N_ALGS; a++) {
        const EVP_MD *md = EVP_get_digestbynid(cid_alg_nids[a]);
        unsigned kl = 0;
        if (md == NULL ||
            !EVP_Digest(name_der, (size_t)name_len, ca->name_hash[a], &ca->hash_len[a], md, NULL) ||
            !EVP_Digest(key->data, (size_t)key->length, ca->key_hash[a], &kl, md, NULL)) {
            OPENSSL_free(name_der);
            fp_signer_free(signer);
            return fp_err_set(err, FP_ERR_CRYPTO, "CertID hashes");
        }
    }
    OPENSSL_free(name_der);
    ca->ident = identity_new(signer, signer_cert);
    if (ca->ident == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (!X509_up_ref(ca_cert)) {
        identity_put(ca->ident);
        return fp_err_set(err, FP_ERR_CRYPTO, "certificate reference");
    }
    ca->cert = ca_cert;
    r->n_cas++;
    return FP_ERR_OK;
}

int fp_ocsp_responder_set_signer(fp_ocsp_responder *r, const char *ca_id, fp_signer *signer,
                                 X509 *signer_cert, fp_error *err)
{
    identity *id, *old;
    int i;

    for (i = 0; i < r->n_cas && strcmp(r->cas[i].id, ca_id); i++)
        ;
    if (i == r->n_cas) {
        fp_signer_free(signer);
        return fp_err_set(err, FP_ERR_NOT_FOUND, "no served CA '%s'", ca_id);
    }
    id = identity_new(signer, signer_cert);
    if (id == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    pthread_mutex_lock(&r->lock);
    old = r->cas[i].ident;
    r->cas[i].ident = id;
    pthread_mutex_unlock(&r->lock);
    identity_put(old);
    if (r->cache)
        ocsp_cache_flush(r->cache); /* responses name the old responder */
    return FP_ERR_OK;
}

int fp_ocsp_responder_add_child(fp_ocsp_responder *r, const char *ca_id, X509 *child,
                                fp_error *err)
{
    int i;

    for (i = 0; i < r->n_cas && strcmp(r->cas[i].id, ca_id); i++)
        ;
    if (i == r->n_cas)
        return fp_err_set(err, FP_ERR_NOT_FOUND, "no served CA '%s'", ca_id);
    if (r->cas[i].n_children >= FP_OCSP_MAX_CHILDREN)
        return fp_err_set(err, FP_ERR_ARG, "too many sub-CAs under '%s'", ca_id);
    if (X509_check_issued(r->cas[i].cert, child) != X509_V_OK)
        return fp_err_set(err, FP_ERR_ARG, "certificate is not issued by '%s'", ca_id);
    if (fp_serial_hex(X509_get0_serialNumber(child), r->cas[i].children[r->cas[i].n_children]) != 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "sub-CA serial");
    r->cas[i].n_children++;
    return FP_ERR_OK;
}

/* ---- request handling ---- */

/* Index of the CA and hash algorithm a CertID names, or -1. */
static int match_ca(const fp_ocsp_responder *r, OCSP_CERTID *cid, int *alg)
{
    ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
    ASN1_OBJECT *md = NULL;
    int nid, a;

    if (!OCSP_id_get0_info(&nh, &md, &kh, NULL, cid) || nh == NULL || kh == NULL || md == NULL)
        return -1;
    nid = OBJ_obj2nid(md);
    for (a = 0; a < N_ALGS && cid_alg_nids[a] != nid; a++)
        ;
    if (a == N_ALGS)
        return -1;
    *alg = a;
    for (int i = 0; i < r->n_cas; i++) {
        const served_ca *ca = &r->cas[i];
        if ((unsigned)nh->length == ca->hash_len[a] && (unsigned)kh->length == ca->hash_len[a] &&
            !memcmp(nh->data, ca->name_hash[a], ca->hash_len[a]) &&
            !memcmp(kh->data, ca->key_hash[a], ca->hash_len[a]))
            return i;
    }
    return -1;
}

/* Serial of a CertID as the store spells it; -1 if it cannot be ours
 * (negative, zero, or longer than RFC 5280's 20 octets). */
static int cid_serial(OCSP_CERTID *cid, char out[FP_SERIAL_HEX_MAX])
{
    ASN1_INTEGER *serial = NULL;
    if (!OCSP_id_get0_info(NULL, NULL, NULL, &serial, cid) || serial == NULL ||
        ASN1_STRING_type(serial) != V_ASN1_INTEGER || ASN1_STRING_length(serial) < 1 ||
        ASN1_STRING_length(serial) > 20)
        return -1;
    return fp_serial_hex(serial, out) == 0 ? 0 : -1;
}

/* Nonce check (RFC 9654 2.1): extnValue holds an OCTET STRING of 1..128
 * octets.  Returns 0 none, 1 valid, -1 malformed. */
static int check_nonce(OCSP_REQUEST *req)
{
    int idx = OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1);
    X509_EXTENSION *ext;
    const ASN1_OCTET_STRING *v;
    fp_der d;
    fp_der_tlv t;

    if (idx < 0)
        return 0;
    if (OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, idx) >= 0)
        return -1; /* RFC 5280 4.2: an extension appears at most once */
    ext = OCSP_REQUEST_get_ext(req, idx);
    v = ext ? X509_EXTENSION_get_data(ext) : NULL;
    if (v == NULL || v->length < 1)
        return -1;
    /* the extension value is the DER of one OCTET STRING (RFC 8954 2.1),
     * read with the one bounded DER cursor */
    fp_der_init(&d, v->data, (size_t)v->length);
    if (fp_der_expect(&d, V_ASN1_OCTET_STRING, V_ASN1_UNIVERSAL, false, &t, NULL) != FP_ERR_OK ||
        fp_der_finish(&d, NULL) != FP_ERR_OK)
        return -1;
    return t.len >= 1 && t.len <= FP_OCSP_NONCE_MAX ? 1 : -1;
}

static int encode_resp(int status, OCSP_BASICRESP *bs, unsigned char **out, size_t *out_len,
                       fp_error *err)
{
    OCSP_RESPONSE *resp = OCSP_response_create(status, bs);
    unsigned char *der = NULL;
    int len;

    *out = NULL;
    *out_len = 0;
    if (resp == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, "OCSP response");
    len = i2d_OCSP_RESPONSE(resp, &der);
    OCSP_RESPONSE_free(resp);
    if (len <= 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "OCSP response encoding");
    *out = malloc((size_t)len);
    if (*out == NULL) {
        OPENSSL_free(der);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    memcpy(*out, der, (size_t)len);
    *out_len = (size_t)len;
    OPENSSL_free(der);
    return FP_ERR_OK;
}

/* Quoted hex of the first 128 bits of SHA-256(der): an HTTP entity tag
 * (RFC 9110 8.8.3) computed once per signed response. */
static void set_etag(const unsigned char *der, size_t len, char etag[36])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned mdlen = 0;

    etag[0] = '\0';
    if (!EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL) || mdlen < 16)
        return;
    fp_hex(md, 16, hex);
    snprintf(etag, 36, "\"%.32s\"", hex);
}

/* An unsuccessful response: just the status (RFC 6960 4.2.1). */
static int error_resp(int status, fp_ocsp_result *res, unsigned char **out, size_t *out_len,
                      fp_error *err)
{
    res->status = status;
    return encode_resp(status, NULL, out, out_len, err);
}

/* Add one SingleResponse for cid; *cert_status receives what was said.
 * Returns FP_ERR_OK, or FP_ERR_STORE when the store failed. */
static int add_single(fp_ocsp_responder *r, fp_store *store, OCSP_BASICRESP *bs,
                      OCSP_CERTID *cid, int ca, int signing_ca, ASN1_TIME *this_up,
                      ASN1_TIME *next_up, int *cert_status, fp_error *err)
{
    char serial[FP_SERIAL_HEX_MAX];
    fp_cert_status_rec st;
    ASN1_TIME *revtime = NULL;
    int status = V_OCSP_CERTSTATUS_UNKNOWN, reason = -1, rc;

    /* a CA with a different responder: this signer cannot speak for it
     * (RFC 6960 4.2.2.2), so it does not know the certificate */
    if (ca >= 0 && ca == signing_ca && cid_serial(cid, serial) == 0) {
        for (int i = 0; i < r->cas[ca].n_children; i++)
            if (!strcmp(r->cas[ca].children[i], serial))
                status = V_OCSP_CERTSTATUS_GOOD;
        if (status == V_OCSP_CERTSTATUS_GOOD)
            goto add;
        rc = fp_store_cert_status(store, serial, &st, err);
        if (rc != FP_ERR_OK && rc != FP_ERR_NOT_FOUND)
            return FP_ERR_STORE;
        if (rc == FP_ERR_OK && !strcmp(st.ca_id, r->cas[ca].id)) {
            if (st.status == FP_CERT_REVOKED) {
                status = V_OCSP_CERTSTATUS_REVOKED;
                /* RFC 5280 5.3.1 guidance: leave out "unspecified" */
                reason = st.reason == FP_REASON_UNSPECIFIED ? -1 : st.reason;
                revtime = ASN1_TIME_set(NULL, (time_t)st.revoked_at);
                if (revtime == NULL)
                    return fp_err_set(err, FP_ERR_NOMEM, NULL);
            } else {
                status = V_OCSP_CERTSTATUS_GOOD;
            }
        }
    }
add:
    if (OCSP_basic_add1_status(bs, cid, status, reason, revtime, this_up, next_up) == NULL) {
        ASN1_TIME_free(revtime);
        return fp_err_set(err, FP_ERR_CRYPTO, "OCSP single response");
    }
    ASN1_TIME_free(revtime);
    *cert_status = status;
    return FP_ERR_OK;
}

/*
 * An answer in the making, split at its signature so that the signature
 * may come later (fp_ocsp_respond_async): prepare decodes the request,
 * answers from the cache or with an error status, or builds the basic
 * response to sign; finish encodes the signed one and caches it.
 */
typedef struct ocsp_job {
    fp_ocsp_responder *r;
    int64_t now;
    OCSP_BASICRESP *bs; /* to sign; NULL: the answer is in out already */
    identity *ident;    /* who signs bs */
    fp_ocsp_result res;
    bool cacheable;
    uint64_t epoch;
    int ca0, alg0;
    char serial[FP_SERIAL_HEX_MAX];
    unsigned char *out;
    size_t out_len;
    fp_ocsp_done done;
    void *arg;
} ocsp_job;

static void job_clear(ocsp_job *j)
{
    identity_put(j->ident);
    j->ident = NULL;
    OCSP_BASICRESP_free(j->bs);
    j->bs = NULL;
}

static int prepare(fp_ocsp_responder *r, fp_store *store, const unsigned char *reqder,
                   size_t len, ocsp_job *j, fp_error *err)
{
    OCSP_REQUEST *req = NULL;
    OCSP_BASICRESP *bs = NULL;
    ASN1_TIME *this_up = NULL, *next_up = NULL;
    const unsigned char *p = reqder;
    int cas[FP_OCSP_MAX_CERTS], algs[FP_OCSP_MAX_CERTS];
    fp_ocsp_result *res = &j->res;
    unsigned char **out = &j->out;
    size_t *out_len = &j->out_len;
    int64_t now = j->now;
    int n, nonce, signing_ca = -1, rc;

    *out = NULL;
    *out_len = 0;
    memset(res, 0, sizeof(*res));
    if (len == 0 || len > FP_OCSP_MAX_REQUEST) {
        fp_err_set(&res->why, FP_ERR_TOO_LARGE, "request of %zu bytes (1..%d accepted)", len,
                   FP_OCSP_MAX_REQUEST);
        return error_resp(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, res, out, out_len, err);
    }
    req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    if (req == NULL || p != reqder + len) {
        fp_err_set(&res->why, FP_ERR_ARG, "not a DER OCSPRequest");
        rc = error_resp(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, res, out, out_len, err);
        goto out;
    }
    n = OCSP_request_onereq_count(req);
    nonce = check_nonce(req);
    if (n < 1 || n > FP_OCSP_MAX_CERTS || nonce < 0) {
        if (nonce < 0)
            fp_err_set(&res->why, FP_ERR_ARG, "bad nonce (RFC 9654: 1..%d octets)",
                       FP_OCSP_NONCE_MAX);
        else
            fp_err_set(&res->why, FP_ERR_ARG, "request names %d certificates (1..%d accepted)",
                       n, FP_OCSP_MAX_CERTS);
        rc = error_resp(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, res, out, out_len, err);
        goto out;
    }
    res->nonce = nonce > 0;
    for (int i = 0; i < n; i++) {
        cas[i] = match_ca(r, OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i)), &algs[i]);
        if (cas[i] >= 0 && signing_ca < 0)
            signing_ca = cas[i];
    }
    if (signing_ca < 0) {
        /* RFC 5019 2.2.3 / RFC 6960 2.3: not a CA this responder serves */
        fp_err_set(&res->why, FP_ERR_NOT_FOUND, "no certificate of a CA served here");
        rc = error_resp(OCSP_RESPONSE_STATUS_UNAUTHORIZED, res, out, out_len, err);
        goto out;
    }

    /* fast path: one certificate, no nonce */
    j->cacheable = r->cache != NULL && n == 1 && !res->nonce &&
                   cid_serial(OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, 0)), j->serial) == 0;
    j->ca0 = cas[0];
    j->alg0 = algs[0];
    if (j->cacheable) {
        ocsp_cache_meta m;
        if (ocsp_cache_get(r->cache, cas[0], algs[0], j->serial, now, out, out_len, &m)) {
            res->status = OCSP_RESPONSE_STATUS_SUCCESSFUL;
            res->n_certs = 1;
            res->cert_status = m.cert_status;
            res->from_cache = true;
            res->this_update = m.this_update;
            res->next_update = m.next_update;
            res->produced_at = m.produced_at;
            memcpy(res->etag, m.etag, sizeof(res->etag));
            rc = FP_ERR_OK;
            goto out;
        }
        j->epoch = ocsp_cache_epoch(r->cache); /* before the store read */
    }

    bs = OCSP_BASICRESP_new();
    this_up = ASN1_TIME_set(NULL, (time_t)now);
    next_up = ASN1_TIME_set(NULL, (time_t)(now + r->opts.validity_seconds));
    if (bs == NULL || this_up == NULL || next_up == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int cs = V_OCSP_CERTSTATUS_UNKNOWN;
        rc = add_single(r, store, bs, OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i)),
                        cas[i], signing_ca, this_up, next_up, &cs, err);
        if (rc == FP_ERR_STORE) {
            /* RFC 6960 2.3: the responder cannot answer now */
            fp_err_set(&res->why, FP_ERR_STORE, "store unavailable");
            rc = error_resp(OCSP_RESPONSE_STATUS_TRYLATER, res, out, out_len, err);
            goto out;
        }
        if (rc != FP_ERR_OK)
            goto out;
        if (i == 0)
            res->cert_status = cs;
    }
    if (res->nonce && !OCSP_copy_nonce(bs, req)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "nonce echo");
        goto out;
    }
    res->n_certs = n;
    j->ident = identity_get(r, signing_ca);
    j->bs = bs;
    bs = NULL;
    rc = FP_ERR_OK;
out:
    ASN1_TIME_free(this_up);
    ASN1_TIME_free(next_up);
    OCSP_BASICRESP_free(bs);
    OCSP_REQUEST_free(req);
    if (rc != FP_ERR_OK) {
        free(*out);
        *out = NULL;
        *out_len = 0;
    }
    return rc;
}

/* The signature is in (rc, err): the answer. */
static int finish(ocsp_job *j, int rc, fp_error *err)
{
    fp_ocsp_result *res = &j->res;
    int64_t now = j->now;

    if (rc == FP_ERR_KEY_UNAVAILABLE) {
        /* RFC 6960 2.3: the signing key's token or signer process is away */
        fp_err_set(&res->why, FP_ERR_KEY_UNAVAILABLE, "signing key unavailable");
        rc = error_resp(OCSP_RESPONSE_STATUS_TRYLATER, res, &j->out, &j->out_len, err);
        goto out;
    }
    if (rc != FP_ERR_OK ||
        (rc = encode_resp(OCSP_RESPONSE_STATUS_SUCCESSFUL, j->bs, &j->out, &j->out_len, err)) !=
            FP_ERR_OK)
        goto out;
    res->status = OCSP_RESPONSE_STATUS_SUCCESSFUL;
    res->this_update = now;
    res->next_update = now + j->r->opts.validity_seconds;
    res->produced_at = now;
    set_etag(j->out, j->out_len, res->etag);
    if (j->cacheable) {
        /* "unknown" only briefly: it changes on issuance, which the change
         * log does not carry (with random serials a queried never-issued
         * serial is practically never issued later, but be safe) */
        int64_t keep = j->r->opts.validity_seconds / 2;
        if (res->cert_status == V_OCSP_CERTSTATUS_UNKNOWN && keep > FP_OCSP_UNKNOWN_TTL)
            keep = FP_OCSP_UNKNOWN_TTL;
        ocsp_cache_meta m = {res->cert_status, res->this_update, res->next_update,
                             res->produced_at, now + keep, ""};
        memcpy(m.etag, res->etag, sizeof(m.etag));
        ocsp_cache_put(j->r->cache, j->epoch, j->ca0, j->alg0, j->serial, j->out, j->out_len, &m);
    }
out:
    job_clear(j);
    if (rc != FP_ERR_OK) {
        free(j->out);
        j->out = NULL;
        j->out_len = 0;
    }
    return rc;
}

int fp_ocsp_respond(fp_ocsp_responder *r, fp_store *store, const unsigned char *reqder,
                    size_t len, int64_t now, unsigned char **out, size_t *out_len,
                    fp_ocsp_result *res, fp_error *err)
{
    ocsp_job j = {.r = r, .now = now};
    int rc = prepare(r, store, reqder, len, &j, err);

    /* responder ID by key hash (RFC 5019 2.2.2); the signer certificate is
     * included so clients can check the delegation (RFC 6960 4.2.2.2) */
    if (rc == FP_ERR_OK && j.bs != NULL)
        rc = finish(&j, fp_signer_sign_ocsp(j.ident->signer, j.bs, j.ident->cert, NULL,
                                            OCSP_RESPID_KEY, err),
                    err);
    job_clear(&j);
    *res = j.res;
    *out = j.out;
    *out_len = j.out_len;
    return rc;
}

static void job_signed(void *arg, int rc, const fp_error *serr)
{
    ocsp_job *j = arg;
    fp_error err = {0};

    if (rc != FP_ERR_OK)
        err = *serr;
    rc = finish(j, rc, &err);
    j->done(j->arg, rc, &err, j->out, j->out_len, &j->res);
    free(j);
}

void fp_ocsp_respond_async(fp_ocsp_responder *r, fp_store *store, const unsigned char *reqder,
                           size_t len, int64_t now, fp_ocsp_done done, void *arg)
{
    ocsp_job *j = calloc(1, sizeof(*j));
    fp_error err = {0};
    int rc;

    if (j == NULL) {
        fp_err_set(&err, FP_ERR_NOMEM, NULL);
        done(arg, FP_ERR_NOMEM, &err, NULL, 0, NULL);
        return;
    }
    *j = (ocsp_job){.r = r, .now = now, .done = done, .arg = arg};
    rc = prepare(r, store, reqder, len, j, &err);
    if (rc != FP_ERR_OK || j->bs == NULL) {
        done(arg, rc, &err, j->out, j->out_len, &j->res);
        free(j);
        return;
    }
    /* as fp_ocsp_respond; the answer is made when the signature is in */
    fp_signer_sign_ocsp_async(j->ident->signer, j->bs, j->ident->cert, NULL, OCSP_RESPID_KEY,
                              job_signed, j);
}

void fp_ocsp_invalidate(fp_ocsp_responder *r, const char *serial)
{
    if (r->cache)
        ocsp_cache_invalidate(r->cache, serial);
}

void fp_ocsp_flush(fp_ocsp_responder *r)
{
    if (r->cache)
        ocsp_cache_flush(r->cache);
}

void fp_ocsp_get_stats(fp_ocsp_responder *r, fp_ocsp_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (r->cache)
        ocsp_cache_stats(r->cache, &st->hits, &st->misses, &st->inserts, &st->invalidations,
                         &st->entries);
}

/* ---- change watching ---- */

#define WATCH_BATCH 1000

typedef struct {
    fp_ocsp_responder *r;
    int64_t last;
    int n;
} watch_ctx;

static int watch_one(void *arg, int64_t seq, const char *serial, const char *ca_id)
{
    watch_ctx *w = arg;
    (void)ca_id;
    fp_ocsp_invalidate(w->r, serial);
    w->last = seq;
    w->n++;
    return FP_ERR_OK;
}

int fp_ocsp_watch(fp_ocsp_responder *r, fp_store *store, int64_t *seq, bool *changed,
                  fp_error *err)
{
    watch_ctx w = {r, *seq, 0};
    int64_t head = 0;
    int rc;

    if (changed)
        *changed = false;
    if ((rc = fp_store_status_seq(store, &head, err)) != FP_ERR_OK)
        return rc;
    if (head == *seq)
        return FP_ERR_OK;
    if (head < *seq || head - *seq > FP_STORE_CHANGES_KEEP / 2) {
        /* far behind (or the store was replaced): start over */
        fp_ocsp_flush(r);
        *seq = head;
        if (changed)
            *changed = true;
        return FP_ERR_OK;
    }
    while (w.last < head) {
        int before = w.n;
        if ((rc = fp_store_status_changes(store, w.last, WATCH_BATCH, watch_one, &w, err)) !=
            FP_ERR_OK)
            return rc;
        if (w.n == before) {
            fp_ocsp_flush(r); /* rows pruned under us: changes may be lost */
            break;
        }
    }
    *seq = w.last > head ? w.last : head;
    if (changed)
        *changed = true;
    return FP_ERR_OK;
}
