/*
 * sqlite_certs.c - certificates in the SQLite backend: inserts (with the
 * enrollment tokens that pay for them, in one transaction), lookups,
 * lists and status changes.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sqlite_int.h"

#define CERT_COLS \
    "serial, ca_id, profile, subject, sans, not_before, not_after, issued_at," \
    " status, revoked_at, reason, der, project"

int sq_certs_prepare(sqlite_store *s, fp_error *err)
{
    int rc;
    if ((rc = sq_prepare(s, &s->ins_cert,
                         "INSERT INTO certificates (serial, ca_id, profile, subject, sans,"
                         " not_before, not_after, issued_at, der, project)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?)", err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->get_cert,
                         "SELECT " CERT_COLS " FROM certificates WHERE serial = ?",
                         err)) != FP_ERR_OK)
        return rc;
    return FP_ERR_OK;
}

/* After a foreign-key refusal of r: say which of its project and CA is
 * missing (FP_ERR_NOT_FOUND), inside the caller's transaction. */
static int missing_parent(sqlite_store *s, const fp_cert_rec *r, fp_error *err)
{
    bool found = false;
    int rc;

    if ((rc = sq_project_exists(s, r->project, &found, err)) != FP_ERR_OK)
        return rc;
    if (!found)
        return fp_err_set(err, FP_ERR_NOT_FOUND, "certificate %s: no project '%s'", r->serial,
                          r->project);
    return fp_err_set(err, FP_ERR_NOT_FOUND, "certificate %s: no CA '%s'", r->serial, r->ca_id);
}

