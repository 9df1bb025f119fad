/* test_scep.c - the SCEP message codec (src/scep/scep_msg.c): requests
 * built here with OpenSSL's CMS API are parsed back field by field, every
 * malformed shape gets its failInfo, and CertReps decode with the right
 * attributes and envelope. */
#define FP_SCEP_SERVER
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "scep/scep.h"
#include "testutil.h"

static X509 *ra_cert, *cl_cert;
static EVP_PKEY *ra_key, *cl_key;

static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    assert_true(x && n && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 7) &&
                X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                           -1, 0) &&
                X509_set_subject_name(x, n) && X509_set_issuer_name(x, n) &&
                X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
                X509_gmtime_adj(X509_getm_notAfter(x), 3600) && X509_set_pubkey(x, key) &&
                X509_sign(x, key, EVP_sha256()));
    X509_NAME_free(n);
    return x;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(scep_oids_init(NULL), FP_ERR_OK);
    ra_key = tu_key("rsa2048");
    cl_key = tu_key("rsa2048");
    ra_cert = self_signed(ra_key, "test RA");
    cl_cert = self_signed(cl_key, "client");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    X509_free(ra_cert);
    X509_free(cl_cert);
    EVP_PKEY_free(ra_key);
    EVP_PKEY_free(cl_key);
    return 0;
}

typedef struct req_shape {
    const char *type;   /* messageType text; NULL: absent */
    const char *txid;   /* NULL: absent */
    int nonce_len;      /* 0: absent */
    const EVP_MD *md;
    const EVP_CIPHER *cipher;
    const unsigned char *inner;
    size_t inner_len;
    bool raw_content;   /* sign inner itself, no envelope */
} req_shape;

static bool add_attr(CMS_SignerInfo *si, const char *oid, int type, const void *d, int n)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    bool ok = CMS_signed_add1_attr_by_OBJ(si, o, type, d, n) == 1;
    ASN1_OBJECT_free(o);
    return ok;
}

static unsigned char *build(const req_shape *s, size_t *len)
{
    STACK_OF(X509) *rcpt = sk_X509_new_null();
    BIO *in = BIO_new_mem_buf(s->inner, (int)s->inner_len), *envb = NULL;
    CMS_ContentInfo *env = NULL, *sd;
    CMS_SignerInfo *si;
    unsigned char *env_der = NULL, *out = NULL, nonce[32] = {9};
    int env_len = 0, n;

    if (s->raw_content) {
        envb = BIO_new_mem_buf(s->inner, (int)s->inner_len);
    } else {
        assert_true(sk_X509_push(rcpt, ra_cert));
        env = CMS_encrypt(rcpt, in, s->cipher ? s->cipher : EVP_aes_128_cbc(), CMS_BINARY);
        assert_non_null(env);
        env_len = i2d_CMS_ContentInfo(env, &env_der);
        envb = BIO_new_mem_buf(env_der, env_len);
    }
    sd = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    si = CMS_add1_signer(sd, cl_cert, cl_key, s->md ? s->md : EVP_sha256(), CMS_BINARY);
    assert_non_null(si);
    if (s->type)
        assert_true(add_attr(si, "2.16.840.1.113733.1.9.2", V_ASN1_PRINTABLESTRING, s->type,
                             (int)strlen(s->type)));
    if (s->txid)
        assert_true(add_attr(si, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING, s->txid,
                             (int)strlen(s->txid)));
    if (s->nonce_len)
        assert_true(add_attr(si, "2.16.840.1.113733.1.9.5", V_ASN1_OCTET_STRING, nonce,
                             s->nonce_len));
    assert_int_equal(CMS_final(sd, envb, NULL, CMS_BINARY), 1);
    n = i2d_CMS_ContentInfo(sd, &out);
    assert_true(n > 0);
    *len = (size_t)n;
    CMS_ContentInfo_free(sd);
    CMS_ContentInfo_free(env);
    BIO_free(in);
    BIO_free(envb);
    OPENSSL_free(env_der);
    sk_X509_free(rcpt);
    return out;
}

static unsigned char *csr_der(int *len)
{
    X509_REQ *r = tu_csr(cl_key, "/CN=unit", NULL, 0, NULL, NULL);
    unsigned char *d = NULL;
    *len = i2d_X509_REQ(r, &d);
    X509_REQ_free(r);
    return d;
}

/* parse s; expect rc and (on failure) failInfo */
static void expect(const req_shape *s, int rc, int info, scep_msg *m)
{
    size_t len = 0;
    unsigned char *der = build(s, &len);
    scep_fail f;
    int got = scep_msg_parse(der, len, ra_cert, ra_key, NULL, m, &f);
    if (rc == FP_ERR_OK) {
        assert_int_equal(got, FP_ERR_OK);
    } else {
        assert_int_not_equal(got, FP_ERR_OK);
        assert_int_equal(f.info, info);
    }
    OPENSSL_free(der);
}

