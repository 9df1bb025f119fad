/*
 * pg_certs.c - certificates in the PostgreSQL backend: inserts (with the
 * enrollment tokens that pay for them, one transaction per group-commit
 * batch), lookups, lists and status changes.
 *
 * A batch (src/ca/committer.c) is one transaction: BEGIN and the audit
 * head lock in one round trip, the token uses, then every certificate
 * row, audit row, the head and COMMIT sent as one pipeline (libpq
 * pipeline mode: one round trip for the whole batch).  The caller answers
 * its clients only after COMMIT returned.
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

#define CERT_COLS                                                                  \
    "serial, ca_id, profile, subject, sans, not_before, not_after, issued_at,"     \
    " status, coalesce(revoked_at, 0), coalesce(reason, 0), der, project"

static const char ins_cert[] =
    "INSERT INTO certificates (serial, ca_id, profile, subject, sans, not_before, not_after,"
    " issued_at, der, project) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

static void cert_params(pg_params *p, const fp_cert_rec *r)
{
    memset(p, 0, sizeof(*p));
    pp_str(p, r->serial);
    pp_str(p, r->ca_id);
    pp_str(p, r->profile);
    pp_str(p, r->subject ? r->subject : "");
    pp_str(p, r->sans ? r->sans : "");
    pp_i64(p, r->not_before);
    pp_i64(p, r->not_after);
    pp_i64(p, r->issued_at);
    pp_bytes(p, r->der, r->der_len);
    pp_str(p, r->project);
}

int pg_cert_insert_failure(pg_store *s, const fp_cert_rec *r, fp_error *err)
{
    bool found = false;
    int rc;

    if (pg_failed_with(s, UNIQUE_VIOLATION))
        return fp_err_set(err, FP_ERR_DUPLICATE, "serial %s already issued", r->serial);
    if (!pg_failed_with(s, FOREIGN_KEY_VIOLATION))
        return s->last_rc; /* err says it already */
    /* the transaction is gone: ask on its own which parent is missing */
    if ((rc = pg_project_exists(s, r->project, &found, err)) != FP_ERR_OK)
        return rc;
    if (!found)
        return fp_err_set(err, FP_ERR_NOT_FOUND, "certificate %s: no project '%s'", r->serial,
                          r->project);
    return fp_err_set(err, FP_ERR_NOT_FOUND, "certificate %s: no CA '%s'", r->serial, r->ca_id);
}

int pg_cert_insert_locked(pg_store *s, const fp_cert_rec *r, fp_error *err)
{
    pg_params p;

    cert_params(&p, r);
    return pg_cmd(s, ins_cert, &p, "certificate insert", NULL, err);
}

