/*
 * sqlite_audit.c - the audit chain in the SQLite backend.  Rows live in
 * table audit (append-only: triggers refuse UPDATE and DELETE); the head
 * (last id and hash) is also kept in meta, so that deleting the tail is
 * noticed.  store.c verifies; audit.c hashes.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sqlite_int.h"

int sq_audit_prepare(sqlite_store *s, fp_error *err)
{
    int rc;
    if ((rc = sq_prepare(s, &s->last_audit, "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
                         err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->ins_audit,
                         "INSERT INTO audit (id, ts, actor, action, object, detail, prev_hash, hash,"
                         " project) VALUES (?,?,?,?,?,?,?,?,?)", err)) != FP_ERR_OK ||
        (rc = sq_prepare(s, &s->set_head,
                         "UPDATE meta SET value = CASE key WHEN 'audit_head_id' THEN ?1 ELSE ?2 END"
                         " WHERE key IN ('audit_head_id', 'audit_head_hash')", err)) != FP_ERR_OK)
        return rc;
    return FP_ERR_OK;
}

int sq_audit_append_locked(sqlite_store *s, const fp_audit_event *ev, fp_error *err)
{
    int64_t id, ts = fp_now();
    char hash[65];
    sqlite3_stmt *st;
    int rc = FP_ERR_OK;

    if (!s->head_known) {
        st = s->last_audit;
        sqlite3_reset(st);
        s->head_id = 0;
        memcpy(s->head_hash, FP_AUDIT_GENESIS, sizeof(FP_AUDIT_GENESIS));
        if (sqlite3_step(st) == SQLITE_ROW) {
            const unsigned char *h = sqlite3_column_text(st, 1);
            s->head_id = sqlite3_column_int64(st, 0);
            if (h == NULL || strlen((const char *)h) != 64) {
                sqlite3_reset(st);
                return fp_err_set(err, FP_ERR_AUDIT, "audit row %" PRId64 " has a malformed hash",
                                  s->head_id);
            }
            memcpy(s->head_hash, h, 65);
        }
        sqlite3_reset(st);
        s->head_known = true;
    }
    id = s->head_id + 1;
    if (fp_audit_hash(s->head_hash, id, ts, ev->actor, ev->action, ev->object,
                      ev->detail, ev->project, hash) != FP_ERR_OK)
        return fp_err_set(err, FP_ERR_CRYPTO, "audit hash failed");
    st = s->ins_audit;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, ts);
    sqlite3_bind_text(st, 3, ev->actor ? ev->actor : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ev->action ? ev->action : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ev->object ? ev->object : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ev->detail ? ev->detail : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, s->head_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, ev->project ? ev->project : "", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "audit insert");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != FP_ERR_OK)
        return rc; /* the caller rolls back, which forgets the head */
    /* the separately kept head (meta) is written once, by sq_commit */
    s->head_id = id;
    memcpy(s->head_hash, hash, sizeof(hash));
    s->head_dirty = true;
    return FP_ERR_OK;
}

int sq_audit_append(fp_store *base, const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    int rc;
    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    return sq_finish_write(s, ev, rc, err);
}

static int audit_head(sqlite_store *s, int64_t *id, char hash[65], fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int found = 0;

    *id = -1;
    hash[0] = '\0';
    if (sqlite3_prepare_v2(s->db, "SELECT key, value FROM meta WHERE key IN"
                                  " ('audit_head_id', 'audit_head_hash')",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "audit head");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        if (!k || !v)
            continue;
        if (!strcmp(k, "audit_head_id")) {
            *id = strtoll(v, NULL, 10);
            found++;
        } else if (strlen(v) == 64) {
            memcpy(hash, v, 65);
            found++;
        }
    }
    sqlite3_finalize(st);
    if (found != 2)
        return fp_err_set(err, FP_ERR_AUDIT, "audit head record missing");
    return FP_ERR_OK;
}

int sq_audit_iter(fp_store *base, fp_audit_cb cb, void *arg, int64_t *head_id,
                  char head_hash[65], fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step = SQLITE_DONE;

    /* one read transaction: rows and head come from the same snapshot */
    if ((rc = sq_exec(s, "BEGIN", err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, ts, actor, action, object, detail, prev_hash, hash, project"
                           " FROM audit ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "audit read");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_audit_row r;
        r.id = sqlite3_column_int64(st, 0);
        r.ts = sqlite3_column_int64(st, 1);
        r.actor = (const char *)sqlite3_column_text(st, 2);
        r.action = (const char *)sqlite3_column_text(st, 3);
        r.object = (const char *)sqlite3_column_text(st, 4);
        r.detail = (const char *)sqlite3_column_text(st, 5);
        r.prev_hash = (const char *)sqlite3_column_text(st, 6);
        r.hash = (const char *)sqlite3_column_text(st, 7);
        r.project = (const char *)sqlite3_column_text(st, 8);
        if (!r.actor || !r.action || !r.object || !r.detail || !r.prev_hash || !r.hash ||
            !r.project) {
            rc = fp_err_set(err, FP_ERR_AUDIT, "audit row %" PRId64 " has NULL fields", r.id);
            break;
        }
        if ((rc = cb(arg, &r)) != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "audit read");
    sqlite3_finalize(st);
    if (rc == FP_ERR_OK && head_id != NULL)
        rc = audit_head(s, head_id, head_hash, err);
out:
    sq_rollback(s); /* read-only: ends the snapshot */
    return rc;
}

int sq_audit_head(fp_store *base, int64_t *id, char hash[65], fp_error *err)
{
    sqlite_store *s = SQ(base);
    fp_error local = {0};
    int rc;

    *id = 0;
    memcpy(hash, FP_AUDIT_GENESIS, 65);
    if ((rc = sq_exec(s, "BEGIN", err)) != FP_ERR_OK)
        return rc;
    rc = audit_head(s, id, hash, &local);
    sq_rollback(s);
    if (rc == FP_ERR_AUDIT) {
        /* no head recorded: only an empty log may lack one */
        sqlite3_stmt *st = NULL;
        int64_t n = -1;
        if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM audit", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (n == 0) {
            *id = 0;
            memcpy(hash, FP_AUDIT_GENESIS, 65);
            return FP_ERR_OK;
        }
        if (err != NULL)
            *err = local;
        return rc;
    }
    if (rc != FP_ERR_OK && err != NULL)
        *err = local;
    return rc;
}
