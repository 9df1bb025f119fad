/*
 * fleetpki/firmware.h - signed firmware verification on the device
 * (libfleetpki-device; docs/firmware.md).
 *
 * A firmware update arrives as a SUIT envelope (draft-ietf-suit-manifest:
 * a CBOR manifest naming the image's SHA-256 digest, size, sequence number,
 * vendor and class identifiers, authenticated by a COSE_Sign1 ES256
 * signature, RFC 9052 / draft-ietf-suit-mti, whose signer certificate chain
 * rides in x5chain, RFC 9360) plus the image itself, which may be larger
 * than the device's RAM: it is read through a callback and hashed chunk by
 * chunk.
 *
 * The envelope is parsed in place with a bounded CBOR reader: no
 * allocation, no recursion, every length checked against what is left.
 * The certificate chain is checked with the backend's X.509 code (OpenSSL
 * or mbedTLS), which does allocate.
 *
 * Anti-rollback: the sequence number of the last ACCEPTED image of a class
 * is kept in the credential store's storage (fp_storage, file
 * "fwseq-<class-id hex>").  fp_dev_firmware_verify refuses a sequence that
 * is not greater than the stored one but never writes it; the device calls
 * fp_dev_firmware_accept once it has installed (or booted) the image.
 */
#ifndef FLEETPKI_FIRMWARE_H
#define FLEETPKI_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include "fleetpki/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Refusal codes, one per reason (names stable, numbers never reordered). */
#define FP_FW_ERR_LIST(X)                                                                 \
    X(OK, "ok", "firmware accepted")                                                      \
    X(ARG, "fw-bad-argument", "invalid argument or missing policy")                        \
    X(MALFORMED, "fw-malformed", "envelope is not well-formed CBOR / SUIT / COSE")         \
    X(TRUNCATED, "fw-truncated", "envelope ends before its last item")                    \
    X(TOO_BIG, "fw-too-big", "envelope or one of its items exceeds a limit")               \
    X(UNSUPPORTED, "fw-unsupported", "algorithm or manifest feature not supported")        \
    X(UNTRUSTED, "fw-untrusted", "signer chain does not reach the firmware anchor")        \
    X(NOT_CODE_SIGNING, "fw-not-code-signing", "signer certificate lacks codeSigning")     \
    X(EXPIRED, "fw-expired", "a certificate of the signer chain is outside its validity")  \
    X(REVOKED, "fw-revoked", "signer certificate is revoked by the supplied CRL")          \
    X(SIGNATURE, "fw-bad-signature", "COSE signature does not verify")                     \
    X(MANIFEST_DIGEST, "fw-manifest-digest", "manifest does not match its signed digest")  \
    X(VENDOR, "fw-wrong-vendor", "vendor identifier is not this device's")                 \
    X(CLASS, "fw-wrong-class", "class identifier is not this device's")                    \
    X(ROLLBACK, "fw-rollback", "sequence number not above the accepted one")               \
    X(IMAGE_SIZE, "fw-image-size", "image size differs from the manifest's")               \
    X(IMAGE_DIGEST, "fw-image-digest", "image digest differs from the manifest's")         \
    X(IO, "fw-io", "reading the image failed")                                             \
    X(STORE, "fw-store", "reading or writing the stored sequence failed")                  \
    X(CRYPTO, "fw-crypto", "cryptographic library failure")

typedef enum {
#define FP_FW_X_ENUM(sym, name, msg) FP_FW_ERR_##sym,
    FP_FW_ERR_LIST(FP_FW_X_ENUM)
#undef FP_FW_X_ENUM
    FP_FW_ERR__COUNT
} fp_fw_err;

FP_DEVICE_API const char *fp_fw_err_name(int code);
FP_DEVICE_API const char *fp_fw_err_message(int code);

/* What the device accepts.  All pointers borrowed for the call. */
typedef struct {
    const char *anchors_pem; /* the FIRMWARE trust anchor(s), PEM: never the TLS anchor */
    size_t anchors_len;
    const char *crl_pem;     /* optional CRL(s) of the firmware CA, PEM (NULL: none);
                                when given, the signer's CA must have one among them */
    size_t crl_len;
    unsigned char vendor_id[16]; /* RFC 4122 UUIDs, binary */
    unsigned char class_id[16];
    int64_t now;  /* the device's time, seconds since the epoch ... */
    int no_clock; /* ... or 1: a clockless device, validity dates not checked */
    const fp_storage *store; /* where the accepted sequence lives; NULL: min_sequence */
    uint64_t min_sequence;   /* with store NULL: accept only sequence > this */
    uint64_t max_image;      /* largest image accepted (0: no limit) */
} fp_fw_policy;

/* Reads up to len bytes of the image into buf; *got = 0 at its end.
 * Returns 0, or -1 on failure (FP_FW_ERR_IO). */
typedef int (*fp_fw_read_fn)(void *arg, void *buf, size_t len, size_t *got);

/* What an accepted envelope said. */
typedef struct {
    uint64_t sequence;
    uint64_t image_size;
    unsigned char image_sha256[32];
    unsigned char vendor_id[16];
    unsigned char class_id[16];
    char version[32]; /* suit-text component version, "" when absent */
} fp_fw_info;

/*
 * Verifies envelope (SUIT, env_len bytes) and the image read through
 * read/arg against p, in this order: parse the envelope and its COSE_Sign1;
 * chain the x5chain leaf to p->anchors (codeSigning EKU, digitalSignature,
 * validity at p->now unless p->no_clock, revocation when p->crl_pem); the
 * ES256 signature; the manifest against its signed digest; only then the
 * manifest itself: vendor, class, sequence above the stored one; last the
 * image, streamed: its size and SHA-256.  FP_FW_ERR_OK and *out filled only
 * when everything holds; errmsg (may be NULL) receives details.  Nothing
 * is written to p->store.
 */
FP_DEVICE_API int fp_dev_firmware_verify(const fp_fw_policy *p, const unsigned char *envelope,
                                         size_t env_len, fp_fw_read_fn read, void *arg,
                                         fp_fw_info *out, char *errmsg, size_t errsize);

/* The image described by info (from fp_dev_firmware_verify) was accepted:
 * store its sequence as the class's floor (written as a .new file, synced,
 * renamed, directory synced).  ROLLBACK if it is not above the stored one. */
FP_DEVICE_API int fp_dev_firmware_accept(const fp_storage *st, const fp_fw_info *info);

/* The stored floor of class_id (0 when none was stored yet). */
FP_DEVICE_API int fp_dev_firmware_stored_sequence(const fp_storage *st,
                                                  const unsigned char class_id[16],
                                                  uint64_t *seq);

#ifdef __cplusplus
}
#endif
#endif
