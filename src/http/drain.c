/*
 * drain.c - running and stopping: the main thread starts the workers and
 * runs a tiny event_base of its own for SIGTERM/SIGINT and
 * fp_http_server_stop.
 *
 * Shutdown: stop accepting on every worker, then keep the loops running
 * until no request is in flight (bounded by DRAIN_SECONDS): none being
 * answered (dispatched, possibly waiting for its commit) and, on the TLS
 * listener, none partly received (a connection whose decrypted input got
 * bytes since its last dispatched request: see conn.c).  Requests
 * that complete during the drain are served, with "Connection: close".
 * Then exit each loop and join; evhttp_free (server.c, worker.c) closes
 * idle keep-alive connections.
 */
#define _GNU_SOURCE
#include "http_int.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "../common/util.h"

void fp_http_server_stop(fp_http_server *srv)
{
    char c = 's';
    if (srv->stop_pipe[1] >= 0)
        (void)!write(srv->stop_pipe[1], &c, 1);
}

static void stop_accepting(void *arg)
{
    fp_http_worker *w = arg;
    for (int k = 0; k < 2; k++) {
        if (w->bound[k]) {
            evhttp_del_accept_socket(w->http[k], w->bound[k]);
            w->bound[k] = NULL;
        }
    }
}

static void exit_loop(void *arg)
{
    fp_http_worker *w = arg;
    event_base_loopexit(w->base, NULL);
}

typedef struct {
    fp_http_server *srv;
    int64_t deadline;
    struct event *timer;
} drain_ctx;

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    drain_ctx *d = arg;
    struct timeval tv = {0, 20000};
    (void)fd;
    (void)what;
    long busy = atomic_load(&d->srv->inflight) + atomic_load(&d->srv->receiving);
    if (busy > 0 && fp_http_mono_ns() < d->deadline) {
        evtimer_add(d->timer, &tv);
        return;
    }
    if (busy > 0)
        fp_log(FP_LOG_WARN, "shutdown: %ld requests still in flight after %d s", busy,
               DRAIN_SECONDS);
    event_base_loopexit(d->srv->main_base, NULL);
}

static void begin_drain(fp_http_server *srv, drain_ctx *d)
{
    struct timeval tv = {0, 0};
    if (atomic_exchange(&srv->draining, 1))
        return;
    fp_log(FP_LOG_INFO, "shutting down: finishing in-flight requests");
    for (int i = 0; i < srv->n_workers; i++)
        fp_http_worker_post(&srv->workers[i], stop_accepting, &srv->workers[i]);
    d->deadline = fp_http_mono_ns() + (int64_t)DRAIN_SECONDS * 1000000000;
    evtimer_add(d->timer, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    drain_ctx *d = arg;
    (void)what;
    fp_log(FP_LOG_INFO, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    begin_drain(d->srv, d);
}

static void on_stop_pipe(evutil_socket_t fd, short what, void *arg)
{
    drain_ctx *d = arg;
    char buf[16];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    begin_drain(d->srv, d);
}

int fp_http_server_run(fp_http_server *srv, bool handle_signals, fp_error *err)
{
    struct event *sig_term = NULL, *sig_int = NULL, *pipe_ev = NULL;
    drain_ctx d = {srv, 0, NULL};
    int rc = FP_ERR_OK, started = 0;
    sigset_t block, old;

    srv->running = true;
    srv->main_base = event_base_new();
    if (srv->main_base == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, "event_base_new");
    d.timer = evtimer_new(srv->main_base, drain_tick, &d);
    pipe_ev = event_new(srv->main_base, srv->stop_pipe[0], EV_READ | EV_PERSIST, on_stop_pipe, &d);
    if (handle_signals) {
        sig_term = evsignal_new(srv->main_base, SIGTERM, on_signal, &d);
        sig_int = evsignal_new(srv->main_base, SIGINT, on_signal, &d);
    }
    if (d.timer == NULL || pipe_ev == NULL || event_add(pipe_ev, NULL) != 0 ||
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
        started++;
    }
    sigdelset(&old, SIGTERM);
    sigdelset(&old, SIGINT);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (rc == FP_ERR_OK)
        event_base_dispatch(srv->main_base);
    for (int i = 0; i < srv->n_workers; i++) {
        if (!srv->workers[i].started)
            continue;
        fp_http_worker_post(&srv->workers[i], exit_loop, &srv->workers[i]);
        pthread_join(srv->workers[i].thread, NULL);
        srv->workers[i].started = false;
    }
    (void)started;
out:
    if (sig_term)
        event_free(sig_term);
    if (sig_int)
        event_free(sig_int);
    if (pipe_ev)
        event_free(pipe_ev);
    if (d.timer)
        event_free(d.timer);
    event_base_free(srv->main_base);
    srv->main_base = NULL;
    return rc;
}
