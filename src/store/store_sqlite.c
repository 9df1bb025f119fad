/*
 * store_sqlite.c - the embedded SQLite backend.
 *
 * Durability: WAL journal with synchronous=FULL, so a transaction that
 * COMMIT returned for is on disk (the WAL is fsync'd at each commit) and a
 * crash at any moment rolls back to the last commit.  Writes use BEGIN
 * IMMEDIATE so concurrent processes serialise on the write lock instead of
 * failing late with SQLITE_BUSY; busy_timeout makes them wait.
 *
 * Schema changes are appended to migrations[]; PRAGMA user_version records
 * how many have been applied.  Never edit a shipped migration.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../common/util.h"
#include "sqlite_int.h"

static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE ca ("
    "  id TEXT PRIMARY KEY, parent_id TEXT, der BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE certificates ("
    "  serial TEXT PRIMARY KEY,"
    "  ca_id TEXT NOT NULL REFERENCES ca(id),"
    "  profile TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  sans TEXT NOT NULL DEFAULT '',"
    "  not_before INTEGER NOT NULL,"
    "  not_after INTEGER NOT NULL,"
    "  issued_at INTEGER NOT NULL,"
    "  status INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1)),"
    "  revoked_at INTEGER,"
    "  reason INTEGER,"
    "  der BLOB NOT NULL);"
    "CREATE INDEX certificates_not_after ON certificates(not_after);"
    "CREATE INDEX certificates_status ON certificates(status, ca_id);"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
    "  actor TEXT NOT NULL, action TEXT NOT NULL,"
    "  object TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',"
    "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    /* append-only by construction; tampering needs a deliberate schema
     * change, and `audit verify` catches what gets through */
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
    "INSERT INTO meta VALUES ('audit_head_id', '0');"
    "INSERT INTO meta VALUES ('audit_head_hash', '" FP_AUDIT_GENESIS "');",
    /* 2: EST enrollment tokens (only a hash of the secret) and requests
     * held for manual approval */
    "CREATE TABLE enroll_tokens ("
    "  id TEXT PRIMARY KEY, label TEXT NOT NULL, hash BLOB NOT NULL,"
    "  cn_pattern TEXT NOT NULL DEFAULT '',"
    "  uses_left INTEGER NOT NULL CHECK (uses_left >= 0),"
    "  expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE pending_requests ("
    "  id INTEGER PRIMARY KEY, label TEXT NOT NULL, csr_hash TEXT NOT NULL,"
    "  csr BLOB NOT NULL, subject TEXT NOT NULL DEFAULT '', actor TEXT NOT NULL DEFAULT '',"
    "  status INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2)),"
    "  serial TEXT, created_at INTEGER NOT NULL, decided_at INTEGER,"
    "  UNIQUE (label, csr_hash));",
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(*migrations)))

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

/* Run a prepared statement that returns no rows, then reset it. */
/* Whenever the write-ahead log starts over, its file is trimmed to this
 * many bytes (without it the file keeps its largest size forever). */
#define WAL_SIZE_LIMIT "33554432"

static int step_once(sqlite_store *s, sqlite3_stmt *st, const char *what, fp_error *err)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? FP_ERR_OK : sq_db_err(s, err, what);
    sqlite3_reset(st);
    return rc;
}

int sq_begin(sqlite_store *s, fp_error *err)
{
    s->head_known = s->head_dirty = false;
    return step_once(s, s->begin, "BEGIN IMMEDIATE", err);
}

int sq_commit(sqlite_store *s, fp_error *err)
{
    int rc = FP_ERR_OK;
    if (s->head_dirty) {
        char idbuf[24];
        snprintf(idbuf, sizeof(idbuf), "%" PRId64, s->head_id);
        sqlite3_bind_text(s->set_head, 1, idbuf, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s->set_head, 2, s->head_hash, -1, SQLITE_TRANSIENT);
        rc = step_once(s, s->set_head, "audit head", err);
        sqlite3_clear_bindings(s->set_head);
    }
    if (rc == FP_ERR_OK)
        rc = step_once(s, s->commit, "COMMIT", err);
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

static int prepare(sqlite_store *s, sqlite3_stmt **st, const char *sql, fp_error *err)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "prepare");
    return FP_ERR_OK;
}

