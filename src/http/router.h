/*
 * router.h - private to src/http/ (and its unit tests and fuzz harness):
 * route patterns, request paths split into decoded segments, and the
 * route table of every mounted module, searched in mount order.  No
 * libevent: a pure function of the routes and the path.  The syntax and
 * the decoding rules are in http.h ("Route syntax").
 */
#ifndef FP_HTTP_ROUTER_H
#define FP_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define FP_HTTP_MAX_SEGS 32    /* segments of a pattern (prefix included) */
#define FP_HTTP_PARAM_NAME_MAX 31

/* A compiled pattern. */
typedef struct fp_http_pattern {
    char *text;        /* prefix + path as written (owned), for messages */
    char *buf;         /* segment texts, NUL-separated (owned) */
    int nseg;          /* segments before a "**" */
    const char *seg[FP_HTTP_MAX_SEGS];  /* literal text, or parameter name */
    uint16_t seglen[FP_HTTP_MAX_SEGS];
    uint32_t param_mask; /* bit i: segment i is "{name}" */
    bool rest;         /* ends with "/ **" (no space) */
    int nparams;
    const char *names[FP_HTTP_MAX_PARAMS]; /* parameter names in order */
} fp_http_pattern;

/* Compile prefix (NULL or "": none) + path.  FP_ERR_ARG with the reason:
 * not starting with '/', an empty segment inside, a '{', '}' or '*'
 * outside "{name}" / a final "**", a bad or repeated name, too many
 * segments or parameters, a prefix ending with '/'. */
int fp_http_pattern_compile(fp_http_pattern *p, const char *prefix, const char *path,
                            fp_error *err);
void fp_http_pattern_free(fp_http_pattern *p);
/* Same shape: the same literals, parameters at the same places (names
 * aside) and the same "**": no request path can tell them apart. */
bool fp_http_pattern_same(const fp_http_pattern *a, const fp_http_pattern *b);

/* A request path split at its raw '/' characters, each segment decoded. */
typedef struct fp_http_path {
    char *buf;           /* owned: the decoded path, then a copy of it in
                            which every raw separator is a NUL */
    const char *decoded; /* the whole path, decoded (buf) */
    const char *cut;     /* the same with NULs for raw separators */
    int nseg;            /* segments indexed (at most FP_HTTP_MAX_SEGS) */
    bool more;           /* the path has more segments than indexed */
    struct {
        uint32_t off, len; /* in decoded (the same offsets in the copy) */
        bool slash;        /* holds a decoded '/' ("%2F") */
    } seg[FP_HTTP_MAX_SEGS];
} fp_http_path;

/* Split and decode raw (the path of the request target, no query).  A
 * path not starting with '/' has no segment (matches no route).
 * FP_ERR_ARG if raw decodes to a NUL (decoded then holds what came
 * before it); FP_ERR_NOMEM.  Free with fp_http_path_free (also after an
 * error). */
int fp_http_path_parse(fp_http_path *p, const char *raw, fp_error *err);
void fp_http_path_free(fp_http_path *p);

enum { FP_HTTP_MATCH_NO = 0, FP_HTTP_MATCH_YES, FP_HTTP_MATCH_OVERLONG };

/* Does path match pat?  On FP_HTTP_MATCH_YES, values[i] is the i-th
 * parameter (NUL-terminated, into path) and *rest the decoded remainder
 * of a "**" (else NULL).  FP_HTTP_MATCH_OVERLONG: it would match but a
 * parameter is longer than FP_HTTP_PARAM_MAX. */
int fp_http_pattern_match(const fp_http_pattern *pat, const fp_http_path *path,
                          const char **values, const char **rest);

/* A mounted route. */
struct fp_http_rt {
    const fp_http_route *route;
    fp_http_pattern pat;
    int mod;  /* index of its module in the server */
    int auth; /* index of its scheme in the server */
};

typedef struct fp_http_router {
    fp_http_rt *rts;
    size_t n, cap;
} fp_http_router;

/* Resolves an auth scheme name to an index (>= 0), or -1 if unknown. */
typedef int (*fp_http_auth_lookup)(void *arg, const char *name);

void fp_http_router_init(fp_http_router *r);
void fp_http_router_free(fp_http_router *r);

/* Append routes (ended by methods == 0) of module mod, each prefixed.
 * All or nothing: FP_ERR_ARG naming the route if a pattern does not
 * compile, fn, listeners or auth is missing, auth is not known to
 * lookup, or the route has the same shape as one before it (in this
 * table or already mounted) with a method and a listener in common. */
int fp_http_router_add(fp_http_router *r, const fp_http_route *routes, const char *prefix,
                       int mod, fp_http_auth_lookup lookup, void *lookup_arg, fp_error *err);

typedef struct fp_http_found {
    const fp_http_rt *rt; /* the first route matching listener, path and method; or NULL */
    int allowed;          /* with rt NULL: methods of the routes whose path matched (405) */
    bool overlong;        /* with rt NULL: some route matched but for a too long parameter */
    const char *values[FP_HTTP_MAX_PARAMS];
    const char *rest;
} fp_http_found;

void fp_http_router_find(const fp_http_router *r, int listener, int method,
                         const fp_http_path *path, fp_http_found *out);

#endif
