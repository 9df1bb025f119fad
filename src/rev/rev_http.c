/*
 * rev_http.c - OCSP and CRL on the plain HTTP listener (RFC 6960 A.1,
 * RFC 5019 5-6, RFC 5280 4.2.1.13 / 4.2.2.1).  Handlers are thin: decode,
 * call the core, encode.
 *
 *   POST /ocsp             application/ocsp-request -> application/ocsp-response
 *   GET  /ocsp/<base64>    the DER request in base64 (standard or URL-safe
 *                          alphabet, padding optional), URL-decoded by the
 *                          HTTP layer; RFC 5019 caching headers on success
 *   GET  /crl/<ca-id>.crl  DER CRL, application/pkix-crl
 *   GET  /ca/<ca-id>.crt   DER CA certificate, application/pkix-cert (caIssuers)
 *
 * OCSP protocol failures are still HTTP 200 with an OCSPResponse carrying
 * the error status (RFC 6960 A.1.2); HTTP errors come from the layer (404,
 * 405, 411, 413 beyond max_body, 415 wrong content type).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ocsp.h>

#include "../common/util.h"
#include "../ocsp/ocsp_setup.h"
#include "../x509/x509util.h"
#include "rev.h"

#define OCSP_POST_MAX (64 * 1024) /* beyond the core's limit: it answers malformedRequest */
#define OCSP_GET_MAX (FP_OCSP_MAX_REQUEST / 3 * 4 + 8)

static int rev_ocsp_post(fp_http_req *req);
static int rev_ocsp_get(fp_http_req *req);
static int rev_crl_handler(fp_http_req *req);
static int rev_ca_get(fp_http_req *req);

static const fp_http_route rev_routes[] = {
    {FP_HTTP_POST, "/ocsp", FP_HTTP_PLAIN, "application/ocsp-request", FP_HTTP_AUTH_NONE,
     OCSP_POST_MAX, rev_ocsp_post},
    {FP_HTTP_GET, "/ocsp/**", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, rev_ocsp_get},
    {FP_HTTP_GET | FP_HTTP_HEAD, "/crl/{file}", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, rev_crl_handler},
    {FP_HTTP_GET | FP_HTTP_HEAD, "/ca/{file}", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, rev_ca_get},
    {0, NULL, 0, NULL, FP_HTTP_AUTH_NONE, 0, NULL},
};

/* ---- helpers ---- */

static void http_date(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%a, %d %b %Y %H:%M:%S GMT", &tm); /* RFC 9110 5.6.7 */
}

static void note_result(fp_http_req *req, const fp_ocsp_result *res)
{
    static const char *const st[] = {"good", "revoked", "unknown"};
    if (res->status == OCSP_RESPONSE_STATUS_SUCCESSFUL)
        snprintf(req->identity, sizeof(req->identity), "ocsp:%s%s%s",
                 res->cert_status >= 0 && res->cert_status <= 2 ? st[res->cert_status] : "?",
                 res->from_cache ? ",cached" : "", res->nonce ? ",nonce" : "");
    else
        snprintf(req->identity, sizeof(req->identity), "ocsp:%s",
                 OCSP_response_status_str(res->status));
}

/* An OCSP request whose answer may come after the handler returned (a
 * fresh signature from the separate signer, ocsp.h fp_ocsp_respond_async). */
typedef struct ocsp_call {
    fp_http_req *req;
    bool get;
    int64_t now;
    bool returned; /* the handler returned FP_HTTP_DEFERRED */
    bool answered; /* done ran before it returned */
} ocsp_call;

static void answered(void *arg, int rc, const fp_error *err, unsigned char *out, size_t out_len,
                     const fp_ocsp_result *res)
{
    ocsp_call *c = arg;
    fp_http_req *req = c->req;
    int64_t now = c->now;

    if (rc != FP_ERR_OK) {
        fp_log(FP_LOG_ERROR, "ocsp id=%s: %s", req->id, fp_err_str(err));
        fp_http_error(req, 500, "internal error");
        goto out;
    }
    note_result(req, res);
    if (c->get && res->status == OCSP_RESPONSE_STATUS_SUCCESSFUL && res->next_update > now) {
        /* RFC 5019 6.2: let caches keep it until nextUpdate, no longer */
        char v[96];
        const char *inm = fp_http_header(req, "If-None-Match");

        http_date(res->this_update, v, sizeof(v));
        fp_http_add_header(req, "Last-Modified", v);
        http_date(res->next_update, v, sizeof(v));
        fp_http_add_header(req, "Expires", v);
        snprintf(v, sizeof(v), "max-age=%lld, public, no-transform, must-revalidate",
                 (long long)(res->next_update - now));
        fp_http_add_header(req, "Cache-Control", v);
        if (res->etag[0]) {
            fp_http_add_header(req, "ETag", res->etag);
            if (inm != NULL && !strcmp(inm, res->etag)) {
                free(out);
                fp_http_reply(req, 304, NULL, NULL, 0);
                goto out;
            }
        }
    }
    fp_http_reply(req, 200, "application/ocsp-response", out, out_len);
    free(out);
out:
    if (c->returned)
        free(c);
    else
        c->answered = true;
}

