/*
 * pg_int.h - internals shared by the PostgreSQL backend's files (private
 * to src/store):
 *   pg_store.c     connection, reconnection, statements, transactions, ops table
 *   pg_migrate.c   the versioned schema (one array, like sqlite_migrate.c)
 *   pg_audit.c     the audit chain (head row locked per write transaction)
 *   pg_projects.c  projects and CAs
 *   pg_certs.c     certificates (group-commit batches, token spending)
 *   pg_status.c    status lookups, revoked entries, change log, LISTEN/NOTIFY
 *   pg_tokens.c    enrollment tokens, API keys
 *   pg_pending.c   requests held for approval
 *   pg_devices.c   the device registry and its change log
 *   pg_firmware.c  firmware signatures
 *
 * Several `fleetpki serve` nodes write to one database, so what SQLite
 * gets from its single write lock is done here explicitly (docs/postgresql.md):
 *   - every write transaction that appends to the audit log takes the row
 *     lock on the audit head (meta rows audit_head_id / audit_head_hash,
 *     SELECT ... FOR UPDATE) right after BEGIN, before any other lock: the
 *     chain is appended by one transaction at a time, and since every
 *     auditing writer takes that lock first no two of them can deadlock on
 *     the rows they lock later (tokens, devices);
 *   - the status-change log's seq and the device change log's seq
 *     (device_log, taken by every device registration and state change,
 *     audited or not) are max(seq) + 1 under that same lock, so
 *     seq order is commit order and a follower reading "seq > n" never
 *     misses a change that commits late with a smaller number (which a
 *     plain sequence would allow);
 *   - serial uniqueness is the primary key (unique_violation ->
 *     FP_ERR_DUPLICATE, the caller draws another serial);
 *   - a token use is one conditional UPDATE (uses_left > 0): under READ
 *     COMMITTED a second spender waits for the row and re-checks the
 *     condition on the committed version.
 */
#ifndef FP_PG_INT_H
#define FP_PG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store_impl.h"

#define PG_MAX_PARAMS 16
#define PG_MAX_STMTS 128

/* LISTEN/NOTIFY channel of status changes (payload: the new seq). */
#define PG_CHANGES_CHANNEL "fleetpki_status"

typedef struct {
    fp_store base;
    PGconn *conn;
    char *conninfo;
    fp_store_role role;
    bool in_tx;
    bool listening;
    /* statements prepared on this connection, by SQL text address (the
     * SQL of a kept statement is a string constant); forgotten on reconnect */
    const char *prepared[PG_MAX_STMTS];
    int n_prepared;
    char sqlstate[6]; /* of the last failed statement, "" if none */
    int last_rc;      /* its code: FP_ERR_STORE, or FP_ERR_UNAVAILABLE when the
                         connection is down (EST answers 503 + Retry-After) */
    /* the audit head inside the open write transaction (locked at BEGIN,
     * advanced by each append, written back just before COMMIT) */
    bool head_locked, head_dirty;
    int64_t head_id;
    char head_hash[65];
} pg_store;

#define PG(base) ((pg_store *)(void *)(base))

/* Parameters of one statement: text, or binary for bytea. */
typedef struct {
    int n;
    const char *v[PG_MAX_PARAMS];
    int len[PG_MAX_PARAMS];
    int fmt[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][24];
} pg_params;

void pp_str(pg_params *p, const char *v); /* NULL: SQL NULL */
void pp_i64(pg_params *p, int64_t v);
void pp_bytes(pg_params *p, const void *v, size_t len);

/* ---- pg_store.c ---- */
/* Run SQL (a string constant: prepared once per connection and kept).
 * Returns the result (rows or command done; PQclear it), or NULL with
 * err and s->last_rc set (FP_ERR_STORE "what: message", or FP_ERR_UNAVAILABLE
 * "database unavailable: ..." when the connection is down) and s->sqlstate. */
