/* test_err.c - error names/messages and OpenSSL queue draining. */
#include "testutil.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "common/util.h"

static void test_names_unique_and_stable(void **state)
{
    (void)state;
    assert_string_equal(fp_err_name(FP_ERR_OK), "ok");
    assert_string_equal(fp_err_name(FP_ERR_CSR_POP), "csr-pop");
    assert_string_equal(fp_err_name(-1), "unknown");
    assert_string_equal(fp_err_name(FP_ERR__COUNT), "unknown");
    for (int i = 0; i < FP_ERR__COUNT; i++)
        for (int j = i + 1; j < FP_ERR__COUNT; j++)
            assert_string_not_equal(fp_err_name(i), fp_err_name(j));
}

static void test_set_formats_and_returns_code(void **state)
{
    fp_error e = {0};
    (void)state;
    assert_int_equal(fp_err_set(&e, FP_ERR_ARG, "bad %d", 7), FP_ERR_ARG);
    assert_int_equal(e.code, FP_ERR_ARG);
    assert_string_equal(e.msg, "bad 7");
    assert_int_equal(fp_err_set(NULL, FP_ERR_IO, "x"), FP_ERR_IO);
    fp_err_set(&e, FP_ERR_STORE, NULL);
    assert_string_equal(fp_err_str(&e), "store error");
}

static void test_crypto_appends_openssl_queue(void **state)
{
    fp_error e = {0};
    const unsigned char junk[] = {0x30, 0x03, 0x02, 0x01};
    const unsigned char *p = junk;
    (void)state;
    assert_null(d2i_X509(NULL, &p, sizeof(junk)));
    assert_int_not_equal(ERR_peek_error(), 0);
    fp_err_set(&e, FP_ERR_CRYPTO, "decode");
    assert_true(strncmp(e.msg, "decode; ", 8) == 0);
    assert_int_equal(ERR_peek_error(), 0); /* drained */
}

static void test_prefix_bounded(void **state)
{
    fp_error e = {0};
    char big[FP_ERRMSG_MAX * 2];
    (void)state;
    fp_err_set(&e, FP_ERR_CONFIG, "inner");
    fp_err_prefix(&e, "line %d: ", 3);
    assert_string_equal(e.msg, "line 3: inner");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    fp_err_prefix(&e, "%s", big);
    assert_int_equal(strlen(e.msg), FP_ERRMSG_MAX - 1);
}

/* issue 8 (7): a client-supplied field cannot end a log line, forge a
 * key=value pair, or drive a terminal; a cut is visible. */
static void test_log_escape(void **state)
{
    char buf[64];
    (void)state;
    assert_string_equal(fp_log_escape(buf, sizeof(buf), "/.well-known/est/x"), "/.well-known/est/x");
    assert_string_equal(fp_log_escape(buf, sizeof(buf), "a\r\nb status=200"),
                        "a\\x0d\\x0ab\\x20status\\x3d200");
    assert_string_equal(fp_log_escape(buf, sizeof(buf), "\x1b[31m\"\\\x7f\xc3\xa9"),
                        "\\x1b[31m\\x22\\x5c\\x7f\\xc3\\xa9");
    assert_string_equal(fp_log_escape(buf, sizeof(buf), NULL), "-");
    assert_string_equal(fp_log_escape_n(buf, sizeof(buf), "a\0b", 3), "a\\x00b");
    /* cut: never half an escape, always "..." */
    assert_string_equal(fp_log_escape(buf, 8, "abcdefghij"), "abcd...");
    assert_string_equal(fp_log_escape(buf, 8, "ab\ncdef"), "ab...");
    assert_string_equal(fp_log_escape(buf, 8, "abcdefg"), "abcdefg");
    for (size_t n = 1; n < 12; n++) {
        fp_log_escape(buf, n, "\n\n\n\n\n");
        assert_true(strlen(buf) < n);
        assert_null(strchr(buf, '\n'));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_unique_and_stable),
        cmocka_unit_test(test_set_formats_and_returns_code),
        cmocka_unit_test(test_crypto_appends_openssl_queue),
        cmocka_unit_test(test_prefix_bounded),
        cmocka_unit_test(test_log_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
