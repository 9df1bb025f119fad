/*
 * conn.c - per-connection defences of the HTTP layer (issue 8):
 *
 *  - descriptors: the soft RLIMIT_NOFILE is raised to the hard limit at
 *    start and the connection cap kept below it, with descriptors reserved
 *    for the store, logs and event loops.  accept() failing (EMFILE,
 *    ENFILE, ENOBUFS...) pauses the worker's listeners for ACCEPT_PAUSE_MS
 *    instead of spinning on a listening socket that stays readable, and is
 *    reported once per REPORT_SECONDS, not once per attempt.
 *  - caps: connections in total and per client address (over a cap the
 *    connection is closed at once and the listeners pause briefly).
 *  - deadlines that trickled bytes do not extend: the whole TLS handshake
 *    (from accept), the whole request header block (from its first byte),
 *    and the body (body_timeout_seconds plus what min_body_rate allows for
 *    the bytes received so far).  evhttp's own timeout is per read, so it
 *    only bounds idle keep-alive connections.
 *  - framing: every byte the client sends goes through the guard
 *    (guard.c) before evhttp parses it; bad framing is answered here
 *    (text/plain, one log line, then the connection is closed after a
 *    short lingering read so the client sees the answer, not a reset).
 *    An answer evhttp writes on its own (its HTML 400/413/...) is replaced
 *    on the way out by ours, with a log line.
 *
 * Hooks: evhttp builds each connection's bufferevent with fp_conn_bev_new
 * (evhttp_set_bevcb), before it knows the descriptor; an event activated
 * there runs right after evhttp finished the accept and finds descriptor,
 * peer and evhttp_connection (bufferevent_getcb), and sets the close
 * callback that frees our state.  Callbacks on the input and output
 * buffers see every byte.  All of it runs on the worker's thread.
 */
#define _GNU_SOURCE
#include "http_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event_struct.h>

#include "../common/util.h"
#include "guard.h"

#define ACCEPT_PAUSE_MS 200
#define REPORT_SECONDS 10
#define LINGER_SECONDS 2
#define LINGER_MAX_BYTES (1024 * 1024)
#define FD_RESERVE_BASE 64
#define FD_RESERVE_PER_WORKER 8
#define ACCEPT_BURST 32 /* accepted over the cap before on_act sorts them out */

enum {
    P_NEW,        /* accepted, setup event pending */
    P_HANDSHAKE,  /* TLS handshake under way */
    P_IDLE,       /* waiting for a request's first byte (evhttp's idle timeout) */
    P_HEADER,     /* request line / header block arriving */
    P_BODY,       /* body arriving */
    P_RECEIVED,   /* complete, evhttp about to dispatch */
    P_DISPATCHED, /* a handler has it */
    P_REJECT,     /* answering a framing error ourselves */
    P_LINGER,     /* answer sent, reading what the client still sends */
    P_CLOSING,    /* evhttp's own answer replaced, closing after it */
};

/* deadline kinds, for the summary */
enum { D_HANDSHAKE, D_HEADER, D_BODY, D_LINGER };
static const char *const deadline_names[] = {"handshake", "header", "body", "linger"};

struct fp_conn {
    fp_http_worker *w;
    int kind;
    int phase;
    int fd;
    struct bufferevent *bev;
    struct evhttp_connection *evcon;
    struct evbuffer_cb_entry *in_cb, *out_cb;
    struct event act;   /* setup, then deferred actions */
    struct event timer; /* the current deadline */
    int64_t t0_ns;      /* start of the current phase */
    uint64_t body_rx;
    unsigned requests;
    bool receiving, addr_counted, own_write, reject_pending, setup_done, answered;
    bool unwritten; /* answered, not written yet (drain.c waits) */
    int reject_status;
    const char *reject_why;
    size_t linger_rx;
    fp_conn *prev, *next;           /* all of the worker's connections */
    fp_conn *iprev, *inext;         /* the worker's idle ones, newest first */
    bool in_idle;
    unsigned char addr[16];
    char peer[72]; /* escaped "address:port" */
    fp_http_guard guard;
};

static int ssl_idx = -1;
static pthread_once_t ssl_idx_once = PTHREAD_ONCE_INIT;

static void ssl_idx_init(void)
{
    ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- server and worker setup ---- */

/* Descriptors this process holds already (the signer's channels, one per
 * thread plus each worker's async ones, the store, the log): they are not
 * the reserve's to count.  0 if it cannot tell. */
static long fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (d == NULL)
        return 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", "..", and the directory's own */
}

