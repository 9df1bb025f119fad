/*
 * committer.c - the group-commit writer thread.  See committer.h.
 *
 * Queue: a mutex-protected singly linked list and a condition variable.
 * The writer sleeps until the list is non-empty, detaches up to
 * FP_COMMIT_BATCH jobs, releases the lock, commits them, then runs the
 * callbacks.  While a batch is being fsync'd the next one accumulates,
 * which is what makes the batch size adapt to load with no timer.
 */
#define _POSIX_C_SOURCE 200809L
#include "committer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

typedef struct job {
    fp_cert_rec rec;
    char *actor, *action, *detail;
    fp_commit_done done;
    void *arg;
    struct job *next;
} job;

struct fp_committer {
    fp_store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    size_t queued;
    bool stopping;
    fp_cert_rec recs[FP_COMMIT_BATCH]; /* writer thread only */
    fp_audit_event evs[FP_COMMIT_BATCH];
};

static void job_free(job *j)
{
    fp_cert_rec_clear(&j->rec);
    free(j->actor);
    free(j->action);
    free(j->detail);
    free(j);
}

static void commit_batch(fp_committer *c, job **jobs, size_t n)
{
    fp_cert_rec *recs = c->recs;
    fp_audit_event *evs = c->evs;
    fp_error err = {0};
    int rc;

    for (size_t i = 0; i < n; i++) {
        recs[i] = jobs[i]->rec;
        evs[i] = (fp_audit_event){jobs[i]->actor, jobs[i]->action, jobs[i]->rec.serial,
                                  jobs[i]->detail};
    }
    rc = fp_store_cert_insert(c->store, recs, evs, n, &err);
    if (rc == FP_ERR_DUPLICATE && n > 1) {
        /* find the colliding one(s): rare, so one transaction each is fine */
        for (size_t i = 0; i < n; i++) {
            fp_error e1 = {0};
            int r1 = fp_store_cert_insert(c->store, &recs[i], &evs[i], 1, &e1);
            jobs[i]->done(jobs[i]->arg, r1, &e1);
        }
        return;
    }
    if (rc != FP_ERR_OK)
        fp_log(FP_LOG_ERROR, "group commit of %zu certificates failed: %s", n, err.msg);
    for (size_t i = 0; i < n; i++)
        jobs[i]->done(jobs[i]->arg, rc, &err);
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
        commit_batch(c, batch, n);
        for (size_t i = 0; i < n; i++)
            job_free(batch[i]);
    }
    return NULL;
}

int fp_committer_start(const char *store_path, fp_committer **out, fp_error *err)
{
    fp_committer *c = calloc(1, sizeof(*c));
    int rc;

    *out = NULL;
    if (c == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if ((rc = fp_store_open(store_path, &c->store, err)) != FP_ERR_OK) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thread, NULL, writer_main, c) != 0) {
        fp_store_close(c->store);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return fp_err_set(err, FP_ERR_INTERNAL, "cannot start the commit thread");
    }
    *out = c;
    return FP_ERR_OK;
}

int fp_committer_submit(fp_committer *c, fp_cert_rec *rec, const char *actor,
                        const char *action, const char *detail,
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
    }
    if (j == NULL || j->actor == NULL || j->action == NULL || j->detail == NULL) {
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
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    fp_store_close(c->store);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
