/* test_http.c - HTTP-layer codecs: lenient base64 bodies (RFC 8951),
 * line-broken base64 output, Basic credentials (RFC 7617), media types;
 * route patterns, path parameters and the route table; a real server on
 * loopback with test modules (mount order and failures, per-worker state,
 * auth schemes registered here, outside src/http/); the request framing
 * guard (RFC 7230), the per-address connection count table and the keyed
 * token buckets (src/common/ratelimit.c, used by the HTTP layer only). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <openssl/crypto.h>

#include <pthread.h>

#include "common/util.h"

#include "common/ratelimit.h"
#include "http/guard.h"
#include "http/http.h"
#include "http/limits.h"
#include "http/router.h"

static int decode(const char *in, size_t max, unsigned char **out, size_t *len)
{
    fp_error e = {0};
    return fp_b64_decode_lenient(in, strlen(in), max, out, len, &e);
}

static void test_b64_valid_forms(void **state)
{
    static const char *const forms[] = {
        "aGVsbG8gd29ybGQ=",            /* padded */
        "aGVsbG8gd29ybGQ",             /* padding omitted */
        "aGVs\nbG8g\nd29y\nbGQ=\n",    /* LF line breaks */
        "aGVsbG8g\r\nd29ybGQ=\r\n",    /* CRLF line breaks */
        "  aGVsbG8g d29y\tbGQ= ",      /* spaces and tabs */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
        unsigned char *out = NULL;
        size_t len = 0;
        assert_int_equal(decode(forms[i], 100, &out, &len), FP_ERR_OK);
        assert_int_equal(len, 11);
        assert_memory_equal(out, "hello world", 11);
        free(out);
    }
}

static void test_b64_rejects(void **state)
{
    static const char *const bad[] = {
        "",                  /* nothing */
        "\r\n \t",           /* only whitespace */
        "aGVsbG8*d29ybGQ=",  /* bad character */
        "aGVsbG8gd29ybGQ=x", /* data after padding */
        "aGVsbG8gd29ybGQ==", /* one '=' too many for this length */
        "aGVsbG8gd29ybA=",   /* wrong padding for two leftover chars */
        "aGVsbG8gd29ybGR=",  /* non-zero trailing bits */
        "a",                 /* a lone 6-bit group */
        "aGVs-G8_",          /* base64url alphabet is not EST base64 */
        "====",              /* only padding */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unsigned char *out = (unsigned char *)"sentinel";
        size_t len = 99;
        int rc = decode(bad[i], 100, &out, &len);
        if (rc == FP_ERR_OK)
            fail_msg("accepted bad base64 #%zu '%s'", i, bad[i]);
        assert_null(out);
        assert_int_equal(len, 0);
    }
}

static void test_b64_urlsafe(void **state)
{
    /* 0xfb 0xff 0xbf encodes as "+/+/" in standard and "-_-_" in URL-safe */
    static const char *const good[] = {"-_-_", "+/+/", "-_-_-w", "-_-_-w=="};
    static const char *const bad[] = {"-_-_\n", "-_-_-w=", "-_-_-x", "", "-"};
    fp_error e = {0};
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        unsigned char *out = NULL;
        size_t len = 0;
        assert_int_equal(fp_b64_decode(good[i], strlen(good[i]), FP_B64_URLSAFE, 100, &out, &len, &e), FP_ERR_OK);
        assert_true(len == 3 || len == 4);
        assert_memory_equal(out, "\xfb\xff\xbf", 3);
        free(out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unsigned char *out = NULL;
        size_t len = 0;
        if (fp_b64_decode(bad[i], strlen(bad[i]), FP_B64_URLSAFE, 100, &out, &len, &e) == FP_ERR_OK)
            fail_msg("accepted bad url-safe base64 #%zu", i);
    }
}

static void test_b64_size_limit(void **state)
{
    unsigned char *out = NULL;
    size_t len = 0;
    (void)state;
    assert_int_equal(decode("aGVsbG8gd29ybGQ=", 10, &out, &len), FP_ERR_TOO_LARGE);
    assert_null(out);
    assert_int_equal(decode("aGVsbG8gd29ybGQ=", 11, &out, &len), FP_ERR_OK);
    free(out);
}

static void test_b64_encode_lines_roundtrip(void **state)
{
    unsigned char data[1000], *back = NULL;
    char *text = NULL;
    size_t tlen = 0, blen = 0;
    fp_error e = {0};
    (void)state;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 1; n <= sizeof(data); n += 97) {
        assert_int_equal(fp_b64_encode_lines(data, n, &text, &tlen, &e), FP_ERR_OK);
        assert_int_equal(strlen(text), tlen);
        /* every line at most 64 characters, each ends with LF */
        for (char *p = text, *nl; *p; p = nl + 1) {
            nl = strchr(p, '\n');
            assert_non_null(nl);
            assert_true(nl - p <= 64);
        }
        assert_int_equal(fp_b64_decode_lenient(text, tlen, sizeof(data), &back, &blen, &e), FP_ERR_OK);
        assert_int_equal(blen, n);
        assert_memory_equal(back, data, n);
        free(text);
        free(back);
    }
}

static void test_basic_valid(void **state)
{
    char *user = NULL, *pass = NULL;
    size_t plen = 0;
    fp_error e = {0};
    (void)state;
    /* "tok1:s3cr:et" - the password may contain ':' (RFC 7617 2) */
    assert_int_equal(fp_http_basic_parse("Basic dG9rMTpzM2NyOmV0", &user, &pass, &plen, &e), FP_ERR_OK);
    assert_string_equal(user, "tok1");
    assert_string_equal(pass, "s3cr:et");
    assert_int_equal(plen, 7);
    fp_http_basic_free(user, pass, plen);
    /* scheme is case-insensitive; empty password is allowed */
    assert_int_equal(fp_http_basic_parse("basic   dG9rMTo=", &user, &pass, &plen, &e), FP_ERR_OK);
    assert_string_equal(user, "tok1");
    assert_int_equal(plen, 0);
    fp_http_basic_free(user, pass, plen);
}

static void test_basic_rejects(void **state)
{
    static const char *const bad[] = {
        NULL,
        "",
        "Bearer dG9rMTpzZWNyZXQ=",
        "Basic",
        "Basicdg9rMTpzZWNyZXQ=",
        "Basic dG9rMXNlY3JldA==",      /* "tok1secret": no colon */
        "Basic OnNlY3JldA==",          /* ":secret": empty user */
        "Basic dG9r AMTpzZWNyZXQ=",    /* space inside the credentials */
        "Basic !!!!",                  /* not base64 */
        "Basic dG9rADE6c2VjcmV0",      /* "tok\0" + "1:secret": NUL byte */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char *user = (char *)"x", *pass = (char *)"y";
        size_t plen = 5;
        fp_error e = {0};
        if (fp_http_basic_parse(bad[i], &user, &pass, &plen, &e) == FP_ERR_OK)
            fail_msg("accepted bad Basic header #%zu", i);
        assert_null(user);
        assert_null(pass);
    }
}

static void test_basic_too_long(void **state)
{
    char *hdr = malloc(4000), *user = NULL, *pass = NULL;
    size_t plen = 0;
    fp_error e = {0};
    (void)state;
    strcpy(hdr, "Basic ");
    memset(hdr + 6, 'A', 3000);
    hdr[3006] = '\0';
    assert_int_equal(fp_http_basic_parse(hdr, &user, &pass, &plen, &e), FP_ERR_TOO_LARGE);
    free(hdr);
}

static void test_media_type(void **state)
{
    (void)state;
    assert_true(fp_http_media_type_is("application/pkcs10", "application/pkcs10"));
    assert_true(fp_http_media_type_is("Application/PKCS10", "application/pkcs10"));
    assert_true(fp_http_media_type_is(" application/pkcs10 ; charset=x", "application/pkcs10"));
    assert_false(fp_http_media_type_is(NULL, "application/pkcs10"));
    assert_false(fp_http_media_type_is("", "application/pkcs10"));
    assert_false(fp_http_media_type_is("application/pkcs10x", "application/pkcs10"));
    assert_false(fp_http_media_type_is("application/pkcs1", "application/pkcs10"));
    assert_false(fp_http_media_type_is("text/plain", "application/pkcs10"));
}

