/* test_config.c - config and profile options: round trip, bounds, errors. */
#define _GNU_SOURCE
#include "testutil.h"

#include <ctype.h>
#include <stdbool.h>
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

/* key occurs in msg as a whole word (not inside another option's name) */
static bool names_key(const char *msg, const char *key)
{
    size_t n = strlen(key);
    for (const char *m = strstr(msg, key); m; m = strstr(m + 1, key)) {
        char before = m > msg ? m[-1] : ' ', after = m[n];
        if (!(before == '_' || isalnum((unsigned char)before)) && !(after == '_' || isalnum((unsigned char)after)))
            return true;
    }
    return false;
}

/* Every configuration error is FP_ERR_CONFIG and its message starts with
 * the line at fault and names the option (or section) at fault; for a
 * rule between two options, both, at the line of the later one. */
static void test_errors(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *key, *key2;
    } bad[] = {
        {"[nosuch]\nx = 1\n", 1, "nosuch", NULL},
        {"[ca]\nnosuch = 1\n", 2, "nosuch", NULL},
        {"x = 1\n", 1, "x", NULL},
        {"[server]\nthreads = -1\n", 2, "threads", NULL},
        {"# c\n\n[server]\nthreads = 12abc\n", 4, "threads", NULL},
        {"[server]\nmax_body_bytes = 10\n", 2, "max_body_bytes", NULL},
        {"[ca]\nkeys_encrypted = maybe\n", 2, "keys_encrypted", NULL},
        {"[ca extra]\n", 1, "ca", NULL},
        {"[profile]\n", 1, "profile", NULL},
        {"[profile d]\nvalidity_days = 0\n", 2, "validity_days", NULL},
        {"[profile d]\nvalidity_days = 900\nmax_validity_days = 800\n", 3, "validity_days", "max_validity_days"},
        {"[profile d]\nmax_validity_days = 800\n\nvalidity_days = 900\n", 4, "validity_days", "max_validity_days"},
        {"[profile d]\nrsa_max_bits = 3072\nrsa_min_bits = 4096\n", 3, "rsa_min_bits", "rsa_max_bits"},
        {"[profile d]\nkey_usage = digitalSignature, fooSign\n", 2, "key_usage", NULL},
        {"[profile d]\nkey_usage = keyCertSign\n", 2, "key_usage", "ca"},
        {"[profile d]\nextended_key_usage = notAnOid\n", 2, "extended_key_usage", NULL},
        {"[profile d]\nkey_algorithms = dsa\n", 2, "key_algorithms", NULL},
        {"[profile d]\nvalidity_days = 5\nkey_algorithms = \n", 3, "key_algorithms", NULL},
        {"[profile d]\nsan_types = dns, x400\n", 2, "san_types", NULL},
        {"[profile d]\nsubject_force = O\n", 2, "subject_force", NULL},
        {"[profile d]\nsubject_force = NOPE=x\n", 2, "subject_force", NULL},
        {"[profile d]\nrequested_extensions = sometimes\n", 2, "requested_extensions", NULL},
        {"[profile d]\nrsa_min_bits = 1024\n", 2, "rsa_min_bits", NULL},
        {"[profile d]\nca = yes\nkey_usage = digitalSignature\n", 3, "ca", "key_usage"},
        {"[profile d]\nkey_usage = digitalSignature\nca = yes\n", 3, "ca", "key_usage"},
        {"[profile d]\nunknown = 1\n", 2, "unknown", NULL},
        {"[est a]\nnosuch = 1\n", 2, "nosuch", NULL},
        {"[est a]\nauth = sometimes\n", 2, "auth", NULL},
        {"\n[est simpleenroll]\n", 2, "est", "simpleenroll"},
        {"[est a]\nauth = token\nprofile = nosuch\n", 3, "profile", NULL},
        {"[est a]\ncert_identity = pattern\nauth = cert\n", 2, "cert_identity", NULL},
        {"[profile p]\nkey_algorithms = p256\n[est a]\nprofile = p\nserverkeygen_algo = p384\n", 5,
         "serverkeygen_algo", NULL},
    };
    int wrong = 0;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        fp_config c;
        fp_error e = {0};
        char want[32];
        int rc = parse(&c, bad[i].text, &e);
        if (rc != FP_ERR_CONFIG)
            fail_msg("case %zu (%s) gave %d", i, bad[i].text, rc);
        snprintf(want, sizeof(want), "line %d: ", bad[i].line);
        if (strncmp(e.msg, want, strlen(want)) != 0 || !names_key(e.msg, bad[i].key) ||
            (bad[i].key2 != NULL && !names_key(e.msg, bad[i].key2)))
            wrong++, print_message("case %zu: message '%s' does not start with '%s' and name %s%s%s\n",
                                   i, e.msg, want, bad[i].key, bad[i].key2 ? " and " : "",
                                   bad[i].key2 ? bad[i].key2 : "");
        /* and no option named twice in a row ("subject_force: subject_force:") */
        {
            char twice[80];
            snprintf(twice, sizeof(twice), "%s: %s:", bad[i].key, bad[i].key);
            if (strstr(e.msg, twice) != NULL)
                wrong++, print_message("case %zu: '%s' repeats the option\n", i, e.msg);
        }
    }
    assert_int_equal(wrong, 0);
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
