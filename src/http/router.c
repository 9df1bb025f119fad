/*
 * router.c - route patterns, request path segments and the route table
 * (see router.h; the syntax is in http.h, "Route syntax").
 *
 * Why segments of the RAW path: RFC 3986 2.2 makes '/' a delimiter only
 * when it is not percent-encoded, so "/crl/a%2Fb.crl" names one segment
 * "a/b.crl", not two.  Decoding the whole path first (as the layer did
 * before) would let an encoded slash move a parameter's boundary; here a
 * parameter holding a decoded '/' does not match at all.  The decoding
 * is the same as evhttp_uridecode(path, 0): "%XX" with two hex digits is
 * that octet, anything else (a lone '%', '+') is itself.
 */
#define _POSIX_C_SOURCE 200809L
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- patterns ---- */

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > FP_HTTP_PARAM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

void fp_http_pattern_free(fp_http_pattern *p)
{
    if (p == NULL)
        return;
    free(p->text);
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

int fp_http_pattern_compile(fp_http_pattern *p, const char *prefix, const char *path,
                            fp_error *err)
{
    size_t plen, len;
    char *s;
    int rc;

    memset(p, 0, sizeof(*p));
    if (prefix == NULL)
        prefix = "";
    if (path == NULL)
        return fp_err_set(err, FP_ERR_ARG, "route without a path");
    plen = strlen(prefix);
    if (plen > 0 && (prefix[0] != '/' || prefix[plen - 1] == '/'))
        return fp_err_set(err, FP_ERR_ARG, "prefix '%s' must start and not end with '/'", prefix);
    len = plen + strlen(path);
    p->text = malloc(len + 1);
    p->buf = malloc(len + 1);
    if (p->text == NULL || p->buf == NULL) {
        fp_http_pattern_free(p);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    memcpy(p->text, prefix, plen);
    strcpy(p->text + plen, path);
    if (p->text[0] != '/') {
        rc = fp_err_set(err, FP_ERR_ARG, "route '%s' does not start with '/'", p->text);
        goto fail;
    }
    memcpy(p->buf, p->text, len + 1);
    /* each segment: from after a '/' to the next '/' or the end */
    s = p->buf + 1;
    for (;;) {
        char *end = strchr(s, '/');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (end)
            *end = '\0';
        if (n == 2 && s[0] == '*' && s[1] == '*') {
            if (end != NULL) {
                rc = fp_err_set(err, FP_ERR_ARG, "route '%s': '**' only as the last segment",
                                p->text);
                goto fail;
            }
            p->rest = true;
            break;
        }
        if (n == 0 && end != NULL) {
            rc = fp_err_set(err, FP_ERR_ARG, "route '%s': empty segment", p->text);
            goto fail;
        }
        if (p->nseg >= FP_HTTP_MAX_SEGS - 1) {
            rc = fp_err_set(err, FP_ERR_ARG, "route '%s': more than %d segments", p->text,
                            FP_HTTP_MAX_SEGS - 1);
            goto fail;
        }
        if (n > 0 && s[0] == '{') {
            if (s[n - 1] != '}' || !name_ok(s + 1, n - 2)) {
                rc = fp_err_set(err, FP_ERR_ARG,
                                "route '%s': parameter '%s' is not {NAME} of [A-Za-z0-9_]{1,%d}",
                                p->text, s, FP_HTTP_PARAM_NAME_MAX);
                goto fail;
            }
            if (p->nparams >= FP_HTTP_MAX_PARAMS) {
                rc = fp_err_set(err, FP_ERR_ARG, "route '%s': more than %d parameters", p->text,
                                FP_HTTP_MAX_PARAMS);
                goto fail;
            }
            s[n - 1] = '\0';
            s++;
            n -= 2;
            for (int i = 0; i < p->nparams; i++)
                if (!strcmp(p->names[i], s)) {
                    rc = fp_err_set(err, FP_ERR_ARG, "route '%s': parameter {%s} twice", p->text,
                                    s);
                    goto fail;
                }
            p->names[p->nparams++] = s;
            p->param_mask |= (uint32_t)1 << p->nseg;
        } else if (strpbrk(s, "{}*") != NULL) {
            rc = fp_err_set(err, FP_ERR_ARG,
                            "route '%s': '{', '}' and '*' only as {name} or a final '**'",
                            p->text);
            goto fail;
        }
        p->seg[p->nseg] = s;
        p->seglen[p->nseg] = (uint16_t)n;
        p->nseg++;
        if (end == NULL)
            break;
        s = end + 1;
    }
    return FP_ERR_OK;
fail:
    fp_http_pattern_free(p);
    return rc;
}

bool fp_http_pattern_same(const fp_http_pattern *a, const fp_http_pattern *b)
{
    if (a->nseg != b->nseg || a->rest != b->rest || a->param_mask != b->param_mask)
        return false;
    for (int i = 0; i < a->nseg; i++)
        if (!(a->param_mask & ((uint32_t)1 << i)) &&
            (a->seglen[i] != b->seglen[i] || memcmp(a->seg[i], b->seg[i], a->seglen[i]) != 0))
            return false;
    return true;
}

/* ---- request paths ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void fp_http_path_free(fp_http_path *p)
{
    if (p == NULL)
        return;
    free(p->buf);
    p->buf = NULL;
    p->decoded = p->cut = NULL;
}

int fp_http_path_parse(fp_http_path *p, const char *raw, fp_error *err)
{
    size_t n = strlen(raw), o = 0;
    bool segs = raw[0] == '/'; /* any other form has no segment: no route matches it */
    char *dec, *cut;

    p->buf = NULL;
    p->decoded = p->cut = NULL;
    p->nseg = 0;
    p->more = false;
    if (n > UINT32_MAX / 2)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "request path too long");
    p->buf = malloc(2 * (n + 1));
    if (p->buf == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    dec = p->buf;
    cut = p->buf + n + 1;
    p->decoded = dec;
    p->cut = cut;
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];
        if (c == '/' && segs) {
            /* close the segment before, open the next */
            if (p->nseg > 0 && !p->more)
                p->seg[p->nseg - 1].len = (uint32_t)(o - p->seg[p->nseg - 1].off);
            if (p->nseg < FP_HTTP_MAX_SEGS) {
                p->seg[p->nseg].off = (uint32_t)(o + 1);
                p->seg[p->nseg].slash = false;
                p->nseg++;
            } else {
                p->more = true;
            }
            dec[o] = '/';
            cut[o++] = '\0';
            continue;
        }
        if (c == '%' && i + 2 < n && hexval(raw[i + 1]) >= 0 && hexval(raw[i + 2]) >= 0) {
            c = (char)(hexval(raw[i + 1]) << 4 | hexval(raw[i + 2]));
            i += 2;
            if (c == '\0') {
                dec[o] = cut[o] = '\0'; /* what came before, for the log */
                return fp_err_set(err, FP_ERR_ARG, "request path decodes to a NUL");
            }
            if (c == '/' && p->nseg > 0 && !p->more)
                p->seg[p->nseg - 1].slash = true;
        }
        dec[o] = c;
        cut[o++] = c;
    }
    if (p->nseg > 0 && !p->more)
        p->seg[p->nseg - 1].len = (uint32_t)(o - p->seg[p->nseg - 1].off);
    dec[o] = '\0';
    cut[o] = '\0';
    return FP_ERR_OK;
}