int fp_conn_server_init(fp_http_server *srv, fp_error *err)
{
    const fp_http_opts *cfg = &srv->opts;
    struct rlimit rl;
    long reserve, budget;
    int rc;

    /* systemd and shells default to a soft limit of 1024 with a much
     * higher hard limit: take what we are allowed */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return fp_err_set(err, FP_ERR_IO, "getrlimit: %s", strerror(errno));
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
        struct rlimit nl = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
            rl.rlim_cur = want;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > ((rlim_t)1 << 24))
        rl.rlim_cur = (rlim_t)1 << 24;
    reserve = FD_RESERVE_BASE + ACCEPT_BURST + FD_RESERVE_PER_WORKER * (long)srv->n_workers +
              fds_open();
    budget = (long)rl.rlim_cur - reserve;
    if (budget < 16)
        return fp_err_set(err, FP_ERR_CONFIG,
                          "descriptor limit %ld too low: at least %ld needed (ulimit -n)",
                          (long)rl.rlim_cur, reserve + 16);
    srv->max_conns = cfg->max_connections < budget ? cfg->max_connections : budget;
    srv->n_fd = (size_t)rl.rlim_cur;
    srv->by_fd = calloc(srv->n_fd, sizeof(*srv->by_fd));
    srv->addr_conns = fp_addr_count_new((size_t)srv->max_conns + 1024);
    if (srv->by_fd == NULL || srv->addr_conns == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (cfg->rate_per_address > 0 &&
        (rc = fp_ratelimit_new(cfg->rate_per_address, cfg->rate_burst_per_address,
                               (size_t)cfg->rate_limit_keys, &srv->addr_rate, err)) != FP_ERR_OK)
        return rc;
    if (cfg->rate_per_identity > 0 &&
        (rc = fp_ratelimit_new(cfg->rate_per_identity, cfg->rate_burst_per_identity,
                               (size_t)cfg->rate_limit_keys, &srv->id_rate, err)) != FP_ERR_OK)
        return rc;
    fp_log(FP_LOG_INFO, "connections: at most %ld (%ld per address; descriptor limit %ld)",
           srv->max_conns, (long)cfg->max_connections_per_address, (long)rl.rlim_cur);
    return FP_ERR_OK;
}

void fp_conn_server_free(fp_http_server *srv)
{
    free(srv->by_fd);
    fp_addr_count_free(srv->addr_conns);
    fp_ratelimit_free(srv->addr_rate);
    fp_ratelimit_free(srv->id_rate);
}

/* A worker's listeners accept while neither a back-off (paused) nor the
 * balance below turns them off. */
static void listeners_apply(fp_http_worker *w)
{
    bool on = !w->paused && !atomic_load(&w->balance_off);
    for (int k = 0; k < 2; k++) {
        if (w->lis[k] == NULL || w->bound[k] == NULL)
            continue;
        if (on)
            evconnlistener_enable(w->lis[k]);
        else
            evconnlistener_disable(w->lis[k]);
    }
}

static void set_paused(fp_http_worker *w, bool paused)
{
    w->paused = paused;
    listeners_apply(w);
}

/* ---- balance ----
 * Every worker listens on the same descriptors, and libevent's accept loop
 * takes the whole backlog at once, so a burst of connections lands on the
 * worker that woke first: 64 clients connecting together were split 52/12
 * over two workers (bench/run-registry-api.sh), and on keep-alive
 * connections such a split lasts.  The busier worker's clients then waited
 * about four times as long as the others', which is what a p99 sees.
 * So a worker that holds more connections than the fewest any worker holds,
 * plus a slack, turns its listeners off until that is no longer so.  The
 * worker with the fewest is never off, hence some worker always accepts.
 * A worker's count changes only on its own thread (accept, close): it
 * checks itself then, and after an accept (which raises the fewest)
 * wakes the workers that are off to check themselves.  The slack keeps
 * short-lived connections (handshake floods) from flipping listeners on
 * every accept.
 * A worker busy in one long request (a slow token, a store lock) must not
 * hold everyone else's connections back: each worker's loop beats every
 * BEAT_MS, and one that has not beaten for STALE_MS does not count towards
 * the fewest; a worker that is off re-checks on its own beat, so it turns
 * back on at most STALE_MS + BEAT_MS after the other got stuck. */
#define BALANCE_SLACK(fewest) (4 + (fewest) / 8)
#define BEAT_MS 50
#define STALE_MS 250

static long long mono_ms(void)
{
    return (long long)(fp_http_mono_ns() / 1000000);
}

static __thread fp_http_worker *this_worker;

static void balance_check(fp_http_worker *w)
{
    fp_http_server *srv = w->srv;
    long mine = atomic_load(&w->n_open), fewest = mine;
    long long now = mono_ms();
    bool off;

    for (int i = 0; i < srv->n_workers; i++) {
        fp_http_worker *o = &srv->workers[i];
        long n = atomic_load(&o->n_open);
        if (o != w && now - atomic_load(&o->beat_ms) > STALE_MS)
            continue; /* stuck in a request: it accepts nothing now */
        if (n < fewest)
            fewest = n;
    }
    off = mine > fewest + BALANCE_SLACK(fewest);
    if (off != atomic_load(&w->balance_off)) {
        atomic_store(&w->balance_off, off);
        listeners_apply(w);
    }
}

