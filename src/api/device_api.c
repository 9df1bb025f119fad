/*
 * device_api.c - GET /api/v1/device: the calling device's registry record
 * as JSON (registry/device_json.h), over mutual TLS.
 *
 * Which project the caller belongs to is decided from its certificate
 * alone:
 *   - one issued by an issuing CA of project P (the issuer matches that
 *     CA's certificate) is P's, if it is byte for byte the one we stored
 *     for P, valid now and not revoked (the store is the record, as in
 *     EST's ours_check);
 *   - any other must chain (X509_verify_cert, TLS client purpose) to the
 *     trust roots or issuing CAs of exactly one project; a certificate
 *     that chains to the roots of two projects is refused as ambiguous
 *     (403): registering it in either would let one tenant's root claim
 *     a device of the other.
 * Then fp_registry_contact registers it (first contact) or refuses it
 * (suspended, decommissioned: 403).  Errors are RFC 9457 problem details
 * (application/problem+json: type https://fleetpki.dev/problems/<code
 * name>, title = the code's default message, status, detail), the shape
 * the admin API uses too.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/x509v3.h>

#include "../ca/caset.h"
#include "../common/util.h"
#include "../registry/device_json.h"
#include "../registry/registry.h"
#include "../x509/x509util.h"
#include "device_api.h"

#include "api_int.h"

#define MAX_PROJECTS 256

typedef struct {
    char name[FP_PROJECT_MAX];
    X509_STORE *anchors; /* the project's trust roots and issuing CAs */
    bool has_roots;      /* has bring-your-own roots at all */
} dev_project;

typedef struct {
    const fp_app *app;
    dev_project *projects;
    int n_projects;
} dev_state;

/* RFC 9457 problem details, the admin API's one shape (api_util.c). */
static void problem(fp_http_req *req, int status, int code, const char *detail)
{
    api_problem(req, status, fp_err_name(code), fp_err_default_msg(code), "%s", detail);
}

static int collect_project(void *arg, const fp_project_rec *p)
{
    dev_state *st = arg;
    if (st->n_projects >= MAX_PROJECTS)
        return 1;
    snprintf(st->projects[st->n_projects++].name, FP_PROJECT_MAX, "%s", p->name);
    return 0;
}

static void dev_free(void *state)
{
    dev_state *st = state;
    if (st == NULL)
        return;
    for (int i = 0; i < st->n_projects; i++)
        X509_STORE_free(st->projects[i].anchors);
    free(st->projects);
    free(st);
}

static int dev_init(fp_http_server *srv, void *arg, void **out, fp_error *err)
{
    const fp_device_api_args *a = arg;
    const fp_caset *cas = a->app->cas;
    dev_state *st = calloc(1, sizeof(*st));
    fp_store *s = NULL;
    int rc;

    (void)srv;
    *out = NULL;
    if (st == NULL || (st->projects = calloc(MAX_PROJECTS, sizeof(*st->projects))) == NULL) {
        dev_free(st);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    st->app = a->app;
    if ((rc = fp_config_store_open(a->app->cfg, &s, err)) != FP_ERR_OK ||
        (rc = fp_store_project_list(s, collect_project, st, err)) != FP_ERR_OK)
        goto out;
    for (int i = 0; i < st->n_projects; i++) {
        dev_project *p = &st->projects[i];
        STACK_OF(X509) *roots = fp_caset_trust_roots(cas, p->name);
        if ((p->anchors = X509_STORE_new()) == NULL) {
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
            goto out;
        }
        /* the project's own CAs are anchors by themselves (as in EST):
         * the shared root above them is trusted by no project alone */
        X509_STORE_set_flags(p->anchors, X509_V_FLAG_PARTIAL_CHAIN);
        for (int j = 0; j < fp_caset_count(cas); j++) {
            fp_ca *c = fp_caset_at(cas, j);
            if (!strcmp(fp_ca_project(c), p->name) &&
                !X509_STORE_add_cert(p->anchors, fp_ca_get0_cert(c))) {
                rc = fp_err_set(err, FP_ERR_CRYPTO, "trust store");
                goto out;
            }
        }
        p->has_roots = sk_X509_num(roots) > 0;
        for (int j = 0; j < sk_X509_num(roots); j++)
            if (!X509_STORE_add_cert(p->anchors, sk_X509_value(roots, j))) {
                rc = fp_err_set(err, FP_ERR_CRYPTO, "trust store");
                goto out;
            }
    }
out:
    fp_store_close(s);
    if (rc != FP_ERR_OK) {
        dev_free(st);
        return rc;
    }
    *out = st;
    return FP_ERR_OK;
}

static int dev_worker_init(void *state, fp_http_worker *w, void **out, fp_error *err)
{
    dev_state *st = state;
    fp_store *s = NULL;
    int rc;

    (void)w;
    rc = fp_config_store_open(st->app->cfg, &s, err);
    *out = s;
    return rc;
}

static void dev_worker_free(void *state, void *wstate)
{
    (void)state;
    fp_store_close(wstate);
}

/* A certificate one of our issuing CAs signed: its project, if it is the
 * very certificate stored, valid now and not revoked. */
static int ours_project(fp_store *s, const fp_ca *ca, X509 *cert, char *project,
                        fp_error *err)
{
    char serial[FP_SERIAL_HEX_MAX];
    unsigned char *der = NULL;
    int der_len, rc;
    int64_t now = fp_now();
    fp_cert_rec rec;

    memset(&rec, 0, sizeof(rec));
    if (fp_serial_hex(X509_get0_serialNumber(cert), serial) != 0)
        return fp_err_set(err, FP_ERR_STATE, "client certificate serial is malformed");
    if ((rc = fp_store_cert_get(s, serial, &rec, err)) != FP_ERR_OK)
        return rc == FP_ERR_NOT_FOUND
                   ? fp_err_set(err, FP_ERR_STATE, "client certificate was not issued here")
                   : rc;
    der_len = i2d_X509(cert, &der);
    if (der_len <= 0 || (size_t)der_len != rec.der_len ||
        CRYPTO_memcmp(der, rec.der, rec.der_len) != 0 || strcmp(rec.project, fp_ca_project(ca)))
        rc = fp_err_set(err, FP_ERR_STATE, "client certificate was not issued here");
    else if (rec.status != FP_CERT_VALID)
        rc = fp_err_set(err, FP_ERR_STATE, "client certificate is revoked");
    else if (now < rec.not_before || now > rec.not_after)
        rc = fp_err_set(err, FP_ERR_STATE, "client certificate is expired or not yet valid");
    else
        snprintf(project, FP_PROJECT_MAX, "%s", rec.project);
    OPENSSL_free(der);
    fp_cert_rec_clear(&rec);
    return rc;
}

static bool chains_to(X509_STORE *anchors, X509 *leaf, STACK_OF(X509) *untrusted)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = ctx != NULL && X509_STORE_CTX_init(ctx, anchors, leaf, untrusted) == 1 &&
              X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) == 1 &&
              X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    return ok;
}

