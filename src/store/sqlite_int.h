/*
 * sqlite_int.h - internals shared by the SQLite backend's files (private
 * to src/store):
 *   sqlite_store.c     open, close, transactions, maintenance, the ops table
 *   sqlite_migrate.c   the versioned schema
 *   sqlite_audit.c     audit chain
 *   sqlite_projects.c  projects and CAs
 *   sqlite_certs.c     certificates
 *   sqlite_status.c    status lookups, revoked entries, change log
 *   sqlite_tokens.c    enrollment tokens
 *   sqlite_pending.c   requests held for approval
 *   sqlite_devices.c   the device registry
 */
#ifndef FP_SQLITE_INT_H
#define FP_SQLITE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store_impl.h"

/* Slots of sqlite_store.cached. */
enum {
    SQ_C_APIKEY_GET,
    SQ_C_PROJECT_GET,
    SQ_C_PROJECT_EXISTS,
    /* sqlite_devices.c */
    SQ_C_DEV_READ,
    SQ_C_DEV_LINK,
    SQ_C_DEV_INSERT,
    SQ_C_DEV_LINK_INSERT,
    SQ_C_DEV_NAMING,
    SQ_C_DEV_BEGIN_READ,
    SQ_C_DEV_ROLLBACK,
    SQ_C_DEV_SYNC_NORMAL,
    SQ_C_DEV_SYNC_FULL,
    SQ_C_DEV_LOG,
    SQ_C_DEV_LOG_PRUNE,
    SQ_C_DEV_LIST,          /* + variant, SQ_C_DEV_LIST_N of them */
    SQ_C_DEV_LIST_N = 6,
    SQ_C_MAX = SQ_C_DEV_LIST + SQ_C_DEV_LIST_N,
};

typedef struct {
    fp_store base;
    sqlite3 *db;
    sqlite3_stmt *begin, *commit;
    /* sqlite_certs.c */
    sqlite3_stmt *ins_cert, *get_cert;
    /* sqlite_audit.c */
    sqlite3_stmt *last_audit, *ins_audit, *set_head;
    /* sqlite_tokens.c, prepared on first use */
    sqlite3_stmt *spend_token;
    /* Statements of per-request reads, prepared on first use and kept for
     * the handle's life (sq_cached, slots SQ_C_*): preparing one costs as
     * much as running it (sqlite3RunParser was a third of an authenticated
     * API request's CPU in bench/run-registry-api.sh). */
    sqlite3_stmt *cached[SQ_C_MAX];
    /* sqlite_status.c */
    sqlite3_stmt *status, *log_ins, *log_prune, *seq, *changes, *revoked, *revnum;
    /* The audit chain's head inside the open write transaction: read once
     * from the last row, advanced in memory by each append, and written to
     * meta once, just before COMMIT (sq_commit).  Forgotten at every
     * BEGIN, COMMIT and ROLLBACK: another process may append in between. */
    bool head_known, head_dirty;
    int64_t head_id;
    char head_hash[65];
} sqlite_store;

#define SQ(base) ((sqlite_store *)(void *)(base))

/* ---- sqlite_store.c ---- */
/* FP_ERR_STORE with "what: <sqlite message>". */
int sq_db_err(sqlite_store *s, fp_error *err, const char *what);
/* Run SQL without results. */
int sq_exec(sqlite_store *s, const char *sql, fp_error *err);
/* Prepare a statement kept for the handle's life. */
int sq_prepare(sqlite_store *s, sqlite3_stmt **st, const char *sql, fp_error *err);
/* The statement of slot (SQ_C_*) for sql, prepared on first use and kept;
 * give it back with sq_cached_done (reset, bindings cleared).  One slot
 * always holds the same SQL. */
int sq_cached(sqlite_store *s, int slot, const char *sql, sqlite3_stmt **out, fp_error *err);
void sq_cached_done(sqlite3_stmt *st);
/* sqlite_devices.c: the SQL of device-list variant v (0..SQ_C_DEV_LIST_N-1;
 * NULL otherwise), for the query-plan test. */
const char *sq_device_list_sql(int v);
/* Step a statement that returns no rows, then reset it. */
int sq_step_once(sqlite_store *s, sqlite3_stmt *st, const char *what, fp_error *err);
/* BEGIN IMMEDIATE: take the write lock now (waits up to busy_timeout). */
int sq_begin(sqlite_store *s, fp_error *err);
int sq_commit(sqlite_store *s, fp_error *err);
/* Roll back if a transaction is open. */
void sq_rollback(sqlite_store *s);
/* End a write transaction: audit + commit when rc is FP_ERR_OK, else roll
 * back.  Returns the final result. */