static void on_balance(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    balance_check(arg);
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
    fp_http_worker *w = arg;
    (void)fd;
    (void)what;
    atomic_store(&w->beat_ms, mono_ms());
    if (atomic_load(&w->balance_off))
        balance_check(w);
}

/* w's count changed by delta (+1 accepted, -1 closed).  Only on w's own
 * thread while it runs: the teardown after the workers stopped skips it. */
static void balance_changed(fp_http_worker *w, int delta)
{
    fp_http_server *srv = w->srv;

    atomic_fetch_add(&w->n_open, delta);
    if (srv->n_workers < 2 || this_worker != w || atomic_load(&srv->draining))
        return;
    balance_check(w);
    if (delta > 0)
        for (int i = 0; i < srv->n_workers; i++)
            if (&srv->workers[i] != w && atomic_load(&srv->workers[i].balance_off))
                event_active(srv->workers[i].balance_ev, EV_READ, 0);
}

long fp_http_worker_conns(const fp_http_server *srv, int i)
{
    return i >= 0 && i < srv->n_workers ? atomic_load(&srv->workers[i].n_open) : -1;
}

static void pause_accept(fp_http_worker *w, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (w->paused)
        return; /* an EMFILE pause is not shortened by a yield */
    set_paused(w, true);
    evtimer_add(w->resume_ev, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    set_paused(arg, false);
}

/* Once per REPORT_SECONDS: what was refused or cut off, in one line each
 * (a flood must not turn into a flood of log lines). */
static void on_report(evutil_socket_t fd, short what, void *arg)
{
    fp_http_worker *w = arg;
    (void)fd;
    (void)what;
    if (w->n_accept_err > 0)
        fp_log(FP_LOG_WARN, "worker %d: accept failed %lu times (%s); listener paused %d ms each time",
               w->index, w->n_accept_err, strerror(w->accept_errno), ACCEPT_PAUSE_MS);
    if (w->n_refused > 0 || w->n_refused_addr > 0 || w->n_evicted > 0)
        fp_log(FP_LOG_WARN,
               "worker %d: at max_connections: refused %lu connections, closed %lu idle "
               "ones; refused %lu over max_connections_per_address",
               w->index, w->n_refused, w->n_evicted, w->n_refused_addr);
    for (int d = 0; d < 4; d++)
        if (w->n_deadline[d] > 0)
            fp_log(FP_LOG_INFO, "worker %d: closed %lu connections at the %s deadline", w->index,
                   w->n_deadline[d], deadline_names[d]);
    w->n_accept_err = w->n_refused = w->n_refused_addr = w->n_evicted = 0;
    memset(w->n_deadline, 0, sizeof(w->n_deadline));
}

int fp_conn_worker_init(fp_http_worker *w, fp_error *err)
{
    struct timeval tv = {REPORT_SECONDS, 0}, beat = {0, BEAT_MS * 1000};
    w->resume_ev = evtimer_new(w->base, on_resume, w);
    w->report_ev = event_new(w->base, -1, EV_PERSIST, on_report, w);
    w->balance_ev = event_new(w->base, -1, 0, on_balance, w);
    w->beat_ev = event_new(w->base, -1, EV_PERSIST, on_beat, w);
    atomic_init(&w->n_open, 0);
    atomic_init(&w->balance_off, false);
    atomic_init(&w->beat_ms, mono_ms());
    if (w->resume_ev == NULL || w->report_ev == NULL || w->balance_ev == NULL ||
        w->beat_ev == NULL || event_add(w->report_ev, &tv) != 0 ||
        (w->srv->n_workers > 1 && event_add(w->beat_ev, &beat) != 0))
        return fp_err_set(err, FP_ERR_NOMEM, "event_new");
    return FP_ERR_OK;
}

static void conn_release(fp_conn *c);

void fp_conn_worker_free(fp_http_worker *w)
{
    /* evhttp_free closed every connection it knew; what is left was
     * accepted in the loop's last turn and never set up */
    while (w->conns != NULL) {
        fp_conn *c = w->conns;
        c->bev = NULL; /* evhttp_free freed it with the connection */
        conn_release(c);
    }
    if (w->report_ev) {
        on_report(-1, 0, w);
        event_free(w->report_ev);
    }
    if (w->resume_ev)
        event_free(w->resume_ev);
    if (w->balance_ev)
        event_free(w->balance_ev);
    if (w->beat_ev)
        event_free(w->beat_ev);
}

/* this_worker (above): the worker running on this thread (listener error
 * callbacks get only the evhttp as argument) */

void fp_conn_worker_thread(fp_http_worker *w)
{
    this_worker = w;
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    fp_http_worker *w = this_worker;
    int e = EVUTIL_SOCKET_ERROR();
    (void)l;
    (void)arg;
    if (w == NULL)
        return;
    /* EMFILE/ENFILE/ENOBUFS/ENOMEM: the socket stays readable, so retrying
     * at once would spin; pause and let connections close meanwhile */
    if (w->n_accept_err++ == 0)
        fp_log(FP_LOG_WARN, "worker %d: accept failed (%s); pausing the listener %d ms",
               w->index, strerror(e), ACCEPT_PAUSE_MS);
    w->accept_errno = e;
    pause_accept(w, ACCEPT_PAUSE_MS);
}

void fp_conn_listener_setup(fp_http_worker *w, int k, struct evconnlistener *l)
{
    w->lis[k] = l;
    evconnlistener_set_error_cb(l, on_accept_error);
}

/* ---- per connection ---- */

static void conn_unlink(fp_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->w->conns == c)
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Connections still waiting for a complete request header (in the TLS
 * handshake, idle, or with a header arriving) are the ones given up
 * first when the server is full: a new connection then closes the one
 * that has waited longest on its worker (nginx does the same with its
 * "reusable" connections).  So sockets that never send a request, or
 * send it a byte at a time, cannot lock other clients out while a
 * client that sends its request promptly is rarely the oldest waiter.
 * A connection keeps its place from when it began waiting.
 *
 * Under a flood that reopens every closed connection at once, waiters
 * live only milliseconds, and a lone client still in its TLS handshake
 * could be the oldest (bench/run-abuse.sh saw it).  So the victim is,
 * among the EVICT_SCAN longest waiters, the one whose client address
 * holds the most connections (the oldest on a tie): a flood from a few
 * addresses makes room out of its own connections, and a client with
 * one connection is given up only when no older waiter's address holds
 * more. */
#define EVICT_SCAN 32


/* Headroom over the cap for an address with no other connection: the
 * connections a burst accepted before on_act ran (they count in n_conns
 * until they are sorted out here) plus a few per worker; both are inside
 * the descriptors reserved at start (ACCEPT_BURST, FD_RESERVE_PER_WORKER). */
#define OVER_CAP_PER_WORKER 4 /* < FD_RESERVE_PER_WORKER */

/* The waiter to close, or NULL if this worker has none; *n is how many
 * connections its address holds. */
static fp_conn *evict_victim(fp_http_server *srv, fp_http_worker *w, unsigned long *n_out)
{
    fp_conn *best = NULL;
    unsigned long best_n = 0;
    int k = 0;

    for (fp_conn *c = w->idle_tail; c != NULL && k < EVICT_SCAN; c = c->iprev, k++) {
        unsigned long n = fp_addr_count_get(srv->addr_conns, c->addr);
        if (best == NULL || n > best_n) {
            best = c;
            best_n = n;
        }
    }
    *n_out = best_n;
    return best;
}

static bool waiting_phase(int phase)
{
    return phase == P_HANDSHAKE || phase == P_IDLE || phase == P_HEADER;
}

/* An answer queued and not yet written: the drain waits for it. */
static void set_unwritten(fp_conn *c, bool on)
{
    if (c->unwritten != on) {
        c->unwritten = on;
        c->w->n_unwritten += on ? 1 : -1;
    }
}

static void set_phase(fp_conn *c, int phase)
{
    fp_http_worker *w = c->w;
    if (phase != P_DISPATCHED)
        set_unwritten(c, false); /* written (on_complete), or the connection is gone */
    if (c->in_idle && !waiting_phase(phase)) {
        if (c->iprev)
            c->iprev->inext = c->inext;
        else
            w->idle_head = c->inext;
        if (c->inext)
            c->inext->iprev = c->iprev;
        else
            w->idle_tail = c->iprev;
        c->iprev = c->inext = NULL;
        c->in_idle = false;
    } else if (!c->in_idle && waiting_phase(phase)) {
        c->inext = w->idle_head;
        if (w->idle_head)
            w->idle_head->iprev = c;
        else
            w->idle_tail = c;
        w->idle_head = c;
        c->in_idle = true;
    }
    c->phase = phase;
}

static void set_receiving(fp_conn *c, bool on)
{
    if (c->receiving != on) {
        c->receiving = on;
        c->w->n_receiving += on ? 1 : -1;
    }
}

/* Free our state (the connection itself is evhttp's). */
static void conn_release(fp_conn *c)
{
    fp_http_server *srv = c->w->srv;

    set_receiving(c, false);
    set_phase(c, P_CLOSING);
    event_del(&c->act);
    event_del(&c->timer);
    if (c->bev != NULL && c->in_cb)
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    if (c->bev != NULL && c->out_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    if (c->bev != NULL && c->kind == FP_HTTP_TLS) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (ssl != NULL)
            SSL_set_ex_data(ssl, ssl_idx, NULL);
    }
    if (c->fd >= 0 && (size_t)c->fd < srv->n_fd && srv->by_fd[c->fd] == c)
        srv->by_fd[c->fd] = NULL;
    if (c->addr_counted)
        fp_addr_count_dec(srv->addr_conns, c->addr);
    atomic_fetch_sub(&srv->n_conns, 1);
    balance_changed(c->w, -1);
    conn_unlink(c);
    free(c);
}

/* evhttp_connection_set_closecb: evhttp is freeing the connection. */
static void on_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    conn_release(arg);
}

