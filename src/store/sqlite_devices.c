/*
 * sqlite_devices.c - the device registry in the SQLite backend (tables
 * devices, device_tags, device_certs; migration 5).  Every statement is
 * scoped by project: a device of another project is not found, exactly as
 * an absent one.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sqlite_int.h"

/* The columns every device read selects; tags as one JSON object built
 * from device_tags (keys in byte order, so the text is stable). */
/* The tags subquery names the primary key's index (project, name, key):
 * without statistics the planner prefers the covering device_tags_kv,
 * which narrows by project only, and so reads every tag of the project
 * for each device listed (36 ms a page of 100 at 20,000 devices, seen in
 * bench/run-registry-api.sh). */
#define DEV_COLS                                                                  \
    "d.project, d.name, d.state, d.first_seen, d.last_seen,"                      \
    " (SELECT json_group_object(key, value) FROM (SELECT key, value FROM"         \
    "  device_tags t INDEXED BY sqlite_autoindex_device_tags_1"                      \
    "  WHERE t.project = d.project AND t.name = d.name ORDER BY key))"

/* Statements of the first-contact path, kept for the handle's life (a
 * contact runs them all; preparing each per call cost as much as the
 * rest of the lookup). */
enum {
    DEV_STMT_READ,
    DEV_STMT_LINK,
    DEV_STMT_INSERT,
    DEV_STMT_LINK_INSERT,
    DEV_STMT_NAMING,
    DEV_STMT_LOG,
    DEV_STMT_LOG_PRUNE,
};

static int dev_stmt(sqlite_store *s, int slot, const char *sql, sqlite3_stmt **out,
                    fp_error *err)
{
    if (s->dev[slot] == NULL && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                                   &s->dev[slot], NULL) != SQLITE_OK)
        return sq_db_err(s, err, "device statement");
    *out = s->dev[slot];
    return FP_ERR_OK;
}

/* Done with a kept statement: ready for the next use, nothing bound. */
static void dev_done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static int dev_from_row(sqlite3_stmt *st, fp_device_rec *out, fp_error *err)
{
    memset(out, 0, sizeof(*out));
    sq_col_copy(st, 0, out->project, sizeof(out->project));
    sq_col_copy(st, 1, out->name, sizeof(out->name));
    out->state = sqlite3_column_int(st, 2);
    out->first_seen = sqlite3_column_int64(st, 3);
    out->last_seen = sqlite3_column_int64(st, 4);
    if (sqlite3_column_type(st, 5) == SQLITE_NULL)
        out->tags = strdup("{}");
    else
        out->tags = sq_col_strdup(st, 5);
    return out->tags ? FP_ERR_OK : fp_err_set(err, FP_ERR_NOMEM, NULL);
}

static int dev_read(sqlite_store *s, const char *project, const char *name, fp_device_rec *out,
                    fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = dev_stmt(s, DEV_STMT_READ,
                       "SELECT " DEV_COLS " FROM devices d WHERE d.project = ? AND d.name = ?",
                       &st, err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = out ? dev_from_row(st, out, err) : FP_ERR_OK;
    else if (step == SQLITE_DONE)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no device '%s' in project '%s'", name, project);
    else
        rc = sq_db_err(s, err, "device lookup");
    dev_done(st);
    return rc;
}

/* Append (project, name, state) to the device change log inside the
 * caller's write transaction and prune what is older than
 * FP_STORE_CHANGES_KEEP entries (store_devices.h; table from migration 7). */
static int dev_log(sqlite_store *s, const char *project, const char *name, int state,
                   fp_error *err)
{
    char prune[96];
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = dev_stmt(s, DEV_STMT_LOG,
                       "INSERT INTO device_log (project, name, state, ts) VALUES (?,?,?,?)", &st,
                       err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, state);
    sqlite3_bind_int64(st, 4, fp_now());
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "device log insert");
    dev_done(st);
    if (rc != FP_ERR_OK)
        return rc;
    snprintf(prune, sizeof(prune), "DELETE FROM device_log WHERE seq <= ?1 - %d",
             FP_STORE_CHANGES_KEEP);
    if ((rc = dev_stmt(s, DEV_STMT_LOG_PRUNE, prune, &st, err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(s->db));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "device log prune");
    dev_done(st);
    return rc;
}

int sq_device_seq(fp_store *base, int64_t *seq, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK;

    *seq = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(seq), 0) FROM device_log", -1, &st,
                           NULL) != SQLITE_OK)
        return sq_db_err(s, err, "device log sequence");
    if (sqlite3_step(st) == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    else
        rc = sq_db_err(s, err, "device log sequence");
    sqlite3_finalize(st);
    return rc;
}

