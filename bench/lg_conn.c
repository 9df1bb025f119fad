/*
 * lg_conn.c - one blocking client connection (TCP, optionally TLS) and a
 * minimal HTTP/1.1 exchange over it.  See loadgen.h.
 *
 * Blocking sockets with SO_RCVTIMEO/SO_SNDTIMEO: a stalled server turns
 * into an error after io_timeout_ms rather than a hung benchmark.  The
 * response reader understands Content-Length, chunked transfer coding
 * (RFC 9112 7.1) and close-delimited bodies, and tracks whether the
 * server will keep the connection open (RFC 9112 9.3).
 */
#define _GNU_SOURCE
#include "loadgen.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#define HDR_MAX (64 * 1024)

void lg_conn_init(lg_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

int lg_conn_open(lg_conn *c, const lg_target *t)
{
    struct timeval tv = {t->io_timeout_ms / 1000, (t->io_timeout_ms % 1000) * 1000};
    int one = 1;

    lg_conn_close(c);
    c->fd = socket(t->addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(c->fd, (struct sockaddr *)t->addr, t->addrlen) != 0)
        goto fail;
    if (t->ctx != NULL) {
        /* A fresh SSL with no session set: always a full handshake. */
        c->ssl = SSL_new(t->ctx);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
            goto fail;
        if (c->cert != NULL && (SSL_use_certificate(c->ssl, c->cert) != 1 ||
                                SSL_use_PrivateKey(c->ssl, c->key) != 1))
            goto fail;
        if (SSL_connect(c->ssl) != 1)
            goto fail;
    }
    c->reusable = true;
    c->len = 0;
    return 0;
fail:
    ERR_clear_error();
    lg_conn_close(c);
    return -1;
}

void lg_conn_close(lg_conn *c)
{
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->len = 0;
    c->reusable = false;
}

void lg_conn_free(lg_conn *c)
{
    lg_conn_close(c);
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
}

static int conn_write(lg_conn *c, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (c->ssl != NULL) {
            size_t done = 0;
            if (SSL_write_ex(c->ssl, p, n, &done) != 1) {
                ERR_clear_error();
                return -1;
            }
            w = (ssize_t)done;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read more bytes into c->buf (growing it up to limit).  >0 bytes read,
 * 0 on orderly EOF, -1 on error or when the buffer would pass limit. */
static ssize_t conn_fill(lg_conn *c, size_t limit)
{
    if (c->len == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16384;
        unsigned char *nb;
        if (c->cap >= limit)
            return -1;
        if (ncap > limit)
            ncap = limit;
        nb = realloc(c->buf, ncap);
        if (nb == NULL)
            return -1;
        c->buf = nb;
        c->cap = ncap;
    }
    for (;;) {
        if (c->ssl != NULL) {
            size_t got = 0;
            int r = SSL_read_ex(c->ssl, c->buf + c->len, c->cap - c->len, &got);
            if (r == 1) {
                c->len += got;
                return (ssize_t)got;
            }
            r = SSL_get_error(c->ssl, r);
            ERR_clear_error();
            return r == SSL_ERROR_ZERO_RETURN ? 0 : -1;
        } else {
            ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r > 0)
                c->len += (size_t)r;
            return r;
        }
    }
}

/* End of the header block ("\r\n\r\n"), or NULL.  memchr-based: glibc's
 * memmem pays a set-up cost per call that shows in profiles. */
static const unsigned char *find_crlfcrlf(const unsigned char *p, size_t n)
{
    const unsigned char *q = p, *end = p + n;
    while (q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
        if (q - p >= 3 && q[-1] == '\r' && q[-2] == '\n' && q[-3] == '\r')
            return q - 3;
        q++;
    }
    return NULL;
}

/* Next "\r\n" in [p, end), or NULL. */
static const char *find_crlf(const char *p, const char *end)
{
    while (p < end && (p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
        if (p + 1 < end && p[1] == '\n')
            return p;
        p++;
    }
    return NULL;
}

/* Header value lookup within [h, end): case-insensitive name, value
 * copied (trimmed) into out.  1 if found. */
static int header_get(const char *h, const char *end, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    const char *line = h;
    while (line < end) {
        const char *eol = find_crlf(line, end);
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            size_t vl;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            vl = (size_t)(eol - v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= size)
                vl = size - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 1;
        }
        line = eol + 2;
    }
    return 0;
}

/* Decode a chunked body that starts at c->buf + off, in place, reading
 * more as needed.  On success the body is c->buf[off .. off + *blen). */
static int read_chunked(lg_conn *c, size_t off, size_t *blen)
{
    size_t in = off, out = off;
    for (;;) {
        const unsigned char *eol;
        char *endp;
        unsigned long sz;
        while ((eol = (const unsigned char *)find_crlf((const char *)c->buf + in, (const char *)c->buf + c->len)) == NULL)
            if (conn_fill(c, LG_MAX_RESPONSE) <= 0)
                return -1;
        sz = strtoul((const char *)c->buf + in, &endp, 16);
        if ((const unsigned char *)endp == c->buf + in || sz > LG_MAX_RESPONSE)
            return -1;
        in = (size_t)(eol - c->buf) + 2;
        if (sz == 0) {
            /* trailers (none expected) end with an empty line */
            while (find_crlf((const char *)c->buf + in, (const char *)c->buf + c->len) == NULL)
                if (conn_fill(c, LG_MAX_RESPONSE) <= 0)
                    return -1;
            *blen = out - off;
            return 0;
        }
        while (c->len - in < sz + 2)
            if (conn_fill(c, LG_MAX_RESPONSE) <= 0)
                return -1;
        memmove(c->buf + out, c->buf + in, sz);
        out += sz;
        in += sz + 2;
    }
}

int lg_http_exchange(lg_conn *c, const unsigned char *req, size_t req_len, lg_resp *resp)
{
    const unsigned char *hend;
    const char *h, *hstop;
    char val[96];
    size_t hlen, blen = 0;
    int minor;

    memset(resp, 0, sizeof(*resp));
    c->len = 0; /* no pipelining: nothing may be buffered between exchanges */
    if (conn_write(c, req, req_len) != 0)
        goto fail;
    while ((hend = find_crlfcrlf(c->buf, c->len)) == NULL)
        if (conn_fill(c, HDR_MAX) <= 0)
            goto fail;
    hlen = (size_t)(hend - c->buf) + 4;
    h = (const char *)c->buf;
    hstop = (const char *)hend + 2;
    if (hlen < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ')
        goto fail;
    minor = h[7] - '0';
    resp->status = atoi(h + 9);
    if (resp->status < 100 || resp->status > 599)
        goto fail;
    c->reusable = minor >= 1;
    if (header_get(h, hstop, "Connection", val, sizeof(val)))
        c->reusable = strcasecmp(val, "close") != 0 &&
                      (minor >= 1 || strcasecmp(val, "keep-alive") == 0);
    if (header_get(h, hstop, "Content-Type", resp->ctype, sizeof(resp->ctype)) == 0)
        resp->ctype[0] = '\0';
    if (header_get(h, hstop, "Transfer-Encoding", val, sizeof(val)) &&
        strcasecmp(val, "chunked") == 0) {
        if (read_chunked(c, hlen, &blen) != 0)
            goto fail;
    } else if (header_get(h, hstop, "Content-Length", val, sizeof(val))) {
        char *endp;
        unsigned long cl = strtoul(val, &endp, 10);
        if (*endp != '\0' || cl > LG_MAX_RESPONSE)
            goto fail;
        while (c->len < hlen + cl)
            if (conn_fill(c, hlen + cl) <= 0)
                goto fail;
        blen = cl;
    } else if (resp->status == 204 || resp->status == 304) {
        blen = 0;
    } else {
        ssize_t r;
        while ((r = conn_fill(c, LG_MAX_RESPONSE)) > 0)
            ;
        if (r < 0)
            goto fail;
        blen = c->len - hlen;
        c->reusable = false;
    }
    resp->body = c->buf + hlen;
    resp->body_len = blen;
    return 0;
fail:
    lg_conn_close(c);
    return -1;
}
