/*
 * request.c - from evhttp's request callback to the handler: request id,
 * peer and TLS details, path decoding, per-address rate, routing (404,
 * 405, 414), body limits and type (411, 413, 415), the route's auth
 * scheme, then the body, then the handler.
 */
#define _GNU_SOURCE
#include "http_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>

#include "../common/util.h"

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

bool fp_http_limit_identity(fp_http_req *req, const char *key)
{
    fp_http_server *srv = req->worker->srv;
    int retry = 1;

    if (srv->id_rate == NULL || key == NULL)
        return false;
    if (fp_ratelimit_take(srv->id_rate, key, strlen(key), fp_http_mono_ns(), &retry))
        return false;
    fp_http_reply_429(req, retry, "too many requests for this identity");
    return true;
}

/* Run the route's scheme; true: go on to the handler.  A check that
 * refuses must have answered, and one that lets through must not have:
 * either mistake is caught here (worker's answer count), never a request
 * left hanging or used after it was freed. */
static bool run_auth(fp_http_req *req, const fp_http_auth_scheme *s)
{
    fp_http_worker *w = req->worker;
    unsigned long before = w->n_replies;
    bool ok = s->check(req, s->arg);

    if (w->n_replies != before) {
        if (ok)
            fp_log(FP_LOG_ERROR, "auth scheme %s answered a request it let through", s->name);
        return false; /* answered: req is gone */
    }
    if (!ok) {
        fp_log(FP_LOG_ERROR, "auth scheme %s refused without answering", s->name);
        fp_http_error(req, 500, "internal error");
    }
    return ok;
}

const char *fp_http_param(const fp_http_req *req, const char *name)
{
    if (req->rt_ == NULL)
        return NULL;
    for (int i = 0; i < req->rt_->pat.nparams; i++)
        if (!strcmp(req->rt_->pat.names[i], name))
            return req->params_[i];
    return NULL;
}

void fp_http_on_request(struct evhttp_request *evr, void *arg)
{
    listener_ctx *lc = arg;
    fp_http_worker *w = lc->w;
    fp_http_server *srv = w->srv;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(evr);
    struct evhttp_connection *evcon = evhttp_request_get_connection(evr);
    struct evbuffer *in = evhttp_request_get_input_buffer(evr);
    const fp_http_route *route = NULL;
    const fp_http_auth_scheme *scheme;
    const fp_http_rt *rt;
    fp_http_req *req = NULL;
    fp_http_path path;
    fp_http_found found;
    const char *raw_path, *q;
    size_t blen, limit;
    int mbit, prc;

    fp_conn *conn = fp_conn_of(srv, evr);
    bool last = conn != NULL && fp_conn_dispatched(conn, evr);

    atomic_fetch_add(&srv->inflight, 1);
    w->inflight++; /* until fp_http_reply: the drain waits for it (drain.c) */
    req = calloc(1, sizeof(*req));
    if (req == NULL) {
        struct evbuffer *out = evhttp_request_get_output_buffer(evr);
        atomic_fetch_sub(&srv->inflight, 1);
        w->inflight--;
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
    prc = fp_http_path_parse(&path, raw_path, NULL);
    req->path_buf_ = path.buf; /* the request owns it from here */
    req->path = path.decoded;
    if (prc != FP_ERR_OK) {
        fp_http_error(req, prc == FP_ERR_NOMEM ? 500 : 400, "malformed request path");
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
            fp_http_reply_429(req, retry, "too many requests from this address");
            return;
        }
    }
    if (atomic_load(&srv->draining)) {
        /* in flight when the drain began, or sent on a connection we had
         * not closed yet: answered, and the connection closed after it */
        fp_http_add_header(req, "Connection", "close");
    }

    fp_http_router_find(&srv->router, lc->kind, mbit, &path, &found);
    if (found.rt == NULL) {
        if (found.allowed) {
            char allow[64];
            allow_header(found.allowed, allow, sizeof(allow));
            fp_http_add_header(req, "Allow", allow);
            fp_http_error(req, 405, "method %s not allowed here", req->method_name);
        } else if (found.overlong) {
            fp_http_error(req, 414, "path parameter longer than %d bytes", FP_HTTP_PARAM_MAX);
        } else {
            fp_http_error(req, 404, "no such resource");
        }
        return;
    }
    rt = found.rt;
    route = rt->route;
    req->rt_ = rt;
    req->route = route;
    req->mod_state = srv->mods[rt->mod].state;
    req->worker_state = srv->mods[rt->mod].wstate[w->index];
    req->rest = found.rest;
    for (int i = 0; i < rt->pat.nparams; i++)
        req->params_[i] = found.values[i];

    blen = evbuffer_get_length(in);
    limit = route->max_body ? route->max_body : (size_t)srv->opts.max_body_bytes;
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
    /* authentication before the body is handed over (SECURITY.md,
     * "Authentication before work"), unless the scheme judges the body */
    scheme = &srv->auth[rt->auth];
    if (!(scheme->flags & FP_HTTP_AUTH_NEEDS_BODY) && !run_auth(req, scheme))
        return;
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

    if ((scheme->flags & FP_HTTP_AUTH_NEEDS_BODY) && !run_auth(req, scheme))
        return;
    route->fn(req); /* FP_HTTP_DONE or FP_HTTP_DEFERRED: either way req is theirs */
}
