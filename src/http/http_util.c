/* http_util.c - body and header codecs shared by HTTP modules (no libevent). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "http.h"

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

/*
 * Base64 (RFC 4648): the decoding itself is OpenSSL's EVP_DecodeBlock.
 * Here we only gather the significant characters (skipping line breaks
 * when allowed, mapping the URL-safe alphabet when allowed), check the
 * shape (padding only at the end and completing the last quantum, no lone
 * 6-bit group), and insist on the canonical encoding: re-encoding the
 * result must give back the input, which rejects non-zero trailing bits.
 */
int fp_b64_decode(const char *in, size_t len, unsigned flags, size_t max,
                  unsigned char **out, size_t *outlen, fp_error *err)
{
    char *clean = NULL, *again = NULL;
    unsigned char *o = NULL;
    size_t n = 0, pad = 0, rem, exact, padded;
    int rc = FP_ERR_OK;

    *out = NULL;
    *outlen = 0;
    if (len > (max / 3 + 2) * 4 * 2 + 4096) /* far beyond any whitespace */
        return fp_err_set(err, FP_ERR_TOO_LARGE, "base64 text larger than expected for %zu bytes", max);
    clean = malloc(len + 4);
    if (clean == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
            if (!(flags & FP_B64_SPACES))
                goto malformed;
            continue;
        }
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0)
            goto malformed; /* data after padding */
        if (flags & FP_B64_URLSAFE)
            c = c == '-' ? '+' : c == '_' ? '/' : c;
        clean[n++] = c;
    }
    rem = n % 4;
    if (n == 0 || rem == 1 || pad > 2 || (pad > 0 && (n + pad) % 4 != 0))
        goto malformed;
    exact = n / 4 * 3 + (rem == 2 ? 1 : rem == 3 ? 2 : 0);
    if (exact > max) {
        rc = fp_err_set(err, FP_ERR_TOO_LARGE, "decoded body larger than %zu bytes", max);
        goto out;
    }
    padded = n;
    while (padded % 4)
        clean[padded++] = '=';
    o = malloc(padded / 4 * 3 + 1);
    again = malloc(padded + 1);
    if (o == NULL || again == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if (EVP_DecodeBlock(o, (const unsigned char *)clean, (int)padded) < 0 ||
        EVP_EncodeBlock((unsigned char *)again, o, (int)exact) != (int)padded ||
        memcmp(again, clean, padded) != 0)
        goto malformed;
    *out = o;
    *outlen = exact;
    o = NULL;
    goto out;
malformed:
    rc = fp_err_set(err, FP_ERR_ARG, "not valid base64");
out:
    free(o);
    free(again);
    free(clean);
    return rc;
}

int fp_b64_decode_lenient(const char *in, size_t len, size_t max,
                          unsigned char **out, size_t *outlen, fp_error *err)
{
    return fp_b64_decode(in, len, FP_B64_SPACES, max, out, outlen, err);
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
    /* dec is not NUL-terminated: copy with explicit lengths */
    {
        size_t ulen = (size_t)(colon - (char *)dec);
        *user = malloc(ulen + 1);
        if (*user != NULL) {
            memcpy(*user, dec, ulen);
            (*user)[ulen] = '\0';
        }
    }
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
