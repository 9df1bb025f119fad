/*
 * http.c - HTTP/1.1 client framing (RFC 9112) with strict bounds.
 *
 * What a device accepts from the network decides whether a hostile or
 * broken server can hurt it, so the reader is strict: CRLF line ends only
 * (no bare LF, no obs-fold, RFC 9112 2.2, 5.2), one Content-Length or
 * chunked but never both (6.3: a sign of smuggling), every length bounded
 * before anything is allocated, and an answer that ends early is
 * TRUNCATED, never "complete".
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

int fpd_http_request(fpd_buf *out, const char *method, const char *host, unsigned port,
                     const char *path, const char *basic_b64, const char *content_type,
                     const void *body, size_t body_len)
{
    /* RFC 9110 7.2: an IPv6 literal in Host is bracketed */
    const char *lb = strchr(host, ':') ? "[" : "", *rb = strchr(host, ':') ? "]" : "";

    if (fpd_buf_addf(out, "%s %s HTTP/1.1\r\nHost: %s%s%s:%u\r\n", method, path, lb, host, rb,
                     port) != 0 ||
        fpd_buf_addf(out, "User-Agent: libfleetpki-device\r\nAccept: */*\r\nConnection: close\r\n") != 0)
        return -1;
    if (basic_b64 != NULL &&
        (fpd_buf_add(out, "Authorization: Basic ", 21) != 0 ||
         fpd_buf_add(out, basic_b64, strlen(basic_b64)) != 0 || fpd_buf_add(out, "\r\n", 2) != 0))
        return -1;
    if (body != NULL) {
        /* RFC 7030 4.2.1 / RFC 8951: base64 body, the header says so */
        if (fpd_buf_addf(out, "Content-Type: %s\r\nContent-Transfer-Encoding: base64\r\n"
                              "Content-Length: %zu\r\n",
                         content_type, body_len) != 0)
            return -1;
    }
    if (fpd_buf_add(out, "\r\n", 2) != 0)
        return -1;
    return body != NULL && body_len ? fpd_buf_add(out, body, body_len) : 0;
}

/* ---- buffered reading ---- */

typedef struct {
    const fpd_reader *r;
    unsigned char buf[1024];
    size_t pos, end;
    int eof;
} rd;

/* 0: a byte in *ch; 1: clean end of stream; else an error code */
static int rd_byte(rd *s, unsigned char *ch, fpd_errbuf *e)
{
    if (s->pos == s->end) {
        size_t got = 0;
        int rc;
        if (s->eof)
            return 1;
        if ((rc = s->r->read(s->r->ctx, s->buf, sizeof(s->buf), &got, e)) != FP_DEVICE_OK)
            return rc;
        if (got == 0) {
            s->eof = 1;
            return 1;
        }
        s->pos = 0;
        s->end = got;
    }
    *ch = s->buf[s->pos++];
    return 0;
}

/* One CRLF-terminated line into line (without the CRLF), charged to
 * *budget.  TRUNCATED at the end of stream, MALFORMED on a bare CR/LF or
 * NUL, TOO_BIG when the budget runs out. */
static int rd_line(rd *s, char *line, size_t size, size_t *budget, fpd_errbuf *e)
{
    size_t n = 0;
    unsigned char ch;
    int rc;

    for (;;) {
        if ((rc = rd_byte(s, &ch, e)) == 1)
            return fpd_err(e, FP_DEVICE_ERR_TRUNCATED, "answer ended inside its header");
        if (rc != 0)
            return rc;
        if (*budget == 0 || n + 1 >= size)
            return fpd_err(e, FP_DEVICE_ERR_TOO_BIG, "answer header over %d bytes", FPD_HTTP_HEAD_MAX);
        (*budget)--;
        if (ch == '\r') {
            if ((rc = rd_byte(s, &ch, e)) == 1)
                return fpd_err(e, FP_DEVICE_ERR_TRUNCATED, "answer ended inside its header");
            if (rc != 0)
                return rc;
            if (ch != '\n')
                return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bare CR in the answer header");
            line[n] = '\0';
            return 0;
        }
        if (ch == '\n' || ch == '\0')
            return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bare LF or NUL in the answer header");
        line[n++] = (char)ch;
    }
}

