/*
 * pg_tokens.c - enrollment tokens (table enroll_tokens) and API keys
 * (table api_keys) in the PostgreSQL backend: only hashes of secrets.
 * A token belongs to one project; every lookup and spend is scoped by it.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "pg_int.h"

#define UNIQUE_VIOLATION "23505"
#define FOREIGN_KEY_VIOLATION "23503"
#define TOKEN_COLS "id, label, hash, cn_pattern, uses_left, expires_at, created_at, project"

int pg_token_put(fp_store *base, const fp_token_rec *t, const fp_audit_event *ev, fp_error *err)
{
    static const char sql[] =
        "INSERT INTO enroll_tokens (id, label, hash, cn_pattern, uses_left, expires_at,"
        " created_at, project) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    pg_store *s = PG(base);
    pg_params p = {0};
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, t->id);
    pp_str(&p, t->label);
    pp_bytes(&p, t->hash, FP_TOKEN_HASH_LEN);
    pp_str(&p, t->cn_pattern);
    pp_i64(&p, t->uses_left);
    pp_i64(&p, t->expires_at);
    pp_i64(&p, t->created_at);
    pp_str(&p, t->project);
    rc = pg_cmd(s, sql, &p, "token insert", NULL, err);
    if (rc != FP_ERR_OK && pg_failed_with(s, UNIQUE_VIOLATION))
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "token id %s exists", t->id);
    else if (rc != FP_ERR_OK && pg_failed_with(s, FOREIGN_KEY_VIOLATION))
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", t->project);
    return pg_finish_write(s, ev, rc, err);
}

static void token_from_row(const PGresult *res, int i, fp_token_rec *t)
{
    size_t len = 0;
    unsigned char *h = pg_bytea(res, i, 2, &len);

    memset(t, 0, sizeof(*t));
    pg_copy(res, i, 0, t->id, sizeof(t->id));
    pg_copy(res, i, 1, t->label, sizeof(t->label));
    if (h != NULL && len == FP_TOKEN_HASH_LEN)
        memcpy(t->hash, h, FP_TOKEN_HASH_LEN);
    free(h);
    pg_copy(res, i, 3, t->cn_pattern, sizeof(t->cn_pattern));
    t->uses_left = (int)pg_i64(res, i, 4);
    t->expires_at = pg_i64(res, i, 5);
    t->created_at = pg_i64(res, i, 6);
    pg_copy(res, i, 7, t->project, sizeof(t->project));
}

/* Token id of project; one of another project is not found, exactly as an
 * absent one (the message does not tell them apart either). */