/* Close now (never while a handler holds a request of it). */
static void conn_close(fp_conn *c)
{
    evhttp_connection_free(c->evcon); /* calls on_closed */
}

static void arm(fp_conn *c, int64_t at_ns)
{
    int64_t d = at_ns - fp_http_mono_ns();
    struct timeval tv;
    if (d < 0)
        d = 0;
    tv.tv_sec = (time_t)(d / 1000000000);
    tv.tv_usec = (suseconds_t)(d % 1000000000 / 1000);
    evtimer_add(&c->timer, &tv);
}

static void enter(fp_conn *c, int phase)
{
    const fp_http_opts *cfg = &c->w->srv->opts;
    int64_t now = fp_http_mono_ns();

    set_phase(c, phase);
    c->t0_ns = now;
    switch (phase) {
    case P_HANDSHAKE:
        arm(c, now + (int64_t)cfg->handshake_timeout_seconds * 1000000000);
        break;
    case P_HEADER:
        set_receiving(c, true);
        arm(c, now + (int64_t)cfg->header_timeout_seconds * 1000000000);
        break;
    case P_BODY:
        c->body_rx = 0;
        arm(c, now + (int64_t)cfg->body_timeout_seconds * 1000000000);
        break;
    case P_LINGER:
        arm(c, now + (int64_t)LINGER_SECONDS * 1000000000);
        break;
    default:
        event_del(&c->timer);
        break;
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    fp_conn *c = arg;
    const fp_http_opts *cfg = &c->w->srv->opts;
    int d;
    (void)fd;
    (void)what;

    switch (c->phase) {
    case P_HANDSHAKE:
        d = D_HANDSHAKE;
        break;
    case P_HEADER:
        d = D_HEADER;
        break;
    case P_BODY: {
        /* mod_reqtimeout's MinRate: each byte buys 1/min_body_rate s */
        int64_t allowed = (int64_t)cfg->body_timeout_seconds * 1000000000 +
                          (int64_t)(c->body_rx * 1000000000 / (uint64_t)cfg->min_body_rate);
        if (fp_http_mono_ns() < c->t0_ns + allowed) {
            arm(c, c->t0_ns + allowed);
            return;
        }
        d = D_BODY;
        break;
    }
    case P_LINGER:
    case P_REJECT:
        d = D_LINGER;
        break;
    default:
        return;
    }
    c->w->n_deadline[d]++;
    conn_close(c);
}

/* ---- answering framing errors ourselves ---- */

static const char *status_text(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return status >= 500 ? "Server Error" : "Bad Request";
    }
}

