/*
 * suit.h - allocation-free parsing of a SUIT envelope
 * (draft-ietf-suit-manifest) and its COSE_Sign1 (RFC 9052 section 4.2).
 *
 * Two steps, so that nothing of the manifest is interpreted before it is
 * authenticated: fpd_suit_parse_envelope finds the authentication wrapper
 * (the manifest's SUIT_Digest and the COSE_Sign1 over it) and the manifest
 * bytes; fpd_suit_parse_manifest reads the manifest once its digest has
 * been checked.  Every result is a slice into the caller's buffer.
 */
#ifndef FPD_SUIT_H
#define FPD_SUIT_H

#include "cbor_rd.h"

#define FPD_SUIT_MAX_ENVELOPE (64 * 1024) /* larger envelopes: TOO_BIG */
#define FPD_SUIT_MAX_CHAIN 4              /* certificates in x5chain */
#define FPD_SUIT_MAX_ITEMS 2048           /* items skipped in one unknown member */

/* COSE and SUIT numbers used here */
#define FPD_COSE_TAG_SIGN1 18      /* RFC 9052 section 4.2 */
#define FPD_COSE_HDR_ALG 1         /* RFC 9052 section 3.1 */
#define FPD_COSE_HDR_CRIT 2
#define FPD_COSE_HDR_X5CHAIN 33    /* RFC 9360 section 2 */
#define FPD_COSE_ALG_ES256 (-7)    /* RFC 9053 section 2.1 */
#define FPD_COSE_ALG_SHA256 (-16)  /* RFC 9054 section 2.1 */
#define FPD_SUIT_TAG_ENVELOPE 107

typedef struct {
    cbr_slice manifest_item; /* the bstr-wrapped manifest, head included:
                                what the authentication digest covers */
    cbr_slice manifest;      /* its content (SUIT_Manifest) */
    cbr_slice digest_item;   /* encoded SUIT_Digest: the COSE payload */
    cbr_slice manifest_sha256; /* the 32 digest bytes in it */
    cbr_slice protected_hdr; /* COSE body_protected (serialized map) */
    cbr_slice signature;     /* r || s, 64 bytes */
    cbr_slice x5chain[FPD_SUIT_MAX_CHAIN]; /* DER, signer first */
    size_t n_x5chain;
} fpd_suit_env;

typedef struct {
    uint64_t sequence;
    cbr_slice vendor_id;    /* 16 bytes */
    cbr_slice class_id;     /* 16 bytes */
    cbr_slice image_sha256; /* 32 bytes */
    uint64_t image_size;
    int has_size;
    cbr_slice version;      /* suit-text component version (may be empty) */
} fpd_suit_manifest;

/* fp_fw_err codes. */
int fpd_suit_parse_envelope(const uint8_t *p, size_t len, fpd_suit_env *out);
int fpd_suit_parse_manifest(const cbr_slice *manifest, fpd_suit_manifest *out);

#endif
