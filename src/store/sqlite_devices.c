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

/* Every device read selects these columns; tags is the JSON object text
 * kept on the row (migration 7; rewritten by sq_device_tag).  device_tags
 * holds copies of all but the name (DEV_TAG_COLS, the last migration), in
 * the same order: dev_rows reads either. */
#define DEV_COLS "d.name, d.state, d.first_seen, d.last_seen, d.tags"

/* Walk the rows of a device read (DEV_COLS), calling cb for each (project
 * given: every statement is scoped by it); *count receives the number of
 * devices.  cb's non-zero answer stops the walk (FP_ERR_OK, as every store
 * walk) and lands in *stopped. */
static int dev_rows(sqlite_store *s, sqlite3_stmt *st, const char *project, fp_device_cb cb,
                    void *arg, int *count, int *stopped, fp_error *err)
{
    fp_device_rec r;
    int step, rc = FP_ERR_OK, n = 0;

    *stopped = 0;
    memset(&r, 0, sizeof(r));
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *tags = sqlite3_column_text(st, 4);
        const unsigned char *name = sqlite3_column_text(st, 0);
        size_t pl = strlen(project), nl = (size_t)sqlite3_column_bytes(st, 0);
        /* plain copies: snprintf was a fifth of a page's CPU */
        if (pl >= sizeof(r.project) || name == NULL || nl >= sizeof(r.name)) {
            rc = fp_err_set(err, FP_ERR_STORE, "device row with an oversize name");
            break;
        }
        memcpy(r.project, project, pl + 1);
        memcpy(r.name, name, nl);
        r.name[nl] = '\0';
        r.state = sqlite3_column_int(st, 1);
        r.first_seen = sqlite3_column_int64(st, 2);
        r.last_seen = sqlite3_column_int64(st, 3);
        /* borrowed for the callback: valid until the next step */
        r.tags = tags ? (char *)tags : (char *)"{}";
        n++;
        if ((*stopped = cb(arg, &r)) != 0)
            break;
    }
    if (rc == FP_ERR_OK && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = sq_db_err(s, err, "device read");
    if (count != NULL)
        *count = n;
    return rc;
}

static int take_one(void *arg, const fp_device_rec *r)
{
    fp_device_rec *out = arg;
    *out = *r;
    return (out->tags = strdup(r->tags)) != NULL ? FP_ERR_OK : FP_ERR_NOMEM;
}

