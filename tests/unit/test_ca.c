/* test_ca.c - CA core: init, issuance contents, serial retry, refusals. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/x509v3.h>

#include "ca/build.h"
#include "ca/ca.h"
#include "ca/signer.h"
#include "common/util.h"
#include "x509/x509util.h"

typedef tu_ca fx;

static int setup(void **state)
{
    fx *f = malloc(sizeof(*f));
    tu_ca_init(f, "Unit Org", NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    tu_ca_clear(*state);
    free(*state);
    return 0;
}

static X509 *issue(fx *f, X509_REQ *req, const char *profile, int days, int expect)
{
    fp_issue_req ir = {.csr = req, .profile = profile, .days = days, .actor = "unit"};
    fp_error e = {0};
    X509 *x = NULL;
    int rc = fp_ca_issue(f->ca, f->store, &ir, &x, &e);
    if (rc != expect)
        fail_msg("issue: expected %s got %s: %s", fp_err_name(expect), fp_err_name(rc), e.msg);
    X509_REQ_free(req);
    return x;
}

static void test_leaf_contents(void **state)
{
    fx *f = *state;
    X509 *x = issue(f, tu_csr(f->key, "/CN=dev-1/O=dropped/serialNumber=42", "URI:urn:d:1", 0, NULL, NULL),
                    "device", 0, FP_ERR_OK);
    X509 *iss = fp_ca_get0_cert(f->ca);
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    time_t now = time(NULL);
    int crit = 0;
    char *subj = fp_name_string(X509_get_subject_name(x));

    assert_non_null(bc);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    {
        ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
        assert_non_null(ku);
        ASN1_BIT_STRING_free(ku);
        assert_int_equal(crit, 1);
    }
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
    assert_non_null(X509_get0_subject_key_id(x));
    assert_non_null(aki);
    assert_int_equal(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(iss)), 0);
    /* O was not in subject_copy: dropped; CN and serialNumber kept */
    assert_string_equal(subj, "serialNumber=42,CN=dev-1");
    free(subj);
    /* backdated notBefore, notAfter = +365d */
    {
        time_t lo = now - 300 - 5, hi = now - 300 + 5;
        assert_true(X509_cmp_time(X509_get0_notBefore(x), &lo) > 0);
        assert_true(X509_cmp_time(X509_get0_notBefore(x), &hi) < 0);
    }
    assert_int_equal(X509_verify(x, X509_get0_pubkey(iss)), 1);
    /* it is in the store with its serial */
    {
        char serial[FP_SERIAL_HEX_MAX];
        fp_cert_rec rec;
        fp_serial_hex(X509_get0_serialNumber(x), serial);
        assert_int_equal(fp_store_cert_get(f->store, serial, &rec, NULL), 0);
        assert_string_equal(rec.profile, "device");
        fp_cert_rec_clear(&rec);
    }
    X509_free(x);
}

static void test_profiles_ekus(void **state)
{
    fx *f = *state;
    X509 *x = issue(f, tu_csr(f->key, "/CN=web", "DNS:web.example", 0, NULL, NULL), "server", 0, FP_ERR_OK);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
    X509_free(x);
    x = issue(f, tu_csr(f->key, "/CN=fw-signer", NULL, 0, NULL, NULL), "code-signing", 0, FP_ERR_OK);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_CODE_SIGN);
    X509_free(x);
    x = issue(f, tu_csr(f->key, "/CN=ocsp", NULL, 0, NULL, NULL), "ocsp-signer", 0, FP_ERR_OK);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_OCSP_SIGN);
    assert_true(X509_get_ext_by_NID(x, NID_id_pkix_OCSP_noCheck, -1) >= 0);
    X509_free(x);
    x = issue(f, tu_csr(f->key, "/CN=Sub CA", NULL, 0, NULL, NULL), "sub-ca", 0, FP_ERR_OK);
    assert_int_equal(X509_check_ca(x), 1);
    assert_int_equal(X509_get_pathlen(x), 0);
    X509_free(x);
}

static void test_validity_rules(void **state)
{
    fx *f = *state;
    fp_profile *p = (fp_profile *)fp_config_profile(&f->cfg, "device");
    X509 *x;
    issue(f, tu_csr(f->key, "/CN=a", NULL, 0, NULL, NULL), "device", 10000, FP_ERR_VALIDITY);
    x = issue(f, tu_csr(f->key, "/CN=a", NULL, 0, NULL, NULL), "device", 7, FP_ERR_OK);
    {
        time_t t = time(NULL) + 8 * 86400;
        assert_true(X509_cmp_time(X509_get0_notAfter(x), &t) < 0);
    }
    X509_free(x);
    /* a lifetime beyond the issuer's is clamped to it */
    p->max_validity_days = p->validity_days = 36500;
    x = issue(f, tu_csr(f->key, "/CN=a", NULL, 0, NULL, NULL), "device", 0, FP_ERR_OK);
    assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(fp_ca_get0_cert(f->ca))), 0);
    X509_free(x);
}

