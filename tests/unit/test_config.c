/* test_config.c - config and profile options: round trip, bounds, errors. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "ca/config.h"

static int parse(fp_config *c, const char *text, fp_error *e)
{
    return fp_config_parse(c, "/tmp", text, strlen(text), e);
}

static void test_defaults_have_all_profiles(void **state)
{
    fp_config c;
    (void)state;
    fp_config_defaults(&c, "/x");
    for (int i = 0; fp_builtin_profiles[i]; i++)
        assert_non_null(fp_config_profile(&c, fp_builtin_profiles[i]));
    assert_null(fp_config_profile(&c, "nope"));
    assert_string_equal(c.https_listen, "127.0.0.1:8443");
    assert_true(fp_config_profile(&c, "sub-ca")->is_ca);
    assert_int_equal(fp_config_profile(&c, "ocsp-signer")->eku_nids[0], NID_OCSP_sign);
}

static void test_round_trip(void **state)
{
    fp_config a, *b = malloc(sizeof(*b));
    fp_error e = {0};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    (void)state;
    fp_config_defaults(&a, "/tmp");
    strcpy(a.org, "Round Trip Ltd");
    a.threads = 3;
    a.profiles[0].force[0].nid = NID_organizationName;
    strcpy(a.profiles[0].force[0].value, "Forced Org");
    a.profiles[0].n_force = 1;
    fp_config_write(&a, f);
    fclose(f);
    assert_int_equal(fp_config_parse(b, "/tmp", text, len, &e), 0);
    assert_string_equal(b->org, "Round Trip Ltd");
    assert_int_equal(b->threads, 3);
    assert_int_equal(b->n_profiles, a.n_profiles);
    for (int i = 0; i < a.n_profiles; i++)
        assert_memory_equal(&a.profiles[i], &b->profiles[i], sizeof(fp_profile));
    free(text);
    free(b);
}

static void test_custom_profile(void **state)
{
    fp_config c;
    fp_error e = {0};
    const fp_profile *p;
    (void)state;
    assert_int_equal(parse(&c, "[profile gateway]\nvalidity_days = 30\nkey_algorithms = p384\n"
                               "extended_key_usage = clientAuth, serverAuth\n"
                               "subject_force = O=Acme, C=DE\ncn_pattern = gw-*\n", &e), 0);
    p = fp_config_profile(&c, "gateway");
    assert_non_null(p);
    assert_int_equal(p->validity_days, 30);
    assert_int_equal(p->algs, FP_ALG_P384);
    assert_int_equal(p->n_eku, 2);
    assert_int_equal(p->n_force, 2);
    assert_string_equal(p->force[1].value, "DE");
    assert_string_equal(p->cn_pattern, "gw-*");
}

static void test_errors(void **state)
{
    const char *bad[] = {
        "[nosuch]\nx = 1\n",
        "[ca]\nnosuch = 1\n",
        "x = 1\n",
        "[server]\nthreads = -1\n",
        "[server]\nthreads = 12abc\n",
        "[server]\nmax_body_bytes = 10\n",
        "[ca]\nkeys_encrypted = maybe\n",
        "[ca extra]\n",
        "[profile]\n",
        "[profile d]\nvalidity_days = 0\n",
        "[profile d]\nvalidity_days = 900\nmax_validity_days = 800\n",
        "[profile d]\nkey_usage = digitalSignature, fooSign\n",
        "[profile d]\nkey_usage = keyCertSign\n",
        "[profile d]\nextended_key_usage = notAnOid\n",
        "[profile d]\nkey_algorithms = dsa\n",
        "[profile d]\nkey_algorithms = \n",
        "[profile d]\nsan_types = dns, x400\n",
        "[profile d]\nsubject_force = O\n",
        "[profile d]\nsubject_force = NOPE=x\n",
        "[profile d]\nrequested_extensions = sometimes\n",
        "[profile d]\nrsa_min_bits = 1024\n",
        "[profile d]\nca = yes\nkey_usage = digitalSignature\n",
        "[profile d]\nunknown = 1\n",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        fp_config c;
        fp_error e = {0};
        int rc = parse(&c, bad[i], &e);
        if (rc != FP_ERR_CONFIG)
            fail_msg("case %zu (%s) gave %d", i, bad[i], rc);
        assert_true(strlen(e.msg) > 0);
    }
}

static void test_load_missing(void **state)
{
    fp_config c;
    fp_error e = {0};
    (void)state;
    assert_int_equal(fp_config_load(&c, "/nonexistent-dir", &e), FP_ERR_NOT_FOUND);
    assert_non_null(strstr(e.msg, "fleetpki init"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_have_all_profiles),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_custom_profile),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