/* The caller's project; FP_ERR_STATE (refused) with the reason in err. */
static int caller_project(dev_state *st, fp_http_req *req, char *project, fp_error *err)
{
    const fp_caset *cas = st->app->cas;
    fp_error kerr = {0};
    int found = 0;

    if (fp_x509_cert_key_check(req->peer_cert, &kerr) != FP_ERR_OK)
        return fp_err_set(err, FP_ERR_STATE, "client certificate key: %s", kerr.msg);
    for (int i = 0; i < fp_caset_count(cas); i++) {
        fp_ca *c = fp_caset_at(cas, i);
        if (X509_check_issued(fp_ca_get0_cert(c), req->peer_cert) == X509_V_OK)
            return ours_project(req->worker_state, c, req->peer_cert, project, err);
    }
    for (int i = 0; i < st->n_projects; i++) {
        dev_project *p = &st->projects[i];
        if (!p->has_roots || !chains_to(p->anchors, req->peer_cert, req->peer_chain))
            continue;
        if (found++ > 0)
            return fp_err_set(err, FP_ERR_STATE,
                              "client certificate chains to trust roots of more than one "
                              "project (%s, %s): ambiguous, refused",
                              project, p->name);
        snprintf(project, FP_PROJECT_MAX, "%s", p->name);
    }
    if (found == 0)
        return fp_err_set(err, FP_ERR_STATE,
                          "client certificate does not chain to a trust root of any project");
    return FP_ERR_OK;
}

static int get_device(fp_http_req *req)
{
    dev_state *st = req->mod_state;
    char project[FP_PROJECT_MAX] = "";
    fp_device_rec d = {0};
    fp_error err = {0};
    fp_jbuf text = {0};
    int rc;

    /* the route's auth is the handler's, so that a caller without a
     * certificate gets the documented problem+json 401, not text/plain */
    if (req->peer_cert == NULL) {
        api_problem(req, 401, "unauthorized", "unauthorized",
                    "a TLS client certificate is required");
        return FP_HTTP_DONE;
    }
    if ((rc = caller_project(st, req, project, &err)) != FP_ERR_OK)
        goto fail;
    rc = fp_registry_contact(st->app->registry, req->worker_state, project, req->peer_cert, &d,
                             &err);
    if (rc != FP_ERR_OK)
        goto fail;
    /* written as text, as the admin API's device pages (device_json.h) */
    fp_device_json_text(&text, &d);
    if (text.oom) {
        rc = fp_err_set(&err, FP_ERR_NOMEM, NULL);
        goto fail;
    }
    snprintf(req->identity, sizeof(req->identity), "device:%s", project);
    fp_http_reply(req, 200, "application/json", text.p, text.n);
    goto out;
fail:
    switch (fp_err_class(rc)) {
    case FP_ERRCLASS_INTERNAL:
        fp_log(FP_LOG_ERROR, "id=%s device API: %s", req->id, err.msg);
        snprintf(err.msg, sizeof(err.msg), "internal error (request %s)", req->id);
        problem(req, 500, FP_ERR_INTERNAL, err.msg);
        break;
    case FP_ERRCLASS_NOT_FOUND:
        problem(req, 403, rc, err.msg);
        break;
    case FP_ERRCLASS_UNAVAILABLE:
        /* the database is down: not the device's fault, it retries */
        fp_log(FP_LOG_WARN, "id=%s device API: %s", req->id, err.msg);
        fp_http_add_header(req, "Retry-After", "2");
        snprintf(err.msg, sizeof(err.msg), "store unavailable, retry later (request %s)", req->id);
        problem(req, 503, FP_ERR_UNAVAILABLE, err.msg);
        break;
    default:
        /* suspended, decommissioned, revoked, unnamed, ambiguous */
        problem(req, 403, rc, err.msg);
        break;
    }
out:
    free(text.p);
    fp_device_rec_clear(&d);
    return FP_HTTP_DONE;
}

static const fp_http_route dev_routes[] = {
    {FP_HTTP_GET, "/device", FP_HTTP_TLS, NULL, FP_HTTP_AUTH_HANDLER, 0, get_device},
    {0, NULL, 0, NULL, NULL, 0, NULL},
};

const fp_http_module fp_device_api_module = {
    "device-api", dev_routes, dev_init, dev_worker_init, dev_worker_free, NULL, dev_free,
};
