/*
 * sqlite_status.c - certificate status in the SQLite backend: status
 * lookups, the revoked entries of a CA, revocation list numbers and the
 * status-change log.  The objects (table cert_status_log, partial index
 * cert_revoked_crl) come from migration 3, which explains them.
 * Revocation list numbers live in the meta table under "crl_number:<ca id>"
 * (the key 0.1 stores already use).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sqlite_int.h"

int sq_status_prepare(sqlite_store *s, fp_error *err)
{
    char prune[160];
    int rc;

    snprintf(prune, sizeof(prune), "DELETE FROM cert_status_log WHERE seq <= ?1 - %d",
             FP_STORE_CHANGES_KEEP);
    if ((rc = sq_prepare(s, &s->status,
                         "SELECT ca_id, status, revoked_at, reason, not_after, not_before, project"
                         " FROM certificates WHERE serial = ?", err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->log_ins,
                         "INSERT INTO cert_status_log (serial, ca_id, ts, project) VALUES (?,?,?,?)",
                         err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->log_prune, prune, err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->seq, "SELECT coalesce(max(seq), 0) FROM cert_status_log",
                         err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->changes,
                         "SELECT seq, serial, ca_id FROM cert_status_log WHERE seq > ?"
                         " ORDER BY seq LIMIT ?", err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->revoked,
                         "SELECT serial, revoked_at, reason FROM certificates"
                         " INDEXED BY cert_revoked_crl"
                         " WHERE status = 1 AND ca_id = ? ORDER BY serial", err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->revnum,
                         "INSERT INTO meta (key, value) VALUES ('crl_number:' || ?1, '1')"
                         " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                         " RETURNING CAST(value AS INTEGER)", err)) != FP_ERR_OK)
        return rc;
    return FP_ERR_OK;
}

int sq_status_log_change(sqlite_store *s, const char *serial, const char *ca_id,
                         const char *project, fp_error *err)
{
    sqlite3_stmt *st = s->log_ins;
    int rc = FP_ERR_OK;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ca_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, fp_now());
    sqlite3_bind_text(st, 4, project, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "change log insert");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != FP_ERR_OK)
        return rc;
    st = s->log_prune;
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(s->db));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "change log prune");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int sq_cert_status(fp_store *base, const char *serial, fp_cert_status_rec *out, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = s->status;
    int rc = FP_ERR_OK, step;

    memset(out, 0, sizeof(*out));
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        sq_col_copy(st, 0, out->ca_id, sizeof(out->ca_id));
        out->status = sqlite3_column_int(st, 1);
        out->revoked_at = sqlite3_column_int64(st, 2);
        out->reason = sqlite3_column_int(st, 3);
        out->not_after = sqlite3_column_int64(st, 4);
        out->not_before = sqlite3_column_int64(st, 5);
        sq_col_copy(st, 6, out->project, sizeof(out->project));
    } else if (step == SQLITE_DONE) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
    } else {
        rc = sq_db_err(s, err, "status lookup");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int sq_revoked_iter(fp_store *base, const char *ca_id, fp_revoked_cb cb, void *arg,
                    fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = s->revoked;
    int rc = FP_ERR_OK, step;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, ca_id, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *serial = sqlite3_column_text(st, 0);
        if (serial == NULL) {
            rc = fp_err_set(err, FP_ERR_STORE, "revoked row without serial");
            break;
        }
        rc = cb(arg, (const char *)serial, sqlite3_column_int64(st, 1),
                sqlite3_column_int(st, 2));
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "revoked certificates");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int sq_revocation_number_next(fp_store *base, const char *ca_id, int64_t *out, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = s->revnum;
    int rc;

    *out = 0;
    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, ca_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = sq_db_err(s, err, "revocation list number");
    /* finish the statement before COMMIT (RETURNING holds it open) */
    while (rc == FP_ERR_OK && sqlite3_step(st) == SQLITE_ROW)
        ;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == FP_ERR_OK && *out < 1)
        rc = fp_err_set(err, FP_ERR_STORE, "revocation list number of %s is corrupt", ca_id);
    /* a plain COMMIT: not an issuance, so not the "store-after-commit"
     * crash point of sq_commit that tests kill enrollments at */
    if (rc == FP_ERR_OK)
        rc = sq_step_once(s, s->commit, "COMMIT", err);
    if (rc != FP_ERR_OK)
        sq_rollback(s);
    return rc;
}

int sq_status_seq(fp_store *base, int64_t *seq, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = s->seq;
    int rc = FP_ERR_OK;

    *seq = 0;
    sqlite3_reset(st);
    if (sqlite3_step(st) == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    else
        rc = sq_db_err(s, err, "status sequence");
    sqlite3_reset(st);
    return rc;
}

int sq_status_changes(fp_store *base, int64_t after, int max, fp_change_cb cb, void *arg,
                      fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = s->changes;
    int rc = FP_ERR_OK, step;

    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, max > 0 ? max : 1);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *serial = sqlite3_column_text(st, 1);
        const unsigned char *ca = sqlite3_column_text(st, 2);
        rc = cb(arg, sqlite3_column_int64(st, 0), serial ? (const char *)serial : "",
                ca ? (const char *)ca : "");
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "status changes");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int sq_crl_put(fp_store *base, const char *ca_id, const fp_crl_pub *c, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO crl_published (ca_id, number, seq, this_update, next_update,"
                           " der) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (ca_id) DO UPDATE SET"
                           " number = ?2, seq = ?3, this_update = ?4, next_update = ?5, der = ?6"
                           " WHERE number < ?2", -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "CRL publish");
        goto out;
    }
    sqlite3_bind_text(st, 1, ca_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, c->number);
    sqlite3_bind_int64(st, 3, c->seq);
    sqlite3_bind_int64(st, 4, c->this_update);
    sqlite3_bind_int64(st, 5, c->next_update);
    sqlite3_bind_blob64(st, 6, c->der, c->der_len, SQLITE_STATIC);
    rc = sq_step_once(s, st, "CRL publish", err);
out:
    sqlite3_finalize(st);
    if (rc == FP_ERR_OK)
        rc = sq_step_once(s, s->commit, "COMMIT", err); /* not an issuance: no crash point */
    if (rc != FP_ERR_OK)
        sq_rollback(s);
    return rc;
}

int sq_crl_get(fp_store *base, const char *ca_id, fp_crl_pub *out, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    if (sqlite3_prepare_v2(s->db,
                           "SELECT number, seq, this_update, next_update, der FROM crl_published"
                           " WHERE ca_id = ?", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "CRL lookup");
    sqlite3_bind_text(st, 1, ca_id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 4);
        out->number = sqlite3_column_int64(st, 0);
        out->seq = sqlite3_column_int64(st, 1);
        out->this_update = sqlite3_column_int64(st, 2);
        out->next_update = sqlite3_column_int64(st, 3);
        out->der = malloc(n > 0 ? (size_t)n : 1);
        if (out->der == NULL)
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        else if (n > 0)
            memcpy(out->der, sqlite3_column_blob(st, 4), (size_t)n);
        out->der_len = out->der ? (size_t)n : 0;
    } else if (step == SQLITE_DONE) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no published CRL of %s", ca_id);
    } else {
        rc = sq_db_err(s, err, "CRL lookup");
    }
    sqlite3_finalize(st);
    return rc;
}
