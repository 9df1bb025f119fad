/* fw_cms.c - detached CMS firmware signatures (fw_cms.h). */
#include "fw_cms.h"

#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

int fp_fw_cms_sign(fp_signer *s, X509 *cert, STACK_OF(X509) *chain, const char *image_path,
                   unsigned char **out, size_t *len, unsigned char sha256[32], fp_error *err)
{
    BIO *data = BIO_new_file(image_path, "rb");
    CMS_ContentInfo *cms = NULL;
    STACK_OF(CMS_SignerInfo) *sis;
    ASN1_OCTET_STRING *md;
    unsigned char *der = NULL;
    int rc, n;

    *out = NULL;
    *len = 0;
    if (data == NULL)
        return fp_err_set(err, FP_ERR_IO, "cannot read %s", image_path);
    /* binary: the image is bytes, never canonicalised as MIME text;
     * SHA-256 whatever the key's default (RFC 5754) */
    if ((rc = fp_signer_sign_cms(s, cert, chain, data,
                                 CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP, &cms, err)) != FP_ERR_OK)
        goto out;
    /* the digest the signature covers, for the record: the image as read */
    sis = CMS_get0_SignerInfos(cms);
    if (sk_CMS_SignerInfo_num(sis) != 1 ||
        (md = CMS_signed_get0_data_by_OBJ(sk_CMS_SignerInfo_value(sis, 0),
                                          OBJ_nid2obj(NID_pkcs9_messageDigest), -3,
                                          V_ASN1_OCTET_STRING)) == NULL ||
        ASN1_STRING_length(md) != 32) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CMS signature without a SHA-256 messageDigest");
        goto out;
    }
    memcpy(sha256, ASN1_STRING_get0_data(md), 32);
    if ((n = i2d_CMS_ContentInfo(cms, &der)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "encoding CMS");
        goto out;
    }
    *out = der;
    *len = (size_t)n;
out:
    CMS_ContentInfo_free(cms);
    BIO_free(data);
    return rc;
}

int fp_fw_cms_verify(const unsigned char *der, size_t len, const char *image_path, X509 *anchor,
                     STACK_OF(X509_CRL) *crls, fp_error *err)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    X509_STORE *st = X509_STORE_new();
    BIO *data = BIO_new_file(image_path, "rb");
    STACK_OF(X509) *signers = NULL;
    X509 *leaf;
    int rc = FP_ERR_OK;

    if (cms == NULL || p != der + len) {
        rc = fp_err_set(err, FP_ERR_ARG, "not a DER CMS ContentInfo");
        goto out;
    }
    if (st == NULL || data == NULL || X509_STORE_add_cert(st, anchor) != 1 ||
        X509_STORE_set_purpose(st, X509_PURPOSE_ANY) != 1) {
        rc = fp_err_set(err, FP_ERR_IO, "cannot read %s", image_path);
        goto out;
    }
    for (int i = 0; crls != NULL && i < sk_X509_CRL_num(crls); i++)
        X509_STORE_add_crl(st, sk_X509_CRL_value(crls, i));
    if (crls != NULL && sk_X509_CRL_num(crls) > 0)
        X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    if (CMS_verify(cms, NULL, st, data, NULL, CMS_BINARY) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CMS signature does not verify");
        goto out;
    }
    /* -purpose any leaves the EKU to us: codeSigning (RFC 5280 4.2.1.12) */
    signers = CMS_get0_signers(cms);
    if (sk_X509_num(signers) != 1 || (leaf = sk_X509_value(signers, 0)) == NULL ||
        !(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) ||
        !(X509_get_extended_key_usage(leaf) & XKU_CODE_SIGN))
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CMS signer is not a code-signing certificate");
out:
    sk_X509_free(signers);
    BIO_free(data);
    X509_STORE_free(st);
    CMS_ContentInfo_free(cms);
    return rc;
}
