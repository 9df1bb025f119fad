/*
 * est.c - EST routes (RFC 7030 3.2.2) and the simple operations: cacerts,
 * csrattrs, fullcmc.  Enrollment lives in est_enroll.c.
 *
 * Every operation exists as /.well-known/est/OP (the default label) and
 * /.well-known/est/LABEL/OP; a label names a config section [est LABEL]
 * (profile, auth mode, trust anchors, approval, PoP linking, csrattrs).
 */
#define _POSIX_C_SOURCE 200809L
#include "est.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../ca/rollover.h"
#include "../x509/x509util.h"
#include "est_module.h"
#include "token.h"

static est_state *state_of(fp_http_req *req)
{
    return req->mod_state;
}

/* The label a request names ({label}) or the default; answers 404. */
static const est_label *label_of(fp_http_req *req)
{
    est_state *st = state_of(req);
    const char *name = fp_http_param(req, "label");
    if (name == NULL)
        name = "";
    for (int i = 0; i < st->n_labels; i++)
        if (!strcmp(st->labels[i].cfg->name, name))
            return &st->labels[i];
    fp_http_error(req, 404, "unknown EST label '%s'", name);
    return NULL;
}

/* RFC 7030 4.1: cacerts needs no authentication. */
static int h_cacerts(fp_http_req *req)
{
    const est_label *lb = label_of(req);
    if (lb == NULL)
        return FP_HTTP_DONE;
    /* the label's project's CA chain: a device learns only its own CAs */
    fp_http_add_header(req, "Content-Transfer-Encoding", "base64");
    fp_http_reply(req, 200, EST_CT_PKCS7, lb->cacerts, lb->cacerts_len);
    return FP_HTTP_DONE;
}

/* RFC 7030 4.5.2: 204 when there are no attributes to ask for. */
static int h_csrattrs(fp_http_req *req)
{
    const est_label *lb = label_of(req);
    if (lb == NULL)
        return FP_HTTP_DONE;
    if (lb->csrattrs == NULL) {
        fp_http_reply(req, 204, NULL, NULL, 0);
        return FP_HTTP_DONE;
    }
    fp_http_add_header(req, "Content-Transfer-Encoding", "base64");
    fp_http_reply(req, 200, EST_CT_CSRATTRS, lb->csrattrs, lb->csrattrs_len);
    return FP_HTTP_DONE;
}

/* RFC 7030 4.3 Full CMC is optional; we do not offer it. */
static int h_fullcmc(fp_http_req *req)
{
    if (label_of(req) == NULL)
        return FP_HTTP_DONE;
    fp_http_error(req, 501, "fullcmc is not implemented; use simpleenroll");
    return FP_HTTP_DONE;
}

static int enroll_op(fp_http_req *req, est_op op)
{
    const est_label *lb = label_of(req);
    if (lb == NULL)
        return FP_HTTP_DONE;
    return est_enroll(state_of(req), lb, req, op);
}

static int h_simpleenroll(fp_http_req *req) { return enroll_op(req, EST_ENROLL); }
static int h_simplereenroll(fp_http_req *req) { return enroll_op(req, EST_REENROLL); }
static int h_serverkeygen(fp_http_req *req) { return enroll_op(req, EST_KEYGEN); }

#define EST_ROUTE(m, op, ct, fn)                                                          \
    {m, "/.well-known/est/" op, FP_HTTP_TLS, ct, FP_HTTP_AUTH_HANDLER, 0, fn},            \
    {m, "/.well-known/est/{label}/" op, FP_HTTP_TLS, ct, FP_HTTP_AUTH_HANDLER, 0, fn}

static const fp_http_route est_routes[] = {
    EST_ROUTE(FP_HTTP_GET, "cacerts", NULL, h_cacerts),
    EST_ROUTE(FP_HTTP_GET, "csrattrs", NULL, h_csrattrs),
    EST_ROUTE(FP_HTTP_POST, "simpleenroll", "application/pkcs10", h_simpleenroll),
    EST_ROUTE(FP_HTTP_POST, "simplereenroll", "application/pkcs10", h_simplereenroll),
    EST_ROUTE(FP_HTTP_POST, "serverkeygen", "application/pkcs10", h_serverkeygen),
    EST_ROUTE(FP_HTTP_POST, "fullcmc", NULL, h_fullcmc),
    {0, NULL, 0, NULL, FP_HTTP_AUTH_NONE, 0, NULL},
};

/* ---- lifecycle ---- */

/* trust_anchors: every certificate of the PEM bundle is a CA certificate
 * whose key meets the key rules (x509util.h), checked once here: a trust
 * anchor with an RSA exponent of 1 or an off-curve point would let its
 * "signatures" be forged (issue 8, defect 1). */
