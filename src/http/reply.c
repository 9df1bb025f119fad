/*
 * reply.c - answers: status line and headers, the body by copy, by
 * reference or as a secret to wipe, and the one log line per answer.
 */
#define _GNU_SOURCE
#include "http_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "../common/util.h"

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
    case 414: return "URI Too Long";
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

void fp_http_req_free(fp_http_req *req)
{
    if (req->principal != NULL && req->rt_ != NULL) {
        const fp_http_auth_scheme *s = &req->worker->srv->auth[req->rt_->auth];
        if (s->release != NULL)
            s->release(req->principal, s->arg);
    }
    free(req->path_buf_);
    free((char *)req->query);
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
    req->worker->inflight--; /* its connection owes the write now (n_unwritten) */
    req->worker->n_replies++;
    fp_http_req_free(req);
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

/* 429 Too Many Requests with Retry-After (RFC 6585 4, RFC 7231 7.1.3). */
void fp_http_reply_429(fp_http_req *req, int retry, const char *why)
{
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", retry);
    fp_http_add_header(req, "Retry-After", ra);
    fp_http_error(req, 429, "%s", why);
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
