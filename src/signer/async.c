/*
 * async.c - a worker thread's runner of signing jobs; see async.h.
 *
 * A paused job waits either for its answer's descriptor (the provider put
 * it in the job's wait context) or, with no descriptor, for one of the
 * thread's signer channels to come back (rkey.h FP_RKEY_WAIT): such jobs
 * queue here and one is resumed each time a signature finishes.  A
 * channel is busy only while a job of this very thread has a request out
 * on it, so a waiting job always has a finishing one ahead of it.
 */
#define _GNU_SOURCE
#include "async.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/async.h>
#include <openssl/err.h>

#include "../ca/signer.h"
#include "../common/util.h"

typedef struct sa_op sa_op;

struct sa_op {
    fp_sasync *sa;
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *wc;
    struct event *ev;
    int fd;             /* what ev watches; -1: none yet */
    bool waiting;       /* paused without a descriptor: in the wait queue */
    fp_sasync_call call;
    void *carg;
    fp_sasync_done done;
    void *darg;
    int rc;
    fp_error err;
    sa_op *prev, *next; /* every op not done */
    sa_op *wnext;       /* the wait queue */
};

struct fp_sasync {
    struct event_base *base;
    sa_op *ops;
    sa_op *whead, *wtail;
    int pending;
    unsigned long n_run, n_paused, n_waited; /* for the exit log line */
};

static int job_main(void *arg)
{
    sa_op *op = *(sa_op **)arg;
    op->rc = op->call(op->carg, &op->err);
    /* the failure is in op->err; leave nothing in the thread's queue for
     * whatever runs next on it */
    ERR_clear_error();
    return 0;
}

static void step(sa_op *op);

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    step(arg);
}

static void unlink_op(fp_sasync *sa, sa_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        sa->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    sa->pending--;
}

/* One signature came back (or failed): its channel is free, so the first
 * job waiting for a channel tries again. */
static void wake_one(fp_sasync *sa)
{
    sa_op *w = sa->whead;
    if (w == NULL)
        return;
    sa->whead = w->wnext;
    if (sa->whead == NULL)
        sa->wtail = NULL;
    w->wnext = NULL;
    w->waiting = false;
    step(w);
}

static void complete(sa_op *op)
{
    fp_sasync *sa = op->sa;
    fp_error err = op->err;
    fp_sasync_done done = op->done;
    void *darg = op->darg;
    int rc = op->rc;

    unlink_op(sa, op);
    if (op->ev)
        event_free(op->ev);
    ASYNC_WAIT_CTX_free(op->wc);
    free(op);
    wake_one(sa);
    done(darg, rc, &err);
}

/* Paused: watch its descriptor, or queue it for a channel. */
static void watch(sa_op *op)
{
    fp_sasync *sa = op->sa;
    OSSL_ASYNC_FD fd = -1;
    size_t n = 0;

    if (ASYNC_WAIT_CTX_get_all_fds(op->wc, NULL, &n) && n == 1)
        ASYNC_WAIT_CTX_get_all_fds(op->wc, &fd, &n);
    if (fd < 0) {
        sa->n_waited++;
        op->waiting = true;
        op->wnext = NULL;
        if (sa->wtail)
            sa->wtail->wnext = op;
        else
            sa->whead = op;
        sa->wtail = op;
        return;
    }
    if (op->ev != NULL && op->fd != fd) {
        event_free(op->ev);
        op->ev = NULL;
    }
    op->fd = fd;
    if (op->ev == NULL)
        op->ev = event_new(sa->base, fd, EV_READ, on_ready, op);
    if (op->ev == NULL || event_add(op->ev, NULL) != 0) {
        /* cannot watch it: wait here (as the blocking path would) */
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        while (poll(&pf, 1, -1) < 0 && errno == EINTR)
            ;
        step(op);
    }
}

