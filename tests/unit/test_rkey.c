/* test_rkey.c - remote keys (keys/rkey.c): OpenSSL's own signing calls work
 * on a key whose private half is behind a callback, and their results
 * verify with the public key alone. */
#define _GNU_SOURCE
#include "testutil.h"

#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "keys/rkey.h"

/* A backend that signs with a key in memory, counting its calls. */
typedef struct mem_be {
    EVP_PKEY *key;
    int calls;
    bool fail;
} mem_be;

static int mem_sign(void *arg, const char *mdname, const unsigned char *data, size_t len,
                    unsigned char **sig, size_t *siglen, fp_error *err)
{
    mem_be *m = arg;
    EVP_PKEY_CTX *ctx = NULL;
    int ok;
    m->calls++;
    if (m->fail)
        return fp_err_set(err, FP_ERR_CRYPTO, "token says no");
    if (mdname == NULL) {
        EVP_MD_CTX *mc = EVP_MD_CTX_new();
        ok = EVP_DigestSignInit(mc, NULL, NULL, NULL, m->key) == 1 &&
             EVP_DigestSign(mc, NULL, siglen, data, len) == 1 &&
             (*sig = OPENSSL_malloc(*siglen)) != NULL &&
             EVP_DigestSign(mc, *sig, siglen, data, len) == 1;
        EVP_MD_CTX_free(mc);
        return ok ? 0 : FP_ERR_CRYPTO;
    }
    ctx = EVP_PKEY_CTX_new(m->key, NULL);
    ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
         EVP_PKEY_CTX_set_signature_md(ctx, EVP_get_digestbyname(mdname)) == 1 &&
         EVP_PKEY_sign(ctx, NULL, siglen, data, len) == 1 &&
         (*sig = OPENSSL_malloc(*siglen)) != NULL &&
         EVP_PKEY_sign(ctx, *sig, siglen, data, len) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : FP_ERR_CRYPTO;
}

static EVP_PKEY *public_of(EVP_PKEY *k)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    int n = i2d_PUBKEY(k, &der);
    EVP_PKEY *pub;
    assert_true(n > 0);
    p = der;
    pub = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    assert_non_null(pub);
    return pub;
}

static X509 *self_signed_template(EVP_PKEY *pub)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"rk", -1, -1, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pub);
    X509_NAME_free(n);
    return x;
}

static void run_algo(const char *algo)
{
    EVP_PKEY *real = tu_key(algo), *pub = public_of(real), *rk = NULL;
    mem_be m = {real, 0, false};
    fp_rkey_backend be = {.sign = mem_sign, .arg = &m};
    X509 *x = self_signed_template(pub);
    X509_CRL *crl = X509_CRL_new();
    OCSP_BASICRESP *br = OCSP_BASICRESP_new();
    const EVP_MD *md = EVP_PKEY_is_a(pub, "ED25519") ? NULL : EVP_sha256();
    fp_error e = {0};

    assert_int_equal(fp_rkey_new(pub, &be, &rk, &e), 0);
    assert_true(fp_rkey_is_remote(rk));
    assert_false(fp_rkey_is_remote(real));
    /* the remote key is the certificate's key, as far as OpenSSL can tell */
    assert_int_equal(X509_check_private_key(x, rk), 1);
    assert_true(X509_sign(x, rk, md) > 0);
    assert_int_equal(X509_verify(x, pub), 1);
    assert_true(m.calls >= 1);

    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(x));
    {
        ASN1_TIME *t = ASN1_TIME_new();
        X509_gmtime_adj(t, 0);
        X509_CRL_set1_lastUpdate(crl, t);
        ASN1_TIME_free(t);
    }
    assert_true(X509_CRL_sign(crl, rk, md) > 0);
    assert_int_equal(X509_CRL_verify(crl, pub), 1);

    /* OCSP_basic_sign checks the key against the responder certificate */
    assert_int_equal(OCSP_basic_sign(br, x, rk, md, NULL, OCSP_NOCERTS), 1);
    assert_int_equal(OCSP_basic_verify(br, NULL, NULL, OCSP_NOVERIFY | OCSP_NOINTERN), 0);
    {
        STACK_OF(X509) *sk = sk_X509_new_null();
        sk_X509_push(sk, x);
        assert_int_equal(OCSP_basic_verify(br, sk, NULL, OCSP_NOVERIFY | OCSP_TRUSTOTHER), 1);
        sk_X509_free(sk);
    }

    /* CMS (firmware signing, issue 13): CMS_sign duplicates the signing
     * context before the final signature; verified as a relying party
     * would, from the DER.  (Ed25519: CMS_sign needs a default digest a
     * remote Ed25519 key does not report; not supported.) */
    if (md != NULL) {
        const char msg[] = "firmware image";
        BIO *in = BIO_new_mem_buf(msg, sizeof(msg) - 1), *out = NULL;
        X509_STORE *store = X509_STORE_new();
        CMS_ContentInfo *cms = CMS_sign(x, rk, NULL, in, CMS_BINARY | CMS_DETACHED), *back;
        unsigned char *der = NULL;
        const unsigned char *p;
        int n;
        assert_non_null(cms);
        n = i2d_CMS_ContentInfo(cms, &der);
        assert_true(n > 0);
        p = der;
        back = d2i_CMS_ContentInfo(NULL, &p, n);
        assert_non_null(back);
        X509_STORE_add_cert(store, x);
        BIO_free(in);
        in = BIO_new_mem_buf(msg, sizeof(msg) - 1);
        out = BIO_new(BIO_s_mem());
        assert_int_equal(
            CMS_verify(back, NULL, store, in, out, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY), 1);
        BIO_free(in);
        BIO_free(out);
        OPENSSL_free(der);
        CMS_ContentInfo_free(back);
        CMS_ContentInfo_free(cms);
        X509_STORE_free(store);
    }

    /* a failing backend fails the signature and says why */
    m.fail = true;
    assert_true(X509_sign(x, rk, md) <= 0);
    assert_int_equal(fp_rkey_last_error()->code, FP_ERR_CRYPTO);
    assert_non_null(strstr(fp_rkey_last_error()->msg, "token says no"));
    ERR_clear_error();

    OCSP_BASICRESP_free(br);
    X509_CRL_free(crl);
    X509_free(x);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(real);
}

static void test_ec(void **state)
{
    (void)state;
    run_algo("p256");
    run_algo("p384");
}

static void test_rsa(void **state)
{
    (void)state;
    run_algo("rsa3072");
}

static void test_ed25519(void **state)
{
    (void)state;
    run_algo("ed25519");
}

/* A different key's certificate does not match the remote key. */
static void test_mismatch(void **state)
{
    EVP_PKEY *real = tu_key("p256"), *other = tu_key("p256"), *pub = public_of(real);
    EVP_PKEY *rk = NULL;
    mem_be m = {real, 0, false};
    fp_rkey_backend be = {.sign = mem_sign, .arg = &m};
    X509 *x = self_signed_template(other);
    fp_error e = {0};
    (void)state;
    assert_int_equal(fp_rkey_new(pub, &be, &rk, &e), 0);
    assert_int_not_equal(X509_check_private_key(x, rk), 1);
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(other);
    EVP_PKEY_free(real);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ec),
        cmocka_unit_test(test_rsa),
        cmocka_unit_test(test_ed25519),
        cmocka_unit_test(test_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