/* fp_store_cert_insert_spend: see store_certs.h for the contract. */
int pg_cert_insert(fp_store *base, const fp_cert_rec *recs, const fp_audit_event *evs,
                   const char *const *token_ids, int64_t now, fp_error *results, size_t n,
                   fp_error *err)
{
    pg_store *s = PG(base);
    fp_error e = {0}; /* the batch's failure; err and results may be NULL */
    const fp_cert_rec *failed = NULL;
    int rc;

    for (size_t i = 0; results != NULL && i < n; i++)
        fp_err_clear(&results[i]);
    if ((rc = pg_begin(s, evs != NULL || token_ids != NULL, &e)) != FP_ERR_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const fp_cert_rec *r = &recs[i];
        if (token_ids != NULL && token_ids[i] != NULL) {
            /* the token pays in this transaction: its use and the
             * certificate commit or roll back together */
            fp_audit_event use = {evs != NULL ? evs[i].actor : "", "token.use", token_ids[i], "",
                                  r->project};
            rc = pg_token_spend_locked(s, r->project, token_ids[i], now, &use, &e);
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
        if ((rc = pg_cert_insert_locked(s, r, &e)) != FP_ERR_OK) {
            failed = r;
            goto out;
        }
        if (evs != NULL && (rc = pg_audit_append_locked(s, &evs[i], &e)) != FP_ERR_OK)
            goto out;
    }
    fp_test_crash_point("store-before-commit");
    rc = pg_commit(s, &e);
out:
    if (rc != FP_ERR_OK) {
        /* nothing of the batch stays, token uses included */
        pg_rollback(s);
        if (failed != NULL)
            rc = pg_cert_insert_failure(s, failed, &e);
        for (size_t i = 0; results != NULL && i < n; i++)
            results[i] = e;
        if (err != NULL)
            *err = e;
    }
    return rc;
}

static int row_to_rec(const PGresult *res, int i, fp_cert_rec *r, fp_error *err)
{
    memset(r, 0, sizeof(*r));
    pg_copy(res, i, 0, r->serial, sizeof(r->serial));
    pg_copy(res, i, 1, r->ca_id, sizeof(r->ca_id));
    pg_copy(res, i, 2, r->profile, sizeof(r->profile));
    r->subject = pg_strdup(res, i, 3);
    r->sans = pg_strdup(res, i, 4);
    r->not_before = pg_i64(res, i, 5);
    r->not_after = pg_i64(res, i, 6);
    r->issued_at = pg_i64(res, i, 7);
    r->status = (int)pg_i64(res, i, 8);
    r->revoked_at = pg_i64(res, i, 9);
    r->reason = (int)pg_i64(res, i, 10);
    r->der = pg_bytea(res, i, 11, &r->der_len);
    pg_copy(res, i, 12, r->project, sizeof(r->project));
    if (r->subject == NULL || r->sans == NULL || r->der == NULL) {
        fp_cert_rec_clear(r);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    return FP_ERR_OK;
}

int pg_cert_get(fp_store *base, const char *serial, fp_cert_rec *out, fp_error *err)
{
    static const char sql[] = "SELECT " CERT_COLS " FROM certificates WHERE serial = $1";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc;

    pp_str(&p, serial);
    if ((res = pg_q(s, sql, &p, "certificate lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1)
        rc = row_to_rec(res, 0, out, err);
    else
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
    PQclear(res);
    return rc;
}

int pg_cert_list(fp_store *base, const fp_cert_filter *f, fp_cert_cb cb, void *arg,
                 fp_error *err)
{
    static const char sql[] =
        "SELECT " CERT_COLS " FROM certificates WHERE"
        " ($1::int < 0 OR status = $1)"
        " AND ($2::int = 0 OR not_after < $5::bigint)"
        " AND ($3::int = 0 OR not_after >= $5)"
        " AND ($4::bigint = 0 OR (not_after <= $4 AND not_after >= $5))"
        " AND ($6::text IS NULL OR profile = $6)"
        " AND ($8::text IS NULL OR strpos(subject, $8) > 0 OR strpos(sans, $8) > 0)"
        " AND ($9::text IS NULL OR project = $9)"
        " AND ($10::text IS NULL OR ca_id = $10)"
        " ORDER BY issued_at, rid LIMIT $7::bigint";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_i64(&p, f->status);
    pp_i64(&p, f->expired_only);
    pp_i64(&p, f->unexpired_only);
    pp_i64(&p, f->expiring_before);
    pp_i64(&p, f->now);
    pp_str(&p, f->profile);
    if (f->limit > 0)
        pp_i64(&p, f->limit);
    else
        pp_str(&p, NULL); /* LIMIT NULL: no limit */
    pp_str(&p, f->name_contains);
    pp_str(&p, f->project);
    pp_str(&p, f->ca_id);
    if ((res = pg_q(s, sql, &p, "list", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++) {
        fp_cert_rec r;
        if ((rc = row_to_rec(res, i, &r, err)) != FP_ERR_OK)
            break;
        rc = cb(arg, &r);
        fp_cert_rec_clear(&r);
    }
    PQclear(res);
    return rc;
}

int pg_cert_set_status(fp_store *base, const char *serial, int status, int reason,
                       int64_t when, const fp_audit_event *ev, fp_error *err)
{
    static const char sel[] =
        "SELECT status, coalesce(reason, 0), ca_id, project FROM certificates"
        " WHERE serial = $1 FOR UPDATE";
    static const char lift[] =
        "UPDATE certificates SET status = 0, revoked_at = NULL, reason = NULL WHERE serial = $1";
    static const char revoke[] =
        "UPDATE certificates SET status = 1, revoked_at = $2, reason = $3 WHERE serial = $1";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc, cur_status, cur_reason;
    char ca_id[64], project[FP_PROJECT_MAX];

    /* the head lock also orders the change log (pg_status.c) */
    if ((rc = pg_begin(s, true, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, serial);
    if ((res = pg_q(s, sel, &p, "status lookup", err)) == NULL) {
        rc = s->last_rc;
        goto out;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
        goto out;
    }
    cur_status = (int)pg_i64(res, 0, 0);
    cur_reason = (int)pg_i64(res, 0, 1);
    pg_copy(res, 0, 2, ca_id, sizeof(ca_id));
    pg_copy(res, 0, 3, project, sizeof(project));
    PQclear(res);
    /* RFC 5280 5.3.1: only certificateHold is reversible. */
    if (cur_status == FP_CERT_REVOKED && cur_reason != FP_REASON_HOLD) {
        rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is already revoked (%s)", serial,
                        fp_reason_name(cur_reason));
        goto out;
    }
    if (status == FP_CERT_VALID) {
        if (cur_status != FP_CERT_REVOKED) {
            rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is not on hold", serial);
            goto out;
        }
        rc = pg_cmd(s, lift, &p, "status update", NULL, err);
    } else {
        if (cur_status == FP_CERT_REVOKED && reason == FP_REASON_HOLD) {
            rc = fp_err_set(err, FP_ERR_STATE, "certificate %s is already on hold", serial);
            goto out;
        }
        pp_i64(&p, when);
        pp_i64(&p, reason);
        rc = pg_cmd(s, revoke, &p, "status update", NULL, err);
    }
    /* same transaction: a watcher never sees the status without its log row */
    if (rc == FP_ERR_OK)
        rc = pg_status_log_change(s, serial, ca_id, project, err);
out:
    return pg_finish_write(s, ev, rc, err);
}