static void step(sa_op *op)
{
    int ret = 0;
    sa_op *self = op;

    switch (ASYNC_start_job(&op->job, op->wc, &ret, job_main, &self, sizeof(self))) {
    case ASYNC_PAUSE:
        op->sa->n_paused++;
        watch(op);
        return;
    case ASYNC_FINISH:
        complete(op);
        return;
    default:
        /* a resumed job cannot fail to start; say so rather than hang */
        op->rc = fp_err_set(&op->err, FP_ERR_INTERNAL, "signing job could not be resumed");
        complete(op);
        return;
    }
}

bool fp_sasync_run(fp_sasync *sa, fp_sasync_call call, void *carg, fp_sasync_done done,
                   void *darg)
{
    sa_op *op, *self;
    int ret = 0, r;

    if (sa == NULL || ASYNC_get_current_job() != NULL)
        return false;
    if ((op = calloc(1, sizeof(*op))) == NULL)
        return false;
    if ((op->wc = ASYNC_WAIT_CTX_new()) == NULL) {
        free(op);
        return false;
    }
    *op = (sa_op){.sa = sa, .wc = op->wc, .fd = -1, .call = call, .carg = carg, .done = done,
                  .darg = darg};
    op->next = sa->ops;
    if (sa->ops)
        sa->ops->prev = op;
    sa->ops = op;
    sa->pending++;
    self = op;
    r = ASYNC_start_job(&op->job, op->wc, &ret, job_main, &self, sizeof(self));
    sa->n_run++;
    if (r == ASYNC_PAUSE) {
        sa->n_paused++;
        watch(op);
        return true;
    }
    if (r == ASYNC_FINISH) {
        complete(op);
        return true;
    }
    /* ASYNC_NO_JOBS, ASYNC_ERR: nothing ran */
    unlink_op(sa, op);
    ASYNC_WAIT_CTX_free(op->wc);
    free(op);
    return false;
}

int fp_sasync_pending(const fp_sasync *sa)
{
    return sa ? sa->pending : 0;
}

static bool runner(void *rarg, fp_sasync_call call, void *carg, fp_sasync_done done, void *darg)
{
    return fp_sasync_run(rarg, call, carg, done, darg);
}

fp_sasync *fp_sasync_thread_begin(struct event_base *base)
{
    fp_sasync *sa = calloc(1, sizeof(*sa));
    if (sa == NULL)
        return NULL;
    sa->base = base;
    fp_signer_set_thread_runner(runner, sa);
    return sa;
}

void fp_sasync_thread_end(fp_sasync *sa)
{
    if (sa == NULL)
        return;
    fp_signer_set_thread_runner(NULL, NULL);
    /* the loop is over: wait for each answer here (continuations may
     * start nothing new: the runner is gone, they sign synchronously) */
    while (sa->ops != NULL) {
        struct pollfd pf[64];
        sa_op *who[64];
        int n = 0;

        for (sa_op *op = sa->ops; op != NULL && n < 64; op = op->next)
            if (!op->waiting && op->ev != NULL) {
                pf[n] = (struct pollfd){.fd = op->fd, .events = POLLIN};
                who[n++] = op;
            }
        if (n == 0) {
            if (sa->whead == NULL)
                break; /* cannot be: every op is watched or waiting */
            wake_one(sa);
            continue;
        }
        if (poll(pf, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++)
            if (pf[i].revents != 0) {
                event_del(who[i]->ev);
                step(who[i]); /* may free other ops: one at a time */
                break;
            }
    }
    if (sa->ops != NULL)
        fp_log(FP_LOG_ERROR, "%d signing jobs left unfinished at worker exit", sa->pending);
    /* tests read it: the signatures went out without the worker waiting */
    if (sa->n_run > 0)
        fp_log(FP_LOG_INFO, "signing jobs: %lu run, %lu pauses, %lu waits for a signer channel",
               sa->n_run, sa->n_paused, sa->n_waited);
    free(sa);
    ASYNC_cleanup_thread();
}
