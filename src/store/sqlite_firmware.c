/* sqlite_firmware.c - store_firmware.h on SQLite. */
#include <string.h>

#include "sqlite_int.h"

#define FWSIG_COLS                                                                          \
    "id, project, vendor_id, class_id, version, sequence, format, image_sha256, image_size," \
    " signer_serial, actor, forced, created_at"

static int last_seq(sqlite_store *s, const char *project, const char *class_id, int64_t *seq,
                    fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc, step;

    *seq = 0;
    if ((rc = sq_prepare(s, &st,
                         "SELECT COALESCE(MAX(sequence), 0) FROM firmware_signatures"
                         " WHERE project = ? AND class_id = ?",
                         err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, class_id, -1, SQLITE_STATIC);
    if ((step = sqlite3_step(st)) == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    else
        rc = sq_db_err(s, err, "firmware sequence");
    sqlite3_finalize(st);
    return rc;
}

int sq_fw_sig_record(fp_store *base, const fp_fw_sig_rec *r, const fp_audit_event *ev,
                     int64_t *id, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    bool found = true;
    int64_t last = 0;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if ((rc = sq_project_exists(s, r->project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", r->project);
        goto out;
    }
    /* read and insert under one write lock: two signers cannot both take
     * the same next sequence */
    if ((rc = last_seq(s, r->project, r->class_id, &last, err)) != FP_ERR_OK)
        goto out;
    if (r->sequence <= last && !r->forced) {
        rc = fp_err_set(err, FP_ERR_STATE,
                        "sequence %lld is not above %lld, the last signed for class %s"
                        " (--force to sign it anyway)",
                        (long long)r->sequence, (long long)last, r->class_id);
        goto out;
    }
    if ((rc = sq_prepare(s, &st,
                         "INSERT INTO firmware_signatures (project, vendor_id, class_id, version,"
                         " sequence, format, image_sha256, image_size, signer_serial, actor,"
                         " forced, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                         err)) != FP_ERR_OK)
        goto out;
    sqlite3_bind_text(st, 1, r->project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->vendor_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->class_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->sequence);
    sqlite3_bind_text(st, 6, r->format, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, r->image_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, r->image_size);
    sqlite3_bind_text(st, 9, r->signer_serial, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, r->actor, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 11, r->forced ? 1 : 0);
    sqlite3_bind_int64(st, 12, r->created_at);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "firmware signature insert");
    else if (id != NULL)
        *id = sqlite3_last_insert_rowid(s->db);
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

int sq_fw_sig_last(fp_store *base, const char *project, const char *class_id, int64_t *seq,
                   fp_error *err)
{
    return last_seq(SQ(base), project, class_id, seq, err);
}

int sq_fw_sig_list(fp_store *base, const char *project, const char *class_id, fp_fw_sig_cb cb,
                   void *arg, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = sq_prepare(s, &st,
                         "SELECT " FWSIG_COLS " FROM firmware_signatures WHERE project = ?1"
                         " AND (?2 IS NULL OR class_id = ?2) ORDER BY id",
                         err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    if (class_id != NULL)
        sqlite3_bind_text(st, 2, class_id, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_fw_sig_rec r;
        memset(&r, 0, sizeof(r));
        r.id = sqlite3_column_int64(st, 0);
        sq_col_copy(st, 1, r.project, sizeof(r.project));
        sq_col_copy(st, 2, r.vendor_id, sizeof(r.vendor_id));
        sq_col_copy(st, 3, r.class_id, sizeof(r.class_id));
        sq_col_copy(st, 4, r.version, sizeof(r.version));
        r.sequence = sqlite3_column_int64(st, 5);
        sq_col_copy(st, 6, r.format, sizeof(r.format));
        sq_col_copy(st, 7, r.image_sha256, sizeof(r.image_sha256));
        r.image_size = sqlite3_column_int64(st, 8);
        sq_col_copy(st, 9, r.signer_serial, sizeof(r.signer_serial));
        sq_col_copy(st, 10, r.actor, sizeof(r.actor));
        r.forced = sqlite3_column_int(st, 11) != 0;
        r.created_at = sqlite3_column_int64(st, 12);
        if ((rc = cb(arg, &r)) != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "firmware signature list");
    sqlite3_finalize(st);
    return rc;
}
