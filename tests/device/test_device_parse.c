/*
 * test_device_parse.c - the device library's wire parsers on their own:
 * HTTP/1.1 response framing (http.c), RFC 2046 multipart (multipart.c)
 * and strict base64 bodies (dev_util.c), fed from memory one byte at a
 * time (so every parser state meets a buffer boundary) and all at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dev_int.h"
#include "http.h"
#include "multipart.h"

typedef struct {
    const char *p;
    size_t len, pos, step;
} memsrc;

static int mem_read(void *ctx, void *buf, size_t n, size_t *got, fpd_errbuf *e)
{
    memsrc *m = ctx;
    size_t k = m->len - m->pos;
    (void)e;
    if (k > n)
        k = n;
    if (k > m->step)
        k = m->step;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    *got = k;
    return FP_DEVICE_OK;
}

/* Parses s with both chunkings; both must agree.  Returns the code and
 * leaves the body of the second run in out. */
static int parse(const char *s, size_t max_body, fpd_http_resp *out)
{
    int rc1, rc2;
    fpd_errbuf e;
    memsrc m1 = {s, strlen(s), 0, 1}, m2 = {s, strlen(s), 0, 1 << 20};
    fpd_reader r1 = {mem_read, &m1}, r2 = {mem_read, &m2};
    fpd_http_resp tmp;

    rc1 = fpd_http_read_response(&r1, max_body, &tmp, &e);
    fpd_http_resp_free(&tmp);
    rc2 = fpd_http_read_response(&r2, max_body, out, &e);
    assert_int_equal(rc1, rc2);
    return rc2;
}

static void expect(const char *s, int want)
{
    fpd_http_resp r;
    int rc = parse(s, 1024, &r);
    if (rc != want)
        fail_msg("%s: got %s, want %s", s, fp_device_err_name(rc), fp_device_err_name(want));
    fpd_http_resp_free(&r);
}

static void test_http_ok(void **state)
{
    fpd_http_resp r;
    (void)state;
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime; smime-type=certs-only\r\n"
                           "Content-Length: 5\r\nRetry-After: 12\r\n\r\nhello",
                           1024, &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 5);
    assert_memory_equal(r.body.p, "hello", 5);
    assert_int_equal(r.retry_after, 12);
    assert_true(fpd_http_ct_is(r.content_type, "application/pkcs7-mime"));
    assert_false(fpd_http_ct_is(r.content_type, "application/pkcs7"));
    fpd_http_resp_free(&r);

    /* chunked with an extension and a trailer; an interim 100 first */
    assert_int_equal(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
                           1024, &r),
                     0);
    assert_int_equal(r.body.len, 5);
    assert_memory_equal(r.body.p, "abcde", 5);
    fpd_http_resp_free(&r);

    /* no length: the body runs to a clean end; 204 has none */
    assert_int_equal(parse("HTTP/1.0 200 OK\r\n\r\nto the end", 1024, &r), 0);
    assert_int_equal(r.body.len, 10);
    fpd_http_resp_free(&r);
    assert_int_equal(parse("HTTP/1.1 204 No Content\r\n\r\n", 1024, &r), 0);
    assert_int_equal(r.body.len, 0);
    fpd_http_resp_free(&r);
    /* the same Content-Length twice is one length (RFC 9110 8.6) */
    expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", 0);
}

static void test_http_refused(void **state)
{
    static const struct {
        const char *in;
        int want;
    } cases[] = {
        {"HTTP/1.1 200 OK\nContent-Length: 0\n\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/2 200 OK\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 099 x\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 20 x\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nNo-Colon\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nX: a\x01z\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", FP_DEVICE_ERR_MALFORMED},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", FP_DEVICE_ERR_TOO_BIG},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n", FP_DEVICE_ERR_TOO_BIG},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n", FP_DEVICE_ERR_TOO_BIG},
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", FP_DEVICE_ERR_TRUNCATED},
        {"HTTP/1.1 200 OK\r\nContent-Le", FP_DEVICE_ERR_TRUNCATED},
        {"", FP_DEVICE_ERR_TRUNCATED},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", FP_DEVICE_ERR_TRUNCATED},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", FP_DEVICE_ERR_TRUNCATED},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(cases[i].in, cases[i].want);
}

