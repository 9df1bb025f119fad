/*
 * http.c - libevent evhttp server: listeners, worker threads, TLS, routing,
 * limits, request log, drain-and-stop.  See http.h for the model.
 *
 * Threads.  The main thread binds the listening sockets, then starts N
 * workers.  Each worker owns an event_base with two evhttp servers bound
 * to the SAME listening fds (evconnlistener without LEV_OPT_CLOSE_ON_FREE),
 * so whichever worker is idle accepts the next connection; connections
 * never move between threads.  The main thread runs a tiny event_base of
 * its own for SIGTERM/SIGINT and fp_http_server_stop.
 *
 * Cross-thread work (e.g. the group-commit writer finishing a deferred
 * request) goes through fp_http_worker_post: a mutex-protected queue plus
 * event_active() on the worker's base, which libevent makes thread-safe
 * once evthread_use_pthreads() was called before the bases were created.
 *
 * Shutdown: stop accepting on every worker, then keep the loops running
 * until no request is in flight (bounded by DRAIN_SECONDS): none being
 * answered (dispatched, possibly waiting for its commit) and, on the TLS
 * listener, none partly received (a connection whose decrypted input got
 * bytes since its last dispatched request: see conn.c).  Requests
 * that complete during the drain are served, with "Connection: close".
 * Then exit each loop and join; evhttp_free closes idle keep-alive
 * connections.
 */
#define _GNU_SOURCE
#include "http_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>

#include "../common/util.h"
#include "../x509/x509util.h"

#define MAX_WORKERS 64
#define DRAIN_SECONDS 10
#define LISTEN_BACKLOG 1024

typedef fp_http_post post_item;

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

/* ---- listening sockets ---- */

/* Split "host:port" or "[v6]:port". */
static int split_addr(const char *spec, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon;
    size_t hl;

    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        hl = (size_t)(end - spec - 1);
        if (hl >= hsize)
            return -1;
        memcpy(host, spec + 1, hl);
        host[hl] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - spec);
        if (hl >= hsize)
            return -1;
        memcpy(host, spec, hl);
        host[hl] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= psize)
        return -1;
    strcpy(port, colon + 1);
    return 0;
}

static int listen_on(const char *spec, int *fd_out, char *bound, size_t bsize, fp_error *err)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[64], port[16], hbuf[64], pbuf[16];
    int fd = -1, one = 1, rc;

    *fd_out = -1;
    if (split_addr(spec, host, sizeof(host), port, sizeof(port)) != 0)
        return fp_err_set(err, FP_ERR_CONFIG, "listen address '%s': expected HOST:PORT", spec);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0)
        return fp_err_set(err, FP_ERR_CONFIG, "listen address '%s': %s", spec, gai_strerror(rc));
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* TCP_NODELAY is set on the listener: Linux copies it to every accepted
     * socket.  evhttp writes headers and body separately (and TLS adds
     * records): without it, Nagle plus the client's delayed ACK stalls
     * keep-alive answers by tens of ms. */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "listen on %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return rc;
    }
    freeaddrinfo(res);
    if (getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf, sizeof(pbuf),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        close(fd);
        return fp_err_set(err, FP_ERR_IO, "getnameinfo failed for %s", spec);
    }
    snprintf(bound, bsize, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", hbuf, pbuf);
    *fd_out = fd;
    return FP_ERR_OK;
}

/* ---- TLS ---- */

/* Client certificates are requested but checked per route/label by the
 * handler (trust anchors depend on the EST label, known only after the
 * request line is read), so the handshake accepts any: the handshake
 * still proves the client holds the certificate's key.  Replacing the
 * whole verification (not just a verify callback that forgives errors)
 * also spares the signature checks libssl would run for nothing. */
static int skip_chain_verify(X509_STORE_CTX *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 1;
}

static int make_ssl_ctx(fp_http_server *srv, fp_error *err)
{
    const fp_config *cfg = srv->cfg;
    char path[FP_PATH_MAX];
    EVP_PKEY *key = NULL;
    SSL_CTX *ctx = NULL;
    int rc;

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "SSL_CTX_new");
    /* TLS 1.2 and 1.3 only (issue 3; RFC 8996 deprecates 1.0/1.1) */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "TLS minimum version");
        goto out;
    }
    /* No session tickets: with OpenSSL 3.0 issuing one copies the session
     * (peer certificate included) through d2i/i2d, which cost more than
     * the rest of an enrollment handshake; devices rarely resume anyway.
     * TLS 1.2 session-id resumption from the server cache still works. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    if ((rc = fp_config_path(cfg, cfg->tls_cert, path, sizeof(path), err)) != FP_ERR_OK)
        goto out;
    if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "TLS certificate %s", path);
        goto out;
    }
    if ((rc = fp_config_path(cfg, cfg->tls_key, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_key_read(path, srv->opts.tls_pass, srv->opts.tls_passlen, &key, err)) != FP_ERR_OK)
        goto out;
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "TLS key %s does not match its certificate", path);
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, skip_chain_verify, NULL);
    /* needed for session resumption when client certificates are requested */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"fleetpki", 8);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    srv->ssl_ctx = ctx;
    ctx = NULL;
    rc = FP_ERR_OK;
