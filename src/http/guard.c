/*
 * guard.c - see guard.h.  One state machine over the byte stream of a
 * connection; each request is scanned in order (pipelined ones too).
 */
#include "guard.h"

#include <string.h>
#include <strings.h>

enum {
    S_START,      /* before a request line (empty lines are skipped, 7230 3.5) */
    S_REQLINE,    /* request line: method SP target SP version */
    S_HEADER,     /* header field lines up to the empty line */
    S_BODY,       /* Content-Length bytes */
    S_CHUNK_SIZE, /* chunk-size [chunk-ext] line (7230 4.1) */
    S_CHUNK_DATA,
    S_CHUNK_END,  /* CRLF after chunk data */
    S_TRAILER,    /* trailer field lines up to the empty line */
    S_ERROR,
};

/* tchar (RFC 7230 3.2.6) */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* origin-form characters (RFC 3986 pchar plus '/' and, in the query, '?'),
 * the same set evhttp's URI parser accepts */
static bool is_pchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

/* Percent-encoding in the target (RFC 3986 2.1): true when c belongs to
 * one ('%' or one of its two hex digits); g->pct_ counts where we are in
 * it (1 after '%', 2 after the first digit) and is -1 when malformed. */
static bool pct_byte(fp_http_guard *g, unsigned char c)
{
    if (g->pct_ > 0) {
        g->pct_ = !is_hex(c) ? -1 : g->pct_ == 2 ? 0 : 2;
        return true;
    }
    if (c == '%') {
        g->pct_ = 1;
        return true;
    }
    return false;
}

static int fail(fp_http_guard *g, int status, const char *why)
{
    g->st_ = S_ERROR;
    g->status = status;
    g->why = why;
    return FP_GUARD_ERROR;
}

void fp_http_guard_init(fp_http_guard *g, size_t max_header, uint64_t max_body)
{
    memset(g, 0, sizeof(*g));
    g->max_header = max_header;
    g->max_body = max_body;
    g->st_ = S_START;
}

bool fp_http_guard_busy(const fp_http_guard *g)
{
    return g->st_ != S_START && g->st_ != S_ERROR;
}

static void begin_request(fp_http_guard *g)
{
    g->method[0] = g->target[0] = '\0';
    g->target_cut = g->has_body = false;
    g->body_len = 0;
    g->hbytes_ = g->llen_ = g->mlen_ = g->tlen_ = 0;
    g->llong_ = g->have_cl_ = g->have_te_ = g->chunked_ = g->cr_ = g->http10_ = false;
    g->rl_part_ = 0;
    g->pct_ = 0;
    g->abs_ = 0;
    g->left_ = 0;
    g->st_ = S_REQLINE;
}

