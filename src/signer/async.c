/*
 * async.c - a worker thread's runner of signing jobs; see async.h.
 *
 * A paused job waits either for its answer's descriptor (the provider put
 * it in the job's wait context) or, with no descriptor, for one of the
 * thread's signer requests to come back (rkey.h FP_RKEY_WAIT): such jobs
 * queue here and one is resumed each time a signature finishes.  A
 * request is out only while a job of this very thread waits for it, so a
 * waiting job always has a finishing one ahead of it.
 *
 * Jobs waiting on one descriptor (a channel the signer answers in order,
 * privsep.c) queue on one watch, in the order they paused, which is the
 * order their requests went out: one persistent event per descriptor,
 * added when the first job waits on it and freed when the last one
 * resumes, so a signature costs no epoll_ctl of its own while others are
 * out on the same channel.  When it is readable the
 * jobs are resumed from the front until one finds its answer not in yet
 * (FP_RKEY_AGAIN): it goes back to the front and waits again.
 */
#define _GNU_SOURCE
#include "async.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/async.h>
#include <openssl/err.h>

#include "../ca/signer.h"
#include "../common/util.h"

typedef struct sa_op sa_op;
typedef struct sa_watch sa_watch;

typedef struct sa_defer {
    fp_sign_defer_fn fn;
    void *arg;
} sa_defer;

struct sa_op {
    fp_sasync *sa;
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *wc;
    sa_watch *w;        /* the watch it waits in; NULL: none */
    bool waiting;       /* paused without a descriptor: in the wait queue */
    bool resuming;      /* taken from the front of a watch and resumed */
    fp_sasync_call call;
    void *carg;
    fp_sasync_done done;
    void *darg;
    int rc;
    fp_error err;
    sa_op *prev, *next; /* every op not done */
    sa_op *wnext;       /* the wait queue, or its watch's queue */
};

struct sa_watch {
    fp_sasync *sa;
    int fd;
    struct event *ev;     /* persistent, EV_READ */
    sa_op *head, *tail;   /* the jobs waiting on fd, in pause order */
    bool again;           /* the resumed front job waits again */
    bool busy, forgotten; /* in watch_ready; forgotten meanwhile */
    sa_watch *next;
};

struct fp_sasync {
    struct event_base *base;
    sa_op *ops;
    sa_op *whead, *wtail;
    sa_watch *watches;
    int kept[8], nkept;   /* fp_signer_thread_keep_fd (ca/signer.h) */
    struct event *flush;  /* end of the turn: the deferred calls */
    sa_defer defer[8];    /* fp_signer_thread_defer's calls of this turn */
    int ndefer;
    int pending;
    int end_wait_ms;      /* fp_sasync_thread_end's bound */
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
    ASYNC_WAIT_CTX_free(op->wc);
    free(op);
    wake_one(sa);
    done(darg, rc, &err);
}

