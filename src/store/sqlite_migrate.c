/*
 * sqlite_migrate.c - the SQLite backend's schema, as numbered migrations.
 *
 * Every table and index is created here and nowhere else.  PRAGMA
 * user_version records how many migrations a store has had; each runs in
 * its own write transaction together with the new version number, so a
 * crash leaves a store at one version or the next.  Append new migrations;
 * never edit a shipped one (a store made by it would not be made again).
 *
 * Versions: 1 and 2 shipped with fleetpki 0.1 (the first release); 3 takes
 * over the revocation objects that 0.1 created outside the migrations, on
 * every open, with IF NOT EXISTS (so it copes with stores that have them
 * and with stores that do not); 4 brings projects (issue 9); 5 the device
 * registry (issue 10); the last one, copies of the device columns in
 * device_tags (issue 10's tag filter).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "../x509/x509util.h"
#include "sqlite_int.h"

typedef struct {
    const char *sql;
    /* run after sql in the same transaction, or NULL */
    int (*fixup)(sqlite_store *s, fp_error *err);
} migration;

static int ca_fill_from_der(sqlite_store *s, fp_error *err);

static const migration migrations[] = {
    /* 1: initial schema */
    {"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
     "CREATE TABLE ca ("
     "  id TEXT PRIMARY KEY, parent_id TEXT, der BLOB NOT NULL,"
     "  created_at INTEGER NOT NULL);"
     "CREATE TABLE certificates ("
     "  serial TEXT PRIMARY KEY,"
     "  ca_id TEXT NOT NULL REFERENCES ca(id),"
     "  profile TEXT NOT NULL,"
     "  subject TEXT NOT NULL,"
     "  sans TEXT NOT NULL DEFAULT '',"
     "  not_before INTEGER NOT NULL,"
     "  not_after INTEGER NOT NULL,"
     "  issued_at INTEGER NOT NULL,"
     "  status INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1)),"
     "  revoked_at INTEGER,"
     "  reason INTEGER,"
     "  der BLOB NOT NULL);"
     "CREATE INDEX certificates_not_after ON certificates(not_after);"
     "CREATE INDEX certificates_status ON certificates(status, ca_id);"
     "CREATE TABLE audit ("
     "  id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
     "  actor TEXT NOT NULL, action TEXT NOT NULL,"
     "  object TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',"
     "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
     /* append-only by construction; tampering needs a deliberate schema
      * change, and `audit verify` catches what gets through */
     "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
     "  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
     "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
     "  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
     "INSERT INTO meta VALUES ('audit_head_id', '0');"
     "INSERT INTO meta VALUES ('audit_head_hash', '" FP_AUDIT_GENESIS "');",
     NULL},
    /* 2: EST enrollment tokens (only a hash of the secret) and requests
     * held for manual approval */
    {"CREATE TABLE enroll_tokens ("
     "  id TEXT PRIMARY KEY, label TEXT NOT NULL, hash BLOB NOT NULL,"
     "  cn_pattern TEXT NOT NULL DEFAULT '',"
     "  uses_left INTEGER NOT NULL CHECK (uses_left >= 0),"
     "  expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL);"
     "CREATE TABLE pending_requests ("
     "  id INTEGER PRIMARY KEY, label TEXT NOT NULL, csr_hash TEXT NOT NULL,"
     "  csr BLOB NOT NULL, subject TEXT NOT NULL DEFAULT '', actor TEXT NOT NULL DEFAULT '',"
     "  status INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2)),"
     "  serial TEXT, created_at INTEGER NOT NULL, decided_at INTEGER,"
     "  UNIQUE (label, csr_hash));",
     NULL},
    /* 3: status tracking, formerly created on open outside the migrations
     * (0.1 stores have these objects already, hence IF NOT EXISTS).
     *   cert_status_log(seq, serial, ca_id, ts): one row per status change,
     *     written in the transaction that changes the status.  seq is an
     *     AUTOINCREMENT key, so it never goes back even after pruning.
     *   cert_revoked_crl: a partial index on (ca_id, serial, revoked_at,
     *     reason, status) WHERE status = 1.  It covers the revoked-entries
     *     query (status must be in it too, or SQLite visits the table to
     *     re-check the condition), which therefore walks only revoked rows,
     *     already in serial order, without touching the table (no DER
     *     blobs read, no sort, flat memory).  An earlier draft's index
     *     without status is dropped. */
    {"CREATE TABLE IF NOT EXISTS cert_status_log ("
     "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  serial TEXT NOT NULL, ca_id TEXT NOT NULL, ts INTEGER NOT NULL);"
     "DROP INDEX IF EXISTS certificates_revoked;"
     "CREATE INDEX IF NOT EXISTS cert_revoked_crl"
     "  ON certificates(ca_id, serial, revoked_at, reason, status) WHERE status = 1;",
     NULL},
    /* 4: projects.  Every row that belongs to a project names it; what a
     * 0.1 store holds goes to project 'default' (its root becomes the
     * shared root, kind 0 with no project; its issuing CA the active
     * issuing CA, kind 1, of 'default').  Foreign keys are off while this
     * runs (ALTER TABLE cannot add a referencing column with a non-NULL
     * default otherwise) and are checked before it commits.
     * pending_requests is rebuilt: its uniqueness becomes per project. */
    {"CREATE TABLE projects (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);"
     "INSERT INTO projects VALUES ('default', CAST(strftime('%s', 'now') AS INTEGER));"
     "ALTER TABLE ca ADD COLUMN project TEXT REFERENCES projects(name);"
     "ALTER TABLE ca ADD COLUMN kind INTEGER NOT NULL DEFAULT 1 CHECK (kind IN (0, 1, 2));"
     "ALTER TABLE ca ADD COLUMN key_ref TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE ca ADD COLUMN active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1));"
     "ALTER TABLE ca ADD COLUMN subject TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE ca ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE ca ADD COLUMN not_after INTEGER NOT NULL DEFAULT 0;"
     "UPDATE ca SET kind = 0 WHERE parent_id IS NULL;"
     "UPDATE ca SET project = 'default' WHERE parent_id IS NOT NULL;"
     /* 0.1 made one issuing CA; should there be more, the newest issues */
     "UPDATE ca SET active = 1 WHERE id = (SELECT id FROM ca WHERE parent_id IS NOT NULL"
     "  ORDER BY created_at DESC, id DESC LIMIT 1);"
     "CREATE UNIQUE INDEX ca_active ON ca(project) WHERE active = 1;"
     "CREATE INDEX ca_project ON ca(project, created_at);"
     "ALTER TABLE certificates ADD COLUMN project TEXT NOT NULL DEFAULT 'default'"
     "  REFERENCES projects(name);"
     "CREATE INDEX certificates_project ON certificates(project, issued_at);"
     "ALTER TABLE enroll_tokens ADD COLUMN project TEXT NOT NULL DEFAULT 'default'"
     "  REFERENCES projects(name);"
     "CREATE TABLE pending_requests_4 ("
     "  id INTEGER PRIMARY KEY,"
     "  project TEXT NOT NULL REFERENCES projects(name),"
     "  label TEXT NOT NULL, csr_hash TEXT NOT NULL,"
     "  csr BLOB NOT NULL, subject TEXT NOT NULL DEFAULT '', actor TEXT NOT NULL DEFAULT '',"
     "  status INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2)),"
     "  serial TEXT, created_at INTEGER NOT NULL, decided_at INTEGER,"
     "  UNIQUE (project, label, csr_hash));"
     "INSERT INTO pending_requests_4 (id, project, label, csr_hash, csr, subject, actor,"
     "  status, serial, created_at, decided_at)"
     "  SELECT id, 'default', label, csr_hash, csr, subject, actor, status, serial,"
     "  created_at, decided_at FROM pending_requests;"
     "DROP TABLE pending_requests;"
     "ALTER TABLE pending_requests_4 RENAME TO pending_requests;"
     "CREATE INDEX pending_status ON pending_requests(status, id);"
     "ALTER TABLE audit ADD COLUMN project TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE cert_status_log ADD COLUMN project TEXT NOT NULL DEFAULT '';",
     ca_fill_from_der},
    /* 5: the device registry (issue 10, src/store/store_devices.h).
     *   devices: keyed (project, name), which is also the keyset-pagination
     *     order; devices_state serves the state filter in name order.
     *   device_tags: one row per tag; device_tags_kv serves the tag filter.
     *   device_certs: every certificate a device has held, keyed by
     *     (project, SHA-256 of its DER) so that one certificate belongs to
     *     one device of a project; ours = 1 for one we issued (also a row
     *     of certificates), 0 for one under a bring-your-own root, kept
     *     here whole (serial, issuer, subject, DER) since no other table
     *     has it.
     *   projects.device_naming: the rule naming devices from their
     *     certificates (0 cn, 1 san-uri, 2 san-dns, 3 serialnumber). */
    {"CREATE TABLE devices ("
     "  project TEXT NOT NULL REFERENCES projects(name),"
     "  name TEXT NOT NULL,"
     "  state INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"
     "  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
     "  PRIMARY KEY (project, name));"
     "CREATE INDEX devices_state ON devices(project, state, name);"
     "CREATE TABLE device_tags ("
     "  project TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
     "  PRIMARY KEY (project, name, key),"
     "  FOREIGN KEY (project, name) REFERENCES devices(project, name));"
     "CREATE INDEX device_tags_kv ON device_tags(project, key, value, name);"
     "CREATE TABLE device_certs ("
     "  project TEXT NOT NULL, fp TEXT NOT NULL, name TEXT NOT NULL,"
     "  serial TEXT NOT NULL, issuer TEXT NOT NULL, subject TEXT NOT NULL,"
     "  ours INTEGER NOT NULL CHECK (ours IN (0, 1)),"
     "  added_at INTEGER NOT NULL, der BLOB NOT NULL,"
     "  PRIMARY KEY (project, fp),"
     "  FOREIGN KEY (project, name) REFERENCES devices(project, name));"
     "CREATE INDEX device_certs_device ON device_certs(project, name, added_at);"
     "ALTER TABLE projects ADD COLUMN device_naming INTEGER NOT NULL DEFAULT 0"
     "  CHECK (device_naming IN (0, 1, 2, 3));",
     NULL},
    /* 6: API keys of the admin REST API: only SHA-256 of each secret.
     * project '' is an admin key (every project), hence no foreign key
     * on it; a project key names an existing project (checked on put). */
    {"CREATE TABLE api_keys ("
     "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT '',"
     "  read_only INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),"
     "  hash BLOB NOT NULL, created_at INTEGER NOT NULL,"
     "  revoked_at INTEGER NOT NULL DEFAULT 0);",
     NULL},
    /* device change log (issue 11, store_devices.h): one row per
     * registration and per state change, written in that transaction; seq
     * is AUTOINCREMENT so it never goes back, even after pruning.  A
     * broker plugin polls it to follow the devices without reading them
     * all. */
    {"CREATE TABLE device_log ("
     "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  project TEXT NOT NULL, name TEXT NOT NULL,"
     "  state INTEGER NOT NULL, ts INTEGER NOT NULL);",
     NULL},
    /* firmware signatures (store_firmware.h): one row per signature made;
     * the (project, class_id, sequence) index answers "highest sequence
     * of the class" without a scan.  Not unique: a forced re-sign may
     * repeat a sequence. */
    {"CREATE TABLE firmware_signatures ("
     "  id INTEGER PRIMARY KEY,"
     "  project TEXT NOT NULL REFERENCES projects(name),"
     "  vendor_id TEXT NOT NULL, class_id TEXT NOT NULL, version TEXT NOT NULL,"
     "  sequence INTEGER NOT NULL CHECK (sequence >= 1),"
     "  format TEXT NOT NULL CHECK (format IN ('suit', 'cms')),"
     "  image_sha256 TEXT NOT NULL, image_size INTEGER NOT NULL,"
     "  signer_serial TEXT NOT NULL, actor TEXT NOT NULL,"
     "  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),"
     "  created_at INTEGER NOT NULL);"
     "CREATE INDEX firmware_signatures_seq ON firmware_signatures (project, class_id, sequence);",
     NULL},
    /* The device registry's read path at 1,000,000 devices (issue 10,
     * bench/run-registry-api.sh, src/store/sqlite_devices.c):
     *   devices becomes a WITHOUT ROWID table clustered on (project,
     *     name): a page of the list is one range of the primary key's
     *     B-tree, with no second lookup per device into a rowid table;
     *   devices.tags keeps the device's tags as one JSON object text
     *     (json_group_object, keys in byte order), rewritten with every
     *     tag change in the same transaction: reading 100 devices' tags
     *     from device_tags was one B-tree descent per device, ~6x the cost
     *     of the page itself.  device_tags stays the source the filters
     *     walk;
     *   device_tags_key (project, key, name) serves the filter by a tag
     *     key alone (any value) in name order; device_tags_kv serves a
     *     key with a value.
     * The copy names the tags' primary-key index: without statistics the
     * planner would take device_tags_kv, which narrows by project only. */
    {"CREATE TABLE devices_7 ("
     "  project TEXT NOT NULL REFERENCES projects(name),"
     "  name TEXT NOT NULL,"
     "  state INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"
     "  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
     "  tags TEXT NOT NULL DEFAULT '{}',"
     "  PRIMARY KEY (project, name)) WITHOUT ROWID;"
     "INSERT INTO devices_7 (project, name, state, first_seen, last_seen, tags)"
     "  SELECT project, name, state, first_seen, last_seen,"
     "  coalesce((SELECT json_group_object(key, value) FROM (SELECT key, value"
     "    FROM device_tags t INDEXED BY sqlite_autoindex_device_tags_1"
     "    WHERE t.project = d.project AND t.name = d.name ORDER BY key)), '{}')"
     "  FROM devices d;"
     "DROP TABLE devices;"
     "ALTER TABLE devices_7 RENAME TO devices;"
     "CREATE INDEX devices_state ON devices(project, state, name);"
     "CREATE INDEX device_tags_key ON device_tags(project, key, name);",
     NULL},
    /* issue 15: the newest CRL of each CA, published by the node that
     * generated it for the others to serve (store_status.h); seq: the
     * status-change seq it covers.  (PostgreSQL: pg_migrate.c, same.) */
    {"CREATE TABLE crl_published ("
     "  ca_id TEXT PRIMARY KEY, number INTEGER NOT NULL, seq INTEGER NOT NULL,"
     "  this_update INTEGER NOT NULL, next_update INTEGER NOT NULL, der BLOB NOT NULL);",
     NULL},
    /* The tag filter at 1,000,000 devices (issue 10, docs/registry.md
     * "Tag pages never read devices"): a tag=KEY=VALUE page read
     * device_tags_kv, then descended the devices B-tree once per hit by
     * its text key (project, name) for the device's columns: two thirds
     * of the page's SQL time.
     *   device_tags gets copies of the device columns a list answer reads
     *     (state, first_seen, last_seen, tags: DEV_COLS in
     *     sqlite_devices.c), filled here from devices;
     *   device_tags_kv becomes covering: (project, key, value, name, then
     *     the copies), so a tag=KEY=VALUE page is one range of that index
     *     and reads neither device_tags' rows nor devices;
     *   the tag=KEY filter still walks device_tags_key (project, key,
     *     name) but reads the copies from device_tags' own row (one
     *     integer rowid lookup per hit), not from devices.
     * Two triggers keep the copies equal to devices inside the writing
     * statement's own transaction, whoever writes (store calls, the
     * batched last-seen flush, the CLI, the Mosquitto plugin, bulk loads):
     *   devices_to_tags: a change of a copied column of a device rewrites
     *     every tag row of that device (found by the primary key's index
     *     (project, name, key));
     *   device_tags_from_device: a new tag row takes its copies from its
     *     device (the foreign key says there is one).
     * The price is on the writes of tagged devices only: each last-seen
     * update, state or tag change of a device with k tags also rewrites k
     * device_tags rows and k device_tags_kv entries.  At 1,000,000
     * devices with 2 tags each: a tagged device's last-seen write ~6x the
     * CPU (11 -> 70 us), a state change +43 us, a tag set ~1.8x, the tag
     * page's server CPU 137-147 -> 87-100 us, +147 MiB on disk, 12 s to
     * migrate (BENCHMARKS.md, "Device registry (issue 10)").  A device
     * without tags (every first contact makes one) costs one empty index
     * probe more per update; inserting a device fires nothing.  The
     * device's tags JSON is held once per tag: a device with k tags
     * stores it k + 1 times. */
    {"ALTER TABLE device_tags ADD COLUMN state INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE device_tags ADD COLUMN first_seen INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE device_tags ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE device_tags ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';"
     "UPDATE device_tags SET state = d.state, first_seen = d.first_seen,"
     "  last_seen = d.last_seen, tags = d.tags"
     "  FROM devices d WHERE d.project = device_tags.project AND d.name = device_tags.name;"
     "DROP INDEX device_tags_kv;"
     "CREATE INDEX device_tags_kv ON device_tags(project, key, value, name,"
     "  state, first_seen, last_seen, tags);"
     "CREATE TRIGGER devices_to_tags AFTER UPDATE OF state, first_seen, last_seen, tags"
     "  ON devices WHEN OLD.state IS NOT NEW.state OR OLD.first_seen IS NOT NEW.first_seen"
     "    OR OLD.last_seen IS NOT NEW.last_seen OR OLD.tags IS NOT NEW.tags"
     "  BEGIN UPDATE device_tags SET state = NEW.state, first_seen = NEW.first_seen,"
     "    last_seen = NEW.last_seen, tags = NEW.tags"
     "    WHERE project = NEW.project AND name = NEW.name; END;"
     "CREATE TRIGGER device_tags_from_device AFTER INSERT ON device_tags"
     "  BEGIN UPDATE device_tags SET (state, first_seen, last_seen, tags) ="
     "    (SELECT d.state, d.first_seen, d.last_seen, d.tags FROM devices d"
     "     WHERE d.project = NEW.project AND d.name = NEW.name)"
     "    WHERE rowid = NEW.rowid; END;",
     NULL},
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(*migrations)))

