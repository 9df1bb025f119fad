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

int rev_crl_refresh(rev_state *st, fp_store *store, int i, fp_error *err)
{
    rev_crl *c = &st->crls[i];
    fp_crl_params p;
    fp_crl_info info;
    BIO *mem = BIO_new(BIO_s_mem());
    rev_blob *b = NULL, *old;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    BUF_MEM *bm = NULL;
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
    if ((rc = fp_crl_generate(store, &p, mem, &info, err)) != FP_ERR_OK)
        goto out;
    b = calloc(1, sizeof(*b));
    if (b == NULL || BIO_get_mem_ptr(mem, &bm) <= 0 || bm == NULL || bm->length == 0) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    /* take the buffer over instead of copying a CRL that may be 50 MB */
    b->data = (unsigned char *)bm->data;
    b->len = bm->length;
    bm->data = NULL;
    bm->length = bm->max = 0;
    b->this_update = info.this_update;
    b->next_update = info.next_update;
    b->number = info.number;
    if (!EVP_Digest(b->data, b->len, md, &mdlen, EVP_sha256(), NULL)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CRL digest");
        goto out;
    }
    fp_hex(md, 16, hex);
    snprintf(b->etag, sizeof(b->etag), "\"%.32s\"", hex);
    atomic_init(&b->refs, 1);
    pthread_mutex_lock(&st->lock);
    old = c->current;
    c->current = b;
    pthread_mutex_unlock(&st->lock);
    rev_blob_put(old);
    fp_log(FP_LOG_INFO, "crl ca=%s number=%" PRId64 " entries=%" PRIu64 " bytes=%" PRIu64,
           c->ca_id, info.number, info.entries, info.der_len);
    b = NULL;
out:
    if (b != NULL) {
        OPENSSL_free(b->data);
        free(b);
    }
    BIO_free(mem);
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

static void *watcher(void *arg)
{
    rev_state *st = arg;
    int64_t last_renew = mono_ms(), renew_s = RENEW_CHECK_S;
    /* tests renew a signer while the server runs without waiting an hour */
    const char *env = getenv("FP_OCSP_RENEW_CHECK_S");

    if (env != NULL && atoi(env) > 0)
        renew_s = atoi(env);

    while (!nap(st, POLL_MS)) {
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
        pthread_mutex_lock(&st->lock);
        go = st->crl_dirty && (ms - st->last_change_ms >= POLL_MS ||
                               ms - st->dirty_since_ms >= COALESCE_MAX_MS);
        if (go)
            st->crl_dirty = false;
        pthread_mutex_unlock(&st->lock);
        for (int i = 0; i < st->n_crls; i++)
            if ((go || crl_due(st, i, fp_now())) &&
                rev_crl_refresh(st, st->crl_store, i, &err) != FP_ERR_OK)
                fp_log(FP_LOG_WARN, "CRL of %s: %s", st->crls[i].ca_id, fp_err_str(&err));
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
