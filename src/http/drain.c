/*
 * drain.c - running and stopping: the main thread starts the workers and
 * runs a tiny event_base of its own for SIGTERM/SIGINT and
 * fp_http_server_stop.
 *
 * Shutdown: the main thread posts the drain to every worker and waits for
 * them (join).  Each worker stops accepting, then keeps its loop running
 * until nothing of ITS OWN is in flight (bounded by DRAIN_SECONDS from
 * the signal): no request handed to a handler and unanswered (possibly
 * waiting for its commit, whose answer is posted back to this worker),
 * no answer queued and not yet written to its connection, and no request
 * partly received (a connection whose input got bytes since its last
 * dispatched request: see conn.c).  Requests that complete during the
 * drain are served, with "Connection: close".
 *
 * The decision is taken on the worker's own thread and ends its loop at
 * once (event_base_loopbreak): no request is read or dispatched after it,
 * so every request a handler got is answered and written, unless the
 * drain limit passed (then the log says how many were cut).  Deciding on
 * the main thread from shared counters lost answers two ways: an answer
 * counted done when queued was dropped unwritten, and a worker went on
 * dispatching requests between the decision and the end of its loop
 * (their certificates were committed by the module's stop, the answers
 * never sent).  Connections left open (idle keep-alive ones, requests
 * still in the kernel's buffers) are closed by evhttp_free (server.c,
 * worker.c): their clients see the connection closed unanswered.
 */
#define _GNU_SOURCE
#include "http_int.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <stdatomic.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "../common/util.h"

#define DRAIN_TICK_US 20000

void fp_http_server_stop(fp_http_server *srv)
{
    char c = 's';
    if (srv->stop_pipe[1] >= 0)
        (void)!write(srv->stop_pipe[1], &c, 1);
}

/* Worker thread: is anything of this worker still in flight? */
static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    fp_http_worker *w = arg;
    struct timeval tv = {0, DRAIN_TICK_US};
    long busy = w->inflight + w->n_unwritten + w->n_receiving;
    (void)fd;
    (void)what;

    if (busy > 0 && fp_http_mono_ns() < w->srv->drain_deadline) {
        evtimer_add(w->drain_ev, &tv);
        return;
    }
    if (busy > 0)
        fp_log(FP_LOG_WARN,
               "shutdown: %ld requests still in flight after %d s (worker %d: %ld unanswered, "
               "%ld answers not written, %ld partly received)",
               busy, DRAIN_SECONDS, w->index, w->inflight, w->n_unwritten, w->n_receiving);
    /* loopbreak, not loopexit: loopexit would still run what is active in
     * this turn of the loop, e.g. a read that dispatches a request */
    event_base_loopbreak(w->base);
}

/* Worker thread: the drain begins here. */
static void drain_begin(void *arg)
{
    fp_http_worker *w = arg;
    for (int k = 0; k < 2; k++) {
        if (w->bound[k]) {
            evhttp_del_accept_socket(w->http[k], w->bound[k]);
            w->bound[k] = NULL;
        }
    }
    drain_check(-1, 0, w);
}

/* Worker thread: stop at once (the server could not start every worker). */
static void exit_now(void *arg)
{
    fp_http_worker *w = arg;
    event_base_loopbreak(w->base);
}

int fp_http_drain_worker_init(fp_http_worker *w, fp_error *err)
{
    w->drain_ev = evtimer_new(w->base, drain_check, w);
    if (w->drain_ev == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, "evtimer_new");
    return FP_ERR_OK;
}

void fp_http_drain_worker_free(fp_http_worker *w)
{
    if (w->drain_ev != NULL)
        event_free(w->drain_ev);
    w->drain_ev = NULL;
}

/* Main thread: post the drain to every worker (once), then leave the
 * main loop; fp_http_server_run joins the workers as they finish. */
