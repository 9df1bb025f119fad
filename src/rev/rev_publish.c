/* rev_publish.c - the revocation publisher thread; see rev.h. */
#define _POSIX_C_SOURCE 200809L
#include "rev.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/buffer.h>
#include <openssl/evp.h>

#include "../common/util.h"
#include "../ocsp/ocsp_setup.h"

#define POLL_MS 200
#define COALESCE_MAX_MS 2000 /* a burst of revocations republishes at least this often */
#define RENEW_CHECK_S 3600

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rev_blob_put(rev_blob *b)
{
    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    OPENSSL_free(b->data);
    free(b);
}

rev_blob *rev_crl_get(rev_state *st, const char *ca_id)
{
    rev_blob *b = NULL;
    pthread_mutex_lock(&st->lock);
    for (int i = 0; i < st->n_crls; i++)
        if (!strcmp(st->crls[i].ca_id, ca_id) && (b = st->crls[i].current) != NULL)
            atomic_fetch_add(&b->refs, 1);
    pthread_mutex_unlock(&st->lock);
    return b;
}

/* Serve der (copied) as crls[i]'s current CRL. */
static int install(rev_state *st, int i, const unsigned char *der, size_t len, int64_t number,
                   int64_t this_update, int64_t next_update, fp_error *err)
{
    rev_crl *c = &st->crls[i];
    rev_blob *b = calloc(1, sizeof(*b)), *old;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    if (b == NULL || (b->data = OPENSSL_malloc(len > 0 ? len : 1)) == NULL) {
        free(b);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    memcpy(b->data, der, len);
    b->len = len;
    b->this_update = this_update;
    b->next_update = next_update;
    b->number = number;
    if (!EVP_Digest(b->data, b->len, md, &mdlen, EVP_sha256(), NULL)) {
        OPENSSL_free(b->data);
        free(b);
        return fp_err_set(err, FP_ERR_CRYPTO, "CRL digest");
    }
    fp_hex(md, 16, hex);
    snprintf(b->etag, sizeof(b->etag), "\"%.32s\"", hex);
    atomic_init(&b->refs, 1);
    pthread_mutex_lock(&st->lock);
    old = c->current;
    c->current = b;
    pthread_mutex_unlock(&st->lock);
    rev_blob_put(old);
    return FP_ERR_OK;
}

/* Generate crls[i] now, serve it, and publish it for the other nodes. */
int rev_crl_refresh(rev_state *st, fp_store *store, int i, fp_error *err)
{
    rev_crl *c = &st->crls[i];
    fp_crl_params p;
    fp_crl_info info;
    fp_crl_pub pub;
    BIO *mem = BIO_new(BIO_s_mem());
    BUF_MEM *bm = NULL;
    int64_t seq = 0;
    int rc;

    if (c->uploaded) { /* signed offline: never re-signed, re-read on change */
        BIO_free(mem);
        return rev_crl_upload_refresh(st, i, err);
    }
    if (mem == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    memset(&p, 0, sizeof(p));
    p.ca_id = c->ca_id;
    p.issuer = c->cert;
    p.signer = c->signer;
    p.next_update_hours = st->cfg->crl_next_update_hours;
    p.spool_dir = st->cfg->dir;
    /* read before the entries: the CRL lists at least every change up to seq */
    if ((rc = fp_store_status_seq(store, &seq, err)) != FP_ERR_OK ||
        (rc = fp_crl_generate(store, &p, mem, &info, err)) != FP_ERR_OK)
        goto out;
    if (BIO_get_mem_ptr(mem, &bm) <= 0 || bm == NULL || bm->length == 0) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = install(st, i, (const unsigned char *)bm->data, bm->length, info.number,
                      info.this_update, info.next_update, err)) != FP_ERR_OK)
        goto out;
    fp_log(FP_LOG_INFO, "crl ca=%s number=%" PRId64 " entries=%" PRIu64 " bytes=%" PRIu64,
           c->ca_id, info.number, info.entries, info.der_len);
    pub = (fp_crl_pub){info.number, seq, info.this_update, info.next_update,
                       (unsigned char *)bm->data, bm->length};
    if (fp_store_crl_put(store, c->ca_id, &pub, err) != FP_ERR_OK)
        fp_log(FP_LOG_WARN, "crl ca=%s: publishing it for other nodes: %s", c->ca_id,
               fp_err_str(err)); /* served here all the same */
out:
    BIO_free(mem);
    return rc;
}