static int rd_body_bytes(rd *s, fpd_buf *b, size_t n, fpd_errbuf *e)
{
    while (n > 0) {
        size_t take;
        if (s->pos == s->end) {
            unsigned char ch;
            int rc = rd_byte(s, &ch, e);
            if (rc == 1)
                return fpd_err(e, FP_DEVICE_ERR_TRUNCATED, "answer body ended %zu bytes early", n);
            if (rc != 0)
                return rc;
            s->pos--; /* put it back: it is in buf */
        }
        take = s->end - s->pos < n ? s->end - s->pos : n;
        if (fpd_buf_add(b, s->buf + s->pos, take) != 0)
            return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        s->pos += take;
        n -= take;
    }
    return 0;
}

/* Decimal number of at most 18 digits (fits in long long); -1 if not. */
static long long parse_dec(const char *p)
{
    long long v = 0;
    size_t n = 0;
    if (*p == '\0')
        return -1;
    for (; *p; p++, n++) {
        if (!isdigit((unsigned char)*p) || n >= 18)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static int is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

void fpd_http_resp_free(fpd_http_resp *r)
{
    fpd_buf_free(&r->body, 1);
}

static int read_chunked(rd *s, size_t max_body, fpd_buf *b, size_t *budget, fpd_errbuf *e)
{
    char line[256];
    int rc;

    for (;;) {
        size_t size = 0, digits = 0, lb = 256 + 2;
        const char *p;
        /* chunk-size [ chunk-ext ] CRLF (RFC 9112 7.1) */
        if ((rc = rd_line(s, line, sizeof(line), &lb, e)) != 0)
            return rc == FP_DEVICE_ERR_TOO_BIG
                       ? fpd_err(e, FP_DEVICE_ERR_MALFORMED, "chunk-size line too long")
                       : rc;
        for (p = line; isxdigit((unsigned char)*p); p++, digits++) {
            if (digits >= 15)
                return fpd_err(e, FP_DEVICE_ERR_TOO_BIG, "chunk size out of range");
            size = size * 16 + (size_t)(isdigit((unsigned char)*p) ? *p - '0'
                                                                   : (tolower((unsigned char)*p) - 'a' + 10));
        }
        if (digits == 0 || (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t'))
            return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bad chunk-size line");
        if (size == 0)
            break;
        if (size > max_body || b->len + size > max_body)
            return fpd_err(e, FP_DEVICE_ERR_TOO_BIG, "answer body over %zu bytes", max_body);
        if ((rc = rd_body_bytes(s, b, size, e)) != 0)
            return rc;
        lb = 2;
        if ((rc = rd_line(s, line, sizeof(line), &lb, e)) != 0 || line[0] != '\0')
            return rc == FP_DEVICE_ERR_TRUNCATED ? rc
                                                 : fpd_err(e, FP_DEVICE_ERR_MALFORMED, "chunk not followed by CRLF");
    }
    /* trailer section: fields we ignore, up to the empty line, charged to
     * the header budget */
    for (;;) {
        if ((rc = rd_line(s, line, sizeof(line), budget, e)) != 0)
            return rc;
        if (line[0] == '\0')
            return 0;
    }
}

int fpd_http_read_response(const fpd_reader *r, size_t max_body, fpd_http_resp *out,
                           fpd_errbuf *e)
{
    rd *s = NULL;
    char *line = NULL;
    size_t budget = FPD_HTTP_HEAD_MAX;
    long long clen = -1;
    int chunked = 0, have_ct = 0, rc;

    memset(out, 0, sizeof(*out));
    out->retry_after = -1;
    if ((s = calloc(1, sizeof(*s))) == NULL || (line = malloc(FPD_HTTP_HEAD_MAX + 1)) == NULL) {
        rc = fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        goto out;
    }
    s->r = r;

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ];
     * interim 1xx answers (RFC 9110 15.2) are skipped */
    for (;;) {
        if ((rc = rd_line(s, line, FPD_HTTP_HEAD_MAX + 1, &budget, e)) != 0)
            goto out;
        if ((strncmp(line, "HTTP/1.1 ", 9) != 0 && strncmp(line, "HTTP/1.0 ", 9) != 0) ||
            !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
            !isdigit((unsigned char)line[11]) || (line[12] != ' ' && line[12] != '\0') ||
            line[9] < '1' || line[9] > '5') {
            rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "not an HTTP/1.x status line");
            goto out;
        }
        out->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        clen = -1;
        chunked = have_ct = 0;
        out->content_type[0] = '\0';
        out->retry_after = -1;
        /* field-line = field-name ":" OWS field-value OWS */
        for (;;) {
            char *colon, *v, *end;
            if ((rc = rd_line(s, line, FPD_HTTP_HEAD_MAX + 1, &budget, e)) != 0)
                goto out;
            if (line[0] == '\0')
                break;
            for (colon = line; is_tchar((unsigned char)*colon); colon++)
                ;
            if (colon == line || *colon != ':') {
                /* includes obs-fold (a line starting with SP/HTAB) */
                rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "malformed header field in the answer");
                goto out;
            }
            *colon = '\0';
            for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
                ;
            for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
                ;
            *end = '\0';
            for (const char *c = v; *c; c++)
                if ((unsigned char)*c < 0x20 && *c != '\t') {
                    rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "control byte in a header value");
                    goto out;
                }
            if (!strcasecmp(line, "Content-Length")) {
                long long n = parse_dec(v);
                if (n < 0 || (clen >= 0 && n != clen)) {
                    rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bad or conflicting Content-Length");
                    goto out;
                }
                clen = n;
            } else if (!strcasecmp(line, "Transfer-Encoding")) {
                if (strcasecmp(v, "chunked") != 0 || chunked) {
                    rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "unsupported Transfer-Encoding");
                    goto out;
                }
                chunked = 1;
            } else if (!strcasecmp(line, "Content-Type")) {
                if (have_ct || strlen(v) > FPD_HTTP_CT_MAX) {
                    rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "repeated or oversize Content-Type");
                    goto out;
                }
                have_ct = 1;
                memcpy(out->content_type, v, strlen(v) + 1);
            } else if (!strcasecmp(line, "Retry-After")) {
                long long n = parse_dec(v);
                out->retry_after = n >= 0 && n < 10000000 ? (long)n : -1;
            }
        }
        if (out->status >= 200)
            break;
    }
    if (chunked && clen >= 0) {
        rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "answer has both Content-Length and chunked");
        goto out;
    }
    /* RFC 9112 6.3: 204 and 304 have no body */
    if (out->status == 204 || out->status == 304) {
        rc = FP_DEVICE_OK;
        goto out;
    }
    if (chunked) {
        rc = read_chunked(s, max_body, &out->body, &budget, e);
    } else if (clen >= 0) {
        if ((unsigned long long)clen > max_body) {
            rc = fpd_err(e, FP_DEVICE_ERR_TOO_BIG, "answer body of %lld bytes (limit %zu)", clen, max_body);
            goto out;
        }
        rc = rd_body_bytes(s, &out->body, (size_t)clen, e);
    } else {
        /* RFC 9112 6.3 item 8: the body runs to the end of the connection;
         * only a clean TLS close (close_notify) ends it */
        unsigned char ch;
        for (;;) {
            if ((rc = rd_byte(s, &ch, e)) == 1) {
                rc = 0;
                break;
            }
            if (rc != 0)
                goto out;
            if (out->body.len >= max_body) {
                rc = fpd_err(e, FP_DEVICE_ERR_TOO_BIG, "answer body over %zu bytes", max_body);
                goto out;
            }
            if (fpd_buf_add(&out->body, &ch, 1) != 0) {
                rc = fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
                goto out;
            }
        }
    }
out:
    free(line);
    free(s);
    return rc;
}

/* ---- Content-Type (RFC 9110 8.3.1) ---- */

int fpd_http_ct_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

int fpd_http_ct_param(const char *ct, const char *name, char *out, size_t size)
{
    const char *p = strchr(ct, ';');
    size_t nlen = strlen(name);

    while (p != NULL) {
        size_t n = 0;
        int match;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        match = !strncasecmp(p, name, nlen) && p[nlen] == '=';
        while (is_tchar((unsigned char)*p))
            p++;
        if (*p != '=')
            return -1;
        p++;
        if (*p == '"') {
            /* quoted-string with quoted-pair */
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (match) {
                    if (n + 1 >= size)
                        return -1;
                    out[n++] = *p;
                }
            }
            if (*p != '"')
                return -1;
            p++;
        } else {
            for (; is_tchar((unsigned char)*p); p++) {
                if (match) {
                    if (n + 1 >= size)
                        return -1;
                    out[n++] = *p;
                }
            }
        }
        if (match) {
            out[n] = '\0';
            return n > 0 ? 0 : -1;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != ';' && *p != '\0')
            return -1;
        p = *p ? p : NULL;
    }
    return -1;
}
