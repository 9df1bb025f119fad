/*
 * sqlite_est.c - EST enrollment state in the SQLite backend: one-time
 * enrollment tokens (only their hash is stored) and CSRs held for manual
 * approval.  Tables come from migration 2 in store_sqlite.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sqlite_int.h"

/* ---- enrollment tokens ---- */

int sq_token_put(fp_store *base, const fp_token_rec *t, const fp_audit_event *ev,
                        fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO enroll_tokens (id, label, hash, cn_pattern, uses_left,"
                           " expires_at, created_at) VALUES (?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "token insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->label, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, t->hash, FP_TOKEN_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->cn_pattern, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, t->uses_left);
    sqlite3_bind_int64(st, 6, t->expires_at);
    sqlite3_bind_int64(st, 7, t->created_at);
    step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT_PRIMARYKEY || step == SQLITE_CONSTRAINT_UNIQUE) {
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "token id %s exists", t->id);
        goto out;
    }
    if (step != SQLITE_DONE) {
        rc = sq_db_err(s, err, "token insert");
        goto out;
    }
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

static int token_row(sqlite_store *s, const char *id, fp_token_rec *out, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, label, hash, cn_pattern, uses_left, expires_at, created_at"
                           " FROM enroll_tokens WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "token lookup");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const void *h = sqlite3_column_blob(st, 2);
        snprintf(out->id, sizeof(out->id), "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(out->label, sizeof(out->label), "%s", (const char *)sqlite3_column_text(st, 1));
        if (h == NULL || sqlite3_column_bytes(st, 2) != FP_TOKEN_HASH_LEN)
            rc = fp_err_set(err, FP_ERR_STORE, "token %s has a malformed hash", id);
        else
            memcpy(out->hash, h, FP_TOKEN_HASH_LEN);
        snprintf(out->cn_pattern, sizeof(out->cn_pattern), "%s",
                 (const char *)sqlite3_column_text(st, 3));
        out->uses_left = sqlite3_column_int(st, 4);
        out->expires_at = sqlite3_column_int64(st, 5);
        out->created_at = sqlite3_column_int64(st, 6);
    } else if (step == SQLITE_DONE) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no token %s", id);
    } else {
        rc = sq_db_err(s, err, "token lookup");
    }
    sqlite3_finalize(st);
    return rc;
}

int sq_token_get(fp_store *base, const char *id, fp_token_rec *out, fp_error *err)
{
    return token_row((sqlite_store *)(void *)base, id, out, err);
}

int sq_token_spend_locked(sqlite_store *s, const char *id, int64_t now,
                          const fp_audit_event *ev, fp_error *err)
{
    sqlite3_stmt *st;
    fp_token_rec t;
    int rc = FP_ERR_OK;

    /* one conditional UPDATE decides: two spends of the last use, in one
     * batch or from two processes, cannot both change the row */
    if (s->spend_token == NULL &&
        sqlite3_prepare_v3(s->db,
                           "UPDATE enroll_tokens SET uses_left = uses_left - 1"
                           " WHERE id = ?1 AND uses_left > 0 AND (expires_at = 0 OR ?2 < expires_at)",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->spend_token, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "token update");
    st = s->spend_token;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "token update");
    else if (sqlite3_changes(s->db) != 1)
        rc = FP_ERR_STATE; /* refused; the reason is looked up below */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == FP_ERR_OK)
        return ev != NULL ? sq_audit_append_locked(s, ev, err) : FP_ERR_OK;
    if (rc != FP_ERR_STATE)
        return rc;
    if ((rc = token_row(s, id, &t, err)) != FP_ERR_OK)
        return rc; /* FP_ERR_NOT_FOUND, or the store failed */
    if (t.uses_left <= 0)
        return fp_err_set(err, FP_ERR_STATE, "token %s is used up", id);
    return fp_err_set(err, FP_ERR_STATE, "token %s has expired", id);
}

int sq_token_use(fp_store *base, const char *id, int64_t now,
                 const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    rc = sq_token_spend_locked(s, id, now, ev, err);
    return sq_finish_write(s, NULL, rc, err); /* ev is in already */
}

/* ---- pending requests ---- */

#define PENDING_COLS \
    "id, label, csr_hash, csr, subject, actor, status, serial, created_at, decided_at"

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
    return FP_ERR_OK;
}

static int pending_query(sqlite_store *s, const char *sql, const char *a, const char *b,
                         int64_t n, fp_pending_rec *out, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc, step;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "pending lookup");
    if (a != NULL) {
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
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

int sq_pending_find(fp_store *base, const char *label, const char *csr_hash,
                           fp_pending_rec *out, fp_error *err)
{
    return pending_query((sqlite_store *)(void *)base,
                         "SELECT " PENDING_COLS " FROM pending_requests"
                         " WHERE label = ? AND csr_hash = ?", label, csr_hash, 0, out, err);
}

int sq_pending_get(fp_store *base, int64_t id, fp_pending_rec *out, fp_error *err)
{
    return pending_query((sqlite_store *)(void *)base,
                         "SELECT " PENDING_COLS " FROM pending_requests WHERE id = ?", NULL,
                         NULL, id, out, err);
}

int sq_pending_add(fp_store *base, const fp_pending_rec *r, int64_t *id,
                          const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    *id = 0;
    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO pending_requests (label, csr_hash, csr, subject, actor,"
                           " created_at) VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
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
    if (sqlite3_step(st) != SQLITE_DONE) {
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
        if ((rc = sq_pending_find(base, r->label, r->csr_hash, &cur, err)) == FP_ERR_OK) {
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

int sq_pending_list(fp_store *base, int status, fp_pending_cb cb, void *arg,
                           fp_error *err)
{
    sqlite_store *s = (sqlite_store *)(void *)base;
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    if (sqlite3_prepare_v2(s->db,
                           "SELECT " PENDING_COLS " FROM pending_requests"
                           " WHERE (?1 < 0 OR status = ?1) ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "pending list");
    sqlite3_bind_int(st, 1, status);
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
    sqlite_store *s = (sqlite_store *)(void *)base;
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

