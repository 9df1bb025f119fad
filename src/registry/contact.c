/*
 * contact.c - auto-provisioning: a verified client certificate of a
 * project registers its device on first contact and refreshes its
 * last-seen time afterwards.
 *
 * Fast path (every later contact): one read transaction on the caller's
 * handle finds the device and whether this certificate is linked to it;
 * nothing is written.  Slow path (a new device or a new certificate of a
 * known device): one write transaction, INSERT OR IGNORE on the primary
 * key (project, name), so two first contacts racing each other (threads of
 * one server or two servers on one store) make one device.
 *
 * Last-seen is batched: each contact appends (project, name, now) to an
 * in-memory queue; a background thread with its own store handle writes
 * the queue in one transaction every FP_REGISTRY_FLUSH_SECONDS, or at once
 * when FP_REGISTRY_FLUSH_BATCH entries wait; fp_registry_free flushes what
 * is left.  A crash loses at most one interval of last-seen times, never a
 * registration (that is written before contact returns).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "registry.h"

typedef struct {
    char project[FP_PROJECT_MAX];
    char name[FP_DEVICE_NAME_MAX];
    int64_t seen;
} seen_entry;

struct fp_registry {
    char store_path[FP_PATH_MAX];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_started, stopping;
    seen_entry *queue;
    size_t n, cap;
};

/* Write the entries (outside the lock) with s. */
static int write_batch(fp_store *s, seen_entry *q, size_t n, fp_error *err)
{
    const char **projects = NULL, **names = NULL;
    int64_t *seen = NULL;
    int rc;

    if (n == 0)
        return FP_ERR_OK;
    projects = malloc(n * sizeof(*projects));
    names = malloc(n * sizeof(*names));
    seen = malloc(n * sizeof(*seen));
    if (projects == NULL || names == NULL || seen == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        projects[i] = q[i].project;
        names[i] = q[i].name;
        seen[i] = q[i].seen;
    }
    rc = fp_store_device_touch(s, (const char *const *)projects, (const char *const *)names,
                               seen, n, err);
out:
    free(projects);
    free(names);
    free(seen);
    return rc;
}

/* Take the queue out under the lock. */
static seen_entry *take_queue(fp_registry *r, size_t *n)
{
    seen_entry *q = r->queue;

    *n = r->n;
    r->queue = NULL;
    r->n = r->cap = 0;
    return q;
}

int fp_registry_flush(fp_registry *r, fp_store *s, fp_error *err)
{
    seen_entry *q;
    size_t n;
    int rc;

    pthread_mutex_lock(&r->mu);
    q = take_queue(r, &n);
    pthread_mutex_unlock(&r->mu);
    rc = write_batch(s, q, n, err);
    free(q);
    return rc;
}

static void *flusher(void *arg)
{
    fp_registry *r = arg;
    fp_store *s = NULL;
    fp_error err = {0};

    if (fp_store_open(r->store_path, &s, &err) != FP_ERR_OK) {
        fp_log(FP_LOG_ERROR, "registry: last-seen writer cannot open the store: %s", err.msg);
        s = NULL;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec until;
        seen_entry *q;
        size_t n;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += FP_REGISTRY_FLUSH_SECONDS;
        while (!r->stopping && r->n < FP_REGISTRY_FLUSH_BATCH &&
               pthread_cond_timedwait(&r->cv, &r->mu, &until) != ETIMEDOUT)
            ;
        if (r->stopping)
            break;
        q = take_queue(r, &n);
        pthread_mutex_unlock(&r->mu);
        if (s != NULL && write_batch(s, q, n, &err) != FP_ERR_OK)
            fp_log(FP_LOG_WARN, "registry: last-seen update of %zu devices failed: %s", n,
                   err.msg);
        free(q);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    fp_store_close(s);
    return NULL;
}

int fp_registry_new(const fp_config *cfg, const char *store_path, fp_registry **out,
                    fp_error *err)
{
    fp_registry *r;

    char path[FP_PATH_MAX];
    int rc;

    *out = NULL;
    if (store_path == NULL && cfg != NULL)
        store_path = cfg->store_path;
    if (store_path == NULL || strlen(store_path) >= FP_PATH_MAX)
        return fp_err_set(err, FP_ERR_ARG, "registry needs a store path");
    /* relative to the configuration's directory, as fp_config_store_open */
    if (cfg != NULL)
        rc = fp_config_path(cfg, store_path, path, sizeof(path), err);
    else
        rc = snprintf(path, sizeof(path), "%s", store_path) < 0 ? FP_ERR_ARG : FP_ERR_OK;
    if (rc != FP_ERR_OK)
        return rc;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    snprintf(r->store_path, sizeof(r->store_path), "%s", path);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, flusher, r) != 0) {
        fp_registry_free(r);
        return fp_err_set(err, FP_ERR_INTERNAL, "cannot start the last-seen writer");
    }
    r->thread_started = true;
    *out = r;
    return FP_ERR_OK;
}

