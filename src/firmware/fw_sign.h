/*
 * fw_sign.h - `fleetpki firmware sign`: one signature, checked, made,
 * recorded (docs/firmware.md).
 *
 * Order: the project's signer is loaded and must be a valid code-signing
 * certificate now; the class's last sequence is read (a refusal is
 * audited as firmware.sign.refuse); the image is hashed in chunks; the
 * signature is made through the signer interface; the signature is
 * recorded with its audit row, the sequence checked again in that same
 * transaction (store_firmware.h); only then is the output file written.
 */
#ifndef FP_FW_SIGN_H
#define FP_FW_SIGN_H

#include <stdbool.h>
#include <stdint.h>

#include "../ca/config.h"
#include "../store/store.h"

typedef struct fp_fw_sign_req {
    const char *project;
    const char *image_path;
    const char *out_path;
    const char *version;
    const char *vendor_id; /* RFC 4122 text */
    const char *class_id;
    const char *format;    /* "suit" (default) or "cms" */
    int64_t sequence;      /* >= 1 */
    bool force;            /* sign a sequence not above the last (audited) */
    const char *actor;
} fp_fw_sign_req;

/* RFC 4122 text (8-4-4-4-12 hex, either case) -> 16 bytes. */
int fp_fw_uuid_parse(const char *text, unsigned char out[16], fp_error *err);

/* FP_ERR_STATE: sequence not above the class's last (and not forced) or
 * the signer is not usable now. *rec (may be NULL) receives the row. */
int fp_fw_sign(const fp_config *cfg, fp_store *store, const char *pass, size_t passlen,
               const fp_fw_sign_req *r, fp_fw_sig_rec *rec, fp_error *err);

#endif