/* Write a complete text/plain answer that closes the connection, and the
 * request's one log line. */
static void write_answer(fp_conn *c, int status, const char *why)
{
    fp_http_worker *w = c->w;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char id[24], method[FP_LOG_ESCAPED_MAX(16)], path[FP_LOG_ESCAPED_MAX(FP_GUARD_TARGET_MAX) + 4];
    char body[160];
    int n;

    snprintf(id, sizeof(id), "%02x%010llx", (unsigned)w->index, (unsigned long long)++w->next_id);
    n = snprintf(body, sizeof(body), "%s\n", why);
    c->own_write = true;
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: %d\r\nConnection: close\r\nX-Request-Id: %s\r\n"
                        "Cache-Control: no-store\r\n\r\n%s",
                        status, status_text(status), n, id, body);
    c->own_write = false;
    fp_log_escape(method, sizeof(method), c->guard.method[0] ? c->guard.method : NULL);
    fp_log_escape(path, sizeof(path), c->guard.target[0] ? c->guard.target : NULL);
    if (c->guard.target_cut)
        strcat(path, "...");
    if (!w->srv->opts.quiet || status >= 500)
        fp_log(status >= 500 ? FP_LOG_WARN : FP_LOG_INFO,
               "http id=%s method=%s path=%s status=%d identity=- ms=0.00 peer=%s", id, method,
               path, status, c->peer[0] ? c->peer : "-");
}

