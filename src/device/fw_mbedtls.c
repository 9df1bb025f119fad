/*
 * fw_mbedtls.c - fw_backend.h on mbedTLS 2.28 (the MCU build).  The hash
 * state lives entirely in the caller's fpd_sha256_ctx: streaming an image
 * allocates nothing.  Certificate parsing (mbedtls_x509_crt) does use
 * mbedTLS's heap, as everywhere in that library.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "fw_backend.h"

_Static_assert(sizeof(mbedtls_sha256_context) <= sizeof(((fpd_sha256_ctx *)0)->opaque),
               "hash state");

static mbedtls_sha256_context *sha_of(fpd_sha256_ctx *h)
{
    return (mbedtls_sha256_context *)(void *)h->opaque;
}

int fpd_sha256_begin(fpd_sha256_ctx *h)
{
    mbedtls_sha256_init(sha_of(h));
    if (mbedtls_sha256_starts_ret(sha_of(h), 0) != 0) {
        mbedtls_sha256_free(sha_of(h));
        return FP_FW_ERR_CRYPTO;
    }
    return FP_FW_ERR_OK;
}

int fpd_sha256_add(fpd_sha256_ctx *h, const void *p, size_t n)
{
    return mbedtls_sha256_update_ret(sha_of(h), p, n) == 0 ? FP_FW_ERR_OK : FP_FW_ERR_CRYPTO;
}

int fpd_sha256_end(fpd_sha256_ctx *h, unsigned char out[32])
{
    int ok = out != NULL && mbedtls_sha256_finish_ret(sha_of(h), out) == 0;
    mbedtls_sha256_free(sha_of(h));
    return ok ? FP_FW_ERR_OK : FP_FW_ERR_CRYPTO;
}

/* mbedTLS parses PEM only from a NUL-terminated buffer whose length
 * counts the NUL. */
static unsigned char *nul_copy(const char *p, size_t len)
{
    unsigned char *z = malloc(len + 1);
    if (z != NULL) {
        memcpy(z, p, len);
        z[len] = '\0';
    }
    return z;
}

static int has_code_signing(const mbedtls_x509_crt *c)
{
    if (!(c->ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE))
        return 0;
    /* walked by hand: mbedtls_x509_crt_check_extended_key_usage also
     * accepts anyExtendedKeyUsage, which is not codeSigning */
    for (const mbedtls_x509_sequence *s = &c->ext_key_usage; s != NULL; s = s->next)
        if (s->buf.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_CODE_SIGNING, &s->buf) == 0)
            return 1;
    return 0;
}