/* Answer der (len bytes) as an OCSP request; get adds RFC 5019 headers. */
static int answer(fp_http_req *req, const unsigned char *der, size_t len, bool get)
{
    rev_state *st = req->mod_state;
    ocsp_call *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        fp_http_error(req, 500, "out of memory");
        return FP_HTTP_DONE;
    }
    *c = (ocsp_call){.req = req, .get = get, .now = fp_now()};
    fp_ocsp_respond_async(st->ocsp, req->worker_state, der, len, c->now, answered, c);
    if (c->answered) {
        free(c);
        return FP_HTTP_DONE;
    }
    c->returned = true;
    return FP_HTTP_DEFERRED;
}

/* ---- handlers ---- */

static int rev_ocsp_post(fp_http_req *req)
{
    return answer(req, req->body, req->body_len, false);
}

static int rev_ocsp_get(fp_http_req *req)
{
    unsigned char *der = NULL;
    size_t len = 0;
    int rc;

    /* RFC 6960 A.1.1: GET {url}/{url-encoding of base-64 of DER}.  A
     * request that does not decode is answered like any malformed one. */
    if (req->rest == NULL || strlen(req->rest) > OCSP_GET_MAX ||
        fp_b64_decode(req->rest, strlen(req->rest), FP_B64_URLSAFE, FP_OCSP_MAX_REQUEST, &der,
                      &len, NULL) != FP_ERR_OK)
        return answer(req, (const unsigned char *)"", 0, false);
    rc = answer(req, der, len, true);
    free(der);
    return rc;
}

/* "<id><suffix>" -> id in buf; false if the shape is wrong. */
static bool strip_suffix(const char *name, const char *suffix, char *buf, size_t size)
{
    size_t n = name ? strlen(name) : 0, s = strlen(suffix);
    if (n <= s || n - s >= size || strcmp(name + n - s, suffix) != 0)
        return false;
    memcpy(buf, name, n - s);
    buf[n - s] = '\0';
    return true;
}

static void release_blob(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    rev_blob_put(arg);
}

static int rev_crl_handler(fp_http_req *req)
{
    rev_state *st = req->mod_state;
    char id[64], v[64];
    rev_blob *b;
    const char *inm;

    if (!strip_suffix(fp_http_param(req, "file"), ".crl", id, sizeof(id)) || (b = rev_crl_get(st, id)) == NULL) {
        fp_http_error(req, 404, "no CRL published here by that name");
        return FP_HTTP_DONE;
    }
    http_date(b->this_update, v, sizeof(v));
    fp_http_add_header(req, "Last-Modified", v);
    http_date(b->next_update, v, sizeof(v));
    fp_http_add_header(req, "Expires", v);
    /* republished on every revocation: caches must ask again */
    fp_http_add_header(req, "Cache-Control", "no-cache");
    fp_http_add_header(req, "ETag", b->etag);
    if (req->method == FP_HTTP_HEAD) { /* libevent leaves it out for HEAD */
        snprintf(v, sizeof(v), "%zu", b->len);
        fp_http_add_header(req, "Content-Length", v);
    }
    inm = fp_http_header(req, "If-None-Match");
    if (inm != NULL && !strcmp(inm, b->etag)) {
        fp_http_reply(req, 304, NULL, NULL, 0);
        rev_blob_put(b);
    } else {
        /* by reference: the blob lives until the bytes are on the wire
         * (libevent drops the body of HEAD itself) */
        fp_http_reply_ref(req, 200, "application/pkix-crl", b->data, b->len, release_blob, b);
    }
    return FP_HTTP_DONE;
}