out:
    EVP_PKEY_free(key);
    SSL_CTX_free(ctx);
    return rc;
}

/* ---- responses ---- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

const char *fp_http_header(const fp_http_req *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev_), name);
}

void fp_http_add_header(fp_http_req *req, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req->ev_), name, value);
}

static void req_free(fp_http_req *req)
{
    free((char *)req->path);
    free((char *)req->query);
    free((char *)req->wildcard);
    free(req->body_buf_);
    free(req);
}

static void wipe_secret(const void *data, size_t len, void *arg)
{
    (void)arg;
    OPENSSL_clear_free((void *)data, len);
}

void fp_http_reply_secret(fp_http_req *req, int status, const char *content_type,
                          void *body, size_t len)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req->ev_);
    if (evbuffer_add_reference(out, body, len, wipe_secret, NULL) != 0) {
        OPENSSL_clear_free(body, len);
        fp_http_error(req, 500, "internal error");
        return;
    }
    fp_http_reply(req, status, content_type, NULL, 0);
}

void fp_http_reply(fp_http_req *req, int status, const char *content_type,
                   const void *body, size_t len)
{
    fp_http_server *srv = req->worker->srv;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req->ev_);
    struct evbuffer *out = evhttp_request_get_output_buffer(req->ev_);
    double ms;
    char path[FP_LOG_ESCAPED_MAX(200)], ident[FP_LOG_ESCAPED_MAX(160)];
    fp_conn *conn;

    if (content_type != NULL)
        evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "X-Request-Id", req->id);
    if (evhttp_find_header(h, "Cache-Control") == NULL)
        evhttp_add_header(h, "Cache-Control", "no-store");
    if (len > 0 && evbuffer_add(out, body, len) != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        status = 500;
    }
    conn = fp_conn_of(srv, req->ev_);
    evhttp_send_reply(req->ev_, status, reason_phrase(status), NULL);
    if (conn != NULL)
        fp_conn_reply_queued(conn);
    ms = (double)(fp_http_mono_ns() - req->start_ns_) / 1e6;
    /* every field a client controls is escaped (issue 8): no control
     * byte, space or '=' of theirs can start a line or a key=value pair */
    if (!srv->opts.quiet || status >= 500)
        fp_log(status >= 500 ? FP_LOG_WARN : FP_LOG_INFO,
               "http id=%s method=%s path=%s status=%d identity=%s ms=%.2f peer=%s",
               req->id, req->method_name, fp_log_escape(path, sizeof(path), req->path), status,
               fp_log_escape(ident, sizeof(ident), req->identity[0] ? req->identity : NULL),
               ms, req->peer_addr);
    atomic_fetch_sub(&srv->inflight, 1);
    req_free(req);
}

void fp_http_error(fp_http_req *req, int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(msg) - 2)
        n = (int)sizeof(msg) - 2;
    msg[n++] = '\n';
    msg[n] = '\0';
    fp_http_reply(req, status, "text/plain; charset=utf-8", msg, (size_t)n);
}

/* ---- routing ---- */

static int method_bit(enum evhttp_cmd_type t, const char **name)
{
    switch (t) {
    case EVHTTP_REQ_GET: *name = "GET"; return FP_HTTP_GET;
    case EVHTTP_REQ_POST: *name = "POST"; return FP_HTTP_POST;
    case EVHTTP_REQ_HEAD: *name = "HEAD"; return FP_HTTP_HEAD;
    case EVHTTP_REQ_PUT: *name = "PUT"; return FP_HTTP_PUT;
    case EVHTTP_REQ_DELETE: *name = "DELETE"; return FP_HTTP_DELETE;
    default: *name = "OTHER"; return 0;
    }
}

