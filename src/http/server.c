/*
 * server.c - the server's lifecycle: create (listeners, TLS context,
 * workers, built-in auth schemes), mount modules, free.  Running and the
 * drain are in drain.c.
 *
 * Mounting happens on the main thread before any worker runs, so the
 * route table, the scheme registry and every module's state are written
 * before the worker threads are created and only read afterwards
 * (pthread_create orders the writes before the threads' reads).
 */
#define _GNU_SOURCE
#include "http_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "../common/util.h"

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;

/* libevent's own messages (e.g. per failed accept) can be triggered by
 * clients at will: debug level only; what matters is logged by us, once */
static void evlog(int severity, const char *msg)
{
    (void)severity;
    fp_log(FP_LOG_DEBUG, "libevent: %s", msg);
}

static void evthread_init(void)
{
    evthread_use_pthreads();
    event_set_log_callback(evlog);
}

int64_t fp_http_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int fp_http_server_new(const fp_http_opts *opts, fp_http_server **out, fp_error *err)
{
    fp_http_server *srv = NULL;
    const char *listen[2];
    long ncpu;
    int rc = FP_ERR_OK;

    *out = NULL;
    pthread_once(&evthread_once, evthread_init);
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    srv->opts = *opts;
    srv->fd[0] = srv->fd[1] = -1;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    atomic_init(&srv->inflight, 0);
    atomic_init(&srv->n_accepted, 0);
    atomic_init(&srv->draining, 0);
    fp_http_router_init(&srv->router);
    if (opts->max_body_bytes < 0 || opts->max_header_bytes <= 0) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "body and header limits must be positive");
        goto fail;
    }
    srv->max_body = (size_t)opts->max_body_bytes;
    if ((rc = fp_http_auth_builtin(srv, err)) != FP_ERR_OK)
        goto fail;

    listen[0] = opts->https_listen ? opts->https_listen : "";
    listen[1] = opts->http_listen ? opts->http_listen : "";
    if (!listen[0][0] && !listen[1][0]) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "no listener configured");
        goto fail;
    }
    if (listen[0][0] && (rc = fp_http_tls_ctx_new(srv, err)) != FP_ERR_OK)
        goto fail;
    /* the passphrase was for the TLS key only: not kept */
    srv->opts.tls_pass = NULL;
    srv->opts.tls_passlen = 0;
    for (int k = 0; k < 2; k++)
        if (listen[k][0] && (rc = fp_http_listen_on(listen[k], &srv->fd[k], srv->addr[k],
                                                    sizeof(srv->addr[k]), err)) != FP_ERR_OK)
            goto fail;
    if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "pipe: %s", strerror(errno));
        goto fail;
    }
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    srv->n_workers = opts->threads > 0 ? opts->threads : (int)(ncpu > 0 ? ncpu : 1);
    if (srv->n_workers > MAX_WORKERS)
        srv->n_workers = MAX_WORKERS;
    if ((rc = fp_conn_server_init(srv, err)) != FP_ERR_OK)
        goto fail;
    srv->workers = calloc((size_t)srv->n_workers, sizeof(*srv->workers));
    if (srv->workers == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto fail;
    }
    for (int i = 0; i < srv->n_workers; i++)
        if ((rc = fp_http_worker_init(srv, &srv->workers[i], i, err)) != FP_ERR_OK)
            goto fail;
    *out = srv;
    return FP_ERR_OK;
fail:
    fp_http_server_free(srv);
    return rc;
}

/* Undo what mounting hm did so far (worker state, then state). */
static void mod_undo(fp_http_server *srv, http_mod *hm)
{
    for (int i = hm->n_winit - 1; i >= 0; i--)
        if (hm->mod->worker_free != NULL)
            hm->mod->worker_free(hm->state, hm->wstate[i]);
    hm->n_winit = 0;
    if (hm->inited) {
        if (hm->mod->stop != NULL)
            hm->mod->stop(hm->state);
        if (hm->mod->free != NULL)
            hm->mod->free(hm->state);
    }
    hm->inited = false;
    free(hm->wstate);
    hm->wstate = NULL;
    (void)srv;
}

