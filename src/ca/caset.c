/* caset.c - every CA of the data directory, by project; see caset.h. */
#define _POSIX_C_SOURCE 200809L
#include "caset.h"

#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../x509/x509util.h"

#define MAX_ROWS 4096 /* CA rows of one store: far above any real hierarchy */
#define MAX_DEPTH 8   /* issuers above an issuing CA */

typedef struct row {
    fp_ca_rec rec;
    X509 *cert;
} row;

typedef struct trust_set {
    char project[FP_PROJECT_MAX];
    STACK_OF(X509) *roots;
} trust_set;

struct fp_caset {
    const fp_config *cfg;
    fp_ca **cas; /* issuing CAs */
    bool *active;
    int n_cas;
    trust_set *trust;
    int n_trust;
    STACK_OF(X509) *empty;
};

typedef struct loader {
    row *rows;
    int n, cap;
    int rc;
    fp_error *err;
} loader;

static int collect(void *arg, const fp_ca_rec *r)
{
    loader *l = arg;
    row *x;

    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        void *nr = cap <= MAX_ROWS ? realloc(l->rows, (size_t)cap * sizeof(*l->rows)) : NULL;
        if (nr == NULL)
            return fp_err_set(l->err, FP_ERR_TOO_LARGE, "more than %d CA rows", MAX_ROWS);
        l->rows = nr;
        l->cap = cap;
    }
    x = &l->rows[l->n];
    memset(x, 0, sizeof(*x));
    x->cert = fp_cert_from_der(r->der, r->der_len);
    if (x->cert == NULL)
        return fp_err_set(l->err, FP_ERR_STORE, "CA '%s': stored certificate does not decode", r->id);
    x->rec = *r;
    /* keep only the fixed-size fields: the heap ones belong to the store */
    x->rec.subject = NULL;
    x->rec.der = NULL;
    x->rec.der_len = 0;
    l->n++;
    return FP_ERR_OK;
}

static row *find_row(loader *l, const char *id)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->rows[i].rec.id, id))
            return &l->rows[i];
    return NULL;
}

int fp_caset_file(const fp_config *cfg, const char *ca_id, const char *file, char *buf,
                  size_t size, fp_error *err)
{
    char rel[FP_PATH_MAX];
    int n = snprintf(rel, sizeof(rel), "ca/%s/%s", ca_id, file);
    if (n < 0 || (size_t)n >= sizeof(rel))
        return fp_err_set(err, FP_ERR_TOO_LARGE, "CA id too long");
    return fp_config_path(cfg, rel, buf, size, err);
}

/* Issuers of r up to a root (ROOT or TRUST_ROOT row), nearest first. */
static int chain_of(loader *l, const row *r, STACK_OF(X509) **out, fp_error *err)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    const row *cur = r;

    *out = NULL;
    if (chain == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int depth = 0; depth < MAX_DEPTH; depth++) {
        row *parent = cur->rec.parent_id[0] ? find_row(l, cur->rec.parent_id) : NULL;
        if (parent == NULL) {
            sk_X509_pop_free(chain, X509_free);
            return fp_err_set(err, FP_ERR_STORE, "CA '%s': issuer '%s' is not in the store",
                              r->rec.id, cur->rec.parent_id);
        }
        if (!X509_up_ref(parent->cert) || !sk_X509_push(chain, parent->cert)) {
            sk_X509_pop_free(chain, X509_free);
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        }
        if (parent->rec.kind == FP_CA_ROOT || parent->rec.kind == FP_CA_TRUST_ROOT) {
            *out = chain;
            return FP_ERR_OK;
        }
        cur = parent;
    }
    sk_X509_pop_free(chain, X509_free);
    return fp_err_set(err, FP_ERR_STORE, "CA '%s': more than %d issuers above it", r->rec.id,
                      MAX_DEPTH);
}