static int migrate(sqlite_store *s, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int version = 0, rc;

    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "user_version");
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > N_MIGRATIONS)
        return fp_err_set(err, FP_ERR_STORE,
                          "store schema version %d is newer than this fleetpki (%d)",
                          version, N_MIGRATIONS);
    for (int v = version; v < N_MIGRATIONS; v++) {
        char pragma[64];
        if ((rc = sq_begin(s, err)) != FP_ERR_OK)
            return rc;
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        if ((rc = sq_exec(s, migrations[v], err)) != FP_ERR_OK ||
            (rc = sq_exec(s, pragma, err)) != FP_ERR_OK) {
            sq_rollback(s);
            return rc;
        }
        if ((rc = sq_commit(s, err)) != FP_ERR_OK)
            return rc;
    }
    return FP_ERR_OK;
}

/* Append one audit row inside the caller's transaction. */
int sq_audit_append_locked(sqlite_store *s, const fp_audit_event *ev,
                               fp_error *err)
{
    int64_t id, ts = fp_now();
    char hash[65];
    sqlite3_stmt *st;
    int rc = FP_ERR_OK;

    if (!s->head_known) {
        st = s->last_audit;
        sqlite3_reset(st);
        s->head_id = 0;
        memcpy(s->head_hash, FP_AUDIT_GENESIS, sizeof(FP_AUDIT_GENESIS));
        if (sqlite3_step(st) == SQLITE_ROW) {
            const unsigned char *h = sqlite3_column_text(st, 1);
            s->head_id = sqlite3_column_int64(st, 0);
            if (h == NULL || strlen((const char *)h) != 64) {
                sqlite3_reset(st);
                return fp_err_set(err, FP_ERR_AUDIT, "audit row %" PRId64 " has a malformed hash",
                                  s->head_id);
            }
            memcpy(s->head_hash, h, 65);
        }
        sqlite3_reset(st);
        s->head_known = true;
    }
    id = s->head_id + 1;
    if (fp_audit_hash(s->head_hash, id, ts, ev->actor, ev->action, ev->object,
                      ev->detail, hash) != FP_ERR_OK)
        return fp_err_set(err, FP_ERR_CRYPTO, "audit hash failed");
    st = s->ins_audit;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, ts);
    sqlite3_bind_text(st, 3, ev->actor ? ev->actor : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ev->action ? ev->action : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ev->object ? ev->object : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ev->detail ? ev->detail : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, s->head_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, hash, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "audit insert");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != FP_ERR_OK)
        return rc; /* the caller rolls back, which forgets the head */
    /* the separately kept head (meta) is written once, by sq_commit */
    s->head_id = id;
    memcpy(s->head_hash, hash, sizeof(hash));
    s->head_dirty = true;
    return FP_ERR_OK;
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

static void sq_close(fp_store *base)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_finalize(s->ins_cert);
    sqlite3_finalize(s->get_cert);
    sqlite3_finalize(s->last_audit);
    sqlite3_finalize(s->ins_audit);
    sqlite3_finalize(s->set_head);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->spend_token);
    sq_rev_close(s->rev);
    sqlite3_close(s->db);
    free(s);
}

static int sq_ca_put(fp_store *base, const char *id, const char *parent_id,
                     const unsigned char *der, size_t der_len,
                     const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO ca (id, parent_id, der, created_at) VALUES (?,?,?,?)"
                           " ON CONFLICT(id) DO UPDATE SET der = excluded.der"
                           " WHERE der = excluded.der",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "ca insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (parent_id)
        sqlite3_bind_text(st, 2, parent_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, der, (int)der_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, fp_now());
    step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        rc = sq_db_err(s, err, "ca insert");
        goto out;
    }
    if (sqlite3_changes(s->db) == 0) {
        rc = fp_err_set(err, FP_ERR_EXISTS,
                        "a different CA is already recorded with id '%s'", id);
        goto out;
    }
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

