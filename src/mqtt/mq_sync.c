/*
 * mq_sync.c - the plugin's two threads, each with its own store handle.
 *
 * Poller.  Loads the cache in full (served projects and their naming
 * rules, every issuing CA and trust root, the revoked serials of the
 * served projects, their devices and states), then every poll_ms reads
 * what changed since: the status-change log (store_status.h: a serial's
 * status changed, so read it) and the device change log
 * (store_devices.h: a registration or a state change).  A revocation or
 * a device leaving the active state marks its open sessions refused and
 * queues their kicks for the broker's TICK, so a `fleetpki revoke` made
 * by any process takes its device off the broker within about
 * poll_ms + 100 ms.  Project and CA rows are re-read every
 * META_REFRESH_MS (new CAs, naming rule changes).  It reloads in full
 * after any store failure and when a log was pruned past what it read
 * (a gap in seq).  A SQLite store file that disappears or is replaced
 * (restored from a backup) is reopened; it is never created here.
 *
 * Watchdog.  Each thread marks the store step it is in (mq_watch); the
 * broker's TICK says in one line when a step has not returned for
 * stale_ms, and again when it does.  A store that hangs (a lock held, a
 * server that stopped answering, a connection that never completes)
 * cannot leave the plugin silently without a cache.
 *
 * Writer.  Contacts queued by the broker thread (a new device, a new
 * certificate of a device, or a last-seen that is due) go through
 * fp_registry_contact, the registry's one first-contact path (race-safe
 * registration, certificate link, batched last-seen).  The queue is
 * bounded; a contact that does not fit is dropped with a warning (the
 * device's next connection queues it again).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mosquitto.h>

#include "../registry/registry.h"
#include "mq.h"

#define META_REFRESH_MS 5000
#define CHANGES_BATCH 500
#define DEVICES_PAGE 1000
#define RETRY_MS 1000

bool mq_store_fresh_locked(const mq_state *st)
{
    return st->loaded && mq_now_ms() - st->last_ok_ms <= st->cfg.stale_ms;
}

static bool served(const mq_state *st, const char *project)
{
    return st->cfg.project[0] == '\0' || !strcmp(st->cfg.project, project);
}

/* ---- the watchdog ---- */

/* w's thread starts waiting on the store for what (static text). */
static void busy(mq_watch *w, const char *what)
{
    int64_t now = mq_now_ms();

    atomic_store(&w->what, what);
    atomic_store(&w->since, now > 0 ? now : 1);
}

static void idle(mq_watch *w)
{
    atomic_store(&w->since, 0);
}

/* Once per stuck step: a step that has not returned for stale_ms is said;
 * the thread going idle again (its round done, for the poller after the
 * cache was marked fresh) is said too. */
static void watch_one(mq_state *st, mq_watch *w, int64_t now)
{
    int64_t since = atomic_load(&w->since);
    const char *what = atomic_load(&w->what);
    bool loaded;

    if (w->warned_since != 0 && since == 0) {
        mq_log(st, MOSQ_LOG_NOTICE,
               "fleetpki: store answering again: the %s is done after %lld ms (stuck on %s)",
               w->who, (long long)(now - w->warned_since), w->warned_what);
        w->warned_since = 0;
        return;
    }
    if (since == 0 || since == w->warned_since || now - since < st->cfg.stale_ms)
        return;
    w->warned_since = since;
    w->warned_what = what;
    if (w == &st->watch_writer) {
        mq_log(st, MOSQ_LOG_ERR,
               "fleetpki: store not answering: the %s has waited %lld ms on %s; device "
               "contacts queue up (at most %d, then dropped) until it answers",
               w->who, (long long)(now - since), what, st->cfg.queue_max);
        return;
    }
    pthread_mutex_lock(&st->mu);
    loaded = st->loaded;
    pthread_mutex_unlock(&st->mu);
    mq_log(st, MOSQ_LOG_ERR, "fleetpki: store not answering: the %s has waited %lld ms on %s%s; %s",
           w->who, (long long)(now - since), what, loaded ? "" : " (cache not loaded yet)",
           st->cfg.fail_closed ? "refusing new connections (fail_closed true)"
                               : "deciding from the last cache (fail_closed false)");
}

