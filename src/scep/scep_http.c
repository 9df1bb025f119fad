/*
 * scep_http.c - SCEP over HTTP (RFC 8894 4): GET and POST /scep and
 * /scep/{label}, the operation named by the query (?operation=...&
 * message=...): GetCACaps, GetCACert, PKIOperation (POST body, or the
 * base64 message of a GET).  The PKIOperation messages are handled in
 * scep_ops.c; the module's lifecycle (labels, RA certificates) is here.
 */
#define _POSIX_C_SOURCE 200809L
#define FP_SCEP_SERVER
#include "scep.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "../ca/caset.h"
#include "../common/util.h"
#include "scep_module.h"

#define SCEP_CT_MESSAGE "application/x-pki-message"
#define SCEP_CT_CA_RA "application/x-x509-ca-ra-cert"
#define SCEP_MAX_QUERY_VALUE (64 * 1024)

/* RFC 8894 3.5.2.  SCEPStandard implies AES, POSTPKIOperation and
 * SHA-256; each is also listed for older clients.  Renewal: RenewalReq
 * signed with the current certificate.  No GetNextCACert, no Update. */
static const char scep_caps[] = "AES\nPOSTPKIOperation\nRenewal\nSCEPStandard\nSHA-256\nSHA-512\n";

/* The value of query parameter name (percent-decoded, RFC 3986 2.1; '+'
 * is kept: base64 uses it and RFC 8894 4.1 has clients percent-encode
 * it), malloc'd, or NULL when absent.  *bad on a malformed escape or an
 * oversized value. */
static char *query_value(const char *q, const char *name, bool *bad)
{
    size_t nl = strlen(name);

    *bad = false;
    while (q != NULL && *q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        if (len > nl && !strncmp(q, name, nl) && q[nl] == '=') {
            const char *v = q + nl + 1;
            size_t vl = len - nl - 1, o = 0;
            char *out;
            if (vl > SCEP_MAX_QUERY_VALUE || (out = malloc(vl + 1)) == NULL) {
                *bad = true;
                return NULL;
            }
            for (size_t i = 0; i < vl; i++) {
                if (v[i] == '%') {
                    char hex[3] = {0};
                    char *e = NULL;
                    long c;
                    if (i + 2 >= vl) {
                        free(out);
                        *bad = true;
                        return NULL;
                    }
                    hex[0] = v[i + 1];
                    hex[1] = v[i + 2];
                    c = strtol(hex, &e, 16);
                    if (e != hex + 2 || c == 0) {
                        free(out);
                        *bad = true;
                        return NULL;
                    }
                    out[o++] = (char)c;
                    i += 2;
                } else {
                    out[o++] = v[i];
                }
            }
            out[o] = '\0';
            return out;
        }
        q = end ? end + 1 : NULL;
    }
    return NULL;
}

static scep_state *state_of(fp_http_req *req)
{
    return req->mod_state;
}

/* The label a request names, or NULL (unknown). */
static const scep_label *label_of(scep_state *st, fp_http_req *req)
{
    const char *name = fp_http_param(req, "label");
    if (name == NULL)
        name = "";
    for (int i = 0; i < st->n_labels; i++)
        if (!strcmp(st->labels[i].cfg->name, name))
            return &st->labels[i];
    return NULL;
}

static int h_scep(fp_http_req *req)
{
    scep_state *st = state_of(req);
    const scep_label *lb = label_of(st, req);
    bool bad = false;
    char *op = query_value(req->query, "operation", &bad), esc[96];
    int ret = FP_HTTP_DONE;

    if (op == NULL) {
        fp_http_error(req, 400, "%s: missing ?operation= (RFC 8894 4.1)", fp_err_name(FP_ERR_ARG));
        goto out;
    }
    if (!strcmp(op, "PKIOperation")) {
        /* unknown labels are answered in SCEP's own form (scep_ops.c) */
        if (req->method == FP_HTTP_POST) {
            ret = scep_pkioperation(st, lb, req, req->body, req->body_len);
        } else {
            char *msg = query_value(req->query, "message", &bad);
            unsigned char *der = NULL;
            size_t dlen = 0;
            fp_error err = {0};
            if (msg == NULL ||
                fp_b64_decode_lenient(msg, strlen(msg), SCEP_MAX_QUERY_VALUE, &der, &dlen, &err) !=
                    FP_ERR_OK) {
                /* no message to answer in kind */
                fp_http_error(req, 400, "%s: PKIOperation GET needs a base64 message",
                              fp_err_name(FP_ERR_ARG));
            } else {
                ret = scep_pkioperation(st, lb, req, der, dlen);
            }
            free(msg);
            free(der);
        }
        goto out;
    }
    if (lb == NULL) {
        fp_http_error(req, 404, "unknown SCEP label '%s'",
                      fp_log_escape(esc, sizeof(esc), fp_http_param(req, "label") ? fp_http_param(req, "label") : ""));
        goto out;
    }
    if (!strcmp(op, "GetCACaps")) {
        fp_http_reply(req, 200, "text/plain", scep_caps, sizeof(scep_caps) - 1);
    } else if (!strcmp(op, "GetCACert")) {
        /* RFC 8894 4.2.1.2: RA and CA certificates, certs-only PKCS#7 */
        fp_http_reply(req, 200, SCEP_CT_CA_RA, lb->ra->cacert, lb->ra->cacert_len);
    } else {
        fp_http_error(req, 400, "%s: unknown SCEP operation '%s'", fp_err_name(FP_ERR_ARG),
                      fp_log_escape(esc, sizeof(esc), op));
    }
out:
    free(op);
    return ret;
}

