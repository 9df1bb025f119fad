/* test_x509.c - the public key rules (pubkey_check.c), the token CN
 * pattern language (token.c), and the differential test that the CLI's
 * CSR reader (fp_csr_parse) and EST's (est_csr_fast_parse, d2i fallback)
 * reach the same policy verdict for the same bytes. */
#include "testutil.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/x509v3.h>

#include "ca/policy.h"
#include "est/est.h"
#include "est/token.h"
#include "x509/der.h"
#include "x509/x509util.h"

static fp_profile any_key; /* every algorithm and size the key rules allow */
static EVP_PKEY *p256;

static int setup(void **state)
{
    (void)state;
    fp_profile_defaults("device", &any_key);
    any_key.algs = FP_ALG_RSA | FP_ALG_P256 | FP_ALG_P384 | FP_ALG_P521 | FP_ALG_ED25519;
    any_key.rsa_max_bits = 16384;
    p256 = tu_key("p256");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(p256);
    return 0;
}

/* ---- RSA keys with a chosen public exponent ---- */

/* A working RSA private key of about `bits` bits with public exponent e
 * (e odd; e = 1 gives d = 1).  Primes are drawn until e is invertible. */
static EVP_PKEY *rsa_with_e(const BIGNUM *e, int bits)
{
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *p = BN_new(), *q = BN_new(), *n = BN_new(), *phi = BN_new(), *d = BN_new();
    BIGNUM *p1 = BN_new(), *q1 = BN_new(), *dp = BN_new(), *dq = BN_new(), *qinv = BN_new();
    BIGNUM *g = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *key = NULL;

    for (;;) {
        assert_true(BN_generate_prime_ex(p, bits / 2, 0, NULL, NULL, NULL));
        assert_true(BN_generate_prime_ex(q, bits / 2, 0, NULL, NULL, NULL));
        assert_true(BN_sub(p1, p, BN_value_one()) && BN_sub(q1, q, BN_value_one()));
        assert_true(BN_mul(phi, p1, q1, ctx));
        assert_true(BN_gcd(g, e, phi, ctx));
        if (BN_is_one(g) && BN_cmp(p, q) != 0)
            break;
    }
    assert_true(BN_mul(n, p, q, ctx));
    if (BN_is_one(e))
        assert_true(BN_one(d));
    else
        assert_non_null(BN_mod_inverse(d, e, phi, ctx));
    assert_true(BN_mod(dp, d, p1, ctx) && BN_mod(dq, d, q1, ctx));
    assert_non_null(BN_mod_inverse(qinv, q, p, ctx));
    assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv));
    assert_non_null(params = OSSL_PARAM_BLD_to_param(bld));
    assert_int_equal(EVP_PKEY_fromdata_init(kc), 1);
    assert_int_equal(EVP_PKEY_fromdata(kc, &key, EVP_PKEY_KEYPAIR, params), 1);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(kc);
    BN_free(p), BN_free(q), BN_free(n), BN_free(phi), BN_free(d), BN_free(p1), BN_free(q1);
    BN_free(dp), BN_free(dq), BN_free(qinv), BN_free(g);
    BN_CTX_free(ctx);
    return key;
}