void mq_watch_check(mq_state *st)
{
    int64_t now = mq_now_ms();

    watch_one(st, &st->watch_poller, now);
    watch_one(st, &st->watch_writer, now);
}

static bool is_sqlite(const char *path)
{
    /* the forms fp_store_open_role sends to PostgreSQL: a libpq URI, or
     * FP_STORE_PG_PREFIX and a key=value string (what fp_config_path makes
     * of [store] url = host=... ) */
    return strncmp(path, "postgres://", 11) != 0 && strncmp(path, "postgresql://", 13) != 0 &&
           strncmp(path, FP_STORE_PG_PREFIX, strlen(FP_STORE_PG_PREFIX)) != 0;
}

/* ---- sessions to refuse (under mu) ---- */

static void refuse_device_locked(mq_state *st, mq_dev *d)
{
    for (mq_session *s = d->sessions; s != NULL; s = s->dnext)
        mq_session_refuse_locked(st, s);
}

static void refuse_serial_locked(mq_state *st, const char *serial)
{
    for (mq_session *s = mq_hash_get(&st->by_serial, serial, strlen(serial)); s != NULL;
         s = s->snext)
        mq_session_refuse_locked(st, s);
}

/* A device's state as the store has it now (under mu). */
static void apply_device_locked(mq_state *st, const char *project, const char *name, int state)
{
    mq_dev *d = mq_dev_get(st, project, name, true);

    if (d == NULL)
        return;
    d->state = state;
    if (state != FP_DEV_ACTIVE)
        refuse_device_locked(st, d);
}

/* ---- the store handle ---- */

typedef struct {
    fp_store *s;
    struct stat id; /* the SQLite file it opened */
} handle;

static void handle_close(handle *h)
{
    fp_store_close(h->s);
    h->s = NULL;
}

static int handle_open(mq_state *st, handle *h, fp_error *err)
{
    const char *path = st->cfg.store_path;

    /* fp_store_open creates a missing SQLite store: a plugin must not
     * make an empty store where the real one is away */
    if (is_sqlite(path) && stat(path, &h->id) != 0)
        return fp_err_set(err, FP_ERR_STORE, "%s: %s", path, strerror(errno));
    return fp_store_open(path, &h->s, err);
}

/* The SQLite file is gone or another file took its name. */
static bool handle_stale(const mq_state *st, const handle *h)
{
    struct stat now;

    if (!is_sqlite(st->cfg.store_path))
        return false;
    return stat(st->cfg.store_path, &now) != 0 || now.st_ino != h->id.st_ino ||
           now.st_dev != h->id.st_dev;
}

/* ---- projects and CAs ---- */

typedef struct {
    mq_state *st;
    mq_proj *projs;
    int n, cap;
    mq_ca *cas;
    int n_cas, cap_cas;
    int rc;
} meta;

static int meta_project(void *arg, const fp_project_rec *p)
{
    meta *m = arg;

    if (!served(m->st, p->name))
        return 0;
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 8;
        mq_proj *q = realloc(m->projs, (size_t)cap * sizeof(*q));
        if (q == NULL) {
            m->rc = FP_ERR_NOMEM;
            return 1;
        }
        m->projs = q;
        m->cap = cap;
    }
    memset(&m->projs[m->n], 0, sizeof(m->projs[m->n]));
    snprintf(m->projs[m->n++].name, FP_PROJECT_MAX, "%s", p->name);
    return 0;
}