/* Request line byte c (not CR/LF). */
static int reqline_byte(fp_http_guard *g, unsigned char c)
{
    switch (g->rl_part_) {
    case 0: /* method */
        if (c == ' ') {
            if (g->mlen_ == 0)
                return fail(g, 400, "malformed request line");
            g->rl_part_ = 1;
            return FP_GUARD_MORE;
        }
        if (!is_tchar(c))
            return fail(g, 400, "malformed request method");
        if (g->mlen_ + 1 >= sizeof(g->method))
            return fail(g, 501, "method not implemented");
        g->method[g->mlen_++] = (char)c;
        g->method[g->mlen_] = '\0';
        return FP_GUARD_MORE;
    case 1: /* target: origin-form (RFC 7230 5.3.1), or the path of absolute-form */
        if (c == ' ') {
            if (g->tlen_ == 0 || g->pct_ != 0)
                return fail(g, 400, "malformed request target");
            g->rl_part_ = 2;
            g->llen_ = 0;
            return FP_GUARD_MORE;
        }
        if (g->tlen_ == 0 && c != '/') {
            /* absolute-form (RFC 7230 5.3.2: a server MUST accept it):
             * scheme "://" authority, then the path as in origin-form */
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                return fail(g, 400, "request target must be an absolute path or URI");
            g->rl_part_ = 4;
            g->abs_ = 0;
            break;
        }
        if (pct_byte(g, c)) {
            if (g->pct_ < 0)
                return fail(g, 400, "malformed percent-encoding in request target");
        } else if (c == '?') {
            g->rl_part_ = 3; /* query: '?' and '/' allowed from here */
        } else if (!is_pchar(c)) {
            return fail(g, 400, "invalid character in request target");
        }
        break;
    case 3: /* query */
        if (c == ' ') {
            if (g->pct_ != 0)
                return fail(g, 400, "malformed request target");
            g->rl_part_ = 2;
            g->llen_ = 0;
            return FP_GUARD_MORE;
        }
        if (pct_byte(g, c)) {
            if (g->pct_ < 0)
                return fail(g, 400, "malformed percent-encoding in request target");
        } else if (c != '?' && !is_pchar(c)) {
            return fail(g, 400, "invalid character in request target");
        }
        break;
    case 4: /* absolute-form: scheme, "://", authority up to the path */
        if (g->abs_ == 0) { /* scheme (RFC 3986 3.1) */
            if (c == ':') {
                g->abs_ = 1;
            } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) {
                return fail(g, 400, "malformed absolute URI in request target");
            }
        } else if (g->abs_ < 3) { /* the two slashes of "://" */
            if (c != '/')
                return fail(g, 400, "absolute URI in request target needs an authority");
            g->abs_++;
        } else if (c == '/') { /* the path begins: origin-form rules */
            if (g->abs_ == 3 || g->pct_ != 0)
                return fail(g, 400, "absolute URI in request target has an empty host");
            g->rl_part_ = 1;
        } else if (c == ' ') {
            if (g->abs_ == 3 || g->pct_ != 0)
                return fail(g, 400, "absolute URI in request target has an empty host");
            g->rl_part_ = 2; /* no path: "/" (RFC 7230 5.3.2) */
            g->llen_ = 0;
            return FP_GUARD_MORE;
        } else if (pct_byte(g, c)) {
            if (g->pct_ < 0)
                return fail(g, 400, "malformed percent-encoding in request target");
            g->abs_ = 4;
        } else if (c == '?' || !(is_pchar(c) || c == '[' || c == ']')) {
            /* authority (RFC 3986 3.2): no query without a path here */
            return fail(g, 400, "invalid character in the authority of the request target");
        } else {
            g->abs_ = 4;
        }
        break;
    default: /* version */
        if (g->llen_ >= 8)
            return fail(g, 400, "malformed HTTP version");
        g->line_[g->llen_++] = (char)c;
        return FP_GUARD_MORE;
    }
    /* a target byte: keep a prefix for the log */
    if (g->tlen_ + 1 < sizeof(g->target)) {
        g->target[g->tlen_] = (char)c;
        g->target[g->tlen_ + 1] = '\0';
    } else {
        g->target_cut = true;
    }
    g->tlen_++;
    return FP_GUARD_MORE;
}

static int reqline_end(fp_http_guard *g)
{
    if (g->rl_part_ != 2 || g->llen_ != 8 || memcmp(g->line_, "HTTP/", 5) != 0 ||
        g->line_[6] != '.' || g->line_[5] < '0' || g->line_[5] > '9' || g->line_[7] < '0' ||
        g->line_[7] > '9')
        return fail(g, 400, "malformed request line");
    /* 1.0 and 1.1 only: evhttp would echo a version such as 1.9 in its
     * status line, where RFC 7230 2.6 wants the one the server speaks */
    if (g->line_[5] != '1' || g->line_[7] > '1')
        return fail(g, 505, "HTTP version not supported"); /* RFC 7231 6.6.6 */
    g->http10_ = g->line_[7] == '0';
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", NULL};
    for (int i = 0; known[i]; i++)
        if (!strcmp(g->method, known[i]))
            goto ok;
    return fail(g, 501, "method not implemented"); /* RFC 7231 4.1 */
ok:
    g->st_ = S_HEADER;
    g->llen_ = 0;
    g->llong_ = false;
    return FP_GUARD_MORE;
}

/* "OWS value OWS" of a header line: trims into [*v, *v + *vlen). */
static void field_value(const char *s, size_t len, const char **v, size_t *vlen)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    *v = s;
    *vlen = len;
}

