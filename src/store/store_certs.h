/*
 * store_certs.h - issued certificates (part of the store interface, see
 * store.h).  A serial is unique across the store; every certificate belongs
 * to one project and is issued by one CA.
 */
#ifndef FP_STORE_CERTS_H
#define FP_STORE_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "store_audit.h"
#include "store_projects.h"

typedef enum {
    FP_CERT_VALID = 0,
    FP_CERT_REVOKED = 1,
} fp_cert_status;

/* RFC 5280 5.3.1 CRLReason values (7 is unused). */
typedef enum {
    FP_REASON_UNSPECIFIED = 0,
    FP_REASON_KEY_COMPROMISE = 1,
    FP_REASON_CA_COMPROMISE = 2,
    FP_REASON_AFFILIATION_CHANGED = 3,
    FP_REASON_SUPERSEDED = 4,
    FP_REASON_CESSATION = 5,
    FP_REASON_HOLD = 6,
    FP_REASON_REMOVE_FROM_CRL = 8,
    FP_REASON_PRIVILEGE_WITHDRAWN = 9,
    FP_REASON_AA_COMPROMISE = 10,
} fp_reason;

/* Name <-> code for CRL reasons ("keyCompromise"); -1 / NULL if unknown. */
int fp_reason_from_name(const char *name);
const char *fp_reason_name(int reason);

typedef struct fp_cert_rec {
    char serial[41]; /* uppercase hex, as fp_serial_hex */
    char ca_id[64];
    char project[FP_PROJECT_MAX]; /* required on insert; must exist */
    char profile[64];
    char *subject; /* RFC 2253 */
    char *sans;    /* "DNS:a, IP:b" */
    int64_t not_before, not_after, issued_at;
    int status;      /* fp_cert_status */
    int64_t revoked_at;
    int reason;      /* fp_reason, meaningful when revoked */
    unsigned char *der;
    size_t der_len;
} fp_cert_rec;

/* Free the heap fields of rec (not rec itself) and zero it. */
void fp_cert_rec_clear(fp_cert_rec *rec);

typedef struct fp_cert_filter {
    int status;              /* -1 any, else fp_cert_status */
    bool expired_only;       /* not_after < now */
    bool unexpired_only;     /* not_after >= now */
    int64_t expiring_before; /* 0: none; else not_after <= this and >= now */
    const char *profile;     /* NULL: any */
    const char *name_contains; /* NULL: any; substring of the RFC 2253 subject
                                  or of the SAN list */
    const char *project;     /* NULL: any */
    const char *ca_id;       /* NULL: any */
    int64_t now;
    int limit;               /* 0: no limit */
} fp_cert_filter;

typedef int (*fp_cert_cb)(void *arg, const fp_cert_rec *rec);

/* Insert certificates and their audit rows (evs may be NULL) in one
 * durable transaction.  FP_ERR_DUPLICATE if any serial exists (nothing is
 * written then).  Same as fp_store_cert_insert_spend with no tokens. */
int fp_store_cert_insert(fp_store *s, const fp_cert_rec *recs,
                         const fp_audit_event *evs, size_t n, fp_error *err);

/*
 * fp_store_cert_insert with enrollment tokens paid in the same transaction,
 * so a token use is never lost without its certificate and a certificate
 * is never stored without its token use.
 *
 * Every record needs a project that exists (FP_ERR_ARG for an empty or
 * malformed name, FP_ERR_NOT_FOUND for an unknown project or CA: the whole
 * batch fails, as for a duplicate serial).
 *
 * For each record i in order: when token_ids[i] is non-NULL (token_ids
 * itself may be NULL: no tokens), spend one use of that token of project
 * recs[i].project if it has uses left and is not expired at now, with its
 * own audit row {evs[i].actor, "token.use", token id, "", project}; then
 * insert recs[i] and its audit row evs[i].  A record whose token cannot pay
 * is refused and the batch goes on without it: neither its certificate nor
 * any audit row of it is written, and results[i] says why (FP_ERR_STATE
 * "token X is used up" / "has expired", FP_ERR_NOT_FOUND for a token that
 * does not exist in that project, exactly as for an unknown token).
 *
 * results (n entries; may be NULL only when token_ids is) receives each
 * record's fate.  On FP_ERR_OK the transaction is durable and results[i]
 * is FP_ERR_OK for every stored record.  On any other return nothing at
 * all was written, token uses included, and every results[i] holds the
 * returned error: FP_ERR_DUPLICATE if a serial exists already (one
 * transaction per record then finds which), else the store's failure.
 */
int fp_store_cert_insert_spend(fp_store *s, const fp_cert_rec *recs,
                               const fp_audit_event *evs, const char *const *token_ids,
                               int64_t now, fp_error *results, size_t n, fp_error *err);

/* Look a certificate up by serial (across projects: callers compare
 * rec.project); FP_ERR_NOT_FOUND if absent. */
int fp_store_cert_get(fp_store *s, const char *serial, fp_cert_rec *out,
                      fp_error *err);

/* Call cb for each certificate matching f, ordered by issue time. */
int fp_store_cert_list(fp_store *s, const fp_cert_filter *f, fp_cert_cb cb,
                       void *arg, fp_error *err);

/* Change status: revoke with reason at when, or (reason == removeFromCRL)
 * lift a certificateHold.  FP_ERR_STATE if the transition is not allowed
 * (already revoked for good, or lifting a non-hold); FP_ERR_NOT_FOUND if
 * the serial is unknown.  Logged for fp_store_status_changes. */
int fp_store_cert_set_status(fp_store *s, const char *serial, int status,
                             int reason, int64_t when, const fp_audit_event *ev,
                             fp_error *err);

#endif