int sq_device_changes(fp_store *base, int64_t after, int max, fp_device_change_cb cb,
                      void *arg, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    if (sqlite3_prepare_v2(s->db,
                           "SELECT seq, project, name, state FROM device_log WHERE seq > ?"
                           " ORDER BY seq LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "device changes");
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, max > 0 ? max : 1);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *project = sqlite3_column_text(st, 1);
        const unsigned char *name = sqlite3_column_text(st, 2);
        rc = cb(arg, sqlite3_column_int64(st, 0), project ? (const char *)project : "",
                name ? (const char *)name : "", sqlite3_column_int(st, 3));
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "device changes");
    sqlite3_finalize(st);
    return rc;
}

/* The name of the device of project that cert fp is linked to, if any. */
static int link_owner(sqlite_store *s, const char *project, const char *fp, char *owner,
                      size_t size, bool *found, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    *found = false;
    if ((rc = dev_stmt(s, DEV_STMT_LINK,
                       "SELECT name FROM device_certs WHERE project = ? AND fp = ?", &st, err)) !=
        FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fp, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *found = true;
        if (owner != NULL)
            sq_col_copy(st, 0, owner, size);
    } else if (step != SQLITE_DONE) {
        rc = sq_db_err(s, err, "device certificate lookup");
    }
    dev_done(st);
    return rc;
}

int sq_device_register(fp_store *base, const char *project, const char *name, int64_t now,
                       const fp_device_cert *cert, const fp_audit_event *ev, fp_device_rec *out,
                       bool *created, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    bool found = false, made = false;
    char owner[FP_DEVICE_NAME_MAX];
    int rc;

    if (created != NULL)
        *created = false;
    /* The one write of the store not fsync'd at commit (store_devices.h):
     * WAL with synchronous = NORMAL is still atomic and consistent (the
     * registration, its link and its audit row land together or not at
     * all) but a power cut may lose the last ones; the device's next
     * contact registers it again.  Without this every first contact holds
     * the write lock and its server worker for an fsync. */
    if ((rc = sq_exec(s, "PRAGMA synchronous = NORMAL", err)) != FP_ERR_OK)
        return rc;
    /* BEGIN IMMEDIATE: a racing first contact waits here, then finds the
     * row the winner inserted (INSERT OR IGNORE on the primary key) */
    if ((rc = sq_begin(s, err)) != FP_ERR_OK) {
        sq_exec(s, "PRAGMA synchronous = FULL", NULL);
        return rc;
    }
    if ((rc = sq_project_exists(s, project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", project);
        goto out;
    }
    if ((rc = dev_stmt(s, DEV_STMT_INSERT,
                       "INSERT OR IGNORE INTO devices (project, name, state, first_seen,"
                       " last_seen) VALUES (?, ?, 0, ?, ?)",
                       &st, err)) != FP_ERR_OK)
        goto out;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_db_err(s, err, "device insert");
        goto out;
    }
    made = sqlite3_changes(s->db) == 1;
    dev_done(st);
    st = NULL;
    if (made && ((ev != NULL && (rc = sq_audit_append_locked(s, ev, err)) != FP_ERR_OK) ||
                 (rc = dev_log(s, project, name, FP_DEV_ACTIVE, err)) != FP_ERR_OK))
        goto out;
    if (cert != NULL) {
        if ((rc = link_owner(s, project, cert->fp, owner, sizeof(owner), &found, err)) !=
            FP_ERR_OK)
            goto out;
        if (found && strcmp(owner, name) != 0) {
            rc = fp_err_set(err, FP_ERR_DUPLICATE,
                            "certificate is already linked to device '%s'", owner);
            goto out;
        }
        if (!found) {
            if ((rc = dev_stmt(s, DEV_STMT_LINK_INSERT,
                               "INSERT INTO device_certs (project, fp, name, serial, issuer,"
                               " subject, ours, added_at, der) VALUES (?,?,?,?,?,?,?,?,?)",
                               &st, err)) != FP_ERR_OK)
                goto out;
            sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, cert->fp, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, cert->serial ? cert->serial : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, cert->issuer ? cert->issuer : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 6, cert->subject ? cert->subject : "", -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 7, cert->ours ? 1 : 0);
            sqlite3_bind_int64(st, 8, now);
            sqlite3_bind_blob(st, 9, cert->der ? (const void *)cert->der : (const void *)"",
                              (int)cert->der_len, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) {
                rc = sq_db_err(s, err, "device certificate insert");
                goto out;
            }
            dev_done(st);
            st = NULL;
        }
    }
    if (out != NULL)
        rc = dev_read(s, project, name, out, err);
out:
    dev_done(st);
    rc = sq_finish_write(s, NULL, rc, err);
    /* every other write of this handle is durable again */
    if (sq_exec(s, "PRAGMA synchronous = FULL", rc == FP_ERR_OK ? err : NULL) != FP_ERR_OK &&
        rc == FP_ERR_OK)
        rc = FP_ERR_STORE;
    if (rc == FP_ERR_OK && created != NULL)
        *created = made;
    if (rc != FP_ERR_OK && out != NULL)
        fp_device_rec_clear(out);
    return rc;
}