static void begin_drain(fp_http_server *srv)
{
    if (atomic_exchange(&srv->draining, 1))
        return;
    fp_log(FP_LOG_INFO, "shutting down: finishing in-flight requests");
    /* read by the workers after the post (its mutex orders the write) */
    srv->drain_deadline = fp_http_mono_ns() + (int64_t)DRAIN_SECONDS * 1000000000;
    for (int i = 0; i < srv->n_workers; i++) {
        fp_http_worker *w = &srv->workers[i];
        w->drain_post = (fp_http_post){drain_begin, w, false, NULL};
        fp_http_worker_post_item(w, &w->drain_post);
    }
    event_base_loopexit(srv->main_base, NULL);
}

/* A SIGTERM/SIGINT that arrives after the server announced itself (the
 * addr file, "listening ...") but before the main loop's libevent handlers
 * are in place: remembered here instead of killing the process with the
 * default action, and honoured as soon as the loop runs. */
static volatile sig_atomic_t early_signal;

static void on_early_signal(int sig)
{
    early_signal = sig;
}

void fp_http_signals_early(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_early_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    fp_log(FP_LOG_INFO, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    begin_drain(arg);
}

static void on_stop_pipe(evutil_socket_t fd, short what, void *arg)
{
    char buf[16];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    begin_drain(arg);
}

int fp_http_server_run(fp_http_server *srv, bool handle_signals, fp_error *err)
{
    struct event *sig_term = NULL, *sig_int = NULL, *pipe_ev = NULL;
    int rc = FP_ERR_OK;
    sigset_t block, old;

    srv->running = true;
    srv->main_base = event_base_new();
    if (srv->main_base == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, "event_base_new");
    pipe_ev = event_new(srv->main_base, srv->stop_pipe[0], EV_READ | EV_PERSIST, on_stop_pipe, srv);
    if (handle_signals) {
        sig_term = evsignal_new(srv->main_base, SIGTERM, on_signal, srv);
        sig_int = evsignal_new(srv->main_base, SIGINT, on_signal, srv);
    }
    if (pipe_ev == NULL || event_add(pipe_ev, NULL) != 0 ||
        (handle_signals && (sig_term == NULL || sig_int == NULL || event_add(sig_term, NULL) != 0 ||
                            event_add(sig_int, NULL) != 0))) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "cannot set up the main loop");
        goto out;
    }
    /* workers never take SIGTERM/SIGINT/SIGPIPE: only the main loop does */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (int i = 0; i < srv->n_workers; i++) {
        if (pthread_create(&srv->workers[i].thread, NULL, fp_http_worker_main, &srv->workers[i]) != 0) {
            rc = fp_err_set(err, FP_ERR_INTERNAL, "pthread_create failed");
            break;
        }
        srv->workers[i].started = true;
    }
    sigdelset(&old, SIGTERM);
    sigdelset(&old, SIGINT);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* until begin_drain; a second signal during the drain finds the
     * drain begun (the handlers stay installed while the workers drain) */
    /* a signal taken before libevent's handlers replaced the early one */
    if (rc == FP_ERR_OK && handle_signals && early_signal != 0)
        event_active(early_signal == SIGINT ? sig_int : sig_term, EV_SIGNAL, 1);
    if (rc == FP_ERR_OK)
        event_base_dispatch(srv->main_base);
    for (int i = 0; i < srv->n_workers; i++) {
        fp_http_worker *w = &srv->workers[i];
        if (!w->started)
            continue;
        if (!atomic_load(&srv->draining)) {
            w->exit_post = (fp_http_post){exit_now, w, false, NULL};
            fp_http_worker_post_item(w, &w->exit_post);
        }
        pthread_join(w->thread, NULL); /* its drain is over */
        w->started = false;
    }
out:
    if (sig_term)
        event_free(sig_term);
    if (sig_int)
        event_free(sig_int);
    if (pipe_ev)
        event_free(pipe_ev);
    event_base_free(srv->main_base);
    srv->main_base = NULL;
    return rc;
}