static void linger_read(struct bufferevent *bev, void *arg)
{
    fp_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    c->linger_rx += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (c->linger_rx > LINGER_MAX_BYTES)
        conn_close(c);
}

static void linger_written(struct bufferevent *bev, void *arg)
{
    fp_conn *c = arg;
    (void)bev;
    if (c->phase == P_REJECT) {
        /* answer sent: half-close, read (and drop) what is still coming so
         * the client reads our answer instead of a reset (RFC 7230 6.6) */
        shutdown(c->fd, SHUT_WR);
        enter(c, P_LINGER);
    }
}

static void linger_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    conn_close(arg);
}

/* The deferred action: answer a framing error on a connection no handler
 * holds, replacing evhttp's callbacks on it. */
static void reject_now(fp_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    c->reject_pending = false;
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_setcb(c->bev, linger_read, linger_written, linger_event, c);
    set_phase(c, P_REJECT);
    arm(c, fp_http_mono_ns() + (int64_t)LINGER_SECONDS * 1000000000);
    write_answer(c, c->reject_status, c->reject_why);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- byte watchers ---- */

static void feed_guard(fp_conn *c, struct evbuffer *buf, size_t n_added)
{
    struct evbuffer_ptr pos;
    struct evbuffer_iovec vec[8];
    size_t len = evbuffer_get_length(buf), start = len - n_added;

    while (n_added > 0) {
        int nv;
        if (evbuffer_ptr_set(buf, &pos, start, EVBUFFER_PTR_SET) != 0)
            return;
        nv = evbuffer_peek(buf, (ev_ssize_t)n_added, &pos, vec, 8);
        if (nv <= 0)
            return;
        if (nv > 8)
            nv = 8;
        for (int i = 0; i < nv && n_added > 0; i++) {
            const unsigned char *p = vec[i].iov_base;
            size_t left = vec[i].iov_len < n_added ? vec[i].iov_len : n_added;
            size_t seen = left;
            while (left > 0) {
                size_t used = 0;
                bool idle = c->phase == P_IDLE || c->phase == P_HANDSHAKE;
                int ev;
                ev = fp_http_guard_feed(&c->guard, p, left, &used);
                if (c->phase == P_BODY)
                    c->body_rx += used;
                if (idle && fp_http_guard_busy(&c->guard))
                    enter(c, P_HEADER);
                p += used;
                left -= used;
                if (ev == FP_GUARD_HEAD) {
                    if (c->phase == P_HEADER)
                        enter(c, P_BODY);
                } else if (ev == FP_GUARD_END) {
                    if (c->phase == P_HEADER || c->phase == P_BODY)
                        enter(c, P_RECEIVED);
                    else if (idle)
                        enter(c, P_RECEIVED); /* whole request in one read */
                } else if (ev == FP_GUARD_ERROR) {
                    c->reject_status = c->guard.status;
                    c->reject_why = c->guard.why;
                    c->reject_pending = true;
                    return;
                }
            }
            n_added -= seen;
            start += seen;
        }
    }
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    fp_conn *c = arg;

    if (info->n_added == 0 || !c->setup_done)
        return;
    if (c->phase >= P_REJECT || c->reject_pending) {
        evbuffer_drain(buf, evbuffer_get_length(buf)); /* evhttp must not see it */
        return;
    }
    feed_guard(c, buf, info->n_added);
    if (c->reject_pending) {
        evbuffer_drain(buf, evbuffer_get_length(buf));
        set_receiving(c, false);
        event_del(&c->timer);
        /* a handler may still hold an earlier request: answer after it */
        if (c->phase != P_DISPATCHED)
            event_active(&c->act, EV_READ, 0);
    }
}

static bool is_digit3(const char *p)
{
    return p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9';
}

/* Output watcher: an answer evhttp writes itself (no handler saw the
 * request: its HTML 400, 413, 417, 501...) is replaced by ours. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    fp_conn *c = arg;
    char head[16];
    int status = 0;
    bool front_frozen = false;

    if (c->phase == P_CLOSING && evbuffer_get_length(buf) == 0 && info->n_deleted > 0) {
        event_active(&c->act, EV_READ, 0); /* our answer is out: close */
        return;
    }
    if (info->n_added == 0 || c->own_write || c->phase >= P_REJECT ||
        (c->phase == P_DISPATCHED && !c->answered))
        return;
    if (info->orig_size != 0)
        return;
    if (evbuffer_copyout(buf, head, sizeof(head)) < 0) {
        /* libevent froze the front (after a half-close it keeps what it
         * could not send): we replace all of it anyway */
        front_frozen = true;
        evbuffer_unfreeze(buf, 1);
    }
    /* "HTTP/1.x NNN": the status is the three digits at 9..11 (head is
     * not NUL-terminated, so no atoi) */
    if (evbuffer_copyout(buf, head, sizeof(head)) < 13 || memcmp(head, "HTTP/1.", 7) != 0 ||
        !is_digit3(head + 9) ||
        (status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0')) < 200) {
        /* not an answer, or "100 Continue" (RFC 7231 5.1.1): evhttp's */
        if (front_frozen)
            evbuffer_freeze(buf, 1);
        return;
    }
    evbuffer_drain(buf, evbuffer_get_length(buf));
    if (c->phase == P_DISPATCHED) {
        /* the request was answered and the answer written, then the client
         * half-closed: libevent answers the same request again, with a
         * 400 page (its read-on-write-error path).  Send nothing more. */
        set_phase(c, P_CLOSING);
        evbuffer_freeze(buf, 0);
        if (front_frozen)
            evbuffer_freeze(buf, 1);
        event_active(&c->act, EV_READ, 0);
        return;
    }
    set_phase(c, P_CLOSING);
    set_receiving(c, false);
    event_del(&c->timer);
    write_answer(c, status, status_text(status));
    evbuffer_freeze(buf, 0); /* the rest of evhttp's answer goes nowhere */
    if (front_frozen)
        evbuffer_freeze(buf, 1);
}

