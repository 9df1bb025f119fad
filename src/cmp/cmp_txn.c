/*
 * cmp_txn.c - CMP transactions across requests and workers.
 *
 * OpenSSL 3.0's server context holds ONE transaction: its transactionID,
 * the nonce it last sent, the certReqId and whether a certConf is due
 * (crypto/cmp/cmp_server.c).  Any new ir/cr/p10cr/kur/rr/genm on that
 * context silently drops the previous transaction ("Assuming that last
 * transaction ... got aborted").  With many clients per worker, and a
 * certConf that may arrive on another connection (another worker), that
 * is not enough.  So a transaction that stays open after its answer (a
 * certificate awaiting certConf, a request held for approval) takes its
 * OpenSSL server context into this table, keyed by transactionID; the
 * continuation (certConf, pollReq) runs on exactly that context, so
 * OpenSSL's own checks of transactionID, recipNonce (RFC 4210 5.1.1) and
 * certReqId keep working.
 *
 * Replay (RFC 9483 3.5, 4210 5.1.1): a finished transaction's ID is
 * remembered for CMP_REPLAY_SECONDS; a new request reusing an ID that is
 * open or remembered is refused with transactionIdInUse.  Requests whose
 * messageTime is further than CMP_MSGTIME_SKEW from our clock are refused
 * (cmp_handle.c), so a captured request cannot be replayed after its ID
 * is forgotten.  A continuation replayed inside its transaction fails
 * OpenSSL's recipNonce check (the nonce we sent changes per message).
 *
 * Confirmation (RFC 4210 5.3.18, RFC 9483 4.1.1): a certificate sent
 * without implicit confirmation waits for certConf for [server]
 * cmp_confirm_wait_seconds; the sweeper thread (one, started here)
 * revokes it when the wait ends unconfirmed, with its own store handle.
 *
 * Memory: at most CMP_MAX_TXNS records; when full, the oldest remembered
 * (finished) one is forgotten first; with only open ones, new
 * transactions are refused (systemUnavail) until some end.
 */
#define _POSIX_C_SOURCE 200809L
#include "cmp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "../common/util.h"

#define NBUCKETS 65536

struct cmp_txns {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cmp_txn *buckets[NBUCKETS];
    cmp_txn *head, *tail; /* every record, oldest first */
    size_t count;
    uint64_t seed;
    cmp_state *st;
    fp_store *store; /* the sweeper's */
    pthread_t thread;
    bool running, stop;
};

