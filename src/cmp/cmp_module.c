/*
 * cmp_module.c - CMP routes (RFC 6712 3.3: POST, application/pkixcmp,
 * the answer a PKIMessage with 200 even when it is an error message),
 * labels and lifecycle.
 *
 * Labels: CMP serves the [est LABEL] sections (one place to say what a
 * label enrolls into): /.well-known/cmp is the default label,
 * /.well-known/cmp/p/LABEL the others (RFC 9483 6.1 path form).  auth =
 * token takes MAC protection only, cert signature only, either both.
 */
#define _POSIX_C_SOURCE 200809L
#include "cmp_module.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "../ca/caset.h"
#include "../common/util.h"
#include "../x509/x509util.h"
#include "cmp.h"

static const cmp_label *label_named(const cmp_state *st, const char *name)
{
    for (int i = 0; i < st->n_labels; i++)
        if (!strcmp(st->labels[i].cfg->name, name))
            return &st->labels[i];
    return NULL;
}

/* On the worker, once the certificate of j's answer is durable (or its
 * commit failed): send the held answer, or withdraw. */
static void job_finish(void *arg)
{
    cmp_job *j = arg;
    fp_http_req *req = j->req;
    cmp_state *st = req->mod_state;
    cmp_worker *wk = req->worker_state;
    fp_error err = {0};
    char serial[FP_SERIAL_HEX_MAX] = "";

    if (j->rc == FP_ERR_OK && !j->resigned && j->rsp != NULL) {
        /* step 6 of the issuance path (ca/issue.h): listed under its
         * device (with the vendor certificate that signed the request)
         * before the answer leaves */
        fp_issue_after(st->app->issuer, wk->store, &j->ir, j->cert);
        fp_http_add_header(req, "Cache-Control", "no-cache");
        fp_http_reply(req, 200, CMP_CT, j->rsp, j->rsp_len);
        cmp_job_free(j);
        return;
    }
    /* the answer cannot go out: its certificate is not the one stored
     * (not stored at all, or signed again after a serial collision) */
    if (j->rc == FP_ERR_OK && j->cert != NULL &&
        fp_serial_hex(X509_get0_serialNumber(j->cert), serial) == 0 &&
        fp_ca_revoke(wk->store, serial, FP_REASON_CESSATION, "server:cmp-commit", &err) != FP_ERR_OK)
        fp_log(FP_LOG_ERROR, "id=%s cmp: withdrawing %s: %s", req->id, serial, err.msg);
    {
        bool other = false;
        cmp_txn *tx = cmp_txn_take(st->txns, j->tid, j->tid_len, j->label, &other);
        if (tx != NULL) {
            X509_free(tx->cert); /* nothing to confirm or to revoke later */
            tx->cert = NULL;
            cmp_txn_put(st->txns, tx, CMP_TX_DONE, 0);
        }
    }
    if (j->rc == FP_ERR_STATE && j->token_id[0]) {
        fp_http_error(req, 403, "enrollment token: %s", j->err.msg);
    } else {
        fp_log(FP_LOG_ERROR, "id=%s cmp commit: %s", req->id,
               j->rc != FP_ERR_OK ? j->err.msg : j->resigned ? "certificate signed again" : "no answer");
        fp_http_error(req, 500, "internal error (request %s)", req->id);
    }
    cmp_job_free(j);
}

static int h_cmp(fp_http_req *req)
{
    cmp_state *st = req->mod_state;
    const char *name = fp_http_param(req, "label");
    const cmp_label *lb;
    unsigned char *out = NULL;
    size_t outlen = 0;
    cmp_job *job = NULL;
    fp_error err = {0};
    int rc;

    lb = label_named(st, name ? name : "");
    if (lb == NULL && st->n_labels == 0) {
        fp_http_error(req, 404, "no CMP label is configured");
        return FP_HTTP_DONE;
    }
    /* an unknown label is still answered in CMP form (RFC 9483 3.6.4),
     * signed for the default label */
    rc = cmp_handle(st, req->worker_state, lb ? lb : &st->labels[0], lb ? NULL : name, req->id,
                       req->body, req->body_len, &out, &outlen, req->identity,
                       sizeof(req->identity), &job, &err);
    if (job != NULL) {
        /* nothing of a certificate leaves before it is durable */
        job->rsp = rc == FP_ERR_OK ? out : NULL;
        job->rsp_len = outlen;
        if (rc != FP_ERR_OK)
            OPENSSL_free(out);
        job->req = req;
        job->post = (fp_http_post){job_finish, job, false, NULL};
        cmp_job_arm(job);
        return FP_HTTP_DEFERRED;
    }
    if (rc == FP_ERR_ARG) {
        fp_http_error(req, 400, "%s: %s", fp_err_name(rc), err.msg);
    } else if (rc != FP_ERR_OK) {
        fp_log(FP_LOG_ERROR, "id=%s cmp: %s", req->id, err.msg);
        fp_http_error(req, 500, "internal error (request %s)", req->id);
    } else {
        fp_http_add_header(req, "Cache-Control", "no-cache");
        fp_http_reply(req, 200, CMP_CT, out, outlen);
    }
    OPENSSL_free(out);
    return FP_HTTP_DONE;
}

