/* p11uri.c - RFC 7512 pkcs11: URI parser; see p11uri.h. */
#include "p11uri.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool fp_p11_uri_is(const char *text)
{
    return text != NULL && strncasecmp(text, "pkcs11:", 7) == 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode (RFC 3986 2.1) v[0..n) into out (size cap); *outlen is
 * the decoded length.  text_only refuses NUL bytes (labels are strings). */
static int pct_decode(const char *v, size_t n, unsigned char *out, size_t cap, size_t *outlen,
                      bool text_only, const char *name, fp_error *err)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)v[i];
        if (c == '%') {
            int h, l;
            if (i + 2 >= n)
                return fp_err_set(err, FP_ERR_ARG, "pkcs11 URI: bad %%-escape in '%s'", name);
            h = hexval((unsigned char)v[i + 1]);
            l = hexval((unsigned char)v[i + 2]);
            if (h < 0 || l < 0)
                return fp_err_set(err, FP_ERR_ARG, "pkcs11 URI: bad %%-escape in '%s'", name);
            c = h * 16 + l;
            i += 2;
        }
        if (text_only && c == 0)
            return fp_err_set(err, FP_ERR_ARG, "pkcs11 URI: NUL byte in '%s'", name);
        if (o + 1 >= cap)
            return fp_err_set(err, FP_ERR_TOO_LARGE, "pkcs11 URI: '%s' is too long", name);
        out[o++] = (unsigned char)c;
    }
    out[o] = '\0';
    *outlen = o;
    return FP_ERR_OK;
}

typedef struct attr_slot {
    const char *name;
    size_t off;
    size_t size;
} attr_slot;

#define A(n, f) {n, offsetof(fp_p11_uri, f), sizeof(((fp_p11_uri *)0)->f)}
static const attr_slot path_attrs[] = {
    A("token", token), A("manufacturer", manufacturer), A("serial", serial),
    A("model", model), A("object", object), A("type", type), {NULL, 0, 0}};
static const attr_slot query_attrs[] = {
    A("module-path", module_path), A("pin-source", pin_source), {NULL, 0, 0}};
#undef A

/* One name=value component. */
static int one_attr(fp_p11_uri *u, const char *s, size_t n, bool query, fp_error *err)
{
    const char *eq = memchr(s, '=', n);
    size_t nl, outlen = 0;
    char name[32];

    if (n == 0)
        return FP_ERR_OK;
    if (eq == NULL)
        return fp_err_set(err, FP_ERR_ARG, "pkcs11 URI: attribute without '=' (%.*s)",
                          (int)(n > 40 ? 40 : n), s);
    nl = (size_t)(eq - s);
    if (nl == 0 || nl >= sizeof(name))
        return fp_err_set(err, FP_ERR_ARG, "pkcs11 URI: bad attribute name");
    memcpy(name, s, nl);
    name[nl] = '\0';
    eq++;
    n -= nl + 1;
    if (!query && !strcmp(name, "id"))
        return pct_decode(eq, n, u->id, sizeof(u->id), &u->id_len, false, name, err);
    if (query && !strcmp(name, "pin-value"))
        return fp_err_set(err, FP_ERR_ARG,
                          "pkcs11 URI: pin-value is refused (a PIN never sits in a config "
                          "file): use pin-source=file:PATH or FP_PKCS11_PIN");
    for (const attr_slot *a = query ? query_attrs : path_attrs; a->name; a++) {
        if (strcmp(a->name, name) != 0)
            continue;
        return pct_decode(eq, n, (unsigned char *)u + a->off, a->size, &outlen, true, name,
                          err);
    }
    if (query)
        return FP_ERR_OK; /* RFC 7512 2.4: unknown query attributes may be ignored */
    return fp_err_set(err, FP_ERR_ARG, "pkcs11 URI: unsupported path attribute '%s'", name);
}

int fp_p11_uri_parse(const char *text, fp_p11_uri *u, fp_error *err)
{
    const char *p, *q;
    int rc;

    memset(u, 0, sizeof(*u));
    if (!fp_p11_uri_is(text))
        return fp_err_set(err, FP_ERR_ARG, "not a pkcs11: URI");
    p = text + 7;
    q = strchr(p, '?');
    /* path: attributes separated by ';' (RFC 7512 2.3) */
    for (const char *end = q ? q : p + strlen(p); p < end;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        size_t n = semi ? (size_t)(semi - p) : (size_t)(end - p);
        if ((rc = one_attr(u, p, n, false, err)) != FP_ERR_OK)
            return rc;
        p += n + (semi ? 1 : 0);
    }
    /* query: attributes separated by '&' (RFC 7512 2.4) */
    for (p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if ((rc = one_attr(u, p, n, true, err)) != FP_ERR_OK)
            return rc;
        p += n + (amp ? 1 : 0);
    }
    if (u->type[0] && strcmp(u->type, "private") && strcmp(u->type, "public") &&
        strcmp(u->type, "cert") && strcmp(u->type, "secret-key") && strcmp(u->type, "data"))
        return fp_err_set(err, FP_ERR_ARG, "pkcs11 URI: unknown type '%s'", u->type);
    return FP_ERR_OK;
}

int fp_p11_uri_with_object(const char *base, const char *name, char *buf, size_t size,
                           fp_error *err)
{
    const char *q, *p;
    size_t o = 0;
    int n;

    if (!fp_p11_uri_is(base))
        return fp_err_set(err, FP_ERR_ARG, "not a pkcs11: URI");
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return fp_err_set(err, FP_ERR_ARG, "key label '%s': use letters, digits, . _ -",
                              name);
    q = strchr(base, '?');
    n = snprintf(buf, size, "pkcs11:");
    if (n < 0 || (size_t)n >= size)
        goto too_long;
    o = (size_t)n;
    for (p = base + 7; p < (q ? q : base + strlen(base));) {
        const char *end = q ? q : base + strlen(base);
        const char *semi = memchr(p, ';', (size_t)(end - p));
        size_t len = semi ? (size_t)(semi - p) : (size_t)(end - p);
        if (len > 0 && strncmp(p, "object=", 7) && strncmp(p, "id=", 3)) {
            n = snprintf(buf + o, size - o, "%.*s;", (int)len, p);
            if (n < 0 || (size_t)n >= size - o)
                goto too_long;
            o += (size_t)n;
        }
        p += len + (semi ? 1 : 0);
    }
    n = snprintf(buf + o, size - o, "object=%s%s", name, q ? q : "");
    if (n < 0 || (size_t)n >= size - o)
        goto too_long;
    return FP_ERR_OK;
too_long:
    return fp_err_set(err, FP_ERR_TOO_LARGE, "pkcs11 URI too long");
}