static uint64_t tid_hash(const cmp_txns *t, const unsigned char *tid, int len)
{
    uint64_t h = t->seed ^ 0xcbf29ce484222325ULL;
    for (int i = 0; i < len; i++) {
        h ^= tid[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static cmp_txn **slot_of(cmp_txns *t, const unsigned char *tid, int len)
{
    cmp_txn **pp = &t->buckets[tid_hash(t, tid, len) % NBUCKETS];
    while (*pp != NULL && !((*pp)->tid_len == len && !memcmp((*pp)->tid, tid, (size_t)len)))
        pp = &(*pp)->hnext;
    return pp;
}

static void unlink_rec(cmp_txns *t, cmp_txn *tx)
{
    cmp_txn **pp = slot_of(t, tx->tid, tx->tid_len);
    if (*pp == tx)
        *pp = tx->hnext;
    if (tx->lprev)
        tx->lprev->lnext = tx->lnext;
    else
        t->head = tx->lnext;
    if (tx->lnext)
        tx->lnext->lprev = tx->lprev;
    else
        t->tail = tx->lprev;
    t->count--;
}

void cmp_txn_release(cmp_txn *tx)
{
    OSSL_CMP_SRV_CTX_free(tx->srv);
    X509_free(tx->signer);
    X509_free(tx->cert);
    OSSL_CMP_MSG_free(tx->certreq);
    tx->srv = NULL;
    tx->signer = NULL;
    tx->cert = NULL;
    tx->certreq = NULL;
}

int cmp_txn_begin(cmp_txns *t, const unsigned char *tid, int len, cmp_txn **out)
{
    cmp_txn **pp, *tx = NULL, *old = NULL;
    int rc = FP_ERR_OK;

    *out = NULL;
    if (len <= 0 || len > CMP_TID_MAX)
        return FP_ERR_ARG;
    pthread_mutex_lock(&t->mu);
    pp = slot_of(t, tid, len);
    if (*pp != NULL) {
        rc = FP_ERR_EXISTS;
        goto out;
    }
    if (t->count >= CMP_MAX_TXNS) {
        for (old = t->head; old != NULL && old->state != CMP_TX_DONE; old = old->lnext)
            ;
        if (old == NULL) {
            rc = FP_ERR_TOO_LARGE;
            goto out;
        }
        unlink_rec(t, old);
        pp = slot_of(t, tid, len); /* the chain may have changed */
    }
    if ((tx = calloc(1, sizeof(*tx))) == NULL) {
        rc = FP_ERR_NOMEM;
        goto out;
    }
    memcpy(tx->tid, tid, (size_t)len);
    tx->tid_len = len;
    tx->state = CMP_TX_BUSY;
    tx->label = -1;
    *pp = tx;
    tx->lprev = t->tail;
    if (t->tail)
        t->tail->lnext = tx;
    else
        t->head = tx;
    t->tail = tx;
    t->count++;
    *out = tx;
out:
    pthread_mutex_unlock(&t->mu);
    free(old);
    return rc;
}

cmp_txn *cmp_txn_take(cmp_txns *t, const unsigned char *tid, int len, int label,
                      bool *other_label)
{
    cmp_txn *tx = NULL;
    bool taken = false;

    *other_label = false;
    if (len <= 0 || len > CMP_TID_MAX)
        return NULL;
    pthread_mutex_lock(&t->mu);
    tx = *slot_of(t, tid, len);
    if (tx != NULL && (tx->state == CMP_TX_CONFIRM || tx->state == CMP_TX_POLL) &&
        fp_now() < tx->deadline) {
        if (tx->label == label) {
            tx->taken_state = tx->state;
            tx->state = CMP_TX_BUSY;
            taken = true;
        } else
            *other_label = true;
    }
    if (!taken)
        tx = NULL;
    pthread_mutex_unlock(&t->mu);
    return tx;
}

void cmp_txn_put(cmp_txns *t, cmp_txn *tx, int state, int64_t deadline)
{
    if (state == CMP_TX_DONE) {
        cmp_txn_release(tx);
        deadline = fp_now() + CMP_REPLAY_SECONDS;
    }
    pthread_mutex_lock(&t->mu);
    tx->state = state;
    tx->deadline = deadline;
    pthread_mutex_unlock(&t->mu);
}

/* ---- the sweeper ---- */

typedef struct expired {
    struct expired *next;
    cmp_txn *tx;
} expired;

static void revoke_unconfirmed(cmp_txns *t, cmp_txn *tx)
{
    fp_error err = {0};
    char tid[2 * CMP_TID_MAX + 1];

    fp_hex(tx->tid, (size_t)tx->tid_len, tid);
    /* RFC 4210 5.3.18 / RFC 9483 4.1.1: a certificate the EE never
     * confirmed must not stay valid */
    if (fp_ca_revoke(t->store, tx->serial, FP_REASON_CESSATION, "server:cmp-confirm-timeout",
                     &err) != FP_ERR_OK)
        fp_log(FP_LOG_ERROR, "cmp: revoking unconfirmed %s (transaction %s): %s", tx->serial, tid,
               err.msg);
    else
        fp_log(FP_LOG_INFO, "cmp: certificate %s revoked: no certConf within %d s (transaction %s)",
               tx->serial, t->st->confirm_wait, tid);
}

static void sweep(cmp_txns *t)
{
    expired *list = NULL;
    int64_t now = fp_now();

    pthread_mutex_lock(&t->mu);
    for (cmp_txn *tx = t->head, *next; tx != NULL; tx = next) {
        next = tx->lnext;
        if (tx->state == CMP_TX_BUSY || tx->deadline > now)
            continue;
        if (tx->state == CMP_TX_DONE) {
            unlink_rec(t, tx);
            free(tx);
            continue;
        }
        /* an open transaction whose wait ended: its work is done outside
         * the lock; the record stays, remembered, so the ID is not reused */
        expired *e = malloc(sizeof(*e));
        if (e == NULL)
            break;
        tx->state = CMP_TX_BUSY;
        e->tx = tx;
        e->next = list;
        list = e;
    }
    pthread_mutex_unlock(&t->mu);
    while (list != NULL) {
        expired *e = list;
        list = e->next;
        if (e->tx->cert != NULL && !e->tx->confirmed && e->tx->serial[0])
            revoke_unconfirmed(t, e->tx);
        cmp_txn_put(t, e->tx, CMP_TX_DONE, 0);
        free(e);
    }
}

static void *sweeper(void *arg)
{
    cmp_txns *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->mu);
        sweep(t);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int cmp_txns_new(cmp_state *st, cmp_txns **out, fp_error *err)
{
    cmp_txns *t = calloc(1, sizeof(*t));
    int rc;

    *out = NULL;
    if (t == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->st = st;
    if (RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1) {
        cmp_txns_free(t);
        return fp_err_set(err, FP_ERR_CRYPTO, "RAND_bytes");
    }
    if ((rc = fp_config_store_open(st->cfg, &t->store, err)) != FP_ERR_OK) {
        cmp_txns_free(t);
        return rc;
    }
    if (pthread_create(&t->thread, NULL, sweeper, t) != 0) {
        cmp_txns_free(t);
        return fp_err_set(err, FP_ERR_INTERNAL, "cannot start the CMP sweeper thread");
    }
    t->running = true;
    *out = t;
    return FP_ERR_OK;
}

void cmp_txns_free(cmp_txns *t)
{
    if (t == NULL)
        return;
    if (t->running) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
    }
    for (cmp_txn *tx = t->head, *next; tx != NULL; tx = next) {
        next = tx->lnext;
        cmp_txn_release(tx);
        free(tx);
    }
    fp_store_close(t->store);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