/* fp_store_cert_insert_spend: see store.h for the contract. */
static int sq_cert_insert(fp_store *base, const fp_cert_rec *recs, const fp_audit_event *evs,
                          const char *const *token_ids, int64_t now, fp_error *results,
                          size_t n, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = s->ins_cert;
    fp_error e = {0}; /* the batch's failure; err and results may be NULL */
    int rc;

    for (size_t i = 0; results != NULL && i < n; i++)
        fp_err_clear(&results[i]);
    if ((rc = sq_begin(s, &e)) != FP_ERR_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const fp_cert_rec *r = &recs[i];
        int step;
        if (token_ids != NULL && token_ids[i] != NULL) {
            /* the token pays in this transaction: its use and the
             * certificate commit or roll back together */
            fp_audit_event use = {evs != NULL ? evs[i].actor : "", "token.use", token_ids[i], ""};
            rc = sq_token_spend_locked(s, token_ids[i], now, &use, &e);
            if (rc == FP_ERR_STATE || rc == FP_ERR_NOT_FOUND) {
                results[i] = e; /* this record only: no certificate */
                fp_err_clear(&e);
                rc = FP_ERR_OK;
                continue;
            }
            if (rc != FP_ERR_OK)
                goto out;
            fp_test_crash_point("store-after-token-use");
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        sqlite3_bind_text(st, 1, r->serial, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->ca_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->profile, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->subject ? r->subject : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r->sans ? r->sans : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, r->not_before);
        sqlite3_bind_int64(st, 7, r->not_after);
        sqlite3_bind_int64(st, 8, r->issued_at);
        sqlite3_bind_blob(st, 9, r->der, (int)r->der_len, SQLITE_STATIC);
        step = sqlite3_step(st);
        if (step == SQLITE_CONSTRAINT_PRIMARYKEY || step == SQLITE_CONSTRAINT_UNIQUE) {
            rc = fp_err_set(&e, FP_ERR_DUPLICATE, "serial %s already issued", r->serial);
            goto out;
        }
        if (step != SQLITE_DONE) {
            rc = sq_db_err(s, &e, "certificate insert");
            goto out;
        }
        if (evs != NULL && (rc = sq_audit_append_locked(s, &evs[i], &e)) != FP_ERR_OK)
            goto out;
    }
    fp_test_crash_point("store-before-commit");
    rc = sq_commit(s, &e);
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != FP_ERR_OK) {
        /* nothing of the batch stays, token uses included */
        sq_rollback(s);
        for (size_t i = 0; results != NULL && i < n; i++)
            results[i] = e;
        if (err != NULL)
            *err = e;
    }
    return rc;
}

char *sq_col_strdup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

#define CERT_COLS \
    "serial, ca_id, profile, subject, sans, not_before, not_after, issued_at," \
    " status, revoked_at, reason, der"

