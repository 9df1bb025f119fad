/*
 * sqlite_apikeys.c - API keys (table api_keys: only the hash of each
 * secret) and the token list/delete calls of the admin API, in the SQLite
 * backend.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_int.h"

int sq_apikey_put(fp_store *base, const fp_apikey_rec *k, const fp_audit_event *ev,
                  fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    bool found = true;
    int rc, step;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (k->project[0] != '\0' &&
        (rc = sq_project_exists(s, k->project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", k->project);
        goto out;
    }
    if ((rc = sq_prepare(s, &st,
                         "INSERT INTO api_keys (id, project, read_only, hash, created_at,"
                         " revoked_at) VALUES (?,?,?,?,?,0)",
                         err)) != FP_ERR_OK)
        goto out;
    sqlite3_bind_text(st, 1, k->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->project, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, k->read_only ? 1 : 0);
    sqlite3_bind_blob(st, 4, k->hash, FP_APIKEY_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, k->created_at);
    step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT_PRIMARYKEY || step == SQLITE_CONSTRAINT_UNIQUE)
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "API key id %s exists", k->id);
    else if (step != SQLITE_DONE)
        rc = sq_db_err(s, err, "API key insert");
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

static int apikey_row(sqlite3_stmt *st, fp_apikey_rec *out, fp_error *err)
{
    const void *h = sqlite3_column_blob(st, 3);

    memset(out, 0, sizeof(*out));
    sq_col_copy(st, 0, out->id, sizeof(out->id));
    sq_col_copy(st, 1, out->project, sizeof(out->project));
    out->read_only = sqlite3_column_int(st, 2) != 0;
    if (h == NULL || sqlite3_column_bytes(st, 3) != FP_APIKEY_HASH_LEN)
        return fp_err_set(err, FP_ERR_STORE, "API key %s has a malformed hash", out->id);
    memcpy(out->hash, h, FP_APIKEY_HASH_LEN);
    out->created_at = sqlite3_column_int64(st, 4);
    out->revoked_at = sqlite3_column_int64(st, 5);
    return FP_ERR_OK;
}

#define APIKEY_COLS "id, project, read_only, hash, created_at, revoked_at"

int sq_apikey_get(fp_store *base, const char *id, fp_apikey_rec *out, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    memset(out, 0, sizeof(*out));
    /* every API request runs it (bearer auth): kept prepared */
    if ((rc = sq_cached(s, SQ_C_APIKEY_GET, "SELECT " APIKEY_COLS " FROM api_keys WHERE id = ?",
                        &st, err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = apikey_row(st, out, err);
    else if (step == SQLITE_DONE)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no API key %s", id);
    else
        rc = sq_db_err(s, err, "API key lookup");
    sq_cached_done(st);
    return rc;
}

int sq_apikey_list(fp_store *base, const char *project, fp_apikey_cb cb, void *arg,
                   fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = sq_prepare(s, &st,
                         "SELECT " APIKEY_COLS " FROM api_keys"
                         " WHERE ?1 IS NULL OR project = ?1 ORDER BY id",
                         err)) != FP_ERR_OK)
        return rc;
    if (project != NULL)
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_apikey_rec r;
        if ((rc = apikey_row(st, &r, err)) != FP_ERR_OK || (rc = cb(arg, &r)) != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "API key list");
    sqlite3_finalize(st);
    return rc;
}

int sq_apikey_revoke(fp_store *base, const char *id, int64_t when, const fp_audit_event *ev,
                     fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    fp_apikey_rec r;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if ((rc = sq_prepare(s, &st,
                         "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0",
                         err)) != FP_ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, when > 0 ? when : 1);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if ((rc = sq_step_once(s, st, "API key revoke", err)) != FP_ERR_OK)
        goto out;
    if (sqlite3_changes(s->db) != 1) {
        /* absent, or revoked already: tell which */
        if ((rc = sq_apikey_get(base, id, &r, err)) == FP_ERR_OK)
            rc = fp_err_set(err, FP_ERR_STATE, "API key %s is revoked already", id);
    }
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

/* ---- tokens: list and delete (the admin API) ---- */

int sq_token_list(fp_store *base, const char *project, fp_token_cb cb, void *arg,
                  fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = sq_prepare(s, &st,
                         "SELECT id, label, hash, cn_pattern, uses_left, expires_at, created_at,"
                         " project FROM enroll_tokens WHERE project = ? ORDER BY id",
                         err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_token_rec t;
        const void *h = sqlite3_column_blob(st, 2);
        memset(&t, 0, sizeof(t));
        sq_col_copy(st, 0, t.id, sizeof(t.id));
        sq_col_copy(st, 1, t.label, sizeof(t.label));
        if (h != NULL && sqlite3_column_bytes(st, 2) == FP_TOKEN_HASH_LEN)
            memcpy(t.hash, h, FP_TOKEN_HASH_LEN);
        sq_col_copy(st, 3, t.cn_pattern, sizeof(t.cn_pattern));
        t.uses_left = sqlite3_column_int(st, 4);
        t.expires_at = sqlite3_column_int64(st, 5);
        t.created_at = sqlite3_column_int64(st, 6);
        sq_col_copy(st, 7, t.project, sizeof(t.project));
        if ((rc = cb(arg, &t)) != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "token list");
    sqlite3_finalize(st);
    return rc;
}

int sq_token_delete(fp_store *base, const char *project, const char *id,
                    const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if ((rc = sq_prepare(s, &st, "DELETE FROM enroll_tokens WHERE id = ? AND project = ?",
                         err)) != FP_ERR_OK)
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, project, -1, SQLITE_STATIC);
    if ((rc = sq_step_once(s, st, "token delete", err)) == FP_ERR_OK &&
        sqlite3_changes(s->db) != 1)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no token %s", id);
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}