void fp_registry_free(fp_registry *r)
{
    fp_store *s = NULL;
    fp_error err = {0};

    if (r == NULL)
        return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    if (r->n > 0) {
        if (fp_store_open(r->store_path, &s, &err) != FP_ERR_OK ||
            fp_registry_flush(r, s, &err) != FP_ERR_OK)
            fp_log(FP_LOG_WARN, "registry: final last-seen update failed: %s", err.msg);
        fp_store_close(s);
    }
    free(r->queue);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void queue_seen(fp_registry *r, const char *project, const char *name, int64_t now)
{
    pthread_mutex_lock(&r->mu);
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        seen_entry *q = realloc(r->queue, cap * sizeof(*q));
        if (q == NULL) {
            /* best effort: a lost last-seen is not worth failing a contact */
            pthread_mutex_unlock(&r->mu);
            return;
        }
        r->queue = q;
        r->cap = cap;
    }
    snprintf(r->queue[r->n].project, FP_PROJECT_MAX, "%s", project);
    snprintf(r->queue[r->n].name, FP_DEVICE_NAME_MAX, "%s", name);
    r->queue[r->n].seen = now;
    if (++r->n >= FP_REGISTRY_FLUSH_BATCH)
        pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Whether x is byte for byte a certificate of project we issued. */
static bool issued_by_us(fp_store *s, const char *project, const char *serial,
                         const unsigned char *der, size_t der_len)
{
    fp_cert_rec rec;
    bool ours;

    memset(&rec, 0, sizeof(rec));
    if (fp_store_cert_get(s, serial, &rec, NULL) != FP_ERR_OK)
        return false;
    ours = !strcmp(rec.project, project) && rec.der_len == der_len &&
           memcmp(rec.der, der, der_len) == 0;
    fp_cert_rec_clear(&rec);
    return ours;
}

static int refuse_state(const fp_device_rec *d, fp_error *err)
{
    char esc[FP_LOG_ESCAPED_MAX(FP_DEVICE_NAME_MAX)];

    if (d->state == FP_DEV_ACTIVE)
        return FP_ERR_OK;
    return fp_err_set(err, FP_ERR_STATE, "device %s of project %s is %s",
                      fp_log_escape(esc, sizeof(esc), d->name), d->project,
                      fp_dev_state_name(d->state) ? fp_dev_state_name(d->state) : "refused");
}

int fp_registry_contact(fp_registry *r, fp_store *s, const char *project, X509 *cert,
                        fp_device_rec *out, fp_error *err)
{
    char name[FP_DEVICE_NAME_MAX], serial[FP_SERIAL_HEX_MAX];
    unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned int mdlen = 0;
    char *issuer = NULL, *subject = NULL;
    fp_device_rec d = {0};
    fp_device_cert link;
    bool linked = false;
    int rule = FP_DEVNAME_CN, der_len, rc;
    int64_t now = fp_now();

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    memset(&link, 0, sizeof(link));
    if (cert == NULL || project == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device contact needs a project and a certificate");
    if ((rc = fp_store_device_naming_get(s, project, &rule, err)) != FP_ERR_OK ||
        (rc = fp_registry_name_of(cert, rule, name, err)) != FP_ERR_OK)
        return rc;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return fp_err_set(err, FP_ERR_CRYPTO, "certificate digest");
    fp_hex(md, mdlen, link.fp);

    rc = fp_store_device_get(s, project, name, link.fp, &linked, &d, err);
    if (rc == FP_ERR_OK && linked)
        goto known;
    if (rc != FP_ERR_OK && rc != FP_ERR_NOT_FOUND)
        goto out;
    fp_device_rec_clear(&d);

    /* first contact of the device, or of this certificate of it */
    if ((der_len = i2d_X509(cert, &der)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "certificate encoding");
        goto out;
    }
    if (fp_serial_hex(X509_get0_serialNumber(cert), serial) != 0)
        snprintf(serial, sizeof(serial), "?");
    issuer = fp_name_string(X509_get_issuer_name(cert));
    subject = fp_name_string(X509_get_subject_name(cert));
    if (issuer == NULL || subject == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    link.serial = serial;
    link.issuer = issuer;
    link.subject = subject;
    link.der = der;
    link.der_len = (size_t)der_len;
    link.ours = issued_by_us(s, project, serial, der, (size_t)der_len);
    {
        fp_audit_event ev = {"registry:contact", "device.register", name, subject, project};
        rc = fp_store_device_register(s, project, name, now, &link, &ev, &d, NULL, err);
    }
    if (rc != FP_ERR_OK)
        goto out;
known:
    if ((rc = refuse_state(&d, err)) != FP_ERR_OK)
        goto out;
    if (r != NULL)
        queue_seen(r, project, name, now);
    if (out != NULL) {
        *out = d;
        memset(&d, 0, sizeof(d));
    }
out:
    fp_device_rec_clear(&d);
    OPENSSL_free(der);
    free(issuer);
    free(subject);
    return rc;
}

/* The name of the device cert is linked to in project, if any: the name
 * cert gets by rule, when that device has cert linked. */
static bool linked_device(fp_store *s, const char *project, int rule, X509 *cert,
                          char name[FP_DEVICE_NAME_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char fp[FP_DEVICE_FP_LEN];
    fp_device_rec d;
    bool linked = false;

    if (fp_registry_name_of(cert, rule, name, NULL) != FP_ERR_OK ||
        X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return false;
    fp_hex(md, mdlen, fp);
    memset(&d, 0, sizeof(d));
    if (fp_store_device_get(s, project, name, fp, &linked, &d, NULL) != FP_ERR_OK)
        linked = false;
    fp_device_rec_clear(&d);
    return linked;
}

/* Register device name of project if new and link cert to it (one
 * transaction, fp_store_device_register); ours: cert is a row of
 * certificates. */
static int link_one(fp_store *s, const char *project, const char *name, X509 *cert, bool ours,
                    const char *actor, fp_error *err)
{
    char serial[FP_SERIAL_HEX_MAX];
    unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned int mdlen = 0;
    char *issuer = NULL, *subject = NULL;
    fp_device_cert link;
    int der_len, rc;

    memset(&link, 0, sizeof(link));
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return fp_err_set(err, FP_ERR_CRYPTO, "certificate digest");
    fp_hex(md, mdlen, link.fp);
    if ((der_len = i2d_X509(cert, &der)) <= 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "certificate encoding");
    if (fp_serial_hex(X509_get0_serialNumber(cert), serial) != 0)
        snprintf(serial, sizeof(serial), "?");
    issuer = fp_name_string(X509_get_issuer_name(cert));
    subject = fp_name_string(X509_get_subject_name(cert));
    if (issuer == NULL || subject == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    link.serial = serial;
    link.issuer = issuer;
    link.subject = subject;
    link.der = der;
    link.der_len = (size_t)der_len;
    link.ours = ours;
    {
        /* audited (device.register) only when the device is new, as a
         * first contact; the link alone is not: the issuance is
         * (cert.issue), and a link made at first presentation is not */
        fp_audit_event ev = {actor ? actor : "unknown", "device.register", name, subject,
                             project};
        rc = fp_store_device_register(s, project, name, fp_now(), &link, &ev, NULL, NULL, err);
    }
out:
    OPENSSL_free(der);
    free(issuer);
    free(subject);
    return rc;
}

int fp_registry_link_issued(fp_store *s, const char *project, X509 *cert, X509 *auth,
                            const char *actor, char *linked_to, fp_error *err)
{
    char name[FP_DEVICE_NAME_MAX], serial[FP_SERIAL_HEX_MAX];
    unsigned char *der = NULL;
    int rule = FP_DEVNAME_CN, der_len, rc;
    bool auth_linked = false;

    if (linked_to != NULL)
        linked_to[0] = '\0';
    if (cert == NULL || project == NULL)
        return fp_err_set(err, FP_ERR_ARG, "linking needs a project and a certificate");
    /* a CA certificate (`fleetpki issue --profile sub-ca`) is no device's */
    if (X509_get_extension_flags(cert) & EXFLAG_CA)
        return FP_ERR_OK;
    if ((rc = fp_store_device_naming_get(s, project, &rule, err)) != FP_ERR_OK)
        return rc;
    /* which device: the one the authenticating certificate is linked to
     * (an IDevID enrolling for its LDevID, RFC 7030 3.3.2, IEEE 802.1AR),
     * else the one the new certificate names by the project's rule, else
     * the one the authenticating certificate names (an LDevID request
     * without the IDevID's serialNumber, say) */
    if (auth != NULL && linked_device(s, project, rule, auth, name))
        auth_linked = true;
    else if (fp_registry_name_of(cert, rule, name, NULL) != FP_ERR_OK &&
             (auth == NULL || fp_registry_name_of(auth, rule, name, NULL) != FP_ERR_OK))
        return FP_ERR_OK; /* names no device: nothing to list it under */
    /* registers the device when this is its first certificate */
    if ((rc = link_one(s, project, name, cert, true, actor, err)) != FP_ERR_OK)
        return rc;
    if (auth != NULL && !auth_linked && auth != cert) {
        /* the authenticating certificate (a factory certificate under a
         * `root add` root, or ours being renewed) is the same device's */
        bool ours = false;
        if ((der_len = i2d_X509(auth, &der)) > 0 &&
            fp_serial_hex(X509_get0_serialNumber(auth), serial) == 0)
            ours = issued_by_us(s, project, serial, der, (size_t)der_len);
        OPENSSL_free(der);
        rc = link_one(s, project, name, auth, ours, actor, err);
        if (rc == FP_ERR_DUPLICATE) {
            /* already another device's (its name changed rule-wise): the
             * new certificate stays linked where it is */
            char esc[FP_LOG_ESCAPED_MAX(FP_DEVICE_NAME_MAX)];
            fp_log(FP_LOG_WARN, "registry: the authenticating certificate of device %s of "
                                "project %s belongs to another device; not linked",
                   fp_log_escape(esc, sizeof(esc), name), project);
            if (err != NULL)
                memset(err, 0, sizeof(*err));
            rc = FP_ERR_OK;
        }
        if (rc != FP_ERR_OK)
            return rc;
    }
    if (linked_to != NULL)
        snprintf(linked_to, FP_DEVICE_NAME_MAX, "%s", name);
    return FP_ERR_OK;
}

int fp_registry_issued_hook(void *arg, fp_store *s, const char *project, X509 *cert,
                            X509 *auth_cert, const char *actor, fp_error *err)
{
    (void)arg;
    return fp_registry_link_issued(s, project, cert, auth_cert, actor, NULL, err);
}

/* Refuse (FP_ERR_CSR_SUBJECT, a policy refusal every front end maps to
 * its protocol's rejection) when device name of project exists and is
 * not active. */
static int refuse_issuing(fp_store *s, const char *project, const char *name, fp_error *err)
{
    char esc[FP_LOG_ESCAPED_MAX(FP_DEVICE_NAME_MAX)];
    fp_device_rec d;
    const char *state;
    int rc;

    memset(&d, 0, sizeof(d));
    rc = fp_store_device_get(s, project, name, NULL, NULL, &d, err);
    if (rc == FP_ERR_NOT_FOUND) {
        /* a new device: its first certificate registers it (step 6) */
        if (err != NULL)
            memset(err, 0, sizeof(*err));
        return FP_ERR_OK;
    }
    if (rc == FP_ERR_OK && d.state != FP_DEV_ACTIVE) {
        state = fp_dev_state_name(d.state) ? fp_dev_state_name(d.state) : "refused";
        rc = fp_err_set(err, FP_ERR_CSR_SUBJECT,
                        "device %s of project %s is %s: no certificate is issued for it%s",
                        fp_log_escape(esc, sizeof(esc), name), project, state,
                        d.state == FP_DEV_SUSPENDED ? " until it is resumed" : "");
    }
    fp_device_rec_clear(&d);
    return rc;
}

int fp_registry_issuing_hook(void *arg, fp_store *s, const char *project, X509 *cert,
                             X509 *auth_cert, fp_error *err)
{
    char name[FP_DEVICE_NAME_MAX];
    int rule = FP_DEVNAME_CN, rc;

    (void)arg;
    if (cert == NULL || project == NULL)
        return fp_err_set(err, FP_ERR_ARG, "the device check needs a project and a certificate");
    /* a CA certificate is no device's (as fp_registry_link_issued) */
    if (X509_get_extension_flags(cert) & EXFLAG_CA)
        return FP_ERR_OK;
    if ((rc = fp_store_device_naming_get(s, project, &rule, err)) != FP_ERR_OK)
        return rc;
    /* the device the authenticating certificate is linked to (an IDevID
     * enrolling for its LDevID: step 6 lists the new one under it) */
    if (auth_cert != NULL && auth_cert != cert &&
        linked_device(s, project, rule, auth_cert, name) &&
        (rc = refuse_issuing(s, project, name, err)) != FP_ERR_OK)
        return rc;
    /* the device the new certificate names by the project's rule: a later
     * contact with it would be that device's (fp_registry_contact) */
    if (fp_registry_name_of(cert, rule, name, NULL) == FP_ERR_OK)
        return refuse_issuing(s, project, name, err);
    /* names none: the device the authenticating certificate names, where
     * step 6 would list it */
    if (auth_cert != NULL && fp_registry_name_of(auth_cert, rule, name, NULL) == FP_ERR_OK)
        return refuse_issuing(s, project, name, err);
    return FP_ERR_OK;
}
