/*
 * dev_util.c - error names and buffers, DER lists, strict base64 bodies:
 * the small helpers every other file of the device library uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_int.h"
#include "tls_backend.h"

static const char *const err_names[] = {
#define X_NAME(sym, name, msg) name,
    FP_DEVICE_ERR_LIST(X_NAME)
#undef X_NAME
};
static const char *const err_msgs[] = {
#define X_MSG(sym, name, msg) msg,
    FP_DEVICE_ERR_LIST(X_MSG)
#undef X_MSG
};

const char *fp_device_err_name(int code)
{
    return code >= 0 && code < FP_DEVICE_ERR__COUNT ? err_names[code] : "unknown";
}

const char *fp_device_err_message(int code)
{
    return code >= 0 && code < FP_DEVICE_ERR__COUNT ? err_msgs[code] : "unknown error";
}

const char *fp_device_backend(void)
{
    return fpd_backend_name();
}

int fpd_err(fpd_errbuf *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    if (fmt == NULL) {
        snprintf(e->msg, sizeof(e->msg), "%s", fp_device_err_message(code));
        return code;
    }
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

/* A volatile function pointer keeps the compiler from dropping the wipe
 * of memory that is freed right after. */
static void *(*const volatile wipe_fn)(void *, int, size_t) = memset;

void fp_device_secret_free(void *p, size_t len)
{
    if (p == NULL)
        return;
    wipe_fn(p, 0, len);
    free(p);
}

void fp_device_buf_free(void *p)
{
    free(p);
}

int fpd_ct_memcmp(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d != 0;
}

int fpd_buf_add(fpd_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        unsigned char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        if ((np = malloc(cap)) == NULL)
            return -1;
        /* copy rather than realloc: the old block may hold a secret that
         * realloc would leave behind unwiped */
        if (b->len)
            memcpy(np, b->p, b->len);
        if (b->p) {
            wipe_fn(b->p, 0, b->cap);
            free(b->p);
        }
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int fpd_buf_addf(fpd_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -1;
    return fpd_buf_add(b, tmp, (size_t)n);
}

void fpd_buf_free(fpd_buf *b, int secret)
{
    if (b->p && secret)
        wipe_fn(b->p, 0, b->cap);
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int fpd_certs_add(fpd_certs *c, const unsigned char *der, size_t len)
{
    fpd_der *nv;
    unsigned char *copy;

    if (len == 0 || (copy = malloc(len)) == NULL)
        return -1;
    if ((nv = realloc(c->v, (c->n + 1) * sizeof(*nv))) == NULL) {
        free(copy);
        return -1;
    }
    memcpy(copy, der, len);
    c->v = nv;
    c->v[c->n].der = copy;
    c->v[c->n].len = len;
    c->n++;
    return 0;
}

int fpd_certs_append(fpd_certs *to, const fpd_certs *from)
{
    for (size_t i = 0; from && i < from->n; i++)
        if (fpd_certs_add(to, from->v[i].der, from->v[i].len) != 0)
            return -1;
    return 0;
}

void fpd_certs_clear(fpd_certs *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].der);
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

static int b64_alpha(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

int fpd_b64_decode_body(const char *text, size_t len, size_t max_out, unsigned char **out,
                        size_t *outlen, fpd_errbuf *e)
{
    char *clean = NULL;
    unsigned char *der = NULL;
    size_t n = 0, pad = 0, dlen = 0;
    int rc;

    *out = NULL;
    *outlen = 0;
    if ((clean = malloc(len + 1)) == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\r' || ch == '\n' || ch == ' ' || ch == '\t')
            continue;
        if (ch == '=') {
            pad++;
        } else if (!b64_alpha(ch) || pad) {
            /* a character outside the alphabet, or data after padding */
            rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "answer body is not base64 (byte %zu)", i);
            goto out;
        }
        clean[n++] = (char)ch;
    }
    if (n == 0 || n % 4 != 0 || pad > 2) {
        rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "answer body is not complete base64 (%zu characters)", n);
        goto out;
    }
    if (n / 4 * 3 > max_out) {
        rc = fpd_err(e, FP_DEVICE_ERR_TOO_BIG, NULL);
        goto out;
    }
    if ((der = malloc(n / 4 * 3 + 1)) == NULL) {
        rc = fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = fpd_b64_decode(clean, n, der, &dlen, e)) != FP_DEVICE_OK)
        goto out;
    *out = der;
    *outlen = dlen;
    der = NULL;
out:
    free(der);
    free(clean);
    return rc;
}
