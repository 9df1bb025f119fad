/*
 * http_int.h - private to src/http/: the server and worker structs and
 * the functions the layer's files share (see http.h, "Files").
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
#include "router.h"

#define MAX_MODULES 16
#define MAX_AUTH_SCHEMES 32
#define MAX_WORKERS 64
#define DRAIN_SECONDS 10

/* A mounted module. */
typedef struct http_mod {
    const fp_http_module *mod;
    void *state;
    void **wstate;   /* per worker (n_workers entries) */
    int n_winit;     /* workers whose worker_init succeeded */
    bool inited;     /* init succeeded */
} http_mod;

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
    struct event *post_ev;
    pthread_mutex_t post_mu;
    bool mu_inited;
    fp_http_post *post_head, *post_tail;
    uint64_t next_id;
    unsigned long n_replies;   /* answers sent (tells whether an auth check answered) */

    /* drain.c: what holds this worker's stop back, counted on its thread
     * (no request is in two of them) */
    long inflight;             /* requests handed to a handler, not answered yet */
    long n_unwritten;          /* answered, the answer not yet written (conn.c) */
    long n_receiving;          /* connections with a partly received request (conn.c) */
    struct event *drain_ev;    /* the worker's drain check */
    fp_http_post drain_post, exit_post; /* preallocated: posting them cannot fail */

    /* conn.c: connections of this worker, accept back-off, log summary */
    fp_conn *conns;            /* list of every open connection */
    fp_conn *idle_head, *idle_tail; /* idle ones, newest first */
    struct event *resume_ev;   /* re-enables paused listeners */
    struct event *report_ev;   /* periodic summary of what was refused */
    bool paused;
    atomic_long n_open;        /* connections it holds (balance, conn.c) */
    atomic_bool balance_off;   /* listeners off: it holds more than its share */
    struct event *balance_ev;  /* another worker asks it to check its share */
    struct event *beat_ev;     /* its loop's heartbeat (balance) */
    atomic_llong beat_ms;      /* when the heartbeat last ran */
    int n_unset;               /* accepted, on_act not run yet */
    unsigned long n_accept_err, n_refused, n_refused_addr, n_evicted, n_deadline[4];
    int accept_errno;
};

struct fp_http_server {
    fp_http_opts opts;     /* tls_pass cleared after fp_http_server_new */
    SSL_CTX *ssl_ctx;
    int fd[2];
    char addr[2][80];
    int n_workers;
    fp_http_worker *workers;
    http_mod mods[MAX_MODULES];
    int n_mods;
    fp_http_router router;
    fp_http_auth_scheme auth[MAX_AUTH_SCHEMES];
    int n_auth;
    bool running;    /* fp_http_server_run began: no more mounts */
    size_t max_body; /* largest limit over opts and routes */
    atomic_long inflight;  /* all workers' (fp_http_server_inflight) */
    atomic_int draining;
    int64_t drain_deadline; /* written before the drain is posted to the workers */
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

/* listen.c */
/* Bind spec ("HOST:PORT", "[V6]:PORT"); bound gets the actual address. */
int fp_http_listen_on(const char *spec, int *fd, char *bound, size_t bsize, fp_error *err);
/* srv->ssl_ctx from opts' certificate chain and key. */
int fp_http_tls_ctx_new(fp_http_server *srv, fp_error *err);

/* auth.c */
int fp_http_auth_builtin(fp_http_server *srv, fp_error *err);
int fp_http_auth_index(void *srv, const char *name);

/* request.c: the evhttp_set_gencb callback (arg: listener_ctx). */
void fp_http_on_request(struct evhttp_request *evr, void *arg);
/* Frees req (and its scheme's principal). */
void fp_http_req_free(fp_http_req *req);

/* reply.c */
void fp_http_reply_429(fp_http_req *req, int retry, const char *why);

/* drain.c: the worker's drain check (its timer), made at worker init. */
int fp_http_drain_worker_init(fp_http_worker *w, fp_error *err);
void fp_http_drain_worker_free(fp_http_worker *w);

/* worker.c */
int fp_http_worker_init(fp_http_server *srv, fp_http_worker *w, int index, fp_error *err);
/* Runs what is still queued, frees evhttp and connections, then calls
 * every module's worker_free for w. */
void fp_http_worker_free(fp_http_worker *w);
void *fp_http_worker_main(void *arg);
/* The body limit of every worker's evhttp (srv->max_body). */
void fp_http_worker_set_max_body(fp_http_worker *w, size_t max);

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
