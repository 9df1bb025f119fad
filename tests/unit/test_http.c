/* test_http.c - HTTP-layer codecs: lenient base64 bodies (RFC 8951),
 * line-broken base64 output, Basic credentials (RFC 7617), media types. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "http/http.h"

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

static void test_path_match(void **state)
{
    const char *w = NULL, *r = NULL;
    size_t wl = 0;
    (void)state;
    assert_true(fp_http_path_match("/.well-known/est/cacerts", "/.well-known/est/cacerts", &w, &wl, &r));
    assert_null(w);
    assert_null(r);
    assert_true(fp_http_path_match("/.well-known/est/*/cacerts", "/.well-known/est/lab-1/cacerts", &w,
                                   &wl, &r));
    assert_int_equal(wl, 5);
    assert_memory_equal(w, "lab-1", 5);
    assert_true(fp_http_path_match("/ocsp/**", "/ocsp/MEUwQzBB", &w, &wl, &r));
    assert_string_equal(r, "MEUwQzBB");
    assert_true(fp_http_path_match("/ocsp/**", "/ocsp/", &w, &wl, &r));
    assert_string_equal(r, "");
    /* negatives */
    assert_false(fp_http_path_match("/.well-known/est/*/cacerts", "/.well-known/est//cacerts", &w, &wl, &r));
    assert_false(fp_http_path_match("/.well-known/est/*/cacerts", "/.well-known/est/a/b/cacerts", &w, &wl, &r));
    assert_false(fp_http_path_match("/.well-known/est/*/cacerts", "/.well-known/est/cacerts", &w, &wl, &r));
    assert_false(fp_http_path_match("/.well-known/est/cacerts", "/.well-known/est/cacerts/", &w, &wl, &r));
    assert_false(fp_http_path_match("/.well-known/est/cacerts", "/.well-known/est/cacert", &w, &wl, &r));
    assert_false(fp_http_path_match("/ocsp/**", "/ocsp", &w, &wl, &r));
    assert_false(fp_http_path_match("/ocsp/**", "/ocspx/a", &w, &wl, &r));
    assert_false(fp_http_path_match("*", "/x", &w, &wl, &r)); /* '*' only as a whole segment */
    assert_false(fp_http_path_match("/a*", "/ab", &w, &wl, &r));
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
        cmocka_unit_test(test_path_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