static const fp_http_route scep_routes[] = {
    {FP_HTTP_GET | FP_HTTP_POST, "/scep", FP_HTTP_PLAIN | FP_HTTP_TLS, NULL, FP_HTTP_AUTH_NONE, 0,
     h_scep},
    {FP_HTTP_GET | FP_HTTP_POST, "/scep/{label}", FP_HTTP_PLAIN | FP_HTTP_TLS, NULL,
     FP_HTTP_AUTH_NONE, 0, h_scep},
    {0, NULL, 0, NULL, NULL, 0, NULL},
};

/* ---- lifecycle ---- */

static void scep_free(void *arg);

/* The RA of ca (created or renewed now if needed) and its GetCACert
 * answer: the RA and the CA certificate, nothing above (RFC 8894
 * 4.2.1.2).  With the root in it, a client has to guess which of two CA
 * certificates is "the CA" (the SET OF is in DER order, not ours), and
 * certmonger's scep-submit guessed the root; the root is the device's
 * trust anchor and comes from elsewhere (EST /cacerts, provisioning). */
static int ra_get(scep_state *st, fp_ca *ca, fp_store *store, const fp_scep_args *a, scep_ra **out,
                  fp_error *err)
{
    STACK_OF(X509) *certs = NULL;
    scep_ra *ra;
    int rc;

    for (int i = 0; i < st->n_ras; i++)
        if (st->ras[i].ca == ca) {
            *out = &st->ras[i];
            return FP_ERR_OK;
        }
    ra = &st->ras[st->n_ras++];
    ra->ca = ca;
    if ((rc = scep_ra_ensure(st->cfg, ca, store, a->pass, a->passlen, &ra->cert, &ra->key, err)) !=
        FP_ERR_OK)
        return rc;
    certs = sk_X509_new_null();
    if (certs == NULL || !sk_X509_push(certs, ra->cert) ||
        !sk_X509_push(certs, fp_ca_get0_cert(ca))) {
        sk_X509_free(certs);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    rc = scep_certs_only(certs, &ra->cacert, &ra->cacert_len, err);
    sk_X509_free(certs); /* borrowed certificates */
    *out = ra;
    return rc;
}

static int label_init(scep_state *st, scep_label *lb, const fp_est_label *cfg, fp_store *store,
                      const fp_scep_args *a, fp_error *err)
{
    const fp_caset *cas = st->app->cas;
    fp_ca *active = fp_caset_active(cas, cfg->project);

    lb->cfg = cfg;
    if (active == NULL)
        return fp_err_set(err, FP_ERR_CONFIG, "[est %s] project '%s' has no active issuing CA",
                          cfg->name, cfg->project);
    if ((lb->ours = X509_STORE_new()) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    /* a renewal's certificate chains to one of the project's CAs and
     * stops there: never through the shared root to another project */
    X509_STORE_set_flags(lb->ours, X509_V_FLAG_PARTIAL_CHAIN);
    for (int i = 0; i < fp_caset_count(cas); i++) {
        fp_ca *c = fp_caset_at(cas, i);
        if (strcmp(fp_ca_project(c), cfg->project) != 0)
            continue;
        if (lb->n_cas >= SCEP_LABEL_CAS)
            return fp_err_set(err, FP_ERR_CONFIG, "project '%s' has more than %d issuing CAs",
                              cfg->project, SCEP_LABEL_CAS);
        lb->cas[lb->n_cas++] = c;
        if (!X509_STORE_add_cert(lb->ours, fp_ca_get0_cert(c)))
            return fp_err_set(err, FP_ERR_CRYPTO, "trust store");
    }
    return ra_get(st, active, store, a, &lb->ra, err);
}

static int scep_init(fp_http_server *srv, void *arg, void **out, fp_error *err)
{
    const fp_scep_args *a = arg;
    scep_state *st = calloc(1, sizeof(*st));
    fp_store *store = NULL;
    int rc;

    (void)srv;
    *out = NULL;
    if (st == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    st->cfg = a->app->cfg;
    st->app = a->app;
    if ((rc = scep_oids_init(err)) != FP_ERR_OK ||
        (rc = fp_config_store_open(st->cfg, &store, err)) != FP_ERR_OK)
        goto fail;
    for (int i = 0; i < st->cfg->n_est_labels; i++) {
        if (st->cfg->est_labels[i].scep_legacy_crypto && st->legacy == NULL &&
            (st->legacy = scep_legacy_ctx_new(err)) == NULL) {
            rc = FP_ERR_CRYPTO;
            goto fail;
        }
        st->n_labels++;
        if ((rc = label_init(st, &st->labels[i], &st->cfg->est_labels[i], store, a, err)) !=
            FP_ERR_OK)
            goto fail;
    }
    fp_store_close(store);
    *out = st;
    return FP_ERR_OK;
fail:
    fp_store_close(store);
    scep_free(st);
    return rc;
}

/* Each worker's own store handle (a handle is one thread's). */
static int scep_worker_init(void *arg, fp_http_worker *w, void **out, fp_error *err)
{
    (void)w;
    return fp_config_worker_store_open(((scep_state *)arg)->cfg, out, err);
}

static void scep_free(void *arg)
{
    scep_state *st = arg;
    if (st == NULL)
        return;
    for (int i = 0; i < st->n_labels; i++)
        X509_STORE_free(st->labels[i].ours);
    for (int i = 0; i < st->n_ras; i++) {
        X509_free(st->ras[i].cert);
        EVP_PKEY_free(st->ras[i].key);
        OPENSSL_free(st->ras[i].cacert);
    }
    scep_legacy_ctx_free(st->legacy);
    free(st);
}

const fp_http_module fp_scep_module = {
    "scep", scep_routes, scep_init, scep_worker_init, fp_config_worker_store_close, NULL, scep_free,
};