static int dev_read(sqlite_store *s, const char *project, const char *name, fp_device_rec *out,
                    fp_error *err)
{
    sqlite3_stmt *st = NULL;
    fp_device_rec tmp;
    int rc, n = 0, stopped = 0;

    if ((rc = sq_cached(s, SQ_C_DEV_READ,
                        "SELECT " DEV_COLS " FROM devices d WHERE d.project = ?1 AND d.name = ?2",
                        &st, err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    memset(&tmp, 0, sizeof(tmp));
    rc = dev_rows(s, st, project, take_one, &tmp, &n, &stopped, err);
    sq_cached_done(st);
    if (rc == FP_ERR_OK && stopped != 0)
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (rc == FP_ERR_OK && n == 0)
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no device '%s' in project '%s'", name, project);
    if (rc == FP_ERR_OK && out != NULL)
        *out = tmp;
    else
        fp_device_rec_clear(&tmp);
    return rc;
}

/* Run a kept statement without results (BEGIN, ROLLBACK, PRAGMA): the
 * first-contact path runs four of them per contact, and sqlite3_exec
 * prepared each anew. */
static int dev_exec(sqlite_store *s, int slot, const char *sql, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sq_cached(s, slot, sql, &st, err)) != FP_ERR_OK)
        return rc;
    rc = sqlite3_step(st) == SQLITE_DONE ? FP_ERR_OK : sq_db_err(s, err, sql);
    sq_cached_done(st);
    return rc;
}
/* Append (project, name, state) to the device change log inside the
 * caller's write transaction and prune what is older than
 * FP_STORE_CHANGES_KEEP entries (store_devices.h; table device_log). */
static int dev_log(sqlite_store *s, const char *project, const char *name, int state,
                   fp_error *err)
{
    char prune[96];
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sq_cached(s, SQ_C_DEV_LOG,
                        "INSERT INTO device_log (project, name, state, ts) VALUES (?,?,?,?)", &st,
                        err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, state);
    sqlite3_bind_int64(st, 4, fp_now());
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "device log insert");
    sq_cached_done(st);
    if (rc != FP_ERR_OK)
        return rc;
    snprintf(prune, sizeof(prune), "DELETE FROM device_log WHERE seq <= ?1 - %d",
             FP_STORE_CHANGES_KEEP);
    if ((rc = sq_cached(s, SQ_C_DEV_LOG_PRUNE, prune, &st, err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(s->db));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sq_db_err(s, err, "device log prune");
    sq_cached_done(st);
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


static void dev_read_end(sqlite_store *s)
{
    s->head_known = s->head_dirty = false;
    if (!sqlite3_get_autocommit(s->db) &&
        dev_exec(s, SQ_C_DEV_ROLLBACK, "ROLLBACK", NULL) != FP_ERR_OK)
        sq_rollback(s);
}

/* The name of the device of project that cert fp is linked to, if any. */
static int link_owner(sqlite_store *s, const char *project, const char *fp, char *owner,
                      size_t size, bool *found, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    *found = false;
    if ((rc = sq_cached(s, SQ_C_DEV_LINK,
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
    sq_cached_done(st);
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
    if ((rc = dev_exec(s, SQ_C_DEV_SYNC_NORMAL, "PRAGMA synchronous = NORMAL", err)) !=
        FP_ERR_OK)
        return rc;
    /* BEGIN IMMEDIATE: a racing first contact waits here, then finds the
     * row the winner inserted (INSERT OR IGNORE on the primary key) */
    if ((rc = sq_begin(s, err)) != FP_ERR_OK) {
        dev_exec(s, SQ_C_DEV_SYNC_FULL, "PRAGMA synchronous = FULL", NULL);
        return rc;
    }
    if ((rc = sq_project_exists(s, project, &found, err)) != FP_ERR_OK)
        goto out;
    if (!found) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s'", project);
        goto out;
    }
    if ((rc = sq_cached(s, SQ_C_DEV_INSERT,
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
    sq_cached_done(st);
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
            if ((rc = sq_cached(s, SQ_C_DEV_LINK_INSERT,
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
            sq_cached_done(st);
            st = NULL;
        }
    }
    /* a device just made is known without reading it back */
    if (out != NULL && made) {
        memset(out, 0, sizeof(*out));
        snprintf(out->project, sizeof(out->project), "%s", project);
        snprintf(out->name, sizeof(out->name), "%s", name);
        out->state = FP_DEV_ACTIVE;
        out->first_seen = out->last_seen = now;
        if ((out->tags = strdup("{}")) == NULL)
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    } else if (out != NULL) {
        rc = dev_read(s, project, name, out, err);
    }
out:
    sq_cached_done(st);
    rc = sq_finish_write(s, NULL, rc, err);
    /* every other write of this handle is durable again */
    if (dev_exec(s, SQ_C_DEV_SYNC_FULL, "PRAGMA synchronous = FULL",
                 rc == FP_ERR_OK ? err : NULL) != FP_ERR_OK &&
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
    if ((rc = dev_exec(s, SQ_C_DEV_BEGIN_READ, "BEGIN", err)) != FP_ERR_OK)
        return rc;
    rc = dev_read(s, project, name, out, err);
    if (rc == FP_ERR_OK && cert_fp != NULL && linked != NULL) {
        bool found = false;
        rc = link_owner(s, project, cert_fp, owner, sizeof(owner), &found, err);
        *linked = found && strcmp(owner, name) == 0;
    }
    dev_read_end(s);
    if (rc != FP_ERR_OK && out != NULL)
        fp_device_rec_clear(out);
    return rc;
}

/* A page of the device list is one statement, kept prepared per filter
 * variant.  Keyset pagination: name > ?3 ('' on the first page: names are
 * never empty).  The name prefix is a range on the same key, [?4, ?8)
 * (prefix_end below), so neither needs a variant of its own.  It used to
 * be ?4 <= name plus substr(name, 1, length(?4)) = ?4 on every row read:
 * two SQL function calls a row, 10 us of a 100-device page's 38 us of
 * SQLite at 1,000,000 devices, paid by every list with or without a
 * prefix.
 *   no tag filter: the primary key (project, name) of the clustered
 *     devices table, or devices_state (project, state, name) with a state
 *     filter, in name order;
 *   tag=KEY=VALUE: device_tags_kv (project, key, value, name, state,
 *     first_seen, last_seen, tags), in name order, covering (the last
 *     migration): the page is one range of that index, devices is not
 *     read.  It used to join each hit to devices, one descent of that
 *     B-tree by its text key per device: 81 us of SQL for a page of 100
 *     hits at 1,000,000 devices, 33 us without the join (BENCHMARKS.md);
 *   tag=KEY: device_tags_key (project, key, name) in name order, each hit's
 *     columns read from its own device_tags row (by rowid, an integer
 *     key), not from devices.
 * The copies in device_tags are kept equal to devices by triggers
 * (sqlite_migrate.c), so every variant answers what a device read says.
 * Each reads about the page and nothing more (EXPLAIN QUERY PLAN checked
 * in tests/unit/test_store_sqlite.c); the tag filter used to walk the whole
 * project in name order, testing each device's tags. */
#define DEV_LIST_RANGE(col) " AND " col " > ?3 AND " col " >= ?4 AND " col " < ?8"
#define DEV_TAG_COLS "x.name, x.state, x.first_seen, x.last_seen, x.tags"
#define DEV_LIST_BY_TAG(index, cond)                                                       \
    "SELECT " DEV_TAG_COLS " FROM device_tags x INDEXED BY " index                         \
    " WHERE x.project = ?1 AND x.key = ?5" cond DEV_LIST_RANGE("x.name")                   \
    " ORDER BY x.name LIMIT ?7"
static const char *const dev_list_sql[SQ_C_DEV_LIST_N] = {
    /* 0: no tag filter, any state */
    "SELECT " DEV_COLS " FROM devices d WHERE d.project = ?1" DEV_LIST_RANGE("d.name")
    " ORDER BY d.name LIMIT ?7",
    /* 1: no tag filter, one state */
    "SELECT " DEV_COLS " FROM devices d INDEXED BY devices_state WHERE d.project = ?1"
    " AND d.state = ?2" DEV_LIST_RANGE("d.name") " ORDER BY d.name LIMIT ?7",
    /* 2: tag key, any state */
    DEV_LIST_BY_TAG("device_tags_key", ""),
    /* 3: tag key, one state */
    DEV_LIST_BY_TAG("device_tags_key", " AND x.state = ?2"),
    /* 4: tag key and value, any state */
    DEV_LIST_BY_TAG("device_tags_kv", " AND x.value = ?6"),
    /* 5: tag key and value, one state */
    DEV_LIST_BY_TAG("device_tags_kv", " AND x.value = ?6 AND x.state = ?2"),
};

/* The SQL of list variant v (for the query-plan test). */
const char *sq_device_list_sql(int v)
{
    return v >= 0 && v < SQ_C_DEV_LIST_N ? dev_list_sql[v] : NULL;
}

/* The end of the names starting with prefix p in SQLite's BINARY order
 * (memcmp): p with its last byte below 0xff incremented and what follows
 * that byte cut off, in end (FP_DEVICE_NAME_MAX bytes); names >= p and <
 * end are exactly those starting with p.  False when there is no such
 * byte (p empty or all 0xff): every name >= p starts with it then.  p is
 * shorter than FP_DEVICE_NAME_MAX (sq_device_list). */
static bool prefix_end(const char *p, char *end, size_t *len)
{
    size_t n = strlen(p);

    while (n > 0 && (unsigned char)p[n - 1] == 0xff)
        n--;
    if (n == 0)
        return false;
    memcpy(end, p, n);
    end[n - 1] = (char)((unsigned char)p[n - 1] + 1);
    *len = n;
    return true;
}

int sq_device_list(fp_store *base, const fp_device_filter *f, fp_device_cb cb, void *arg,
                   fp_error *err)
{
    sqlite_store *s = SQ(base);
    sqlite3_stmt *st = NULL;
    char end[FP_DEVICE_NAME_MAX];
    size_t end_len = 0;
    int rc, v;

    /* no name is that long (dev_rows refuses a row with one) */
    if (f->name_prefix != NULL && strlen(f->name_prefix) >= FP_DEVICE_NAME_MAX)
        return FP_ERR_OK;
    v = (f->state >= 0 ? 1 : 0) + (f->tag_key ? (f->tag_value ? 4 : 2) : 0);
    if ((rc = sq_cached(s, SQ_C_DEV_LIST + v, dev_list_sql[v], &st, err)) != FP_ERR_OK)
        return rc;
    sqlite3_bind_text(st, 1, f->project, -1, SQLITE_STATIC);
    if (f->state >= 0)
        sqlite3_bind_int(st, 2, f->state);
    sqlite3_bind_text(st, 3, f->after ? f->after : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, f->name_prefix ? f->name_prefix : "", -1, SQLITE_STATIC);
    if (f->tag_key) {
        sqlite3_bind_text(st, 5, f->tag_key, -1, SQLITE_STATIC);
        if (f->tag_value)
            sqlite3_bind_text(st, 6, f->tag_value, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int(st, 7, f->limit);
    /* no end: a BLOB, which sorts after every TEXT value (SQLite's
     * datatype comparison rules), so name < ?8 holds for every name */
    if (f->name_prefix != NULL && prefix_end(f->name_prefix, end, &end_len))
        sqlite3_bind_text(st, 8, end, (int)end_len, SQLITE_STATIC);
    else
        sqlite3_bind_blob(st, 8, "", 0, SQLITE_STATIC);
    rc = dev_rows(s, st, f->project, cb, arg, NULL, &v, err);
    sq_cached_done(st);
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
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_db_err(s, err, "device tag");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* a new key past FP_DEVICE_TAGS_MAX: refused, rolled back */
    if (value != NULL) {
        if (sqlite3_prepare_v2(s->db,
                               "SELECT count(*) FROM device_tags WHERE project = ?1 AND name = ?2",
                               -1, &st, NULL) != SQLITE_OK) {
            rc = sq_db_err(s, err, "device tag");
            goto out;
        }
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
            rc = sq_db_err(s, err, "device tag");
            goto out;
        }
        if (sqlite3_column_int64(st, 0) > FP_DEVICE_TAGS_MAX) {
            rc = fp_err_set(err, FP_ERR_STATE, "a device holds at most %d tags",
                            FP_DEVICE_TAGS_MAX);
            goto out;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    /* the row's copy of the tags (migration 7), in the same transaction */
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE devices SET tags = coalesce((SELECT json_group_object(key,"
                           " value) FROM (SELECT key, value FROM device_tags INDEXED BY"
                           " sqlite_autoindex_device_tags_1 WHERE project = ?1 AND name = ?2"
                           " ORDER BY key)), '{}') WHERE project = ?1 AND name = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "device tag");
        goto out;
    }
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
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
    if ((rc = sq_cached(s, SQ_C_DEV_NAMING, "SELECT device_naming FROM projects WHERE name = ?",
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
    sq_cached_done(st);
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