static int row_to_rec(sqlite3_stmt *st, fp_cert_rec *r, fp_error *err)
{
    const void *der;
    int der_len;

    memset(r, 0, sizeof(*r));
    snprintf(r->serial, sizeof(r->serial), "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(r->ca_id, sizeof(r->ca_id), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(r->profile, sizeof(r->profile), "%s", (const char *)sqlite3_column_text(st, 2));
    r->subject = sq_col_strdup(st, 3);
    r->sans = sq_col_strdup(st, 4);
    r->not_before = sqlite3_column_int64(st, 5);
    r->not_after = sqlite3_column_int64(st, 6);
    r->issued_at = sqlite3_column_int64(st, 7);
    r->status = sqlite3_column_int(st, 8);
    r->revoked_at = sqlite3_column_int64(st, 9);
    r->reason = sqlite3_column_int(st, 10);
    der = sqlite3_column_blob(st, 11);
    der_len = sqlite3_column_bytes(st, 11);
    r->der = malloc(der_len > 0 ? (size_t)der_len : 1);
    if (r->subject == NULL || r->sans == NULL || r->der == NULL) {
        fp_cert_rec_clear(r);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    if (der_len > 0)
        memcpy(r->der, der, (size_t)der_len);
    r->der_len = (size_t)der_len;
    return FP_ERR_OK;
}

static int sq_cert_get(fp_store *base, const char *serial, fp_cert_rec *out,
                       fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = s->get_cert;
    int rc, step;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = row_to_rec(st, out, err);
    else if (step == SQLITE_DONE)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
    else
        rc = sq_db_err(s, err, "certificate lookup");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_cert_list(fp_store *base, const fp_cert_filter *f, fp_cert_cb cb,
                        void *arg, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;
    const char *sql =
        "SELECT " CERT_COLS " FROM certificates WHERE"
        " (?1 < 0 OR status = ?1)"
        " AND (?2 = 0 OR not_after < ?5)"
        " AND (?3 = 0 OR not_after >= ?5)"
        " AND (?4 = 0 OR (not_after <= ?4 AND not_after >= ?5))"
        " AND (?6 IS NULL OR profile = ?6)"
        " AND (?8 IS NULL OR instr(subject, ?8) > 0 OR instr(sans, ?8) > 0)"
        " ORDER BY issued_at, rowid LIMIT ?7";

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "list");
    sqlite3_bind_int(st, 1, f->status);
    sqlite3_bind_int(st, 2, f->expired_only);
    sqlite3_bind_int(st, 3, f->unexpired_only);
    sqlite3_bind_int64(st, 4, f->expiring_before);
    sqlite3_bind_int64(st, 5, f->now);
    if (f->profile)
        sqlite3_bind_text(st, 6, f->profile, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, f->limit > 0 ? f->limit : -1);
    if (f->name_contains)
        sqlite3_bind_text(st, 8, f->name_contains, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_cert_rec r;
        if ((rc = row_to_rec(st, &r, err)) != FP_ERR_OK)
            break;
        rc = cb(arg, &r);
        fp_cert_rec_clear(&r);
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "list");
    sqlite3_finalize(st);
    return rc;
}

static int sq_cert_set_status(fp_store *base, const char *serial, int status,
                              int reason, int64_t when, const fp_audit_event *ev,
                              fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = NULL;
    int rc, cur_status, cur_reason;
    char ca_id[64];

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db, "SELECT status, reason, ca_id FROM certificates WHERE serial = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "status lookup");
        goto out;
    }
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
        goto out;
    }
    cur_status = sqlite3_column_int(st, 0);
    cur_reason = sqlite3_column_int(st, 1);
    snprintf(ca_id, sizeof(ca_id), "%s",
             sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "");
    sqlite3_finalize(st);
    st = NULL;

    /* RFC 5280 5.3.1: only certificateHold is reversible. */
    if (cur_status == FP_CERT_REVOKED && cur_reason != FP_REASON_HOLD) {
        rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is already revoked (%s)",
                        serial, fp_reason_name(cur_reason));
        goto out;
    }
    if (status == FP_CERT_VALID) {
        if (cur_status != FP_CERT_REVOKED) {
            rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is not on hold", serial);
            goto out;
        }
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE certificates SET status = 0, revoked_at = NULL,"
                               " reason = NULL WHERE serial = ?", -1, &st, NULL) != SQLITE_OK) {
            rc = sq_db_err(s, err, "status update");
            goto out;
        }
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    } else {
        if (cur_status == FP_CERT_REVOKED && reason == FP_REASON_HOLD) {
            rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is already on hold", serial);
            goto out;
        }
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE certificates SET status = 1, revoked_at = ?,"
                               " reason = ? WHERE serial = ?", -1, &st, NULL) != SQLITE_OK) {
            rc = sq_db_err(s, err, "status update");
            goto out;
        }
        sqlite3_bind_int64(st, 1, when);
        sqlite3_bind_int(st, 2, reason);
        sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_db_err(s, err, "status update");
        goto out;
    }
    /* same transaction: a watcher never sees the status without its log row */
    if ((rc = sq_rev_log_change(s->rev, serial, ca_id, err)) != FP_ERR_OK)
        goto out;
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