/* ---- route patterns and paths (router.c) ---- */

/* Match path against pattern; values joined by '|' into out, "NO",
 * "OVERLONG", or "BADPATH" (decodes to NUL); rest appended after '#'. */
static const char *rmatch(const char *pattern, const char *path, char *out, size_t size)
{
    fp_http_pattern pat;
    fp_http_path p;
    const char *v[FP_HTTP_MAX_PARAMS], *rest = NULL;
    size_t o = 0;
    int m;

    assert_int_equal(fp_http_pattern_compile(&pat, NULL, pattern, NULL), FP_ERR_OK);
    if (fp_http_path_parse(&p, path, NULL) != FP_ERR_OK) {
        snprintf(out, size, "BADPATH");
    } else if ((m = fp_http_pattern_match(&pat, &p, v, &rest)) != FP_HTTP_MATCH_YES) {
        snprintf(out, size, "%s", m == FP_HTTP_MATCH_NO ? "NO" : "OVERLONG");
    } else {
        out[0] = '\0';
        for (int i = 0; i < pat.nparams; i++)
            o += (size_t)snprintf(out + o, size - o, "%s%s", i ? "|" : "", v[i]);
        if (rest != NULL)
            snprintf(out + o, size - o, "#%s", rest);
    }
    fp_http_path_free(&p);
    fp_http_pattern_free(&pat);
    return out;
}

static void test_route_params(void **state)
{
    static const char *const dev = "/api/v1/projects/{project}/devices/{device}";
    char b[1024], longer[600], path[700];
    (void)state;
    assert_string_equal(rmatch(dev, "/api/v1/projects/p1/devices/dev-7", b, sizeof(b)), "p1|dev-7");
    /* values are percent-decoded; '+' stays; decoded literals match */
    assert_string_equal(rmatch(dev, "/api/v1/projects/p%201/devices/a+b%3f", b, sizeof(b)),
                        "p 1|a+b?");
    assert_string_equal(rmatch(dev, "/api/v1/pro%6aects/p/devices/d", b, sizeof(b)), "p|d");
    /* a lone or bad '%' is itself (as evhttp_uridecode) */
    assert_string_equal(rmatch(dev, "/api/v1/projects/50%/devices/%zz", b, sizeof(b)), "50%|%zz");
    /* negatives: empty segment, extra or missing segment, trailing slash */
    assert_string_equal(rmatch(dev, "/api/v1/projects//devices/d", b, sizeof(b)), "NO");
    assert_string_equal(rmatch(dev, "/api/v1/projects/p/devices/", b, sizeof(b)), "NO");
    assert_string_equal(rmatch(dev, "/api/v1/projects/p/devices/d/x", b, sizeof(b)), "NO");
    assert_string_equal(rmatch(dev, "/api/v1/projects/p/devices/d/", b, sizeof(b)), "NO");
    assert_string_equal(rmatch(dev, "/api/v1/projects/p/devices", b, sizeof(b)), "NO");
    assert_string_equal(rmatch(dev, "/api/v1/projects/p/gadgets/d", b, sizeof(b)), "NO");
    /* an encoded slash is data: never a separator, never inside a value */
    assert_string_equal(rmatch(dev, "/api/v1/projects/a%2Fb/devices/d", b, sizeof(b)), "NO");
    assert_string_equal(rmatch(dev, "/api/v1/projects/a/devices/d%2f", b, sizeof(b)), "NO");
    assert_string_equal(rmatch(dev, "/api%2Fv1/projects/p/devices/d", b, sizeof(b)), "NO");
    assert_string_equal(rmatch(dev, "/api/v1/projects%2Fp/devices/d", b, sizeof(b)), "NO");
    /* a NUL anywhere: the path is refused before any matching */
    assert_string_equal(rmatch(dev, "/api/v1/projects/a%00b/devices/d", b, sizeof(b)), "BADPATH");
    /* overlong: FP_HTTP_PARAM_MAX decoded bytes pass, one more does not */
    memset(longer, 'x', FP_HTTP_PARAM_MAX);
    longer[FP_HTTP_PARAM_MAX] = '\0';
    snprintf(path, sizeof(path), "/api/v1/projects/p/devices/%s", longer);
    assert_string_equal(rmatch(dev, path, b, sizeof(b)) + 2, longer);
    snprintf(path, sizeof(path), "/api/v1/projects/p/devices/%sy", longer);
    assert_string_equal(rmatch(dev, path, b, sizeof(b)), "OVERLONG");
    /* the limit is on the decoded value: %41 counts as one byte */
    snprintf(path, sizeof(path), "/api/v1/projects/p/devices/%%41%s", longer + 1);
    longer[0] = 'A';
    assert_string_equal(rmatch(dev, path, b, sizeof(b)) + 2, longer);
}

static void test_route_rest(void **state)
{
    char b[1024], path[400];
    (void)state;
    assert_string_equal(rmatch("/ocsp/**", "/ocsp/MEUwQzBB", b, sizeof(b)), "#MEUwQzBB");
    assert_string_equal(rmatch("/ocsp/**", "/ocsp/", b, sizeof(b)), "#");
    /* the remainder is decoded and may hold '/', raw or encoded (base64) */
    assert_string_equal(rmatch("/ocsp/**", "/ocsp/ME%2FU/w%3D%3D", b, sizeof(b)), "#ME/U/w==");
    assert_string_equal(rmatch("/t/{id}/**", "/t/x/a/b", b, sizeof(b)), "x#a/b");
    assert_string_equal(rmatch("/ocsp/**", "/ocsp", b, sizeof(b)), "NO");
    assert_string_equal(rmatch("/ocsp/**", "/ocspx/a", b, sizeof(b)), "NO");
    assert_string_equal(rmatch("/ocsp/**", "/ocsp%2Fa", b, sizeof(b)), "NO");
    /* more segments than the index holds: still a remainder */
    strcpy(path, "/ocsp");
    for (int i = 0; i < 40; i++)
        strcat(path, "/s");
    rmatch("/ocsp/**", path, b, sizeof(b));
    assert_int_equal(b[0], '#');
    assert_string_equal(b + 1, path + strlen("/ocsp/"));
    assert_string_equal(rmatch("/ocsp/{a}", path, b, sizeof(b)), "NO");
    /* exact paths */
    assert_string_equal(rmatch("/.well-known/est/cacerts", "/.well-known/est/cacerts", b, sizeof(b)), "");
    assert_string_equal(rmatch("/.well-known/est/cacerts", "/.well-known/est/cacerts/", b, sizeof(b)), "NO");
    assert_string_equal(rmatch("/.well-known/est/cacerts", "/.well-known/est/cacert", b, sizeof(b)), "NO");
    assert_string_equal(rmatch("/", "/", b, sizeof(b)), "");
    assert_string_equal(rmatch("/", "x", b, sizeof(b)), "NO");
    assert_string_equal(rmatch("/**", "x/y", b, sizeof(b)), "NO"); /* not origin-form */
}

