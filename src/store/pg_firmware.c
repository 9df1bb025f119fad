/*
 * pg_firmware.c - store_firmware.h on PostgreSQL (table
 * firmware_signatures, migration 8).
 *
 * Several nodes (or `fleetpki firmware sign` runs) may record signatures
 * of one class at once; the sequence check "above the class's highest"
 * and the insert must not interleave.  The transaction takes the audit
 * head lock at BEGIN (as every audited writer, pg_int.h) and reads the
 * highest sequence after it: under READ COMMITTED that read sees every
 * signature committed before the lock was granted, so two signers cannot
 * both take the same next sequence.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "pg_int.h"

#define FWSIG_COLS                                                                          \
    "id, project, vendor_id, class_id, version, sequence, format, image_sha256, image_size," \
    " signer_serial, actor, forced, created_at"

static int last_seq(pg_store *s, const char *project, const char *class_id, int64_t *seq,
                    fp_error *err)
{
    static const char sql[] = "SELECT coalesce(max(sequence), 0) FROM firmware_signatures"
                              " WHERE project = $1 AND class_id = $2";
    pg_params p = {0};

    pp_str(&p, project);
    pp_str(&p, class_id);
    return pg_q_i64(s, sql, &p, "firmware sequence", seq, err);
}

int pg_fw_sig_record(fp_store *base, const fp_fw_sig_rec *r, const fp_audit_event *ev,
                     int64_t *id, fp_error *err)
{
    static const char ins[] =
        "INSERT INTO firmware_signatures (project, vendor_id, class_id, version, sequence,"
        " format, image_sha256, image_size, signer_serial, actor, forced, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    bool found = false;
    int64_t last = 0;
    int rc;

    /* the head lock even without an audit event: it is what serialises
     * the sequence check (see the top of this file) */
    if ((rc = pg_begin(s, true, err)) != FP_ERR_OK)
        return rc;
    if ((rc = pg_project_exists(s, r->project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", r->project);
        goto out;
    }
    if ((rc = last_seq(s, r->project, r->class_id, &last, err)) != FP_ERR_OK)
        goto out;
    if (r->sequence <= last && !r->forced) {
        rc = fp_err_set(err, FP_ERR_STATE,
                        "sequence %lld is not above %lld, the last signed for class %s"
                        " (--force to sign it anyway)",
                        (long long)r->sequence, (long long)last, r->class_id);
        goto out;
    }
    pp_str(&p, r->project);
    pp_str(&p, r->vendor_id);
    pp_str(&p, r->class_id);
    pp_str(&p, r->version);
    pp_i64(&p, r->sequence);
    pp_str(&p, r->format);
    pp_str(&p, r->image_sha256);
    pp_i64(&p, r->image_size);
    pp_str(&p, r->signer_serial);
    pp_str(&p, r->actor);
    pp_str(&p, r->forced ? "true" : "false");
    pp_i64(&p, r->created_at);
    if ((res = pg_q(s, ins, &p, "firmware signature insert", err)) == NULL) {
        rc = s->last_rc;
        goto out;
    }
    if (id != NULL)
        *id = pg_i64(res, 0, 0);
    PQclear(res);
out:
    return pg_finish_write(s, ev, rc, err);
}

int pg_fw_sig_last(fp_store *base, const char *project, const char *class_id, int64_t *seq,
                   fp_error *err)
{
    return last_seq(PG(base), project, class_id, seq, err);
}

int pg_fw_sig_list(fp_store *base, const char *project, const char *class_id, fp_fw_sig_cb cb,
                   void *arg, fp_error *err)
{
    static const char sql[] = "SELECT " FWSIG_COLS " FROM firmware_signatures WHERE project = $1"
                              " AND ($2::text IS NULL OR class_id = $2::text) ORDER BY id";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_str(&p, project);
    pp_str(&p, class_id);
    if ((res = pg_q(s, sql, &p, "firmware signature list", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++) {
        fp_fw_sig_rec r;
        memset(&r, 0, sizeof(r));
        r.id = pg_i64(res, i, 0);
        pg_copy(res, i, 1, r.project, sizeof(r.project));
        pg_copy(res, i, 2, r.vendor_id, sizeof(r.vendor_id));
        pg_copy(res, i, 3, r.class_id, sizeof(r.class_id));
        pg_copy(res, i, 4, r.version, sizeof(r.version));
        r.sequence = pg_i64(res, i, 5);
        pg_copy(res, i, 6, r.format, sizeof(r.format));
        pg_copy(res, i, 7, r.image_sha256, sizeof(r.image_sha256));
        r.image_size = pg_i64(res, i, 8);
        pg_copy(res, i, 9, r.signer_serial, sizeof(r.signer_serial));
        pg_copy(res, i, 10, r.actor, sizeof(r.actor));
        r.forced = strcmp(pg_val(res, i, 11), "t") == 0;
        r.created_at = pg_i64(res, i, 12);
        rc = cb(arg, &r);
    }
    PQclear(res);
    return rc;
}
