/*
 * sqlite_rev.h - revocation support of the SQLite backend (private to
 * src/store): status lookups for OCSP, the revoked-entry iterator for CRLs,
 * CRL numbers and the status-change log.  Kept apart from store_sqlite.c so
 * the schema objects it needs are created (idempotently) in one place.
 */
#ifndef FP_SQLITE_REV_H
#define FP_SQLITE_REV_H

#include <sqlite3.h>

#include "store.h"

typedef struct sq_rev sq_rev;

/* Create the objects revocation needs if missing (change log table,
 * covering partial index of revoked certificates) and prepare statements.
 * Idempotent: a store created by an older fleetpki gains them on open. */
int sq_rev_open(sqlite3 *db, sq_rev **out, fp_error *err);
void sq_rev_close(sq_rev *r);

/* Append a change-log row for serial inside the caller's transaction and
 * prune rows older than FP_STORE_CHANGES_KEEP. */
int sq_rev_log_change(sq_rev *r, const char *serial, const char *ca_id, fp_error *err);

int sq_rev_cert_status(sq_rev *r, const char *serial, fp_cert_status_rec *out,
                       fp_error *err);
int sq_rev_revoked_iter(sq_rev *r, const char *ca_id, fp_revoked_cb cb, void *arg,
                        fp_error *err);
/* Runs its own write transaction. */
int sq_rev_crl_number_next(sq_rev *r, const char *ca_id, int64_t *out, fp_error *err);
int sq_rev_status_seq(sq_rev *r, int64_t *seq, fp_error *err);
int sq_rev_status_changes(sq_rev *r, int64_t after, int max, fp_change_cb cb,
                          void *arg, fp_error *err);

#endif
