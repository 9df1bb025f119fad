/*
 * fw_suit.h - SUIT envelopes (draft-ietf-suit-manifest) signed with
 * COSE_Sign1 ES256 (RFC 9052, draft-ietf-suit-mti) and the signer's chain
 * in x5chain (RFC 9360), encoded with libcbor.  The layout is the one the
 * device parses (src/device/suit.c) and docs/firmware.md shows.
 */
#ifndef FP_FW_SUIT_H
#define FP_FW_SUIT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "../ca/signer.h"

typedef struct fp_fw_manifest {
    uint64_t sequence;
    unsigned char vendor_id[16], class_id[16];
    unsigned char image_sha256[32];
    uint64_t image_size;
    const char *version; /* suit-text component version */
} fp_fw_manifest;

/* The envelope for m, signed by s (a P-256 key: FP_ERR_ARG otherwise)
 * whose certificate is cert, with chain (may be NULL) after it in
 * x5chain.  *out malloc'd (free()). */
int fp_fw_suit_sign(const fp_fw_manifest *m, fp_signer *s, X509 *cert, STACK_OF(X509) *chain,
                    unsigned char **out, size_t *len, fp_error *err);

#endif