/* A complete header (or trailer) field line in line_ (llen_ bytes). */
static int header_line(fp_http_guard *g, bool trailer)
{
    const char *colon, *v;
    size_t nlen, vlen;

    if (g->line_[0] == ' ' || g->line_[0] == '\t')
        return fail(g, 400, "obsolete line folding"); /* RFC 7230 3.2.4 */
    colon = memchr(g->line_, ':', g->llen_);
    if (colon == NULL) {
        if (g->llong_)
            return FP_GUARD_MORE; /* name longer than we keep: not one we check */
        return fail(g, 400, "malformed header field");
    }
    nlen = (size_t)(colon - g->line_);
    if (nlen == 0)
        return fail(g, 400, "malformed header field");
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)g->line_[i]))
            return fail(g, 400, "malformed header field name"); /* incl. space before ':' */
    field_value(colon + 1, g->llen_ - nlen - 1, &v, &vlen);
    if (nlen == 14 && !strncasecmp(g->line_, "Content-Length", 14)) {
        uint64_t n = 0;
        if (trailer)
            return fail(g, 400, "Content-Length in a trailer");
        if (g->llong_ || g->have_cl_)
            return fail(g, 400, "duplicate or oversize Content-Length"); /* 7230 3.3.2 */
        if (vlen == 0 || vlen > 18)
            return fail(g, 400, "invalid Content-Length");
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return fail(g, 400, "invalid Content-Length"); /* 1*DIGIT: no sign */
            n = n * 10 + (uint64_t)(v[i] - '0');
        }
        g->have_cl_ = true;
        g->body_len = n;
    } else if (nlen == 17 && !strncasecmp(g->line_, "Transfer-Encoding", 17)) {
        if (trailer)
            return fail(g, 400, "Transfer-Encoding in a trailer");
        if (g->llong_ || g->have_te_)
            return fail(g, 400, "duplicate Transfer-Encoding");
        /* evhttp strips only SP before a value: "chunked" after an HTAB
         * would be a body here and none to evhttp (request smuggling) */
        if (memchr(colon + 1, '\t', (size_t)(v - (colon + 1))) != NULL)
            return fail(g, 400, "tab before the Transfer-Encoding value");
        if (vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
            return fail(g, 501, "only chunked transfer coding is implemented"); /* 7230 3.3.1 */
        g->have_te_ = true;
    }
    return FP_GUARD_MORE;
}

static int header_end(fp_http_guard *g)
{
    /* evhttp reads no body on HEAD (evhttp_method_may_have_body): one
     * announced would be parsed by evhttp as the next request while we
     * skip it as a body (request smuggling); RFC 7231 4.3.2 gives a HEAD
     * body no meaning */
    if (!strcmp(g->method, "HEAD") && (g->have_te_ || (g->have_cl_ && g->body_len > 0)))
        return fail(g, 400, "body on a HEAD request");
    if (g->have_te_ && (g->have_cl_ || g->http10_))
        return fail(g, 400, "Transfer-Encoding with Content-Length or HTTP/1.0"); /* 7230 3.3.3 */
    if (g->have_te_) {
        g->has_body = true;
        g->chunked_ = true;
        g->body_len = 0;
        g->st_ = S_CHUNK_SIZE;
        g->llen_ = 0;
        g->clen_ = 0;
        return FP_GUARD_HEAD;
    }
    if (g->have_cl_ && g->body_len > g->max_body)
        return fail(g, 413, "request body too large");
    if (g->have_cl_ && g->body_len > 0) {
        g->has_body = true;
        g->left_ = g->body_len;
        g->st_ = S_BODY;
        return FP_GUARD_HEAD;
    }
    g->st_ = S_START;
    return FP_GUARD_END;
}

