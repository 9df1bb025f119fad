/*
 * pg_projects.c - projects and CAs in the PostgreSQL backend (tables
 * projects and ca, migration 4).  The shared root's row has project NULL
 * (the API's ""), so that the foreign key to projects holds for every row.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "pg_int.h"

#define UNIQUE_VIOLATION "23505"

int pg_project_put(fp_store *base, const char *name, const fp_audit_event *ev, fp_error *err)
{
    static const char sql[] = "INSERT INTO projects (name, created_at) VALUES ($1, $2)";
    pg_store *s = PG(base);
    pg_params p = {0};
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, name);
    pp_i64(&p, fp_now());
    rc = pg_cmd(s, sql, &p, "project insert", NULL, err);
    if (rc != FP_ERR_OK && pg_failed_with(s, UNIQUE_VIOLATION))
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "project '%s' exists", name);
    return pg_finish_write(s, ev, rc, err);
}

int pg_project_get(fp_store *base, const char *name, fp_project_rec *out, fp_error *err)
{
    static const char sql[] = "SELECT name, created_at FROM projects WHERE name = $1";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    memset(out, 0, sizeof(*out));
    pp_str(&p, name);
    if ((res = pg_q(s, sql, &p, "project lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1) {
        pg_copy(res, 0, 0, out->name, sizeof(out->name));
        out->created_at = pg_i64(res, 0, 1);
    } else {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", name);
    }
    PQclear(res);
    return rc;
}

int pg_project_list(fp_store *base, fp_project_cb cb, void *arg, fp_error *err)
{
    static const char sql[] = "SELECT name, created_at FROM projects ORDER BY name";
    pg_store *s = PG(base);
    PGresult *res;
    int rc = FP_ERR_OK;

    if ((res = pg_q(s, sql, NULL, "project list", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++) {
        fp_project_rec pr;
        memset(&pr, 0, sizeof(pr));
        pg_copy(res, i, 0, pr.name, sizeof(pr.name));
        pr.created_at = pg_i64(res, i, 1);
        rc = cb(arg, &pr);
    }
    PQclear(res);
    return rc;
}

/* ---- CAs ---- */

#define CA_COLS                                                                            \
    "id, coalesce(project, ''), coalesce(parent_id, ''), kind, key_ref, active::int, subject," \
    " not_before, not_after, created_at, der"

static int ca_row(const PGresult *res, int i, fp_ca_rec *r, fp_error *err)
{
    memset(r, 0, sizeof(*r));
    pg_copy(res, i, 0, r->id, sizeof(r->id));
    pg_copy(res, i, 1, r->project, sizeof(r->project));
    pg_copy(res, i, 2, r->parent_id, sizeof(r->parent_id));
    r->kind = (int)pg_i64(res, i, 3);
    pg_copy(res, i, 4, r->key_ref, sizeof(r->key_ref));
    r->active = pg_i64(res, i, 5) != 0;
    r->subject = pg_strdup(res, i, 6);
    r->not_before = pg_i64(res, i, 7);
    r->not_after = pg_i64(res, i, 8);
    r->created_at = pg_i64(res, i, 9);
    r->der = pg_bytea(res, i, 10, &r->der_len);
    if (r->subject == NULL || r->der == NULL) {
        fp_ca_rec_clear(r);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    return FP_ERR_OK;
}

/* Deactivate every CA of project but keep_id, inside the caller's transaction. */
static int ca_deactivate_others(pg_store *s, const char *project, const char *keep_id,
                                fp_error *err)
{
    static const char sql[] =
        "UPDATE ca SET active = false WHERE project = $1 AND id <> $2 AND active";
    pg_params p = {0};

    pp_str(&p, project);
    pp_str(&p, keep_id);
    return pg_cmd(s, sql, &p, "CA update", NULL, err);
}

int pg_ca_add(fp_store *base, const fp_ca_rec *r, const fp_audit_event *ev, fp_error *err)
{
    static const char existing[] = "SELECT der FROM ca WHERE id = $1";
    static const char ins[] =
        "INSERT INTO ca (id, project, parent_id, kind, key_ref, active, subject, not_before,"
        " not_after, created_at, der) VALUES ($1, $2, $3, $4, $5, $6::int::boolean, $7, $8, $9,"
        " $10, $11)";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    bool found = true;
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, r->id);
    if ((res = pg_q(s, existing, &p, "CA lookup", err)) == NULL) {
        rc = s->last_rc;
        goto out;
    }
    if (PQntuples(res) == 1) {
        size_t len = 0;
        unsigned char *der = pg_bytea(res, 0, 0, &len);
        bool same = der != NULL && len == r->der_len && memcmp(der, r->der, len) == 0;
        free(der);
        PQclear(res);
        if (same) {
            pg_rollback(s); /* recorded already: nothing to write */
            return FP_ERR_OK;
        }
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "a different CA is already recorded with id '%s'",
                        r->id);
        goto out;
    }
    PQclear(res);
    if (r->project[0] != '\0' && (rc = pg_project_exists(s, r->project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", r->project);
        goto out;
    }
    if (r->active && (rc = ca_deactivate_others(s, r->project, r->id, err)) != FP_ERR_OK)
        goto out;
    memset(&p, 0, sizeof(p));
    pp_str(&p, r->id);
    pp_str(&p, r->project[0] ? r->project : NULL);
    pp_str(&p, r->parent_id[0] ? r->parent_id : NULL);
    pp_i64(&p, r->kind);
    pp_str(&p, r->key_ref);
    pp_i64(&p, r->active ? 1 : 0);
    pp_str(&p, r->subject ? r->subject : "");
    pp_i64(&p, r->not_before);
    pp_i64(&p, r->not_after);
    pp_i64(&p, fp_now());
    pp_bytes(&p, r->der, r->der_len);
    rc = pg_cmd(s, ins, &p, "CA insert", NULL, err);
    if (rc != FP_ERR_OK && pg_failed_with(s, UNIQUE_VIOLATION))
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "a different CA is already recorded with id '%s'",
                        r->id);
out:
    return pg_finish_write(s, ev, rc, err);
}