static void allow_header(int methods, char *buf, size_t size)
{
    static const struct { int bit; const char *name; } m[] = {
        {FP_HTTP_GET, "GET"}, {FP_HTTP_HEAD, "HEAD"}, {FP_HTTP_POST, "POST"},
        {FP_HTTP_PUT, "PUT"}, {FP_HTTP_DELETE, "DELETE"},
    };
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(m) / sizeof(*m); i++) {
        if (methods & m[i].bit) {
            int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", m[i].name);
            if (n < 0 || (size_t)n >= size - used)
                break;
            used += (size_t)n;
        }
    }
}

bool fp_http_media_type_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* 429 Too Many Requests with Retry-After (RFC 6585 4, RFC 7231 7.1.3). */
static void reply_429(fp_http_req *req, int retry, const char *why)
{
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", retry);
    fp_http_add_header(req, "Retry-After", ra);
    fp_http_error(req, 429, "%s", why);
}

bool fp_http_limit_identity(fp_http_req *req, const char *key)
{
    fp_http_server *srv = req->worker->srv;
    int retry = 1;

    if (srv->id_rate == NULL || key == NULL)
        return false;
    if (fp_ratelimit_take(srv->id_rate, key, strlen(key), fp_http_mono_ns(), &retry))
        return false;
    reply_429(req, retry, "too many requests for this identity");
    return true;
}

static void on_request(struct evhttp_request *evr, void *arg)
{
    listener_ctx *lc = arg;
    fp_http_worker *w = lc->w;
    fp_http_server *srv = w->srv;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(evr);
    struct evhttp_connection *evcon = evhttp_request_get_connection(evr);
    struct evbuffer *in = evhttp_request_get_input_buffer(evr);
    const fp_http_route *route = NULL;
    fp_http_req *req = NULL;
    const char *raw_path, *q, *wild = NULL, *rest = NULL;
    size_t wlen = 0, blen, limit;
    int allowed = 0, mod_index = -1, mbit;
    size_t dlen = 0;

    fp_conn *conn = fp_conn_of(srv, evr);
    bool last = conn != NULL && fp_conn_dispatched(conn, evr);

    atomic_fetch_add(&srv->inflight, 1);
    req = calloc(1, sizeof(*req));
    if (req == NULL) {
        struct evbuffer *out = evhttp_request_get_output_buffer(evr);
        atomic_fetch_sub(&srv->inflight, 1);
        evbuffer_add(out, "out of memory\n", 14);
        evhttp_add_header(evhttp_request_get_output_headers(evr), "Connection", "close");
        evhttp_send_reply(evr, 500, "Internal Server Error", NULL);
        return;
    }
    req->ev_ = evr;
    req->start_ns_ = fp_http_mono_ns();
    req->worker = w;
    req->tls = lc->kind == FP_HTTP_TLS;
    snprintf(req->id, sizeof(req->id), "%02x%010llx", (unsigned)w->index,
             (unsigned long long)++w->next_id);
    mbit = method_bit(evhttp_request_get_command(evr), &req->method_name);
    req->method = mbit;
    if (conn != NULL)
        snprintf(req->peer_addr, sizeof(req->peer_addr), "%s", fp_conn_peer(conn));
    else
        strcpy(req->peer_addr, "-");
    if (evcon != NULL && req->tls) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
        req->ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
        if (req->ssl != NULL) {
            req->peer_cert = SSL_get0_peer_certificate(req->ssl);
            req->peer_chain = SSL_get_peer_cert_chain(req->ssl);
        }
    }
    if (last) /* max_requests_per_connection: this answer closes it */
        fp_http_add_header(req, "Connection", "close");
    raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (raw_path == NULL || raw_path[0] == '\0')
        raw_path = "/";
    req->path = evhttp_uridecode(raw_path, 0, &dlen);
    if (req->path == NULL || strlen(req->path) != dlen) {
        fp_http_error(req, 400, "malformed request path");
        return;
    }
    q = uri ? evhttp_uri_get_query(uri) : NULL;
    if (q != NULL && (req->query = strdup(q)) == NULL) {
        fp_http_error(req, 500, "out of memory");
        return;
    }
    if (srv->addr_rate != NULL && conn != NULL) {
        int retry = 1;
        if (!fp_ratelimit_take(srv->addr_rate, (const char *)fp_conn_addr(conn), 16,
                               req->start_ns_, &retry)) {
            reply_429(req, retry, "too many requests from this address");
            return;
        }
    }
    if (atomic_load(&srv->draining)) {
        /* in flight when the drain began, or sent on a connection we had
         * not closed yet: answered, and the connection closed after it */
        fp_http_add_header(req, "Connection", "close");
    }

    for (int m = 0; fp_http_modules[m].name && route == NULL; m++) {
        const fp_http_route *r = fp_http_modules[m].routes;
        for (; r && r->methods && route == NULL; r++) {
            if (!(r->listeners & lc->kind))
                continue;
            if (!fp_http_path_match(r->path, req->path, &wild, &wlen, &rest))
                continue;
            allowed |= r->methods;
            if (r->methods & mbit) {
                route = r;
                mod_index = m;
            }
        }
    }
    if (route == NULL) {
        if (allowed) {
            char allow[64];
            allow_header(allowed, allow, sizeof(allow));
            fp_http_add_header(req, "Allow", allow);
            fp_http_error(req, 405, "method %s not allowed here", req->method_name);
        } else {
            fp_http_error(req, 404, "no such resource");
        }
        return;
    }
    req->route = route;
    req->mod_state = srv->mod_state[mod_index];
    req->rest = rest;
    if (wild != NULL && (req->wildcard = strndup(wild, wlen)) == NULL) {
        fp_http_error(req, 500, "out of memory");
        return;
    }

    blen = evbuffer_get_length(in);
    limit = route->max_body ? route->max_body : (size_t)srv->cfg->max_body_bytes;
    if (mbit & (FP_HTTP_POST | FP_HTTP_PUT)) {
        if (fp_http_header(req, "Content-Length") == NULL &&
            fp_http_header(req, "Transfer-Encoding") == NULL) {
            fp_http_error(req, 411, "Content-Length required");
            return;
        }
        if (blen > limit) {
            fp_http_error(req, 413, "request body larger than %zu bytes", limit);
            return;
        }
        if (route->content_type != NULL &&
            !fp_http_media_type_is(fp_http_header(req, "Content-Type"), route->content_type)) {
            fp_http_error(req, 415, "expected Content-Type %s", route->content_type);
            return;
        }
    }
    if (blen > limit) {
        fp_http_error(req, 413, "request body larger than %zu bytes", limit);
        return;
    }
    req->body_buf_ = malloc(blen + 1);
    if (req->body_buf_ == NULL) {
        fp_http_error(req, 500, "out of memory");
        return;
    }
    if (blen > 0 && evbuffer_remove(in, req->body_buf_, blen) != (int)blen) {
        fp_http_error(req, 500, "reading body");
        return;
    }
    req->body_buf_[blen] = '\0';
    req->body = req->body_buf_;
    req->body_len = blen;

    if (route->auth == FP_HTTP_AUTH_CLIENT_CERT && req->peer_cert == NULL) {
        fp_http_error(req, 401, "a TLS client certificate is required");
        return;
    }
    route->fn(req); /* FP_HTTP_DONE or FP_HTTP_DEFERRED: either way req is theirs */
}