int fp_http_pattern_match(const fp_http_pattern *pat, const fp_http_path *path,
                          const char **values, const char **rest)
{
    bool overlong = false;
    int np = 0;

    if (pat->rest) {
        if (path->nseg <= pat->nseg)
            return FP_HTTP_MATCH_NO;
    } else if (path->nseg != pat->nseg || path->more) {
        return FP_HTTP_MATCH_NO;
    }
    for (int i = 0; i < pat->nseg; i++) {
        uint32_t off = path->seg[i].off, len = path->seg[i].len;
        if (pat->param_mask & ((uint32_t)1 << i)) {
            if (len == 0 || path->seg[i].slash)
                return FP_HTTP_MATCH_NO;
            if (len > FP_HTTP_PARAM_MAX)
                overlong = true;
            values[np++] = path->cut + off;
        } else if (len != pat->seglen[i] || memcmp(path->decoded + off, pat->seg[i], len) != 0) {
            return FP_HTTP_MATCH_NO;
        }
    }
    if (overlong)
        return FP_HTTP_MATCH_OVERLONG;
    *rest = pat->rest ? path->decoded + path->seg[pat->nseg].off : NULL;
    return FP_HTTP_MATCH_YES;
}

/* ---- the route table ---- */

void fp_http_router_init(fp_http_router *r)
{
    memset(r, 0, sizeof(*r));
}