int fpd_fw_chain_check(const fpd_fw_cert *chain, size_t n, const char *anchors_pem,
                       size_t anchors_len, const char *crl_pem, size_t crl_len, fpd_errbuf *e)
{
    mbedtls_x509_crt ca, crt;
    mbedtls_x509_crl crl;
    unsigned char *z = NULL;
    uint32_t flags = 0;
    int rc = FP_FW_ERR_CRYPTO, have_crl = 0, ret;
    char info[200];

    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&crt);
    mbedtls_x509_crl_init(&crl);
    if ((z = nul_copy(anchors_pem, anchors_len)) == NULL)
        goto out;
    if (mbedtls_x509_crt_parse(&ca, z, anchors_len + 1) != 0 || ca.raw.p == NULL) {
        rc = fpd_err(e, FP_FW_ERR_ARG, "no usable firmware trust anchor in the policy");
        goto out;
    }
    free(z);
    z = NULL;
    if (crl_pem != NULL && crl_len > 0) {
        if ((z = nul_copy(crl_pem, crl_len)) == NULL)
            goto out;
        if (mbedtls_x509_crl_parse(&crl, z, crl_len + 1) != 0) {
            rc = fpd_err(e, FP_FW_ERR_ARG, "CRL given but it does not parse");
            goto out;
        }
        have_crl = 1;
    }
    for (size_t i = 0; i < n; i++)
        if (mbedtls_x509_crt_parse_der(&crt, chain[i].p, chain[i].len) != 0) {
            rc = fpd_err(e, FP_FW_ERR_MALFORMED, "x5chain: certificate %zu does not parse", i);
            goto out;
        }
    /* fail closed, as OpenSSL's CRL_CHECK does: CRLs were supplied, so the
     * signer's own CA must be among their issuers (RFC 5280 6.3.3) */
    if (have_crl) {
        const mbedtls_x509_crl *c = &crl;
        while (c != NULL && (c->issuer_raw.len != crt.issuer_raw.len ||
                             memcmp(c->issuer_raw.p, crt.issuer_raw.p, crt.issuer_raw.len) != 0))
            c = c->next;
        if (c == NULL) {
            rc = fpd_err(e, FP_FW_ERR_UNTRUSTED, "signer chain: no CRL of the signer's CA supplied");
            goto out;
        }
    }
    ret = mbedtls_x509_crt_verify_with_profile(&crt, &ca, have_crl ? &crl : NULL,
                                               &mbedtls_x509_crt_profile_default, NULL,
                                               &flags, NULL, NULL);
    /* mbedTLS judges dates by the system clock; the device's own notion
     * of time is applied by firmware.c instead */
    flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE |
                         MBEDTLS_X509_BADCRL_EXPIRED | MBEDTLS_X509_BADCRL_FUTURE);
    if (ret != 0 && ret != MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        rc = fpd_err(e, FP_FW_ERR_CRYPTO, "chain check: mbedTLS error -0x%04x", (unsigned)-ret);
        goto out;
    }
    if (flags != 0) {
        mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
        info[strcspn(info, "\n")] = '\0';
        rc = fpd_err(e, flags == MBEDTLS_X509_BADCERT_REVOKED ? FP_FW_ERR_REVOKED : FP_FW_ERR_UNTRUSTED,
                     "signer chain: %s", info);
        goto out;
    }
    if (!has_code_signing(&crt)) {
        rc = fpd_err(e, FP_FW_ERR_NOT_CODE_SIGNING, "signer certificate lacks EKU codeSigning");
        goto out;
    }
    if ((crt.ext_types & MBEDTLS_X509_EXT_KEY_USAGE) &&
        !(crt.key_usage & MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) {
        rc = fpd_err(e, FP_FW_ERR_NOT_CODE_SIGNING, "signer keyUsage lacks digitalSignature");
        goto out;
    }
    rc = FP_FW_ERR_OK;
out:
    if (rc == FP_FW_ERR_CRYPTO && e->msg[0] == '\0')
        fpd_err(e, rc, "chain check: out of memory");
    free(z);
    mbedtls_x509_crl_free(&crl);
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_free(&ca);
    return rc;
}

int fpd_fw_es256_verify(const fpd_fw_cert *signer, const unsigned char hash[32],
                        const unsigned char sig[64], fpd_errbuf *e)
{
    mbedtls_x509_crt crt;
    mbedtls_mpi r, s;
    mbedtls_ecp_keypair *ec;
    int rc;

    mbedtls_x509_crt_init(&crt);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    if (mbedtls_x509_crt_parse_der(&crt, signer->p, signer->len) != 0) {
        rc = fpd_err(e, FP_FW_ERR_MALFORMED, "signer certificate does not parse");
        goto out;
    }
    if (mbedtls_pk_get_type(&crt.pk) != MBEDTLS_PK_ECKEY ||
        (ec = mbedtls_pk_ec(crt.pk))->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
        rc = fpd_err(e, FP_FW_ERR_UNSUPPORTED, "ES256 needs a P-256 signer key");
        goto out;
    }
    /* r || s as COSE carries them (RFC 9053 2.1) */
    if (mbedtls_mpi_read_binary(&r, sig, 32) != 0 || mbedtls_mpi_read_binary(&s, sig + 32, 32) != 0) {
        rc = fpd_err(e, FP_FW_ERR_CRYPTO, "ES256: out of memory");
        goto out;
    }
    rc = mbedtls_ecdsa_verify(&ec->grp, hash, 32, &ec->Q, &r, &s) == 0
             ? FP_FW_ERR_OK
             : fpd_err(e, FP_FW_ERR_SIGNATURE, "COSE_Sign1 signature does not verify");
out:
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_x509_crt_free(&crt);
    return rc;
}
