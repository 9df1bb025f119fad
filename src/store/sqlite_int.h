/*
 * sqlite_int.h - internals shared by the SQLite backend's files
 * (store_sqlite.c, sqlite_est.c).  Private to src/store.
 */
#ifndef FP_SQLITE_INT_H
#define FP_SQLITE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "sqlite_rev.h"
#include "store_impl.h"

typedef struct {
    fp_store base;
    sqlite3 *db;
    sqlite3_stmt *ins_cert, *get_cert, *last_audit, *ins_audit, *set_head;
    sqlite3_stmt *spend_token; /* sqlite_est.c, prepared on first use */
    sqlite3_stmt *begin, *commit;
    sq_rev *rev; /* revocation support, sqlite_rev.c */
    /* The audit chain's head inside the open write transaction: read once
     * from the last row, advanced in memory by each append, and written to
     * meta once, just before COMMIT (sq_commit).  Forgotten at every
     * BEGIN, COMMIT and ROLLBACK: another process may append in between. */
    bool head_known, head_dirty;
    int64_t head_id;
    char head_hash[65];
} sqlite_store;

/* FP_ERR_STORE with "what: <sqlite message>". */
int sq_db_err(sqlite_store *s, fp_error *err, const char *what);
/* Run SQL without results. */
int sq_exec(sqlite_store *s, const char *sql, fp_error *err);
/* BEGIN IMMEDIATE: take the write lock now (waits up to busy_timeout). */
int sq_begin(sqlite_store *s, fp_error *err);
int sq_commit(sqlite_store *s, fp_error *err);
/* Roll back if a transaction is open. */
void sq_rollback(sqlite_store *s);
/* Text column i as a fresh malloc'd string ("" for NULL); NULL if out of memory. */
char *sq_col_strdup(sqlite3_stmt *st, int i);
/* Append one audit row inside the caller's write transaction. */
int sq_audit_append_locked(sqlite_store *s, const fp_audit_event *ev, fp_error *err);
/* End a write transaction: audit + commit when rc is FP_ERR_OK, else roll
 * back.  Returns the final result. */
int sq_finish_write(sqlite_store *s, const fp_audit_event *ev, int rc, fp_error *err);

/* sqlite_est.c: enrollment tokens and pending requests (fp_store_ops). */
int sq_token_put(fp_store *base, const fp_token_rec *t, const fp_audit_event *ev,
                 fp_error *err);
int sq_token_get(fp_store *base, const char *id, fp_token_rec *out, fp_error *err);
int sq_token_use(fp_store *base, const char *id, int64_t now, const fp_audit_event *ev,
                 fp_error *err);
/* Spend one use of token id inside the caller's write transaction, with
 * the audit row ev (may be NULL).  FP_ERR_STATE (used up, or expired at
 * now) and FP_ERR_NOT_FOUND refuse this use only: nothing was written and
 * the transaction goes on.  Any other error: the caller rolls back. */
int sq_token_spend_locked(sqlite_store *s, const char *id, int64_t now,
                          const fp_audit_event *ev, fp_error *err);
int sq_pending_add(fp_store *base, const fp_pending_rec *r, int64_t *id,
                   const fp_audit_event *ev, fp_error *err);
int sq_pending_find(fp_store *base, const char *label, const char *csr_hash,
                    fp_pending_rec *out, fp_error *err);
int sq_pending_get(fp_store *base, int64_t id, fp_pending_rec *out, fp_error *err);
int sq_pending_list(fp_store *base, int status, fp_pending_cb cb, void *arg, fp_error *err);
int sq_pending_decide(fp_store *base, int64_t id, int status, const char *serial,
                      const fp_audit_event *ev, fp_error *err);

#endif
