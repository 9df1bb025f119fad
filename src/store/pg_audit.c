/*
 * pg_audit.c - the audit chain in the PostgreSQL backend.  Rows live in
 * table audit (append-only: a trigger refuses UPDATE, DELETE, TRUNCATE);
 * the head (last id and hash) is kept in meta, as in SQLite, so deleting
 * the tail is noticed.
 *
 * Several nodes append: a write transaction locks the two head rows
 * (SELECT ... FOR UPDATE) right after BEGIN, which both serialises the
 * appends and reads the newest committed head (a locked row is re-read
 * after the lock is granted, even under READ COMMITTED), then chains its
 * rows on it in memory and writes the head back just before COMMIT
 * (pg_commit).  The next appender, waiting on the lock, reads that head.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "pg_int.h"

int pg_audit_lock_head(pg_store *s, fp_error *err)
{
    PGresult *res = pg_q(s, pg_audit_lock_sql, NULL, "audit head", err);

    if (res == NULL)
        return s->last_rc;
    return pg_audit_head_from(s, res, err);
}

const char pg_audit_lock_sql[] = "SELECT key, value FROM meta WHERE key IN"
                                 " ('audit_head_id', 'audit_head_hash') FOR UPDATE";

int pg_audit_head_from(pg_store *s, PGresult *res, fp_error *err)
{
    int found = 0;

    for (int i = 0; i < PQntuples(res); i++) {
        const char *k = pg_val(res, i, 0), *v = pg_val(res, i, 1);
        if (!strcmp(k, "audit_head_id")) {
            s->head_id = strtoll(v, NULL, 10);
            found++;
        } else if (strlen(v) == 64) {
            memcpy(s->head_hash, v, 65);
            found++;
        }
    }
    PQclear(res);
    if (found != 2)
        return fp_err_set(err, FP_ERR_AUDIT, "audit head record missing");
    s->head_locked = true;
    return FP_ERR_OK;
}

const char pg_audit_insert_sql[] =
    "INSERT INTO audit (id, ts, actor, action, object, detail, prev_hash, hash, project)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

int pg_audit_row(pg_store *s, const fp_audit_event *ev, pg_audit_params *a, fp_error *err)
{
    int64_t id, ts = fp_now();
    int rc;

    if (!s->head_locked && (rc = pg_audit_lock_head(s, err)) != FP_ERR_OK)
        return rc;
    id = s->head_id + 1;
    memcpy(a->prev, s->head_hash, sizeof(a->prev));
    if (fp_audit_hash(a->prev, id, ts, ev->actor, ev->action, ev->object, ev->detail,
                      ev->project, a->hash) != FP_ERR_OK)
        return fp_err_set(err, FP_ERR_CRYPTO, "audit hash failed");
    memset(&a->p, 0, sizeof(a->p));
    pp_i64(&a->p, id);
    pp_i64(&a->p, ts);
    pp_str(&a->p, ev->actor ? ev->actor : "");
    pp_str(&a->p, ev->action ? ev->action : "");
    pp_str(&a->p, ev->object ? ev->object : "");
    pp_str(&a->p, ev->detail ? ev->detail : "");
    pp_str(&a->p, a->prev);
    pp_str(&a->p, a->hash);
    pp_str(&a->p, ev->project ? ev->project : "");
    /* the caller inserts it or rolls back (which forgets the head) */
    s->head_id = id;
    memcpy(s->head_hash, a->hash, sizeof(a->hash));
    s->head_dirty = true;
    return FP_ERR_OK;
}

int pg_audit_append_locked(pg_store *s, const fp_audit_event *ev, fp_error *err)
{
    pg_audit_params a;
    int rc;

    if ((rc = pg_audit_row(s, ev, &a, err)) != FP_ERR_OK)
        return rc;
    return pg_cmd(s, pg_audit_insert_sql, &a.p, "audit insert", NULL, err);
}

