/*
 * store_firmware.h - firmware signatures (part of the store interface, see
 * store.h; `fleetpki firmware sign`, docs/firmware.md).
 *
 * Every signature the firmware signer makes is a row: who, what image
 * (SHA-256, size), version, sequence, format, signer certificate.  The
 * sequence numbers of a project's device class only go up: recording a
 * sequence not above the class's highest is refused unless forced, and a
 * forced one is marked and audited as such.
 */
#ifndef FP_STORE_FIRMWARE_H
#define FP_STORE_FIRMWARE_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/err.h"
#include "store_audit.h"
#include "store_projects.h"

#define FP_FW_UUID_MAX 37    /* RFC 4122 text form + NUL */
#define FP_FW_VERSION_MAX 64
#define FP_FW_FORMAT_MAX 8   /* "suit" | "cms" */
#define FP_FW_SERIAL_MAX 80

typedef struct fp_fw_sig_rec {
    int64_t id; /* assigned by the store */
    char project[FP_PROJECT_MAX];
    char vendor_id[FP_FW_UUID_MAX];
    char class_id[FP_FW_UUID_MAX];
    char version[FP_FW_VERSION_MAX];
    int64_t sequence; /* >= 1 */
    char format[FP_FW_FORMAT_MAX];
    char image_sha256[65]; /* hex */
    int64_t image_size;
    char signer_serial[FP_FW_SERIAL_MAX]; /* hex serial of the signer certificate */
    char actor[128];
    bool forced;
    int64_t created_at;
} fp_fw_sig_rec;

typedef int (*fp_fw_sig_cb)(void *arg, const fp_fw_sig_rec *r);

/* Record r (r->id ignored) with its audit row ev, in one transaction that
 * first reads the class's highest sequence: FP_ERR_STATE (nothing written)
 * when r->sequence is not above it and !r->forced; FP_ERR_NOT_FOUND if the
 * project does not exist; FP_ERR_ARG for a sequence below 1.  *id (may be
 * NULL) receives the new row's id. */
int fp_store_fw_sig_record(fp_store *s, const fp_fw_sig_rec *r, const fp_audit_event *ev,
                           int64_t *id, fp_error *err);
/* Highest sequence recorded for (project, class_id); 0 when none. */
int fp_store_fw_sig_last(fp_store *s, const char *project, const char *class_id,
                         int64_t *seq, fp_error *err);
/* The project's signatures in id order (class_id NULL: every class). */
int fp_store_fw_sig_list(fp_store *s, const char *project, const char *class_id,
                         fp_fw_sig_cb cb, void *arg, fp_error *err);

#endif