int sq_finish_write(sqlite_store *s, const fp_audit_event *ev, int rc, fp_error *err);
/* Text column i as a fresh malloc'd string ("" for NULL); NULL if out of memory. */
char *sq_col_strdup(sqlite3_stmt *st, int i);
/* Copy text column i into buf ("" for NULL), truncating to size. */
void sq_col_copy(sqlite3_stmt *st, int i, char *buf, size_t size);
/* Whether a row of projects has this name (inside the caller's transaction
 * or on its own); FP_ERR_OK with *found set, or the store's failure. */
int sq_project_exists(sqlite_store *s, const char *name, bool *found, fp_error *err);

/* ---- sqlite_migrate.c ---- */
/* Bring the schema to the newest version (nothing is written when it is). */
int sq_migrate(sqlite_store *s, fp_error *err);

/* ---- sqlite_audit.c ---- */
/* Append one audit row inside the caller's write transaction. */
int sq_audit_append_locked(sqlite_store *s, const fp_audit_event *ev, fp_error *err);
int sq_audit_prepare(sqlite_store *s, fp_error *err);
int sq_audit_append(fp_store *base, const fp_audit_event *ev, fp_error *err);
int sq_audit_iter(fp_store *base, fp_audit_cb cb, void *arg, int64_t *head_id,
                  char head_hash[65], fp_error *err);
int sq_audit_head(fp_store *base, int64_t *id, char hash[65], fp_error *err);

/* ---- sqlite_projects.c ---- */
int sq_project_put(fp_store *base, const char *name, const fp_audit_event *ev, fp_error *err);
int sq_project_get(fp_store *base, const char *name, fp_project_rec *out, fp_error *err);
int sq_project_list(fp_store *base, fp_project_cb cb, void *arg, fp_error *err);
int sq_ca_add(fp_store *base, const fp_ca_rec *r, const fp_audit_event *ev, fp_error *err);
int sq_ca_get(fp_store *base, const char *id, fp_ca_rec *out, fp_error *err);
int sq_ca_list(fp_store *base, const char *project, int kind, fp_ca_cb cb, void *arg,
               fp_error *err);
int sq_ca_activate(fp_store *base, const char *id, const fp_audit_event *ev, fp_error *err);
int sq_ca_set_cert(fp_store *base, const char *id, const unsigned char *der, size_t der_len,
                   const char *subject, int64_t not_before, int64_t not_after,
                   const fp_audit_event *ev, fp_error *err);

/* ---- sqlite_certs.c ---- */
int sq_certs_prepare(sqlite_store *s, fp_error *err);
int sq_cert_insert(fp_store *base, const fp_cert_rec *recs, const fp_audit_event *evs,
                   const char *const *token_ids, int64_t now, fp_error *results, size_t n,
                   fp_error *err);
int sq_cert_get(fp_store *base, const char *serial, fp_cert_rec *out, fp_error *err);
int sq_cert_list(fp_store *base, const fp_cert_filter *f, fp_cert_cb cb, void *arg,
                 fp_error *err);
int sq_cert_set_status(fp_store *base, const char *serial, int status, int reason,
                       int64_t when, const fp_audit_event *ev, fp_error *err);

/* ---- sqlite_status.c ---- */
int sq_status_prepare(sqlite_store *s, fp_error *err);
/* Append a change-log row for serial inside the caller's transaction and
 * prune rows older than FP_STORE_CHANGES_KEEP. */
int sq_status_log_change(sqlite_store *s, const char *serial, const char *ca_id,
                         const char *project, fp_error *err);
int sq_cert_status(fp_store *base, const char *serial, fp_cert_status_rec *out, fp_error *err);
int sq_revoked_iter(fp_store *base, const char *ca_id, fp_revoked_cb cb, void *arg,
                    fp_error *err);
int sq_revocation_number_next(fp_store *base, const char *ca_id, int64_t *out, fp_error *err);
int sq_status_seq(fp_store *base, int64_t *seq, fp_error *err);
int sq_status_changes(fp_store *base, int64_t after, int max, fp_change_cb cb, void *arg,
                      fp_error *err);
int sq_crl_put(fp_store *base, const char *ca_id, const fp_crl_pub *c, fp_error *err);
int sq_crl_get(fp_store *base, const char *ca_id, fp_crl_pub *out, fp_error *err);

/* ---- sqlite_tokens.c ---- */
int sq_token_put(fp_store *base, const fp_token_rec *t, const fp_audit_event *ev,
                 fp_error *err);