static void watch_free(sa_watch *w)
{
    fp_sasync *sa = w->sa;
    for (sa_watch **pp = &sa->watches; *pp != NULL; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    event_free(w->ev);
    free(w);
}

static bool is_kept(const fp_sasync *sa, int fd)
{
    for (int i = 0; i < sa->nkept; i++)
        if (sa->kept[i] == fd)
            return true;
    return false;
}

/* fd is readable: resume its jobs from the front while their answers are
 * in.  The watch goes before its last job resumes (a backend may close
 * the descriptor once no job waits on it; the next job on that number
 * gets a new watch, and libevent's changelist folds the two changes),
 * unless the backend keeps the descriptor (fp_signer_thread_keep_fd). */
static void watch_ready(sa_watch *w)
{
    if (w->head == NULL) {
        /* readable with no job waiting: EOF (a channel shut down) */
        watch_free(w);
        return;
    }
    for (;;) {
        sa_op *op = w->head;
        bool gone;
        w->head = op->wnext;
        if (w->head == NULL)
            w->tail = NULL;
        op->wnext = NULL;
        op->w = NULL;
        op->resuming = true;
        if ((gone = w->head == NULL && !is_kept(w->sa, w->fd))) {
            watch_free(w);
        } else {
            w->again = false;
            w->busy = true;
        }
        step(op); /* may free op, and start jobs that wait on w's descriptor */
        if (gone)
            return;
        w->busy = false;
        if (w->forgotten) {
            watch_free(w);
            return;
        }
        if (w->again || w->head == NULL)
            return; /* the front one's answer is not in yet: it waits again */
    }
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    watch_ready(arg);
}

/* Paused: wait on its descriptor's watch, or queue it for a channel. */
static void watch(sa_op *op)
{
    fp_sasync *sa = op->sa;
    OSSL_ASYNC_FD fd = -1;
    size_t n = 0;
    sa_watch *w;
    bool front = op->resuming;

    op->resuming = false;
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
    for (w = sa->watches; w != NULL && w->fd != fd; w = w->next)
        ;
    if (w == NULL) {
        if ((w = calloc(1, sizeof(*w))) != NULL &&
            ((w->ev = event_new(sa->base, fd, EV_READ | EV_PERSIST, on_watch, w)) == NULL ||
             event_add(w->ev, NULL) != 0)) {
            if (w->ev != NULL)
                event_free(w->ev);
            free(w);
            w = NULL;
        }
        if (w == NULL) {
            /* cannot watch it: wait here (as the blocking path would) */
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            while (poll(&pf, 1, -1) < 0 && errno == EINTR)
                ;
            step(op);
            return;
        }
        w->sa = sa;
        w->fd = fd;
        w->next = sa->watches;
        sa->watches = w;
    }
    op->w = w;
    if (front) {
        /* resumed from the front and its answer is not in: still first */
        op->wnext = w->head;
        w->head = op;
        if (w->tail == NULL)
            w->tail = op;
        w->again = true;
    } else {
        op->wnext = NULL;
        if (w->tail)
            w->tail->wnext = op;
        else
            w->head = op;
        w->tail = op;
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
    *op = (sa_op){.sa = sa, .wc = op->wc, .call = call, .carg = carg, .done = done,
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

/* ca/signer.h fp_signer_thread_keep_fd / forget_fd, for this runner */
static void fd_hook(void *rarg, int fd, bool keep)
{
    fp_sasync *sa = rarg;
    if (keep) {
        if (!is_kept(sa, fd) && sa->nkept < (int)(sizeof(sa->kept) / sizeof(sa->kept[0])))
            sa->kept[sa->nkept++] = fd;
        return;
    }
    for (int i = 0; i < sa->nkept; i++)
        if (sa->kept[i] == fd) {
            sa->kept[i] = sa->kept[--sa->nkept];
            break;
        }
    for (sa_watch *w = sa->watches; w != NULL; w = w->next)
        if (w->fd == fd) {
            if (w->busy)
                w->forgotten = true; /* watch_ready frees it when step returns */
            else
                watch_free(w);
            break;
        }
}

/* The calls deferred to the end of this turn (fp_signer_thread_defer). */
static void run_deferred(fp_sasync *sa)
{
    while (sa->ndefer > 0) {
        /* a call may defer again: into the emptied list, the next round */
        int n = sa->ndefer;
        sa_defer now[sizeof(sa->defer) / sizeof(sa->defer[0])];
        memcpy(now, sa->defer, sizeof(now[0]) * (size_t)n);
        sa->ndefer = 0;
        for (int i = 0; i < n; i++)
            now[i].fn(now[i].arg);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_deferred(arg);
}

static bool defer_hook(void *rarg, fp_sign_defer_fn fn, void *arg)
{
    fp_sasync *sa = rarg;
    for (int i = 0; i < sa->ndefer; i++)
        if (sa->defer[i].arg == arg && sa->defer[i].fn == fn)
            return true;
    if (sa->flush == NULL || sa->ndefer == (int)(sizeof(sa->defer) / sizeof(sa->defer[0])))
        return false;
    sa->defer[sa->ndefer].fn = fn;
    sa->defer[sa->ndefer].arg = arg;
    /* behind every callback already active in this turn */
    if (sa->ndefer++ == 0)
        event_active(sa->flush, EV_TIMEOUT, 0);
    return true;
}

static long long mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void fp_sasync_set_end_wait(fp_sasync *sa, int ms)
{
    if (sa != NULL)
        sa->end_wait_ms = ms < 0 ? 0 : ms;
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
    sa->end_wait_ms = FP_SASYNC_END_WAIT_MS;
    sa->flush = event_new(base, -1, 0, on_flush, sa); /* NULL: nothing deferred */
    fp_signer_set_thread_runner(runner, sa);
    fp_signer_set_thread_fd_hook(fd_hook);
    fp_signer_set_thread_defer_hook(defer_hook);
    return sa;
}

void fp_sasync_thread_end(fp_sasync *sa)
{
    if (sa == NULL)
        return;
    /* what this turn left to send goes out before the answers are waited for */
    run_deferred(sa);
    fp_signer_set_thread_runner(NULL, NULL);
    fp_signer_set_thread_fd_hook(NULL);
    fp_signer_set_thread_defer_hook(NULL);
    if (sa->flush != NULL)
        event_free(sa->flush);
    sa->flush = NULL;
    /* the loop is over: wait for each answer here (continuations may
     * start nothing new: the runner is gone, they sign synchronously),
     * for end_wait_ms at most: a signer that hangs (a stuck token, a
     * stopped process) must not keep the server from exiting.  Then the
     * descriptors still waited on are shut down: every job reads EOF and
     * ends with its backend's error (key-unavailable). */
    long long deadline = mono_ms() + sa->end_wait_ms;
    bool cut = false;
    while (sa->ops != NULL) {
        struct pollfd pf[64];
        sa_watch *who[64];
        int n = 0, left, r;

        for (sa_watch *w = sa->watches; w != NULL && n < 64; w = w->next)
            if (w->head != NULL) {
                pf[n] = (struct pollfd){.fd = w->fd, .events = POLLIN};
                who[n++] = w;
            }
        if (n == 0) {
            if (sa->whead == NULL)
                break; /* cannot be: every op is watched or waiting */
            wake_one(sa);
            continue;
        }
        left = cut ? -1 : (int)(deadline - mono_ms() > 0 ? deadline - mono_ms() : 0);
        if ((r = poll(pf, (nfds_t)n, left)) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (r == 0) {
            fp_log(FP_LOG_ERROR, "the signer did not answer %d signatures within %d ms of the "
                                 "worker's exit: they fail", sa->pending, sa->end_wait_ms);
            for (int i = 0; i < n; i++)
                shutdown(pf[i].fd, SHUT_RDWR);
            cut = true;
            continue;
        }
        for (int i = 0; i < n; i++)
            if (pf[i].revents != 0) {
                watch_ready(who[i]); /* may free other watches: one at a time */
                break;
            }
    }
    while (sa->watches != NULL)
        watch_free(sa->watches);
    if (sa->ops != NULL)
        fp_log(FP_LOG_ERROR, "%d signing jobs left unfinished at worker exit", sa->pending);
    /* tests read it: the signatures went out without the worker waiting */
    if (sa->n_run > 0)
        fp_log(FP_LOG_INFO, "signing jobs: %lu run, %lu pauses, %lu waits for a signer channel",
               sa->n_run, sa->n_paused, sa->n_waited);
    free(sa);
    ASYNC_cleanup_thread();
}