static void tls_info(const SSL *ssl, int where, int ret)
{
    fp_conn *c;
    (void)ret;
    if (!(where & SSL_CB_HANDSHAKE_DONE) || ssl_idx < 0)
        return;
    c = SSL_get_ex_data(ssl, ssl_idx);
    if (c != NULL && c->phase == P_HANDSHAKE)
        enter(c, P_IDLE);
}

static void addr_key(const struct sockaddr_storage *ss, unsigned char key[16], char *peer,
                     size_t psize)
{
    char host[INET6_ADDRSTRLEN] = "?", raw[INET6_ADDRSTRLEN + 8];
    unsigned port = 0;

    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a->sin_addr, 4);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        memcpy(key, &a->sin6_addr, 16);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    }
    snprintf(raw, sizeof(raw), "%s:%u", host, port);
    fp_log_escape(peer, psize, raw);
}

/* Runs right after evhttp finished accepting c. */
static void on_act(evutil_socket_t fd_unused, short what, void *arg)
{
    fp_conn *c = arg;
    fp_http_worker *w = c->w;
    fp_http_server *srv = w->srv;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    unsigned long n_addr;
    void *cbarg = NULL;
    (void)fd_unused;
    (void)what;

    if (!c->setup_done)
        w->n_unset--;
    if (c->setup_done) {
        if (c->phase == P_CLOSING)
            conn_close(c);
        else if (c->reject_pending && c->phase != P_DISPATCHED)
            reject_now(c);
        return;
    }
    c->setup_done = true;
    c->fd = bufferevent_getfd(c->bev);
    bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
    c->evcon = cbarg;
    if (c->fd < 0 || c->evcon == NULL) {
        c->bev = NULL; /* evhttp gave up on it already (cannot happen with
                          socket or OpenSSL bufferevents) */
        conn_release(c);
        return;
    }
    evhttp_connection_set_closecb(c->evcon, on_closed, c);
    if ((size_t)c->fd < srv->n_fd)
        srv->by_fd[c->fd] = c;
    memset(&ss, 0, sizeof(ss));
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
        ss.ss_family = AF_UNSPEC;
    addr_key(&ss, c->addr, c->peer, sizeof(c->peer));
    n_addr = fp_addr_count_inc(srv->addr_conns, c->addr);
    if (n_addr == 0) {
        w->n_refused++;
        conn_close(c);
        return;
    }
    c->addr_counted = true;
    if (n_addr > (unsigned long)srv->opts.max_connections_per_address) {
        w->n_refused_addr++;
        conn_close(c);
        return;
    }
    /* At the cap: make room by closing a waiter whose address holds at
     * least as many connections as the newcomer's (see evict_victim);
     * else the newcomer is refused, except that an address holding no
     * other connection gets a little headroom over the cap (within the
     * descriptors reserved at start) rather than lose to a flood it is
     * not part of, e.g. when this worker holds no waiter to close. */
    if (atomic_load(&srv->n_conns) > srv->max_conns) {
        unsigned long victim_n = 0;
        fp_conn *victim = evict_victim(srv, w, &victim_n);
        if (victim != NULL && victim_n >= n_addr) {
            w->n_evicted++;
            conn_close(victim);
        } else if (n_addr > 1 ||
                   atomic_load(&srv->n_conns) >
                       srv->max_conns + ACCEPT_BURST + OVER_CAP_PER_WORKER * (long)srv->n_workers) {
            w->n_refused++;
            conn_close(c);
            return;
        }
    }
    if (c->kind == FP_HTTP_TLS)
        enter(c, P_HANDSHAKE);
    else
        enter(c, P_IDLE);
}

