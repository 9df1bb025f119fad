/*
 * registry.c - the registry's store-level calls: reads, lifecycle
 * transitions (audited with the caller's actor) and tags.  The CLI, the
 * admin API and the device API all come through here.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ca/ca.h"
#include "../common/util.h"
#include "../x509/x509util.h"
#include "registry.h"

static const char *const state_names[] = {"active", "suspended", "decommissioned"};

const char *fp_dev_state_name(int state)
{
    return state >= 0 && state <= FP_DEV_DECOMMISSIONED ? state_names[state] : NULL;
}

int fp_dev_state_from_name(const char *name)
{
    for (int i = 0; name != NULL && i <= FP_DEV_DECOMMISSIONED; i++)
        if (!strcmp(name, state_names[i]))
            return i;
    return -1;
}

int fp_registry_device_get(fp_store *s, const char *project, const char *name,
                           fp_device_rec *out, fp_error *err)
{
    return fp_store_device_get(s, project, name, NULL, NULL, out, err);
}

int fp_registry_device_list(fp_store *s, const fp_device_filter *f, fp_device_cb cb, void *arg,
                            fp_error *err)
{
    return fp_store_device_list(s, f, cb, arg, err);
}

static int transition(fp_store *s, const char *project, const char *name, unsigned from,
                      int to, const char *action, const char *actor, fp_error *err)
{
    fp_audit_event ev = {actor ? actor : "unknown", action, name, fp_dev_state_name(to),
                         project};
    return fp_store_device_set_state(s, project, name, from, to, &ev, err);
}

int fp_registry_suspend(fp_store *s, const char *project, const char *name, const char *actor,
                        fp_error *err)
{
    return transition(s, project, name, 1u << FP_DEV_ACTIVE, FP_DEV_SUSPENDED,
                      "device.suspend", actor, err);
}

int fp_registry_resume(fp_store *s, const char *project, const char *name, const char *actor,
                       fp_error *err)
{
    return transition(s, project, name, 1u << FP_DEV_SUSPENDED, FP_DEV_ACTIVE, "device.resume",
                      actor, err);
}

typedef struct {
    char (*serials)[FP_SERIAL_HEX_MAX];
    size_t n, cap;
    int rc;
} serial_list;

static int collect_ours(void *arg, const fp_device_cert *c)
{
    serial_list *l = arg;

    if (!c->ours)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        void *p = realloc(l->serials, cap * sizeof(*l->serials));
        if (p == NULL) {
            l->rc = FP_ERR_NOMEM;
            return 1;
        }
        l->serials = p;
        l->cap = cap;
    }
    snprintf(l->serials[l->n++], FP_SERIAL_HEX_MAX, "%s", c->serial);
    return 0;
}

/* Add the serial unless listed already. */
static int add_serial(serial_list *l, const char *serial)
{
    fp_device_cert c;

    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->serials[i], serial))
            return 0;
    memset(&c, 0, sizeof(c));
    c.ours = true;
    c.serial = serial;
    return collect_ours(l, &c);
}

typedef struct {
    serial_list *l;
    const char *name;
    int rule;
} sweep_ctx;

/* A certificate of the project we issued that names this device by the
 * project's rule, though the device never presented it (an operational
 * certificate enrolled but not used yet). */
static int sweep_cb(void *arg, const fp_cert_rec *r)
{
    sweep_ctx *c = arg;
    const unsigned char *p = r->der;
    X509 *x = d2i_X509(NULL, &p, (long)r->der_len);
    char name[FP_DEVICE_NAME_MAX];
    int stop = 0;

    if (x != NULL && fp_registry_name_of(x, c->rule, name, NULL) == FP_ERR_OK &&
        !strcmp(name, c->name))
        stop = add_serial(c->l, r->serial);
    X509_free(x);
    return stop;
}

int fp_registry_decommission(fp_store *s, const char *project, const char *name,
                             const char *actor, fp_error *err)
{
    fp_device_rec d = {0};
    serial_list l = {0};
    int rc;

    if ((rc = fp_store_device_get(s, project, name, NULL, NULL, &d, err)) != FP_ERR_OK)
        goto out;
    if (d.state == FP_DEV_DECOMMISSIONED) {
        rc = fp_err_set(err, FP_ERR_STATE, "device '%s' is decommissioned already", name);
        goto out;
    }
    /* collected first: revoking writes, and the listing's read must be
     * over before a write on the same handle */
    if ((rc = fp_store_device_certs(s, project, name, collect_ours, &l, err)) != FP_ERR_OK)
        goto out;
    if (l.rc != FP_ERR_OK) {
        rc = fp_err_set(err, l.rc, NULL);
        goto out;
    }
    /* and every unrevoked certificate of the project naming the device
     * that it has not presented yet: "all the device's certificates" */
    {
        fp_cert_filter cf;
        sweep_ctx sc = {&l, name, FP_DEVNAME_CN};
        memset(&cf, 0, sizeof(cf));
        cf.status = FP_CERT_VALID;
        cf.project = project;
        cf.name_contains = name;
        cf.now = fp_now();
        if ((rc = fp_store_device_naming_get(s, project, &sc.rule, err)) != FP_ERR_OK ||
            (rc = fp_store_cert_list(s, &cf, sweep_cb, &sc, err)) != FP_ERR_OK)
            goto out;
        if (l.rc != FP_ERR_OK) {
            rc = fp_err_set(err, l.rc, NULL);
            goto out;
        }
    }
    /* RFC 5280 5.3.1: cessationOfOperation, the certificate is no longer
     * needed; not keyCompromise, nothing says the key leaked */
    for (size_t i = 0; i < l.n; i++) {
        fp_cert_status_rec st;
        fp_error e = {0};
        if (fp_store_cert_status(s, l.serials[i], &st, &e) == FP_ERR_OK &&
            st.status == FP_CERT_REVOKED && st.reason != FP_REASON_HOLD)
            continue; /* revoked for good already */
        if ((rc = fp_ca_revoke(s, l.serials[i], FP_REASON_CESSATION, actor, err)) != FP_ERR_OK)
            goto out;
    }
    rc = transition(s, project, name, (1u << FP_DEV_ACTIVE) | (1u << FP_DEV_SUSPENDED),
                    FP_DEV_DECOMMISSIONED, "device.decommission", actor, err);
out:
    free(l.serials);
    fp_device_rec_clear(&d);
    return rc;
}

