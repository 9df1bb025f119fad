/*
 * sqlite_store.c - the embedded SQLite backend: opening a handle,
 * transactions, maintenance, and the operations table.
 *
 * Durability: WAL journal with synchronous=FULL, so a transaction that
 * COMMIT returned for is on disk (the WAL is fsync'd at each commit) and a
 * crash at any moment rolls back to the last commit.  Writes use BEGIN
 * IMMEDIATE so concurrent processes serialise on the write lock instead of
 * failing late with SQLITE_BUSY; busy_timeout makes them wait.
 *
 * Checkpoints (FP_STORE_ROLE_COMMITTER and fp_store_maintain): a
 * checkpoint run by the handle that commits stalls every waiting
 * enrollment for as long as it copies and fsyncs the database, so the
 * group committer gives a second handle, on a thread of its own, PASSIVE
 * checkpoints (fp_store_maintain), which never block the writer.  Those
 * alone starve the log's restart, though: SQLite starts the log over only
 * when a writer finds it entirely copied back, and with a commit every
 * millisecond or two there is always a newer frame, so the log grew
 * without bound (~1 GiB in 20 s of enrollments).  So a committer handle
 * also checkpoints by itself once the log reaches COMMITTER_CHECKPOINT_FRAMES:
 * little is left to copy by then (the other thread did most), and its next
 * transaction finds the log copied back and starts it over; the file is
 * trimmed to WAL_SIZE_LIMIT when that happens.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../common/util.h"
#include "sqlite_int.h"

/* Whenever the write-ahead log starts over, its file is trimmed to this
 * many bytes (without it the file keeps its largest size forever). */
#define WAL_SIZE_LIMIT "33554432"
#define COMMITTER_CHECKPOINT_FRAMES 8192 /* ~32 MiB of log with 4 KiB pages */

int sq_db_err(sqlite_store *s, fp_error *err, const char *what)
{
    return fp_err_set(err, FP_ERR_STORE, "%s: %s", what, sqlite3_errmsg(s->db));
}

int sq_exec(sqlite_store *s, const char *sql, fp_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = fp_err_set(err, FP_ERR_STORE, "%.60s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return rc;
    }
    return FP_ERR_OK;
}

int sq_prepare(sqlite_store *s, sqlite3_stmt **st, const char *sql, fp_error *err)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "prepare");
    return FP_ERR_OK;
}

int sq_cached(sqlite_store *s, int slot, const char *sql, sqlite3_stmt **out, fp_error *err)
{
    if (s->cached[slot] == NULL && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                                      &s->cached[slot], NULL) != SQLITE_OK)
        return sq_db_err(s, err, "prepare");
    *out = s->cached[slot];
    return FP_ERR_OK;
}

void sq_cached_done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

int sq_step_once(sqlite_store *s, sqlite3_stmt *st, const char *what, fp_error *err)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? FP_ERR_OK : sq_db_err(s, err, what);
    sqlite3_reset(st);
    return rc;
}

int sq_begin(sqlite_store *s, fp_error *err)
{
    s->head_known = s->head_dirty = false;
    return sq_step_once(s, s->begin, "BEGIN IMMEDIATE", err);
}

int sq_commit(sqlite_store *s, fp_error *err)
{
    int rc = FP_ERR_OK;
    if (s->head_dirty) {
        char idbuf[24];
        snprintf(idbuf, sizeof(idbuf), "%" PRId64, s->head_id);
        sqlite3_bind_text(s->set_head, 1, idbuf, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s->set_head, 2, s->head_hash, -1, SQLITE_TRANSIENT);
        rc = sq_step_once(s, s->set_head, "audit head", err);
        sqlite3_clear_bindings(s->set_head);
    }
    if (rc == FP_ERR_OK)
        rc = sq_step_once(s, s->commit, "COMMIT", err);
    s->head_known = s->head_dirty = false;
    if (rc == FP_ERR_OK)
        fp_test_crash_point("store-after-commit");
    return rc;
}

void sq_rollback(sqlite_store *s)
{
    s->head_known = s->head_dirty = false;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* End a write transaction begun with sq_begin: when rc is FP_ERR_OK,
 * append ev (if any) to the audit chain and commit; otherwise, or if that
 * fails, roll back.  Returns the final result. */
int sq_finish_write(sqlite_store *s, const fp_audit_event *ev, int rc, fp_error *err)
{
    if (rc == FP_ERR_OK && ev != NULL)
        rc = sq_audit_append_locked(s, ev, err);
    if (rc == FP_ERR_OK)
        rc = sq_commit(s, err);
    if (rc != FP_ERR_OK)
        sq_rollback(s);
    return rc;
}

char *sq_col_strdup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

void sq_col_copy(sqlite3_stmt *st, int i, char *buf, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(buf, size, "%s", t ? (const char *)t : "");
}

static void sq_close(fp_store *base)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt **all[] = {&s->begin,  &s->commit,    &s->ins_cert, &s->get_cert,
                            &s->last_audit, &s->ins_audit, &s->set_head, &s->spend_token,
                            &s->status, &s->log_ins,   &s->log_prune, &s->seq,
                            &s->changes, &s->revoked,  &s->revnum};
    for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++)
        sqlite3_finalize(*all[i]);
    for (size_t i = 0; i < sizeof(s->cached) / sizeof(*s->cached); i++)
        sqlite3_finalize(s->cached[i]);
    sqlite3_close(s->db);
    free(s);
}

