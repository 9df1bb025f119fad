/*
 * store_pending.h - enrollment requests held for manual approval (part of
 * the store interface, see store.h).
 */
#ifndef FP_STORE_PENDING_H
#define FP_STORE_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "store_audit.h"
#include "store_projects.h"

enum { FP_PENDING_WAITING = 0, FP_PENDING_ISSUED = 1, FP_PENDING_REJECTED = 2 };

typedef struct fp_pending_rec {
    int64_t id;
    char project[FP_PROJECT_MAX]; /* required on add; must exist */
    char label[64];
    char csr_hash[65]; /* hex SHA-256 of the CSR DER: a retry is the same CSR */
    unsigned char *csr;
    size_t csr_len;
    char *subject;
    char *actor;
    int status;
    char serial[41]; /* when issued */
    int64_t created_at, decided_at;
} fp_pending_rec;

/* Free the heap fields of r (not r itself) and zero it. */
void fp_pending_rec_clear(fp_pending_rec *r);

/* Add a request; if (project, label, csr_hash) exists already nothing
 * changes and *id is the existing one.  Audited (new rows only, object
 * "pending:<id>").  FP_ERR_NOT_FOUND if the project does not exist. */
int fp_store_pending_add(fp_store *s, const fp_pending_rec *r, int64_t *id,
                         const fp_audit_event *ev, fp_error *err);
/* By (project, label, csr_hash); FP_ERR_NOT_FOUND if absent. */
int fp_store_pending_find(fp_store *s, const char *project, const char *label,
                          const char *csr_hash, fp_pending_rec *out, fp_error *err);
/* By id (ids are unique across projects: callers compare out->project). */
int fp_store_pending_get(fp_store *s, int64_t id, fp_pending_rec *out, fp_error *err);
typedef int (*fp_pending_cb)(void *arg, const fp_pending_rec *r);
/* project NULL: any; status -1: all.  Ordered by id. */
int fp_store_pending_list(fp_store *s, const char *project, int status, fp_pending_cb cb,
                          void *arg, fp_error *err);
/* WAITING -> ISSUED (with serial) or REJECTED; FP_ERR_STATE otherwise,
 * FP_ERR_ARG for another target status. */
int fp_store_pending_decide(fp_store *s, int64_t id, int status, const char *serial,
                            const fp_audit_event *ev, fp_error *err);
/* Approval in one transaction: request id (waiting, of rec->project)
 * becomes ISSUED with rec's serial, and rec is stored, each with its
 * audit row.  FP_ERR_STATE if the request is not waiting (or belongs to
 * another project), FP_ERR_DUPLICATE on a serial collision; nothing is
 * written on any failure. */
int fp_store_pending_issue(fp_store *s, int64_t id, const fp_cert_rec *rec,
                           const fp_audit_event *cert_ev, const fp_audit_event *decide_ev,
                           fp_error *err);

#endif
