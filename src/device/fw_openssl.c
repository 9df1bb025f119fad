/*
 * fw_openssl.c - fw_backend.h on OpenSSL 3 (the Linux-gateway build).
 * OpenSSL's digest contexts live on its heap: only a pointer is kept in
 * the caller's fpd_sha256_ctx.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fw_backend.h"

_Static_assert(sizeof(EVP_MD_CTX *) <= sizeof(((fpd_sha256_ctx *)0)->opaque), "hash state");

static EVP_MD_CTX **md_of(fpd_sha256_ctx *h)
{
    return (EVP_MD_CTX **)(void *)h->opaque;
}

int fpd_sha256_begin(fpd_sha256_ctx *h)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return FP_FW_ERR_CRYPTO;
    }
    *md_of(h) = c;
    return FP_FW_ERR_OK;
}

int fpd_sha256_add(fpd_sha256_ctx *h, const void *p, size_t n)
{
    return EVP_DigestUpdate(*md_of(h), p, n) == 1 ? FP_FW_ERR_OK : FP_FW_ERR_CRYPTO;
}

int fpd_sha256_end(fpd_sha256_ctx *h, unsigned char out[32])
{
    unsigned int n = 0;
    int ok = out != NULL && EVP_DigestFinal_ex(*md_of(h), out, &n) == 1 && n == 32;

    EVP_MD_CTX_free(*md_of(h));
    *md_of(h) = NULL;
    return ok ? FP_FW_ERR_OK : FP_FW_ERR_CRYPTO;
}

static X509 *cert_of(const fpd_fw_cert *c)
{
    const unsigned char *q = c->p;
    X509 *x = c->len <= LONG_MAX ? d2i_X509(NULL, &q, (long)c->len) : NULL;

    if (x != NULL && q != c->p + c->len) { /* trailing bytes */
        X509_free(x);
        x = NULL;
    }
    return x;
}

static void drain(fpd_errbuf *e, const char *what)
{
    unsigned long l = ERR_peek_last_error();
    char buf[160] = "";

    if (l != 0)
        ERR_error_string_n(l, buf, sizeof(buf));
    ERR_clear_error();
    snprintf(e->msg, sizeof(e->msg), "%s%s%s", what, buf[0] ? ": " : "", buf);
}

int fpd_fw_chain_check(const fpd_fw_cert *chain, size_t n, const char *anchors_pem,
                       size_t anchors_len, const char *crl_pem, size_t crl_len, fpd_errbuf *e)
{
    X509_STORE *st = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *untrusted = NULL;
    X509 *leaf = NULL, *x = NULL;
    X509_CRL *crl = NULL;
    BIO *bio = NULL;
    unsigned long flags = X509_V_FLAG_NO_CHECK_TIME; /* firmware.c checks dates */
    int rc = FP_FW_ERR_CRYPTO, anchors = 0, v;

    if ((st = X509_STORE_new()) == NULL || (untrusted = sk_X509_new_null()) == NULL ||
        (ctx = X509_STORE_CTX_new()) == NULL)
        goto out;
    if ((bio = BIO_new_mem_buf(anchors_pem, (int)anchors_len)) == NULL)
        goto out;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(st, x) != 1)
            goto out;
        X509_free(x);
        x = NULL;
        anchors++;
    }
    ERR_clear_error();
    BIO_free(bio);
    bio = NULL;
    if (anchors == 0) {
        rc = fpd_err(e, FP_FW_ERR_ARG, "no firmware trust anchor in the policy");
        goto out;
    }
    if (crl_pem != NULL && crl_len > 0) {
        int ncrl = 0;
        if ((bio = BIO_new_mem_buf(crl_pem, (int)crl_len)) == NULL)
            goto out;
        while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
            if (X509_STORE_add_crl(st, crl) != 1)
                goto out;
            X509_CRL_free(crl);
            crl = NULL;
            ncrl++;
        }
        ERR_clear_error();
        if (ncrl == 0) {
            rc = fpd_err(e, FP_FW_ERR_ARG, "CRL given but none parses");
            goto out;
        }
        flags |= X509_V_FLAG_CRL_CHECK; /* the signer's status (RFC 5280 6.3) */
    }
    if ((leaf = cert_of(&chain[0])) == NULL) {
        rc = fpd_err(e, FP_FW_ERR_MALFORMED, "x5chain: signer certificate does not parse");
        goto out;
    }
    for (size_t i = 1; i < n; i++) {
        if ((x = cert_of(&chain[i])) == NULL) {
            rc = fpd_err(e, FP_FW_ERR_MALFORMED, "x5chain: certificate %zu does not parse", i);
            goto out;
        }
        if (!sk_X509_push(untrusted, x))
            goto out;
        x = NULL;
    }
    if (X509_STORE_CTX_init(ctx, st, leaf, untrusted) != 1)
        goto out;
    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), flags);
    if (X509_verify_cert(ctx) != 1) {
        v = X509_STORE_CTX_get_error(ctx);
        rc = fpd_err(e, v == X509_V_ERR_CERT_REVOKED ? FP_FW_ERR_REVOKED : FP_FW_ERR_UNTRUSTED,
                     "signer chain: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        goto out;
    }
    /* RFC 5280 4.2.1.12: codeSigning must be asserted, not merely allowed
     * by an absent extension; anyExtendedKeyUsage is not enough either */
    if (!(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) ||
        !(X509_get_extended_key_usage(leaf) & XKU_CODE_SIGN)) {
        rc = fpd_err(e, FP_FW_ERR_NOT_CODE_SIGNING, "signer certificate lacks EKU codeSigning");
        goto out;
    }
    if ((X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) &&
        !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)) {
        rc = fpd_err(e, FP_FW_ERR_NOT_CODE_SIGNING, "signer keyUsage lacks digitalSignature");
        goto out;
    }
    rc = FP_FW_ERR_OK;