static int load_anchors(X509_STORE *store, const char *label, const char *path, fp_error *err)
{
    BIO *bio = BIO_new_file(path, "r");
    X509 *x = NULL;
    fp_error kerr = {0};
    int n = 0, rc = FP_ERR_OK;

    if (bio == NULL)
        return fp_err_set(err, FP_ERR_CONFIG, "[est %s] trust_anchors: cannot read %s", label, path);
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        n++;
        if (X509_check_ca(x) < 1) {
            rc = fp_err_set(err, FP_ERR_CONFIG,
                            "[est %s] trust_anchors: certificate %d of %s is not a CA certificate",
                            label, n, path);
        } else if (fp_x509_cert_key_check(x, &kerr) != FP_ERR_OK) {
            rc = fp_err_set(err, FP_ERR_CONFIG, "[est %s] trust_anchors: certificate %d of %s: %s",
                            label, n, path, kerr.msg);
        } else if (!X509_STORE_add_cert(store, x)) {
            rc = fp_err_set(err, FP_ERR_CRYPTO, "[est %s] trust_anchors: certificate %d of %s",
                            label, n, path);
        }
        X509_free(x);
        if (rc != FP_ERR_OK)
            break;
    }
    /* the loop ends at the end of the file (no further PEM block) or at a
     * block it cannot read, which must not drop the anchors after it
     * silently */
    if (rc == FP_ERR_OK && ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)
        rc = fp_err_set(err, FP_ERR_CONFIG,
                        "[est %s] trust_anchors: %s: certificate %d cannot be read", label, path,
                        n + 1);
    if (rc == FP_ERR_OK && n == 0)
        rc = fp_err_set(err, FP_ERR_CONFIG, "[est %s] trust_anchors: no certificate in %s", label,
                        path);
    ERR_clear_error();
    BIO_free(bio);
    return rc;
}

/* cert_identity_pattern is the token CN pattern language (token.h) with
 * {cn} and {serialnumber} placeholders: refuse anything else at start. */
static int identity_pattern_check(const fp_est_label *cfg, fp_error *err)
{
    char rest[sizeof(cfg->cert_identity_pattern)];
    size_t o = 0;
    fp_error perr = {0};

    for (const char *p = cfg->cert_identity_pattern; *p;) {
        if (!strncasecmp(p, "{cn}", 4)) {
            p += 4;
            rest[o++] = 'x';
        } else if (!strncasecmp(p, "{serialnumber}", 14)) {
            p += 14;
            rest[o++] = 'x';
        } else {
            rest[o++] = *p++;
        }
    }
    rest[o] = '\0';
    if (fp_token_pattern_check(rest, &perr) != FP_ERR_OK)
        return fp_err_set(err, FP_ERR_CONFIG, "[est %s] cert_identity_pattern: %s", cfg->name,
                          perr.msg);
    return FP_ERR_OK;
}

/* The label's project: its active CA, every CA of it, its chain for
 * cacerts, and the anchors client chains are verified against. */
