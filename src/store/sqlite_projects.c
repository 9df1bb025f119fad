/*
 * sqlite_projects.c - projects and CAs in the SQLite backend (tables
 * projects and ca, migration 4).  The shared root's row has project NULL
 * (the API's ""), so that the foreign key to projects holds for every row.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sqlite_int.h"

/* ---- projects ---- */

int sq_project_exists(sqlite_store *s, const char *name, bool *found, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    *found = false;
    /* every first contact of a device runs it: kept prepared */
    if ((rc = sq_cached(s, SQ_C_PROJECT_EXISTS, "SELECT 1 FROM projects WHERE name = ?", &st,
                        err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *found = true;
    else if (step != SQLITE_DONE)
        rc = sq_db_err(s, err, "project lookup");
    sq_cached_done(st);
    return rc;
}

int sq_project_put(fp_store *base, const char *name, const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO projects (name, created_at) VALUES (?, ?)", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "project insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, fp_now());
    step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT_PRIMARYKEY || step == SQLITE_CONSTRAINT_UNIQUE)
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "project '%s' exists", name);
    else if (step != SQLITE_DONE)
        rc = sq_db_err(s, err, "project insert");
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

int sq_project_get(fp_store *base, const char *name, fp_project_rec *out, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    memset(out, 0, sizeof(*out));
    /* every API request on a project runs it: kept prepared */
    if ((rc = sq_cached(s, SQ_C_PROJECT_GET, "SELECT name, created_at FROM projects WHERE name = ?",
                        &st, err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        sq_col_copy(st, 0, out->name, sizeof(out->name));
        out->created_at = sqlite3_column_int64(st, 1);
    } else if (step == SQLITE_DONE) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", name);
    } else {
        rc = sq_db_err(s, err, "project lookup");
    }
    sq_cached_done(st);
    return rc;
}

int sq_project_list(fp_store *base, fp_project_cb cb, void *arg, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    if (sqlite3_prepare_v2(s->db, "SELECT name, created_at FROM projects ORDER BY name", -1,
                           &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "project list");
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_project_rec p;
        memset(&p, 0, sizeof(p));
        sq_col_copy(st, 0, p.name, sizeof(p.name));
        p.created_at = sqlite3_column_int64(st, 1);
        if ((rc = cb(arg, &p)) != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "project list");
    sqlite3_finalize(st);
    return rc;
}

/* ---- CAs ---- */

#define CA_COLS \
    "id, coalesce(project, ''), coalesce(parent_id, ''), kind, key_ref, active, subject," \
    " not_before, not_after, created_at, der"

static int ca_row(sqlite3_stmt *st, fp_ca_rec *r, fp_error *err)
{
    const void *der = sqlite3_column_blob(st, 10);
    int der_len = sqlite3_column_bytes(st, 10);

    memset(r, 0, sizeof(*r));
    sq_col_copy(st, 0, r->id, sizeof(r->id));
    sq_col_copy(st, 1, r->project, sizeof(r->project));
    sq_col_copy(st, 2, r->parent_id, sizeof(r->parent_id));
    r->kind = sqlite3_column_int(st, 3);
    sq_col_copy(st, 4, r->key_ref, sizeof(r->key_ref));
    r->active = sqlite3_column_int(st, 5) != 0;
    r->subject = sq_col_strdup(st, 6);
    r->not_before = sqlite3_column_int64(st, 7);
    r->not_after = sqlite3_column_int64(st, 8);
    r->created_at = sqlite3_column_int64(st, 9);
    r->der = malloc(der_len > 0 ? (size_t)der_len : 1);
    if (r->subject == NULL || r->der == NULL) {
        fp_ca_rec_clear(r);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    if (der_len > 0)
        memcpy(r->der, der, (size_t)der_len);
    r->der_len = (size_t)der_len;
    return FP_ERR_OK;
}

/* Inside the caller's transaction: FP_ERR_OK and *same when the row of id
 * exists with this DER, FP_ERR_DUPLICATE when it exists with another,
 * FP_ERR_NOT_FOUND when there is none. */
static int ca_existing(sqlite_store *s, const fp_ca_rec *r, bool *same, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc, step;

    *same = false;
    if (sqlite3_prepare_v2(s->db, "SELECT der FROM ca WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "CA lookup");
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const void *der = sqlite3_column_blob(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        *same = len == r->der_len && der != NULL && memcmp(der, r->der, len) == 0;
        rc = *same ? FP_ERR_OK
                   : fp_err_set(err, FP_ERR_DUPLICATE,
                                "a different CA is already recorded with id '%s'", r->id);
    } else if (step == SQLITE_DONE) {
        rc = FP_ERR_NOT_FOUND;
    } else {
        rc = sq_db_err(s, err, "CA lookup");
    }
    sqlite3_finalize(st);
    return rc;
}

/* Deactivate every CA of project but keep_id, inside the caller's transaction. */
static int ca_deactivate_others(sqlite_store *s, const char *project, const char *keep_id,
                                fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(s->db,
                           "UPDATE ca SET active = 0 WHERE project = ? AND id != ? AND active = 1",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "CA update");
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, keep_id, -1, SQLITE_STATIC);
    rc = sq_step_once(s, st, "CA update", err);
    sqlite3_finalize(st);
    return rc;
}

int sq_ca_add(fp_store *base, const fp_ca_rec *r, const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    bool same = false, found = true;
    int rc, step;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    rc = ca_existing(s, r, &same, err);
    if (rc == FP_ERR_OK && same) {
        sq_rollback(s); /* recorded already: nothing to write */
        return FP_ERR_OK;
    }
    if (rc != FP_ERR_NOT_FOUND)
        goto out;
    rc = FP_ERR_OK;
    if (r->project[0] != '\0' && (rc = sq_project_exists(s, r->project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", r->project);
        goto out;
    }
    if (r->active && (rc = ca_deactivate_others(s, r->project, r->id, err)) != FP_ERR_OK)
        goto out;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO ca (id, project, parent_id, kind, key_ref, active, subject,"
                           " not_before, not_after, created_at, der)"
                           " VALUES (?,?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "CA insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    if (r->project[0] != '\0')
        sqlite3_bind_text(st, 2, r->project, -1, SQLITE_STATIC);
    if (r->parent_id[0] != '\0')
        sqlite3_bind_text(st, 3, r->parent_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, r->kind);
    sqlite3_bind_text(st, 5, r->key_ref, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, r->active ? 1 : 0);
    sqlite3_bind_text(st, 7, r->subject ? r->subject : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, r->not_before);
    sqlite3_bind_int64(st, 9, r->not_after);
    sqlite3_bind_int64(st, 10, fp_now());
    sqlite3_bind_blob(st, 11, r->der, (int)r->der_len, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step != SQLITE_DONE)
        rc = sq_db_err(s, err, "CA insert");
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

int sq_ca_get(fp_store *base, const char *id, fp_ca_rec *out, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(s->db, "SELECT " CA_COLS " FROM ca WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return sq_db_err(s, err, "CA lookup");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = ca_row(st, out, err);
    else if (step == SQLITE_DONE)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no CA '%s'", id);
    else
        rc = sq_db_err(s, err, "CA lookup");
    sqlite3_finalize(st);
    return rc;
}

int sq_ca_list(fp_store *base, const char *project, int kind, fp_ca_cb cb, void *arg,
               fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    /* ?1 NULL: any project; '': the rows without one */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " CA_COLS " FROM ca WHERE"
                           " (?1 IS NULL OR coalesce(project, '') = ?1)"
                           " AND (?2 < 0 OR kind = ?2) ORDER BY created_at, id",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "CA list");
    if (project != NULL)
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, kind);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_ca_rec r;
        if ((rc = ca_row(st, &r, err)) != FP_ERR_OK)
            break;
        rc = cb(arg, &r);
        fp_ca_rec_clear(&r);
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "CA list");
    sqlite3_finalize(st);
    return rc;
}

int sq_ca_activate(fp_store *base, const char *id, const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    char project[FP_PROJECT_MAX] = "";
    int rc, step, kind = -1;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db, "SELECT kind, coalesce(project, '') FROM ca WHERE id = ?", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "CA lookup");
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        kind = sqlite3_column_int(st, 0);
        sq_col_copy(st, 1, project, sizeof(project));
    } else {
        rc = step == SQLITE_DONE ? fp_err_set(err, FP_ERR_NOT_FOUND, "no CA '%s'", id)
                                 : sq_db_err(s, err, "CA lookup");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (kind != FP_CA_ISSUING || project[0] == '\0') {
        rc = fp_err_set(err, FP_ERR_STATE, "CA '%s' is not an issuing CA", id);
        goto out;
    }
    /* two statements: the unique index on the active CA of a project is
     * checked row by row */
    if ((rc = ca_deactivate_others(s, project, id, err)) != FP_ERR_OK)
        goto out;
    if (sqlite3_prepare_v2(s->db, "UPDATE ca SET active = 1 WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = sq_db_err(s, err, "CA update");
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sq_step_once(s, st, "CA update", err);
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

int sq_ca_set_cert(fp_store *base, const char *id, const unsigned char *der, size_t der_len,
                   const char *subject, int64_t not_before, int64_t not_after,
                   const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE ca SET der = ?, subject = ?, not_before = ?, not_after = ?"
                           " WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "CA update");
        goto out;
    }
    sqlite3_bind_blob(st, 1, der, (int)der_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, not_before);
    sqlite3_bind_int64(st, 4, not_after);
    sqlite3_bind_text(st, 5, id, -1, SQLITE_STATIC);
    if ((rc = sq_step_once(s, st, "CA update", err)) == FP_ERR_OK &&
        sqlite3_changes(s->db) == 0)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no CA '%s'", id);
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}