/* PASSIVE: copies what it can without waiting for or blocking writers. */
static int sq_maintain(fp_store *base, fp_error *err)
{
    sqlite_store *s = SQ(base);
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        return sq_db_err(s, err, "wal_checkpoint");
    return FP_ERR_OK;
}

static int sq_check(fp_store *base, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK;

    if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "integrity_check");
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r == NULL || strcmp(r, "ok") != 0)
            rc = fp_err_set(err, FP_ERR_STORE, "integrity_check: %s", r ? r : "?");
    } else {
        rc = sq_db_err(s, err, "integrity_check");
    }
    sqlite3_finalize(st);
    return rc;
}

static const fp_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .maintain = sq_maintain,
    .check = sq_check,
    .project_put = sq_project_put,
    .project_get = sq_project_get,
    .project_list = sq_project_list,
    .ca_add = sq_ca_add,
    .ca_get = sq_ca_get,
    .ca_list = sq_ca_list,
    .ca_activate = sq_ca_activate,
    .ca_set_cert = sq_ca_set_cert,
    .cert_insert = sq_cert_insert,
    .cert_get = sq_cert_get,
    .cert_list = sq_cert_list,
    .cert_set_status = sq_cert_set_status,
    .cert_status = sq_cert_status,
    .revoked_iter = sq_revoked_iter,
    .revocation_number_next = sq_revocation_number_next,
    .status_seq = sq_status_seq,
    .status_changes = sq_status_changes,
    .crl_put = sq_crl_put,
    .crl_get = sq_crl_get,
    .token_put = sq_token_put,
    .token_get = sq_token_get,
    .token_use = sq_token_use,
    .token_list = sq_token_list,
    .token_delete = sq_token_delete,
    .apikey_put = sq_apikey_put,
    .apikey_get = sq_apikey_get,
    .apikey_list = sq_apikey_list,
    .apikey_revoke = sq_apikey_revoke,
    .fw_sig_record = sq_fw_sig_record,
    .fw_sig_last = sq_fw_sig_last,
    .fw_sig_list = sq_fw_sig_list,
    .pending_add = sq_pending_add,
    .pending_find = sq_pending_find,
    .pending_get = sq_pending_get,
    .pending_list = sq_pending_list,
    .pending_decide = sq_pending_decide,
    .pending_issue = sq_pending_issue,
    .audit_append = sq_audit_append,
    .audit_iter = sq_audit_iter,
    .audit_head = sq_audit_head,
    .device_register = sq_device_register,
    .device_get = sq_device_get,
    .device_list = sq_device_list,
    .device_set_state = sq_device_set_state,
    .device_tag = sq_device_tag,
    .device_touch = sq_device_touch,
    .device_certs = sq_device_certs,
    .device_seq = sq_device_seq,
    .device_changes = sq_device_changes,
    .device_naming_get = sq_device_naming_get,
    .device_naming_set = sq_device_naming_set,
};

/* SQLite's memory statistics take one process-wide mutex on every
 * allocation: with a handle per server worker it was the hottest lock of
 * the admin API (12% of a device-list request's CPU in futex calls,
 * bench/run-registry-api.sh).  Nothing here reads those statistics.  Must
 * run before SQLite initialises; if something initialised it already the
 * call is refused (SQLITE_MISUSE) and nothing changes. */
static void sq_global_init(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int fp_store_sqlite_open(const char *path, fp_store_role role, fp_store **out, fp_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    sqlite_store *s = NULL;
    int rc;

    *out = NULL;
    pthread_once(&once, sq_global_init);
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    s->base.ops = &sqlite_ops;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = fp_err_set(err, FP_ERR_STORE, "%s: %s", path,
                        s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 10000);
    sqlite3_extended_result_codes(s->db, 1);
    if ((rc = sq_prepare(s, &s->begin, "BEGIN IMMEDIATE", err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->commit, "COMMIT", err)) != FP_ERR_OK ||
        (rc = sq_exec(s, "PRAGMA journal_mode = WAL", err)) != FP_ERR_OK ||
        (rc = sq_exec(s, "PRAGMA synchronous = FULL", err)) != FP_ERR_OK ||
        (rc = sq_exec(s, "PRAGMA journal_size_limit = " WAL_SIZE_LIMIT, err)) != FP_ERR_OK ||
        /* foreign keys stay off while migrations rebuild tables and add
         * columns that reference others (SQLite refuses such an ALTER with
         * a non-NULL default while they are on); sq_migrate checks them */
        (rc = sq_migrate(s, err)) != FP_ERR_OK ||
        (rc = sq_exec(s, "PRAGMA foreign_keys = ON", err)) != FP_ERR_OK ||
        (rc = sq_audit_prepare(s, err)) != FP_ERR_OK ||
        (rc = sq_certs_prepare(s, err)) != FP_ERR_OK ||
        (rc = sq_status_prepare(s, err)) != FP_ERR_OK)
        goto fail;
    if (role == FP_STORE_ROLE_COMMITTER &&
        sqlite3_wal_autocheckpoint(s->db, COMMITTER_CHECKPOINT_FRAMES) != SQLITE_OK) {
        rc = sq_db_err(s, err, "wal_autocheckpoint");
        goto fail;
    }
    *out = &s->base;
    return FP_ERR_OK;
fail:
    sq_close(&s->base);
    return rc;
}