void fp_http_router_free(fp_http_router *r)
{
    for (size_t i = 0; i < r->n; i++)
        fp_http_pattern_free(&r->rts[i].pat);
    free(r->rts);
    memset(r, 0, sizeof(*r));
}

int fp_http_router_add(fp_http_router *r, const fp_http_route *routes, const char *prefix,
                       int mod, fp_http_auth_lookup lookup, void *lookup_arg, fp_error *err)
{
    size_t n = 0, first = r->n;
    int rc = FP_ERR_OK;

    for (const fp_http_route *rt = routes; rt != NULL && rt->methods; rt++)
        n++;
    if (r->n + n > r->cap) {
        size_t cap = r->cap ? r->cap : 16;
        fp_http_rt *grown;
        while (cap < r->n + n)
            cap *= 2;
        grown = realloc(r->rts, cap * sizeof(*grown));
        if (grown == NULL)
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        r->rts = grown;
        r->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        const fp_http_route *route = &routes[i];
        fp_http_rt *rt = &r->rts[r->n];
        memset(rt, 0, sizeof(*rt));
        if ((rc = fp_http_pattern_compile(&rt->pat, prefix, route->path, err)) != FP_ERR_OK)
            goto fail;
        rt->route = route;
        rt->mod = mod;
        r->n++; /* counted now, so a failure below frees its pattern */
        if (route->fn == NULL || route->listeners == 0) {
            rc = fp_err_set(err, FP_ERR_ARG, "route %s: no handler or no listener", rt->pat.text);
            goto fail;
        }
        if (route->auth == NULL || (rt->auth = lookup(lookup_arg, route->auth)) < 0) {
            rc = fp_err_set(err, FP_ERR_ARG, "route %s: unknown auth scheme '%s'", rt->pat.text,
                            route->auth ? route->auth : "(none given)");
            goto fail;
        }
        for (size_t j = 0; j + 1 < r->n; j++) {
            const fp_http_rt *o = &r->rts[j];
            if ((o->route->methods & route->methods) && (o->route->listeners & route->listeners) &&
                fp_http_pattern_same(&o->pat, &rt->pat)) {
                rc = fp_err_set(err, FP_ERR_ARG, "route %s: same path and method as route %s",
                                rt->pat.text, o->pat.text);
                goto fail;
            }
        }
    }
    return FP_ERR_OK;
fail:
    while (r->n > first)
        fp_http_pattern_free(&r->rts[--r->n].pat);
    return rc;
}

void fp_http_router_find(const fp_http_router *r, int listener, int method,
                         const fp_http_path *path, fp_http_found *out)
{
    out->rt = NULL;
    out->allowed = 0;
    out->overlong = false;
    out->rest = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const fp_http_rt *rt = &r->rts[i];
        int m;
        if (!(rt->route->listeners & listener))
            continue;
        m = fp_http_pattern_match(&rt->pat, path, out->values, &out->rest);
        if (m == FP_HTTP_MATCH_NO)
            continue;
        if (m == FP_HTTP_MATCH_OVERLONG) {
            out->overlong = true;
            continue;
        }
        out->allowed |= rt->route->methods;
        if (rt->route->methods & method) {
            out->rt = rt;
            return;
        }
    }
    out->rest = NULL;
}