static void test_http_head_bound(void **state)
{
    /* a header block over FPD_HTTP_HEAD_MAX, in many small lines */
    fpd_buf b = {0};
    (void)state;
    fpd_buf_addf(&b, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 1000; i++)
        fpd_buf_addf(&b, "X-%d: 0123456789\r\n", i);
    fpd_buf_addf(&b, "\r\n");
    expect((const char *)b.p, FP_DEVICE_ERR_TOO_BIG);
    /* a close-delimited body over the limit */
    fpd_buf_free(&b, 0);
    fpd_buf_addf(&b, "HTTP/1.1 200 OK\r\n\r\n");
    for (int i = 0; i < 200; i++)
        fpd_buf_addf(&b, "0123456789");
    expect((const char *)b.p, FP_DEVICE_ERR_TOO_BIG);
    fpd_buf_free(&b, 0);
}

static void test_ct_param(void **state)
{
    char v[80];
    (void)state;
    assert_int_equal(fpd_http_ct_param("multipart/mixed; boundary=abc", "boundary", v, sizeof(v)), 0);
    assert_string_equal(v, "abc");
    assert_int_equal(fpd_http_ct_param("multipart/mixed;charset=x; Boundary=\"a b\\\"c\"", "boundary", v, sizeof(v)), 0);
    assert_string_equal(v, "a b\"c");
    assert_int_equal(fpd_http_ct_param("multipart/mixed", "boundary", v, sizeof(v)), -1);
    assert_int_equal(fpd_http_ct_param("multipart/mixed; boundary=\"open", "boundary", v, sizeof(v)), -1);
    assert_int_equal(fpd_http_ct_param("multipart/mixed; boundary=", "boundary", v, sizeof(v)), -1);
    assert_int_equal(fpd_http_ct_param("a/b; x=1 junk; boundary=q", "boundary", v, sizeof(v)), -1);
}

#define KP "Content-Type: application/pkcs8\r\n\r\nKEY"
#define CP "Content-Type: application/pkcs7-mime; smime-type=certs-only\r\n\r\nCERT"

static int mp(const char *ct, const char *body, fpd_part *parts, size_t *n)
{
    fpd_errbuf e;
    return fpd_multipart_parse(ct, (const unsigned char *)body, strlen(body), parts, 2, n, &e);
}

