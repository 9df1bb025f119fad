/*
 * pg_pending.c - enrollment requests held for manual approval, in the
 * PostgreSQL backend (table pending_requests).  A retry of the same CSR
 * under the same label of the same project finds the same row (the
 * unique constraint decides between racing nodes: ON CONFLICT DO NOTHING).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "pg_int.h"

#define FOREIGN_KEY_VIOLATION "23503"
#define PENDING_COLS                                                                        \
    "id, label, csr_hash, csr, subject, actor, status, serial, coalesce(decided_at, 0),"   \
    " created_at, project"

static int pending_row(const PGresult *res, int i, fp_pending_rec *r, fp_error *err)
{
    memset(r, 0, sizeof(*r));
    r->id = pg_i64(res, i, 0);
    pg_copy(res, i, 1, r->label, sizeof(r->label));
    pg_copy(res, i, 2, r->csr_hash, sizeof(r->csr_hash));
    r->csr = pg_bytea(res, i, 3, &r->csr_len);
    r->subject = pg_strdup(res, i, 4);
    r->actor = pg_strdup(res, i, 5);
    if (r->csr == NULL || r->subject == NULL || r->actor == NULL) {
        fp_pending_rec_clear(r);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    r->status = (int)pg_i64(res, i, 6);
    pg_copy(res, i, 7, r->serial, sizeof(r->serial));
    r->decided_at = pg_i64(res, i, 8);
    r->created_at = pg_i64(res, i, 9);
    pg_copy(res, i, 10, r->project, sizeof(r->project));
    return FP_ERR_OK;
}

static int pending_one(pg_store *s, const char *sql, const pg_params *p, fp_pending_rec *out,
                       fp_error *err)
{
    PGresult *res = pg_q(s, sql, p, "pending lookup", err);
    int rc;

    if (res == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1)
        rc = pending_row(res, 0, out, err);
    else
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no such pending request");
    PQclear(res);
    return rc;
}

int pg_pending_find(fp_store *base, const char *project, const char *label,
                    const char *csr_hash, fp_pending_rec *out, fp_error *err)
{
    static const char sql[] = "SELECT " PENDING_COLS " FROM pending_requests"
                              " WHERE project = $1 AND label = $2 AND csr_hash = $3";
    pg_params p = {0};

    pp_str(&p, project);
    pp_str(&p, label);
    pp_str(&p, csr_hash);
    return pending_one(PG(base), sql, &p, out, err);
}

int pg_pending_get(fp_store *base, int64_t id, fp_pending_rec *out, fp_error *err)
{
    static const char sql[] = "SELECT " PENDING_COLS " FROM pending_requests WHERE id = $1";
    pg_params p = {0};

    pp_i64(&p, id);
    return pending_one(PG(base), sql, &p, out, err);
}

int pg_pending_add(fp_store *base, const fp_pending_rec *r, int64_t *id,
                   const fp_audit_event *ev, fp_error *err)
{
    static const char sql[] =
        "INSERT INTO pending_requests (label, csr_hash, csr, subject, actor, created_at, project)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (project, label, csr_hash) DO NOTHING RETURNING id";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc;

    *id = 0;
    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, r->label);
    pp_str(&p, r->csr_hash);
    pp_bytes(&p, r->csr, r->csr_len);
    pp_str(&p, r->subject ? r->subject : "");
    pp_str(&p, r->actor ? r->actor : "");
    pp_i64(&p, fp_now());
    pp_str(&p, r->project);
    if ((res = pg_q(s, sql, &p, "pending insert", err)) == NULL) {
        rc = pg_failed_with(s, FOREIGN_KEY_VIOLATION)
                 ? fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", r->project)
                 : s->last_rc;
        goto out;
    }
    if (PQntuples(res) == 1) {
        *id = pg_i64(res, 0, 0);
        if (ev != NULL) {
            char obj[32];
            fp_audit_event e = *ev;
            snprintf(obj, sizeof(obj), "pending:%" PRId64, *id);
            e.object = obj;
            rc = pg_audit_append_locked(s, &e, err);
        }
    }
    PQclear(res);
    if (rc == FP_ERR_OK)
        rc = pg_commit(s, err);
    if (rc == FP_ERR_OK && *id == 0) {
        fp_pending_rec cur;
        if ((rc = pg_pending_find(base, r->project, r->label, r->csr_hash, &cur, err)) ==
            FP_ERR_OK) {
            *id = cur.id;
            fp_pending_rec_clear(&cur);
        }
    }
out:
    if (rc != FP_ERR_OK) {
        pg_rollback(s);
        *id = 0;
    }
    return rc;
}

int pg_pending_list(fp_store *base, const char *project, int status, fp_pending_cb cb,
                    void *arg, fp_error *err)
{
    static const char sql[] =
        "SELECT " PENDING_COLS " FROM pending_requests"
        " WHERE ($1::int < 0 OR status = $1) AND ($2::text IS NULL OR project = $2) ORDER BY id";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_i64(&p, status);
    pp_str(&p, project);
    if ((res = pg_q(s, sql, &p, "pending list", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++) {
        fp_pending_rec r;
        if ((rc = pending_row(res, i, &r, err)) != FP_ERR_OK)
            break;
        rc = cb(arg, &r);
        fp_pending_rec_clear(&r);
    }
    PQclear(res);
    return rc;
}

int pg_pending_decide(fp_store *base, int64_t id, int status, const char *serial,
                      const fp_audit_event *ev, fp_error *err)
{
    static const char sql[] =
        "UPDATE pending_requests SET status = $1, serial = $2, decided_at = $3"
        " WHERE id = $4 AND status = 0";
    pg_store *s = PG(base);
    pg_params p = {0};
    int64_t changed = 0;
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_i64(&p, status);
    pp_str(&p, serial);
    pp_i64(&p, fp_now());
    pp_i64(&p, id);
    if ((rc = pg_cmd(s, sql, &p, "pending update", &changed, err)) == FP_ERR_OK && changed != 1)
        rc = fp_err_set(err, FP_ERR_STATE, "request %" PRId64 " is not waiting for a decision",
                        id);
    return pg_finish_write(s, ev, rc, err);
}

int pg_pending_issue(fp_store *base, int64_t id, const fp_cert_rec *rec,
                     const fp_audit_event *cert_ev, const fp_audit_event *decide_ev,
                     fp_error *err)
{
    static const char sql[] =
        "UPDATE pending_requests SET status = 1, serial = $1, decided_at = $2"
        " WHERE id = $3 AND status = 0 AND project = $4";
    pg_store *s = PG(base);
    pg_params p = {0};
    int64_t changed = 0;
    int rc;

    if ((rc = pg_begin(s, cert_ev != NULL || decide_ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, rec->serial);
    pp_i64(&p, fp_now());
    pp_i64(&p, id);
    pp_str(&p, rec->project);
    if ((rc = pg_cmd(s, sql, &p, "pending update", &changed, err)) != FP_ERR_OK)
        goto out;
    if (changed != 1) {
        rc = fp_err_set(err, FP_ERR_STATE,
                        "request %" PRId64 " of project '%s' is not waiting for a decision", id,
                        rec->project);
        goto out;
    }
    if ((rc = pg_cert_insert_locked(s, rec, err)) != FP_ERR_OK) {
        pg_rollback(s);
        return pg_cert_insert_failure(s, rec, err);
    }
    if (cert_ev != NULL)
        rc = pg_audit_append_locked(s, cert_ev, err);
out:
    return pg_finish_write(s, decide_ev, rc, err);
}