static void test_route_pattern_rejects(void **state)
{
    static const char *const bad[] = {
        "", "x", "/a//b", "//", "/a/{}", "/a/{b", "/a/b}", "/a/x{b}", "/a/{b}x", "/a/*",
        "/**/a", "/a**", "/a/{p}/{p}", "/a/{bad-name}", "/a/{p q}",
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
        "/{abcdefghijklmnopqrstuvwxyz0123456}",
    };
    fp_http_pattern p;
    fp_error e = {0};
    char many[200] = "";
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        if (fp_http_pattern_compile(&p, NULL, bad[i], &e) != FP_ERR_ARG)
            fail_msg("pattern #%zu '%s' was accepted", i, bad[i]);
    for (int i = 0; i < FP_HTTP_MAX_SEGS; i++)
        strcat(many, "/s");
    assert_int_equal(fp_http_pattern_compile(&p, NULL, many, &e), FP_ERR_ARG);
    assert_int_equal(fp_http_pattern_compile(&p, "api", "/x", &e), FP_ERR_ARG);
    assert_int_equal(fp_http_pattern_compile(&p, "/api/", "/x", &e), FP_ERR_ARG);
    assert_int_equal(fp_http_pattern_compile(&p, "/api/{v}", "/x/{id}", &e), FP_ERR_OK);
    assert_int_equal(p.nparams, 2);
    assert_string_equal(p.names[0], "v");
    assert_string_equal(p.text, "/api/{v}/x/{id}");
    fp_http_pattern_free(&p);
}

/* ---- the route table (router.c) ---- */

static int h_a(fp_http_req *req) { (void)req; return FP_HTTP_DONE; }
static int h_b(fp_http_req *req) { (void)req; return FP_HTTP_DONE; }

static int lookup(void *arg, const char *name)
{
    (void)arg;
    return !strcmp(name, "none") ? 0 : !strcmp(name, "token") ? 1 : -1;
}

static const fp_http_rt *find(const fp_http_router *r, int kind, int method, const char *path,
                              fp_http_found *f)
{
    fp_http_path p;
    assert_int_equal(fp_http_path_parse(&p, path, NULL), FP_ERR_OK);
    fp_http_router_find(r, kind, method, &p, f);
    fp_http_path_free(&p); /* values are not read after this */
    return f->rt;
}

static void test_router_methods_and_order(void **state)
{
    static const fp_http_route first[] = {
        {FP_HTTP_GET | FP_HTTP_HEAD, "/x/{id}", FP_HTTP_TLS, NULL, "none", 0, h_a},
        {FP_HTTP_DELETE, "/x/{id}", FP_HTTP_TLS, NULL, "token", 0, h_a},
        {0},
    };
    static const fp_http_route second[] = {
        {FP_HTTP_GET, "/x/special", FP_HTTP_TLS, NULL, "none", 0, h_b},
        {FP_HTTP_POST, "/x/special", FP_HTTP_TLS | FP_HTTP_PLAIN, NULL, "none", 0, h_b},
        {FP_HTTP_GET, "/y", FP_HTTP_PLAIN, NULL, "none", 0, h_b},
        {0},
    };
    fp_http_router r;
    fp_http_found f;
    (void)state;

    fp_http_router_init(&r);
    assert_int_equal(fp_http_router_add(&r, first, NULL, 0, lookup, NULL, NULL), FP_ERR_OK);
    assert_int_equal(fp_http_router_add(&r, second, NULL, 1, lookup, NULL, NULL), FP_ERR_OK);
    /* mount order: the first module's "{id}" takes /x/special for GET */
    assert_non_null(find(&r, FP_HTTP_TLS, FP_HTTP_GET, "/x/special", &f));
    assert_ptr_equal(f.rt->route->fn, h_a);
    assert_int_equal(f.rt->mod, 0);
    /* ... but only the second has POST there */
    assert_non_null(find(&r, FP_HTTP_TLS, FP_HTTP_POST, "/x/special", &f));
    assert_ptr_equal(f.rt->route->fn, h_b);
    assert_int_equal(f.rt->mod, 1);
    /* route's scheme index as the lookup resolved it */
    assert_non_null(find(&r, FP_HTTP_TLS, FP_HTTP_DELETE, "/x/1", &f));
    assert_int_equal(f.rt->auth, 1);
    /* 405: the path is known, the method is not; Allow from every match */
    assert_null(find(&r, FP_HTTP_TLS, FP_HTTP_PUT, "/x/special", &f));
    assert_int_equal(f.allowed, FP_HTTP_GET | FP_HTTP_HEAD | FP_HTTP_DELETE | FP_HTTP_POST);
    assert_null(find(&r, FP_HTTP_TLS, FP_HTTP_POST, "/x/1", &f));
    assert_int_equal(f.allowed, FP_HTTP_GET | FP_HTTP_HEAD | FP_HTTP_DELETE);
    /* listeners: /y is plain only; /x/{id} TLS only */
    assert_null(find(&r, FP_HTTP_TLS, FP_HTTP_GET, "/y", &f));
    assert_int_equal(f.allowed, 0);
    assert_null(find(&r, FP_HTTP_PLAIN, FP_HTTP_GET, "/x/1", &f));
    assert_int_equal(f.allowed, 0);
    assert_non_null(find(&r, FP_HTTP_PLAIN, FP_HTTP_POST, "/x/special", &f));
    /* 404 and 414 */
    assert_null(find(&r, FP_HTTP_TLS, FP_HTTP_GET, "/z", &f));
    assert_int_equal(f.allowed, 0);
    assert_false(f.overlong);
    {
        char p[400] = "/x/";
        memset(p + 3, 'a', FP_HTTP_PARAM_MAX + 1);
        p[3 + FP_HTTP_PARAM_MAX + 1] = '\0';
        assert_null(find(&r, FP_HTTP_TLS, FP_HTTP_GET, p, &f));
        assert_true(f.overlong);
        assert_int_equal(f.allowed, 0);
    }
    fp_http_router_free(&r);
}