int pg_audit_append(fp_store *base, const fp_audit_event *ev, fp_error *err)
{
    pg_store *s = PG(base);
    int rc;

    if ((rc = pg_begin(s, true, err)) != FP_ERR_OK)
        return rc;
    return pg_finish_write(s, ev, rc, err);
}

int pg_audit_iter(fp_store *base, fp_audit_cb cb, void *arg, int64_t *head_id,
                  char head_hash[65], fp_error *err)
{
    static const char rows_sql[] =
        "SELECT id, ts, actor, action, object, detail, prev_hash, hash, project"
        " FROM audit ORDER BY id";
    static const char head_sql[] =
        "SELECT key, value FROM meta WHERE key IN ('audit_head_id', 'audit_head_hash')";
    pg_store *s = PG(base);
    PGresult *res = NULL;
    int rc = FP_ERR_OK, found = 0;

    /* one snapshot for rows and head (REPEATABLE READ): an append
     * committing in between cannot make them disagree */
    if ((rc = pg_begin(s, false, err)) != FP_ERR_OK)
        return rc;
    if ((res = pg_q_once(s, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL,
                    "audit read", err)) == NULL) {
        rc = s->last_rc;
        goto out;
    }
    PQclear(res);
    /* single-row mode keeps memory flat for a long log */
    if (!PQsendQueryParams(s->conn, rows_sql, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsetSingleRowMode(s->conn)) {
        rc = fp_err_set(err, FP_ERR_STORE, "audit read: %s", PQerrorMessage(s->conn));
        goto out;
    }
    while ((res = PQgetResult(s->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE && rc == FP_ERR_OK) {
            fp_audit_row r;
            r.id = pg_i64(res, 0, 0);
            r.ts = pg_i64(res, 0, 1);
            r.actor = pg_val(res, 0, 2);
            r.action = pg_val(res, 0, 3);
            r.object = pg_val(res, 0, 4);
            r.detail = pg_val(res, 0, 5);
            r.prev_hash = pg_val(res, 0, 6);
            r.hash = pg_val(res, 0, 7);
            r.project = pg_val(res, 0, 8);
            rc = cb(arg, &r);
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == FP_ERR_OK) {
            rc = fp_err_set(err, FP_ERR_STORE, "audit read: %s", PQerrorMessage(s->conn));
        }
        PQclear(res);
    }
    if (rc != FP_ERR_OK || head_id == NULL)
        goto out;
    *head_id = -1;
    head_hash[0] = '\0';
    if ((res = pg_q(s, head_sql, NULL, "audit head", err)) == NULL) {
        rc = s->last_rc;
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *k = pg_val(res, i, 0), *v = pg_val(res, i, 1);
        if (!strcmp(k, "audit_head_id")) {
            *head_id = strtoll(v, NULL, 10);
            found++;
        } else if (strlen(v) == 64) {
            memcpy(head_hash, v, 65);
            found++;
        }
    }
    PQclear(res);
    if (found != 2)
        rc = fp_err_set(err, FP_ERR_AUDIT, "audit head record missing");
out:
    pg_rollback(s); /* read-only: ends the snapshot */
    return rc;
}

/* One statement, so one snapshot: id and hash of the same committed head
 * (no lock: a reader never waits for writers). */
int pg_audit_head(fp_store *base, int64_t *id, char hash[65], fp_error *err)
{
    static const char sql[] =
        "SELECT key, value FROM meta WHERE key IN ('audit_head_id', 'audit_head_hash')";
    pg_store *s = PG(base);
    PGresult *res;
    int found = 0;

    *id = -1;
    hash[0] = '\0';
    if ((res = pg_q(s, sql, NULL, "audit head", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *k = pg_val(res, i, 0), *v = pg_val(res, i, 1);
        if (!strcmp(k, "audit_head_id")) {
            *id = strtoll(v, NULL, 10);
            found++;
        } else if (strlen(v) == 64) {
            memcpy(hash, v, 65);
            found++;
        }
    }
    PQclear(res);
    return found == 2 ? FP_ERR_OK : fp_err_set(err, FP_ERR_AUDIT, "audit head record missing");
}
