/*
 * http_int.h - private to src/http/: the server and worker structs shared
 * by http.c (listeners, routing, replies, drain) and conn.c (per
 * connection limits, deadlines and framing checks).
 */
#ifndef FP_HTTP_INT_H
#define FP_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "../common/ratelimit.h"
#include "http.h"
#include "limits.h"

#define MAX_MODULES 16

typedef struct fp_conn fp_conn;

typedef struct listener_ctx {
    fp_http_worker *w;
    int kind; /* FP_HTTP_TLS or FP_HTTP_PLAIN */
    int k;    /* index: 0 TLS, 1 plain */
} listener_ctx;

struct fp_http_worker {
    fp_http_server *srv;
    int index;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct evhttp *http[2]; /* [0] TLS, [1] plain */
    struct evhttp_bound_socket *bound[2];
    struct evconnlistener *lis[2];
    listener_ctx lctx[2];
    fp_store *store;
    struct event *post_ev;
    pthread_mutex_t post_mu;
    fp_http_post *post_head, *post_tail;
    uint64_t next_id;

    /* conn.c: connections of this worker, accept back-off, log summary */
    fp_conn *conns;            /* list of every open connection */
    fp_conn *idle_head, *idle_tail; /* idle ones, newest first */
    struct event *resume_ev;   /* re-enables paused listeners */
    struct event *report_ev;   /* periodic summary of what was refused */
    bool paused;
    int n_unset;               /* accepted, on_act not run yet */
    unsigned long n_accept_err, n_refused, n_refused_addr, n_evicted, n_deadline[4];
    int accept_errno;
};

struct fp_http_server {
    fp_http_opts opts;
    const fp_config *cfg;
    SSL_CTX *ssl_ctx;
    int fd[2];
    char addr[2][80];
    int n_workers;
    fp_http_worker *workers;
    void *mod_state[MAX_MODULES];
    bool mod_inited[MAX_MODULES];
    size_t max_body; /* largest limit over cfg and routes */
    atomic_long inflight;
    atomic_long receiving; /* connections with a partly received request */
    atomic_int draining;
    int stop_pipe[2];
    struct event_base *main_base;

    /* conn.c */
    long max_conns;            /* effective cap (config, descriptor limit) */
    atomic_long n_conns;
    atomic_ulong n_accepted;   /* connections accept()ed, ever (tests, fuzz harness) */
    fp_conn **by_fd;           /* open connections by descriptor */
    size_t n_fd;
    fp_addr_count *addr_conns;
    fp_ratelimit *addr_rate, *id_rate;
};

int64_t fp_http_mono_ns(void);

/* conn.c */
int fp_conn_server_init(fp_http_server *srv, fp_error *err);
void fp_conn_server_free(fp_http_server *srv);
int fp_conn_worker_init(fp_http_worker *w, fp_error *err);
/* After evhttp_free: frees connections evhttp never reported. */
void fp_conn_worker_free(fp_http_worker *w);
/* evhttp_set_bevcb callback for both listeners (arg: listener_ctx). */
struct bufferevent *fp_conn_bev_new(struct event_base *base, void *arg);
/* Accept errors and pauses on the worker's listener k. */
void fp_conn_listener_setup(fp_http_worker *w, int k, struct evconnlistener *l);
/* Called first on each worker thread. */
void fp_conn_worker_thread(fp_http_worker *w);
/* The connection a request arrived on, or NULL. */
fp_conn *fp_conn_of(fp_http_server *srv, struct evhttp_request *evr);
/* A request was handed to a handler; returns true if it must be the
 * connection's last (max_requests_per_connection).  Sets peer (escaped
 * address:port) for the log. */
bool fp_conn_dispatched(fp_conn *c, struct evhttp_request *evr);
const char *fp_conn_peer(const fp_conn *c);
/* After evhttp_send_reply queued a handler's answer on c. */
void fp_conn_reply_queued(fp_conn *c);
/* Rate limit key of the connection's client address (16 bytes). */
const unsigned char *fp_conn_addr(const fp_conn *c);

#endif