PGresult *pg_q(pg_store *s, const char *sql, const pg_params *p, const char *what, fp_error *err);
/* A kept statement answering one integer (a count, a max): *out gets
 * row 0, column 0 (0 when there is no row or it is NULL). */
int pg_q_i64(pg_store *s, const char *sql, const pg_params *p, const char *what, int64_t *out,
             fp_error *err);
/* The same for SQL built at run time (not kept). */
PGresult *pg_q_once(pg_store *s, const char *sql, const pg_params *p, const char *what,
                    fp_error *err);
/* Run a kept statement without rows; *changed (may be NULL) gets the row count. */
int pg_cmd(pg_store *s, const char *sql, const pg_params *p, const char *what, int64_t *changed,
           fp_error *err);
/* Prepare sql on this connection if it is not yet (before a pipeline). */
int pg_prepare(pg_store *s, const char *sql, int nparams, fp_error *err);
/* Pipelines (libpq pipeline mode: many statements, one round trip).
 * pg_pipe_start enters it; pg_pipe_send queues a statement (prepared with
 * pg_prepare, or any SQL when params is NULL); pg_pipe_run syncs and reads
 * every result in order, stopping checks at the first failure: *failed
 * gets its index (-1 if none), err/last_rc/sqlstate say what; the pipeline
 * is left again either way. */
int pg_pipe_start(pg_store *s, fp_error *err);
int pg_pipe_send(pg_store *s, const char *sql, const pg_params *p, fp_error *err);
/* on_result (may be NULL) sees each successful result before it is cleared */
int pg_pipe_run(pg_store *s, int n, int *failed,
                int (*on_result)(void *arg, int i, PGresult *res, fp_error *err), void *arg,
                fp_error *err);
/* Whether the last failure was this SQLSTATE (23505 unique, 23503 foreign key). */
bool pg_failed_with(const pg_store *s, const char *sqlstate);
/* BEGIN; with lock_head, also lock the audit head and read it. */
int pg_begin(pg_store *s, bool lock_head, fp_error *err);
/* Write the audit head back if it moved, then COMMIT. */
int pg_commit(pg_store *s, fp_error *err);
void pg_rollback(pg_store *s);
/* Audit ev (if any) and commit when rc is FP_ERR_OK, else roll back. */
int pg_finish_write(pg_store *s, const fp_audit_event *ev, int rc, fp_error *err);
/* Value of row r, column c ("" for NULL). */
const char *pg_val(const PGresult *res, int r, int c);
int64_t pg_i64(const PGresult *res, int r, int c);
void pg_copy(const PGresult *res, int r, int c, char *buf, size_t size);
char *pg_strdup(const PGresult *res, int r, int c);
/* A bytea column as a malloc'd copy (never NULL on success, len may be 0). */
unsigned char *pg_bytea(const PGresult *res, int r, int c, size_t *len);
/* Whether project name exists (inside the caller's transaction or alone). */
int pg_project_exists(pg_store *s, const char *name, bool *found, fp_error *err);

/* ---- pg_migrate.c ---- */
int pg_migrate(pg_store *s, fp_error *err);

/* ---- pg_audit.c ---- */
/* One audit row's parameters (they point into prev and hash). */
typedef struct {
    pg_params p;
    char prev[65], hash[65];
} pg_audit_params;
extern const char pg_audit_insert_sql[], pg_audit_lock_sql[];
int pg_audit_lock_head(pg_store *s, fp_error *err);
/* Take the head from the rows of pg_audit_lock_sql (clears res). */
int pg_audit_head_from(pg_store *s, PGresult *res, fp_error *err);
/* The next row of the chain for ev, for pg_audit_insert_sql; advances the
 * head in memory (the caller inserts the row or rolls back). */
int pg_audit_row(pg_store *s, const fp_audit_event *ev, pg_audit_params *a, fp_error *err);
int pg_audit_append_locked(pg_store *s, const fp_audit_event *ev, fp_error *err);
int pg_audit_append(fp_store *base, const fp_audit_event *ev, fp_error *err);
int pg_audit_iter(fp_store *base, fp_audit_cb cb, void *arg, int64_t *head_id,
                  char head_hash[65], fp_error *err);