out:
    if (rc == FP_FW_ERR_CRYPTO)
        drain(e, "chain check");
    BIO_free(bio);
    X509_free(x);
    X509_CRL_free(crl);
    X509_free(leaf);
    sk_X509_pop_free(untrusted, X509_free);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return rc;
}

int fpd_fw_es256_verify(const fpd_fw_cert *signer, const unsigned char hash[32],
                        const unsigned char sig[64], fpd_errbuf *e)
{
    X509 *x = cert_of(signer);
    EVP_PKEY *pk = x != NULL ? X509_get0_pubkey(x) : NULL;
    EVP_PKEY_CTX *pc = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    char group[64] = "";
    int rc = FP_FW_ERR_CRYPTO, dlen;

    if (pk == NULL) {
        rc = fpd_err(e, FP_FW_ERR_MALFORMED, "signer certificate has no usable key");
        goto out;
    }
    if (!EVP_PKEY_is_a(pk, "EC") ||
        EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group), NULL) != 1 ||
        strcmp(group, SN_X9_62_prime256v1) != 0) {
        rc = fpd_err(e, FP_FW_ERR_UNSUPPORTED, "ES256 needs a P-256 signer key");
        goto out;
    }
    /* COSE carries r || s (RFC 9053 2.1); OpenSSL verifies the DER
     * ECDSA-Sig-Value, built here by OpenSSL's own encoder */
    if ((es = ECDSA_SIG_new()) == NULL || (r = BN_bin2bn(sig, 32, NULL)) == NULL ||
        (s = BN_bin2bn(sig + 32, 32, NULL)) == NULL || ECDSA_SIG_set0(es, r, s) != 1)
        goto out;
    r = s = NULL;
    if ((dlen = i2d_ECDSA_SIG(es, &der)) <= 0)
        goto out;
    if ((pc = EVP_PKEY_CTX_new(pk, NULL)) == NULL || EVP_PKEY_verify_init(pc) != 1 ||
        EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) != 1)
        goto out;
    rc = EVP_PKEY_verify(pc, der, (size_t)dlen, hash, 32) == 1
             ? FP_FW_ERR_OK
             : fpd_err(e, FP_FW_ERR_SIGNATURE, "COSE_Sign1 signature does not verify");
    ERR_clear_error();
out:
    if (rc == FP_FW_ERR_CRYPTO)
        drain(e, "ES256");
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX_free(pc);
    X509_free(x);
    return rc;
}