int sq_device_get(fp_store *base, const char *project, const char *name, const char *cert_fp,
                  bool *linked, fp_device_rec *out, fp_error *err)
{
    sqlite_store *s = SQ(base);
    char owner[FP_DEVICE_NAME_MAX];
    int rc;

    if (linked != NULL)
        *linked = false;
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    /* one read transaction: the device and its link agree */
    if ((rc = sq_exec(s, "BEGIN", err)) != FP_ERR_OK)
        return rc;
    rc = dev_read(s, project, name, out, err);
    if (rc == FP_ERR_OK && cert_fp != NULL && linked != NULL) {
        bool found = false;
        rc = link_owner(s, project, cert_fp, owner, sizeof(owner), &found, err);
        *linked = found && strcmp(owner, name) == 0;
    }
    sq_rollback(s);
    if (rc != FP_ERR_OK && out != NULL)
        fp_device_rec_clear(out);
    return rc;
}

int sq_device_list(fp_store *base, const fp_device_filter *f, fp_device_cb cb, void *arg,
                   fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    char sql[1024];
    int rc = FP_ERR_OK, step, n = 1;

    /* keyset pagination on the primary key (project, name); the prefix is
     * a range on the same key (name >= p AND name < p || x'ff' would need
     * blob compare; substr keeps it simple and exact in byte order) */
    snprintf(sql, sizeof(sql),
             "SELECT " DEV_COLS " FROM devices d WHERE d.project = ?1%s%s%s%s"
             " ORDER BY d.name LIMIT ?7",
             f->state >= 0 ? " AND d.state = ?2" : "",
             f->after ? " AND d.name > ?3" : "",
             f->name_prefix ? " AND d.name >= ?4 AND substr(d.name, 1, length(?4)) = ?4" : "",
             f->tag_key ? (f->tag_value ? " AND EXISTS (SELECT 1 FROM device_tags t WHERE"
                                          " t.project = d.project AND t.name = d.name AND"
                                          " t.key = ?5 AND t.value = ?6)"
                                        : " AND EXISTS (SELECT 1 FROM device_tags t WHERE"
                                          " t.project = d.project AND t.name = d.name AND"
                                          " t.key = ?5)")
                        : "");
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "device list");
    sqlite3_bind_text(st, 1, f->project, -1, SQLITE_STATIC);
    if (f->state >= 0)
        sqlite3_bind_int(st, 2, f->state);
    if (f->after)
        sqlite3_bind_text(st, 3, f->after, -1, SQLITE_STATIC);
    if (f->name_prefix)
        sqlite3_bind_text(st, 4, f->name_prefix, -1, SQLITE_STATIC);
    if (f->tag_key) {
        sqlite3_bind_text(st, 5, f->tag_key, -1, SQLITE_STATIC);
        if (f->tag_value)
            sqlite3_bind_text(st, 6, f->tag_value, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int(st, 7, f->limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_device_rec r;
        if ((rc = dev_from_row(st, &r, err)) != FP_ERR_OK)
            goto out;
        n = cb(arg, &r);
        fp_device_rec_clear(&r);
        if (n != 0)
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = sq_db_err(s, err, "device list");
out:
    sqlite3_finalize(st);
    return rc;
}

int sq_device_set_state(fp_store *base, const char *project, const char *name,
                        unsigned from_mask, int to, const fp_audit_event *ev, fp_error *err)
{
    static const char *const names[] = {"active", "suspended", "decommissioned"};
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    fp_device_rec cur = {0};
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if ((rc = dev_read(s, project, name, &cur, err)) != FP_ERR_OK)
        goto out;
    if (cur.state < 0 || cur.state > 2 || !(from_mask & (1u << cur.state))) {
        rc = fp_err_set(err, FP_ERR_STATE, "device '%s' is %s", name,
                        cur.state >= 0 && cur.state <= 2 ? names[cur.state] : "in an unknown state");
        goto out;
    }
    if (sqlite3_prepare_v2(s->db, "UPDATE devices SET state = ? WHERE project = ? AND name = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "device update");
        goto out;
    }
    sqlite3_bind_int(st, 1, to);
    sqlite3_bind_text(st, 2, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "device update");
    else
        rc = dev_log(s, project, name, to, err);
out:
    sqlite3_finalize(st);
    fp_device_rec_clear(&cur);
    return sq_finish_write(s, ev, rc, err);
}

int sq_device_tag(fp_store *base, const char *project, const char *name, const char *key,
                  const char *value, const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if ((rc = dev_read(s, project, name, NULL, err)) != FP_ERR_OK)
        goto out;
    if (sqlite3_prepare_v2(s->db,
                           value ? "INSERT OR REPLACE INTO device_tags (project, name, key, value)"
                                   " VALUES (?1, ?2, ?3, ?4)"
                                 : "DELETE FROM device_tags WHERE project = ?1 AND name = ?2"
                                   " AND key = ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "device tag");
        goto out;
    }
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    if (value)
        sqlite3_bind_text(st, 4, value, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "device tag");
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}

int sq_device_touch(fp_store *base, const char *const *projects, const char *const *names,
                    const int64_t *seen, size_t n, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if (n == 0)
        return FP_ERR_OK;
    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE devices SET last_seen = ?3 WHERE project = ?1 AND name = ?2"
                           " AND last_seen < ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "device touch");
        goto out;
    }
    for (size_t i = 0; i < n && rc == FP_ERR_OK; i++) {
        sqlite3_bind_text(st, 1, projects[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, seen[i]);
        rc = sq_step_once(s, st, "device touch", err);
    }
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, NULL, rc, err);
}

int sq_device_certs(fp_store *base, const char *project, const char *name,
                    fp_device_cert_cb cb, void *arg, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = dev_read(s, project, name, NULL, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT fp, serial, issuer, subject, ours, added_at, der FROM"
                           " device_certs WHERE project = ? AND name = ? ORDER BY added_at, rowid",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "device certificates");
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        fp_device_cert c;
        memset(&c, 0, sizeof(c));
        sq_col_copy(st, 0, c.fp, sizeof(c.fp));
        c.serial = (const char *)sqlite3_column_text(st, 1);
        c.issuer = (const char *)sqlite3_column_text(st, 2);
        c.subject = (const char *)sqlite3_column_text(st, 3);
        c.ours = sqlite3_column_int(st, 4) != 0;
        c.added_at = sqlite3_column_int64(st, 5);
        c.der = sqlite3_column_blob(st, 6);
        c.der_len = (size_t)sqlite3_column_bytes(st, 6);
        if (cb(arg, &c) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = sq_db_err(s, err, "device certificates");
    sqlite3_finalize(st);
    return rc;
}

int sq_device_naming_get(fp_store *base, const char *project, int *rule, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    *rule = 0;
    if ((rc = dev_stmt(s, DEV_STMT_NAMING, "SELECT device_naming FROM projects WHERE name = ?",
                       &st, err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *rule = sqlite3_column_int(st, 0);
    else if (step == SQLITE_DONE)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", project);
    else
        rc = sq_db_err(s, err, "device naming");
    dev_done(st);
    return rc;
}

int sq_device_naming_set(fp_store *base, const char *project, int rule,
                         const fp_audit_event *ev, fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sq_begin(s, err)) != FP_ERR_OK)
        return rc;
    if (sqlite3_prepare_v2(s->db, "UPDATE projects SET device_naming = ? WHERE name = ?", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "device naming");
        goto out;
    }
    sqlite3_bind_int(st, 1, rule);
    sqlite3_bind_text(st, 2, project, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "device naming");
    else if (sqlite3_changes(s->db) != 1)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", project);
out:
    sqlite3_finalize(st);
    return sq_finish_write(s, ev, rc, err);
}