int pg_audit_head(fp_store *base, int64_t *id, char hash[65], fp_error *err);

/* ---- pg_projects.c ---- */
int pg_project_put(fp_store *base, const char *name, const fp_audit_event *ev, fp_error *err);
int pg_project_get(fp_store *base, const char *name, fp_project_rec *out, fp_error *err);
int pg_project_list(fp_store *base, fp_project_cb cb, void *arg, fp_error *err);
int pg_ca_add(fp_store *base, const fp_ca_rec *r, const fp_audit_event *ev, fp_error *err);
int pg_ca_get(fp_store *base, const char *id, fp_ca_rec *out, fp_error *err);
int pg_ca_list(fp_store *base, const char *project, int kind, fp_ca_cb cb, void *arg,
               fp_error *err);
int pg_ca_activate(fp_store *base, const char *id, const fp_audit_event *ev, fp_error *err);
int pg_ca_set_cert(fp_store *base, const char *id, const unsigned char *der, size_t der_len,
                   const char *subject, int64_t not_before, int64_t not_after,
                   const fp_audit_event *ev, fp_error *err);

/* ---- pg_certs.c ---- */
int pg_cert_insert(fp_store *base, const fp_cert_rec *recs, const fp_audit_event *evs,
                   const char *const *token_ids, int64_t now, fp_error *results, size_t n,
                   fp_error *err);
/* Insert one certificate in the caller's transaction. */
int pg_cert_insert_locked(pg_store *s, const fp_cert_rec *r, fp_error *err);
/* After a failed insert of r (transaction rolled back): the error to report. */
int pg_cert_insert_failure(pg_store *s, const fp_cert_rec *r, fp_error *err);
int pg_cert_get(fp_store *base, const char *serial, fp_cert_rec *out, fp_error *err);
int pg_cert_list(fp_store *base, const fp_cert_filter *f, fp_cert_cb cb, void *arg,
                 fp_error *err);
int pg_cert_set_status(fp_store *base, const char *serial, int status, int reason,
                       int64_t when, const fp_audit_event *ev, fp_error *err);

/* ---- pg_status.c ---- */
int pg_status_log_change(pg_store *s, const char *serial, const char *ca_id,
                         const char *project, fp_error *err);
int pg_cert_status(fp_store *base, const char *serial, fp_cert_status_rec *out, fp_error *err);
int pg_revoked_iter(fp_store *base, const char *ca_id, fp_revoked_cb cb, void *arg,
                    fp_error *err);
int pg_revocation_number_next(fp_store *base, const char *ca_id, int64_t *out, fp_error *err);
int pg_status_seq(fp_store *base, int64_t *seq, fp_error *err);
int pg_status_changes(fp_store *base, int64_t after, int max, fp_change_cb cb, void *arg,
                      fp_error *err);
int pg_status_wait(fp_store *base, int timeout_ms, bool *woken, fp_error *err);
int pg_crl_put(fp_store *base, const char *ca_id, const fp_crl_pub *c, fp_error *err);
int pg_crl_get(fp_store *base, const char *ca_id, fp_crl_pub *out, fp_error *err);
int pg_crl_lock(fp_store *base, const char *ca_id, bool lock, bool *got, fp_error *err);

/* ---- pg_tokens.c ---- */
int pg_token_put(fp_store *base, const fp_token_rec *t, const fp_audit_event *ev,
                 fp_error *err);
int pg_token_get(fp_store *base, const char *project, const char *id, fp_token_rec *out,
                 fp_error *err);
int pg_token_use(fp_store *base, const char *project, const char *id, int64_t now,
                 const fp_audit_event *ev, fp_error *err);
