/*
 * http.h - the HTTP/1.1 client framing the EST client needs (RFC 9112):
 * one request per connection, a response read through a bounded reader.
 * No I/O of its own: the reader callback supplies bytes (a TLS connection
 * in the library, a memory buffer in the unit tests).
 */
#ifndef FPD_HTTP_H
#define FPD_HTTP_H

#include "dev_int.h"

#define FPD_HTTP_HEAD_MAX 8192 /* status line + header fields (+ trailers) */
#define FPD_HTTP_CT_MAX 200    /* longest Content-Type value kept */

typedef struct {
    /* up to n bytes into buf; *got = 0 only at a clean end of stream */
    int (*read)(void *ctx, void *buf, size_t n, size_t *got, fpd_errbuf *e);
    void *ctx;
} fpd_reader;

typedef struct {
    int status;
    char content_type[FPD_HTTP_CT_MAX + 1];
    long retry_after; /* -1 when absent or not delta-seconds */
    fpd_buf body;
} fpd_http_resp;

/* Appends a request to out.  basic_b64: base64 of "user:password" or NULL;
 * body may be NULL for GET. */
int fpd_http_request(fpd_buf *out, const char *method, const char *host, unsigned port,
                     const char *path, const char *basic_b64, const char *content_type,
                     const void *body, size_t body_len);

/* Reads one response: MALFORMED (bad framing), TOO_BIG (head over
 * FPD_HTTP_HEAD_MAX or body over max_body), TRUNCATED (stream ended
 * early), or the reader's error.  out->body is freed by the caller
 * (fpd_http_resp_free) whatever the result. */
int fpd_http_read_response(const fpd_reader *r, size_t max_body, fpd_http_resp *out,
                           fpd_errbuf *e);
void fpd_http_resp_free(fpd_http_resp *r);

/* Content-Type media type check: 1 when ct's type/subtype equals want
 * (case-insensitive), parameters ignored. */
int fpd_http_ct_is(const char *ct, const char *want);
/* Value of parameter name in a Content-Type (token or quoted-string,
 * RFC 9110 5.6.6) into out; 0 found, -1 absent or malformed. */
int fpd_http_ct_param(const char *ct, const char *name, char *out, size_t size);

#endif
