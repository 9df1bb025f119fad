/* signer.c - key-file signer; see signer.h. */
#include "signer.h"

#include <stdlib.h>

#include "../x509/x509util.h"

struct fp_signer {
    EVP_PKEY *key;
};

int fp_signer_open_file(const char *path, const char *pass, size_t passlen,
                        fp_signer **out, fp_error *err)
{
    EVP_PKEY *key = NULL;
    int rc;

    *out = NULL;
    rc = fp_key_read(path, pass, passlen, &key, err);
    if (rc != FP_ERR_OK)
        return rc;
    rc = fp_signer_from_key(key, out, err);
    EVP_PKEY_free(key);
    return rc;
}

int fp_signer_from_key(EVP_PKEY *key, fp_signer **out, fp_error *err)
{
    fp_signer *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (!EVP_PKEY_up_ref(key)) {
        free(s);
        return fp_err_set(err, FP_ERR_CRYPTO, "key reference");
    }
    s->key = key;
    *out = s;
    return FP_ERR_OK;
}

void fp_signer_free(fp_signer *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key); /* OpenSSL wipes private key material on free */
    free(s);
}

int fp_signer_check_cert(fp_signer *s, X509 *cert, fp_error *err)
{
    if (X509_check_private_key(cert, s->key) != 1)
        return fp_err_set(err, FP_ERR_CRYPTO, "certificate does not match the signing key");
    return FP_ERR_OK;
}

int fp_signer_sign_cert(fp_signer *s, X509 *cert, fp_error *err)
{
    if (X509_sign(cert, s->key, fp_key_sig_md(s->key)) <= 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "certificate signing failed");
    return FP_ERR_OK;
}

int fp_signer_sign_crl(fp_signer *s, X509_CRL *crl, fp_error *err)
{
    if (X509_CRL_sign(crl, s->key, fp_key_sig_md(s->key)) <= 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "CRL signing failed");
    return FP_ERR_OK;
}

int fp_signer_sign_req(fp_signer *s, X509_REQ *req, fp_error *err)
{
    if (X509_REQ_sign(req, s->key, fp_key_sig_md(s->key)) <= 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "request signing failed");
    return FP_ERR_OK;
}

int fp_signer_sign_ocsp(fp_signer *s, OCSP_BASICRESP *resp, X509 *signer_cert,
                        STACK_OF(X509) *certs, unsigned long flags, fp_error *err)
{
    if (!OCSP_basic_sign(resp, signer_cert, s->key, fp_key_sig_md(s->key), certs, flags))
        return fp_err_set(err, FP_ERR_CRYPTO, "OCSP response signing failed");
    return FP_ERR_OK;
}