static int meta_ca(void *arg, const fp_ca_rec *r)
{
    meta *m = arg;
    const unsigned char *p = r->der;
    X509 *x;

    if (r->kind != FP_CA_ISSUING && r->kind != FP_CA_TRUST_ROOT)
        return 0;
    if ((x = d2i_X509(NULL, &p, (long)r->der_len)) == NULL)
        return 0; /* a row we cannot parse issues nothing we can check */
    if (m->n_cas == m->cap_cas) {
        int cap = m->cap_cas ? m->cap_cas * 2 : 8;
        mq_ca *q = realloc(m->cas, (size_t)cap * sizeof(*q));
        if (q == NULL) {
            X509_free(x);
            m->rc = FP_ERR_NOMEM;
            return 1;
        }
        m->cas = q;
        m->cap_cas = cap;
    }
    memset(&m->cas[m->n_cas], 0, sizeof(m->cas[m->n_cas]));
    m->cas[m->n_cas].x = x;
    m->cas[m->n_cas].kind = r->kind;
    snprintf(m->cas[m->n_cas].id, FP_CA_ID_MAX, "%s", r->id);
    snprintf(m->cas[m->n_cas].project, FP_PROJECT_MAX, "%s", r->project);
    m->n_cas++;
    return 0;
}

static void free_cas(mq_ca *cas, int n)
{
    for (int i = 0; i < n; i++)
        X509_free(cas[i].x);
    free(cas);
}

static int refresh_meta(mq_state *st, fp_store *s, fp_error *err)
{
    meta m;
    mq_proj *old_projs;
    mq_ca *old_cas;
    int old_n_cas, rc;

    memset(&m, 0, sizeof(m));
    m.st = st;
    if ((rc = fp_store_project_list(s, meta_project, &m, err)) != FP_ERR_OK)
        goto out;
    for (int i = 0; i < m.n && rc == FP_ERR_OK; i++)
        rc = fp_store_device_naming_get(s, m.projs[i].name, &m.projs[i].rule, err);
    if (rc == FP_ERR_OK)
        rc = fp_store_ca_list(s, NULL, -1, meta_ca, &m, err);
    if (rc == FP_ERR_OK && m.rc != FP_ERR_OK)
        rc = fp_err_set(err, m.rc, NULL);
    if (rc != FP_ERR_OK)
        goto out;
    if (st->cfg.project[0] != '\0' && m.n == 0)
        mq_log(st, MOSQ_LOG_WARNING, "fleetpki: the store has no project '%s': refusing all",
               st->cfg.project);
    pthread_mutex_lock(&st->mu);
    old_projs = st->projs;
    old_cas = st->cas;
    old_n_cas = st->n_cas;
    st->projs = m.projs;
    st->n_projs = m.n;
    st->cas = m.cas;
    st->n_cas = m.n_cas;
    pthread_mutex_unlock(&st->mu);
    m.projs = old_projs;
    m.cas = old_cas;
    m.n_cas = old_n_cas;
out:
    free(m.projs);
    free_cas(m.cas, m.n_cas);
    return rc;
}

/* ---- revoked serials ---- */

static int add_revoked(void *arg, const char *serial, int64_t revoked_at, int reason)
{
    (void)revoked_at;
    (void)reason;
    return mq_hash_put(arg, serial, strlen(serial), (void *)1) == 0 ? FP_ERR_OK : FP_ERR_NOMEM;
}

/* A session whose certificate is in the revoked set goes (under mu):
 * revoked while we were not looking, during an outage. */
static void refuse_if_revoked(void *arg, void *val)
{
    mq_state *st = arg;
    mq_session *s = val;

    if (mq_hash_get(&st->revoked, s->serial, strlen(s->serial)) != NULL)
        mq_session_refuse_locked(st, s);
}

static int load_revoked(mq_state *st, fp_store *s, fp_error *err)
{
    mq_hash fresh = {0}, old;
    char (*ids)[FP_CA_ID_MAX] = NULL;
    int n = 0, rc = FP_ERR_OK;

    /* the served projects' issuing CAs, copied out of the cache */
    pthread_mutex_lock(&st->mu);
    ids = calloc((size_t)st->n_cas + 1, sizeof(*ids));
    for (int i = 0; ids != NULL && i < st->n_cas; i++)
        if (st->cas[i].kind == FP_CA_ISSUING && served(st, st->cas[i].project))
            memcpy(ids[n++], st->cas[i].id, FP_CA_ID_MAX);
    pthread_mutex_unlock(&st->mu);
    if (ids == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int i = 0; i < n && rc == FP_ERR_OK; i++)
        rc = fp_store_revoked_iter(s, ids[i], add_revoked, &fresh, err);
    free(ids);
    if (rc != FP_ERR_OK) {
        mq_hash_clear(&fresh, NULL);
        return rc == FP_ERR_NOMEM ? fp_err_set(err, rc, NULL) : rc;
    }
    pthread_mutex_lock(&st->mu);
    old = st->revoked;
    st->revoked = fresh;
    mq_hash_each(&st->sessions, refuse_if_revoked, st);
    pthread_mutex_unlock(&st->mu);
    mq_hash_clear(&old, NULL);
    return FP_ERR_OK;
}