static const fp_http_route cmp_routes[] = {
    {FP_HTTP_POST, "/.well-known/cmp", FP_HTTP_TLS | FP_HTTP_PLAIN, CMP_CT, FP_HTTP_AUTH_NONE, 0,
     h_cmp},
    {FP_HTTP_POST, "/.well-known/cmp/p/{label}", FP_HTTP_TLS | FP_HTTP_PLAIN, CMP_CT,
     FP_HTTP_AUTH_NONE, 0, h_cmp},
    {0, NULL, 0, NULL, FP_HTTP_AUTH_NONE, 0, NULL},
};

/* ---- labels ---- */

static int load_anchor_file(X509_STORE *store, const fp_est_label *l, const char *path,
                            fp_error *err)
{
    BIO *bio = BIO_new_file(path, "r");
    X509 *x;
    fp_error kerr = {0};
    int n = 0, rc = FP_ERR_OK;

    if (bio == NULL)
        return fp_err_set(err, FP_ERR_CONFIG, "[est %s] trust_anchors: cannot read %s", l->name, path);
    while (rc == FP_ERR_OK && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        n++;
        if (X509_check_ca(x) < 1 || fp_x509_cert_key_check(x, &kerr) != FP_ERR_OK)
            rc = fp_err_set(err, FP_ERR_CONFIG, "[est %s] trust_anchors: certificate %d of %s "
                                                "is not an acceptable CA certificate", l->name, n, path);
        else if (!X509_STORE_add_cert(store, x))
            rc = fp_err_set(err, FP_ERR_CRYPTO, "trust store");
        X509_free(x);
    }
    ERR_clear_error();
    BIO_free(bio);
    if (rc == FP_ERR_OK && n == 0)
        rc = fp_err_set(err, FP_ERR_CONFIG, "[est %s] trust_anchors: no certificate in %s", l->name,
                        path);
    return rc;
}