static int label_project(est_state *st, est_label *lb, const fp_est_label *cfg, fp_error *err)
{
    const fp_caset *cas = st->app->cas;
    STACK_OF(X509) *chain = NULL, *rollover = NULL, *roots = fp_caset_trust_roots(cas, cfg->project);
    int rc;

    lb->ca = fp_caset_active(cas, cfg->project);
    if (lb->ca == NULL)
        return fp_err_set(err, FP_ERR_CONFIG, "[est %s] project '%s' has no active issuing CA "
                                              "(fleetpki project create %s)",
                          cfg->name, cfg->project, cfg->project);
    lb->anchors = X509_STORE_new();
    if (lb->anchors == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    /* the project's own CAs are anchors by themselves: the chain stops
     * there, so nothing above them (the shared root) is trusted */
    X509_STORE_set_flags(lb->anchors, X509_V_FLAG_PARTIAL_CHAIN);
    for (int i = 0; i < fp_caset_count(cas); i++) {
        fp_ca *c = fp_caset_at(cas, i);
        if (strcmp(fp_ca_project(c), cfg->project) != 0)
            continue;
        if (lb->n_cas >= (int)(sizeof(lb->cas) / sizeof(lb->cas[0])))
            return fp_err_set(err, FP_ERR_CONFIG, "project '%s' has more than %zu issuing CAs",
                              cfg->project, sizeof(lb->cas) / sizeof(lb->cas[0]));
        lb->cas[lb->n_cas++] = c;
        if (!X509_STORE_add_cert(lb->anchors, fp_ca_get0_cert(c)))
            return fp_err_set(err, FP_ERR_CRYPTO, "trust store");
    }
    for (int i = 0; i < sk_X509_num(roots); i++)
        if (!X509_STORE_add_cert(lb->anchors, sk_X509_value(roots, i)))
            return fp_err_set(err, FP_ERR_CRYPTO, "trust store");
    chain = sk_X509_dup(fp_ca_get0_chain(lb->ca));
    if (chain == NULL || !sk_X509_unshift(chain, fp_ca_get0_cert(lb->ca)) ||
        (rollover = sk_X509_new_null()) == NULL) {
        sk_X509_free(chain);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    /* RFC 7030 4.1.3: during a root key rollover, the Root CA Key Update
     * certificates (NewWithOld, OldWithNew) and the new root too */
    rc = fp_rollover_certs(st->cfg, rollover, err);
    for (int i = 0; rc == FP_ERR_OK && i < sk_X509_num(rollover); i++)
        if (!sk_X509_push(chain, sk_X509_value(rollover, i)))
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (rc == FP_ERR_OK)
        rc = est_certs_only_b64(chain, &lb->cacerts, &lb->cacerts_len, err);
    sk_X509_free(chain); /* borrowed certificates */
    sk_X509_pop_free(rollover, X509_free);
    return rc;
}

static int label_init(est_state *st, est_label *lb, const fp_est_label *cfg, fp_error *err)
{
    const fp_profile *p = fp_config_profile(st->cfg, cfg->profile);
    char path[FP_PATH_MAX];
    int rc;

    lb->cfg = cfg;
    if (p == NULL)
        return fp_err_set(err, FP_ERR_CONFIG, "[est %s]: no profile '%s'", cfg->name, cfg->profile);
    if ((rc = label_project(st, lb, cfg, err)) != FP_ERR_OK)
        return rc;
    if (cfg->trust_anchors[0]) {
        if ((rc = fp_config_path(st->cfg, cfg->trust_anchors, path, sizeof(path), err)) != FP_ERR_OK)
            return rc;
        if ((rc = load_anchors(lb->anchors, cfg->name, path, err)) != FP_ERR_OK)
            return rc;
    }
    if (!strcasecmp(cfg->cert_identity, "pattern") &&
        (rc = identity_pattern_check(cfg, err)) != FP_ERR_OK)
        return rc;
    return est_csrattrs_build(cfg, p, &lb->csrattrs, &lb->csrattrs_len, err);
}

static void est_free(void *arg);

static int est_init(fp_http_server *srv, void *arg, void **out, fp_error *err)
{
    const fp_est_args *args = arg;
    est_state *st = calloc(1, sizeof(*st));
    char path[FP_PATH_MAX];
    int rc;

    (void)srv;
    *out = NULL;
    if (st == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    st->cfg = args->cfg;
    st->app = args->app;
    for (int i = 0; i < st->cfg->n_est_labels; i++) {
        st->n_labels++;
        if ((rc = label_init(st, &st->labels[i], &st->cfg->est_labels[i], err)) != FP_ERR_OK)
            goto fail;
    }
    st->ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, est_peer_cache_free);
    if ((rc = fp_config_path(st->cfg, st->cfg->store_path, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_committer_start(path, &st->committer, err)) != FP_ERR_OK)
        goto fail;
    fp_issuer_set_committer(st->app->issuer, st->committer);
    *out = st;
    return FP_ERR_OK;
fail:
    est_free(st);
    return rc;
}

/* Each worker's own store handle (req->worker_state), used by that
 * worker's thread only. */
static int est_worker_init(void *arg, fp_http_worker *w, void **out, fp_error *err)
{
    (void)w;
    return fp_config_worker_store_open(((est_state *)arg)->cfg, out, err);
}

static void est_stop(void *arg)
{
    est_state *st = arg;
    if (st != NULL) {
        fp_issuer_set_committer(st->app->issuer, NULL);
        fp_committer_stop(st->committer);
        st->committer = NULL;
    }
}

static void est_free(void *arg)
{
    est_state *st = arg;
    if (st == NULL)
        return;
    if (st->committer != NULL) {
        fp_issuer_set_committer(st->app->issuer, NULL);
        fp_committer_stop(st->committer);
    }
    for (int i = 0; i < st->n_labels; i++) {
        X509_STORE_free(st->labels[i].anchors);
        free(st->labels[i].csrattrs);
        free(st->labels[i].cacerts);
    }
    free(st);
}

const fp_http_module fp_est_module = {
    "est", est_routes, est_init, est_worker_init, fp_config_worker_store_close, est_stop, est_free,
};