int pg_token_get(fp_store *base, const char *project, const char *id, fp_token_rec *out,
                 fp_error *err)
{
    static const char sql[] =
        "SELECT " TOKEN_COLS ", length(hash) FROM enroll_tokens WHERE id = $1 AND project = $2";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    memset(out, 0, sizeof(*out));
    pp_str(&p, id);
    pp_str(&p, project);
    if ((res = pg_q(s, sql, &p, "token lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) != 1)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no token %s", id);
    else if (pg_i64(res, 0, 8) != FP_TOKEN_HASH_LEN)
        rc = fp_err_set(err, FP_ERR_STORE, "token %s has a malformed hash", id);
    else
        token_from_row(res, 0, out);
    PQclear(res);
    return rc;
}

int pg_token_spend_locked(pg_store *s, const char *project, const char *id, int64_t now,
                          const fp_audit_event *ev, fp_error *err)
{
    /* one conditional UPDATE decides: of two spends of the last use, on
     * any nodes, the second waits for the first's row lock and then finds
     * uses_left = 0 (READ COMMITTED re-checks the condition) */
    static const char sql[] =
        "UPDATE enroll_tokens SET uses_left = uses_left - 1"
        " WHERE id = $1 AND project = $3 AND uses_left > 0"
        " AND (expires_at = 0 OR $2::bigint < expires_at)";
    pg_params p = {0};
    fp_token_rec t;
    int64_t changed = 0;
    int rc;

    pp_str(&p, id);
    pp_i64(&p, now);
    pp_str(&p, project);
    if ((rc = pg_cmd(s, sql, &p, "token update", &changed, err)) != FP_ERR_OK)
        return rc;
    if (changed == 1)
        return ev != NULL ? pg_audit_append_locked(s, ev, err) : FP_ERR_OK;
    if ((rc = pg_token_get(&s->base, project, id, &t, err)) != FP_ERR_OK)
        return rc; /* FP_ERR_NOT_FOUND, or the store failed */
    if (t.uses_left <= 0)
        return fp_err_set(err, FP_ERR_STATE, "token %s is used up", id);
    return fp_err_set(err, FP_ERR_STATE, "token %s has expired", id);
}

int pg_token_use(fp_store *base, const char *project, const char *id, int64_t now,
                 const fp_audit_event *ev, fp_error *err)
{
    pg_store *s = PG(base);
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    rc = pg_token_spend_locked(s, project, id, now, ev, err);
    return pg_finish_write(s, NULL, rc, err); /* ev is in already */
}

int pg_token_list(fp_store *base, const char *project, fp_token_cb cb, void *arg,
                  fp_error *err)
{
    static const char sql[] =
        "SELECT " TOKEN_COLS " FROM enroll_tokens WHERE project = $1 ORDER BY id";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_str(&p, project);
    if ((res = pg_q(s, sql, &p, "token list", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++) {
        fp_token_rec t;
        token_from_row(res, i, &t);
        rc = cb(arg, &t);
    }
    PQclear(res);
    return rc;
}

int pg_token_delete(fp_store *base, const char *project, const char *id,
                    const fp_audit_event *ev, fp_error *err)
{
    static const char sql[] = "DELETE FROM enroll_tokens WHERE id = $1 AND project = $2";
    pg_store *s = PG(base);
    pg_params p = {0};
    int64_t changed = 0;
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, id);
    pp_str(&p, project);
    if ((rc = pg_cmd(s, sql, &p, "token delete", &changed, err)) == FP_ERR_OK && changed != 1)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no token %s", id);
    return pg_finish_write(s, ev, rc, err);
}

/* ---- API keys ---- */

#define APIKEY_COLS "id, project, read_only, hash, created_at, revoked_at"

int pg_apikey_put(fp_store *base, const fp_apikey_rec *k, const fp_audit_event *ev,
                  fp_error *err)
{
    static const char sql[] =
        "INSERT INTO api_keys (id, project, read_only, hash, created_at, revoked_at)"
        " VALUES ($1, $2, $3, $4, $5, 0)";
    pg_store *s = PG(base);
    pg_params p = {0};
    bool found = true;
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    if (k->project[0] != '\0' && (rc = pg_project_exists(s, k->project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", k->project);
        goto out;
    }
    pp_str(&p, k->id);
    pp_str(&p, k->project);
    pp_i64(&p, k->read_only ? 1 : 0);
    pp_bytes(&p, k->hash, FP_APIKEY_HASH_LEN);
    pp_i64(&p, k->created_at);
    rc = pg_cmd(s, sql, &p, "API key insert", NULL, err);
    if (rc != FP_ERR_OK && pg_failed_with(s, UNIQUE_VIOLATION))
        rc = fp_err_set(err, FP_ERR_DUPLICATE, "API key id %s exists", k->id);
out:
    return pg_finish_write(s, ev, rc, err);
}

static int apikey_row(const PGresult *res, int i, fp_apikey_rec *out, fp_error *err)
{
    size_t len = 0;
    unsigned char *h;

    memset(out, 0, sizeof(*out));
    pg_copy(res, i, 0, out->id, sizeof(out->id));
    pg_copy(res, i, 1, out->project, sizeof(out->project));
    out->read_only = pg_i64(res, i, 2) != 0;
    h = pg_bytea(res, i, 3, &len);
    if (h == NULL || len != FP_APIKEY_HASH_LEN) {
        free(h);
        return fp_err_set(err, FP_ERR_STORE, "API key %s has a malformed hash", out->id);
    }
    memcpy(out->hash, h, FP_APIKEY_HASH_LEN);
    free(h);
    out->created_at = pg_i64(res, i, 4);
    out->revoked_at = pg_i64(res, i, 5);
    return FP_ERR_OK;
}

int pg_apikey_get(fp_store *base, const char *id, fp_apikey_rec *out, fp_error *err)
{
    static const char sql[] = "SELECT " APIKEY_COLS " FROM api_keys WHERE id = $1";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc;

    memset(out, 0, sizeof(*out));
    pp_str(&p, id);
    if ((res = pg_q(s, sql, &p, "API key lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1)
        rc = apikey_row(res, 0, out, err);
    else
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no API key %s", id);
    PQclear(res);
    return rc;
}

int pg_apikey_list(fp_store *base, const char *project, fp_apikey_cb cb, void *arg,
                   fp_error *err)
{
    static const char sql[] = "SELECT " APIKEY_COLS " FROM api_keys"
                              " WHERE $1::text IS NULL OR project = $1 ORDER BY id";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_str(&p, project);
    if ((res = pg_q(s, sql, &p, "API key list", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++) {
        fp_apikey_rec r;
        if ((rc = apikey_row(res, i, &r, err)) == FP_ERR_OK)
            rc = cb(arg, &r);
    }
    PQclear(res);
    return rc;
}

int pg_apikey_revoke(fp_store *base, const char *id, int64_t when, const fp_audit_event *ev,
                     fp_error *err)
{
    static const char sql[] =
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0";
    pg_store *s = PG(base);
    pg_params p = {0};
    fp_apikey_rec r;
    int64_t changed = 0;
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_i64(&p, when > 0 ? when : 1);
    pp_str(&p, id);
    if ((rc = pg_cmd(s, sql, &p, "API key revoke", &changed, err)) == FP_ERR_OK && changed != 1) {
        /* absent, or revoked already: tell which */
        if ((rc = pg_apikey_get(base, id, &r, err)) == FP_ERR_OK)
            rc = fp_err_set(err, FP_ERR_STATE, "API key %s is revoked already", id);
    }
    return pg_finish_write(s, ev, rc, err);
}