static int open_issuing(fp_caset *cs, loader *l, const row *r, const char *pass, size_t passlen,
                        fp_ca **out, fp_error *err)
{
    const fp_config *cfg = cs->cfg;
    char key[FP_PATH_MAX], ocert[FP_PATH_MAX], okey[FP_PATH_MAX];
    STACK_OF(X509) *chain = NULL;
    int rc;

    /* the CA made by init (or migrated from before projects) keeps the
     * paths of fleetpki.conf */
    if (!r->rec.key_ref[0]) {
        if (strcmp(r->rec.id, cfg->issuing_id) != 0)
            return fp_err_set(err, FP_ERR_CONFIG,
                              "CA '%s' has no key reference and is not [ca] issuing_id '%s'",
                              r->rec.id, cfg->issuing_id);
        return fp_ca_open(cfg, pass, passlen, out, err);
    }
    if ((rc = fp_config_path(cfg, r->rec.key_ref, key, sizeof(key), err)) != FP_ERR_OK ||
        (rc = fp_caset_file(cfg, r->rec.id, "ocsp.crt", ocert, sizeof(ocert), err)) != FP_ERR_OK ||
        (rc = fp_caset_file(cfg, r->rec.id, "ocsp.key", okey, sizeof(okey), err)) != FP_ERR_OK ||
        (rc = chain_of(l, r, &chain, err)) != FP_ERR_OK)
        return rc;
    rc = fp_ca_open_spec(cfg,
                         &(fp_ca_spec){r->rec.id, r->rec.project, r->cert, chain, key, ocert, okey},
                         pass, passlen, out, err);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

static trust_set *trust_for(fp_caset *cs, const char *project, bool create)
{
    for (int i = 0; i < cs->n_trust; i++)
        if (!strcmp(cs->trust[i].project, project))
            return &cs->trust[i];
    if (!create)
        return NULL;
    {
        trust_set *nt = realloc(cs->trust, (size_t)(cs->n_trust + 1) * sizeof(*nt));
        if (nt == NULL)
            return NULL;
        cs->trust = nt;
        nt = &cs->trust[cs->n_trust];
        memset(nt, 0, sizeof(*nt));
        snprintf(nt->project, sizeof(nt->project), "%s", project);
        if ((nt->roots = sk_X509_new_null()) == NULL)
            return NULL;
        cs->n_trust++;
        return nt;
    }
}

int fp_caset_load(const fp_config *cfg, fp_store *store, const char *pass, size_t passlen,
                  fp_caset **out, fp_error *err)
{
    fp_caset *cs = calloc(1, sizeof(*cs));
    loader l = {0};
    int rc = FP_ERR_OK;

    *out = NULL;
    if (cs == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    cs->cfg = cfg;
    l.err = err;
    if ((cs->empty = sk_X509_new_null()) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = fp_store_ca_list(store, NULL, -1, collect, &l, err)) != FP_ERR_OK)
        goto out;
    cs->cas = calloc((size_t)l.n + 1, sizeof(*cs->cas));
    cs->active = calloc((size_t)l.n + 1, sizeof(*cs->active));
    if (cs->cas == NULL || cs->active == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    for (int i = 0; i < l.n; i++) {
        row *r = &l.rows[i];
        if (r->rec.kind == FP_CA_TRUST_ROOT) {
            trust_set *t = trust_for(cs, r->rec.project, true);
            if (t == NULL || !X509_up_ref(r->cert) || !sk_X509_push(t->roots, r->cert)) {
                rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
                goto out;
            }
        } else if (r->rec.kind == FP_CA_ISSUING) {
            if ((rc = open_issuing(cs, &l, r, pass, passlen, &cs->cas[cs->n_cas], err)) != FP_ERR_OK)
                goto out;
            cs->active[cs->n_cas] = r->rec.active;
            cs->n_cas++;
        }
    }
    if (cs->n_cas == 0) {
        /* a store from before CA rows had kinds would have been migrated;
         * an empty one means the data directory is incomplete */
        rc = fp_err_set(err, FP_ERR_CONFIG, "the store lists no issuing CA (run fleetpki init)");
        goto out;
    }
    *out = cs;
    cs = NULL;
out:
    for (int i = 0; i < l.n; i++)
        X509_free(l.rows[i].cert);
    free(l.rows);
    fp_caset_free(cs);
    return rc;
}

void fp_caset_free(fp_caset *cs)
{
    if (cs == NULL)
        return;
    for (int i = 0; i < cs->n_cas; i++)
        fp_ca_free(cs->cas[i]);
    free(cs->cas);
    free(cs->active);
    for (int i = 0; i < cs->n_trust; i++)
        sk_X509_pop_free(cs->trust[i].roots, X509_free);
    free(cs->trust);
    sk_X509_free(cs->empty);
    free(cs);
}

fp_ca *fp_caset_active(const fp_caset *cs, const char *project)
{
    for (int i = 0; i < cs->n_cas; i++)
        if (cs->active[i] && !strcmp(fp_ca_project(cs->cas[i]), project))
            return cs->cas[i];
    return NULL;
}

fp_ca *fp_caset_find(const fp_caset *cs, const char *ca_id)
{
    for (int i = 0; i < cs->n_cas; i++)
        if (!strcmp(fp_ca_id(cs->cas[i]), ca_id))
            return cs->cas[i];
    return NULL;
}

int fp_caset_count(const fp_caset *cs) { return cs->n_cas; }
fp_ca *fp_caset_at(const fp_caset *cs, int i) { return i >= 0 && i < cs->n_cas ? cs->cas[i] : NULL; }

STACK_OF(X509) *fp_caset_trust_roots(const fp_caset *cs, const char *project)
{
    for (int i = 0; i < cs->n_trust; i++)
        if (!strcmp(cs->trust[i].project, project))
            return cs->trust[i].roots;
    return cs->empty;
}
