/* test_factory.c - bulk minting: name patterns, the PKCS#8 writer, and
 * fp_issue_batch (one transaction, collisions signed again, all or
 * nothing with refusals audited). */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "ca/caset.h"
#include "ca/factory.h"
#include "ca/issue.h"
#include "common/util.h"
#include "x509/x509util.h"

/* ---- name patterns ---- */

static void test_pattern_good(void **state)
{
    fp_name_pattern p;
    char buf[FP_FACTORY_NAME_MAX + 1];
    fp_error e = {0};

    (void)state;
    assert_int_equal(fp_name_pattern_parse("sensor-%06d", &p, &e), FP_ERR_OK);
    assert_int_equal(fp_name_pattern_format(&p, 42, buf, &e), FP_ERR_OK);
    assert_string_equal(buf, "sensor-000042");
    assert_int_equal(fp_name_pattern_index(&p, "sensor-000042"), 42);
    assert_int_equal(fp_name_pattern_format(&p, 1234567, buf, &e), FP_ERR_OK);
    assert_string_equal(buf, "sensor-1234567");
    assert_int_equal(fp_name_pattern_index(&p, "sensor-1234567"), 1234567);
    /* only the canonical spelling of a number */
    assert_int_equal(fp_name_pattern_index(&p, "sensor-42"), -1);
    assert_int_equal(fp_name_pattern_index(&p, "sensor-0000042"), -1);
    assert_int_equal(fp_name_pattern_index(&p, "sensor-00004x"), -1);
    assert_int_equal(fp_name_pattern_index(&p, "other-000042"), -1);
    assert_int_equal(fp_name_pattern_parse("gw_%d.lab", &p, &e), FP_ERR_OK);
    assert_int_equal(fp_name_pattern_format(&p, 7, buf, &e), FP_ERR_OK);
    assert_string_equal(buf, "gw_7.lab");
    assert_int_equal(fp_name_pattern_index(&p, "gw_7.lab"), 7);
    assert_int_equal(fp_name_pattern_index(&p, "gw_.lab"), -1);
    assert_int_equal(fp_name_pattern_parse("%d", &p, &e), FP_ERR_OK);
    assert_int_equal(fp_name_pattern_index(&p, "0"), 0);
}

static void test_pattern_bad(void **state)
{
    static const char *const bad[] = {
        "",           "sensor",      "sensor-%s",   "%d-%d",      "a/%d",   "../%d",
        "x..%d",      "%5d",         "%%d",         "sensor-%06x", ".%d",   "-%d",
        "a b%d",      "a%d%",        "%-6d",        "%+d",         "%ld",   "%021d",
        "caf\xc3\xa9-%d", "a,b%d",   "a\"%d",       "%.3d",        "%*d",
        "0123456789012345678901234567890123456789012345678901234567890123%d",
    };
    fp_name_pattern p;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        fp_error e = {0};
        if (fp_name_pattern_parse(bad[i], &p, &e) != FP_ERR_ARG)
            fail_msg("pattern '%s' accepted", bad[i]);
        assert_true(e.msg[0] != '\0');
    }
}

static void test_pattern_too_long_name(void **state)
{
    /* 55 characters + 14 digits would pass 64: that name is refused */
    char pat[80], buf[FP_FACTORY_NAME_MAX + 1];
    fp_name_pattern p;
    fp_error e = {0};

    (void)state;
    memset(pat, 'a', 55);
    strcpy(pat + 55, "%d");
    assert_int_equal(fp_name_pattern_parse(pat, &p, &e), FP_ERR_OK);
    assert_int_equal(fp_name_pattern_format(&p, 12345678901234ULL, buf, &e), FP_ERR_ARG);
    assert_int_equal(fp_name_pattern_format(&p, 1234, buf, &e), FP_ERR_OK);
}

/* ---- PKCS#8: our writer gives OpenSSL's bytes ---- */

