/* test_p11uri.c - RFC 7512 pkcs11: URIs (keys/p11uri.c). */
#define _GNU_SOURCE
#include "testutil.h"

#include <string.h>

#include "keys/p11uri.h"

static void test_parse(void **state)
{
    fp_p11_uri u;
    fp_error e = {0};
    (void)state;
    assert_int_equal(fp_p11_uri_parse("pkcs11:token=My%20Token;object=ca-1;id=%01%02%ff;"
                                      "type=private?module-path=/usr/lib/x.so&pin-source=file:/p"
                                      "&unknown-q=1",
                                      &u, &e),
                     0);
    assert_string_equal(u.token, "My Token");
    assert_string_equal(u.object, "ca-1");
    assert_int_equal(u.id_len, 3);
    assert_memory_equal(u.id, "\x01\x02\xff", 3);
    assert_string_equal(u.type, "private");
    assert_string_equal(u.module_path, "/usr/lib/x.so");
    assert_string_equal(u.pin_source, "file:/p");
    assert_true(fp_p11_uri_is("PKCS11:token=a"));
    assert_false(fp_p11_uri_is("/etc/key.pem"));
    assert_int_equal(fp_p11_uri_parse("pkcs11:", &u, &e), 0);
}

static void test_refused(void **state)
{
    fp_p11_uri u;
    fp_error e = {0};
    char big[600];
    (void)state;
    /* RFC 7512 allows pin-value; a PIN in a config file is what we refuse */
    assert_int_equal(fp_p11_uri_parse("pkcs11:token=a?pin-value=1234", &u, &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "pin-value"));
    assert_null(strstr(e.msg, "1234"));
    /* a misspelt path attribute must not widen the match */
    assert_int_equal(fp_p11_uri_parse("pkcs11:tokne=a", &u, &e), FP_ERR_ARG);
    assert_int_equal(fp_p11_uri_parse("pkcs11:token", &u, &e), FP_ERR_ARG);
    assert_int_equal(fp_p11_uri_parse("pkcs11:object=a%2", &u, &e), FP_ERR_ARG);
    assert_int_equal(fp_p11_uri_parse("pkcs11:object=a%zz", &u, &e), FP_ERR_ARG);
    assert_int_equal(fp_p11_uri_parse("pkcs11:object=a%00b", &u, &e), FP_ERR_ARG);
    assert_int_equal(fp_p11_uri_parse("pkcs11:type=banana", &u, &e), FP_ERR_ARG);
    assert_int_equal(fp_p11_uri_parse("file:/x", &u, &e), FP_ERR_ARG);
    /* token labels are 32 bytes (CK_TOKEN_INFO) */
    assert_int_equal(fp_p11_uri_parse("pkcs11:token=0123456789012345678901234567890123", &u, &e),
                     FP_ERR_TOO_LARGE);
    memset(big, 'a', sizeof(big));
    memcpy(big, "pkcs11:object=", 14);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(fp_p11_uri_parse(big, &u, &e), FP_ERR_TOO_LARGE);
}

static void test_with_object(void **state)
{
    char buf[256];
    fp_error e = {0};
    (void)state;
    assert_int_equal(fp_p11_uri_with_object("pkcs11:token=t;object=old;id=%01?module-path=/m.so",
                                            "fleetpki-root", buf, sizeof(buf), &e),
                     0);
    assert_string_equal(buf, "pkcs11:token=t;object=fleetpki-root?module-path=/m.so");
    assert_int_equal(fp_p11_uri_with_object("pkcs11:", "k", buf, sizeof(buf), &e), 0);
    assert_string_equal(buf, "pkcs11:object=k");
    assert_int_equal(fp_p11_uri_with_object("pkcs11:token=t", "a;b", buf, sizeof(buf), &e),
                     FP_ERR_ARG);
    assert_int_equal(fp_p11_uri_with_object("pkcs11:token=t", "k", buf, 10, &e),
                     FP_ERR_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_with_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