static void test_pkcsreq_roundtrip(void **state)
{
    int n;
    unsigned char *csr = csr_der(&n);
    req_shape s = {"19", "TX-1", 16, NULL, NULL, csr, (size_t)n, false};
    scep_msg m;
    (void)state;
    expect(&s, FP_ERR_OK, 0, &m);
    assert_int_equal(m.type, SCEP_PKCSREQ);
    assert_string_equal(m.txid, "TX-1");
    assert_true(m.has_nonce);
    assert_int_equal(m.nonce[0], 9);
    assert_non_null(m.csr);
    assert_int_equal(m.csr_der_len, (size_t)n);
    assert_memory_equal(m.csr_der, csr, (size_t)n);
    assert_int_equal(X509_cmp(m.signer, cl_cert), 0);
    assert_int_equal(m.cipher_nid, NID_aes_128_cbc);
    scep_msg_clear(&m);
    OPENSSL_free(csr);
}

static void test_bad_shapes(void **state)
{
    int n;
    unsigned char *csr = csr_der(&n);
    scep_msg m;
    (void)state;
    /* each missing attribute is badRequest */
    req_shape a = {NULL, "T", 16, NULL, NULL, csr, (size_t)n, false};
    expect(&a, -1, SCEP_BAD_REQUEST, &m);
    scep_msg_clear(&m);
    req_shape b = {"19", NULL, 16, NULL, NULL, csr, (size_t)n, false};
    expect(&b, -1, SCEP_BAD_REQUEST, &m);
    scep_msg_clear(&m);
    req_shape c = {"19", "T", 0, NULL, NULL, csr, (size_t)n, false};
    expect(&c, -1, SCEP_BAD_REQUEST, &m);
    scep_msg_clear(&m);
    req_shape c2 = {"19", "T", 8, NULL, NULL, csr, (size_t)n, false}; /* nonce not 16 octets */
    expect(&c2, -1, SCEP_BAD_REQUEST, &m);
    scep_msg_clear(&m);
    /* a CertRep or a made-up type is not a request */
    req_shape d = {"3", "T", 16, NULL, NULL, csr, (size_t)n, false};
    expect(&d, -1, SCEP_BAD_REQUEST, &m);
    assert_string_equal(m.txid, "T"); /* kept for the FAILURE answer */
    scep_msg_clear(&m);
    req_shape e = {"19x", "T", 16, NULL, NULL, csr, (size_t)n, false};
    expect(&e, -1, SCEP_BAD_REQUEST, &m);
    scep_msg_clear(&m);
    /* MD5 and, without legacy, SHA-1: badAlg */
    req_shape f = {"19", "T", 16, EVP_md5(), NULL, csr, (size_t)n, false};
    expect(&f, -1, SCEP_BAD_ALG, &m);
    scep_msg_clear(&m);
    req_shape g = {"19", "T", 16, EVP_sha1(), NULL, csr, (size_t)n, false};
    expect(&g, -1, SCEP_BAD_ALG, &m);
    scep_msg_clear(&m);
    /* content that is not an EnvelopedData: badRequest */
    req_shape h = {"19", "T", 16, NULL, NULL, csr, (size_t)n, true};
    expect(&h, -1, SCEP_BAD_REQUEST, &m);
    scep_msg_clear(&m);
    /* an envelope around the wrong content for the type: badMessageCheck */
    req_shape i = {"20", "T", 16, NULL, NULL, csr, (size_t)n, false};
    expect(&i, -1, SCEP_BAD_MESSAGE_CHECK, &m);
    scep_msg_clear(&m);
    /* trailing garbage after the CSR */
    {
        unsigned char *x = OPENSSL_malloc((size_t)n + 1);
        memcpy(x, csr, (size_t)n);
        x[n] = 0;
        req_shape j = {"19", "T", 16, NULL, NULL, x, (size_t)n + 1, false};
        expect(&j, -1, SCEP_BAD_MESSAGE_CHECK, &m);
        scep_msg_clear(&m);
        OPENSSL_free(x);
    }
    OPENSSL_free(csr);
}

static void test_legacy_sha1(void **state)
{
    int n;
    unsigned char *csr = csr_der(&n), *der;
    req_shape s = {"19", "T", 16, EVP_sha1(), NULL, csr, (size_t)n, false};
    size_t len = 0;
    scep_msg m;
    scep_fail f;
    fp_error err = {0};
    OSSL_LIB_CTX *legacy = scep_legacy_ctx_new(&err);
    (void)state;
    assert_non_null(legacy);
    der = build(&s, &len);
    assert_int_equal(scep_msg_parse(der, len, ra_cert, ra_key, legacy, &m, &f), FP_ERR_OK);
    scep_msg_clear(&m);
    OPENSSL_free(der);
    OPENSSL_free(csr);
    scep_legacy_ctx_free(legacy);
}

static void test_garbage(void **state)
{
    static const unsigned char junk[] = {0x30, 0x03, 0x02, 0x01, 0x05};
    scep_msg m;
    scep_fail f;
    (void)state;
    assert_int_not_equal(scep_msg_parse(junk, sizeof(junk), ra_cert, ra_key, NULL, &m, &f),
                         FP_ERR_OK);
    assert_int_equal(f.info, SCEP_BAD_REQUEST);
    assert_string_equal(m.txid, "");
    scep_msg_clear(&m);
    assert_int_not_equal(scep_msg_parse(junk, 0, ra_cert, ra_key, NULL, &m, &f), FP_ERR_OK);
    scep_msg_clear(&m);
}