/* ---- workers ---- */

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

static int worker_init(fp_http_server *srv, fp_http_worker *w, int index, fp_error *err)
{
    const fp_config *cfg = srv->cfg;
    char path[FP_PATH_MAX];
    int rc;

    w->srv = srv;
    w->index = index;
    pthread_mutex_init(&w->post_mu, NULL);
    if ((rc = fp_config_path(cfg, cfg->store_path, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_store_open(path, &w->store, err)) != FP_ERR_OK)
        return rc;
    w->base = event_base_new();
    if (w->base == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, "event_base_new");
    w->post_ev = event_new(w->base, -1, 0, on_post, w);
    if (w->post_ev == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, "event_new");
    if ((rc = fp_conn_worker_init(w, err)) != FP_ERR_OK)
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
        evhttp_set_gencb(w->http[k], on_request, &w->lctx[k]);
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

static void worker_free(fp_http_worker *w)
{
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
    if (w->base)
        event_base_free(w->base);
    fp_store_close(w->store);
    pthread_mutex_destroy(&w->post_mu);
}

static void *worker_main(void *arg)
{
    fp_http_worker *w = arg;
    fp_conn_worker_thread(w);
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- server ---- */

int fp_http_server_new(const fp_http_opts *opts, fp_http_server **out, fp_error *err)
{
    fp_http_server *srv = NULL;
    const fp_config *cfg = opts->cfg;
    const char *listen[2];
    long ncpu;
    int rc = FP_ERR_OK;

    *out = NULL;
    pthread_once(&evthread_once, evthread_init);
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    srv->opts = *opts;
    srv->cfg = cfg;
    srv->fd[0] = srv->fd[1] = -1;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    atomic_init(&srv->inflight, 0);
    atomic_init(&srv->n_accepted, 0);
    atomic_init(&srv->receiving, 0);
    atomic_init(&srv->draining, 0);
    srv->max_body = (size_t)cfg->max_body_bytes;
    for (int m = 0; fp_http_modules[m].name; m++)
        for (const fp_http_route *r = fp_http_modules[m].routes; r && r->methods; r++)
            if (r->max_body > srv->max_body)
                srv->max_body = r->max_body;

    listen[0] = opts->https_listen ? opts->https_listen : cfg->https_listen;
    listen[1] = opts->http_listen ? opts->http_listen : cfg->http_listen;
    if (!listen[0][0] && !listen[1][0]) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "no listener configured");
        goto fail;
    }
    if (listen[0][0] && (rc = make_ssl_ctx(srv, err)) != FP_ERR_OK)
        goto fail;
    for (int k = 0; k < 2; k++)
        if (listen[k][0] &&
            (rc = listen_on(listen[k], &srv->fd[k], srv->addr[k], sizeof(srv->addr[k]), err)) != FP_ERR_OK)
            goto fail;
    if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "pipe: %s", strerror(errno));
        goto fail;
    }
    for (int m = 0; fp_http_modules[m].name; m++) {
        if (m >= MAX_MODULES) {
            rc = fp_err_set(err, FP_ERR_INTERNAL, "too many modules");
            goto fail;
        }
        if (fp_http_modules[m].init != NULL &&
            (rc = fp_http_modules[m].init(srv, &srv->mod_state[m], err)) != FP_ERR_OK) {
            fp_err_prefix(err, "%s: ", fp_http_modules[m].name);
            goto fail;
        }
        srv->mod_inited[m] = true;
    }
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    srv->n_workers = cfg->threads > 0 ? cfg->threads : (int)(ncpu > 0 ? ncpu : 1);
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
        if ((rc = worker_init(srv, &srv->workers[i], i, err)) != FP_ERR_OK)
            goto fail;
    *out = srv;
    return FP_ERR_OK;