int sq_token_get(fp_store *base, const char *project, const char *id, fp_token_rec *out,
                 fp_error *err);
int sq_token_use(fp_store *base, const char *project, const char *id, int64_t now,
                 const fp_audit_event *ev, fp_error *err);
/* Spend one use of token id of project inside the caller's write
 * transaction, with the audit row ev (may be NULL).  FP_ERR_STATE (used
 * up, or expired at now) and FP_ERR_NOT_FOUND (absent, or of another
 * project) refuse this use only: nothing was written and the transaction
 * goes on.  Any other error: the caller rolls back. */
int sq_cert_insert_locked(sqlite_store *s, const fp_cert_rec *r, fp_error *err);
int sq_token_spend_locked(sqlite_store *s, const char *project, const char *id, int64_t now,
                          const fp_audit_event *ev, fp_error *err);

/* ---- sqlite_pending.c ---- */
int sq_pending_add(fp_store *base, const fp_pending_rec *r, int64_t *id,
                   const fp_audit_event *ev, fp_error *err);
int sq_pending_find(fp_store *base, const char *project, const char *label,
                    const char *csr_hash, fp_pending_rec *out, fp_error *err);
int sq_pending_get(fp_store *base, int64_t id, fp_pending_rec *out, fp_error *err);
int sq_pending_list(fp_store *base, const char *project, int status, fp_pending_cb cb,
                    void *arg, fp_error *err);
int sq_pending_decide(fp_store *base, int64_t id, int status, const char *serial,
                      const fp_audit_event *ev, fp_error *err);
int sq_pending_issue(fp_store *base, int64_t id, const fp_cert_rec *rec,
                     const fp_audit_event *cert_ev, const fp_audit_event *decide_ev,
                     fp_error *err);

/* ---- sqlite_devices.c ---- */
int sq_device_register(fp_store *base, const char *project, const char *name, int64_t now,
                       const fp_device_cert *cert, const fp_audit_event *ev, fp_device_rec *out,
                       bool *created, fp_error *err);
int sq_device_get(fp_store *base, const char *project, const char *name, const char *cert_fp,
                  bool *linked, fp_device_rec *out, fp_error *err);
int sq_device_list(fp_store *base, const fp_device_filter *f, fp_device_cb cb, void *arg,
                   fp_error *err);
int sq_device_set_state(fp_store *base, const char *project, const char *name,
                        unsigned from_mask, int to, const fp_audit_event *ev, fp_error *err);
int sq_device_tag(fp_store *base, const char *project, const char *name, const char *key,
                  const char *value, const fp_audit_event *ev, fp_error *err);
int sq_device_touch(fp_store *base, const char *const *projects, const char *const *names,
                    const int64_t *seen, size_t n, fp_error *err);
int sq_device_certs(fp_store *base, const char *project, const char *name,
                    fp_device_cert_cb cb, void *arg, fp_error *err);
int sq_device_seq(fp_store *base, int64_t *seq, fp_error *err);
int sq_device_changes(fp_store *base, int64_t after, int max, fp_device_change_cb cb,
                      void *arg, fp_error *err);
int sq_device_naming_get(fp_store *base, const char *project, int *rule, fp_error *err);
int sq_device_naming_set(fp_store *base, const char *project, int rule,
                         const fp_audit_event *ev, fp_error *err);

/* sqlite_firmware.c */
int sq_fw_sig_record(fp_store *base, const fp_fw_sig_rec *r, const fp_audit_event *ev,
                     int64_t *id, fp_error *err);
int sq_fw_sig_last(fp_store *base, const char *project, const char *class_id, int64_t *seq,
                   fp_error *err);
int sq_fw_sig_list(fp_store *base, const char *project, const char *class_id, fp_fw_sig_cb cb,
                   void *arg, fp_error *err);

/* sqlite_apikeys.c */
int sq_token_list(fp_store *base, const char *project, fp_token_cb cb, void *arg,
                  fp_error *err);
int sq_token_delete(fp_store *base, const char *project, const char *id,
                    const fp_audit_event *ev, fp_error *err);
int sq_apikey_put(fp_store *base, const fp_apikey_rec *k, const fp_audit_event *ev,
                  fp_error *err);
int sq_apikey_get(fp_store *base, const char *id, fp_apikey_rec *out, fp_error *err);
int sq_apikey_list(fp_store *base, const char *project, fp_apikey_cb cb, void *arg,
                   fp_error *err);
int sq_apikey_revoke(fp_store *base, const char *id, int64_t when, const fp_audit_event *ev,
                     fp_error *err);

#endif
