/*
 * pg_devices.c - the device registry in the PostgreSQL backend (tables
 * devices, device_tags, device_certs: migration 5; devices.tags: 9) and
 * its change log (device_log: migration 7).  Every statement is
 * scoped by project: a device of another project is not found, exactly as
 * an absent one.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

#define FOREIGN_KEY_VIOLATION "23503"

/* The columns every device read selects; tags is the row's JSON copy of
 * its tags (migration 9), rewritten by pg_device_tag. */
#define DEV_COLS "d.project, d.name, d.state, d.first_seen, d.last_seen, d.tags"

/* The tags of device ($1, $2) as one JSON object, keys in byte order
 * (COLLATE "C") and no blanks: the very text SQLite's json_group_object
 * makes.  Migration 9 fills the column with the same expression. */
#define DEV_TAGS_JSON                                                                     \
    "coalesce((SELECT '{' || string_agg(to_json(t.key)::text || ':' ||"                   \
    "  to_json(t.value)::text, ',' ORDER BY t.key) || '}' FROM device_tags t"              \
    "  WHERE t.project = $1 AND t.name = $2), '{}')"

/* Append (project, name, state) to the device change log inside the
 * caller's write transaction, which holds the audit head lock (taken at
 * BEGIN): seq = max + 1 under it, so seq order is commit order across
 * nodes and a follower reading "seq > n" (the broker plugin) never misses
 * a change that commits late with a smaller number.  Entries more than
 * FP_STORE_CHANGES_KEEP behind are pruned in the same transaction. */
static int dev_log(pg_store *s, const char *project, const char *name, int state, fp_error *err)
{
    static const char ins[] =
        "INSERT INTO device_log (seq, project, name, state, ts)"
        " SELECT coalesce(max(seq), 0) + 1, $1, $2, $3, extract(epoch FROM now())::bigint"
        " FROM device_log RETURNING seq";
    static const char prune[] = "DELETE FROM device_log WHERE seq <= $1::bigint - $2::bigint";
    pg_params p = {0};
    PGresult *res;
    int64_t seq;

    if (!s->head_locked)
        return fp_err_set(err, FP_ERR_STORE, "device log append outside the audit head lock");
    pp_str(&p, project);
    pp_str(&p, name);
    pp_i64(&p, state);
    if ((res = pg_q(s, ins, &p, "device log insert", err)) == NULL)
        return s->last_rc;
    seq = PQntuples(res) == 1 ? pg_i64(res, 0, 0) : 0;
    PQclear(res);
    memset(&p, 0, sizeof(p));
    pp_i64(&p, seq);
    pp_i64(&p, FP_STORE_CHANGES_KEEP);
    return pg_cmd(s, prune, &p, "device log prune", NULL, err);
}

int pg_device_seq(fp_store *base, int64_t *seq, fp_error *err)
{
    static const char sql[] = "SELECT coalesce(max(seq), 0) FROM device_log";
    return pg_q_i64(PG(base), sql, NULL, "device log sequence", seq, err);
}