/* A public-only RSA key (n, e): for exponents no private key exists for. */
static EVP_PKEY *rsa_public(const BIGNUM *n, const BIGNUM *e)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *key = NULL;

    assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e));
    assert_non_null(params = OSSL_PARAM_BLD_to_param(bld));
    assert_int_equal(EVP_PKEY_fromdata_init(kc), 1);
    assert_int_equal(EVP_PKEY_fromdata(kc, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(kc);
    return key;
}

static BIGNUM *bn_hex(const char *hex)
{
    BIGNUM *b = NULL;
    assert_true(BN_hex2bn(&b, hex) > 0);
    return b;
}

/* 2^k + add */
static BIGNUM *bn_pow2_plus(int k, long add)
{
    BIGNUM *b = BN_new();
    assert_true(BN_set_bit(b, k));
    if (add > 0)
        assert_true(BN_add_word(b, (BN_ULONG)add));
    else if (add < 0)
        assert_true(BN_sub_word(b, (BN_ULONG)-add));
    return b;
}

static int policy(const fp_profile *p, X509_REQ *req)
{
    fp_error err = {0};
    return fp_policy_check(p, req, &err);
}

/* Exponents the rules refuse, each in a request whose signature OpenSSL
 * itself accepts: before the rule, every one of them was issued. */
static void test_rsa_exponents_refused(void **state)
{
    BIGNUM *es[5];
    int bits[5] = {2048, 2048, 2048, 2048, 3072};
    (void)state;
    es[0] = bn_hex("1");
    es[1] = bn_hex("3");
    es[2] = bn_hex("FFFF");            /* 65535: below 65537 */
    es[3] = bn_pow2_plus(256, 1);      /* 2^256 + 1: too large */
    es[4] = bn_pow2_plus(3069, 1);     /* a 3070-bit exponent */
    assert_true(BN_set_bit(es[4], 1234));
    for (int i = 0; i < 5; i++) {
        EVP_PKEY *k = rsa_with_e(es[i], bits[i]);
        X509_REQ *req = tu_csr(k, "/CN=rsa-e", NULL, 0, NULL, NULL);
        fp_error err = {0};
        assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
        assert_int_equal(fp_x509_spki_check(X509_REQ_get_X509_PUBKEY(req), NULL, &err), FP_ERR_CSR_KEY);
        assert_int_equal(fp_x509_pubkey_check(k, &err), FP_ERR_CSR_KEY);
        assert_non_null(strstr(err.msg, "exponent"));
        assert_int_equal(fp_csr_verify(req), -1);
        assert_int_equal(policy(&any_key, req), FP_ERR_CSR_KEY);
        assert_int_equal(fp_policy_check_pop(req, NULL), FP_ERR_CSR_KEY);
        X509_REQ_free(req);
        EVP_PKEY_free(k);
        BN_free(es[i]);
    }
    ERR_clear_error();
}

/* An even exponent (no private key exists) and an even modulus are refused
 * as key parameters, not as a failed signature: the rule runs first. */
static void test_rsa_even_exponent_and_modulus(void **state)
{
    EVP_PKEY *good = tu_key("rsa2048"), *bad;
    BIGNUM *n = NULL, *e = NULL, *e_even = bn_hex("10002"), *n_even;
    X509_REQ *req;
    (void)state;
    assert_true(EVP_PKEY_get_bn_param(good, OSSL_PKEY_PARAM_RSA_N, &n));
    assert_true(EVP_PKEY_get_bn_param(good, OSSL_PKEY_PARAM_RSA_E, &e));
    bad = rsa_public(n, e_even);
    req = tu_csr(good, "/CN=even-e", NULL, 0, NULL, NULL);
    assert_true(X509_REQ_set_pubkey(req, bad)); /* the signature no longer matters */
    assert_int_equal(policy(&any_key, req), FP_ERR_CSR_KEY);
    X509_REQ_free(req);
    EVP_PKEY_free(bad);
    n_even = BN_dup(n);
    assert_true(BN_clear_bit(n_even, 0));
    bad = rsa_public(n_even, e);
    req = tu_csr(good, "/CN=even-n", NULL, 0, NULL, NULL);
    assert_true(X509_REQ_set_pubkey(req, bad));
    assert_int_equal(policy(&any_key, req), FP_ERR_CSR_KEY);
    assert_int_equal(fp_x509_pubkey_check(bad, NULL), FP_ERR_CSR_KEY);
    X509_REQ_free(req);
    EVP_PKEY_free(bad);
    BN_free(n), BN_free(e), BN_free(e_even), BN_free(n_even);
    EVP_PKEY_free(good);
}

/* The edges that are allowed: 65537, 2^255 + 1 and 2^256 - 1 */
static void test_rsa_exponents_accepted(void **state)
{
    BIGNUM *es[3] = {bn_hex("10001"), bn_pow2_plus(255, 1), bn_pow2_plus(256, -1)};
    (void)state;
    for (int i = 0; i < 3; i++) {
        EVP_PKEY *k = rsa_with_e(es[i], 2048);
        X509_REQ *req = tu_csr(k, "/CN=rsa-ok", NULL, 0, NULL, NULL);
        fp_error err = {0};
        if (policy(&any_key, req) != FP_ERR_OK || fp_x509_pubkey_check(k, &err) != FP_ERR_OK)
            fail_msg("exponent %d refused: %s", i, err.msg);
        assert_int_equal(fp_csr_verify(req), 1);
        X509_REQ_free(req);
        EVP_PKEY_free(k);
        BN_free(es[i]);
    }
}

/* ---- EC point encodings ---- */

/* req re-read from its DER with its public point's octets replaced by
 * pt (same length): the signature stays as it was. */
static X509_REQ *with_point(X509_REQ *req, const unsigned char *pt, int ptlen)
{
    const unsigned char *old = NULL, *q;
    unsigned char *der = NULL;
    int oldlen = 0, len = i2d_X509_REQ(req, &der), found = 0;
    X509_REQ *out;

    assert_true(X509_PUBKEY_get0_param(NULL, &old, &oldlen, NULL, X509_REQ_get_X509_PUBKEY(req)));
    assert_int_equal(oldlen, ptlen);
    for (int i = 0; i + ptlen <= len && !found; i++)
        if (memcmp(der + i, old, (size_t)ptlen) == 0) {
            memcpy(der + i, pt, (size_t)ptlen);
            found = 1;
        }
    assert_true(found);
    q = der;
    out = d2i_X509_REQ(NULL, &q, len);
    OPENSSL_free(der);
    return out;
}

static void test_ec_point_encodings(void **state)
{
    X509_REQ *req = tu_csr(p256, "/CN=ec", NULL, 0, NULL, NULL), *bad;
    const unsigned char *pt = NULL;
    unsigned char buf[65];
    int ptlen = 0;
    fp_error err = {0};
    (void)state;
    assert_true(X509_PUBKEY_get0_param(NULL, &pt, &ptlen, NULL, X509_REQ_get_X509_PUBKEY(req)));
    assert_int_equal(ptlen, 65);
    assert_int_equal(fp_x509_spki_check(X509_REQ_get_X509_PUBKEY(req), NULL, &err), FP_ERR_OK);
    /* hybrid form (06/07, X9.62) is not in RFC 5480 2.2 */
    memcpy(buf, pt, 65);
    buf[0] = 0x06;
    bad = with_point(req, buf, 65);
    assert_non_null(bad);
    assert_int_equal(fp_x509_spki_check(X509_REQ_get_X509_PUBKEY(bad), NULL, &err), FP_ERR_CSR_KEY);
    assert_int_equal(policy(&any_key, bad), FP_ERR_CSR_KEY);
    X509_REQ_free(bad);
    /* the point at infinity, padded to the same length: 00 || zeros */
    memset(buf, 0, sizeof(buf));
    bad = with_point(req, buf, 65);
    assert_non_null(bad);
    assert_int_equal(policy(&any_key, bad), FP_ERR_CSR_KEY);
    assert_int_equal(fp_csr_verify(bad), -1);
    X509_REQ_free(bad);
    X509_REQ_free(req);
}

/* ---- certificates ---- */

static X509 *self_signed(EVP_PKEY *k)
{
    X509 *x = X509_new();
    assert_true(X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 7));
    assert_true(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                           (const unsigned char *)"c", -1, -1, 0));
    assert_true(X509_set_issuer_name(x, X509_get_subject_name(x)));
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    assert_true(X509_set_pubkey(x, k));
    assert_true(X509_sign(x, k, EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256()) > 0);
    return x;
}

