/* http_util.c - body and header codecs shared by HTTP modules (no libevent). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "http.h"

/* Does path match pattern?  Sets *wild, *wlen and *rest (pointers into path). */
bool fp_http_path_match(const char *pat, const char *path, const char **wild, size_t *wlen,
                       const char **rest)
{
    const char *start = pat;
    *wild = NULL;
    *wlen = 0;
    *rest = NULL;
    while (*pat) {
        if (pat[0] == '/' && pat[1] == '*' && pat[2] == '*' && pat[3] == '\0') {
            if (*path != '/')
                return false;
            *rest = path + 1;
            return true;
        }
        if (pat[0] == '*' && (pat[1] == '/' || pat[1] == '\0') && pat > start && pat[-1] == '/') {
            const char *end = path;
            while (*end && *end != '/')
                end++;
            if (end == path)
                return false;
            *wild = path;
            *wlen = (size_t)(end - path);
            path = end;
            pat++;
            continue;
        }
        if (*pat != *path)
            return false;
        pat++;
        path++;
    }
    return *path == '\0';
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int fp_b64_decode_lenient(const char *in, size_t len, size_t max,
                          unsigned char **out, size_t *outlen, fp_error *err)
{
    unsigned char *o = NULL;
    size_t n = 0, pad = 0, cap;
    unsigned acc = 0;
    int bits = 0;

    *out = NULL;
    *outlen = 0;
    cap = len / 4 * 3 + 3;
    if (cap > max + 3)
        cap = max + 3;
    o = malloc(cap + 1);
    if (o == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0)
            goto malformed; /* data after padding */
        if ((v = b64_value(c)) < 0)
            goto malformed;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= max) {
                free(o);
                return fp_err_set(err, FP_ERR_TOO_LARGE, "decoded body larger than %zu bytes", max);
            }
            o[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* RFC 4648 3.5: 2 or 4 leftover bits must be zero, padding must
     * complete the last quantum; a lone 6-bit leftover is impossible */
    if (acc != 0 || !((bits == 0 && pad == 0) || (bits == 4 && (pad == 2 || pad == 0)) ||
                      (bits == 2 && (pad == 1 || pad == 0))))
        goto malformed;
    if (n == 0)
        goto malformed;
    *out = o;
    *outlen = n;
    return FP_ERR_OK;
malformed:
    free(o);
    return fp_err_set(err, FP_ERR_ARG, "body is not valid base64");
}

int fp_b64_encode_lines(const unsigned char *in, size_t len, char **out,
                        size_t *outlen, fp_error *err)
{
    size_t full = (len + 2) / 3 * 4, lines = full / 64 + 1;
    char *o = malloc(full + lines + 1);
    size_t n = 0;

    *out = NULL;
    if (o == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (size_t off = 0; off < len; off += 48) {
        size_t chunk = len - off < 48 ? len - off : 48;
        n += (size_t)EVP_EncodeBlock((unsigned char *)o + n, in + off, (int)chunk);
        o[n++] = '\n';
    }
    o[n] = '\0';
    *out = o;
    if (outlen)
        *outlen = n;
    return FP_ERR_OK;
}

#define BASIC_MAX 1024

int fp_http_basic_parse(const char *header, char **user, char **pass,
                        size_t *passlen, fp_error *err)
{
    unsigned char *dec = NULL;
    size_t dlen = 0;
    const char *p = header;
    char *colon;
    int rc;

    *user = *pass = NULL;
    *passlen = 0;
    if (header == NULL || strncasecmp(p, "Basic", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
        return fp_err_set(err, FP_ERR_ARG, "not a Basic authorization");
    p += 5;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strlen(p) > BASIC_MAX)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "Basic credentials too long");
    for (const char *q = p; *q; q++)
        if (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            return fp_err_set(err, FP_ERR_ARG, "malformed Basic credentials");
    if ((rc = fp_b64_decode_lenient(p, strlen(p), BASIC_MAX, &dec, &dlen, err)) != FP_ERR_OK)
        return fp_err_set(err, FP_ERR_ARG, "malformed Basic credentials");
    /* RFC 7617 2: user-id may not contain ':'; no NUL bytes anywhere */
    colon = memchr(dec, ':', dlen);
    if (colon == NULL || memchr(dec, '\0', dlen) != NULL || colon == (char *)dec) {
        OPENSSL_clear_free(dec, dlen);
        return fp_err_set(err, FP_ERR_ARG, "malformed Basic credentials");
    }
    *user = strndup((char *)dec, (size_t)(colon - (char *)dec));
    *passlen = dlen - (size_t)(colon - (char *)dec) - 1;
    *pass = OPENSSL_malloc(*passlen + 1);
    if (*user == NULL || *pass == NULL) {
        OPENSSL_clear_free(dec, dlen);
        fp_http_basic_free(*user, *pass, *passlen);
        *user = *pass = NULL;
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    memcpy(*pass, colon + 1, *passlen);
    (*pass)[*passlen] = '\0';
    OPENSSL_clear_free(dec, dlen);
    return FP_ERR_OK;
}

void fp_http_basic_free(char *user, char *pass, size_t passlen)
{
    free(user);
    if (pass != NULL)
        OPENSSL_clear_free(pass, passlen + 1);
}
