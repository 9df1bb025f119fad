/* test_keyfile.c - key files: 0600, encryption at rest, passphrases. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "x509/x509util.h"

static void test_plain_key_0600_and_no_overwrite(void **state)
{
    char *dir = tu_tmpdir(), path[512];
    EVP_PKEY *k = tu_key("p256"), *back = NULL;
    struct stat st;
    fp_error e = {0};
    (void)state;
    snprintf(path, sizeof(path), "%s/k.pem", dir);
    umask(0);
    assert_int_equal(fp_key_write(path, k, NULL, 0, &e), 0);
    umask(022);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(fp_key_write(path, k, NULL, 0, &e), FP_ERR_EXISTS);
    assert_int_equal(fp_key_read(path, NULL, 0, &back, &e), 0);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    EVP_PKEY_free(back);
    EVP_PKEY_free(k);
    tu_rmdir(dir);
}

static void test_encrypted_key(void **state)
{
    char *dir = tu_tmpdir(), path[512];
    EVP_PKEY *k = tu_key("ed25519"), *back = NULL;
    unsigned char *text = NULL;
    size_t len = 0;
    fp_error e = {0};
    (void)state;
    snprintf(path, sizeof(path), "%s/k.pem", dir);
    assert_int_equal(fp_key_write(path, k, "s3cret", 6, &e), 0);
    assert_int_equal(fp_file_read(path, 65536, &text, &len, &e), 0);
    assert_non_null(strstr((char *)text, "BEGIN ENCRYPTED PRIVATE KEY"));
    free(text);
    assert_int_equal(fp_key_read(path, NULL, 0, &back, &e), FP_ERR_PASSPHRASE);
    assert_non_null(strstr(e.msg, "missing"));
    assert_int_equal(fp_key_read(path, "wrong", 5, &back, &e), FP_ERR_PASSPHRASE);
    assert_int_equal(fp_key_read(path, "s3cret", 6, &back, &e), 0);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    EVP_PKEY_free(back);
    EVP_PKEY_free(k);
    tu_rmdir(dir);
}

static void test_passphrase_sources(void **state)
{
    char *dir = tu_tmpdir(), path[512], *pass = NULL;
    size_t len = 0;
    fp_error e = {0};
    FILE *f;
    (void)state;
    snprintf(path, sizeof(path), "%s/pass", dir);
    f = fopen(path, "w");
    fputs("line one\nsecond line\n", f);
    fclose(f);
    assert_int_equal(fp_passphrase_load(path, &pass, &len, &e), 0);
    assert_string_equal(pass, "line one");
    assert_int_equal(len, 8);
    fp_passphrase_free(pass, len);
    f = fopen(path, "w");
    fputs("\n", f);
    fclose(f);
    assert_int_equal(fp_passphrase_load(path, &pass, &len, &e), FP_ERR_PASSPHRASE);
    unsetenv("FLEETPKI_PASSPHRASE");
    assert_int_equal(fp_passphrase_load(NULL, &pass, &len, &e), 0);
    assert_null(pass);
    setenv("FLEETPKI_PASSPHRASE", "from-env", 1);
    assert_int_equal(fp_passphrase_load(NULL, &pass, &len, &e), 0);
    assert_string_equal(pass, "from-env");
    fp_passphrase_free(pass, len);
    unsetenv("FLEETPKI_PASSPHRASE");
    assert_int_equal(fp_passphrase_load("/nonexistent/pass", &pass, &len, &e), FP_ERR_NOT_FOUND);
    tu_rmdir(dir);
}

static void test_bad_inputs(void **state)
{
    char *dir = tu_tmpdir(), path[512];
    EVP_PKEY *k = NULL;
    X509_REQ *req = NULL;
    X509 *x = NULL;
    fp_error e = {0};
    FILE *f;
    (void)state;
    snprintf(path, sizeof(path), "%s/junk", dir);
    f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    assert_int_equal(fp_key_read(path, NULL, 0, &k, &e), FP_ERR_CRYPTO);
    assert_int_equal(fp_cert_read(path, &x, &e), FP_ERR_CRYPTO);
    assert_int_equal(fp_key_generate("dsa", &k, &e), FP_ERR_ARG);
    assert_int_equal(fp_csr_parse((const unsigned char *)"", 0, &req, &e), FP_ERR_CSR_MALFORMED);
    assert_int_equal(fp_csr_parse((const unsigned char *)"\x30\x03\x02\x01", 4, &req, &e), FP_ERR_CSR_MALFORMED);
    {
        unsigned char *big = calloc(1, FP_CSR_MAX_BYTES + 1);
        assert_int_equal(fp_csr_parse(big, FP_CSR_MAX_BYTES + 1, &req, &e), FP_ERR_TOO_LARGE);
        free(big);
    }
    tu_rmdir(dir);
}

static void test_serials(void **state)
{
    char a[FP_SERIAL_HEX_MAX], b[FP_SERIAL_HEX_MAX], n[FP_SERIAL_HEX_MAX];
    ASN1_INTEGER *s1 = NULL, *s2 = NULL;
    fp_error e = {0};
    (void)state;
    assert_int_equal(fp_serial_random(&s1, &e), 0);
    assert_int_equal(fp_serial_random(&s2, &e), 0);
    assert_int_equal(fp_serial_hex(s1, a), 0);
    assert_int_equal(fp_serial_hex(s2, b), 0);
    assert_int_equal(strlen(a), 2 * FP_SERIAL_BYTES); /* top octet nonzero */
    assert_string_not_equal(a, b);
    assert_int_equal(ASN1_INTEGER_get_int64(&(int64_t){0}, s1) == 0, 1); /* > 63 bits */
    assert_int_equal(fp_serial_normalize("serial=0a:bc", n, &e), 0);
    assert_string_equal(n, "0ABC");
    assert_int_equal(fp_serial_normalize("0x1", n, &e), 0);
    assert_string_equal(n, "01");
    assert_int_equal(fp_serial_normalize("xyz", n, &e), FP_ERR_ARG);
    assert_int_equal(fp_serial_normalize("", n, &e), FP_ERR_ARG);
    assert_int_equal(fp_serial_normalize("1234567890123456789012345678901234567890AB", n, &e), FP_ERR_ARG);
    ASN1_INTEGER_free(s1);
    ASN1_INTEGER_free(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_key_0600_and_no_overwrite),
        cmocka_unit_test(test_encrypted_key),
        cmocka_unit_test(test_passphrase_sources),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_serials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