static char *pem_of(EVP_PKEY *k, int ours)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL, *s;
    long n;

    assert_non_null(b);
    assert_int_equal(ours ? fp_factory_key_pem(b, k)
                          : PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL),
                     1);
    n = BIO_get_mem_data(b, &p);
    /* the BIO's bytes are not a C string: copy exactly n of them (strndup
     * may look past n for the terminator; ASan strict_string_checks does) */
    s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static void test_key_pem_matches_openssl(void **state)
{
    static const struct {
        const char *algo;
        int n;
    } cases[] = {{"p256", 600}, {"p384", 100}, {"p521", 100}, {"ed25519", 5}};
    fp_error e = {0};

    (void)state;
    /* 600 P-256 keys: a private scalar with a leading zero octet (1 in
     * 256) and a public point ending in zero bits both come up */
    for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
        for (int i = 0; i < cases[c].n; i++) {
            EVP_PKEY *k = NULL;
            char *a, *b;
            assert_int_equal(fp_factory_keygen(cases[c].algo, &k, &e), FP_ERR_OK);
            a = pem_of(k, 1);
            b = pem_of(k, 0);
            if (strcmp(a, b) != 0)
                fail_msg("%s key %d: PKCS#8 differs from OpenSSL's:\n%s\n%s", cases[c].algo, i, a, b);
            free(a);
            free(b);
            EVP_PKEY_free(k);
        }
    }
}

/* ---- fp_issue_batch ---- */

typedef struct fx {
    tu_ca ca;
    fp_caset *cas;
    fp_issuer *iss;
    fp_ca *active;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    fp_error e = {0};

    tu_ca_init(&f->ca, "Factory Unit", NULL);
    if (fp_caset_load(&f->ca.cfg, f->ca.store, NULL, 0, &f->cas, &e) != FP_ERR_OK ||
        fp_issuer_new(f->cas, NULL, &f->iss, &e) != FP_ERR_OK)
        fail_msg("caset: %s", e.msg);
    f->active = fp_caset_active(f->cas, FP_PROJECT_DEFAULT);
    assert_non_null(f->active);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fp_issuer_free(f->iss);
    fp_caset_free(f->cas);
    tu_ca_clear(&f->ca);
    free(f);
    return 0;
}

typedef struct {
    int calls;
    int repeat; /* the first `repeat` draws give the fixed serial */
} serial_src;

static int fixed_serial(void *arg, ASN1_INTEGER **out, fp_error *err)
{
    serial_src *s = arg;
    if (s->calls++ < s->repeat) {
        *out = ASN1_INTEGER_new();
        ASN1_INTEGER_set_int64(*out, 0x4242424242424242LL);
        return 0;
    }
    return fp_serial_random(out, err);
}

typedef struct {
    X509_REQ *csr[8];
    EVP_PKEY *key[8];
    fp_issue_req req[8];
    X509 *cert[8];
    int n;
} batch;

static void batch_make(batch *b, int n, const char *prefix)
{
    fp_error e = {0};
    memset(b, 0, sizeof(*b));
    b->n = n;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s-%d", prefix, i);
        assert_int_equal(fp_factory_keygen("p256", &b->key[i], &e), FP_ERR_OK);
        assert_int_equal(fp_factory_request(b->key[i], name, &b->csr[i], &e), FP_ERR_OK);
        b->req[i] = (fp_issue_req){.csr = b->csr[i], .profile = "device", .actor = "unit",
                                   .own_key = true, .via = "factory"};
    }
}

static void batch_free(batch *b)
{
    for (int i = 0; i < b->n; i++) {
        X509_free(b->cert[i]);
        X509_REQ_free(b->csr[i]);
        EVP_PKEY_free(b->key[i]);
    }
}

static void serial_of(X509 *x, char out[FP_SERIAL_HEX_MAX])
{
    assert_non_null(x);
    fp_serial_hex(X509_get0_serialNumber(x), out);
}

typedef struct {
    int issue, refuse;
} audit_count;

static int count_audit(void *arg, const fp_audit_row *r)
{
    audit_count *c = arg;
    c->issue += !strcmp(r->action, "cert.issue");
    c->refuse += !strcmp(r->action, "csr.refuse");
    return FP_ERR_OK;
}

static audit_count audits(fx *f)
{
    audit_count c = {0};
    fp_error e = {0};
    assert_int_equal(fp_store_audit_iter(f->ca.store, count_audit, &c, &e), FP_ERR_OK);
    return c;
}

static void test_batch_commits_all(void **state)
{
    fx *f = *state;
    batch b;
    fp_error e = {0};
    audit_count before = audits(f), after;

    batch_make(&b, 5, "dev");
    assert_int_equal(fp_issue_batch(f->iss, f->ca.store, b.req, 5, b.cert, &e), FP_ERR_OK);
    for (int i = 0; i < 5; i++) {
        char s[FP_SERIAL_HEX_MAX];
        serial_of(b.cert[i], s);
        assert_true(tu_cert_stored(f->ca.store, s));
    }
    after = audits(f);
    assert_int_equal(after.issue - before.issue, 5);
    batch_free(&b);
}