int pg_device_changes(fp_store *base, int64_t after, int max, fp_device_change_cb cb, void *arg,
                      fp_error *err)
{
    static const char sql[] = "SELECT seq, project, name, state FROM device_log WHERE seq > $1"
                              " ORDER BY seq LIMIT $2";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_i64(&p, after);
    pp_i64(&p, max > 0 ? max : 1);
    if ((res = pg_q(s, sql, &p, "device changes", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++)
        rc = cb(arg, pg_i64(res, i, 0), pg_val(res, i, 1), pg_val(res, i, 2),
                (int)pg_i64(res, i, 3));
    PQclear(res);
    return rc;
}

static int dev_from_row(const PGresult *res, int i, fp_device_rec *out, fp_error *err)
{
    memset(out, 0, sizeof(*out));
    pg_copy(res, i, 0, out->project, sizeof(out->project));
    pg_copy(res, i, 1, out->name, sizeof(out->name));
    out->state = (int)pg_i64(res, i, 2);
    out->first_seen = pg_i64(res, i, 3);
    out->last_seen = pg_i64(res, i, 4);
    out->tags = pg_strdup(res, i, 5);
    return out->tags ? FP_ERR_OK : fp_err_set(err, FP_ERR_NOMEM, NULL);
}

/* lock: FOR UPDATE (inside a write transaction). */
static int dev_read(pg_store *s, const char *project, const char *name, bool lock,
                    fp_device_rec *out, fp_error *err)
{
    static const char sql[] =
        "SELECT " DEV_COLS " FROM devices d WHERE d.project = $1 AND d.name = $2";
    static const char sql_lock[] =
        "SELECT " DEV_COLS " FROM devices d WHERE d.project = $1 AND d.name = $2 FOR UPDATE";
    pg_params p = {0};
    PGresult *res;
    int rc;

    pp_str(&p, project);
    pp_str(&p, name);
    if ((res = pg_q(s, lock ? sql_lock : sql, &p, "device lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1)
        rc = out ? dev_from_row(res, 0, out, err) : FP_ERR_OK;
    else
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no device '%s' in project '%s'", name, project);
    PQclear(res);
    return rc;
}

/* The name of the device of project that cert fp is linked to, if any. */
static int link_owner(pg_store *s, const char *project, const char *fp, char *owner, size_t size,
                      bool *found, fp_error *err)
{
    static const char sql[] = "SELECT name FROM device_certs WHERE project = $1 AND fp = $2";
    pg_params p = {0};
    PGresult *res;

    *found = false;
    pp_str(&p, project);
    pp_str(&p, fp);
    if ((res = pg_q(s, sql, &p, "device certificate lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1) {
        *found = true;
        if (owner != NULL)
            pg_copy(res, 0, 0, owner, size);
    }
    PQclear(res);
    return FP_ERR_OK;
}

int pg_device_register(fp_store *base, const char *project, const char *name, int64_t now,
                       const fp_device_cert *cert, const fp_audit_event *ev, fp_device_rec *out,
                       bool *created, fp_error *err)
{
    static const char ins[] =
        "INSERT INTO devices (project, name, state, first_seen, last_seen)"
        " VALUES ($1, $2, 0, $3, $3) ON CONFLICT DO NOTHING";
    static const char link[] =
        "INSERT INTO device_certs (project, fp, name, serial, issuer, subject, ours, added_at, der)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    bool found = false, made = false;
    char owner[FP_DEVICE_NAME_MAX];
    int64_t changed = 0;
    int rc;

    if (created != NULL)
        *created = false;
    /* the audit head lock first, always: a new device is logged under it
     * (dev_log), and every writer taking it first is what keeps them from
     * deadlocking (pg_int.h) */
    if ((rc = pg_begin(s, true, err)) != FP_ERR_OK)
        return rc;
    /* the one write not flushed at commit (store_devices.h): atomic, but a
     * crash of the database may lose the last ones; the device's next
     * contact registers it again */
    if ((res = pg_q_once(s, "SET LOCAL synchronous_commit = off", NULL, "device register",
                         err)) == NULL) {
        rc = s->last_rc;
        goto out;
    }
    PQclear(res);
    if ((rc = pg_project_exists(s, project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", project);
        goto out;
    }
    /* racing first contacts on any nodes: the primary key decides, the
     * loser's INSERT waits for the winner and then does nothing */
    pp_str(&p, project);
    pp_str(&p, name);
    pp_i64(&p, now);
    if ((rc = pg_cmd(s, ins, &p, "device insert", &changed, err)) != FP_ERR_OK)
        goto out;
    made = changed == 1;
    if (made && ((ev != NULL && (rc = pg_audit_append_locked(s, ev, err)) != FP_ERR_OK) ||
                 (rc = dev_log(s, project, name, FP_DEV_ACTIVE, err)) != FP_ERR_OK))
        goto out;
    if (cert != NULL) {
        if ((rc = link_owner(s, project, cert->fp, owner, sizeof(owner), &found, err)) !=
            FP_ERR_OK)
            goto out;
        if (!found) {
            memset(&p, 0, sizeof(p));
            pp_str(&p, project);
            pp_str(&p, cert->fp);
            pp_str(&p, name);
            pp_str(&p, cert->serial ? cert->serial : "");
            pp_str(&p, cert->issuer ? cert->issuer : "");
            pp_str(&p, cert->subject ? cert->subject : "");
            pp_i64(&p, cert->ours ? 1 : 0);
            pp_i64(&p, now);
            pp_bytes(&p, cert->der, cert->der_len);
            if ((rc = pg_cmd(s, link, &p, "device certificate insert", &changed, err)) !=
                FP_ERR_OK)
                goto out;
            /* linked meanwhile by another node: read who owns it */
            if (changed == 0 && (rc = link_owner(s, project, cert->fp, owner, sizeof(owner),
                                                 &found, err)) != FP_ERR_OK)
                goto out;
        }
        if (found && strcmp(owner, name) != 0) {
            rc = fp_err_set(err, FP_ERR_DUPLICATE, "certificate is already linked to device '%s'",
                            owner);
            goto out;
        }
    }
    if (out != NULL)
        rc = dev_read(s, project, name, false, out, err);
out:
    rc = pg_finish_write(s, NULL, rc, err);
    if (rc == FP_ERR_OK && created != NULL)
        *created = made;
    if (rc != FP_ERR_OK && out != NULL)
        fp_device_rec_clear(out);
    return rc;
}

int pg_device_get(fp_store *base, const char *project, const char *name, const char *cert_fp,
                  bool *linked, fp_device_rec *out, fp_error *err)
{
    pg_store *s = PG(base);
    char owner[FP_DEVICE_NAME_MAX];
    PGresult *res;
    int rc;

    if (linked != NULL)
        *linked = false;
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    /* one snapshot: the device and its link agree */
    if ((rc = pg_begin(s, false, err)) != FP_ERR_OK)
        return rc;
    res = pg_q_once(s, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL,
                    "device lookup", err);
    rc = res != NULL ? dev_read(s, project, name, false, out, err) : s->last_rc;
    PQclear(res);
    if (rc == FP_ERR_OK && cert_fp != NULL && linked != NULL) {
        bool found = false;
        rc = link_owner(s, project, cert_fp, owner, sizeof(owner), &found, err);
        *linked = found && strcmp(owner, name) == 0;
    }
    pg_rollback(s);
    if (rc != FP_ERR_OK && out != NULL)
        fp_device_rec_clear(out);
    return rc;
}

int pg_device_list(fp_store *base, const fp_device_filter *f, fp_device_cb cb, void *arg,
                   fp_error *err)
{
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    char sql[1536];
    int rc = FP_ERR_OK;

    /* keyset pagination on the primary key (project, name), in byte order
     * (COLLATE "C" columns) */
    snprintf(sql, sizeof(sql),
             "SELECT " DEV_COLS " FROM devices d WHERE d.project = $1%s%s%s%s"
             " ORDER BY d.name LIMIT $7::int",
             f->state >= 0 ? " AND d.state = $2::int" : " AND $2::int IS NULL",
             f->after ? " AND d.name > $3::text" : " AND $3::text IS NULL",
             f->name_prefix ? " AND d.name >= $4::text AND left(d.name, length($4)) = $4"
                            : " AND $4::text IS NULL",
             f->tag_key ? (f->tag_value ? " AND EXISTS (SELECT 1 FROM device_tags t WHERE"
                                          " t.project = d.project AND t.name = d.name AND"
                                          " t.key = $5::text AND t.value = $6::text)"
                                        : " AND EXISTS (SELECT 1 FROM device_tags t WHERE"
                                          " t.project = d.project AND t.name = d.name AND"
                                          " t.key = $5::text) AND $6::text IS NULL")
                        : " AND $5::text IS NULL AND $6::text IS NULL");
    pp_str(&p, f->project);
    if (f->state >= 0)
        pp_i64(&p, f->state);
    else
        pp_str(&p, NULL);
    pp_str(&p, f->after);
    pp_str(&p, f->name_prefix);
    pp_str(&p, f->tag_key);
    pp_str(&p, f->tag_value);
    pp_i64(&p, f->limit);
    if ((res = pg_q_once(s, sql, &p, "device list", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res); i++) {
        fp_device_rec r;
        int stop;
        if ((rc = dev_from_row(res, i, &r, err)) != FP_ERR_OK)
            break;
        stop = cb(arg, &r);
        fp_device_rec_clear(&r);
        if (stop != 0)
            break;
    }
    PQclear(res);
    return rc;
}

int pg_device_set_state(fp_store *base, const char *project, const char *name,
                        unsigned from_mask, int to, const fp_audit_event *ev, fp_error *err)
{
    static const char *const names[] = {"active", "suspended", "decommissioned"};
    static const char sql[] = "UPDATE devices SET state = $1 WHERE project = $2 AND name = $3";
    pg_store *s = PG(base);
    fp_device_rec cur = {0};
    pg_params p = {0};
    int rc;

    /* head lock always: the change is logged under it (dev_log) */
    if ((rc = pg_begin(s, true, err)) != FP_ERR_OK)
        return rc;
    if ((rc = dev_read(s, project, name, true, &cur, err)) != FP_ERR_OK)
        goto out;
    if (cur.state < 0 || cur.state > 2 || !(from_mask & (1u << cur.state))) {
        rc = fp_err_set(err, FP_ERR_STATE, "device '%s' is %s", name,
                        cur.state >= 0 && cur.state <= 2 ? names[cur.state]
                                                         : "in an unknown state");
        goto out;
    }
    pp_i64(&p, to);
    pp_str(&p, project);
    pp_str(&p, name);
    if ((rc = pg_cmd(s, sql, &p, "device update", NULL, err)) == FP_ERR_OK)
        rc = dev_log(s, project, name, to, err);
out:
    fp_device_rec_clear(&cur);
    return pg_finish_write(s, ev, rc, err);
}

int pg_device_tag(fp_store *base, const char *project, const char *name, const char *key,
                  const char *value, const fp_audit_event *ev, fp_error *err)
{
    static const char set[] =
        "INSERT INTO device_tags (project, name, key, value) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (project, name, key) DO UPDATE SET value = excluded.value";
    static const char del[] = "DELETE FROM device_tags WHERE project = $1 AND name = $2"
                              " AND key = $3";
    static const char copy[] =
        "UPDATE devices SET tags = " DEV_TAGS_JSON " WHERE project = $1 AND name = $2";
    static const char count[] =
        "SELECT count(*) FROM device_tags WHERE project = $1 AND name = $2";
    pg_store *s = PG(base);
    pg_params p = {0};
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    if ((rc = dev_read(s, project, name, true, NULL, err)) != FP_ERR_OK)
        goto out;
    pp_str(&p, project);
    pp_str(&p, name);
    pp_str(&p, key);
    if (value != NULL)
        pp_str(&p, value);
    if ((rc = pg_cmd(s, value ? set : del, &p, "device tag", NULL, err)) != FP_ERR_OK)
        goto out;
    p.n = 2;
    /* a new key past FP_DEVICE_TAGS_MAX: refused, rolled back */
    if (value != NULL) {
        int64_t n = 0;
        if ((rc = pg_q_i64(s, count, &p, "device tag", &n, err)) != FP_ERR_OK)
            goto out;
        if (n > FP_DEVICE_TAGS_MAX) {
            rc = fp_err_set(err, FP_ERR_STATE, "a device holds at most %d tags",
                            FP_DEVICE_TAGS_MAX);
            goto out;
        }
    }
    /* the row's copy of the tags (migration 9), in the same transaction
     * (the device row is locked since dev_read: tag writers of one device
     * on several nodes take turns) */
    rc = pg_cmd(s, copy, &p, "device tag", NULL, err);
out:
    return pg_finish_write(s, ev, rc, err);
}

int pg_device_touch(fp_store *base, const char *const *projects, const char *const *names,
                    const int64_t *seen, size_t n, fp_error *err)
{
    /* one statement for the batch; rows in key order so that two nodes
     * touching overlapping batches lock them in the same order */
    static const char sql[] =
        "UPDATE devices d SET last_seen = u.seen FROM"
        " (SELECT project, name, max(seen) AS seen FROM unnest($1::text[], $2::text[],"
        "  $3::bigint[]) AS x(project, name, seen) GROUP BY project, name"
        "  ORDER BY project, name) u"
        " WHERE d.project = u.project AND d.name = u.name AND d.last_seen < u.seen";
    pg_store *s = PG(base);
    pg_params p = {0};
    char *arr[3] = {NULL, NULL, NULL};
    size_t cap[3] = {0, 0, 0};
    FILE *f[3] = {NULL, NULL, NULL};
    int rc = FP_ERR_OK;

    if (n == 0)
        return FP_ERR_OK;
    for (int k = 0; k < 3; k++)
        if ((f[k] = open_memstream(&arr[k], &cap[k])) == NULL)
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (rc != FP_ERR_OK)
        goto out;
    /* array literals: every element quoted, '"' and '\' escaped */
    for (size_t i = 0; i < n; i++) {
        const char *v[2] = {projects[i], names[i]};
        for (int k = 0; k < 2; k++) {
            fputs(i == 0 ? "{\"" : ",\"", f[k]);
            for (const char *c = v[k]; *c; c++) {
                if (*c == '"' || *c == '\\')
                    fputc('\\', f[k]);
                fputc(*c, f[k]);
            }
            fputc('"', f[k]);
        }
        fprintf(f[2], "%s%lld", i == 0 ? "{" : ",", (long long)seen[i]);
    }
    for (int k = 0; k < 3; k++) {
        fputc('}', f[k]);
        fclose(f[k]);
        f[k] = NULL;
    }
    pp_str(&p, arr[0]);
    pp_str(&p, arr[1]);
    pp_str(&p, arr[2]);
    rc = pg_cmd(s, sql, &p, "device touch", NULL, err);
out:
    for (int k = 0; k < 3; k++) {
        if (f[k] != NULL)
            fclose(f[k]);
        free(arr[k]);
    }
    return rc;
}

int pg_device_certs(fp_store *base, const char *project, const char *name,
                    fp_device_cert_cb cb, void *arg, fp_error *err)
{
    static const char sql[] =
        "SELECT fp, serial, issuer, subject, ours, added_at, der FROM device_certs"
        " WHERE project = $1 AND name = $2 ORDER BY added_at, rid";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc;

    if ((rc = dev_read(s, project, name, false, NULL, err)) != FP_ERR_OK)
        return rc;
    pp_str(&p, project);
    pp_str(&p, name);
    if ((res = pg_q(s, sql, &p, "device certificates", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res); i++) {
        fp_device_cert c;
        unsigned char *der;
        int stop;
        memset(&c, 0, sizeof(c));
        pg_copy(res, i, 0, c.fp, sizeof(c.fp));
        c.serial = pg_val(res, i, 1);
        c.issuer = pg_val(res, i, 2);
        c.subject = pg_val(res, i, 3);
        c.ours = pg_i64(res, i, 4) != 0;
        c.added_at = pg_i64(res, i, 5);
        der = pg_bytea(res, i, 6, &c.der_len);
        if (der == NULL) {
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
            break;
        }
        c.der = der;
        stop = cb(arg, &c);
        free(der);
        if (stop != 0)
            break;
    }
    PQclear(res);
    return rc;
}

int pg_device_naming_get(fp_store *base, const char *project, int *rule, fp_error *err)
{
    static const char sql[] = "SELECT device_naming FROM projects WHERE name = $1";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    *rule = 0;
    pp_str(&p, project);
    if ((res = pg_q(s, sql, &p, "device naming", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1)
        *rule = (int)pg_i64(res, 0, 0);
    else
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", project);
    PQclear(res);
    return rc;
}

int pg_device_naming_set(fp_store *base, const char *project, int rule,
                         const fp_audit_event *ev, fp_error *err)
{
    static const char sql[] = "UPDATE projects SET device_naming = $1 WHERE name = $2";
    pg_store *s = PG(base);
    pg_params p = {0};
    int64_t changed = 0;
    int rc;

    if ((rc = pg_begin(s, ev != NULL, err)) != FP_ERR_OK)
        return rc;
    pp_i64(&p, rule);
    pp_str(&p, project);
    if ((rc = pg_cmd(s, sql, &p, "device naming", &changed, err)) == FP_ERR_OK && changed != 1)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", project);
    return pg_finish_write(s, ev, rc, err);
}