/* The published CRL of crls[i] if it covers need_seq and is not due;
 * *used says whether it was. */
static int use_published(rev_state *st, fp_store *store, int i, int64_t need_seq, bool *used,
                         fp_error *err)
{
    fp_crl_pub pub;
    int64_t now = fp_now(), cur = -1;
    int rc;

    *used = false;
    rc = fp_store_crl_get(store, st->crls[i].ca_id, &pub, err);
    if (rc == FP_ERR_NOT_FOUND)
        return FP_ERR_OK;
    if (rc != FP_ERR_OK)
        return rc;
    if (pub.seq >= need_seq && now < pub.this_update + (pub.next_update - pub.this_update) / 2) {
        pthread_mutex_lock(&st->lock);
        if (st->crls[i].current != NULL)
            cur = st->crls[i].current->number;
        pthread_mutex_unlock(&st->lock);
        rc = pub.number > cur ? install(st, i, pub.der, pub.der_len, pub.number, pub.this_update,
                                        pub.next_update, err)
                              : FP_ERR_OK;
        if (rc == FP_ERR_OK && pub.number > cur)
            fp_log(FP_LOG_INFO, "crl ca=%s number=%" PRId64 " published by another node",
                   st->crls[i].ca_id, pub.number);
        *used = rc == FP_ERR_OK;
    }
    free(pub.der);
    return rc;
}

int rev_crl_sync(rev_state *st, fp_store *store, int i, int64_t need_seq, bool *busy,
                 fp_error *err)
{
    const char *ca = st->crls[i].ca_id;
    bool used = false, got = false;
    int rc;

    *busy = false;
    if ((rc = use_published(st, store, i, need_seq, &used, err)) != FP_ERR_OK || used)
        return rc;
    /* one node at a time regenerates a CA's CRL; the others take its bytes */
    if ((rc = fp_store_crl_lock(store, ca, true, &got, err)) != FP_ERR_OK)
        return rc;
    if (!got) {
        *busy = true;
        return FP_ERR_OK;
    }
    /* again under the lock: the holder before us may have just published */
    if ((rc = use_published(st, store, i, need_seq, &used, err)) == FP_ERR_OK && !used)
        rc = rev_crl_refresh(st, store, i, err);
    fp_store_crl_lock(store, ca, false, &got, NULL);
    return rc;
}

/* Does crls[i] need regenerating before its nextUpdate? */
static bool crl_due(rev_state *st, int i, int64_t now)
{
    bool due;
    pthread_mutex_lock(&st->lock);
    due = st->crls[i].uploaded || st->crls[i].current == NULL ||
          now >= st->crls[i].current->this_update +
                     (st->crls[i].current->next_update - st->crls[i].current->this_update) / 2;
    pthread_mutex_unlock(&st->lock);
    return due;
}

/* Sleep until ms from now or stop; true when stopping. */
static bool nap(rev_state *st, int ms)
{
    struct timespec until;
    bool stop;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)ms * 1000000L;
    while (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->lock);
    while (!st->stopping && pthread_cond_timedwait(&st->wake, &st->lock, &until) != ETIMEDOUT)
        ;
    stop = st->stopping;
    pthread_mutex_unlock(&st->lock);
    return stop;
}

static bool is_stopping(rev_state *st)
{
    bool stop;
    pthread_mutex_lock(&st->lock);
    stop = st->stopping;
    pthread_mutex_unlock(&st->lock);
    return stop;
}

/* Until the next look at the change log: a store that announces changes
 * (PostgreSQL's NOTIFY, from any node) ends the wait as soon as one
 * commits; otherwise, or when the database is down, a plain nap.  Either
 * way at most POLL_MS, so polling remains the fallback.  True: stop. */
static bool wait_change(rev_state *st)
{
    bool waited = false, woken = false;
    fp_error err = {0};

    if (fp_store_status_wait(st->store, POLL_MS, &waited, &woken, &err) != FP_ERR_OK) {
        fp_log(FP_LOG_WARN, "revocation watch: %s", fp_err_str(&err));
        waited = false;
    }
    return waited ? is_stopping(st) : nap(st, POLL_MS);
}

