/* fuzz_scep.c - the SCEP PKIOperation parser (src/scep/scep_msg.c) and the
 * CertRep built from whatever it read.  The first input byte picks how far
 * into the message the rest of the input goes:
 *   0  the whole pkiMessage as sent (outer SignedData, attributes,
 *      signature; seeds are real requests, encrypted to some other RA, so
 *      they stop at decryption)
 *   1  the pkcsPKIEnvelope's plaintext: the harness wraps the input as a
 *      valid request to its own RA (EnvelopedData, SignedData with the SCEP
 *      attributes, the second byte picking the messageType), so the inner
 *      readers (PKCS#10, IssuerAndSubject, IssuerAndSerialNumber) see it
 *   2  the signed content: the input stands for the EnvelopedData DER
 * Whatever the parser read, a FAILURE CertRep is built from it (and a
 * SUCCESS one when it parsed), and the answer must decode as CMS with one
 * signer whose signature verifies: a malformed request must never make us
 * emit a malformed or unsigned answer.  The RA and signer keys are made
 * at start-up (no key is committed). */
#define FP_SCEP_SERVER
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "scep/scep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static X509 *ra_cert, *signer_cert;
static EVP_PKEY *ra_key, *signer_key;

static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    if (x == NULL || n == NULL || !X509_set_version(x, 2) ||
        !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_subject_name(x, n) || !X509_set_issuer_name(x, n) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, key) ||
        !X509_sign(x, key, EVP_sha256()))
        abort();
    X509_NAME_free(n);
    return x;
}

static void init(void)
{
    if (ra_cert != NULL)
        return;
    if (scep_oids_init(NULL) != FP_ERR_OK)
        abort();
    ra_key = EVP_RSA_gen(2048);
    signer_key = EVP_EC_gen("P-256"); /* cheap signatures per input */
    if (ra_key == NULL || signer_key == NULL)
        abort();
    ra_cert = self_signed(ra_key, "fuzz RA");
    signer_cert = self_signed(signer_key, "fuzz client");
}

/* SignedData over content with the SCEP attributes, signed by the
 * harness's client; NULL on failure. */
static unsigned char *sign_content(const unsigned char *content, size_t clen, int type, int *outlen)
{
    CMS_ContentInfo *sd = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    CMS_SignerInfo *si;
    BIO *in = BIO_new_mem_buf(content, (int)clen);
    unsigned char nonce[16] = {1, 2, 3}, *out = NULL;
    char t[8];
    ASN1_OBJECT *o_type = OBJ_txt2obj("2.16.840.1.113733.1.9.2", 1);
    ASN1_OBJECT *o_txid = OBJ_txt2obj("2.16.840.1.113733.1.9.7", 1);
    ASN1_OBJECT *o_nonce = OBJ_txt2obj("2.16.840.1.113733.1.9.5", 1);

    snprintf(t, sizeof(t), "%d", type);
    *outlen = 0;
    if (sd != NULL && in != NULL &&
        (si = CMS_add1_signer(sd, signer_cert, signer_key, EVP_sha256(), CMS_BINARY)) != NULL &&
        CMS_signed_add1_attr_by_OBJ(si, o_type, V_ASN1_PRINTABLESTRING, t, (int)strlen(t)) &&
        CMS_signed_add1_attr_by_OBJ(si, o_txid, V_ASN1_PRINTABLESTRING, "FUZZ", 4) &&
        CMS_signed_add1_attr_by_OBJ(si, o_nonce, V_ASN1_OCTET_STRING, nonce, 16) &&
        CMS_final(sd, in, NULL, CMS_BINARY))
        *outlen = i2d_CMS_ContentInfo(sd, &out);
    ASN1_OBJECT_free(o_type);
    ASN1_OBJECT_free(o_txid);
    ASN1_OBJECT_free(o_nonce);
    BIO_free(in);
    CMS_ContentInfo_free(sd);
    return *outlen > 0 ? out : NULL;
}

static unsigned char *envelope(const unsigned char *inner, size_t len, int *outlen)
{
    STACK_OF(X509) *rcpt = sk_X509_new_null();
    BIO *in = BIO_new_mem_buf(inner, (int)len);
    CMS_ContentInfo *env = NULL;
    unsigned char *out = NULL;

    *outlen = 0;
    if (rcpt != NULL && in != NULL && sk_X509_push(rcpt, ra_cert) &&
        (env = CMS_encrypt(rcpt, in, EVP_aes_128_cbc(), CMS_BINARY)) != NULL)
        *outlen = i2d_CMS_ContentInfo(env, &out);
    CMS_ContentInfo_free(env);
    BIO_free(in);
    sk_X509_free(rcpt);
    return *outlen > 0 ? out : NULL;
}

/* The answer must be one signed CMS message whose signature verifies. */
static void check_answer(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    STACK_OF(X509) *certs = sk_X509_new_null();

    if (cms == NULL || p != der + len || sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1 ||
        certs == NULL || !sk_X509_push(certs, ra_cert) ||
        CMS_verify(cms, certs, NULL, NULL, NULL, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1)
        abort();
    sk_X509_free(certs);
    CMS_ContentInfo_free(cms);
}

static void parse_and_answer(const unsigned char *msg, size_t len)
{
    scep_msg m;
    scep_fail f;
    scep_rep rep = {.status = SCEP_FAILURE, .fail_info = SCEP_BAD_REQUEST, .text = "fuzz"};
    unsigned char *out = NULL, *sc = NULL;
    size_t outlen = 0;
    int rc = scep_msg_parse(msg, len, ra_cert, ra_key, NULL, &m, &f);

    if (rc != FP_ERR_OK && (f.info < SCEP_BAD_ALG || f.info > SCEP_BAD_CERT_ID))
        abort(); /* every failure names a failInfo */
    if (rc == FP_ERR_OK && m.signer == NULL)
        abort();
    if (scep_certrep(&m, &rep, ra_cert, ra_key, &out, &outlen, NULL) != FP_ERR_OK)
        abort(); /* a FAILURE can always be answered */
    check_answer(out, outlen);
    OPENSSL_free(out);
    out = NULL;
    /* a SUCCESS enveloped to the parsed signer, carrying its own cert */
    if (rc == FP_ERR_OK) {
        int n = i2d_X509(m.signer, &sc);
        rep = (scep_rep){.status = SCEP_SUCCESS, .cert_der = sc, .cert_der_len = (size_t)n};
        if (n <= 0 || scep_certrep(&m, &rep, ra_cert, ra_key, &out, &outlen, NULL) != FP_ERR_OK)
            abort();
        check_answer(out, outlen);
        OPENSSL_free(out);
        OPENSSL_free(sc);
    }
    scep_msg_clear(&m);
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int types[] = {19, 17, 20, 21, 22, 3, 0};
    unsigned char *env = NULL, *msg = NULL;
    int elen = 0, mlen = 0;

    init();
    if (size < 2 || size > 64 * 1024)
        return 0;
    switch (data[0] % 3) {
    case 0:
        parse_and_answer(data + 1, size - 1);
        break;
    case 1:
        if ((env = envelope(data + 2, size - 2, &elen)) != NULL &&
            (msg = sign_content(env, (size_t)elen, types[data[1] % 7], &mlen)) != NULL)
            parse_and_answer(msg, (size_t)mlen);
        break;
    default:
        if ((msg = sign_content(data + 2, size - 2, types[data[1] % 7], &mlen)) != NULL)
            parse_and_answer(msg, (size_t)mlen);
        break;
    }
    OPENSSL_free(env);
    OPENSSL_free(msg);
    ERR_clear_error();
    return 0;
}
