/*
 * pg_certs.c - certificates in the PostgreSQL backend: inserts (with the
 * enrollment tokens that pay for them, one transaction per group-commit
 * batch), lookups, lists and status changes.
 *
 * A batch (src/ca/committer.c) is one transaction in two round trips
 * (libpq pipeline mode, pg_cert_insert); the caller answers its clients
 * only after COMMIT returned.
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

/* Phase 1 of a batch: what the token uses returned. */
typedef struct {
    pg_store *s;
    bool lock;
    bool *paid; /* per record */
    const int *spend_of; /* pipeline index -> record, -1 for BEGIN and the lock */
} phase1_ctx;

static int phase1_result(void *arg, int i, PGresult *res, fp_error *err)
{
    phase1_ctx *c = arg;

    if (c->lock && i == 1)
        return pg_audit_head_from(c->s, PQcopyResult(res, PG_COPYRES_TUPLES |
                                                              PG_COPYRES_ATTRS),
                                  err);
    if (c->spend_of[i] >= 0)
        c->paid[c->spend_of[i]] = strtoll(PQcmdTuples(res), NULL, 10) == 1;
    return FP_ERR_OK;
}

static const char spend_sql[] =
    "UPDATE enroll_tokens SET uses_left = uses_left - 1"
    " WHERE id = $1 AND project = $3 AND uses_left > 0"
    " AND (expires_at = 0 OR $2::bigint < expires_at)";
static const char set_head_sql[] =
    "UPDATE meta SET value = CASE key WHEN 'audit_head_id' THEN $1 ELSE $2 END"
    " WHERE key IN ('audit_head_id', 'audit_head_hash')";

/*
 * fp_store_cert_insert_spend: see store_certs.h for the contract.  Two
 * round trips whatever the batch size:
 *   1. BEGIN, the audit head lock, every token use (conditional UPDATEs);
 *   2. the audit rows of the uses that paid, every certificate row and its
 *      audit row (the chain computed here, in record order), the head,
 *      COMMIT.
 * A refused use (rare: used up, expired, unknown) costs one lookup more
 * between the two, for its reason.  The first failing statement of 2
 * aborts the rest; the transaction is then rolled back, nothing stays.
 */
