/*
 * sqlite_rev.c - revocation support of the SQLite backend; see sqlite_rev.h.
 *
 * Schema objects (created with IF NOT EXISTS, so any store gains them on
 * open without a numbered migration):
 *   cert_status_log(seq, serial, ca_id, ts): one row per status change,
 *     written in the transaction that changes the status.  seq is an
 *     AUTOINCREMENT key, so it never goes back even after pruning.
 *   cert_revoked_crl: a partial index on (ca_id, serial, revoked_at,
 *     reason, status) WHERE status = 1.  It covers the CRL query (status
 *     must be in it too, or SQLite visits the table to re-check the
 *     condition), which therefore walks only revoked rows, already in serial
 *     order, without touching the table (no DER blobs read, no sort, flat
 *     memory).  An earlier draft's index without status is dropped.
 * CRL numbers live in the meta table under "crl_number:<ca id>".
 */
#define _POSIX_C_SOURCE 200809L
#include "sqlite_rev.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

struct sq_rev {
    sqlite3 *db; /* borrowed from the store handle */
    sqlite3_stmt *status, *log_ins, *log_prune, *seq, *changes, *revoked, *crlnum;
};

static const char rev_schema[] =
    "CREATE TABLE IF NOT EXISTS cert_status_log ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  serial TEXT NOT NULL, ca_id TEXT NOT NULL, ts INTEGER NOT NULL);"
    "DROP INDEX IF EXISTS certificates_revoked;"
    "CREATE INDEX IF NOT EXISTS cert_revoked_crl"
    "  ON certificates(ca_id, serial, revoked_at, reason, status) WHERE status = 1;";

static int rev_err(sq_rev *r, fp_error *err, const char *what)
{
    return fp_err_set(err, FP_ERR_STORE, "%s: %s", what, sqlite3_errmsg(r->db));
}

static int have_schema(sqlite3 *db, int *have)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;

    *have = 0;
    rc = sqlite3_prepare_v2(db,
                            "SELECT count(*) FROM sqlite_master WHERE name IN"
                            " ('cert_status_log', 'cert_revoked_crl')",
                            -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        *have = sqlite3_column_int(st, 0) == 2;
    sqlite3_finalize(st);
    return rc;
}

