/*
 * sqlite_pending.c - enrollment requests held for manual approval, in the
 * SQLite backend (table pending_requests).  A retry of the same CSR under
 * the same label of the same project finds the same row.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sqlite_int.h"

#define PENDING_COLS \
    "id, label, csr_hash, csr, subject, actor, status, serial, created_at, decided_at, project"

static int pending_row(sqlite3_stmt *st, fp_pending_rec *r, fp_error *err)
{
    const void *csr = sqlite3_column_blob(st, 3);
    int csr_len = sqlite3_column_bytes(st, 3);
    const unsigned char *serial = sqlite3_column_text(st, 7);

    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(st, 0);
    snprintf(r->label, sizeof(r->label), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(r->csr_hash, sizeof(r->csr_hash), "%s", (const char *)sqlite3_column_text(st, 2));
    r->csr = malloc(csr_len > 0 ? (size_t)csr_len : 1);
    r->subject = sq_col_strdup(st, 4);
    r->actor = sq_col_strdup(st, 5);
    if (r->csr == NULL || r->subject == NULL || r->actor == NULL) {
        fp_pending_rec_clear(r);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    if (csr_len > 0)
        memcpy(r->csr, csr, (size_t)csr_len);
    r->csr_len = (size_t)csr_len;
    r->status = sqlite3_column_int(st, 6);
    snprintf(r->serial, sizeof(r->serial), "%s", serial ? (const char *)serial : "");
    r->created_at = sqlite3_column_int64(st, 8);
    r->decided_at = sqlite3_column_int64(st, 9);
    sq_col_copy(st, 10, r->project, sizeof(r->project));
    return FP_ERR_OK;
}

/* One row by (project a, label b, hash c) when a is non-NULL, else by id n. */
static int pending_query(sqlite_store *s, const char *sql, const char *a, const char *b,
                         const char *c, int64_t n, fp_pending_rec *out, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc, step;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "pending lookup");
    if (a != NULL) {
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(st, 1, n);
    }
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = pending_row(st, out, err);
    else if (step == SQLITE_DONE)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no such pending request");
    else
        rc = sq_db_err(s, err, "pending lookup");
    sqlite3_finalize(st);
    return rc;
}

int sq_pending_find(fp_store *base, const char *project, const char *label,
                    const char *csr_hash, fp_pending_rec *out, fp_error *err)
{
    return pending_query(SQ(base),
                         "SELECT " PENDING_COLS " FROM pending_requests"
                         " WHERE project = ? AND label = ? AND csr_hash = ?", project, label,
                         csr_hash, 0, out, err);
}

int sq_pending_get(fp_store *base, int64_t id, fp_pending_rec *out, fp_error *err)
{
    return pending_query(SQ(base),
                         "SELECT " PENDING_COLS " FROM pending_requests WHERE id = ?", NULL,
                         NULL, NULL, id, out, err);
}

int sq_pending_add(fp_store *base, const fp_pending_rec *r, int64_t *id,
                          const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    *id = 0;
    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO pending_requests (label, csr_hash, csr, subject, actor,"
                           " created_at, project) VALUES (?,?,?,?,?,?,?)"
                           " ON CONFLICT (project, label, csr_hash) DO NOTHING",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "pending insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, r->label, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->csr_hash, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, r->csr, (int)r->csr_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->subject ? r->subject : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->actor ? r->actor : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, fp_now());
    sqlite3_bind_text(st, 7, r->project, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", r->project);
        goto out;
    }
    if (step != SQLITE_DONE) {
        rc = sq_db_err(s, err, "pending insert");
        goto out;
    }
    if (sqlite3_changes(s->db) == 1) {
        *id = sqlite3_last_insert_rowid(s->db);
        if (ev != NULL) {
            char obj[32];
            fp_audit_event e = *ev;
            snprintf(obj, sizeof(obj), "pending:%" PRId64, *id);
            e.object = obj;
            if ((rc = sq_audit_append_locked(s, &e, err)) != FP_ERR_OK)
                goto out;
        }
    }
    rc = sq_commit(s, err);
    if (rc == FP_ERR_OK && *id == 0) {
        fp_pending_rec cur;
        if ((rc = sq_pending_find(base, r->project, r->label, r->csr_hash, &cur, err)) ==
            FP_ERR_OK) {
            *id = cur.id;
            fp_pending_rec_clear(&cur);
        }
    }
out:
    sqlite3_finalize(st);
    if (rc != FP_ERR_OK)
        sq_rollback(s);
    return rc;
}

int sq_pending_list(fp_store *base, const char *project, int status, fp_pending_cb cb,
                    void *arg, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    if (sqlite3_prepare_v2(s->db,
                           "SELECT " PENDING_COLS " FROM pending_requests"
                           " WHERE (?1 < 0 OR status = ?1) AND (?2 IS NULL OR project = ?2)"
                           " ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "pending list");
    sqlite3_bind_int(st, 1, status);
    if (project != NULL)
        sqlite3_bind_text(st, 2, project, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_pending_rec r;
        if ((rc = pending_row(st, &r, err)) != FP_ERR_OK)
            break;
        rc = cb(arg, &r);
        fp_pending_rec_clear(&r);
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "pending list");
    sqlite3_finalize(st);
    return rc;
}

int sq_pending_decide(fp_store *base, int64_t id, int status, const char *serial,
                             const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if (status != FP_PENDING_ISSUED && status != FP_PENDING_REJECTED)
        return fp_err_set(err, FP_ERR_ARG, "bad pending status %d", status);
    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE pending_requests SET status = ?, serial = ?, decided_at = ?"
                           " WHERE id = ? AND status = 0", -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "pending update");
        goto out;
    }
    sqlite3_bind_int(st, 1, status);
    if (serial)
        sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, fp_now());
    sqlite3_bind_int64(st, 4, id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_db_err(s, err, "pending update");
        goto out;
    }
    if (sqlite3_changes(s->db) != 1) {
        rc = fp_err_set(err, FP_ERR_STATE, "request %" PRId64 " is not waiting for a decision", id);
        goto out;
    }
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

int sq_pending_issue(fp_store *base, int64_t id, const fp_cert_rec *rec,
                     const fp_audit_event *cert_ev, const fp_audit_event *decide_ev,
                     fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE pending_requests SET status = 1, serial = ?, decided_at = ?"
                           " WHERE id = ? AND status = 0 AND project = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "pending update");
        goto out;
    }
    sqlite3_bind_text(st, 1, rec->serial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, fp_now());
    sqlite3_bind_int64(st, 3, id);
    sqlite3_bind_text(st, 4, rec->project, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_db_err(s, err, "pending update");
        goto out;
    }
    if (sqlite3_changes(s->db) != 1) {
        rc = fp_err_set(err, FP_ERR_STATE, "request %" PRId64 " of project '%s' is not waiting "
                                           "for a decision", id, rec->project);
        goto out;
    }
    if ((rc = sq_cert_insert_locked(s, rec, err)) != FP_ERR_OK ||
        (cert_ev != NULL && (rc = sq_audit_append_locked(s, cert_ev, err)) != FP_ERR_OK))
        goto out;
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, decide_ev, rc, err);
}
