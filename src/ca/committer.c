/*
 * committer.c - the group-commit writer thread.  See committer.h.
 *
 * Queue: a mutex-protected singly linked list and a condition variable.
 * The writer sleeps until the list is non-empty, detaches up to
 * FP_COMMIT_BATCH jobs, releases the lock, commits them, then runs the
 * callbacks.  While a batch is being fsync'd the next one accumulates,
 * which is what makes the batch size adapt to load with no timer.
 *
 * Store upkeep: the committing handle is opened with the committer role
 * (FP_STORE_ROLE_COMMITTER), and a second handle on a thread of its own
 * runs fp_store_maintain whenever batches were committed, so that upkeep
 * that would stall every waiting enrollment never runs on the writer
 * (sqlite_store.c explains what that is for SQLite: its checkpoints).
 */
#define _POSIX_C_SOURCE 200809L
#include "committer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"

typedef struct job {
    fp_cert_rec rec;
    char *actor, *action, *detail;
    char *token_id; /* spend one use in the certificate's transaction, or NULL */
    fp_commit_done done;
    void *arg;
    struct job *next;
} job;

#define CHECKPOINT_INTERVAL_MS 200

struct fp_committer {
    fp_store *store;
    fp_store *ckpt_store;
    pthread_t thread, ckpt_thread;
    bool ckpt_started;
    long test_delay_ms; /* FLEETPKI_TEST_COMMIT_DELAY_MS: tests only */
    unsigned long committed; /* batches, for the checkpointer */
    pthread_mutex_t mu;
    pthread_cond_t cv, ckpt_cv;
    job *head, *tail;
    size_t queued;
    bool stopping;
    fp_cert_rec recs[FP_COMMIT_BATCH]; /* writer thread only */
    fp_audit_event evs[FP_COMMIT_BATCH];
    const char *tokens[FP_COMMIT_BATCH];
    fp_error results[FP_COMMIT_BATCH];
};

static void job_free(job *j)
{
    fp_cert_rec_clear(&j->rec);
    free(j->actor);
    free(j->action);
    free(j->detail);
    free(j->token_id);
    free(j);
}