static void test_cert_key_check(void **state)
{
    BIGNUM *e3 = bn_hex("3");
    EVP_PKEY *rsa3 = rsa_with_e(e3, 2048), *rsa = tu_key("rsa2048"), *ed = tu_key("ed25519");
    EVP_PKEY *k1 = EVP_EC_gen("secp256k1");
    X509 *x;
    fp_error err = {0};
    (void)state;
    x = self_signed(rsa3);
    assert_int_equal(fp_x509_cert_key_check(x, &err), FP_ERR_CSR_KEY);
    X509_free(x);
    x = self_signed(k1);
    assert_int_equal(fp_x509_cert_key_check(x, &err), FP_ERR_CSR_KEY_SIZE);
    X509_free(x);
    x = self_signed(rsa);
    assert_int_equal(fp_x509_cert_key_check(x, &err), FP_ERR_OK);
    X509_free(x);
    x = self_signed(p256);
    assert_int_equal(fp_x509_cert_key_check(x, &err), FP_ERR_OK);
    X509_free(x);
    x = self_signed(ed);
    assert_int_equal(fp_x509_cert_key_check(x, &err), FP_ERR_OK);
    X509_free(x);
    assert_int_equal(fp_x509_pubkey_check(p256, &err), FP_ERR_OK);
    assert_int_equal(fp_x509_pubkey_check(k1, &err), FP_ERR_CSR_KEY_SIZE);
    assert_int_equal(fp_x509_pubkey_check(NULL, &err), FP_ERR_CSR_MALFORMED);
    EVP_PKEY_free(rsa3), EVP_PKEY_free(rsa), EVP_PKEY_free(ed), EVP_PKEY_free(k1);
    BN_free(e3);
}

/* ---- token CN patterns ---- */