static int rev_ca_get(fp_http_req *req)
{
    rev_state *st = req->mod_state;
    char id[64];

    if (strip_suffix(fp_http_param(req, "file"), ".crt", id, sizeof(id)))
        for (int i = 0; i < st->n_crls; i++)
            if (!strcmp(st->crls[i].ca_id, id)) {
                fp_http_add_header(req, "Cache-Control", "public, max-age=86400");
                if (req->method == FP_HTTP_HEAD) {
                    char v[24];
                    snprintf(v, sizeof(v), "%d", st->crls[i].cert_der_len);
                    fp_http_add_header(req, "Content-Length", v);
                }
                fp_http_reply(req, 200, "application/pkix-cert", st->crls[i].cert_der,
                              (size_t)st->crls[i].cert_der_len);
                return FP_HTTP_DONE;
            }
    fp_http_error(req, 404, "no CA certificate here by that name");
    return FP_HTTP_DONE;
}

/* ---- module hooks ---- */

static int add_crl(rev_state *st, const char *ca_id, bool required, fp_error *err)
{
    rev_crl *c = &st->crls[st->n_crls];
    fp_error local = {0};
    int rc;

    if (st->n_crls >= REV_MAX_CRLS)
        return fp_err_set(err, FP_ERR_CONFIG, "more than %d CAs to publish CRLs for",
                          REV_MAX_CRLS);
    memset(c, 0, sizeof(*c));
    rc = fp_crl_load_ca(st->cfg, ca_id, st->pass, st->passlen, &c->cert, &c->signer, &local);
    if (rc != FP_ERR_OK) {
        if (required) {
            if (err != NULL)
                *err = local;
            return rc;
        }
        /* the root key is meant to go offline: then its CRL is made offline
         * and uploaded (rev_upload.c) */
        rc = rev_crl_upload_add(st, ca_id, st->cfg->root_cert, err);
        if (rc == FP_ERR_NOT_FOUND) {
            fp_log(FP_LOG_INFO, "no CRL for %s served (key not available: %s; no upload)",
                   ca_id, local.msg);
            return FP_ERR_OK;
        }
        return rc;
    }
    snprintf(c->ca_id, sizeof(c->ca_id), "%s", ca_id);
    c->cert_der_len = i2d_X509(c->cert, &c->cert_der);
    if (c->cert_der_len <= 0) {
        X509_free(c->cert);
        fp_signer_free(c->signer);
        return fp_err_set(err, FP_ERR_CRYPTO, "CA certificate encoding");
    }
    st->n_crls++;
    return FP_ERR_OK;
}

/* With the root key online (its CRL is then published too), OCSP also
 * answers for the root's certificates, signed by the root itself (RFC 6960
 * 4.2.2.2 allows the CA): "good" for the issuing CAs it signed, "unknown"
 * otherwise. */
static int serve_root_ocsp(rev_state *st, fp_error *err)
{
    const fp_caset *cas = st->app->cas;
    X509 *root = NULL;
    fp_signer *signer = NULL;
    bool online = false;
    int rc;

    for (int i = 0; i < st->n_crls; i++)
        online |= !strcmp(st->crls[i].ca_id, st->cfg->root_id) && !st->crls[i].uploaded;
    if (!online)
        return FP_ERR_OK; /* root key offline */
    if ((rc = fp_crl_load_ca(st->cfg, st->cfg->root_id, st->pass, st->passlen, &root, &signer,
                             err)) != FP_ERR_OK)
        return rc;
    rc = fp_ocsp_responder_add_ca(st->ocsp, st->cfg->root_id, root, signer, root, err);
    for (int i = 0; rc == FP_ERR_OK && i < fp_caset_count(cas); i++) {
        X509 *c = fp_ca_get0_cert(fp_caset_at(cas, i));
        if (X509_check_issued(root, c) == X509_V_OK)
            rc = fp_ocsp_responder_add_child(st->ocsp, st->cfg->root_id, c, err);
    }
    X509_free(root);
    return rc;
}

/* Every issuing CA of every project: its delegated OCSP signer (made or
 * renewed first: a CA created since the last start has none yet) and its
 * CRL; then the root's CRL when its key is here. */
static int serve_cas(rev_state *st, fp_error *err)
{
    const fp_caset *cas = st->app->cas;
    fp_ocsp_opts o = {st->cfg->ocsp_validity_seconds, st->cfg->ocsp_cache,
                      st->cfg->ocsp_cache_entries};
    int rc;

    if ((rc = fp_ocsp_responder_new(&o, &st->ocsp, err)) != FP_ERR_OK)
        return rc;
    for (int i = 0; i < fp_caset_count(cas); i++) {
        fp_ca *ca = fp_caset_at(cas, i);
        bool renewed = false;
        if ((rc = fp_ocsp_signer_check(st->cfg, ca, st->store, st->pass, st->passlen, fp_now(),
                                       NULL, &renewed, err)) != FP_ERR_OK ||
            (rc = fp_ocsp_add_ca(st->ocsp, ca, st->pass, st->passlen, err)) != FP_ERR_OK ||
            (rc = add_crl(st, fp_ca_id(ca), true, err)) != FP_ERR_OK)
            return rc;
        if (renewed)
            fp_log(FP_LOG_INFO, "OCSP signer certificate renewed (CA %s)", fp_ca_id(ca));
    }
    if ((rc = add_crl(st, st->cfg->root_id, false, err)) != FP_ERR_OK)
        return rc;
    return serve_root_ocsp(st, err);
}