fail:
    fp_http_server_free(srv);
    return rc;
}

const char *fp_http_server_addr(const fp_http_server *srv, int kind)
{
    return srv->addr[kind == FP_HTTP_TLS ? 0 : 1];
}

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
        if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0) {
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

void fp_http_server_free(fp_http_server *srv)
{
    if (srv == NULL)
        return;
    for (int m = MAX_MODULES - 1; m >= 0; m--)
        if (srv->mod_inited[m] && fp_http_modules[m].stop)
            fp_http_modules[m].stop(srv->mod_state[m]);
    if (srv->workers) {
        for (int i = 0; i < srv->n_workers; i++)
            worker_free(&srv->workers[i]);
        free(srv->workers);
    }
    for (int m = MAX_MODULES - 1; m >= 0; m--)
        if (srv->mod_inited[m] && fp_http_modules[m].free)
            fp_http_modules[m].free(srv->mod_state[m]);
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

const fp_config *fp_http_server_cfg(const fp_http_server *srv) { return srv->cfg; }
fp_ca *fp_http_server_ca(const fp_http_server *srv) { return srv->opts.ca; }
const void *fp_http_server_app(const fp_http_server *srv) { return srv->opts.app; }
SSL_CTX *fp_http_server_ssl_ctx(const fp_http_server *srv) { return srv->ssl_ctx; }
fp_store *fp_http_worker_store(fp_http_worker *w) { return w->store; }
fp_http_server *fp_http_worker_server(fp_http_worker *w) { return w->srv; }
int fp_http_worker_index(const fp_http_worker *w) { return w->index; }
long fp_http_server_inflight(const fp_http_server *srv) { return atomic_load(&srv->inflight); }
unsigned long fp_http_server_accepted(const fp_http_server *srv)
{
    return atomic_load(&srv->n_accepted);
}
long fp_http_server_open_conns(const fp_http_server *srv) { return atomic_load(&srv->n_conns); }
bool fp_http_server_draining(const fp_http_server *srv) { return atomic_load(&srv->draining) != 0; }

void fp_http_server_get0_key_pass(const fp_http_server *srv, const char **pass, size_t *len)
{
    *pass = srv->opts.tls_pass;
    *len = srv->opts.tls_passlen;
}

void fp_http_reply_ref(fp_http_req *req, int status, const char *content_type,
                       const void *body, size_t len,
                       void (*release)(const void *body, size_t len, void *arg), void *arg)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req->ev_);

    if (len == 0) {
        release(body, len, arg);
    } else if (evbuffer_add_reference(out, body, len, release, arg) != 0) {
        release(body, len, arg);
        fp_http_error(req, 500, "internal error");
        return;
    }
    fp_http_reply(req, status, content_type, NULL, 0);
}