static void test_router_rejects(void **state)
{
    static const fp_http_route base[] = {
        {FP_HTTP_GET, "/p/{a}/q", FP_HTTP_TLS, NULL, "none", 0, h_a},
        {0},
    };
    static const fp_http_route dup[] = {   /* same shape, other name */
        {FP_HTTP_POST, "/ok", FP_HTTP_TLS, NULL, "none", 0, h_b},
        {FP_HTTP_GET | FP_HTTP_POST, "/p/{b}/q", FP_HTTP_TLS, NULL, "none", 0, h_b},
        {0},
    };
    static const fp_http_route other_listener[] = {
        {FP_HTTP_GET, "/p/{b}/q", FP_HTTP_PLAIN, NULL, "none", 0, h_b},
        {0},
    };
    static const fp_http_route unknown_auth[] = {
        {FP_HTTP_GET, "/u", FP_HTTP_TLS, NULL, "kerberos", 0, h_b},
        {0},
    };
    static const fp_http_route no_auth[] = {
        {FP_HTTP_GET, "/u", FP_HTTP_TLS, NULL, NULL, 0, h_b},
        {0},
    };
    static const fp_http_route bad_path[] = {
        {FP_HTTP_GET, "/u/{x", FP_HTTP_TLS, NULL, "none", 0, h_b},
        {0},
    };
    static const fp_http_route no_fn[] = {
        {FP_HTTP_GET, "/u", FP_HTTP_TLS, NULL, "none", 0, NULL},
        {0},
    };
    fp_http_router r;
    fp_http_found f;
    fp_error e = {0};
    (void)state;

    fp_http_router_init(&r);
    assert_int_equal(fp_http_router_add(&r, base, NULL, 0, lookup, NULL, NULL), FP_ERR_OK);
    assert_int_equal(fp_http_router_add(&r, dup, NULL, 1, lookup, NULL, &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "/p/{b}/q"));
    assert_int_equal(r.n, 1); /* all or nothing: "/ok" was not kept */
    assert_null(find(&r, FP_HTTP_TLS, FP_HTTP_POST, "/ok", &f));
    assert_int_equal(fp_http_router_add(&r, unknown_auth, NULL, 1, lookup, NULL, &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "kerberos"));
    assert_int_equal(fp_http_router_add(&r, no_auth, NULL, 1, lookup, NULL, &e), FP_ERR_ARG);
    assert_int_equal(fp_http_router_add(&r, bad_path, NULL, 1, lookup, NULL, &e), FP_ERR_ARG);
    assert_int_equal(fp_http_router_add(&r, no_fn, NULL, 1, lookup, NULL, &e), FP_ERR_ARG);
    assert_int_equal(r.n, 1);
    /* the same shape on another listener is no conflict */
    assert_int_equal(fp_http_router_add(&r, other_listener, NULL, 1, lookup, NULL, &e), FP_ERR_OK);
    /* a prefix applies to every route of the table */
    assert_int_equal(fp_http_router_add(&r, no_fn + 1, "/api", 2, lookup, NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_http_router_add(&r, unknown_auth + 1, "/api", 2, lookup, NULL, &e), FP_ERR_OK);
    {
        static const fp_http_route pre[] = {
            {FP_HTTP_GET, "/p/{a}/q", FP_HTTP_TLS, NULL, "none", 0, h_b},
            {0},
        };
        assert_int_equal(fp_http_router_add(&r, pre, "/api/{ver}", 3, lookup, NULL, &e), FP_ERR_OK);
        assert_non_null(find(&r, FP_HTTP_TLS, FP_HTTP_GET, "/api/v2/p/1/q", &f));
        assert_int_equal(f.rt->mod, 3);
        assert_non_null(find(&r, FP_HTTP_TLS, FP_HTTP_GET, "/p/1/q", &f));
        assert_int_equal(f.rt->mod, 0);
    }
    fp_http_router_free(&r);
}

/* ---- a real server on loopback with test modules: mount, per-worker
 * state, auth schemes registered here, outside src/http/ ---- */

static struct {
    int inits, worker_inits, worker_frees, stops, frees;
    int guarded_runs, cc_runs, lazy_runs, checks, releases;
    bool check_saw_body;
} tc;

static int t_reply(fp_http_req *req, const char *text)
{
    fp_http_reply(req, 200, "text/plain", text, strlen(text));
    return FP_HTTP_DONE;
}

static int t_echo(fp_http_req *req)
{
    char out[700];
    snprintf(out, sizeof(out), "%s %s %s %s", (const char *)req->mod_state,
             fp_http_param(req, "a"), fp_http_param(req, "b"), (const char *)req->worker_state);
    return t_reply(req, out);
}

static int t_name(fp_http_req *req) { return t_reply(req, req->mod_state); }
static int t_guarded(fp_http_req *req) { tc.guarded_runs++; return t_reply(req, "ran"); }
static int t_cc(fp_http_req *req) { tc.cc_runs++; return t_reply(req, "ran"); }
static int t_lazy(fp_http_req *req) { tc.lazy_runs++; return t_reply(req, "ran"); }
static int t_signed(fp_http_req *req) { return t_reply(req, req->principal); }

/* refuses everyone, looking at what the layer handed over */
static bool deny_all(fp_http_req *req, void *arg)
{
    (void)arg;
    tc.checks++;
    tc.check_saw_body = req->body != NULL || req->body_len != 0;
    fp_http_add_header(req, "WWW-Authenticate", "Test");
    fp_http_error(req, 401, "not you");
    return false;
}

/* judges the body (FP_HTTP_AUTH_NEEDS_BODY): a stand-in for a signed message */
static bool body_sig(fp_http_req *req, void *arg)
{
    (void)arg;
    if (req->body == NULL || req->body_len != 9 || memcmp(req->body, "let me in", 9) != 0) {
        fp_http_error(req, 403, "bad signature");
        return false;
    }
    req->principal = strdup("alice");
    snprintf(req->identity, sizeof(req->identity), "sig:alice");
    return req->principal != NULL;
}

static void body_sig_release(void *principal, void *arg)
{
    (void)arg;
    tc.releases++;
    free(principal);
}

/* a buggy scheme: refuses without answering (the layer answers 500) */
static bool lazy(fp_http_req *req, void *arg)
{
    (void)req;
    (void)arg;
    return false;
}

static int tm_init(fp_http_server *srv, void *arg, void **state, fp_error *err)
{
    (void)srv;
    (void)err;
    tc.inits++;
    *state = arg;
    return FP_ERR_OK;
}

static int tm_worker_init(void *state, fp_http_worker *w, void **wstate, fp_error *err)
{
    char *tag = malloc(16);
    (void)err;
    if (tag == NULL)
        return FP_ERR_NOMEM;
    snprintf(tag, 16, "%s/w%d", (const char *)state, fp_http_worker_index(w));
    tc.worker_inits++;
    *wstate = tag;
    return FP_ERR_OK;
}

static void tm_worker_free(void *state, void *wstate)
{
    (void)state;
    tc.worker_frees++;
    free(wstate);
}

static void tm_stop(void *state) { (void)state; tc.stops++; }
static void tm_free(void *state) { (void)state; tc.frees++; }

static const fp_http_route mod_a_routes[] = {
    {FP_HTTP_GET, "/t/{a}/x/{b}", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, t_echo},
    {FP_HTTP_GET, "/m/{x}", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, t_name},
    {FP_HTTP_POST, "/guarded", FP_HTTP_PLAIN, NULL, "deny-all", 0, t_guarded},
    {FP_HTTP_POST, "/signed", FP_HTTP_PLAIN, NULL, "body-sig", 0, t_signed},
    {FP_HTTP_GET, "/cc", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_CLIENT_CERT, 0, t_cc},
    {FP_HTTP_GET, "/lazy", FP_HTTP_PLAIN, NULL, "lazy", 0, t_lazy},
    {0},
};
static const fp_http_route mod_b_routes[] = {
    {FP_HTTP_GET, "/m/fixed", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, t_name},
    {FP_HTTP_GET, "/only-b", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, t_name},
    {0},
};
static const fp_http_route mod_dup_routes[] = {
    {FP_HTTP_GET, "/fine", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, t_name},
    {FP_HTTP_GET, "/m/{other}", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, t_name},
    {0},
};
static const fp_http_route mod_unknown_routes[] = {
    {FP_HTTP_GET, "/u", FP_HTTP_PLAIN, NULL, "api-key", 0, t_name},
    {0},
};
/* a module registering its own scheme (named by arg) from its init */
static int self_init(fp_http_server *srv, void *arg, void **state, fp_error *err)
{
    fp_http_auth_scheme own = {arg, 0, deny_all, NULL, NULL};
    tc.inits++;
    *state = arg;
    return fp_http_auth_register(srv, &own, err);
}

static const fp_http_route mod_self_routes[] = {
    {FP_HTTP_GET, "/own", FP_HTTP_PLAIN, NULL, "own", 0, t_guarded},
    {0},
};
static const fp_http_route mod_self_bad_routes[] = {
    {FP_HTTP_GET, "/own2", FP_HTTP_PLAIN, NULL, "own2", 0, t_guarded},
    {FP_HTTP_GET, "/bad", FP_HTTP_PLAIN, NULL, "nope", 0, t_guarded},
    {0},
};
static const fp_http_module mod_self = {"self", mod_self_routes, self_init, NULL, NULL, tm_stop,
                                        tm_free};
static const fp_http_module mod_self_bad = {"self-bad", mod_self_bad_routes, self_init, NULL,
                                            NULL, tm_stop, tm_free};

static const fp_http_module mod_a = {"a", mod_a_routes, tm_init, tm_worker_init, tm_worker_free,
                                     tm_stop, tm_free};
static const fp_http_module mod_b = {"b", mod_b_routes, tm_init, tm_worker_init, tm_worker_free,
                                     tm_stop, tm_free};
static const fp_http_module mod_dup = {"dup", mod_dup_routes, tm_init, tm_worker_init,
                                       tm_worker_free, tm_stop, tm_free};
static const fp_http_module mod_unknown = {"unknown", mod_unknown_routes, tm_init, tm_worker_init,
                                           tm_worker_free, tm_stop, tm_free};

static fp_http_server *new_test_server(int threads)
{
    fp_http_opts o;
    fp_http_server *srv = NULL;
    fp_error e = {0};

    memset(&o, 0, sizeof(o));
    o.https_listen = "";
    o.http_listen = "127.0.0.1:0";
    o.threads = threads;
    o.max_body_bytes = 4096;
    o.max_header_bytes = 8192;
    o.idle_timeout_seconds = 10;
    o.max_connections = 64;
    o.max_connections_per_address = 64;
    o.max_requests_per_connection = 100;
    o.handshake_timeout_seconds = 10;
    o.header_timeout_seconds = 10;
    o.body_timeout_seconds = 10;
    o.min_body_rate = 1;
    o.rate_limit_keys = 64;
    o.quiet = true;
    if (fp_http_server_new(&o, &srv, &e) != FP_ERR_OK)
        fail_msg("server: %s", e.msg);
    return srv;
}

static void *run_server(void *arg)
{
    fp_error e = {0};
    if (fp_http_server_run(arg, false, &e) != FP_ERR_OK)
        fprintf(stderr, "run: %s\n", e.msg);
    return NULL;
}

/* A connection to the server's plain listener. */
static int plain_connect(const fp_http_server *srv)
{
    const char *bound = fp_http_server_addr(srv, FP_HTTP_PLAIN);
    struct sockaddr_in sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(strrchr(bound, ':') + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* One request on a fresh connection ("Connection: close"); returns the
 * status, the whole answer in resp. */
static int exchange(const fp_http_server *srv, const char *text, char *resp, size_t size)
{
    struct timeval tv = {30, 0}; /* only against a hang */
    size_t got = 0;
    int fd = plain_connect(srv), status = -1;
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    while (got + 1 < size && (n = read(fd, resp + got, size - 1 - got)) > 0)
        got += (size_t)n;
    resp[got] = '\0';
    close(fd);
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
        status = -1;
    return status;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static int get(const fp_http_server *srv, const char *path, char *resp, size_t size)
{
    char text[3300];
    snprintf(text, sizeof(text), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    return exchange(srv, text, resp, size);
}

static int post(const fp_http_server *srv, const char *path, const char *body, char *resp,
                size_t size)
{
    char text[6000];
    snprintf(text, sizeof(text),
             "POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: text/plain\r\n"
             "Content-Length: %zu\r\n\r\n%s", path, strlen(body), body);
    return exchange(srv, text, resp, size);
}

static void register_test_schemes(fp_http_server *srv)
{
    static const fp_http_auth_scheme deny = {"deny-all", 0, deny_all, NULL, NULL};
    static const fp_http_auth_scheme sig = {"body-sig", FP_HTTP_AUTH_NEEDS_BODY, body_sig,
                                            body_sig_release, NULL};
    static const fp_http_auth_scheme lz = {"lazy", 0, lazy, NULL, NULL};
    fp_error e = {0};
    assert_int_equal(fp_http_auth_register(srv, &deny, &e), FP_ERR_OK);
    assert_int_equal(fp_http_auth_register(srv, &sig, &e), FP_ERR_OK);
    assert_int_equal(fp_http_auth_register(srv, &lz, &e), FP_ERR_OK);
    /* a name is taken once; built-in names are taken */
    assert_int_equal(fp_http_auth_register(srv, &deny, &e), FP_ERR_ARG);
    {
        fp_http_auth_scheme none = {FP_HTTP_AUTH_NONE, 0, deny_all, NULL, NULL};
        assert_int_equal(fp_http_auth_register(srv, &none, &e), FP_ERR_ARG);
    }
}

static void test_server_modules(void **state)
{
    fp_http_server *srv;
    fp_error e = {0};
    pthread_t th;
    char r[8192], big[3000];
    int workers;
    (void)state;

    memset(&tc, 0, sizeof(tc));
    fp_log_set_level(FP_LOG_ERROR);
    srv = new_test_server(2);
    workers = fp_http_server_workers(srv);
    register_test_schemes(srv);
    assert_int_equal(fp_http_mount(srv, &mod_a, NULL, "A", &e), FP_ERR_OK);
    assert_int_equal(fp_http_mount(srv, &mod_b, NULL, "B", &e), FP_ERR_OK);
    assert_int_equal(tc.inits, 2);
    assert_int_equal(tc.worker_inits, 2 * workers);
    /* refused mounts are undone: init, worker_init, then worker_free, stop, free */
    assert_int_equal(fp_http_mount(srv, &mod_dup, NULL, "D", &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "/m/{other}"));
    assert_int_equal(fp_http_mount(srv, &mod_unknown, NULL, "U", &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "api-key"));
    assert_int_equal(tc.inits, 4);
    assert_int_equal(tc.worker_frees, 2 * workers);
    assert_int_equal(tc.stops, 2);
    assert_int_equal(tc.frees, 2);
    /* a module's own scheme, registered by its init, serves its routes;
     * a refused module's scheme goes with it */
    assert_int_equal(fp_http_mount(srv, &mod_self, NULL, "own", &e), FP_ERR_OK);
    assert_int_equal(fp_http_mount(srv, &mod_self_bad, NULL, "own2", &e), FP_ERR_ARG);
    {
        fp_http_auth_scheme again = {"own2", 0, deny_all, NULL, NULL};
        assert_int_equal(fp_http_auth_register(srv, &again, &e), FP_ERR_OK);
    }
    assert_int_equal(pthread_create(&th, NULL, run_server, srv), 0);
    assert_int_equal(get(srv, "/own", r, sizeof(r)), 401);
    assert_non_null(strstr(body_of(r), "not you"));
    assert_int_equal(get(srv, "/own2", r, sizeof(r)), 404);
    tc.checks = 0;

    /* two parameters, decoded; the module's state and its per-worker state */
    assert_int_equal(get(srv, "/t/p%201/x/dev-7", r, sizeof(r)), 200);
    assert_true(!strncmp(body_of(r), "A p 1 dev-7 A/w", 15));
    /* negative: empty segment, extra segment, encoded slash, NUL, overlong */
    assert_int_equal(get(srv, "/t//x/d", r, sizeof(r)), 404);
    assert_int_equal(get(srv, "/t/p/x/d/e", r, sizeof(r)), 404);
    assert_int_equal(get(srv, "/t/a%2Fb/x/d", r, sizeof(r)), 404);
    assert_int_equal(get(srv, "/t/a%00b/x/d", r, sizeof(r)), 400);
    memset(big, 'z', FP_HTTP_PARAM_MAX + 1);
    big[FP_HTTP_PARAM_MAX + 1] = '\0';
    {
        char path[3100];
        snprintf(path, sizeof(path), "/t/%s/x/d", big);
        assert_int_equal(get(srv, path, r, sizeof(r)), 414);
        big[FP_HTTP_PARAM_MAX] = '\0';
        snprintf(path, sizeof(path), "/t/%s/x/d", big);
        assert_int_equal(get(srv, path, r, sizeof(r)), 200);
    }
    /* 405 with Allow */
    assert_int_equal(post(srv, "/t/p/x/d", "", r, sizeof(r)), 405);
    assert_non_null(strstr(r, "\r\nAllow: GET\r\n"));
    /* mount order: A's "/m/{x}" was mounted first and takes /m/fixed */
    assert_int_equal(get(srv, "/m/fixed", r, sizeof(r)), 200);
    assert_string_equal(body_of(r), "A");
    assert_int_equal(get(srv, "/only-b", r, sizeof(r)), 200);
    assert_string_equal(body_of(r), "B");

    /* a refusing scheme: 401 from the scheme, handler never runs, and the
     * body was not handed over when the check ran */
    memset(big, 'b', 2000);
    big[2000] = '\0';
    assert_int_equal(post(srv, "/guarded", big, r, sizeof(r)), 401);
    assert_non_null(strstr(r, "\r\nWWW-Authenticate: Test\r\n"));
    assert_int_equal(tc.checks, 1);
    assert_false(tc.check_saw_body);
    assert_int_equal(tc.guarded_runs, 0);
    /* the layer's checks still come first: 413 over the body limit */
    memset(big, 'b', 2999);
    big[2999] = '\0';
    {
        char huge[5000];
        memset(huge, 'h', 4500);
        huge[4500] = '\0';
        assert_int_equal(post(srv, "/guarded", huge, r, sizeof(r)), 413);
        assert_int_equal(tc.checks, 1);
    }
    /* a scheme that needs the body sees it and names the caller */
    assert_int_equal(post(srv, "/signed", "let me in", r, sizeof(r)), 200);
    assert_string_equal(body_of(r), "alice");
    assert_int_equal(post(srv, "/signed", "let me out", r, sizeof(r)), 403);
    /* built-in client-cert: no certificate on plain http, 401 */
    assert_int_equal(get(srv, "/cc", r, sizeof(r)), 401);
    assert_int_equal(tc.cc_runs, 0);
    /* a scheme that refuses without answering: 500, handler never runs */
    assert_int_equal(get(srv, "/lazy", r, sizeof(r)), 500);
    assert_int_equal(tc.lazy_runs, 0);

    fp_http_server_stop(srv);
    pthread_join(th, NULL);
    /* no mount nor registration once running began */
    assert_int_equal(fp_http_mount(srv, &mod_b, "/late", "L", &e), FP_ERR_STATE);
    {
        fp_http_auth_scheme late = {"late", 0, deny_all, NULL, NULL};
        assert_int_equal(fp_http_auth_register(srv, &late, &e), FP_ERR_STATE);
    }
    fp_http_server_free(srv);
    assert_int_equal(tc.releases, 1);
    assert_int_equal(tc.worker_frees, 4 * workers);
    assert_int_equal(tc.stops, 6);
    assert_int_equal(tc.frees, 6);
}

/* The per-worker state a handler sees is its own worker's. */
static void test_server_worker_state(void **state)
{
    fp_http_server *srv;
    fp_error e = {0};
    pthread_t th;
    char r[4096];
    (void)state;

    memset(&tc, 0, sizeof(tc));
    srv = new_test_server(3);
    register_test_schemes(srv);
    assert_int_equal(fp_http_mount(srv, &mod_a, "/pre", "P", &e), FP_ERR_OK);
    assert_int_equal(pthread_create(&th, NULL, run_server, srv), 0);
    for (int i = 0; i < 12; i++) {
        const char *b;
        int idx = -1;
        assert_int_equal(get(srv, "/pre/t/1/x/2", r, sizeof(r)), 200);
        b = body_of(r);
        assert_int_equal(sscanf(b, "P 1 2 P/w%d", &idx), 1);
        assert_true(idx >= 0 && idx < 3);
        /* the request id starts with the worker's index (request.c) */
        {
            const char *id = strstr(r, "X-Request-Id: ");
            unsigned widx = 99;
            assert_non_null(id);
            assert_int_equal(sscanf(id + 14, "%2x", &widx), 1);
            assert_int_equal((int)widx, idx);
        }
    }
    assert_int_equal(get(srv, "/t/1/x/2", r, sizeof(r)), 404); /* only under the prefix */
    fp_http_server_stop(srv);
    pthread_join(th, NULL);
    fp_http_server_free(srv);
    assert_int_equal(tc.worker_frees, 3);
}

/* ---- connections shared out over the workers (conn.c, "balance") ---- */


/* Until the server holds n connections (30 s against a hang; no timing is
 * asserted). */
static void wait_open(const fp_http_server *srv, long n)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 3000 && fp_http_server_open_conns(srv) != n; i++)
        nanosleep(&ts, NULL);
    assert_int_equal(fp_http_server_open_conns(srv), n);
}

/* A burst of connections is shared out evenly over the workers.  Before,
 * whichever worker woke first took the whole backlog (libevent accepts
 * until EAGAIN): 64 clients connecting at once were split 52/12. */
static void test_balance_burst(void **state)
{
    enum { N = 48 };
    fp_http_server *srv;
    pthread_t th;
    int fds[N];
    long a, b;
    (void)state;

    srv = new_test_server(2);
    assert_int_equal(pthread_create(&th, NULL, run_server, srv), 0);
    for (int i = 0; i < N; i++)
        fds[i] = plain_connect(srv);
    wait_open(srv, N);
    a = fp_http_worker_conns(srv, 0);
    b = fp_http_worker_conns(srv, 1);
    assert_int_equal(a + b, N);
    /* the slack is 4 + fewest / 8 (conn.c), plus one accepted on a check
     * that raced the other worker's */
    if (labs(a - b) > 4 + (a < b ? a : b) / 8 + 1)
        fail_msg("connections split %ld / %ld over two workers", a, b);
    assert_int_equal(fp_http_worker_conns(srv, 2), -1);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    wait_open(srv, 0);
    fp_http_server_stop(srv);
    pthread_join(th, NULL);
    fp_http_server_free(srv);
}

/* A worker stuck in a long request must not hold new connections back:
 * the other worker accepts every one of them while it is stuck. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_state; /* 1: the handler is holding its worker; 2: let go */

static int t_hold(fp_http_req *req)
{
    pthread_mutex_lock(&hold_mu);
    hold_state = 1;
    pthread_cond_broadcast(&hold_cv);
    while (hold_state != 2)
        pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
    return t_reply(req, "held");
}

static const fp_http_route mod_hold_routes[] = {
    {FP_HTTP_GET, "/hold", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0, t_hold},
    {0},
};
static const fp_http_module mod_hold = {"hold", mod_hold_routes, NULL, NULL, NULL, NULL, NULL};

static void test_balance_stuck_worker(void **state)
{
    enum { N = 30 };
    const char *req = "GET /hold HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    fp_http_server *srv;
    fp_error e = {0};
    pthread_t th;
    int fds[N], held;
    char r[512];
    ssize_t n;
    (void)state;

    hold_state = 0;
    srv = new_test_server(2);
    assert_int_equal(fp_http_mount(srv, &mod_hold, NULL, NULL, &e), FP_ERR_OK);
    assert_int_equal(pthread_create(&th, NULL, run_server, srv), 0);
    held = plain_connect(srv);
    assert_int_equal(write(held, req, strlen(req)), (ssize_t)strlen(req));
    pthread_mutex_lock(&hold_mu);
    while (hold_state != 1)
        pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
    /* one worker is stuck in t_hold: the other takes all N, well past
     * the slack, once the stuck one has missed its heartbeats */
    for (int i = 0; i < N; i++)
        fds[i] = plain_connect(srv);
    wait_open(srv, N + 1);
    assert_true(fp_http_worker_conns(srv, 0) == N || fp_http_worker_conns(srv, 1) == N);
    pthread_mutex_lock(&hold_mu);
    hold_state = 2;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
    n = read(held, r, sizeof(r) - 1);
    assert_true(n > 0);
    r[n] = '\0';
    assert_non_null(strstr(r, "held"));
    close(held);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    wait_open(srv, 0);
    fp_http_server_stop(srv);
    pthread_join(th, NULL);
    fp_http_server_free(srv);
}

/* ---- framing guard ---- */

/* Feed all of text (in pieces of step bytes, 0: at once); returns the
 * last event, and the number of FP_GUARD_END events in *ends. */
static int guard_run(fp_http_guard *g, const char *text, size_t step, int *ends)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t n = strlen(text);
    int ev = FP_GUARD_MORE;
    *ends = 0;
    while (n > 0) {
        size_t chunk = step == 0 || step > n ? n : step;
        while (chunk > 0) {
            size_t used = 0;
            ev = fp_http_guard_feed(g, p, chunk, &used);
            assert_true(used <= chunk);
            if (ev == FP_GUARD_ERROR)
                return ev;
            if (ev == FP_GUARD_END)
                (*ends)++;
            p += used;
            n -= used;
            chunk -= used;
        }
    }
    return ev;
}

static int guard_status(const char *text, size_t step)
{
    fp_http_guard g;
    int ends = 0;
    fp_http_guard_init(&g, 1024, 100000);
    if (guard_run(&g, text, step, &ends) == FP_GUARD_ERROR)
        return g.status;
    return ends > 0 ? 200 : 0;
}

static void test_guard_valid(void **state)
{
    static const char *const ok[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "\r\n\r\nGET /a/b?c=d&e=%2F/? HTTP/1.0\r\n\r\n", /* leading empty lines */
        "GET /x HTTP/1.1\nHost: x\n\n",                  /* bare LF line ends */
        "POST /ocsp HTTP/1.1\r\nContent-Length:   4  \r\n\r\nabcd",
        "POST /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
        "PUT /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n4;ext=1\r\nabcd\r\n0\r\nT: v\r\n\r\n",
        "DELETE /x HTTP/1.1\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
        "HEAD /x HTTP/1.1\r\nX-Empty:\r\n\r\n",
        "HEAD /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /x HTTP/1.1\r\nTransfer-Encoding:  chunked\t\r\n\r\n0\r\n\r\n", /* tab after: trimmed by both */
        /* absolute-form, which a server MUST accept (RFC 7230 5.3.2) */
        "GET http://x/ HTTP/1.1\r\n\r\n",
        "GET HTTPS://user@pki.example:8443/.well-known/est/cacerts?a=/b HTTP/1.1\r\n\r\n",
        "GET http://[::1]:80/crl/x.crl HTTP/1.1\r\n\r\n",
        "GET coap+tcp://h%41st HTTP/1.1\r\n\r\n", /* no path: "/" */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
        for (size_t step = 0; step < 4; step++)
            assert_int_equal(guard_status(ok[i], step), 200);
}

static void test_guard_rejects(void **state)
{
    static const struct {
        const char *text;
        int status;
    } bad[] = {
        {"POST /x HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400},
        {"POST /x HTTP/1.1\r\nContent-Length: +4\r\n\r\nabcd", 400},
        {"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nContent-Length: 4 4\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nContent-Length: 0x4\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nContent-Length: 100001\r\n\r\n", 413},
        {"POST /x HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n186a1\r\n", 413},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400},
        {"GET /x HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400},         /* obs-fold */
        {"GET /x HTTP/1.1\r\nX : a\r\n\r\n", 400},              /* space before ':' */
        {"GET /x HTTP/1.1\r\nno colon\r\n\r\n", 400},
        {"GET /x HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},            /* bare CR */
        {"GET /x HTTP/1.1\r\nX: a\x01\r\n\r\n", 400},
        {"GET /x HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400},
        {"GET /x\x1b HTTP/1.1\r\n\r\n", 400},
        {"GET /a b HTTP/1.1\r\n\r\n", 400},
        {"GET /%zz HTTP/1.1\r\n\r\n", 400},
        {"GET /%4 HTTP/1.1\r\n\r\n", 400},
        {"GET /a#b HTTP/1.1\r\n\r\n", 400},
        {"GET /a\"b HTTP/1.1\r\n\r\n", 400},
        {"GET http:///x HTTP/1.1\r\n\r\n", 400},   /* absolute-form, empty host */
        {"GET http:// HTTP/1.1\r\n\r\n", 400},
        {"GET http:/x HTTP/1.1\r\n\r\n", 400},     /* no "//" authority */
        {"GET http:x HTTP/1.1\r\n\r\n", 400},
        {"GET 1http://x/ HTTP/1.1\r\n\r\n", 400},  /* scheme starts with a letter */
        {"GET ht_tp://x/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a b/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a%zz/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://a?q HTTP/1.1\r\n\r\n", 400},  /* query needs a path here */
        {"GET http://a%2/b HTTP/1.1\r\n\r\n", 400}, /* '%' cut by the path's '/' */
        {"GET http://a\x01/ HTTP/1.1\r\n\r\n", 400},
        {"GET *x HTTP/1.1\r\n\r\n", 400},
        {"GET  /x HTTP/1.1\r\n\r\n", 400},
        {"GET /x HTTP/1.1 \r\n\r\n", 400},
        {"GET /x\r\n\r\n", 400},
        {"GET /x HTTP/2.0\r\n\r\n", 505},
        {"GET /x HTTP/1.9\r\n\r\n", 505}, /* found by fuzz_http_server */
        {"GET /x HTTQ/1.1\r\n\r\n", 400},
        {"BREW /x HTTP/1.1\r\n\r\n", 501},
        {"GGGGGGGGGGGGGGGGGGGGGGG", 501},
        {"G(T /x HTTP/1.1\r\n\r\n", 400},
        /* framing evhttp reads differently (smuggling): no body on HEAD for
         * evhttp; only SP stripped before a value by evhttp */
        {"HEAD /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /", 400},
        {"HEAD /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", 400},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: \tchunked\r\n\r\n0\r\n\r\n", 400},
        /* a CR before a request line must end an empty line: no deadline
         * ran for "\r" bytes (evhttp waits for their LF) */
        {"\r\rGET /x HTTP/1.1\r\n\r\n", 400},
        {"\rGET /x HTTP/1.1\r\n\r\n", 400},
        {"GET /x HTTP/1.1\r\n\r\n\r\r\r", 400},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        for (size_t step = 0; step < 3; step++) {
            int got = guard_status(bad[i].text, step);
            if (got != bad[i].status)
                fail_msg("case %zu step %zu: got %d, want %d", i, step, got, bad[i].status);
        }
    }
}

static void test_guard_header_limit(void **state)
{
    char big[4096];
    fp_http_guard g;
    int ends;
    (void)state;
    /* request line + headers over max_header (1024): 431 (RFC 6585 5) */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "GET /x HTTP/1.1\r\nX: ", 20);
    assert_int_equal(guard_status(big, 0), 431);
    memcpy(big, "GET /", 5); /* a long target too */
    assert_int_equal(guard_status(big, 7), 431);
    /* the limit is per request: many small pipelined requests pass */
    fp_http_guard_init(&g, 64, 0);
    assert_int_equal(guard_run(&g, "GET /1 HTTP/1.1\r\nH: x\r\n\r\nGET /2 HTTP/1.1\r\nH: x\r\n\r\n"
                                   "GET /3 HTTP/1.1\r\nH: x\r\n\r\n", 5, &ends),
                     FP_GUARD_END);
    assert_int_equal(ends, 3);
    assert_string_equal(g.target, "/3");
    assert_string_equal(g.method, "GET");
    assert_false(fp_http_guard_busy(&g));
}

/* Chunk extensions count against the header budget (max_header), per
 * request: 1-byte chunks with long extensions would otherwise stretch the
 * body deadline (bytes received buy time) far beyond the body itself. */
static void test_guard_chunk_ext_budget(void **state)
{
    char buf[8192], ext[301], one[2][1024];
    size_t o;
    (void)state;
    memset(ext, 'e', sizeof(ext) - 1);
    ext[sizeof(ext) - 1] = '\0';
    o = (size_t)snprintf(buf, sizeof(buf), "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) /* 900 bytes of extensions: within 1024 */
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "1 %s\r\nx\r\n", ext);
    snprintf(buf + o, sizeof(buf) - o, "0\r\n\r\n");
    assert_int_equal(guard_status(buf, 0), 200);
    for (int i = 0; i < 3; i++) /* 1800: over */
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "1 %s\r\nx\r\n", ext);
    snprintf(buf + o, sizeof(buf) - o, "0\r\n\r\n");
    assert_int_equal(guard_status(buf, 0), 400);
    assert_int_equal(guard_status(buf, 7), 400);
    /* the budget is per request: the same body again on the next one */
    for (int i = 0; i < 2; i++)
        snprintf(one[i], sizeof(one[i]), "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         "1 %s%s\r\nx\r\n0\r\n\r\n", ext, ext);
    snprintf(buf, sizeof(buf), "%s%s", one[0], one[1]);
    assert_int_equal(guard_status(buf, 0), 200);
}

static void test_guard_events(void **state)
{
    fp_http_guard g;
    const char *req = "POST /p?q HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n";
    size_t used = 0, len = strlen(req);
    (void)state;
    fp_http_guard_init(&g, 1024, 10);
    assert_int_equal(fp_http_guard_feed(&g, (const unsigned char *)req, len, &used), FP_GUARD_HEAD);
    assert_true(g.has_body);
    assert_int_equal(g.body_len, 3);
    assert_true(fp_http_guard_busy(&g));
    req += used;
    len -= used;
    assert_int_equal(fp_http_guard_feed(&g, (const unsigned char *)req, len, &used), FP_GUARD_END);
    assert_int_equal(used, 3);
    assert_string_equal(g.target, "/p?q");
    req += used;
    len -= used;
    assert_int_equal(fp_http_guard_feed(&g, (const unsigned char *)req, len, &used), FP_GUARD_MORE);
    assert_int_equal(used, len);
    assert_true(fp_http_guard_busy(&g)); /* the next request has begun */
}

/* ---- connection counts per address ---- */

static void test_addr_count(void **state)
{
    enum { N = 300 };
    fp_addr_count *t = fp_addr_count_new(N);
    unsigned char a[16];
    unsigned long model[N] = {0};
    unsigned seed = 7;
    (void)state;
    assert_non_null(t);
    /* random inc/dec against a model, with many colliding deletions */
    for (int round = 0; round < 20000; round++) {
        int i;
        seed = seed * 1103515245u + 12345u;
        i = (int)((seed >> 8) % N);
        memset(a, 0, sizeof(a));
        a[15] = (unsigned char)i;
        a[14] = (unsigned char)(i >> 8);
        if ((seed >> 20) & 1 || model[i] == 0) {
            unsigned long got = fp_addr_count_inc(t, a);
            assert_int_equal(got, ++model[i]);
        } else {
            fp_addr_count_dec(t, a);
            model[i]--;
        }
    }
    /* every count still right: one more inc shows it */
    for (int i = 0; i < N; i++) {
        memset(a, 0, sizeof(a));
        a[15] = (unsigned char)i;
        a[14] = (unsigned char)(i >> 8);
        assert_int_equal(fp_addr_count_inc(t, a), model[i] + 1);
    }
    fp_addr_count_free(t);
}

/* ---- keyed token buckets ---- */

#define SEC 1000000000LL

static void test_ratelimit_bucket(void **state)
{
    fp_ratelimit *rl = NULL;
    fp_error err = {0};
    int retry = 0;
    (void)state;
    assert_int_equal(fp_ratelimit_new(2, 3, 1024, &rl, &err), FP_ERR_OK);
    for (int i = 0; i < 3; i++)
        assert_true(fp_ratelimit_take(rl, "a", 1, 10 * SEC, &retry));
    assert_false(fp_ratelimit_take(rl, "a", 1, 10 * SEC, &retry));
    assert_int_equal(retry, 1);                                  /* 0.5 s, rounded up */
    assert_true(fp_ratelimit_take(rl, "b", 1, 10 * SEC, NULL));  /* keys independent */
    assert_true(fp_ratelimit_take(rl, "a", 1, 10 * SEC + SEC / 2, &retry)); /* refilled 1 */
    assert_false(fp_ratelimit_take(rl, "a", 1, 10 * SEC + SEC / 2, &retry));
    /* refill is capped at the burst */
    for (int i = 0; i < 3; i++)
        assert_true(fp_ratelimit_take(rl, "a", 1, 1000 * SEC, NULL));
    assert_false(fp_ratelimit_take(rl, "a", 1, 1000 * SEC, NULL));
    /* time going backwards does not mint tokens */
    assert_false(fp_ratelimit_take(rl, "a", 1, 5 * SEC, NULL));
    fp_ratelimit_free(rl);

    assert_int_equal(fp_ratelimit_new(0.01, 1, 1024, &rl, &err), FP_ERR_OK);
    assert_true(fp_ratelimit_take(rl, "k", 1, 0, &retry));
    assert_false(fp_ratelimit_take(rl, "k", 1, 0, &retry));
    assert_int_equal(retry, 100);
    fp_ratelimit_free(rl);

    assert_int_equal(fp_ratelimit_new(0, 1, 1024, &rl, &err), FP_ERR_ARG);
    assert_int_equal(fp_ratelimit_new(1, 0.5, 1024, &rl, &err), FP_ERR_ARG);
    assert_int_equal(fp_ratelimit_new(1, 1, 4, &rl, &err), FP_ERR_ARG);
}

static void test_ratelimit_bounded(void **state)
{
    fp_ratelimit *rl = NULL;
    char key[64];
    (void)state;
    assert_int_equal(fp_ratelimit_new(1, 1, 1024, &rl, NULL), FP_ERR_OK);
    /* an attacker sending 100,000 distinct keys: the table stays at 1024 */
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "token:%d", i);
        assert_true(fp_ratelimit_take(rl, key, (size_t)n, (int64_t)i, NULL));
    }
    assert_true(fp_ratelimit_count(rl) <= 1024);
    /* long keys equal in their first FP_RATELIMIT_KEY_MAX bytes still differ */
    memset(key, 'x', sizeof(key));
    assert_true(fp_ratelimit_take(rl, key, 60, 0, NULL));
    key[59] = 'y';
    assert_true(fp_ratelimit_take(rl, key, 60, 0, NULL));
    assert_false(fp_ratelimit_take(rl, key, 60, 0, NULL));
    fp_ratelimit_free(rl);
}

typedef struct {
    fp_ratelimit *rl;
    int allowed;
} rl_thread_arg;

static void *rl_thread(void *p)
{
    rl_thread_arg *a = p;
    for (int i = 0; i < 20000; i++)
        if (fp_ratelimit_take(a->rl, "shared", 6, 0, NULL))
            a->allowed++;
    return NULL;
}

static void test_ratelimit_threads(void **state)
{
    fp_ratelimit *rl = NULL;
    pthread_t th[4];
    rl_thread_arg args[4];
    int total = 0;
    (void)state;
    assert_int_equal(fp_ratelimit_new(1, 5000, 4096, &rl, NULL), FP_ERR_OK);
    for (int i = 0; i < 4; i++) {
        args[i].rl = rl;
        args[i].allowed = 0;
        assert_int_equal(pthread_create(&th[i], NULL, rl_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += args[i].allowed;
    }
    assert_int_equal(total, 5000); /* the burst, exactly, at one instant */
    fp_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_valid_forms),
        cmocka_unit_test(test_b64_rejects),
        cmocka_unit_test(test_b64_urlsafe),
        cmocka_unit_test(test_b64_size_limit),
        cmocka_unit_test(test_b64_encode_lines_roundtrip),
        cmocka_unit_test(test_basic_valid),
        cmocka_unit_test(test_basic_rejects),
        cmocka_unit_test(test_basic_too_long),
        cmocka_unit_test(test_media_type),
        cmocka_unit_test(test_route_params),
        cmocka_unit_test(test_route_rest),
        cmocka_unit_test(test_route_pattern_rejects),
        cmocka_unit_test(test_router_methods_and_order),
        cmocka_unit_test(test_router_rejects),
        cmocka_unit_test(test_server_modules),
        cmocka_unit_test(test_server_worker_state),
        cmocka_unit_test(test_balance_burst),
        cmocka_unit_test(test_balance_stuck_worker),
        cmocka_unit_test(test_guard_valid),
        cmocka_unit_test(test_guard_rejects),
        cmocka_unit_test(test_guard_header_limit),
        cmocka_unit_test(test_guard_chunk_ext_budget),
        cmocka_unit_test(test_guard_events),
        cmocka_unit_test(test_addr_count),
        cmocka_unit_test(test_ratelimit_bucket),
        cmocka_unit_test(test_ratelimit_bounded),
        cmocka_unit_test(test_ratelimit_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
