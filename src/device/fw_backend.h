/*
 * fw_backend.h - what firmware verification (firmware.c) needs from the
 * crypto backend: streamed SHA-256 without allocation on the device's
 * side of the call, the firmware chain check, and ES256.  Implemented by
 * fw_openssl.c and fw_mbedtls.c beside the TLS backend of the same stack.
 * Return values are fp_fw_err codes; e->msg says why.
 */
#ifndef FPD_FW_BACKEND_H
#define FPD_FW_BACKEND_H

#include "dev_int.h"
#include "fleetpki/firmware.h"

/* Storage for the backend's hash state, on the caller's stack. */
typedef struct {
    _Alignas(16) unsigned char opaque[256];
} fpd_sha256_ctx;

int fpd_sha256_begin(fpd_sha256_ctx *h);
int fpd_sha256_add(fpd_sha256_ctx *h, const void *p, size_t n);
/* Writes the digest and releases h; after a failed begin, do not call. */
int fpd_sha256_end(fpd_sha256_ctx *h, unsigned char out[32]);

typedef struct {
    const unsigned char *p;
    size_t len;
} fpd_fw_cert;

/*
 * chain[0] (the signer) must chain to one of the PEM anchors through
 * chain[1..n-1], not be revoked by the PEM CRL(s) when crl_pem is given
 * (RFC 5280 6.3; CRLs given but none from the signer's CA: UNTRUSTED,
 * fail closed), and carry extendedKeyUsage codeSigning (RFC 5280
 * 4.2.1.12; the extension must be there) and, when it has keyUsage,
 * digitalSignature.  Validity dates are NOT checked here: firmware.c
 * checks them against the device's own clock.
 * UNTRUSTED, REVOKED, NOT_CODE_SIGNING, MALFORMED (a certificate or the
 * anchors do not parse), CRYPTO.
 */
int fpd_fw_chain_check(const fpd_fw_cert *chain, size_t n, const char *anchors_pem,
                       size_t anchors_len, const char *crl_pem, size_t crl_len, fpd_errbuf *e);

/* ES256 (RFC 9053 2.1): sig = r || s over hash, by signer's P-256 key.
 * SIGNATURE when it does not verify, UNSUPPORTED for another key type. */
int fpd_fw_es256_verify(const fpd_fw_cert *signer, const unsigned char hash[32],
                        const unsigned char sig[64], fpd_errbuf *e);

#endif