static int label_init(cmp_state *st, cmp_label *lb, const fp_est_label *l, fp_store *store,
                      fp_error *err)
{
    const fp_caset *cas = st->app->cas;
    STACK_OF(X509) *roots = fp_caset_trust_roots(cas, l->project), *chain;
    char path[FP_PATH_MAX];
    int rc;

    lb->cfg = l;
    if ((lb->ca = fp_caset_active(cas, l->project)) == NULL)
        return fp_err_set(err, FP_ERR_CONFIG, "[est %s] project '%s' has no active issuing CA",
                          l->name, l->project);
    if ((lb->anchors = X509_STORE_new()) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    /* the project's CAs are anchors by themselves: nothing above them
     * (the shared root) is trusted for another project's certificates */
    X509_STORE_set_flags(lb->anchors, X509_V_FLAG_PARTIAL_CHAIN);
    for (int i = 0; i < fp_caset_count(cas); i++) {
        fp_ca *c = fp_caset_at(cas, i);
        if (strcmp(fp_ca_project(c), l->project) != 0)
            continue;
        if (lb->n_cas >= (int)(sizeof(lb->cas) / sizeof(lb->cas[0])))
            return fp_err_set(err, FP_ERR_CONFIG, "project '%s' has too many issuing CAs", l->project);
        lb->cas[lb->n_cas++] = c;
        if (!X509_STORE_add_cert(lb->anchors, fp_ca_get0_cert(c)))
            return fp_err_set(err, FP_ERR_CRYPTO, "trust store");
    }
    for (int i = 0; i < sk_X509_num(roots); i++)
        if (!X509_STORE_add_cert(lb->anchors, sk_X509_value(roots, i)))
            return fp_err_set(err, FP_ERR_CRYPTO, "trust store");
    if (l->trust_anchors[0] &&
        ((rc = fp_config_path(st->cfg, l->trust_anchors, path, sizeof(path), err)) != FP_ERR_OK ||
         (rc = load_anchor_file(lb->anchors, l, path, err)) != FP_ERR_OK))
        return rc;
    if ((rc = cmp_responder_load(st->cfg, lb->ca, store, st->app->pass, st->app->passlen,
                                 &lb->resp_cert, &lb->resp_key, err)) != FP_ERR_OK) {
        fp_err_prefix(err, "CMP responder of CA %s: ", fp_ca_id(lb->ca));
        return rc;
    }
    /* issuing CA and what is above it; the root apart (caPubs) */
    chain = fp_ca_get0_chain(lb->ca);
    if ((lb->resp_chain = sk_X509_new_null()) == NULL || (lb->ca_certs = sk_X509_new_null()) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int i = -1; i < sk_X509_num(chain); i++) {
        X509 *x = i < 0 ? fp_ca_get0_cert(lb->ca) : sk_X509_value(chain, i);
        bool self = X509_check_issued(x, x) == X509_V_OK;
        if (!X509_add_cert(lb->ca_certs, x, X509_ADD_FLAG_UP_REF) ||
            (!self && !X509_add_cert(lb->resp_chain, x, X509_ADD_FLAG_UP_REF)))
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        if (self && lb->root == NULL) {
            lb->root = x;
            X509_up_ref(x);
        }
    }
    return FP_ERR_OK;
}

void cmp_state_free(cmp_state *st)
{
    if (st == NULL)
        return;
    cmp_txns_free(st->txns);
    for (int i = 0; i < st->n_labels; i++) {
        cmp_label *lb = &st->labels[i];
        X509_STORE_free(lb->anchors);
        X509_free(lb->resp_cert);
        EVP_PKEY_free(lb->resp_key);
        sk_X509_pop_free(lb->resp_chain, X509_free);
        sk_X509_pop_free(lb->ca_certs, X509_free);
        X509_free(lb->root);
    }
    OPENSSL_cleanse(st->mac_key, sizeof(st->mac_key));
    free(st);
}

int cmp_state_new(const fp_config *cfg, const fp_app *app, cmp_state **out, fp_error *err)
{
    cmp_state *st = calloc(1, sizeof(*st));
    fp_store *store = NULL;
    int rc;

    *out = NULL;
    if (st == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    st->cfg = cfg;
    st->app = app;
    st->grant_implicit = cfg->cmp_implicit_confirm;
    st->confirm_wait = cfg->cmp_confirm_wait_seconds;
    st->msgtime_skew = CMP_MSGTIME_SKEW;
    if ((rc = cmp_mac_key_load(cfg, st->mac_key, err)) != FP_ERR_OK ||
        (rc = fp_config_store_open(cfg, &store, err)) != FP_ERR_OK)
        goto fail;
    for (int i = 0; i < cfg->n_est_labels; i++) {
        st->labels[i].index = i;
        st->n_labels++;
        if ((rc = label_init(st, &st->labels[i], &cfg->est_labels[i], store, err)) != FP_ERR_OK)
            goto fail;
    }
    if ((rc = cmp_txns_new(st, &st->txns, err)) != FP_ERR_OK)
        goto fail;
    fp_store_close(store);
    *out = st;
    return FP_ERR_OK;
fail:
    fp_store_close(store);
    cmp_state_free(st);
    return rc;
}

int cmp_worker_new(cmp_state *st, cmp_worker **out, fp_error *err)
{
    cmp_worker *wk = calloc(1, sizeof(*wk));
    int rc;

    *out = NULL;
    if (wk == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if ((rc = fp_config_store_open(st->cfg, &wk->store, err)) != FP_ERR_OK) {
        free(wk);
        return rc;
    }
    if ((wk->srv = cmp_srv_new()) == NULL) {
        cmp_worker_free(wk);
        return fp_err_set(err, FP_ERR_CRYPTO, "CMP server context");
    }
    *out = wk;
    return FP_ERR_OK;
}

void cmp_worker_free(cmp_worker *wk)
{
    if (wk == NULL)
        return;
    OSSL_CMP_SRV_CTX_free(wk->srv);
    fp_store_close(wk->store);
    free(wk);
}

/* ---- module hooks ---- */

static int m_init(fp_http_server *srv, void *arg, void **out, fp_error *err)
{
    const fp_cmp_args *a = arg;
    cmp_state *st = NULL;
    int rc;

    (void)srv;
    rc = cmp_state_new(a->cfg, a->app, &st, err);
    *out = st;
    return rc;
}

static int m_worker_init(void *state, fp_http_worker *w, void **out, fp_error *err)
{
    cmp_worker *wk = NULL;
    int rc;

    (void)w;
    rc = cmp_worker_new(state, &wk, err);
    *out = wk;
    return rc;
}

static void m_worker_free(void *state, void *wstate)
{
    (void)state;
    cmp_worker_free(wstate);
}

static void m_free(void *state)
{
    cmp_state_free(state);
}

const fp_http_module fp_cmp_module = {
    "cmp", cmp_routes, m_init, m_worker_init, m_worker_free, NULL, m_free,
};