/* Migration 4: the new subject and validity columns of CA rows made
 * before them, read from each row's certificate.  A row whose DER does not
 * parse keeps '' and 0 (nothing else depends on them). */
static int ca_fill_from_der(sqlite_store *s, fp_error *err)
{
    sqlite3_stmt *sel = NULL, *upd = NULL;
    int rc = FP_ERR_OK, step;

    if (sqlite3_prepare_v2(s->db, "SELECT id, der FROM ca", -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "UPDATE ca SET subject = ?, not_before = ?, not_after = ? WHERE id = ?",
                           -1, &upd, NULL) != SQLITE_OK) {
        rc = sq_db_err(s, err, "CA rows");
        goto out;
    }
    while ((step = sqlite3_step(sel)) == SQLITE_ROW) {
        const unsigned char *p = sqlite3_column_blob(sel, 1);
        X509 *x = p ? d2i_X509(NULL, &p, sqlite3_column_bytes(sel, 1)) : NULL;
        char *subject = x ? fp_name_string(X509_get_subject_name(x)) : NULL;
        if (subject != NULL) {
            sqlite3_bind_text(upd, 1, subject, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(upd, 2, fp_asn1_time_unix(X509_get0_notBefore(x)));
            sqlite3_bind_int64(upd, 3, fp_asn1_time_unix(X509_get0_notAfter(x)));
            sqlite3_bind_value(upd, 4, sqlite3_column_value(sel, 0));
            rc = sq_step_once(s, upd, "CA rows", err);
            sqlite3_clear_bindings(upd);
        }
        free(subject);
        X509_free(x);
        if (rc != FP_ERR_OK)
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = sq_db_err(s, err, "CA rows");
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    return rc;
}

static int user_version(sqlite_store *s, int *version, fp_error *err)
{
    sqlite3_stmt *st = NULL;

    *version = 0;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "user_version");
    if (sqlite3_step(st) == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return FP_ERR_OK;
}

/* Any row breaking a foreign key after a migration fails it. */
static int foreign_keys_hold(sqlite_store *s, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK, step;

    if (sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
        return sq_db_err(s, err, "foreign_key_check");
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = fp_err_set(err, FP_ERR_STORE, "migration left a row of %s without its %s",
                        (const char *)sqlite3_column_text(st, 0),
                        (const char *)sqlite3_column_text(st, 2));
    else if (step != SQLITE_DONE)
        rc = sq_db_err(s, err, "foreign_key_check");
    sqlite3_finalize(st);
    return rc;
}

int sq_migrate(sqlite_store *s, fp_error *err)
{
    int version = 0, rc;

    if ((rc = user_version(s, &version, err)) != FP_ERR_OK)
        return rc;
    if (version > N_MIGRATIONS)
        return fp_err_set(err, FP_ERR_STORE,
                          "store schema version %d is newer than this fleetpki (%d)",
                          version, N_MIGRATIONS);
    if (version == N_MIGRATIONS)
        return FP_ERR_OK; /* the common case: no write lock taken */
    if ((rc = sq_exec(s, "PRAGMA foreign_keys = OFF", err)) != FP_ERR_OK)
        return rc;
    for (;;) {
        char pragma[64];
        const migration *m;
        if ((rc = sq_begin(s, err)) != FP_ERR_OK)
            return rc;
        /* again under the write lock: another process may have migrated */
        if ((rc = user_version(s, &version, err)) != FP_ERR_OK)
            goto fail;
        if (version >= N_MIGRATIONS) {
            sq_rollback(s);
            return version == N_MIGRATIONS
                       ? FP_ERR_OK
                       : fp_err_set(err, FP_ERR_STORE,
                                    "store schema version %d is newer than this fleetpki (%d)",
                                    version, N_MIGRATIONS);
        }
        m = &migrations[version];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version + 1);
        if ((rc = sq_exec(s, m->sql, err)) != FP_ERR_OK ||
            (m->fixup != NULL && (rc = m->fixup(s, err)) != FP_ERR_OK) ||
            (rc = foreign_keys_hold(s, err)) != FP_ERR_OK ||
            (rc = sq_exec(s, pragma, err)) != FP_ERR_OK)
            goto fail;
        if ((rc = sq_commit(s, err)) != FP_ERR_OK)
            goto fail;
    }
fail:
    sq_rollback(s);
    return rc;
}