/* the signed attribute oid of rep as text, or "" */
static void attr_text(CMS_SignerInfo *si, const char *oid, int type, char *buf, size_t size)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    ASN1_STRING *s = CMS_signed_get0_data_by_OBJ(si, o, -3, type);
    buf[0] = '\0';
    if (s != NULL)
        snprintf(buf, size, "%.*s", ASN1_STRING_length(s), ASN1_STRING_get0_data(s));
    ASN1_OBJECT_free(o);
}

static void test_certrep(void **state)
{
    int n;
    unsigned char *csr = csr_der(&n), *der = NULL, *cert = NULL, *p;
    const unsigned char *cp;
    req_shape s = {"19", "TX-9", 16, NULL, NULL, csr, (size_t)n, false};
    size_t len = 0;
    scep_msg m;
    scep_rep fail_rep = {.status = SCEP_FAILURE, .fail_info = SCEP_BAD_TIME, .text = "why"};
    CMS_ContentInfo *cms;
    CMS_SignerInfo *si;
    STACK_OF(X509) *certs = sk_X509_new_null();
    char buf[64];
    BIO *out = BIO_new(BIO_s_mem()), *plain = BIO_new(BIO_s_mem());
    int cl;
    (void)state;

    expect(&s, FP_ERR_OK, 0, &m);
    /* FAILURE: attributes, no envelope, signature verifies */
    assert_int_equal(scep_certrep(&m, &fail_rep, ra_cert, ra_key, &der, &len, NULL), FP_ERR_OK);
    cp = der;
    cms = d2i_CMS_ContentInfo(NULL, &cp, (long)len);
    assert_non_null(cms);
    sk_X509_push(certs, ra_cert);
    assert_int_equal(CMS_verify(cms, certs, NULL, NULL, NULL, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY), 1);
    si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    attr_text(si, "2.16.840.1.113733.1.9.2", V_ASN1_PRINTABLESTRING, buf, sizeof(buf));
    assert_string_equal(buf, "3");
    attr_text(si, "2.16.840.1.113733.1.9.3", V_ASN1_PRINTABLESTRING, buf, sizeof(buf));
    assert_string_equal(buf, "2");
    attr_text(si, "2.16.840.1.113733.1.9.4", V_ASN1_PRINTABLESTRING, buf, sizeof(buf));
    assert_string_equal(buf, "3");
    attr_text(si, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING, buf, sizeof(buf));
    assert_string_equal(buf, "TX-9");
    attr_text(si, "1.3.6.1.5.5.7.24.1", V_ASN1_UTF8STRING, buf, sizeof(buf));
    assert_string_equal(buf, "why");
    {
        ASN1_OBJECT *o = OBJ_txt2obj("2.16.840.1.113733.1.9.6", 1);
        ASN1_STRING *rn = CMS_signed_get0_data_by_OBJ(si, o, -3, V_ASN1_OCTET_STRING);
        assert_non_null(rn);
        assert_int_equal(ASN1_STRING_length(rn), 16);
        assert_memory_equal(ASN1_STRING_get0_data(rn), m.nonce, 16);
        ASN1_OBJECT_free(o);
    }
    CMS_ContentInfo_free(cms);
    OPENSSL_free(der);
    der = NULL;

    /* SUCCESS: the certificate enveloped to the signer */
    {
        int cn = i2d_X509(cl_cert, &cert);
        scep_rep ok = {.status = SCEP_SUCCESS, .cert_der = cert, .cert_der_len = (size_t)cn};
        PKCS7 *p7;
        assert_int_equal(scep_certrep(&m, &ok, ra_cert, ra_key, &der, &len, NULL), FP_ERR_OK);
        cp = der;
        cms = d2i_CMS_ContentInfo(NULL, &cp, (long)len);
        assert_int_equal(CMS_verify(cms, certs, NULL, NULL, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY), 1);
        cl = BIO_get_mem_data(out, (char **)&p);
        cp = p;
        CMS_ContentInfo *env = d2i_CMS_ContentInfo(NULL, &cp, cl);
        assert_non_null(env);
        assert_int_equal(CMS_decrypt(env, cl_key, cl_cert, NULL, plain, CMS_BINARY), 1);
        cl = BIO_get_mem_data(plain, (char **)&p);
        cp = p;
        p7 = d2i_PKCS7(NULL, &cp, cl);
        assert_non_null(p7);
        assert_int_equal(sk_X509_num(p7->d.sign->cert), 1);
        assert_int_equal(X509_cmp(sk_X509_value(p7->d.sign->cert, 0), cl_cert), 0);
        PKCS7_free(p7);
        CMS_ContentInfo_free(env);
        CMS_ContentInfo_free(cms);
    }
    BIO_free(out);
    BIO_free(plain);
    sk_X509_free(certs);
    OPENSSL_free(der);
    OPENSSL_free(cert);
    OPENSSL_free(csr);
    scep_msg_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pkcsreq_roundtrip),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_legacy_sha1),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_certrep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