static void commit_batch(fp_committer *c, job **jobs, size_t n)
{
    fp_cert_rec *recs = c->recs;
    fp_audit_event *evs = c->evs;
    const char **tokens = c->tokens;
    fp_error *res = c->results;
    int64_t now = fp_now();
    fp_error err = {0};
    int rc;

    for (size_t i = 0; i < n; i++) {
        recs[i] = jobs[i]->rec;
        evs[i] = (fp_audit_event){jobs[i]->actor, jobs[i]->action, jobs[i]->rec.serial,
                                  jobs[i]->detail, jobs[i]->rec.project};
        tokens[i] = jobs[i]->token_id;
    }
    {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = fp_store_cert_insert_spend(c->store, recs, evs, tokens, now, res, n, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fp_log(FP_LOG_DEBUG, "commit batch n=%zu ms=%.2f", n,
               (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    }
    if (rc == FP_ERR_DUPLICATE && n > 1) {
        /* find the colliding one(s): rare, so one transaction each is
         * fine; each still pays with its token in its own transaction */
        for (size_t i = 0; i < n; i++) {
            /* res[i] gets the job's fate, whatever the call returns */
            fp_store_cert_insert_spend(c->store, &recs[i], &evs[i], &tokens[i], now, &res[i], 1,
                                       NULL);
            jobs[i]->done(jobs[i]->arg, res[i].code, &res[i]);
        }
        return;
    }
    if (rc != FP_ERR_OK)
        fp_log(FP_LOG_ERROR, "group commit of %zu certificates failed: %s", n, err.msg);
    /* on failure every result holds the batch's error; on success each
     * says whether its token paid (refused ones were not stored) */
    for (size_t i = 0; i < n; i++)
        jobs[i]->done(jobs[i]->arg, res[i].code, &res[i]);
}

static void *writer_main(void *arg)
{
    fp_committer *c = arg;
    job *batch[FP_COMMIT_BATCH];

    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&c->mu);
        while (c->head == NULL && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->head == NULL && c->stopping) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        while (c->head != NULL && n < FP_COMMIT_BATCH) {
            batch[n++] = c->head;
            c->head = c->head->next;
        }
        if (c->head == NULL)
            c->tail = NULL;
        c->queued -= n;
        pthread_mutex_unlock(&c->mu);
        if (c->test_delay_ms > 0) {
            /* lets tests hold requests in flight deterministically */
            struct timespec d = {c->test_delay_ms / 1000, (c->test_delay_ms % 1000) * 1000000L};
            nanosleep(&d, NULL);
        }
        commit_batch(c, batch, n);
        for (size_t i = 0; i < n; i++)
            job_free(batch[i]);
        pthread_mutex_lock(&c->mu);
        c->committed++;
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

static void *checkpoint_main(void *arg)
{
    fp_committer *c = arg;
    unsigned long seen = 0;

    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += CHECKPOINT_INTERVAL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->ckpt_cv, &c->mu, &until);
        if (c->committed != seen && !c->stopping) {
            fp_error err = {0};
            seen = c->committed;
            pthread_mutex_unlock(&c->mu);
            if (fp_store_maintain(c->ckpt_store, &err) != FP_ERR_OK)
                fp_log(FP_LOG_WARN, "store upkeep: %s", err.msg);
            pthread_mutex_lock(&c->mu);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Release what start set up, once no thread runs any more. */
static void committer_free(fp_committer *c)
{
    fp_store_close(c->store);
    fp_store_close(c->ckpt_store);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->ckpt_cv);
    free(c);
}

int fp_committer_start(const char *store_path, fp_committer **out, fp_error *err)
{
    fp_committer *c = calloc(1, sizeof(*c));
    int rc;

    *out = NULL;
    if (c == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_cond_init(&c->ckpt_cv, NULL);
    if (getenv("FLEETPKI_TEST_COMMIT_DELAY_MS") != NULL) {
        c->test_delay_ms = strtol(getenv("FLEETPKI_TEST_COMMIT_DELAY_MS"), NULL, 10);
        if (c->test_delay_ms < 0 || c->test_delay_ms > 10000)
            c->test_delay_ms = 0;
    }
    if ((rc = fp_store_open_role(store_path, FP_STORE_ROLE_COMMITTER, &c->store, err)) !=
            FP_ERR_OK ||
        (rc = fp_store_open(store_path, &c->ckpt_store, err)) != FP_ERR_OK)
        goto fail;
    if (pthread_create(&c->ckpt_thread, NULL, checkpoint_main, c) != 0) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "cannot start the checkpoint thread");
        goto fail;
    }
    c->ckpt_started = true;
    if (pthread_create(&c->thread, NULL, writer_main, c) != 0) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "cannot start the commit thread");
        goto fail;
    }
    *out = c;
    return FP_ERR_OK;
fail:
    if (c->ckpt_started) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_signal(&c->ckpt_cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->ckpt_thread, NULL);
    }
    committer_free(c);
    return rc;
}

int fp_committer_submit(fp_committer *c, fp_cert_rec *rec, const char *actor,
                        const char *action, const char *detail, const char *token_id,
                        fp_commit_done done, void *arg)
{
    job *j = calloc(1, sizeof(*j));
    fp_error err = {0};

    if (j != NULL) {
        j->rec = *rec;
        memset(rec, 0, sizeof(*rec));
        j->actor = strdup(actor ? actor : "");
        j->action = strdup(action ? action : "cert.issue");
        j->detail = strdup(detail ? detail : "");
        j->token_id = token_id && token_id[0] ? strdup(token_id) : NULL;
    }
    if (j == NULL || j->actor == NULL || j->action == NULL || j->detail == NULL ||
        (token_id && token_id[0] && j->token_id == NULL)) {
        if (j != NULL)
            job_free(j);
        else
            fp_cert_rec_clear(rec);
        fp_err_set(&err, FP_ERR_NOMEM, NULL);
        done(arg, FP_ERR_NOMEM, &err);
        return FP_ERR_NOMEM;
    }
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    c->queued++;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return FP_ERR_OK;
}

size_t fp_committer_backlog(fp_committer *c)
{
    size_t n;
    pthread_mutex_lock(&c->mu);
    n = c->queued;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void fp_committer_stop(fp_committer *c)
{
    fp_error err = {0};
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_cond_signal(&c->ckpt_cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_join(c->ckpt_thread, NULL);
    /* leave a short log behind */
    if (fp_store_maintain(c->ckpt_store, &err) != FP_ERR_OK)
        fp_log(FP_LOG_WARN, "store upkeep: %s", err.msg);
    committer_free(c);
}