/* Insert one certificate row inside the caller's transaction. */
int sq_cert_insert_locked(sqlite_store *s, const fp_cert_rec *r, fp_error *e)
{
    sqlite3_stmt *st = s->ins_cert;
    int step, rc = FP_ERR_OK;

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_text(st, 1, r->serial, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->ca_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->profile, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->subject ? r->subject : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->sans ? r->sans : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r->not_before);
    sqlite3_bind_int64(st, 7, r->not_after);
    sqlite3_bind_int64(st, 8, r->issued_at);
    sqlite3_bind_blob(st, 9, r->der, (int)r->der_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, r->project, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT_PRIMARYKEY || step == SQLITE_CONSTRAINT_UNIQUE) {
        rc = fp_err_set(e, FP_ERR_DUPLICATE, "serial %s already issued", r->serial);
    } else if (step == SQLITE_CONSTRAINT_FOREIGNKEY) {
        sqlite3_reset(st);
        rc = missing_parent(s, r, e);
    } else if (step != SQLITE_DONE) {
        rc = sq_db_err(s, e, "certificate insert");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* fp_store_cert_insert_spend: see store_certs.h for the contract. */
int sq_cert_insert(fp_store *base, const fp_cert_rec *recs, const fp_audit_event *evs,
                   const char *const *token_ids, int64_t now, fp_error *results, size_t n,
                   fp_error *err)
{
    sqlite_store *s = SQ(base);
    fp_error e = {0}; /* the batch's failure; err and results may be NULL */
    int rc;

    for (size_t i = 0; results != NULL && i < n; i++)
        fp_err_clear(&results[i]);
    if ((rc = sq_begin(s, &e)) != FP_ERR_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const fp_cert_rec *r = &recs[i];
        if (token_ids != NULL && token_ids[i] != NULL) {
            /* the token pays in this transaction: its use and the
             * certificate commit or roll back together */
            fp_audit_event use = {evs != NULL ? evs[i].actor : "", "token.use", token_ids[i], "",
                                  r->project};
            rc = sq_token_spend_locked(s, r->project, token_ids[i], now, &use, &e);
            if (rc == FP_ERR_STATE || rc == FP_ERR_NOT_FOUND) {
                results[i] = e; /* this record only: no certificate */
                fp_err_clear(&e);
                rc = FP_ERR_OK;
                continue;
            }
            if (rc != FP_ERR_OK)
                goto out;
            fp_test_crash_point("store-after-token-use");
        }
        if ((rc = sq_cert_insert_locked(s, r, &e)) != FP_ERR_OK)
            goto out;
        if (evs != NULL && (rc = sq_audit_append_locked(s, &evs[i], &e)) != FP_ERR_OK)
            goto out;
    }
    fp_test_crash_point("store-before-commit");
    rc = sq_commit(s, &e);
out:
    if (rc != FP_ERR_OK) {
        /* nothing of the batch stays, token uses included */
        sq_rollback(s);
        for (size_t i = 0; results != NULL && i < n; i++)
            results[i] = e;
        if (err != NULL)
            *err = e;
    }
    return rc;
}

static int row_to_rec(sqlite3_stmt *st, fp_cert_rec *r, fp_error *err)
{
    const void *der;
    int der_len;

    memset(r, 0, sizeof(*r));
    sq_col_copy(st, 0, r->serial, sizeof(r->serial));
    sq_col_copy(st, 1, r->ca_id, sizeof(r->ca_id));
    sq_col_copy(st, 2, r->profile, sizeof(r->profile));
    r->subject = sq_col_strdup(st, 3);
    r->sans = sq_col_strdup(st, 4);
    r->not_before = sqlite3_column_int64(st, 5);
    r->not_after = sqlite3_column_int64(st, 6);
    r->issued_at = sqlite3_column_int64(st, 7);
    r->status = sqlite3_column_int(st, 8);
    r->revoked_at = sqlite3_column_int64(st, 9);
    r->reason = sqlite3_column_int(st, 10);
    der = sqlite3_column_blob(st, 11);
    der_len = sqlite3_column_bytes(st, 11);
    sq_col_copy(st, 12, r->project, sizeof(r->project));
    r->der = malloc(der_len > 0 ? (size_t)der_len : 1);
    if (r->subject == NULL || r->sans == NULL || r->der == NULL) {
        fp_cert_rec_clear(r);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    if (der_len > 0)
        memcpy(r->der, der, (size_t)der_len);
    r->der_len = (size_t)der_len;
    return FP_ERR_OK;
}

int sq_cert_get(fp_store *base, const char *serial, fp_cert_rec *out, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = s->get_cert;
    int rc, step;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = row_to_rec(st, out, err);
    else if (step == SQLITE_DONE)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
    else
        rc = sq_db_err(s, err, "certificate lookup");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int sq_cert_list(fp_store *base, const fp_cert_filter *f, fp_cert_cb cb, void *arg,
                 fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;
    const char *sql =
        "SELECT " CERT_COLS " FROM certificates WHERE"
        " (?1 < 0 OR status = ?1)"
        " AND (?2 = 0 OR not_after < ?5)"
        " AND (?3 = 0 OR not_after >= ?5)"
        " AND (?4 = 0 OR (not_after <= ?4 AND not_after >= ?5))"
        " AND (?6 IS NULL OR profile = ?6)"
        " AND (?8 IS NULL OR instr(subject, ?8) > 0 OR instr(sans, ?8) > 0)"
        " AND (?9 IS NULL OR project = ?9)"
        " AND (?10 IS NULL OR ca_id = ?10)"
        " ORDER BY issued_at, rowid LIMIT ?7";

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "list");
    sqlite3_bind_int(st, 1, f->status);
    sqlite3_bind_int(st, 2, f->expired_only);
    sqlite3_bind_int(st, 3, f->unexpired_only);
    sqlite3_bind_int64(st, 4, f->expiring_before);
    sqlite3_bind_int64(st, 5, f->now);
    if (f->profile)
        sqlite3_bind_text(st, 6, f->profile, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, f->limit > 0 ? f->limit : -1);
    if (f->name_contains)
        sqlite3_bind_text(st, 8, f->name_contains, -1, SQLITE_STATIC);
    if (f->project)
        sqlite3_bind_text(st, 9, f->project, -1, SQLITE_STATIC);
    if (f->ca_id)
        sqlite3_bind_text(st, 10, f->ca_id, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_cert_rec r;
        if ((rc = row_to_rec(st, &r, err)) != FP_ERR_OK)
            break;
        rc = cb(arg, &r);
        fp_cert_rec_clear(&r);
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "list");
    sqlite3_finalize(st);
    return rc;
}

int sq_cert_set_status(fp_store *base, const char *serial, int status, int reason,
                       int64_t when, const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, cur_status, cur_reason;
    char ca_id[64], project[FP_PROJECT_MAX];

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT status, reason, ca_id, project FROM certificates WHERE serial = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "status lookup");
        goto out;
    }
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
        goto out;
    }
    cur_status = sqlite3_column_int(st, 0);
    cur_reason = sqlite3_column_int(st, 1);
    sq_col_copy(st, 2, ca_id, sizeof(ca_id));
    sq_col_copy(st, 3, project, sizeof(project));
    sqlite3_finalize(st);
    st = NULL;

    /* RFC 5280 5.3.1: only certificateHold is reversible. */
    if (cur_status == FP_CERT_REVOKED && cur_reason != FP_REASON_HOLD) {
        rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is already revoked (%s)",
                        serial, fp_reason_name(cur_reason));
        goto out;
    }
    if (status == FP_CERT_VALID) {
        if (cur_status != FP_CERT_REVOKED) {
            rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is not on hold", serial);
            goto out;
        }
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE certificates SET status = 0, revoked_at = NULL,"
                               " reason = NULL WHERE serial = ?", -1, &st, NULL) != SQLITE_OK) {
            rc = sq_db_err(s, err, "status update");
            goto out;
        }
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    } else {
        if (cur_status == FP_CERT_REVOKED && reason == FP_REASON_HOLD) {
            rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is already on hold", serial);
            goto out;
        }
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE certificates SET status = 1, revoked_at = ?,"
                               " reason = ? WHERE serial = ?", -1, &st, NULL) != SQLITE_OK) {
            rc = sq_db_err(s, err, "status update");
            goto out;
        }
        sqlite3_bind_int64(st, 1, when);
        sqlite3_bind_int(st, 2, reason);
        sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_db_err(s, err, "status update");
        goto out;
    }
    /* same transaction: a watcher never sees the status without its log row */
    if ((rc = sq_status_log_change(s, serial, ca_id, project, err)) != FP_ERR_OK)
        goto out;
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}