struct bufferevent *fp_conn_bev_new(struct event_base *base, void *arg)
{
    listener_ctx *lc = arg;
    fp_http_worker *w = lc->w;
    fp_http_server *srv = w->srv;
    fp_conn *c = calloc(1, sizeof(*c));
    struct bufferevent *bev = NULL;
    SSL *ssl = NULL;

    atomic_fetch_add(&srv->n_accepted, 1); /* evhttp calls this right after accept() */
    if (c == NULL)
        return NULL;
    c->w = w;
    c->kind = lc->kind;
    c->fd = -1;
    c->phase = P_NEW;
    fp_http_guard_init(&c->guard, (size_t)srv->opts.max_header_bytes, srv->max_body);
    if (lc->kind == FP_HTTP_TLS) {
        pthread_once(&ssl_idx_once, ssl_idx_init);
        ssl = SSL_new(srv->ssl_ctx);
        if (ssl == NULL || ssl_idx < 0 || !SSL_set_ex_data(ssl, ssl_idx, c)) {
            SSL_free(ssl);
            free(c);
            return NULL;
        }
        SSL_set_info_callback(ssl, tls_info);
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            SSL_free(ssl);
            free(c);
            return NULL;
        }
        /* many clients (curl among them) close without close_notify */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            free(c);
            return NULL;
        }
    }
    c->bev = bev;
    c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
    c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), on_output, c);
    if (c->in_cb == NULL || c->out_cb == NULL) {
        if (ssl != NULL)
            SSL_set_ex_data(ssl, ssl_idx, NULL);
        bufferevent_free(bev);
        free(c);
        return NULL;
    }
    event_assign(&c->act, base, -1, 0, on_act, c);
    evtimer_assign(&c->timer, base, on_deadline, c);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add(&srv->n_conns, 1);
    balance_changed(w, +1); /* may turn the listener off mid-loop */
    /* libevent's accept loop takes the whole backlog in one go; after
     * ACCEPT_BURST connections not yet set up, yield to the loop (on_act
     * sorts them out and closes the refused ones) and accept again at
     * once: the backlog keeps draining, so a client queued behind a flood
     * is reached quickly, and descriptors in limbo stay bounded */
    if (++w->n_unset >= ACCEPT_BURST)
        pause_accept(w, 0);
    event_active(&c->act, EV_READ, 0);
    return bev;
}

fp_conn *fp_conn_of(fp_http_server *srv, struct evhttp_request *evr)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(evr);
    struct bufferevent *bev;
    fp_conn *c;
    int fd;

    if (evcon == NULL || (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
        return NULL;
    fd = bufferevent_getfd(bev);
    if (fd < 0 || (size_t)fd >= srv->n_fd)
        return NULL;
    c = srv->by_fd[fd];
    return c != NULL && c->evcon == evcon ? c : NULL;
}

/* evhttp_request_set_on_complete_cb: the answer was written. */
static void on_complete(struct evhttp_request *evr, void *arg)
{
    fp_conn *c = fp_conn_of(arg, evr);
    if (c == NULL || c->phase != P_DISPATCHED)
        return;
    if (c->reject_pending) {
        event_active(&c->act, EV_READ, 0);
        set_phase(c, P_RECEIVED);
        return;
    }
    if (fp_http_guard_busy(&c->guard)) {
        /* the next request began arriving meanwhile (pipelined): its header
         * deadline counts from now; if its header is complete already
         * (read with the request before), its body's deadline (the guard
         * reported FP_GUARD_HEAD while we were P_DISPATCHED) */
        enter(c, P_HEADER);
        if (c->guard.has_body)
            enter(c, P_BODY);
    } else {
        enter(c, P_IDLE);
    }
}

bool fp_conn_dispatched(fp_conn *c, struct evhttp_request *evr)
{
    set_receiving(c, false);
    set_phase(c, P_DISPATCHED);
    c->answered = false;
    event_del(&c->timer);
    evhttp_request_set_on_complete_cb(evr, on_complete, c->w->srv);
    return ++c->requests >= (unsigned)c->w->srv->opts.max_requests_per_connection;
}

void fp_conn_reply_queued(fp_conn *c)
{
    c->answered = true;
    if (c->phase == P_DISPATCHED)
        set_unwritten(c, true); /* until on_complete or the close */
}

const char *fp_conn_peer(const fp_conn *c)
{
    return c->peer;
}

const unsigned char *fp_conn_addr(const fp_conn *c)
{
    return c->addr;
}