static void *watcher(void *arg)
{
    rev_state *st = arg;
    int64_t last_renew = mono_ms(), renew_s = RENEW_CHECK_S;
    /* tests renew a signer while the server runs without waiting an hour */
    const char *env = getenv("FP_OCSP_RENEW_CHECK_S");

    if (env != NULL && atoi(env) > 0)
        renew_s = atoi(env);

    while (!wait_change(st)) {
        bool changed = false;
        fp_error err = {0};
        int64_t ms;

        if (fp_ocsp_watch(st->ocsp, st->store, &st->seq, &changed, &err) != FP_ERR_OK)
            fp_log(FP_LOG_WARN, "revocation watch: %s", fp_err_str(&err));
        ms = mono_ms();
        if (changed)
            fp_log(FP_LOG_INFO, "revocation status changed (change log at %" PRId64 ")", st->seq);
        if (changed) {
            pthread_mutex_lock(&st->lock);
            if (!st->crl_dirty)
                st->dirty_since_ms = ms;
            st->crl_dirty = true;
            st->dirty_seq = st->seq;
            st->last_change_ms = ms;
            pthread_mutex_unlock(&st->lock);
        }
        if (ms - last_renew >= renew_s * 1000) {
            last_renew = ms;
            for (int i = 0; i < fp_caset_count(st->app->cas); i++) {
                fp_ca *ca = fp_caset_at(st->app->cas, i);
                bool renewed = false;
                if (fp_ocsp_signer_check(st->cfg, ca, st->store, st->pass, st->passlen, fp_now(),
                                         st->ocsp, &renewed, &err) != FP_ERR_OK)
                    fp_log(FP_LOG_WARN, "OCSP signer renewal of %s: %s", fp_ca_id(ca),
                           fp_err_str(&err));
                else if (renewed)
                    fp_log(FP_LOG_INFO, "OCSP signer certificate renewed (CA %s)", fp_ca_id(ca));
            }
        }
    }
    return NULL;
}

static void *crl_thread(void *arg)
{
    rev_state *st = arg;

    while (!nap(st, POLL_MS)) {
        fp_error err = {0};
        int64_t ms = mono_ms();
        bool go;

        /* coalesce: publish once changes pause, or when a burst runs long */
        int64_t need = 0;
        bool retry = false;

        pthread_mutex_lock(&st->lock);
        go = st->crl_dirty && (ms - st->last_change_ms >= POLL_MS ||
                               ms - st->dirty_since_ms >= COALESCE_MAX_MS);
        if (go)
            st->crl_dirty = false;
        need = st->dirty_seq;
        pthread_mutex_unlock(&st->lock);
        for (int i = 0; i < st->n_crls; i++) {
            bool busy = false;
            if (!(go || crl_due(st, i, fp_now())))
                continue;
            if (rev_crl_sync(st, st->crl_store, i, need, &busy, &err) != FP_ERR_OK) {
                fp_log(FP_LOG_WARN, "CRL of %s: %s", st->crls[i].ca_id, fp_err_str(&err));
                retry = true;
            }
            retry = retry || busy;
        }
        if (retry) {
            /* another node is regenerating (or the store failed): look
             * again at the next tick for what it publishes */
            pthread_mutex_lock(&st->lock);
            if (!st->crl_dirty)
                st->dirty_since_ms = ms;
            st->crl_dirty = true;
            pthread_mutex_unlock(&st->lock);
        }
    }
    return NULL;
}

int rev_publish_start(rev_state *st, fp_error *err)
{
    if (pthread_create(&st->watcher, NULL, watcher, st) != 0)
        return fp_err_set(err, FP_ERR_INTERNAL, "cannot start the revocation watcher");
    if (pthread_create(&st->crl_thread, NULL, crl_thread, st) != 0) {
        pthread_mutex_lock(&st->lock);
        st->stopping = true;
        pthread_cond_broadcast(&st->wake);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->watcher, NULL);
        return fp_err_set(err, FP_ERR_INTERNAL, "cannot start the CRL publisher");
    }
    st->threads_started = true;
    return FP_ERR_OK;
}

void rev_publish_stop(rev_state *st)
{
    if (!st->threads_started)
        return;
    pthread_mutex_lock(&st->lock);
    st->stopping = true;
    pthread_cond_broadcast(&st->wake);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->watcher, NULL);
    pthread_join(st->crl_thread, NULL);
    st->threads_started = false;
}
