/*
 * worker.c - worker threads: each owns an event_base with two evhttp
 * servers bound to the SAME listening fds (evconnlistener without
 * LEV_OPT_CLOSE_ON_FREE), so whichever worker is idle accepts the next
 * connection; connections never move between threads.
 *
 * Cross-thread work (e.g. the group-commit writer finishing a deferred
 * request) goes through fp_http_worker_post: a mutex-protected queue plus
 * event_active() on the worker's base, which libevent makes thread-safe
 * once evthread_use_pthreads() was called before the bases were created
 * (server.c).
 */
#include "http_int.h"

#include "../signer/async.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

typedef fp_http_post post_item;

static void on_post(evutil_socket_t fd, short what, void *arg)
{
    fp_http_worker *w = arg;
    post_item *it;
    (void)fd;
    (void)what;

    pthread_mutex_lock(&w->post_mu);
    it = w->post_head;
    w->post_head = w->post_tail = NULL;
    pthread_mutex_unlock(&w->post_mu);
    while (it != NULL) {
        post_item *next = it->next;
        bool heap = it->heap_;
        it->fn(it->arg); /* may free a caller-owned item */
        if (heap)
            free(it);
        it = next;
    }
}

void fp_http_worker_post_item(fp_http_worker *w, fp_http_post *it)
{
    it->next = NULL;
    pthread_mutex_lock(&w->post_mu);
    if (w->post_tail)
        w->post_tail->next = it;
    else
        w->post_head = it;
    w->post_tail = it;
    pthread_mutex_unlock(&w->post_mu);
    event_active(w->post_ev, EV_READ, 0);
}

int fp_http_worker_post(fp_http_worker *w, void (*fn)(void *arg), void *arg)
{
    post_item *it = malloc(sizeof(*it));
    if (it == NULL)
        return FP_ERR_NOMEM;
    it->fn = fn;
    it->arg = arg;
    it->heap_ = true;
    fp_http_worker_post_item(w, it);
    return FP_ERR_OK;
}

static int bind_listener(fp_http_worker *w, int k, fp_error *err)
{
    fp_http_server *srv = w->srv;
    struct evconnlistener *l;

    /* no LEV_OPT_CLOSE_ON_FREE: the fd is shared by every worker */
    l = evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, srv->fd[k]);
    if (l == NULL)
        return fp_err_set(err, FP_ERR_IO, "evconnlistener_new");
    w->bound[k] = evhttp_bind_listener(w->http[k], l);
    if (w->bound[k] == NULL) {
        evconnlistener_free(l);
        return fp_err_set(err, FP_ERR_IO, "evhttp_bind_listener");
    }
    fp_conn_listener_setup(w, k, l);
    return FP_ERR_OK;
}

/* epoll's changelist: a bufferevent turns its write event on to send an
 * answer and off again once it is out, within one turn of the loop; the
 * changelist folds such pairs, so they cost no epoll_ctl (two a request
 * without it, ~10% of a keep-alive request's CPU: the floor-keepalive
 * profile of bench/run-registry-api.sh).  libevent's caveat, fds cloned by
 * dup() sharing one epoll registration, does not apply: a worker never
 * dups a socket. */
static struct event_base *worker_base_new(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (cfg == NULL)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

int fp_http_worker_init(fp_http_server *srv, fp_http_worker *w, int index, fp_error *err)
{
    const fp_http_opts *cfg = &srv->opts;
    int rc;

    w->srv = srv;
    w->index = index;
    pthread_mutex_init(&w->post_mu, NULL);
    w->mu_inited = true;
    w->base = worker_base_new();
    if (w->base == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, "event_base_new");
    w->post_ev = event_new(w->base, -1, 0, on_post, w);
    if (w->post_ev == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, "event_new");
    if ((rc = fp_conn_worker_init(w, err)) != FP_ERR_OK ||
        (rc = fp_http_drain_worker_init(w, err)) != FP_ERR_OK)
        return rc;
    for (int k = 0; k < 2; k++) {
        if (srv->fd[k] < 0)
            continue;
        w->http[k] = evhttp_new(w->base);
        if (w->http[k] == NULL)
            return fp_err_set(err, FP_ERR_NOMEM, "evhttp_new");
        w->lctx[k].w = w;
        w->lctx[k].kind = k == 0 ? FP_HTTP_TLS : FP_HTTP_PLAIN;
        w->lctx[k].k = k;
        evhttp_set_gencb(w->http[k], fp_http_on_request, &w->lctx[k]);
        evhttp_set_timeout(w->http[k], cfg->idle_timeout_seconds);
        /* the guard (conn.c) enforces max_header_bytes with a 431 first;
         * evhttp's own check is a backstop */
        evhttp_set_max_headers_size(w->http[k], (ev_ssize_t)cfg->max_header_bytes * 2);
        evhttp_set_max_body_size(w->http[k], (ev_ssize_t)srv->max_body);
        evhttp_set_allowed_methods(w->http[k], EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                                   EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                                   EVHTTP_REQ_DELETE);
        evhttp_set_default_content_type(w->http[k], NULL);
        /* an oversize body is read and dropped (bounded by the timeout) so
         * the client sees the 413 instead of a reset mid-upload */
        evhttp_set_flags(w->http[k], EVHTTP_SERVER_LINGERING_CLOSE);
        evhttp_set_bevcb(w->http[k], fp_conn_bev_new, &w->lctx[k]);
        if ((rc = bind_listener(w, k, err)) != FP_ERR_OK)
            return rc;
    }
    return FP_ERR_OK;
}

void fp_http_worker_free(fp_http_worker *w)
{
    fp_http_server *srv = w->srv;
    post_item *it;
    if (w->post_ev) {
        /* run what is still queued (it may answer requests) */
        on_post(-1, 0, w);
        event_free(w->post_ev);
    }
    for (int k = 0; k < 2; k++)
        if (w->http[k])
            evhttp_free(w->http[k]);
    if (w->base)
        fp_conn_worker_free(w);
    it = w->post_head; /* posted after the last run: only heap items to drop */
    while (it) {
        post_item *n = it->next;
        if (it->heap_)
            free(it);
        it = n;
    }
    fp_http_drain_worker_free(w); /* after on_post: queued work may have armed it */
    if (w->base)
        event_base_free(w->base);
    /* module state last: queued work above may still have used it */
    for (int m = srv ? srv->n_mods - 1 : -1; m >= 0; m--) {
        http_mod *hm = &srv->mods[m];
        if (w->index < hm->n_winit && hm->mod->worker_free != NULL)
            hm->mod->worker_free(hm->state, hm->wstate[w->index]);
    }
    if (w->mu_inited)
        pthread_mutex_destroy(&w->post_mu);
}

void fp_http_worker_set_max_body(fp_http_worker *w, size_t max)
{
    for (int k = 0; k < 2; k++)
        if (w->http[k] != NULL)
            evhttp_set_max_body_size(w->http[k], (ev_ssize_t)max);
}

/* Runs until the worker's drain is over (drain.c), or it is told to stop
 * at once (the server could not start every worker). */
void *fp_http_worker_main(void *arg)
{
    fp_http_worker *w = arg;
    fp_sasync *sa;
    fp_conn_worker_thread(w);
    /* signatures by the separate signer do not stop this loop */
    sa = fp_sasync_thread_begin(w->base);
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    fp_sasync_thread_end(sa);
    return NULL;
}
