/*
 * guard.h - a strict, incremental scanner of HTTP/1.1 request framing
 * (RFC 7230), run on every byte a client sends BEFORE libevent's evhttp
 * parses it.  It answers what evhttp would get wrong or answer badly:
 * ambiguous or malformed message length (duplicate, signed or overflowing
 * Content-Length, Transfer-Encoding other than chunked, both at once:
 * RFC 7230 3.3.2-3.3.3, the request-smuggling cases), obs-fold (3.2.4),
 * control bytes, an oversize header block (431, RFC 6585 5), and it tells
 * the connection code where a request's header and body end, so deadlines
 * can follow the request and not the last byte received.
 *
 * No libevent here: the scanner is a pure function of the bytes (unit
 * tested and fuzzed on its own).
 */
#ifndef FP_HTTP_GUARD_H
#define FP_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    FP_GUARD_MORE = 0, /* every byte consumed, request not complete */
    FP_GUARD_HEAD,     /* header block complete, a body follows */
    FP_GUARD_END,      /* request complete (header and body, if any) */
    FP_GUARD_ERROR,    /* framing error: answer g->status, close */
};

#define FP_GUARD_TARGET_MAX 256

typedef struct fp_http_guard {
    /* limits (set before the first feed) */
    size_t max_header;  /* request line + header fields + CRLFs */
    uint64_t max_body;  /* Content-Length or sum of chunk sizes */

    /* result of the current (or last) request */
    int status;         /* on FP_GUARD_ERROR: 400, 413, 431, 501 or 505 */
    const char *why;    /* on FP_GUARD_ERROR: short reason (static) */
    char method[16];    /* request method as sent (cut), "" if none yet */
    char target[FP_GUARD_TARGET_MAX]; /* request target (cut) */
    bool target_cut;
    bool has_body;      /* at FP_GUARD_HEAD/END: a body was announced */
    uint64_t body_len;  /* Content-Length, or bytes of chunk data so far */

    /* private scanner state */
    int st_;
    size_t hbytes_;
    size_t llen_;
    bool llong_;
    char line_[128];
    size_t mlen_, tlen_;
    int rl_part_;
    int pct_;
    int abs_;           /* absolute-form: 0 scheme, 1-2 "//", 3 authority, 4 host seen */
    bool have_cl_, have_te_, chunked_, cr_, http10_;
    uint64_t left_;
    size_t clen_;
} fp_http_guard;

/* Start scanning a new connection with the given limits. */
void fp_http_guard_init(fp_http_guard *g, size_t max_header, uint64_t max_body);

/* Scan up to n bytes.  *used is how many were consumed: all of them for
 * FP_GUARD_MORE; up to and including the event's last byte otherwise
 * (call again with the rest: the next request may follow at once).
 * After FP_GUARD_ERROR the guard stays in error. */
int fp_http_guard_feed(fp_http_guard *g, const unsigned char *p, size_t n, size_t *used);

/* A request has begun (some byte of it seen) and has not ended. */
bool fp_http_guard_busy(const fp_http_guard *g);

#endif
