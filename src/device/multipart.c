/*
 * multipart.c - RFC 2046 5.1.1 multipart body parser.
 *
 *   body := [preamble CRLF] dash-boundary *LWSP CRLF part
 *           *(CRLF dash-boundary *LWSP CRLF part)
 *           CRLF dash-boundary "--" [epilogue]
 * A delimiter is recognised only at the start of the body or after CRLF;
 * a part is MIME headers, an empty line and its content up to the next
 * CRLF delimiter.  The boundary is 1-70 characters (5.1.1).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

static const unsigned char *find(const unsigned char *h, size_t hlen, const char *n, size_t nlen)
{
    for (size_t i = 0; nlen <= hlen && i <= hlen - nlen; i++)
        if (h[i] == (unsigned char)n[0] && memcmp(h + i, n, nlen) == 0)
            return h + i;
    return NULL;
}

/* Part headers from p up to the empty line; sets the part's Content-Type
 * and returns the content start, NULL on bad headers. */
static const unsigned char *part_headers(const unsigned char *p, const unsigned char *end,
                                         fpd_part *part, fpd_errbuf *e)
{
    part->content_type[0] = '\0';
    for (;;) {
        const unsigned char *eol = find(p, (size_t)(end - p), "\r\n", 2);
        const unsigned char *colon, *v, *ve;
        size_t vlen;
        if (eol == NULL)
            return NULL;
        if (eol == p)
            return p + 2; /* the empty line */
        for (colon = p; colon < eol && *colon != ':'; colon++)
            if (*colon == ' ' || *colon == '\t' || *colon < 0x21 || *colon > 0x7e)
                return NULL; /* no folding, no odd bytes in a field name */
        if (colon == eol || colon == p)
            return NULL;
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
            ;
        for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
            ;
        vlen = (size_t)(ve - v);
        for (const unsigned char *c = v; c < ve; c++)
            if (*c < 0x20 && *c != '\t')
                return NULL;
        if ((size_t)(colon - p) == 12 && !strncasecmp((const char *)p, "Content-Type", 12)) {
            if (vlen > FPD_HTTP_CT_MAX || part->content_type[0] != '\0')
                return NULL;
            memcpy(part->content_type, v, vlen);
            part->content_type[vlen] = '\0';
        } else if ((size_t)(colon - p) == 25 &&
                   !strncasecmp((const char *)p, "Content-Transfer-Encoding", 25)) {
            /* RFC 8951 3: EST content is base64 whatever this says; but a
             * part that claims anything else is not one we can read */
            if (!(vlen == 6 && !strncasecmp((const char *)v, "base64", 6)))
                return NULL;
        }
        p = eol + 2;
    }
}

int fpd_multipart_parse(const char *ct, const unsigned char *body, size_t len, fpd_part *parts,
                        size_t max, size_t *n, fpd_errbuf *e)
{
    char bnd[80], delim[84];
    size_t dlen;
    const unsigned char *p, *end;

    *n = 0;
    /* an empty answer has no body buffer at all: pointer arithmetic on
     * NULL is undefined even for an offset of 0 */
    if (body == NULL || len == 0)
        return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "empty multipart answer");
    end = body + len;
    if (!fpd_http_ct_is(ct, "multipart/mixed"))
        return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "serverkeygen answer is not multipart/mixed");
    if (fpd_http_ct_param(ct, "boundary", bnd, sizeof(bnd)) != 0 || strlen(bnd) > 70 ||
        bnd[strlen(bnd) - 1] == ' ')
        return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "multipart answer without a valid boundary");
    dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", bnd);

    /* first delimiter: at the very start, or after a preamble's CRLF */
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0)
        p = body + dlen - 2;
    else if ((p = find(body, len, delim, dlen)) != NULL)
        p += dlen;
    else
        return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "multipart answer has no delimiter");

    for (;;) {
        const unsigned char *next, *content;
        /* after a delimiter: "--" closes, else LWSP* CRLF opens a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2)
            return fpd_err(e, FP_DEVICE_ERR_TRUNCATED, "multipart answer ends after a delimiter");
        if (p[0] != '\r' || p[1] != '\n')
            return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bad multipart delimiter line");
        p += 2;
        if (*n == max)
            return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "multipart answer has more than %zu parts", max);
        if ((content = part_headers(p, end, &parts[*n], e)) == NULL)
            return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bad header in multipart part %zu", *n + 1);
        if ((next = find(content, (size_t)(end - content), delim, dlen)) == NULL)
            return fpd_err(e, FP_DEVICE_ERR_TRUNCATED, "multipart part %zu has no closing delimiter", *n + 1);
        parts[*n].data = content;
        parts[*n].len = (size_t)(next - content);
        (*n)++;
        p = next + dlen;
    }
    return FP_DEVICE_OK;
}