int fp_registry_tag(fp_store *s, const char *project, const char *name, const char *key,
                    const char *value, const char *actor, fp_error *err)
{
    char detail[2 * FP_DEVICE_TAG_MAX + 2];
    fp_audit_event ev = {actor ? actor : "unknown", "device.tag", name, detail, project};

    snprintf(detail, sizeof(detail), "%s%s%s", key ? key : "", value ? "=" : "",
             value ? value : "");
    return fp_store_device_tag(s, project, name, key, value, &ev, err);
}

typedef struct {
    fp_device_cert *certs;
    unsigned char **ders;
    char **strs;
    size_t n, cap;
    int rc;
} cert_list;

static int collect_all(void *arg, const fp_device_cert *c)
{
    cert_list *l = arg;
    fp_device_cert *d;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        void *p = realloc(l->certs, cap * sizeof(*l->certs));
        void *q = p ? realloc(l->ders, cap * sizeof(*l->ders)) : NULL;
        void *r = q ? realloc(l->strs, cap * 3 * sizeof(*l->strs)) : NULL;
        if (p)
            l->certs = p;
        if (q)
            l->ders = q;
        if (r == NULL) {
            l->rc = FP_ERR_NOMEM;
            return 1;
        }
        l->strs = r;
        l->cap = cap;
    }
    d = &l->certs[l->n];
    *d = *c;
    l->ders[l->n] = malloc(c->der_len ? c->der_len : 1);
    l->strs[3 * l->n] = strdup(c->serial ? c->serial : "");
    l->strs[3 * l->n + 1] = strdup(c->issuer ? c->issuer : "");
    l->strs[3 * l->n + 2] = strdup(c->subject ? c->subject : "");
    l->n++;
    if (l->ders[l->n - 1] == NULL || !l->strs[3 * l->n - 3] || !l->strs[3 * l->n - 2] ||
        !l->strs[3 * l->n - 1]) {
        l->rc = FP_ERR_NOMEM;
        return 1;
    }
    memcpy(l->ders[l->n - 1], c->der, c->der_len);
    d->der = l->ders[l->n - 1];
    d->serial = l->strs[3 * l->n - 3];
    d->issuer = l->strs[3 * l->n - 2];
    d->subject = l->strs[3 * l->n - 1];
    return 0;
}

int fp_registry_device_certs(fp_store *s, const char *project, const char *name,
                             fp_cert_cb cb, void *arg, fp_error *err)
{
    cert_list l = {0};
    int rc;

    if ((rc = fp_store_device_certs(s, project, name, collect_all, &l, err)) != FP_ERR_OK)
        goto out;
    if (l.rc != FP_ERR_OK) {
        rc = fp_err_set(err, l.rc, NULL);
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        const fp_device_cert *c = &l.certs[i];
        fp_cert_rec rec;
        int stop;
        memset(&rec, 0, sizeof(rec));
        if (c->ours && fp_store_cert_get(s, c->serial, &rec, NULL) == FP_ERR_OK &&
            !strcmp(rec.project, project)) {
            stop = cb(arg, &rec);
            fp_cert_rec_clear(&rec);
        } else {
            const unsigned char *p = c->der;
            X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
            fp_cert_rec_clear(&rec);
            snprintf(rec.serial, sizeof(rec.serial), "%s", c->serial);
            snprintf(rec.project, sizeof(rec.project), "%s", project);
            snprintf(rec.profile, sizeof(rec.profile), "byo");
            rec.subject = (char *)c->subject;
            rec.sans = (char *)"";
            if (x != NULL) {
                rec.not_before = fp_asn1_time_unix(X509_get0_notBefore(x));
                rec.not_after = fp_asn1_time_unix(X509_get0_notAfter(x));
            }
            rec.issued_at = c->added_at;
            rec.der = (unsigned char *)c->der;
            rec.der_len = c->der_len;
            stop = cb(arg, &rec);
            X509_free(x);
        }
        if (stop != 0)
            break;
    }
out:
    for (size_t i = 0; i < l.n; i++) {
        free(l.ders[i]);
        free(l.strs[3 * i]);
        free(l.strs[3 * i + 1]);
        free(l.strs[3 * i + 2]);
    }
    free(l.certs);
    free(l.ders);
    free(l.strs);
    return rc;
}