int pg_ca_get(fp_store *base, const char *id, fp_ca_rec *out, fp_error *err)
{
    static const char sql[] = "SELECT " CA_COLS " FROM ca WHERE id = $1";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc;

    memset(out, 0, sizeof(*out));
    pp_str(&p, id);
    if ((res = pg_q(s, sql, &p, "CA lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1)
        rc = ca_row(res, 0, out, err);
    else
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no CA '%s'", id);
    PQclear(res);
    return rc;
}

int pg_ca_list(fp_store *base, const char *project, int kind, fp_ca_cb cb, void *arg,
               fp_error *err)
{
    /* $1 NULL: any project; '': the rows without one */
    static const char sql[] = "SELECT " CA_COLS " FROM ca WHERE"
                              " ($1::text IS NULL OR coalesce(project, '') = $1)"
                              " AND ($2::int < 0 OR kind = $2) ORDER BY created_at, id";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_str(&p, project);
    pp_i64(&p, kind);
    if ((res = pg_q(s, sql, &p, "CA list", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++) {
        fp_ca_rec r;
        if ((rc = ca_row(res, i, &r, err)) != FP_ERR_OK)
            break;
        rc = cb(arg, &r);
        fp_ca_rec_clear(&r);
    }
    PQclear(res);
    return rc;
}

int pg_ca_activate(fp_store *base, const char *id, const fp_audit_event *ev, fp_error *err)
{
    static const char sel[] = "SELECT kind, coalesce(project, '') FROM ca WHERE id = $1 FOR UPDATE";
    static const char upd[] = "UPDATE ca SET active = true WHERE id = $1";
    pg_store *s = PG(base);
    char project[FP_PROJECT_MAX] = "";
    pg_params p = {0};
    PGresult *res;
    int rc, kind;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, id);
    if ((res = pg_q(s, sel, &p, "CA lookup", err)) == NULL) {
        rc = s->last_rc;
        goto out;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no CA '%s'", id);
        goto out;
    }
    kind = (int)pg_i64(res, 0, 0);
    pg_copy(res, 0, 1, project, sizeof(project));
    PQclear(res);
    if (kind != FP_CA_ISSUING || project[0] == '\0') {
        rc = fp_err_set(err, FP_ERR_STATE, "CA '%s' is not an issuing CA", id);
        goto out;
    }
    /* two statements: the unique index on the active CA of a project is
     * checked row by row */
    if ((rc = ca_deactivate_others(s, project, id, err)) != FP_ERR_OK)
        goto out;
    rc = pg_cmd(s, upd, &p, "CA update", NULL, err);
out:
    return pg_finish_write(s, ev, rc, err);
}

/* A CA's certificate re-signed with the same key and name (ca resign,
 * src/ca/resign.c): the row keeps its id, so its certificates, revocations
 * and CRL numbers stay together.  Audited in the same transaction. */
int pg_ca_set_cert(fp_store *base, const char *id, const unsigned char *der, size_t der_len,
                   const char *subject, int64_t not_before, int64_t not_after,
                   const fp_audit_event *ev, fp_error *err)
{
    static const char upd[] = "UPDATE ca SET der = $1, subject = $2, not_before = $3,"
                              " not_after = $4 WHERE id = $5";
    pg_store *s = PG(base);
    pg_params p = {0};
    int64_t changed = 0;
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_bytes(&p, der, der_len);
    pp_str(&p, subject);
    pp_i64(&p, not_before);
    pp_i64(&p, not_after);
    pp_str(&p, id);
    if ((rc = pg_cmd(s, upd, &p, "CA update", &changed, err)) == FP_ERR_OK && changed == 0)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no CA '%s'", id);
    return pg_finish_write(s, ev, rc, err);
}