/* ---- devices ---- */

typedef struct {
    char (*names)[FP_DEVICE_NAME_MAX];
    int *states;
    int n;
    char last[FP_DEVICE_NAME_MAX];
} dev_page;

static int page_cb(void *arg, const fp_device_rec *r)
{
    dev_page *p = arg;

    memcpy(p->names[p->n], r->name, FP_DEVICE_NAME_MAX);
    p->states[p->n++] = r->state;
    memcpy(p->last, r->name, FP_DEVICE_NAME_MAX);
    return 0;
}

static int load_devices(mq_state *st, fp_store *s, fp_error *err)
{
    char (*projects)[FP_PROJECT_MAX] = NULL;
    dev_page pg;
    int np = 0, rc = FP_ERR_OK;

    memset(&pg, 0, sizeof(pg));
    pg.names = malloc(DEVICES_PAGE * sizeof(*pg.names));
    pg.states = malloc(DEVICES_PAGE * sizeof(*pg.states));
    pthread_mutex_lock(&st->mu);
    projects = calloc((size_t)st->n_projs + 1, sizeof(*projects));
    for (int i = 0; projects != NULL && i < st->n_projs; i++)
        memcpy(projects[np++], st->projs[i].name, FP_PROJECT_MAX);
    pthread_mutex_unlock(&st->mu);
    if (projects == NULL || pg.names == NULL || pg.states == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    for (int i = 0; i < np && rc == FP_ERR_OK; i++) {
        fp_device_filter f;
        memset(&f, 0, sizeof(f));
        f.project = projects[i];
        f.state = -1;
        f.limit = DEVICES_PAGE;
        pg.last[0] = '\0';
        do {
            f.after = pg.last[0] ? pg.last : NULL;
            pg.n = 0;
            busy(&st->watch_poller, "loading the cache (devices)");
            if ((rc = fp_store_device_list(s, &f, page_cb, &pg, err)) != FP_ERR_OK)
                break;
            /* one page at a time under the lock: connections wait at
             * most for a page, never for the whole load */
            pthread_mutex_lock(&st->mu);
            for (int j = 0; j < pg.n; j++)
                apply_device_locked(st, projects[i], pg.names[j], pg.states[j]);
            pthread_mutex_unlock(&st->mu);
        } while (pg.n == DEVICES_PAGE);
    }
out:
    free(projects);
    free(pg.names);
    free(pg.states);
    return rc;
}

/* ---- change logs ---- */

typedef struct {
    int64_t first, last;
    int n;
    char (*serials)[FP_SERIAL_HEX_MAX];
} cert_changes;

static int cert_change_cb(void *arg, int64_t seq, const char *serial, const char *ca_id)
{
    cert_changes *c = arg;

    (void)ca_id;
    if (c->n == 0)
        c->first = seq;
    c->last = seq;
    snprintf(c->serials[c->n++], FP_SERIAL_HEX_MAX, "%s", serial);
    return 0;
}

typedef struct {
    int64_t first, last;
    int n;
    char (*projects)[FP_PROJECT_MAX];
    char (*names)[FP_DEVICE_NAME_MAX];
    int *states;
} dev_changes;

static int dev_change_cb(void *arg, int64_t seq, const char *project, const char *name,
                         int state)
{
    dev_changes *c = arg;

    if (c->n == 0)
        c->first = seq;
    c->last = seq;
    snprintf(c->projects[c->n], FP_PROJECT_MAX, "%s", project);
    snprintf(c->names[c->n], FP_DEVICE_NAME_MAX, "%s", name);
    c->states[c->n++] = state;
    return 0;
}

/* Status changes after *seq; *gap when the log no longer holds them all. */
static int poll_certs(mq_state *st, fp_store *s, int64_t *seq, bool *gap, fp_error *err)
{
    cert_changes c;
    bool revoked[CHANGES_BATCH];
    int rc = FP_ERR_OK;

    memset(&c, 0, sizeof(c));
    if ((c.serials = malloc(CHANGES_BATCH * sizeof(*c.serials))) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    do {
        c.n = 0;
        busy(&st->watch_poller, "reading the status-change log");
        if ((rc = fp_store_status_changes(s, *seq, CHANGES_BATCH, cert_change_cb, &c, err)) !=
            FP_ERR_OK)
            break;
        if (c.n > 0 && c.first > *seq + 1) {
            *gap = true;
            break;
        }
        for (int i = 0; i < c.n && rc == FP_ERR_OK; i++) {
            fp_cert_status_rec r;
            fp_error e = {0};
            int k;
            busy(&st->watch_poller, "reading a certificate's status");
            k = fp_store_cert_status(s, c.serials[i], &r, &e);
            revoked[i] = false;
            if (k == FP_ERR_NOT_FOUND || (k == FP_ERR_OK && !served(st, r.project))) {
                c.serials[i][0] = '\0';
                continue;
            }
            if (k != FP_ERR_OK) {
                rc = k;
                if (err)
                    *err = e;
                break;
            }
            revoked[i] = r.status == FP_CERT_REVOKED;
        }
        if (rc != FP_ERR_OK)
            break;
        pthread_mutex_lock(&st->mu);
        for (int i = 0; i < c.n; i++) {
            const char *serial = c.serials[i];
            if (serial[0] == '\0')
                continue;
            if (revoked[i]) {
                mq_hash_put(&st->revoked, serial, strlen(serial), (void *)1);
                refuse_serial_locked(st, serial);
            } else {
                mq_hash_del(&st->revoked, serial, strlen(serial));
            }
        }
        pthread_mutex_unlock(&st->mu);
        if (c.n > 0)
            *seq = c.last;
    } while (c.n == CHANGES_BATCH);
    free(c.serials);
    return rc;
}

static int poll_devices(mq_state *st, fp_store *s, int64_t *seq, bool *gap, fp_error *err)
{
    dev_changes c;
    int rc = FP_ERR_OK;

    memset(&c, 0, sizeof(c));
    c.projects = malloc(CHANGES_BATCH * sizeof(*c.projects));
    c.names = malloc(CHANGES_BATCH * sizeof(*c.names));
    c.states = malloc(CHANGES_BATCH * sizeof(*c.states));
    if (c.projects == NULL || c.names == NULL || c.states == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    do {
        c.n = 0;
        busy(&st->watch_poller, "reading the device change log");
        if ((rc = fp_store_device_changes(s, *seq, CHANGES_BATCH, dev_change_cb, &c, err)) !=
            FP_ERR_OK)
            break;
        if (c.n > 0 && c.first > *seq + 1) {
            *gap = true;
            break;
        }
        pthread_mutex_lock(&st->mu);
        for (int i = 0; i < c.n; i++)
            if (served(st, c.projects[i]))
                apply_device_locked(st, c.projects[i], c.names[i], c.states[i]);
        pthread_mutex_unlock(&st->mu);
        if (c.n > 0)
            *seq = c.last;
    } while (c.n == CHANGES_BATCH);
out:
    free(c.projects);
    free(c.names);
    free(c.states);
    return rc;
}

/* Everything, from scratch.  The logs' positions are read first, so a
 * change made during the load is applied again by the next poll. */
static int full_load(mq_state *st, fp_store *s, int64_t *cert_seq, int64_t *dev_seq,
                     fp_error *err)
{
    int64_t cs = 0, ds = 0;
    int rc;

    busy(&st->watch_poller, "loading the cache");
    if ((rc = fp_store_status_seq(s, &cs, err)) != FP_ERR_OK ||
        (rc = fp_store_device_seq(s, &ds, err)) != FP_ERR_OK ||
        (rc = refresh_meta(st, s, err)) != FP_ERR_OK || (rc = load_revoked(st, s, err)) != FP_ERR_OK ||
        (rc = load_devices(st, s, err)) != FP_ERR_OK)
        return rc;
    *cert_seq = cs;
    *dev_seq = ds;
    return FP_ERR_OK;
}

static void *poller(void *arg)
{
    mq_state *st = arg;
    handle h = {0};
    int64_t cert_seq = 0, dev_seq = 0, next_meta = 0;
    bool need_full = true, down = false;

    pthread_mutex_lock(&st->mu);
    while (!st->stopping) {
        fp_error e = {0};
        struct timespec until;
        int rc = FP_ERR_OK, wait_ms;
        bool gap = false;

        pthread_mutex_unlock(&st->mu);
        if (h.s != NULL && handle_stale(st, &h)) {
            handle_close(&h);
            need_full = true;
        }
        if (h.s == NULL) {
            busy(&st->watch_poller, "connecting to the store");
            rc = handle_open(st, &h, &e);
        }
        if (rc == FP_ERR_OK && need_full) {
            if ((rc = full_load(st, h.s, &cert_seq, &dev_seq, &e)) == FP_ERR_OK) {
                need_full = false;
                next_meta = mq_now_ms() + META_REFRESH_MS;
            }
        } else if (rc == FP_ERR_OK) {
            if ((rc = poll_certs(st, h.s, &cert_seq, &gap, &e)) == FP_ERR_OK)
                rc = poll_devices(st, h.s, &dev_seq, &gap, &e);
            if (rc == FP_ERR_OK && mq_now_ms() >= next_meta) {
                busy(&st->watch_poller, "reading projects and CAs");
                rc = refresh_meta(st, h.s, &e);
                next_meta = mq_now_ms() + META_REFRESH_MS;
            }
            if (gap)
                need_full = true;
        }
        if (rc != FP_ERR_OK) {
            handle_close(&h);
            need_full = true;
            /* stale at once: stale_ms is for a store that hangs */
            pthread_mutex_lock(&st->mu);
            st->last_ok_ms = INT64_MIN / 2;
            pthread_mutex_unlock(&st->mu);
            if (!down)
                mq_log(st, MOSQ_LOG_ERR,
                       "fleetpki: store unavailable (%s): %s; retrying every %d ms", e.msg,
                       st->cfg.fail_closed
                           ? "refusing new connections (fail_closed true)"
                           : "deciding from the last cache (fail_closed false)",
                       RETRY_MS);
            down = true;
        } else if (!need_full) {
            pthread_mutex_lock(&st->mu);
            st->last_ok_ms = mq_now_ms();
            if (!st->loaded) {
                st->loaded = true;
                mq_log_locked(st, MOSQ_LOG_NOTICE,
                              "fleetpki: cache loaded: %zu devices, %zu revoked certificates, "
                              "%d CAs and trust roots",
                              st->devs.n, st->revoked.n, st->n_cas);
            }
            pthread_mutex_unlock(&st->mu);
            if (down)
                mq_log(st, MOSQ_LOG_NOTICE, "fleetpki: store available again");
            down = false;
        }
        /* idle after last_ok_ms: once the watchdog says the store answers
         * again, the cache is fresh */
        idle(&st->watch_poller);
        wait_ms = rc == FP_ERR_OK ? (need_full ? 0 : st->cfg.poll_ms) : RETRY_MS;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&st->mu);
        while (!st->stopping && wait_ms > 0 &&
               pthread_cond_timedwait(&st->pcv, &st->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&st->mu);
    handle_close(&h);
    return NULL;
}

/* ---- writer ---- */

void mq_contact_locked(mq_state *st, const char *project, X509 *cert)
{
    mq_job *j;

    if (st->n_jobs >= (size_t)st->cfg.queue_max) {
        if (!st->queue_full_logged)
            mq_log_locked(st, MOSQ_LOG_WARNING,
                          "fleetpki: registration queue full (%d): contacts dropped until it "
                          "drains (a dropped device registers on its next connection)",
                          st->cfg.queue_max);
        st->queue_full_logged = true;
        return;
    }
    st->queue_full_logged = false;
    j = &st->jobs[(st->head_job + st->n_jobs) % (size_t)st->cfg.queue_max];
    snprintf(j->project, FP_PROJECT_MAX, "%s", project);
    X509_up_ref(cert);
    j->cert = cert;
    st->n_jobs++;
    pthread_cond_signal(&st->wcv);
}

static void *writer(void *arg)
{
    mq_state *st = arg;
    fp_store *s = NULL;
    fp_registry *reg = NULL;
    int64_t retry_at = 0;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        mq_job j;
        fp_error e = {0};
        int rc;

        while (!st->stopping && st->n_jobs == 0)
            pthread_cond_wait(&st->wcv, &st->mu);
        if (st->stopping)
            break;
        j = st->jobs[st->head_job];
        st->head_job = (st->head_job + 1) % (size_t)st->cfg.queue_max;
        st->n_jobs--;
        pthread_mutex_unlock(&st->mu);
        rc = FP_ERR_OK;
        if (s == NULL && mq_now_ms() >= retry_at) {
            struct stat sb;
            if (is_sqlite(st->cfg.store_path) && stat(st->cfg.store_path, &sb) != 0)
                rc = fp_err_set(&e, FP_ERR_STORE, "%s: %s", st->cfg.store_path,
                                strerror(errno));
            else {
                busy(&st->watch_writer, "connecting to the store");
                rc = fp_store_open(st->cfg.store_path, &s, &e);
            }
            if (rc == FP_ERR_OK && reg == NULL)
                rc = fp_registry_new(NULL, st->cfg.store_path, &reg, &e);
            idle(&st->watch_writer);
            if (rc != FP_ERR_OK) {
                fp_store_close(s);
                s = NULL;
                retry_at = mq_now_ms() + RETRY_MS;
                mq_log(st, MOSQ_LOG_WARNING,
                       "fleetpki: registration writer: store unavailable (%s): contacts "
                       "are dropped until it is back",
                       e.msg);
            }
        }
        if (s != NULL && reg != NULL) {
            busy(&st->watch_writer, "registering a device");
            rc = fp_registry_contact(reg, s, j.project, j.cert, NULL, &e);
            idle(&st->watch_writer);
            if (rc != FP_ERR_OK && rc != FP_ERR_STATE) {
                mq_log(st, MOSQ_LOG_WARNING, "fleetpki: device registration failed: %s", e.msg);
                if (rc == FP_ERR_STORE) {
                    fp_store_close(s);
                    s = NULL;
                }
            }
        }
        X509_free(j.cert);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    fp_registry_free(reg); /* writes the queued last-seen times */
    fp_store_close(s);
    return NULL;
}

int mq_sync_start(mq_state *st, fp_error *err)
{
    st->watch_poller.who = "poller";
    st->watch_writer.who = "registration writer";
    if ((st->jobs = calloc((size_t)st->cfg.queue_max, sizeof(*st->jobs))) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (pthread_create(&st->poller, NULL, poller, st) != 0)
        return fp_err_set(err, FP_ERR_INTERNAL, "cannot start the poller thread");
    st->poller_started = true;
    if (pthread_create(&st->writer, NULL, writer, st) != 0)
        return fp_err_set(err, FP_ERR_INTERNAL, "cannot start the writer thread");
    st->writer_started = true;
    return FP_ERR_OK;
}

void mq_sync_stop(mq_state *st)
{
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_broadcast(&st->pcv);
    pthread_cond_broadcast(&st->wcv);
    pthread_mutex_unlock(&st->mu);
    if (st->poller_started)
        pthread_join(st->poller, NULL);
    if (st->writer_started)
        pthread_join(st->writer, NULL);
    st->poller_started = st->writer_started = false;
    for (size_t i = 0; i < st->n_jobs; i++)
        X509_free(st->jobs[(st->head_job + i) % (size_t)st->cfg.queue_max].cert);
    st->n_jobs = 0;
    free(st->jobs);
    st->jobs = NULL;
}