static int chunk_size_line(fp_http_guard *g)
{
    uint64_t n = 0;
    size_t i = 0;

    for (; i < g->llen_ && is_hex((unsigned char)g->line_[i]); i++) {
        unsigned char c = (unsigned char)g->line_[i];
        if (i >= 15)
            return fail(g, 400, "invalid chunk size");
        n = n * 16 + (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    if (i == 0 || (i < g->llen_ && g->line_[i] != ';' && g->line_[i] != ' ' && g->line_[i] != '\t'))
        return fail(g, 400, "invalid chunk size");
    if (n > g->max_body || g->body_len + n > g->max_body)
        return fail(g, 413, "request body too large");
    g->llen_ = 0;
    g->clen_ = 0;
    if (n == 0) {
        g->st_ = S_TRAILER;
        return FP_GUARD_MORE;
    }
    g->body_len += n;
    g->left_ = n;
    g->st_ = S_CHUNK_DATA;
    return FP_GUARD_MORE;
}

int fp_http_guard_feed(fp_http_guard *g, const unsigned char *p, size_t n, size_t *used)
{
    size_t i = 0;
    int rc = FP_GUARD_MORE;

    while (i < n && rc == FP_GUARD_MORE) {
        unsigned char c;

        if (g->st_ == S_ERROR) {
            *used = i;
            return FP_GUARD_ERROR;
        }
        if (g->st_ == S_BODY || g->st_ == S_CHUNK_DATA) {
            size_t take = n - i < g->left_ ? n - i : (size_t)g->left_;
            i += take;
            g->left_ -= take;
            if (g->left_ == 0) {
                if (g->st_ == S_BODY) {
                    g->st_ = S_START;
                    rc = FP_GUARD_END;
                } else {
                    g->st_ = S_CHUNK_END;
                    g->cr_ = false;
                }
            }
            continue;
        }
        c = p[i++];
        if (g->st_ == S_START) {
            /* empty lines before a request line are ignored (7230 3.5); a
             * CR not followed by LF is not one: evhttp would wait for its
             * line end with no request begun here, so no header deadline
             * (one CR per idle timeout held the connection) */
            if (g->cr_ && c != '\n') {
                rc = fail(g, 400, "bare CR");
                break;
            }
            if (c == '\r' || c == '\n') {
                g->cr_ = c == '\r';
                continue;
            }
            begin_request(g);
        }
        if (g->st_ == S_REQLINE || g->st_ == S_HEADER || g->st_ == S_TRAILER) {
            if (++g->hbytes_ > g->max_header) {
                rc = fail(g, 431, "request header fields too large"); /* RFC 6585 5 */
                break;
            }
        }
        if (g->cr_ && c != '\n') {
            rc = fail(g, 400, "bare CR");
            break;
        }
        if (c == '\r') {
            g->cr_ = true;
            continue;
        }
        if (c == '\n') {
            g->cr_ = false;
            switch (g->st_) {
            case S_REQLINE:
                rc = reqline_end(g);
                break;
            case S_HEADER:
            case S_TRAILER:
                if (g->llen_ == 0) {
                    if (g->st_ == S_HEADER) {
                        rc = header_end(g);
                    } else {
                        g->st_ = S_START;
                        rc = FP_GUARD_END;
                    }
                } else {
                    rc = header_line(g, g->st_ == S_TRAILER);
                }
                g->llen_ = 0;
                g->llong_ = false;
                break;
            case S_CHUNK_SIZE:
                rc = chunk_size_line(g);
                break;
            case S_CHUNK_END:
                if (g->llen_ != 0) {
                    rc = fail(g, 400, "chunk data longer than its size");
                    break;
                }
                g->st_ = S_CHUNK_SIZE;
                g->llen_ = 0;
                break;
            default:
                break;
            }
            continue;
        }
        /* a byte inside a line */
        if (c < 0x20 && c != '\t') {
            rc = fail(g, 400, "control character in request");
            break;
        }
        if (c == 0x7f) {
            rc = fail(g, 400, "control character in request");
            break;
        }
        switch (g->st_) {
        case S_REQLINE:
            rc = reqline_byte(g, c);
            break;
        case S_HEADER:
        case S_TRAILER:
            if (g->llen_ < sizeof(g->line_))
                g->line_[g->llen_++] = (char)c;
            else
                g->llong_ = true;
            break;
        case S_CHUNK_SIZE:
            /* chunk-size and extensions: bounded (extensions are ignored) */
            if (++g->clen_ > 4096) {
                rc = fail(g, 400, "chunk extension too long");
                break;
            }
            /* past the 15 digits a size can have, a byte is an extension:
             * the request's extensions share the header budget, or a
             * client sending 1-byte chunks with 4 KB extensions would buy
             * 4096 times the body deadline min_body_rate allows for the
             * body itself (conn.c counts every byte received) */
            if (g->clen_ > 16 && ++g->hbytes_ > g->max_header) {
                rc = fail(g, 400, "chunk extensions too long");
                break;
            }
            if (g->llen_ < sizeof(g->line_))
                g->line_[g->llen_++] = (char)c;
            break;
        case S_CHUNK_END:
            g->llen_++;
            rc = fail(g, 400, "chunk data longer than its size");
            break;
        default:
            break;
        }
    }
    *used = i;
    return rc;
}
