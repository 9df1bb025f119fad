/*
 * sqlite_tokens.c - enrollment tokens in the SQLite backend (table
 * enroll_tokens: only the hash of each secret).  A token belongs to one
 * project; every lookup and spend is scoped by it.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sqlite_int.h"

int sq_token_put(fp_store *base, const fp_token_rec *t, const fp_audit_event *ev,
                        fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO enroll_tokens (id, label, hash, cn_pattern, uses_left,"
                           " expires_at, created_at, project) VALUES (?,?,?,?,?,?,?,?)",
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
    sqlite3_bind_text(st, 8, t->project, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT_PRIMARYKEY || step == SQLITE_CONSTRAINT_UNIQUE) {
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "token id %s exists", t->id);
        goto out;
    }
    if (step == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", t->project);
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

/* Token id of project; one of another project is not found, exactly as an
 * absent one (the message does not tell them apart either). */
static int token_row(sqlite_store *s, const char *project, const char *id, fp_token_rec *out,
                     fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, label, hash, cn_pattern, uses_left, expires_at, created_at,"
                           " project FROM enroll_tokens WHERE id = ? AND project = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "token lookup");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, project, -1, SQLITE_STATIC);
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
        sq_col_copy(st, 7, out->project, sizeof(out->project));
    } else if (step == SQLITE_DONE) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no token %s", id);
    } else {
        rc = sq_db_err(s, err, "token lookup");
    }
    sqlite3_finalize(st);
    return rc;
}

int sq_token_get(fp_store *base, const char *project, const char *id, fp_token_rec *out,
                 fp_error *err)
{
    return token_row(SQ(base), project, id, out, err);
}

int sq_token_spend_locked(sqlite_store *s, const char *project, const char *id, int64_t now,
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
                           " WHERE id = ?1 AND project = ?3 AND uses_left > 0"
                           " AND (expires_at = 0 OR ?2 < expires_at)",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->spend_token, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "token update");
    st = s->spend_token;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, project, -1, SQLITE_STATIC);
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
    if ((rc = token_row(s, project, id, &t, err)) != FP_ERR_OK)
        return rc; /* FP_ERR_NOT_FOUND, or the store failed */
    if (t.uses_left <= 0)
        return fp_err_set(err, FP_ERR_STATE, "token %s is used up", id);
    return fp_err_set(err, FP_ERR_STATE, "token %s has expired", id);
}

int sq_token_use(fp_store *base, const char *project, const char *id, int64_t now,
                 const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    rc = sq_token_spend_locked(s, project, id, now, ev, err);
    return sq_finish_write(s, NULL, rc, err); /* ev is in already */
}