static void test_multipart(void **state)
{
    fpd_part p[2];
    size_t n;
    (void)state;
    assert_int_equal(mp("multipart/mixed; boundary=b1", "--b1\r\n" KP "\r\n--b1\r\n" CP "\r\n--b1--\r\n", p, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(p[0].len, 3);
    assert_memory_equal(p[0].data, "KEY", 3);
    assert_string_equal(p[1].content_type, "application/pkcs7-mime; smime-type=certs-only");
    /* preamble, transport padding, a quoted boundary, "--b1" inside a
     * part without CRLF before it is content */
    assert_int_equal(mp("multipart/mixed; boundary=\"b 1\"",
                        "pre\r\n--b 1  \r\n" KP "--b 1x\r\n--b 1\r\n" CP "\r\n--b 1--", p, &n), 0);
    assert_int_equal(p[0].len, 3 + 6);
    /* refused */
    assert_int_equal(mp("multipart/mixed; boundary=b1", "--b1\r\n" KP "\r\n--b1\r\n" CP "\r\n--b1", p, &n),
                     FP_DEVICE_ERR_TRUNCATED);
    assert_int_equal(mp("multipart/mixed; boundary=b1", "--b1\r\n" KP "\r\n--b1\r\n" CP, p, &n),
                     FP_DEVICE_ERR_TRUNCATED);
    assert_int_equal(mp("multipart/mixed; boundary=b1",
                        "--b1\r\n" KP "\r\n--b1\r\n" CP "\r\n--b1\r\n" KP "\r\n--b1--", p, &n),
                     FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(mp("multipart/mixed; boundary=b1", "--b1\r\nContent-Type: a\r\n b\r\n\r\nX\r\n--b1--", p, &n),
                     FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(mp("multipart/mixed; boundary=b1",
                        "--b1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nX\r\n--b1--", p, &n),
                     FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(mp("multipart/mixed; boundary=b1", "--b1x\r\n", p, &n), FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(mp("multipart/mixed; boundary=b1", "nothing here", p, &n), FP_DEVICE_ERR_MALFORMED);
    {
        /* a 200 or 204 without body: the body buffer is NULL (fuzz find) */
        fpd_errbuf e;
        assert_int_equal(fpd_multipart_parse("multipart/mixed; boundary=b1", NULL, 0, p, 2, &n, &e),
                         FP_DEVICE_ERR_MALFORMED);
    }
    assert_int_equal(mp("multipart/mixed", "--b1\r\n", p, &n), FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(mp("text/plain; boundary=b1", "--b1\r\n", p, &n), FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(mp("multipart/mixed; boundary=0123456789012345678901234567890123456789012345678901234567890123456789x",
                        "--x\r\n", p, &n),
                     FP_DEVICE_ERR_MALFORMED);
}

static int b64(const char *s, unsigned char **out, size_t *len)
{
    fpd_errbuf e;
    return fpd_b64_decode_body(s, strlen(s), 1024, out, len, &e);
}

static void test_b64_body(void **state)
{
    unsigned char *out = NULL;
    size_t len = 0;
    (void)state;
    assert_int_equal(b64("aGVs\r\nbG8=\n", &out, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "hello", 5);
    free(out);
    assert_int_equal(b64("aGVsbA==", &out, &len), 0);
    assert_int_equal(len, 4);
    free(out);
    assert_int_equal(b64("aGVs*G8=", &out, &len), FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(b64("aGVsbA==aGVs", &out, &len), FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(b64("aGVsbG8", &out, &len), FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(b64("aGVsb===", &out, &len), FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(b64("", &out, &len), FP_DEVICE_ERR_MALFORMED);
    assert_int_equal(b64("\r\n", &out, &len), FP_DEVICE_ERR_MALFORMED);
    assert_null(out);
}

/* The public API refuses bad configuration with bad-argument and does
 * nothing on the network without a server and an anchor. */
static void test_api_args(void **state)
{
    fp_device *d = fp_device_new();
    fp_device_cred *c = NULL;
    fp_device_enroll_opts o = {.common_name = "x"};
    char label[80];
    (void)state;
    assert_non_null(d);
    memset(label, 'a', sizeof(label) - 1);
    label[sizeof(label) - 1] = '\0';
    assert_int_equal(fp_device_cacerts(d, NULL, NULL), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set_server(d, "localhost", 0, NULL), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set_server(d, "localhost", 70000, NULL), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set_server(d, "local host", 443, NULL), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set_server(d, "localhost", 443, "a/b"), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set_server(d, "localhost", 443, "a%2f"), FP_DEVICE_ERR_ARG);
    /* a label too long for one request line buffer is refused up front */
    assert_int_equal(fp_device_set_server(d, "localhost", 443, label), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set_server(d, "localhost", 443, "factory-1"), 0);
    /* no anchor: nothing goes out */
    assert_int_equal(fp_device_cacerts(d, NULL, NULL), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_enroll(d, &o, &c), FP_DEVICE_ERR_ARG);
    assert_null(c);
    assert_int_equal(fp_device_set_basic_auth(d, "id:x", "secret"), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set_basic_auth(d, "id", "secret"), 0);
    assert_int_equal(fp_device_set_basic_auth(d, NULL, NULL), 0);
    assert_int_equal(fp_device_set_limits(d, 10, 1000), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set_limits(d, 4096, 0), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_set1_trust_anchors(d, "junk", 4), FP_DEVICE_ERR_MALFORMED);
    /* reenroll needs a client credential, enroll a common name */
    o.common_name = NULL;
    assert_int_equal(fp_device_enroll(d, &o, &c), FP_DEVICE_ERR_ARG);
    assert_int_equal(fp_device_reenroll(d, NULL, &c), FP_DEVICE_ERR_ARG);
    assert_string_equal(fp_device_err_name(FP_DEVICE_ERR_TRUNCATED), "truncated");
    assert_string_equal(fp_device_err_name(999), "unknown");
    fp_device_free(d);
    fp_device_free(NULL);
    fp_device_cred_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_ok),        cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_head_bound), cmocka_unit_test(test_ct_param),
        cmocka_unit_test(test_multipart),      cmocka_unit_test(test_b64_body),
        cmocka_unit_test(test_api_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