int fp_http_mount(fp_http_server *srv, const fp_http_module *mod, const char *prefix, void *arg,
                  fp_error *err)
{
    http_mod *hm;
    size_t max_body = srv->max_body;
    int n_auth = srv->n_auth, rc;

    if (srv->running)
        return fp_err_set(err, FP_ERR_STATE, "modules are mounted before the server runs");
    if (mod == NULL || mod->name == NULL)
        return fp_err_set(err, FP_ERR_ARG, "module without a name");
    if (srv->n_mods >= MAX_MODULES)
        return fp_err_set(err, FP_ERR_ARG, "more than %d modules", MAX_MODULES);
    hm = &srv->mods[srv->n_mods];
    memset(hm, 0, sizeof(*hm));
    hm->mod = mod;
    hm->wstate = calloc((size_t)srv->n_workers, sizeof(*hm->wstate));
    if (hm->wstate == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    /* init first: it may register the schemes its routes name */
    if (mod->init != NULL && (rc = mod->init(srv, arg, &hm->state, err)) != FP_ERR_OK)
        goto fail;
    hm->inited = true;
    for (int i = 0; i < srv->n_workers; i++) {
        if (mod->worker_init != NULL &&
            (rc = mod->worker_init(hm->state, &srv->workers[i], &hm->wstate[i], err)) != FP_ERR_OK)
            goto fail;
        hm->n_winit = i + 1;
    }
    if ((rc = fp_http_router_add(&srv->router, mod->routes, prefix, srv->n_mods,
                                 fp_http_auth_index, srv, err)) != FP_ERR_OK)
        goto fail;
    for (const fp_http_route *r = mod->routes; r && r->methods; r++)
        if (r->max_body > max_body)
            max_body = r->max_body;
    if (max_body != srv->max_body) {
        /* evhttp and the framing guard must let the largest body through;
         * each route's own limit is applied per request (413) */
        srv->max_body = max_body;
        for (int i = 0; i < srv->n_workers; i++)
            fp_http_worker_set_max_body(&srv->workers[i], max_body);
    }
    srv->n_mods++;
    return FP_ERR_OK;
fail:
    fp_err_prefix(err, "%s: ", mod->name);
    mod_undo(srv, hm);
    srv->n_auth = n_auth; /* schemes its init registered went with its state */
    return rc;
}

const char *fp_http_server_addr(const fp_http_server *srv, int kind)
{
    return srv->addr[kind == FP_HTTP_TLS ? 0 : 1];
}

void fp_http_server_free(fp_http_server *srv)
{
    if (srv == NULL)
        return;
    for (int m = srv->n_mods - 1; m >= 0; m--)
        if (srv->mods[m].inited && srv->mods[m].mod->stop)
            srv->mods[m].mod->stop(srv->mods[m].state);
    if (srv->workers) {
        for (int i = 0; i < srv->n_workers; i++)
            fp_http_worker_free(&srv->workers[i]);
        free(srv->workers);
    }
    for (int m = srv->n_mods - 1; m >= 0; m--) {
        if (srv->mods[m].inited && srv->mods[m].mod->free)
            srv->mods[m].mod->free(srv->mods[m].state);
        free(srv->mods[m].wstate);
    }
    fp_http_router_free(&srv->router);
    for (int k = 0; k < 2; k++)
        if (srv->fd[k] >= 0)
            close(srv->fd[k]);
    for (int k = 0; k < 2; k++)
        if (srv->stop_pipe[k] >= 0)
            close(srv->stop_pipe[k]);
    fp_conn_server_free(srv);
    SSL_CTX_free(srv->ssl_ctx);
    free(srv);
}

SSL_CTX *fp_http_server_ssl_ctx(const fp_http_server *srv) { return srv->ssl_ctx; }
fp_http_server *fp_http_worker_server(fp_http_worker *w) { return w->srv; }
int fp_http_worker_index(const fp_http_worker *w) { return w->index; }
int fp_http_server_workers(const fp_http_server *srv) { return srv->n_workers; }
long fp_http_server_inflight(const fp_http_server *srv) { return atomic_load(&srv->inflight); }
unsigned long fp_http_server_accepted(const fp_http_server *srv)
{
    return atomic_load(&srv->n_accepted);
}
long fp_http_server_open_conns(const fp_http_server *srv) { return atomic_load(&srv->n_conns); }
bool fp_http_server_draining(const fp_http_server *srv) { return atomic_load(&srv->draining) != 0; }