static void rev_free(void *state);

static int rev_init(fp_http_server *srv, void *arg, void **out, fp_error *err)
{
    const fp_rev_args *args = arg;
    rev_state *st = calloc(1, sizeof(*st));
    const char *pass = args->pass;
    size_t passlen = args->passlen;
    char path[FP_PATH_MAX];
    int rc;

    (void)srv;
    *out = NULL;
    if (st == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->wake, NULL);
    st->cfg = args->cfg;
    st->app = args->app;
    if (pass != NULL && passlen > 0) {
        st->pass = OPENSSL_malloc(passlen + 1);
        if (st->pass == NULL) {
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
            goto fail;
        }
        memcpy(st->pass, pass, passlen);
        st->pass[passlen] = '\0';
        st->passlen = passlen;
    }
    if ((rc = fp_config_path(st->cfg, st->cfg->store_path, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_store_open(path, &st->store, err)) != FP_ERR_OK ||
        (rc = fp_store_open(path, &st->crl_store, err)) != FP_ERR_OK ||
        (rc = fp_store_status_seq(st->store, &st->seq, err)) != FP_ERR_OK)
        goto fail;
    /* a signer close to expiry (or broken by an interrupted renewal) is
     * replaced before the first response is signed */
    if ((rc = serve_cas(st, err)) != FP_ERR_OK)
        goto fail;
    /* the newest CRL another node published, when it is current: a node
     * starts without signing a CRL of every revoked certificate */
    st->dirty_seq = st->seq;
    for (int i = 0; i < st->n_crls; i++) {
        bool busy = false;
        if ((rc = rev_crl_sync(st, st->crl_store, i, st->seq, &busy, err)) != FP_ERR_OK ||
            (busy && (rc = rev_crl_refresh(st, st->crl_store, i, err)) != FP_ERR_OK))
            goto fail;
    }
    if ((rc = rev_publish_start(st, err)) != FP_ERR_OK)
        goto fail;
    fp_log(FP_LOG_INFO, "ocsp cache=%s entries=%d validity=%ds CAs=%d", st->cfg->ocsp_cache ? "on" : "off",
           st->cfg->ocsp_cache_entries, st->cfg->ocsp_validity_seconds, fp_caset_count(st->app->cas));
    *out = st;
    return FP_ERR_OK;
fail:
    rev_free(st);
    return rc;
}

/* Each worker's own store handle for OCSP (req->worker_state). */
static int rev_worker_init(void *state, fp_http_worker *w, void **out, fp_error *err)
{
    (void)w;
    return fp_config_worker_store_open(((rev_state *)state)->cfg, out, err);
}

static void rev_stop(void *state)
{
    rev_state *st = state;
    fp_ocsp_stats s;

    if (st == NULL)
        return;
    rev_publish_stop(st);
    fp_ocsp_get_stats(st->ocsp, &s);
    if (st->cfg->ocsp_cache)
        fp_log(FP_LOG_INFO,
               "ocsp cache hits=%" PRIu64 " misses=%" PRIu64 " inserts=%" PRIu64
               " invalidations=%" PRIu64 " entries=%ld",
               s.hits, s.misses, s.inserts, s.invalidations, s.entries);
}

static void rev_free(void *state)
{
    rev_state *st = state;
    if (st == NULL)
        return;
    rev_publish_stop(st);
    for (int i = 0; i < st->n_crls; i++) {
        X509_free(st->crls[i].cert);
        fp_signer_free(st->crls[i].signer);
        OPENSSL_free(st->crls[i].cert_der);
        rev_blob_put(st->crls[i].current);
    }
    fp_ocsp_responder_free(st->ocsp);
    fp_store_close(st->store);
    fp_store_close(st->crl_store);
    if (st->pass != NULL)
        OPENSSL_clear_free(st->pass, st->passlen + 1);
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

const fp_http_module fp_rev_module = {
    "rev", rev_routes, rev_init, rev_worker_init, fp_config_worker_store_close, rev_stop, rev_free,
};