/* As sq_token_spend_locked: FP_ERR_STATE / FP_ERR_NOT_FOUND refuse this
 * use only (nothing written, the transaction goes on). */
int pg_token_spend_locked(pg_store *s, const char *project, const char *id, int64_t now,
                          const fp_audit_event *ev, fp_error *err);
int pg_token_list(fp_store *base, const char *project, fp_token_cb cb, void *arg,
                  fp_error *err);
int pg_token_delete(fp_store *base, const char *project, const char *id,
                    const fp_audit_event *ev, fp_error *err);
int pg_apikey_put(fp_store *base, const fp_apikey_rec *k, const fp_audit_event *ev,
                  fp_error *err);
int pg_apikey_get(fp_store *base, const char *id, fp_apikey_rec *out, fp_error *err);
int pg_apikey_list(fp_store *base, const char *project, fp_apikey_cb cb, void *arg,
                   fp_error *err);
int pg_apikey_revoke(fp_store *base, const char *id, int64_t when, const fp_audit_event *ev,
                     fp_error *err);

/* ---- pg_pending.c ---- */
int pg_pending_add(fp_store *base, const fp_pending_rec *r, int64_t *id,
                   const fp_audit_event *ev, fp_error *err);
int pg_pending_find(fp_store *base, const char *project, const char *label,
                    const char *csr_hash, fp_pending_rec *out, fp_error *err);
int pg_pending_get(fp_store *base, int64_t id, fp_pending_rec *out, fp_error *err);
int pg_pending_list(fp_store *base, const char *project, int status, fp_pending_cb cb,
                    void *arg, fp_error *err);
int pg_pending_decide(fp_store *base, int64_t id, int status, const char *serial,
                      const fp_audit_event *ev, fp_error *err);
int pg_pending_issue(fp_store *base, int64_t id, const fp_cert_rec *rec,
                     const fp_audit_event *cert_ev, const fp_audit_event *decide_ev,
                     fp_error *err);

/* ---- pg_devices.c ---- */
int pg_device_register(fp_store *base, const char *project, const char *name, int64_t now,
                       const fp_device_cert *cert, const fp_audit_event *ev, fp_device_rec *out,
                       bool *created, fp_error *err);
int pg_device_get(fp_store *base, const char *project, const char *name, const char *cert_fp,
                  bool *linked, fp_device_rec *out, fp_error *err);
int pg_device_list(fp_store *base, const fp_device_filter *f, fp_device_cb cb, void *arg,
                   fp_error *err);
int pg_device_set_state(fp_store *base, const char *project, const char *name,
                        unsigned from_mask, int to, const fp_audit_event *ev, fp_error *err);
int pg_device_tag(fp_store *base, const char *project, const char *name, const char *key,
                  const char *value, const fp_audit_event *ev, fp_error *err);
int pg_device_touch(fp_store *base, const char *const *projects, const char *const *names,
                    const int64_t *seen, size_t n, fp_error *err);
int pg_device_certs(fp_store *base, const char *project, const char *name,
                    fp_device_cert_cb cb, void *arg, fp_error *err);
int pg_device_naming_get(fp_store *base, const char *project, int *rule, fp_error *err);
int pg_device_naming_set(fp_store *base, const char *project, int rule,
                         const fp_audit_event *ev, fp_error *err);
int pg_device_seq(fp_store *base, int64_t *seq, fp_error *err);
int pg_device_changes(fp_store *base, int64_t after, int max, fp_device_change_cb cb, void *arg,
                      fp_error *err);

/* ---- pg_firmware.c ---- */
int pg_fw_sig_record(fp_store *base, const fp_fw_sig_rec *r, const fp_audit_event *ev,
                     int64_t *id, fp_error *err);
int pg_fw_sig_last(fp_store *base, const char *project, const char *class_id, int64_t *seq,
                   fp_error *err);
int pg_fw_sig_list(fp_store *base, const char *project, const char *class_id, fp_fw_sig_cb cb,
                   void *arg, fp_error *err);

#endif