typedef struct {
    int calls;
    int repeat; /* hand out the fixed serial this many times */
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

static void test_serial_collision_retried(void **state)
{
    fx *f = *state;
    serial_src src = {0, 2};
    X509 *a, *b;
    char sa[FP_SERIAL_HEX_MAX], sb[FP_SERIAL_HEX_MAX];

    fp_ca_set_serial_source(f->ca, fixed_serial, &src);
    a = issue(f, tu_csr(f->key, "/CN=a", NULL, 0, NULL, NULL), "device", 0, FP_ERR_OK);
    /* second issuance draws the same serial, collides, draws a fresh one */
    b = issue(f, tu_csr(f->key, "/CN=b", NULL, 0, NULL, NULL), "device", 0, FP_ERR_OK);
    assert_int_equal(src.calls, 3);
    fp_serial_hex(X509_get0_serialNumber(a), sa);
    fp_serial_hex(X509_get0_serialNumber(b), sb);
    assert_string_equal(sa, "4242424242424242");
    assert_string_not_equal(sa, sb);
    X509_free(a);
    X509_free(b);
    /* a source stuck on one serial gives up with a clear error */
    src.calls = 0;
    src.repeat = 1000;
    issue(f, tu_csr(f->key, "/CN=c", NULL, 0, NULL, NULL), "device", 0, FP_ERR_DUPLICATE);
    fp_ca_set_serial_source(f->ca, NULL, NULL);
}

typedef struct {
    int refusals;
    char last[256];
} audit_scan;

static int scan_cb(void *arg, const fp_audit_row *r)
{
    audit_scan *s = arg;
    if (!strcmp(r->action, "csr.refuse")) {
        s->refusals++;
        snprintf(s->last, sizeof(s->last), "%s", r->detail);
    }
    return 0;
}

static void test_refusals_audited(void **state)
{
    fx *f = *state;
    audit_scan s = {0};
    int64_t rows;
    issue(f, tu_csr(f->key, "/CN=a", NULL, 0, NULL, NULL), "no-such-profile", 0, FP_ERR_PROFILE);
    issue(f, tu_csr(f->key, "/CN=a", NULL, NID_basic_constraints, "CA:TRUE", NULL), "device", 0, FP_ERR_CSR_CA);
    assert_int_equal(fp_store_audit_iter(f->store, scan_cb, &s, NULL), 0);
    assert_int_equal(s.refusals, 2);
    assert_non_null(strstr(s.last, "csr-ca"));
    assert_int_equal(fp_store_audit_verify(f->store, &rows, NULL), 0);
}

static void test_revoke(void **state)
{
    fx *f = *state;
    X509 *x = issue(f, tu_csr(f->key, "/CN=a", NULL, 0, NULL, NULL), "device", 0, FP_ERR_OK);
    char serial[FP_SERIAL_HEX_MAX];
    fp_error e = {0};
    fp_serial_hex(X509_get0_serialNumber(x), serial);
    assert_int_equal(fp_ca_revoke(f->store, serial, FP_REASON_HOLD, "unit", &e), 0);
    assert_int_equal(fp_ca_revoke(f->store, serial, FP_REASON_REMOVE_FROM_CRL, "unit", &e), 0);
    assert_int_equal(fp_ca_revoke(f->store, serial, FP_REASON_SUPERSEDED, "unit", &e), 0);
    assert_int_equal(fp_ca_revoke(f->store, serial, FP_REASON_KEY_COMPROMISE, "unit", &e), FP_ERR_STATE);
    assert_int_equal(fp_ca_revoke(f->store, serial, 7, "unit", &e), FP_ERR_ARG);
    X509_free(x);
}

static void test_init_refuses_and_force_backs_up(void **state)
{
    fx *f = *state;
    fp_init_opts o = {0};
    fp_error e = {0};
    char path[1200];
    struct stat st;
    o.dir = f->dir;
    assert_int_equal(fp_ca_init(&o, &e), FP_ERR_EXISTS);
    o.force = true;
    assert_int_equal(fp_ca_init(&o, &e), 0);
    assert_true(o.backup_dir[0] != '\0');
    snprintf(path, sizeof(path), "%s/root.key", o.backup_dir);
    assert_int_equal(stat(path, &st), 0); /* old key kept, not destroyed */
    assert_int_equal(st.st_mode & 0777, 0600);
    o.force = false;
    o.algo = "dsa";
    assert_int_equal(fp_ca_init(&o, &e), FP_ERR_ARG);
}

static void test_encrypted_ca_needs_passphrase(void **state)
{
    char *dir = tu_tmpdir();
    fp_init_opts o = {0};
    fp_config cfg;
    fp_ca *ca = NULL;
    fp_error e = {0};
    (void)state;
    o.dir = dir;
    o.algo = "p384";
    o.pass = "hunter22";
    o.passlen = 8;
    assert_int_equal(fp_ca_init(&o, &e), 0);
    assert_int_equal(fp_config_load(&cfg, dir, &e), 0);
    assert_true(cfg.keys_encrypted);
    assert_int_equal(fp_ca_open(&cfg, NULL, 0, &ca, &e), FP_ERR_PASSPHRASE);
    assert_int_equal(fp_ca_open(&cfg, "nope", 4, &ca, &e), FP_ERR_PASSPHRASE);
    assert_int_equal(fp_ca_open(&cfg, "hunter22", 8, &ca, &e), 0);
    fp_ca_free(ca);
    tu_rmdir(dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* The cached fixed extensions give the very certificate the profile's
 * builders give, for every profile, with and without public URLs. */
static void test_fixed_extensions_same_result(void **state)
{
    fx *f = *state;
    X509_REQ *req = tu_csr(f->key, "/CN=fixed-1", "DNS:fixed.example", 0, NULL, NULL);
    ASN1_INTEGER *serial = NULL;
    fp_error e = {0};

    assert_int_equal(fp_serial_random(&serial, &e), FP_ERR_OK);
    for (int u = 0; u < 2; u++) {
        for (int i = 0; i < f->cfg.n_profiles; i++) {
            fp_build_params bp;
            fp_build_fixed *fixed = NULL;
            X509 *a = NULL, *b = NULL;
            unsigned char *da = NULL, *db = NULL, md[EVP_MAX_MD_SIZE];
            unsigned int mdlen = 0;
            const ASN1_OCTET_STRING *ski;
            int la, lb;

            memset(&bp, 0, sizeof(bp));
            bp.profile = &f->cfg.profiles[i];
            bp.issuer = fp_ca_get0_cert(f->ca);
            bp.req = req;
            bp.serial = serial;
            bp.now = fp_now();
            if (u == 1) {
                bp.crl_url = "http://pki.example/crl/x.crl";
                bp.ocsp_url = "http://pki.example/ocsp";
                bp.ca_issuers_url = "http://pki.example/ca/x.crt";
            }
            assert_int_equal(fp_cert_build(&bp, &a, &e), FP_ERR_OK);
            assert_int_equal(fp_build_fixed_new(&bp, &fixed, &e), FP_ERR_OK);
            bp.fixed = fixed;
            assert_int_equal(fp_cert_build(&bp, &b, &e), FP_ERR_OK);
            /* signed (randomized ECDSA) so the TBS has its algorithm */
            assert_int_equal(fp_signer_sign_cert(fp_ca_get0_signer(f->ca), a, &e), FP_ERR_OK);
            assert_int_equal(fp_signer_sign_cert(fp_ca_get0_signer(f->ca), b, &e), FP_ERR_OK);
            la = i2d_re_X509_tbs(a, &da);
            lb = i2d_re_X509_tbs(b, &db);
            assert_true(la > 0);
            assert_int_equal(la, lb);
            assert_memory_equal(da, db, (size_t)la);
            /* RFC 5280 4.2.1.2 (1): SKI is the SHA-1 of the key bits */
            ski = X509_get0_subject_key_id(b);
            assert_non_null(ski);
            assert_true(X509_pubkey_digest(b, EVP_sha1(), md, &mdlen));
            assert_int_equal(ASN1_STRING_length(ski), (int)mdlen);
            assert_memory_equal(ASN1_STRING_get0_data(ski), md, mdlen);
            assert_int_equal(X509_get_ext_by_NID(b, NID_crl_distribution_points, -1) >= 0, u == 1);
            OPENSSL_free(da);
            OPENSSL_free(db);
            X509_free(a);
            X509_free(b);
            fp_build_fixed_free(fixed);
        }
    }
    {
        fp_build_params bp;
        fp_build_fixed *fixed = NULL;
        memset(&bp, 0, sizeof(bp));
        bp.profile = &f->cfg.profiles[0];
        assert_int_equal(fp_build_fixed_new(&bp, &fixed, &e), FP_ERR_ARG); /* no issuer */
        assert_null(fixed);
    }
    ASN1_INTEGER_free(serial);
    X509_REQ_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_leaf_contents),
        T(test_fixed_extensions_same_result),
        T(test_profiles_ekus),
        T(test_validity_rules),
        T(test_serial_collision_retried),
        T(test_refusals_audited),
        T(test_revoke),
        T(test_init_refuses_and_force_backs_up),
        cmocka_unit_test(test_encrypted_ca_needs_passphrase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