static int sq_audit_append(fp_store *base, const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    int rc;
    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    return sq_finish_write(s, ev, rc, err);
}

static int sq_audit_head(sqlite_store *s, int64_t *id, char hash[65], fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int found = 0;

    *id = -1;
    hash[0] = '\0';
    if (sqlite3_prepare_v2(s->db, "SELECT key, value FROM meta WHERE key IN"
                                  " ('audit_head_id', 'audit_head_hash')",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "audit head");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        if (!k || !v)
            continue;
        if (!strcmp(k, "audit_head_id")) {
            *id = strtoll(v, NULL, 10);
            found++;
        } else if (strlen(v) == 64) {
            memcpy(hash, v, 65);
            found++;
        }
    }
    sqlite3_finalize(st);
    if (found != 2)
        return fp_err_set(err, FP_ERR_AUDIT, "audit head record missing");
    return FP_ERR_OK;
}

static int sq_audit_iter(fp_store *base, fp_audit_cb cb, void *arg, int64_t *head_id,
                         char head_hash[65], fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step = SQLITE_DONE;

    /* one read transaction: rows and head come from the same snapshot */
    if ((rc = sq_exec(s, "BEGIN", err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, ts, actor, action, object, detail, prev_hash, hash"
                           " FROM audit ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "audit read");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_audit_row r;
        r.id = sqlite3_column_int64(st, 0);
        r.ts = sqlite3_column_int64(st, 1);
        r.actor = (const char *)sqlite3_column_text(st, 2);
        r.action = (const char *)sqlite3_column_text(st, 3);
        r.object = (const char *)sqlite3_column_text(st, 4);
        r.detail = (const char *)sqlite3_column_text(st, 5);
        r.prev_hash = (const char *)sqlite3_column_text(st, 6);
        r.hash = (const char *)sqlite3_column_text(st, 7);
        if (!r.actor || !r.action || !r.object || !r.detail || !r.prev_hash || !r.hash) {
            rc = fp_err_set(err, FP_ERR_AUDIT, "audit row %" PRId64 " has NULL fields", r.id);
            break;
        }
        if ((rc = cb(arg, &r)) != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "audit read");
    sqlite3_finalize(st);
    if (rc == FP_ERR_OK && head_id != NULL)
        rc = sq_audit_head(s, head_id, head_hash, err);
out:
    sq_rollback(s); /* read-only: ends the snapshot */
    return rc;
}

static int sq_check(fp_store *base, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
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

#define REV(s) (((sqlite_store *)(void *)(s))->rev)

static int sq_cert_status(fp_store *base, const char *serial, fp_cert_status_rec *out,
                          fp_error *err)
{
    return sq_rev_cert_status(REV(base), serial, out, err);
}

static int sq_revoked_iter(fp_store *base, const char *ca_id, fp_revoked_cb cb, void *arg,
                           fp_error *err)
{
    return sq_rev_revoked_iter(REV(base), ca_id, cb, arg, err);
}

static int sq_crl_number_next(fp_store *base, const char *ca_id, int64_t *out, fp_error *err)
{
    return sq_rev_crl_number_next(REV(base), ca_id, out, err);
}

static int sq_status_seq(fp_store *base, int64_t *seq, fp_error *err)
{
    return sq_rev_status_seq(REV(base), seq, err);
}

static int sq_status_changes(fp_store *base, int64_t after, int max, fp_change_cb cb,
                             void *arg, fp_error *err)
{
    return sq_rev_status_changes(REV(base), after, max, cb, arg, err);
}

static int sq_set_autocheckpoint(fp_store *base, int pages, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    if (sqlite3_wal_autocheckpoint(s->db, pages > 0 ? pages : 0) != SQLITE_OK)
        return sq_db_err(s, err, "wal_autocheckpoint");
    return FP_ERR_OK;
}

/* PASSIVE: copies what it can without waiting for or blocking writers. */
static int sq_checkpoint(fp_store *base, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        return sq_db_err(s, err, "wal_checkpoint");
    return FP_ERR_OK;
}

static const fp_store_ops sqlite_ops = {
    .set_autocheckpoint = sq_set_autocheckpoint,
    .checkpoint = sq_checkpoint,
    .name = "sqlite",
    .close = sq_close,
    .ca_put = sq_ca_put,
    .cert_insert = sq_cert_insert,
    .cert_get = sq_cert_get,
    .cert_list = sq_cert_list,
    .cert_set_status = sq_cert_set_status,
    .audit_append = sq_audit_append,
    .audit_iter = sq_audit_iter,
    .check = sq_check,
    .cert_status = sq_cert_status,
    .revoked_iter = sq_revoked_iter,
    .crl_number_next = sq_crl_number_next,
    .status_seq = sq_status_seq,
    .status_changes = sq_status_changes,
    .token_put = sq_token_put,
    .token_get = sq_token_get,
    .token_use = sq_token_use,
    .pending_add = sq_pending_add,
    .pending_find = sq_pending_find,
    .pending_get = sq_pending_get,
    .pending_list = sq_pending_list,
    .pending_decide = sq_pending_decide,
};

int fp_store_sqlite_open(const char *path, fp_store **out, fp_error *err)
{
    sqlite_store *s = NULL;
    int rc;

    *out = NULL;
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
    if ((rc = prepare(s, &s->begin, "BEGIN IMMEDIATE", err)) != FP_ERR_OK ||
        (rc = prepare(s, &s->commit, "COMMIT", err)) != FP_ERR_OK ||
        (rc = sq_exec(s, "PRAGMA journal_mode = WAL", err)) != FP_ERR_OK ||
        (rc = sq_exec(s, "PRAGMA synchronous = FULL", err)) != FP_ERR_OK ||
        (rc = sq_exec(s, "PRAGMA journal_size_limit = " WAL_SIZE_LIMIT, err)) != FP_ERR_OK ||
        (rc = sq_exec(s, "PRAGMA foreign_keys = ON", err)) != FP_ERR_OK ||
        (rc = migrate(s, err)) != FP_ERR_OK ||
        (rc = sq_rev_open(s->db, &s->rev, err)) != FP_ERR_OK)
        goto fail;
    if ((rc = prepare(s, &s->ins_cert,
                      "INSERT INTO certificates (serial, ca_id, profile, subject, sans,"
                      " not_before, not_after, issued_at, der) VALUES (?,?,?,?,?,?,?,?,?)",
                      err)) != FP_ERR_OK ||
        (rc = prepare(s, &s->get_cert,
                      "SELECT " CERT_COLS " FROM certificates WHERE serial = ?", err)) != FP_ERR_OK ||
        (rc = prepare(s, &s->last_audit,
                      "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", err)) != FP_ERR_OK ||
        (rc = prepare(s, &s->ins_audit,
                      "INSERT INTO audit (id, ts, actor, action, object, detail, prev_hash, hash)"
                      " VALUES (?,?,?,?,?,?,?,?)", err)) != FP_ERR_OK ||
        (rc = prepare(s, &s->set_head,
                      "UPDATE meta SET value = CASE key WHEN 'audit_head_id' THEN ?1 ELSE ?2 END"
                      " WHERE key IN ('audit_head_id', 'audit_head_hash')", err)) != FP_ERR_OK)
        goto fail;
    *out = &s->base;
    return FP_ERR_OK;
fail:
    sq_close(&s->base);
    return rc;
}