static int ensure_schema(sqlite3 *db, fp_error *err)
{
    char *msg = NULL;
    int have = 0;

    if (have_schema(db, &have) != SQLITE_OK)
        return fp_err_set(err, FP_ERR_STORE, "schema check: %s", sqlite3_errmsg(db));
    if (have)
        return FP_ERR_OK; /* the common case: no write lock taken on open */
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, rev_schema, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
        int rc = fp_err_set(err, FP_ERR_STORE, "revocation schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return FP_ERR_OK;
}

static int prep(sq_rev *r, sqlite3_stmt **st, const char *sql, fp_error *err)
{
    if (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return rev_err(r, err, "prepare");
    return FP_ERR_OK;
}

int sq_rev_open(sqlite3 *db, sq_rev **out, fp_error *err)
{
    sq_rev *r = NULL;
    char prune[160];
    int rc;

    *out = NULL;
    if ((rc = ensure_schema(db, err)) != FP_ERR_OK)
        return rc;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    r->db = db;
    snprintf(prune, sizeof(prune), "DELETE FROM cert_status_log WHERE seq <= ?1 - %d",
             FP_STORE_CHANGES_KEEP);
    if ((rc = prep(r, &r->status,
                   "SELECT ca_id, status, revoked_at, reason, not_after, not_before"
                   " FROM certificates WHERE serial = ?", err)) != FP_ERR_OK ||
        (rc = prep(r, &r->log_ins,
                   "INSERT INTO cert_status_log (serial, ca_id, ts) VALUES (?,?,?)",
                   err)) != FP_ERR_OK ||
        (rc = prep(r, &r->log_prune, prune, err)) != FP_ERR_OK ||
        (rc = prep(r, &r->seq, "SELECT coalesce(max(seq), 0) FROM cert_status_log",
                   err)) != FP_ERR_OK ||
        (rc = prep(r, &r->changes,
                   "SELECT seq, serial, ca_id FROM cert_status_log WHERE seq > ?"
                   " ORDER BY seq LIMIT ?", err)) != FP_ERR_OK ||
        (rc = prep(r, &r->revoked,
                   "SELECT serial, revoked_at, reason FROM certificates"
                   " INDEXED BY cert_revoked_crl"
                   " WHERE status = 1 AND ca_id = ? ORDER BY serial", err)) != FP_ERR_OK ||
        (rc = prep(r, &r->crlnum,
                   "INSERT INTO meta (key, value) VALUES ('crl_number:' || ?1, '1')"
                   " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                   " RETURNING CAST(value AS INTEGER)", err)) != FP_ERR_OK) {
        sq_rev_close(r);
        return rc;
    }
    *out = r;
    return FP_ERR_OK;
}

void sq_rev_close(sq_rev *r)
{
    if (r == NULL)
        return;
    sqlite3_finalize(r->status);
    sqlite3_finalize(r->log_ins);
    sqlite3_finalize(r->log_prune);
    sqlite3_finalize(r->seq);
    sqlite3_finalize(r->changes);
    sqlite3_finalize(r->revoked);
    sqlite3_finalize(r->crlnum);
    free(r);
}

int sq_rev_log_change(sq_rev *r, const char *serial, const char *ca_id, fp_error *err)
{
    sqlite3_stmt *st = r->log_ins;
    int rc = FP_ERR_OK;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ca_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, fp_now());
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = rev_err(r, err, "change log insert");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != FP_ERR_OK)
        return rc;
    st = r->log_prune;
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(r->db));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = rev_err(r, err, "change log prune");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int sq_rev_cert_status(sq_rev *r, const char *serial, fp_cert_status_rec *out,
                       fp_error *err)
{
    sqlite3_stmt *st = r->status;
    int rc = FP_ERR_OK, step;

    memset(out, 0, sizeof(*out));
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const unsigned char *ca = sqlite3_column_text(st, 0);
        snprintf(out->ca_id, sizeof(out->ca_id), "%s", ca ? (const char *)ca : "");
        out->status = sqlite3_column_int(st, 1);
        out->revoked_at = sqlite3_column_int64(st, 2);
        out->reason = sqlite3_column_int(st, 3);
        out->not_after = sqlite3_column_int64(st, 4);
        out->not_before = sqlite3_column_int64(st, 5);
    } else if (step == SQLITE_DONE) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
    } else {
        rc = rev_err(r, err, "status lookup");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int sq_rev_revoked_iter(sq_rev *r, const char *ca_id, fp_revoked_cb cb, void *arg,
                        fp_error *err)
{
    sqlite3_stmt *st = r->revoked;
    int rc = FP_ERR_OK, step;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, ca_id, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *serial = sqlite3_column_text(st, 0);
        if (serial == NULL) {
            rc = fp_err_set(err, FP_ERR_STORE, "revoked row without serial");
            break;
        }
        rc = cb(arg, (const char *)serial, sqlite3_column_int64(st, 1),
                sqlite3_column_int(st, 2));
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = rev_err(r, err, "revoked certificates");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int sq_rev_crl_number_next(sq_rev *r, const char *ca_id, int64_t *out, fp_error *err)
{
    sqlite3_stmt *st = r->crlnum;
    int rc = FP_ERR_OK;

    *out = 0;
    if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return rev_err(r, err, "begin");
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, ca_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = rev_err(r, err, "CRL number");
    /* finish the statement before COMMIT (RETURNING holds it open) */
    while (rc == FP_ERR_OK && sqlite3_step(st) == SQLITE_ROW)
        ;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == FP_ERR_OK && *out < 1)
        rc = fp_err_set(err, FP_ERR_STORE, "CRL number of %s is corrupt", ca_id);
    if (rc == FP_ERR_OK && sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = rev_err(r, err, "commit");
    if (rc != FP_ERR_OK && !sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int sq_rev_status_seq(sq_rev *r, int64_t *seq, fp_error *err)
{
    sqlite3_stmt *st = r->seq;
    int rc = FP_ERR_OK;

    *seq = 0;
    sqlite3_reset(st);
    if (sqlite3_step(st) == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    else
        rc = rev_err(r, err, "status sequence");
    sqlite3_reset(st);
    return rc;
}

int sq_rev_status_changes(sq_rev *r, int64_t after, int max, fp_change_cb cb,
                          void *arg, fp_error *err)
{
    sqlite3_stmt *st = r->changes;
    int rc = FP_ERR_OK, step;

    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, max > 0 ? max : 1);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *serial = sqlite3_column_text(st, 1);
        const unsigned char *ca = sqlite3_column_text(st, 2);
        rc = cb(arg, sqlite3_column_int64(st, 0), serial ? (const char *)serial : "",
                ca ? (const char *)ca : "");
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = rev_err(r, err, "status changes");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}