static void test_token_pattern_language(void **state)
{
    static const struct {
        const char *pattern, *cn;
        bool match;
    } cases[] = {
        {"sensor-*", "sensor-17", true},
        {"sensor-*", "sensor-a.b_c-D", true},
        {"sensor-*", "sensor-", false},        /* '*' is one or more */
        {"sensor-*", "sensor-/../x", false},   /* never crosses '/' */
        {"sensor-*", "sensor-a/b", false},
        {"sensor-*", "sensor-\n", false},      /* no control characters */
        {"sensor-*", "sensor-a\tb", false},
        {"sensor-*", "sensor-a b", false},     /* no space */
        {"sensor-*", "sensor-\xe2\x80\xae" "fdp", false}, /* U+202E */
        {"sensor-*", "sensor-\xc3\xa9", false},           /* any non-ASCII */
        {"sensor-*", "Sensor-1", false},       /* case-sensitive */
        {"sensor-*", "xsensor-1", false},
        {"sensor-?", "sensor-7", true},
        {"sensor-?", "sensor-77", false},
        {"sensor-?", "sensor-/", false},
        {"*.*", "a.b", true},
        {"*.*", "a..b", true},                 /* '*' may match a dot */
        {"*.example", "a/b.example", false},
        {"*-*-*", "a-b-c-d", true},
        {"line 7 *", "line 7 x1", true},       /* a literal space */
        {"exact", "exact", true},
        {"exact", "exact2", false},
        {"sensor-[0-9]", "sensor-[0-9]", false}, /* reserved: matches nothing */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
        if (fp_token_cn_match(cases[i].pattern, cases[i].cn) != cases[i].match)
            fail_msg("pattern '%s' on '%s': expected %s", cases[i].pattern, cases[i].cn,
                     cases[i].match ? "match" : "no match");
    /* many stars cost O(pattern x cn), not exponential time */
    {
        char pat[FP_TOKEN_PATTERN_MAX], cn[FP_TOKEN_CN_MAX + 1];
        memset(pat, 0, sizeof(pat));
        for (int i = 0; i < 60; i++)
            strcat(pat, "*a");
        strcat(pat, "!");
        memset(cn, 'a', FP_TOKEN_CN_MAX);
        cn[FP_TOKEN_CN_MAX] = '\0';
        assert_false(fp_token_cn_match(pat, cn));
    }
    assert_int_equal(fp_token_pattern_check("sensor-*", NULL), FP_ERR_OK);
    assert_int_equal(fp_token_pattern_check("sensor-[0-9]", NULL), FP_ERR_ARG);
    assert_int_equal(fp_token_pattern_check("a\\b", NULL), FP_ERR_ARG);
    assert_int_equal(fp_token_pattern_check("a\nb", NULL), FP_ERR_ARG);
    assert_int_equal(fp_token_pattern_check("caf\xc3\xa9", NULL), FP_ERR_ARG);
    assert_int_equal(fp_token_pattern_check("", NULL), FP_ERR_ARG);
}

/* ---- the two CSR readers agree ---- */

/* DER of req, OPENSSL_malloc'd */
static unsigned char *der_of(X509_REQ *req, int *len)
{
    unsigned char *der = NULL;
    *len = i2d_X509_REQ(req, &der);
    assert_true(*len > 0);
    return der;
}

/* The same request with its CertificationRequestInfo in BER (indefinite
 * length), signed as such with key and md. */
static unsigned char *ber_request(X509_REQ *req, EVP_PKEY *key, const EVP_MD *md, int *out_len)
{
    unsigned char *der = NULL, *tbs, *sig = NULL, *out, *o, *algder = NULL;
    const unsigned char *p, *content;
    long clen, tlen;
    int tag, cls, der_len, alg_len, bits_len, body, total;
    size_t sig_len = 0, tbs_len;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    const X509_ALGOR *alg = NULL;

    der_len = i2d_X509_REQ(req, &der);
    p = der;
    assert_int_equal(ASN1_get_object(&p, &clen, &tag, &cls, der_len), V_ASN1_CONSTRUCTED);
    content = p;
    assert_int_equal(ASN1_get_object(&content, &tlen, &tag, &cls, clen), V_ASN1_CONSTRUCTED);
    tbs_len = 2 + (size_t)tlen + 2;
    tbs = OPENSSL_malloc(tbs_len);
    tbs[0] = 0x30, tbs[1] = 0x80;
    memcpy(tbs + 2, content, (size_t)tlen);
    tbs[tbs_len - 2] = 0, tbs[tbs_len - 1] = 0;
    assert_int_equal(EVP_DigestSignInit(m, NULL, md, NULL, key), 1);
    assert_int_equal(EVP_DigestSign(m, NULL, &sig_len, tbs, tbs_len), 1);
    sig = OPENSSL_malloc(sig_len);
    assert_int_equal(EVP_DigestSign(m, sig, &sig_len, tbs, tbs_len), 1);
    X509_REQ_get0_signature(req, NULL, &alg);
    alg_len = i2d_X509_ALGOR(alg, &algder);
    bits_len = ASN1_object_size(0, (int)sig_len + 1, V_ASN1_BIT_STRING);
    body = (int)tbs_len + alg_len + bits_len;
    total = ASN1_object_size(1, body, V_ASN1_SEQUENCE);
    out = o = OPENSSL_malloc((size_t)total);
    ASN1_put_object(&o, 1, body, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(o, tbs, tbs_len), o += tbs_len;
    memcpy(o, algder, (size_t)alg_len), o += alg_len;
    ASN1_put_object(&o, 0, (int)sig_len + 1, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL);
    *o++ = 0;
    memcpy(o, sig, sig_len);
    *out_len = total;
    OPENSSL_free(der), OPENSSL_free(tbs), OPENSSL_free(sig), OPENSSL_free(algder);
    EVP_MD_CTX_free(m);
    return out;
}

typedef struct {
    int n, fast, refused;
} diff_stats;

/* Policy verdict on der as the CLI reads it and as EST reads it
 * (est_decode_csr: est_csr_fast_parse, else d2i_X509_REQ); they must be
 * the same code.  Returns it. */
static int both_paths(const fp_profile *p, const unsigned char *der, int len, const char *what,
                      diff_stats *st)
{
    X509_REQ *cli = NULL, *est = est_csr_fast_parse(der, (size_t)len);
    const unsigned char *q = der;
    fp_error e1 = {0}, e2 = {0};
    int c1, c2;

    if (est != NULL)
        st->fast++;
    else if ((est = d2i_X509_REQ(NULL, &q, len)) != NULL && q != der + len) {
        X509_REQ_free(est);
        est = NULL;
    }
    c1 = fp_csr_parse(der, (size_t)len, &cli, &e1);
    if (c1 == FP_ERR_OK)
        c1 = fp_policy_check(p, cli, &e1);
    c2 = est == NULL ? fp_err_set(&e2, FP_ERR_CSR_MALFORMED, "body is not a DER PKCS#10 request")
                     : fp_policy_check(p, est, &e2);
    if (c1 != c2)
        fail_msg("%s: CLI says %s (%s), EST says %s (%s)", what, fp_err_name(c1), e1.msg,
                 fp_err_name(c2), e2.msg);
    st->n++;
    st->refused += c1 != FP_ERR_OK;
    X509_REQ_free(cli);
    X509_REQ_free(est);
    return c1;
}

/* Every key type x signature digest, as built, with one bit of the
 * subject flipped, with an ECDSA AlgorithmIdentifier carrying NULL
 * parameters, and in BER: the CLI and EST readers give the same verdict
 * (before the fix, an EC request signed with SHA-1 or SHA-224 was
 * csr-malformed at EST and csr-sig-alg in the CLI). */
/* Positions marked literal match only themselves (a certificate value
 * inserted into [est] cert_identity_pattern); the rest is the language. */
static void test_token_pattern_literal(void **state)
{
    /* "d-" + literal "SN?*" + "-*" */
    const char *pat = "d-SN?*-*";
    bool lit[] = {false, false, true, true, true, true, false, false};
    bool none[8] = {false};
    bool all_lit[] = {true, true, true, true, true};
    (void)state;
    assert_true(fp_token_cn_match_lit(pat, lit, "d-SN?*-eth0"));
    assert_false(fp_token_cn_match_lit(pat, lit, "d-SNa1-eth0")); /* '?', '*' literal */
    assert_true(fp_token_cn_match_lit(pat, none, "d-SNa1-eth0"));  /* as the language */
    assert_false(fp_token_cn_match_lit(pat, lit, "d-SN?*-a/b"));   /* '*' not across '/' */
    assert_false(fp_token_cn_match_lit(pat, lit, "d-SN?*-"));      /* '*' one or more */
    /* literal positions may hold any byte; the others must follow the language */
    assert_true(fp_token_cn_match_lit("a[b]\\", all_lit, "a[b]\\"));
    assert_false(fp_token_cn_match_lit("a[b]\\", none, "a[b]\\"));
    assert_false(fp_token_cn_match_lit("", none, ""));
}

static void test_readers_agree(void **state)
{
    const char *algos[] = {"p256", "p384", "p521", "rsa2048", "ed25519", "k1", "rsa-e3"};
    const char *mds[] = {"SHA1", "SHA224", "SHA256", "SHA384", "SHA512"};
    diff_stats st = {0};
    BIGNUM *e3 = bn_hex("3");
    (void)state;
    for (size_t a = 0; a < sizeof(algos) / sizeof(*algos); a++) {
        EVP_PKEY *k = !strcmp(algos[a], "k1")       ? EVP_EC_gen("secp256k1")
                      : !strcmp(algos[a], "rsa-e3") ? rsa_with_e(e3, 2048)
                                                    : tu_key(algos[a]);
        bool eddsa = !strcmp(algos[a], "ed25519");
        bool ec = algos[a][0] == 'p' || algos[a][0] == 'k';
        for (size_t m = 0; m < (eddsa ? 1 : sizeof(mds) / sizeof(*mds)); m++) {
            EVP_MD *md = eddsa ? NULL : EVP_MD_fetch(NULL, mds[m], NULL);
            X509_REQ *req = tu_csr(k, "/CN=diff-1/O=Acme", "URI:urn:dev:1", 0, NULL, md);
            unsigned char *der, *ber;
            int len, blen, code;
            char what[96];

            snprintf(what, sizeof(what), "%s/%s", algos[a], eddsa ? "-" : mds[m]);
            der = der_of(req, &len);
            code = both_paths(&any_key, der, len, what, &st);
            /* the serverkeygen subset agrees where it applies */
            if (code == FP_ERR_CSR_SIG_ALG || code == FP_ERR_CSR_KEY || code == FP_ERR_OK)
                assert_int_equal(fp_policy_check_pop(req, NULL), code);
            /* and the verdicts themselves */
            if (m < 2 && !eddsa)
                assert_int_equal(code, FP_ERR_CSR_SIG_ALG);
            else if (!strcmp(algos[a], "k1"))
                assert_int_equal(code, FP_ERR_CSR_KEY_SIZE);
            else if (!strcmp(algos[a], "rsa-e3"))
                assert_int_equal(code, FP_ERR_CSR_KEY);
            else
                assert_int_equal(code, FP_ERR_OK);
            /* a flipped bit in the signed subject */
            for (int i = 0; i + 6 <= len; i++)
                if (memcmp(der + i, "diff-1", 6) == 0) {
                    der[i + 5] ^= 0x01;
                    snprintf(what, sizeof(what), "%s/%s tampered", algos[a], eddsa ? "-" : mds[m]);
                    code = both_paths(&any_key, der, len, what, &st);
                    if (m >= 2 && (ec || !strcmp(algos[a], "rsa2048")) && strcmp(algos[a], "k1"))
                        assert_int_equal(code, FP_ERR_CSR_POP);
                    der[i + 5] ^= 0x01;
                }
            OPENSSL_free(der);
            /* BER CertificationRequestInfo, signed as sent */
            ber = ber_request(req, k, md, &blen);
            snprintf(what, sizeof(what), "%s/%s BER", algos[a], eddsa ? "-" : mds[m]);
            both_paths(&any_key, ber, blen, what, &st);
            OPENSSL_free(ber);
            /* ECDSA AlgorithmIdentifier with NULL parameters (RFC 5758 3.2
             * says absent): outside the signed bytes, left to OpenSSL */
            if (ec) {
                const X509_ALGOR *alg = NULL;
                X509_REQ_get0_signature(req, NULL, &alg);
                assert_true(X509_ALGOR_set0((X509_ALGOR *)alg, OBJ_dup(alg->algorithm), V_ASN1_NULL, NULL));
                der = der_of(req, &len);
                snprintf(what, sizeof(what), "%s/%s NULL params", algos[a], mds[m]);
                both_paths(&any_key, der, len, what, &st);
                OPENSSL_free(der);
            }
            X509_REQ_free(req);
            EVP_MD_free(md);
        }
        EVP_PKEY_free(k);
    }
    BN_free(e3);
    /* the fast reader did take part, and both verdicts occurred */
    assert_true(st.fast > 20);
    assert_true(st.refused > 20 && st.refused < st.n);
}

/* ---- the DER cursor (der.c) ---- */

static int der_read(const unsigned char *b, size_t n, fp_der_tlv *t)
{
    fp_der d;
    fp_error e = {0};
    int rc;

    fp_der_init(&d, b, n);
    rc = fp_der_read(&d, t, &e);
    if (rc != FP_ERR_OK)
        assert_true(strncmp(e.msg, "DER: ", 5) == 0);
    assert_int_equal(ERR_peek_error(), 0); /* queue left empty */
    return rc;
}

/* What ASN1_get_object alone says of b: 1 when it accepts the header. */
static int openssl_accepts(const unsigned char *b, size_t n)
{
    const unsigned char *p = b;
    long len;
    int tag, cls, r = ASN1_get_object(&p, &len, &tag, &cls, (long)n);
    ERR_clear_error();
    return (r & 0x80) == 0;
}

static void test_der_cursor_walks(void **state)
{
    /* SEQUENCE { INTEGER 5, SEQUENCE { NULL }, [0] { OCTET STRING "ab" } } */
    static const unsigned char b[] = {0x30, 0x0d, 0x02, 0x01, 0x05, 0x30, 0x02, 0x05, 0x00,
                                      0xa0, 0x04, 0x04, 0x02, 'a', 'b'};
    fp_der d, in, in2;
    fp_der_tlv t, seq;
    (void)state;
    fp_der_init(&d, b, sizeof(b));
    assert_int_equal(fp_der_peek(&d, &t, NULL), FP_ERR_OK);
    assert_ptr_equal(d.p, b); /* peek does not move */
    assert_int_equal(fp_der_expect(&d, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &seq, NULL), FP_ERR_OK);
    assert_int_equal(fp_der_tlv_size(&seq), sizeof(b));
    assert_int_equal(fp_der_finish(&d, NULL), FP_ERR_OK);
    assert_int_equal(fp_der_enter(&d, &seq, &in, NULL), FP_ERR_OK);
    assert_int_equal(fp_der_expect(&in, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, false, &t, NULL), FP_ERR_OK);
    assert_int_equal(t.len, 1);
    assert_int_equal(t.content[0], 5);
    assert_int_equal(fp_der_read(&in, &t, NULL), FP_ERR_OK); /* skip the inner SEQUENCE */
    assert_ptr_equal(t.start, b + 5);
    assert_int_equal(fp_der_tlv_size(&t), 4);
    /* wrong tag, class or form: refused, cursor unmoved */
    assert_int_equal(fp_der_expect(&in, 0, V_ASN1_UNIVERSAL, true, &t, NULL), FP_ERR_ARG);
    assert_int_equal(fp_der_expect(&in, 0, V_ASN1_CONTEXT_SPECIFIC, false, &t, NULL), FP_ERR_ARG);
    assert_int_equal(fp_der_expect(&in, 0, V_ASN1_CONTEXT_SPECIFIC, true, &t, NULL), FP_ERR_OK);
    assert_int_equal(fp_der_finish(&in, NULL), FP_ERR_OK);
    assert_int_equal(fp_der_enter(&in, &t, &in2, NULL), FP_ERR_OK);
    assert_int_equal(fp_der_read(&in2, &t, NULL), FP_ERR_OK);
    assert_memory_equal(t.content, "ab", 2);
    assert_int_equal(fp_der_enter(&in2, &t, &in, NULL), FP_ERR_ARG); /* primitive */
    /* reading past the end of a span: nothing left */
    assert_int_equal(fp_der_read(&in2, &t, NULL), FP_ERR_ARG);
}

static void test_der_cursor_refuses(void **state)
{
    fp_der_tlv t;
    unsigned char big[140];
    (void)state;
    /* truncated header */
    assert_int_equal(der_read((const unsigned char *)"", 0, &t), FP_ERR_ARG);
    assert_int_equal(der_read((const unsigned char[]){0x30}, 1, &t), FP_ERR_ARG);
    assert_int_equal(der_read((const unsigned char[]){0x04, 0x82, 0x01}, 3, &t), FP_ERR_ARG);
    assert_int_equal(der_read((const unsigned char[]){0x1f, 0x81}, 2, &t), FP_ERR_ARG);
    /* length past the end, short and long form */
    assert_int_equal(der_read((const unsigned char[]){0x30, 0x05, 0x02, 0x01, 0x00}, 5, &t), FP_ERR_ARG);
    memset(big, 0, sizeof(big));
    big[0] = 0x04, big[1] = 0x81, big[2] = 0x90; /* 144 > 137 left */
    assert_int_equal(der_read(big, sizeof(big), &t), FP_ERR_ARG);
    big[2] = 0x89; /* exactly 137: fine */
    assert_int_equal(der_read(big, sizeof(big), &t), FP_ERR_OK);
    assert_int_equal(t.len, 137);
    /* non-minimal lengths, which ASN1_get_object itself accepts: long form
     * for a short length, a leading zero octet */
    {
        static const unsigned char l81[] = {0x04, 0x81, 0x02, 'a', 'b'};
        static const unsigned char l82[] = {0x04, 0x82, 0x00, 0x02, 'a', 'b'};
        assert_true(openssl_accepts(l81, sizeof(l81)));
        assert_int_equal(der_read(l81, sizeof(l81), &t), FP_ERR_ARG);
        assert_true(openssl_accepts(l82, sizeof(l82)));
        assert_int_equal(der_read(l82, sizeof(l82), &t), FP_ERR_ARG);
        big[0] = 0x04, big[1] = 0x82, big[2] = 0x00, big[3] = 0x88; /* 136 with a zero octet */
        assert_true(openssl_accepts(big, 4 + 136));
        assert_int_equal(der_read(big, 4 + 136, &t), FP_ERR_ARG);
    }
    /* a low tag number in high-tag form (X.690 8.1.2.4) */
    {
        static const unsigned char ht[] = {0x1f, 0x05, 0x00};
        static const unsigned char ok[] = {0x1f, 0x1f, 0x00}; /* tag 31: high form is right */
        assert_true(openssl_accepts(ht, sizeof(ht)));
        assert_int_equal(der_read(ht, sizeof(ht), &t), FP_ERR_ARG);
        assert_int_equal(der_read(ok, sizeof(ok), &t), FP_ERR_OK);
        assert_int_equal(t.tag, 31);
    }
    /* indefinite length (BER only), constructed; and primitive (never valid) */
    {
        static const unsigned char inf[] = {0x30, 0x80, 0x05, 0x00, 0x00, 0x00};
        static const unsigned char pinf[] = {0x04, 0x80, 0x00, 0x00};
        assert_true(openssl_accepts(inf, sizeof(inf)));
        assert_int_equal(der_read(inf, sizeof(inf), &t), FP_ERR_ARG);
        assert_int_equal(der_read(pinf, sizeof(pinf), &t), FP_ERR_ARG);
    }
    /* lengths of 2^31 and more: 4 octets, 8 octets, beyond a long */
    {
        static const unsigned char l4[] = {0x04, 0x84, 0x80, 0x00, 0x00, 0x00, 0x00};
        static const unsigned char l4max[] = {0x04, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00};
        static const unsigned char l8[] = {0x04, 0x88, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
        static const unsigned char l8f[] = {0x04, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
        static const unsigned char l9[] = {0x04, 0x89, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x00};
        assert_int_equal(der_read(l4, sizeof(l4), &t), FP_ERR_TOO_LARGE);
        assert_int_equal(der_read(l4max, sizeof(l4max), &t), FP_ERR_ARG); /* past the end */
        assert_int_equal(der_read(l8, sizeof(l8), &t), FP_ERR_TOO_LARGE);
        assert_int_equal(der_read(l8f, sizeof(l8f), &t), FP_ERR_ARG);
        assert_int_equal(der_read(l9, sizeof(l9), &t), FP_ERR_ARG);
    }
    /* trailing octets */
    {
        static const unsigned char tr[] = {0x05, 0x00, 0xff};
        fp_der d;
        fp_error e = {0};
        fp_der_init(&d, tr, sizeof(tr));
        assert_int_equal(fp_der_read(&d, &t, NULL), FP_ERR_OK);
        assert_int_equal(fp_der_finish(&d, &e), FP_ERR_ARG);
        assert_non_null(strstr(e.msg, "1 trailing"));
    }
}

/* FP_DER_MAX_DEPTH nested elements are entered, one more is refused. */
static void test_der_cursor_depth(void **state)
{
    unsigned char b[2 * (FP_DER_MAX_DEPTH + 2)];
    size_t n = sizeof(b) / 2;
    fp_der d[FP_DER_MAX_DEPTH + 2];
    fp_der_tlv t;
    (void)state;
    for (size_t i = 0; i < n; i++) {
        b[2 * i] = 0x30;
        b[2 * i + 1] = (unsigned char)(2 * (n - i - 1));
    }
    fp_der_init(&d[0], b, sizeof(b));
    for (int i = 0; i < FP_DER_MAX_DEPTH; i++) {
        assert_int_equal(fp_der_read(&d[i], &t, NULL), FP_ERR_OK);
        assert_int_equal(fp_der_enter(&d[i], &t, &d[i + 1], NULL), FP_ERR_OK);
    }
    assert_int_equal(fp_der_read(&d[FP_DER_MAX_DEPTH], &t, NULL), FP_ERR_OK);
    assert_int_equal(fp_der_enter(&d[FP_DER_MAX_DEPTH], &t, &d[FP_DER_MAX_DEPTH + 1], NULL),
                     FP_ERR_TOO_LARGE);
}

/* The header writer gives what ASN1_put_object gives where that can
 * (int lengths), reads back through the cursor, and goes past 2^31. */
static void test_der_put_hdr(void **state)
{
    static const uint64_t lens[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 0xffffff, 0x1000000,
                                    0x7fffffff};
    unsigned char ours[FP_DER_HDR_MAX], theirs[16], *o;
    size_t n;
    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(*lens); i++) {
        n = fp_der_put_hdr(ours, 0x30, lens[i]);
        assert_int_equal(n, fp_der_hdr_size(lens[i]));
        o = theirs;
        ASN1_put_object(&o, 1, (int)lens[i], V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
        assert_int_equal(n, (size_t)(o - theirs));
        assert_memory_equal(ours, theirs, n);
        if (lens[i] <= 256) { /* read back */
            unsigned char buf[FP_DER_HDR_MAX + 256] = {0};
            fp_der_tlv t;
            memcpy(buf, ours, n);
            assert_int_equal(der_read(buf, n + lens[i], &t), FP_ERR_OK);
            assert_int_equal(t.len, lens[i]);
            assert_int_equal(t.tag, V_ASN1_SEQUENCE);
        }
    }
    n = fp_der_put_hdr(ours, 0xa0, 0xffffffffu); /* a CRL near its 4 GiB cap */
    assert_int_equal(n, 6);
    assert_memory_equal(ours, ((const unsigned char[]){0xa0, 0x84, 0xff, 0xff, 0xff, 0xff}), 6);
    n = fp_der_put_hdr(ours, 0x30, UINT64_MAX); /* fits the buffer too */
    assert_int_equal(n, FP_DER_HDR_MAX);
    assert_int_equal(ours[1], 0x88);
}

/* ---- the named-curve key cache (ec_curve.c) ---- */

static void test_ec_curve_cache(void **state)
{
    static const char *groups[] = {"P-256", "P-384", "P-521"};
    static const int nids[] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        EVP_PKEY *k = EVP_EC_gen(groups[i]), *nat, *leg;
        unsigned char pub[160];
        size_t publen = 0;
        assert_true(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub,
                                                    sizeof(pub), &publen));
        assert_true(fp_ec_curve_cached(nids[i]));
        nat = fp_ec_key_native(nids[i], pub, publen);
        leg = fp_ec_key_legacy(nids[i], pub, publen);
        assert_non_null(nat);
        assert_non_null(leg);
        assert_int_equal(EVP_PKEY_eq(nat, k), 1); /* the same public key */
        assert_int_equal(EVP_PKEY_eq(leg, k), 1);
        EVP_PKEY_free(nat);
        EVP_PKEY_free(leg);
        /* a point off the curve, an empty one, another curve's length */
        pub[publen - 1] ^= 0x01;
        assert_null(fp_ec_key_native(nids[i], pub, publen));
        assert_null(fp_ec_key_legacy(nids[i], pub, publen));
        pub[publen - 1] ^= 0x01;
        assert_null(fp_ec_key_native(nids[i], pub, 0));
        assert_null(fp_ec_key_legacy(nids[i], pub, 0));
        assert_null(fp_ec_key_native(nids[(i + 1) % 3], pub, publen));
        EVP_PKEY_free(k);
    }
    /* other curves: not cached; the legacy form still decodes them */
    {
        EVP_PKEY *k = EVP_EC_gen("secp256k1"), *leg;
        unsigned char pub[80];
        size_t publen = 0;
        assert_true(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub,
                                                    sizeof(pub), &publen));
        assert_false(fp_ec_curve_cached(NID_secp256k1));
        assert_null(fp_ec_key_native(NID_secp256k1, pub, publen));
        leg = fp_ec_key_legacy(NID_secp256k1, pub, publen);
        assert_non_null(leg);
        assert_int_equal(EVP_PKEY_eq(leg, k), 1);
        EVP_PKEY_free(leg);
        EVP_PKEY_free(k);
    }
    ERR_clear_error();
}

/* A request whose headers are valid BER but not DER (a length in long
 * form with leading zero octets): the outer one (unsigned) or the
 * CertificationRequestInfo's (signed as sent).  The fast EST reader and
 * csr_verify's span reader decline such requests (the DER cursor), and
 * the general paths must then give the verdict OpenSSL gives. */
static unsigned char *nonminimal_request(X509_REQ *req, EVP_PKEY *key, bool tbs_too, int *out_len)
{
    unsigned char *der = NULL, *sig = NULL, *out, *o, *algder = NULL, tbs[4096];
    const unsigned char *p, *content;
    long clen, tlen;
    int tag, cls, der_len, alg_len, body;
    size_t sig_len = 0, tbs_len;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    const X509_ALGOR *alg = NULL;
    const ASN1_BIT_STRING *osig = NULL;

    der_len = i2d_X509_REQ(req, &der);
    p = der;
    assert_int_equal(ASN1_get_object(&p, &clen, &tag, &cls, der_len), V_ASN1_CONSTRUCTED);
    content = p;
    assert_int_equal(ASN1_get_object(&content, &tlen, &tag, &cls, clen), V_ASN1_CONSTRUCTED);
    assert_true(tlen + 6 <= (long)sizeof(tbs));
    if (tbs_too) {
        tbs[0] = 0x30, tbs[1] = 0x84, tbs[2] = 0, tbs[3] = 0;
        tbs[4] = (unsigned char)(tlen >> 8), tbs[5] = (unsigned char)tlen;
        memcpy(tbs + 6, content, (size_t)tlen);
        tbs_len = 6 + (size_t)tlen;
        assert_int_equal(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(m, NULL, &sig_len, tbs, tbs_len), 1);
        sig = OPENSSL_malloc(sig_len);
        assert_int_equal(EVP_DigestSign(m, sig, &sig_len, tbs, tbs_len), 1);
    } else {
        tbs_len = (size_t)(content - p) + (size_t)tlen;
        memcpy(tbs, p, tbs_len);
        X509_REQ_get0_signature(req, &osig, NULL);
        sig_len = (size_t)osig->length;
        sig = OPENSSL_memdup(osig->data, sig_len);
    }
    X509_REQ_get0_signature(req, NULL, &alg);
    alg_len = i2d_X509_ALGOR(alg, &algder);
    body = (int)tbs_len + alg_len + ASN1_object_size(0, (int)sig_len + 1, V_ASN1_BIT_STRING);
    out = o = OPENSSL_malloc((size_t)body + 6);
    *o++ = 0x30, *o++ = 0x84, *o++ = 0, *o++ = 0;
    *o++ = (unsigned char)(body >> 8), *o++ = (unsigned char)body;
    memcpy(o, tbs, tbs_len), o += tbs_len;
    memcpy(o, algder, (size_t)alg_len), o += alg_len;
    ASN1_put_object(&o, 0, (int)sig_len + 1, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL);
    *o++ = 0;
    memcpy(o, sig, sig_len);
    *out_len = body + 6;
    OPENSSL_free(der), OPENSSL_free(sig), OPENSSL_free(algder);
    EVP_MD_CTX_free(m);
    return out;
}

static void test_nonminimal_requests(void **state)
{
    X509_REQ *req = tu_csr(p256, "/CN=nonmin-1", NULL, 0, NULL, EVP_sha256());
    diff_stats st = {0};
    (void)state;
    for (int tbs_too = 0; tbs_too < 2; tbs_too++) {
        int len;
        unsigned char *b = nonminimal_request(req, p256, tbs_too, &len);
        const unsigned char *q = b;
        X509_REQ *ref = d2i_X509_REQ(NULL, &q, len);
        assert_non_null(ref); /* OpenSSL reads BER lengths */
        assert_null(est_csr_fast_parse(b, (size_t)len));
        assert_int_equal(fp_csr_verify(ref), 1);
        assert_int_equal(X509_REQ_verify(ref, X509_REQ_get0_pubkey(ref)), 1);
        assert_int_equal(both_paths(&any_key, b, len, tbs_too ? "non-minimal tbs" : "non-minimal outer", &st),
                         FP_ERR_OK);
        /* a flipped signed octet still fails on the general path */
        b[len - 60] ^= 0x01;
        X509_REQ_free(ref);
        q = b;
        ref = d2i_X509_REQ(NULL, &q, len);
        if (ref != NULL)
            assert_int_equal(fp_csr_verify(ref), 0);
        X509_REQ_free(ref);
        OPENSSL_free(b);
    }
    assert_int_equal(st.fast, 0);
    X509_REQ_free(req);
    ERR_clear_error();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsa_exponents_refused),
        cmocka_unit_test(test_rsa_even_exponent_and_modulus),
        cmocka_unit_test(test_rsa_exponents_accepted),
        cmocka_unit_test(test_ec_point_encodings),
        cmocka_unit_test(test_cert_key_check),
        cmocka_unit_test(test_token_pattern_language),
        cmocka_unit_test(test_token_pattern_literal),
        cmocka_unit_test(test_readers_agree),
        cmocka_unit_test(test_der_cursor_walks),
        cmocka_unit_test(test_der_cursor_refuses),
        cmocka_unit_test(test_der_cursor_depth),
        cmocka_unit_test(test_der_put_hdr),
        cmocka_unit_test(test_ec_curve_cache),
        cmocka_unit_test(test_nonminimal_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