int pg_cert_insert(fp_store *base, const fp_cert_rec *recs, const fp_audit_event *evs,
                   const char *const *token_ids, int64_t now, fp_error *results, size_t n,
                   fp_error *err)
{
    pg_store *s = PG(base);
    fp_error e = {0}; /* the batch's failure; err and results may be NULL */
    const fp_cert_rec *failed_rec = NULL;
    bool lock = evs != NULL || token_ids != NULL;
    bool *paid = calloc(n + 1, sizeof(*paid));
    int *spend_of = calloc(n + 2, sizeof(*spend_of));
    /* phase 2: per record at most a use's audit row, the certificate, its
     * audit row; then the head and COMMIT */
    pg_audit_params *aud = calloc(2 * n + 1, sizeof(*aud));
    pg_params *cert = calloc(n + 1, sizeof(*cert));
    const fp_cert_rec **rec_of = calloc(3 * n + 2, sizeof(*rec_of));
    pg_params head = {0};
    int rc = FP_ERR_OK, k = 0, failed = -1, na = 0;

    for (size_t i = 0; results != NULL && i < n; i++)
        fp_err_clear(&results[i]);
    if (paid == NULL || spend_of == NULL || aud == NULL || cert == NULL || rec_of == NULL) {
        rc = fp_err_set(&e, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = pg_prepare(s, pg_audit_lock_sql, 0, &e)) != FP_ERR_OK ||
        (rc = pg_prepare(s, spend_sql, 3, &e)) != FP_ERR_OK ||
        (rc = pg_prepare(s, ins_cert, 10, &e)) != FP_ERR_OK ||
        (rc = pg_prepare(s, pg_audit_insert_sql, 9, &e)) != FP_ERR_OK ||
        (rc = pg_prepare(s, set_head_sql, 2, &e)) != FP_ERR_OK)
        goto out;

    /* ---- 1: BEGIN, lock, token uses ---- */
    s->head_locked = s->head_dirty = false;
    if ((rc = pg_pipe_start(s, &e)) != FP_ERR_OK)
        goto out;
    s->in_tx = true;
    spend_of[k++] = -1;
    rc = pg_pipe_send(s, "BEGIN", NULL, &e);
    if (rc == FP_ERR_OK && lock) {
        spend_of[k++] = -1;
        rc = pg_pipe_send(s, pg_audit_lock_sql, &head, &e);
    }
    for (size_t i = 0; rc == FP_ERR_OK && token_ids != NULL && i < n; i++) {
        pg_params p = {0};
        if (token_ids[i] == NULL)
            continue;
        pp_str(&p, token_ids[i]);
        pp_i64(&p, now);
        pp_str(&p, recs[i].project);
        spend_of[k++] = (int)i;
        rc = pg_pipe_send(s, spend_sql, &p, &e);
    }
    if (rc == FP_ERR_OK) {
        phase1_ctx c = {s, lock, paid, spend_of};
        rc = pg_pipe_run(s, k, &failed, phase1_result, &c, &e);
    } else {
        pg_pipe_run(s, k, &failed, NULL, NULL, NULL);
    }
    if (rc != FP_ERR_OK)
        goto out;
    for (size_t i = 0; token_ids != NULL && i < n; i++) {
        fp_token_rec t;
        if (token_ids[i] == NULL || paid[i])
            continue;
        /* refused: this record only, with the reason */
        rc = pg_token_get(base, recs[i].project, token_ids[i], &t, &results[i]);
        if (rc == FP_ERR_OK)
            fp_err_set(&results[i], FP_ERR_STATE, t.uses_left <= 0 ? "token %s is used up"
                                                                   : "token %s has expired",
                       token_ids[i]);
        else if (rc != FP_ERR_NOT_FOUND) {
            e = results[i];
            goto out;
        }
        rc = FP_ERR_OK;
    }
    fp_test_crash_point("store-after-token-use");

    /* ---- 2: audit rows, certificates, head, COMMIT ---- */
    k = 0;
    for (size_t i = 0; i < n; i++) {
        const fp_cert_rec *r = &recs[i];
        bool spends = token_ids != NULL && token_ids[i] != NULL;
        if (spends && !paid[i])
            continue;
        if (spends) {
            fp_audit_event use = {evs != NULL ? evs[i].actor : "", "token.use", token_ids[i], "",
                                  r->project};
            if ((rc = pg_audit_row(s, &use, &aud[na], &e)) != FP_ERR_OK)
                goto out;
            rec_of[k++] = NULL;
            na++;
        }
        cert_params(&cert[i], r);
        rec_of[k++] = r;
        if (evs != NULL) {
            if ((rc = pg_audit_row(s, &evs[i], &aud[na], &e)) != FP_ERR_OK)
                goto out;
            rec_of[k++] = NULL;
            na++;
        }
    }
    fp_test_crash_point("store-before-commit");
    if ((rc = pg_pipe_start(s, &e)) != FP_ERR_OK)
        goto out;
    na = 0;
    for (int j = 0, i = 0; rc == FP_ERR_OK && j < k; j++) {
        if (rec_of[j] != NULL) {
            i = (int)(rec_of[j] - recs);
            rc = pg_pipe_send(s, ins_cert, &cert[i], &e);
        } else {
            rc = pg_pipe_send(s, pg_audit_insert_sql, &aud[na++].p, &e);
        }
    }
    if (rc == FP_ERR_OK && s->head_dirty) {
        pp_i64(&head, s->head_id);
        pp_str(&head, s->head_hash);
        rec_of[k++] = NULL;
        rc = pg_pipe_send(s, set_head_sql, &head, &e);
    }
    if (rc == FP_ERR_OK) {
        rec_of[k++] = NULL;
        rc = pg_pipe_send(s, "COMMIT", NULL, &e);
    }
    if (rc == FP_ERR_OK) {
        rc = pg_pipe_run(s, k, &failed, NULL, NULL, &e);
    } else {
        pg_pipe_run(s, k, &failed, NULL, NULL, NULL);
    }
    if (rc != FP_ERR_OK) {
        if (failed >= 0 && failed < k && rec_of[failed] != NULL)
            failed_rec = rec_of[failed];
        goto out;
    }
    s->in_tx = false;
    s->head_locked = s->head_dirty = false;
    fp_test_crash_point("store-after-commit");
out:
    if (rc != FP_ERR_OK) {
        /* nothing of the batch stays, token uses included */
        pg_rollback(s);
        if (failed_rec != NULL)
            rc = pg_cert_insert_failure(s, failed_rec, &e);
        for (size_t i = 0; results != NULL && i < n; i++)
            results[i] = e;
        if (err != NULL)
            *err = e;
    }
    free(paid);
    free(spend_of);
    free(aud);
    free(cert);
    free(rec_of);
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