static void test_batch_collisions_resigned(void **state)
{
    fx *f = *state;
    serial_src src = {0, 2};
    batch b, c;
    fp_error e = {0};
    char s[8][FP_SERIAL_HEX_MAX];

    /* the first two of the batch draw the same serial: only the second is
     * signed again (4 draws for 3 certificates) */
    fp_ca_set_serial_source(f->active, fixed_serial, &src);
    batch_make(&b, 3, "col");
    assert_int_equal(fp_issue_batch(f->iss, f->ca.store, b.req, 3, b.cert, &e), FP_ERR_OK);
    assert_int_equal(src.calls, 4);
    for (int i = 0; i < 3; i++) {
        serial_of(b.cert[i], s[i]);
        assert_true(tu_cert_stored(f->ca.store, s[i]));
    }
    assert_string_equal(s[0], "4242424242424242");
    assert_string_not_equal(s[0], s[1]);
    assert_string_not_equal(s[1], s[2]);
    assert_string_not_equal(s[0], s[2]);
    /* a serial already in the store: that one is signed again */
    src.calls = 0;
    src.repeat = 1;
    batch_make(&c, 2, "col2");
    assert_int_equal(fp_issue_batch(f->iss, f->ca.store, c.req, 2, c.cert, &e), FP_ERR_OK);
    assert_int_equal(src.calls, 3);
    serial_of(c.cert[0], s[3]);
    serial_of(c.cert[1], s[4]);
    assert_string_not_equal(s[3], "4242424242424242");
    assert_true(tu_cert_stored(f->ca.store, s[3]));
    assert_true(tu_cert_stored(f->ca.store, s[4]));
    batch_free(&c);
    /* a source stuck on one serial: a clear error, nothing handed out */
    src.calls = 0;
    src.repeat = 1000;
    batch_make(&c, 2, "col3");
    assert_int_equal(fp_issue_batch(f->iss, f->ca.store, c.req, 2, c.cert, &e), FP_ERR_DUPLICATE);
    assert_null(c.cert[0]);
    assert_null(c.cert[1]);
    batch_free(&c);
    fp_ca_set_serial_source(f->active, NULL, NULL);
    batch_free(&b);
}

static int count_certs(void *arg, const fp_cert_rec *r)
{
    (void)r;
    (*(int *)arg)++;
    return FP_ERR_OK;
}

static void test_batch_all_or_nothing(void **state)
{
    fx *f = *state;
    batch b;
    fp_error e = {0};
    fp_cert_filter all = {.status = -1};
    int n0 = 0, n1 = 0;
    audit_count before = audits(f), after;

    assert_int_equal(fp_store_cert_list(f->ca.store, &all, count_certs, &n0, &e), FP_ERR_OK);
    batch_make(&b, 4, "aon");
    /* the third request claims to be a server-made key but is not, and is
     * unsigned: no proof of possession, refused */
    b.req[2].own_key = false;
    assert_int_equal(fp_issue_batch(f->iss, f->ca.store, b.req, 4, b.cert, &e), FP_ERR_CSR_POP);
    for (int i = 0; i < 4; i++)
        assert_null(b.cert[i]);
    assert_int_equal(fp_store_cert_list(f->ca.store, &all, count_certs, &n1, &e), FP_ERR_OK);
    assert_int_equal(n1, n0);
    after = audits(f);
    assert_int_equal(after.refuse - before.refuse, 1);
    assert_int_equal(after.issue, before.issue);
    /* tokens and held requests are not for batches */
    b.req[2].own_key = true;
    b.req[1].token_id = "tok";
    assert_int_equal(fp_issue_batch(f->iss, f->ca.store, b.req, 4, b.cert, &e), FP_ERR_ARG);
    batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_good),
        cmocka_unit_test(test_pattern_bad),
        cmocka_unit_test(test_pattern_too_long_name),
        cmocka_unit_test(test_key_pem_matches_openssl),
        cmocka_unit_test_setup_teardown(test_batch_commits_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_collisions_resigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_all_or_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
