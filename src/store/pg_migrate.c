/*
 * pg_migrate.c - the PostgreSQL backend's schema, as numbered migrations.
 *
 * Migration N here is SQLite's migration N (sqlite_migrate.c) in
 * PostgreSQL's dialect, so a store has the same version on either backend
 * and a new migration is added to both the same way:
 *
 *   TO ADD ONE: append an entry at the END of migrations[] below whose
 *   number matches the new sqlite_migrate.c entry, then run
 *   ctest -R unit_store_pg (the conformance suite on PostgreSQL).
 *   Dialect: INTEGER -> BIGINT (unix times) or INTEGER, BLOB -> BYTEA,
 *   text keys and anything ordered by name -> TEXT COLLATE "C" (byte
 *   order, as SQLite compares), 0/1 flags -> BOOLEAN only where the
 *   backend's C code expects it (ca.active), INSERT OR IGNORE -> ON
 *   CONFLICT DO NOTHING; a SQLite table rebuild is usually an ALTER TABLE.
 *
 * The version lives in table fleetpki_schema.  Each migration runs in a
 * transaction of its own together with the new version number, under the
 * transaction-scoped advisory lock MIGRATE_LOCK: when several nodes start
 * at once on a new or older database one migrates, the others wait on the
 * lock and then find the schema current (they re-read the version under
 * the lock).  Opening a current store takes no lock at all.
 *
 * Never edit a shipped entry; a store made by it would not be made again.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

/* pg_advisory_xact_lock key of schema changes ("fpschema" as ASCII). */
#define MIGRATE_LOCK "7378441575087218017"

typedef struct {
    const char *sql; /* one or more statements */
} migration;

static const migration migrations[] = {
    /* 1: initial schema (SQLite 1).  certificates.rid stands in for
     * SQLite's rowid: insertion order breaks issue-time ties in lists. */
    {"CREATE TABLE meta (key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL);"
     "CREATE TABLE ca ("
     "  id TEXT COLLATE \"C\" PRIMARY KEY, parent_id TEXT COLLATE \"C\", der BYTEA NOT NULL,"
     "  created_at BIGINT NOT NULL);"
     "CREATE TABLE certificates ("
     "  serial TEXT COLLATE \"C\" PRIMARY KEY,"
     "  ca_id TEXT COLLATE \"C\" NOT NULL REFERENCES ca(id),"
     "  profile TEXT NOT NULL,"
     "  subject TEXT NOT NULL,"
     "  sans TEXT NOT NULL DEFAULT '',"
     "  not_before BIGINT NOT NULL,"
     "  not_after BIGINT NOT NULL,"
     "  issued_at BIGINT NOT NULL,"
     "  status SMALLINT NOT NULL DEFAULT 0 CHECK (status IN (0, 1)),"
     "  revoked_at BIGINT,"
     "  reason INTEGER,"
     "  der BYTEA NOT NULL,"
     "  rid BIGSERIAL);"
     "CREATE INDEX certificates_not_after ON certificates(not_after);"
     "CREATE INDEX certificates_status ON certificates(status, ca_id);"
     "CREATE TABLE audit ("
     "  id BIGINT PRIMARY KEY, ts BIGINT NOT NULL,"
     "  actor TEXT NOT NULL, action TEXT NOT NULL,"
     "  object TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',"
     "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
     /* append-only by construction, as in SQLite; `audit verify` catches
      * what an owner who drops the triggers gets through */
     "CREATE FUNCTION fleetpki_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
     "  $$BEGIN RAISE EXCEPTION 'audit log is append-only'; END$$;"
     "CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit"
     "  FOR EACH ROW EXECUTE FUNCTION fleetpki_audit_append_only();"
     "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
     "  FOR EACH STATEMENT EXECUTE FUNCTION fleetpki_audit_append_only();"
     "INSERT INTO meta VALUES ('audit_head_id', '0');"
     "INSERT INTO meta VALUES ('audit_head_hash', '" FP_AUDIT_GENESIS "');"},
    /* 2: enrollment tokens and requests held for approval (SQLite 2) */
    {"CREATE TABLE enroll_tokens ("
     "  id TEXT COLLATE \"C\" PRIMARY KEY, label TEXT NOT NULL, hash BYTEA NOT NULL,"
     "  cn_pattern TEXT NOT NULL DEFAULT '',"
     "  uses_left INTEGER NOT NULL CHECK (uses_left >= 0),"
     "  expires_at BIGINT NOT NULL, created_at BIGINT NOT NULL);"
     "CREATE TABLE pending_requests ("
     "  id BIGSERIAL PRIMARY KEY, label TEXT COLLATE \"C\" NOT NULL,"
     "  csr_hash TEXT COLLATE \"C\" NOT NULL,"
     "  csr BYTEA NOT NULL, subject TEXT NOT NULL DEFAULT '', actor TEXT NOT NULL DEFAULT '',"
     "  status SMALLINT NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2)),"
     "  serial TEXT, created_at BIGINT NOT NULL, decided_at BIGINT,"
     "  CONSTRAINT pending_unique UNIQUE (label, csr_hash));"},
    /* 3: status tracking (SQLite 3).  seq is assigned max + 1 under the
     * audit head lock (pg_status.c), not from a sequence, so that seq
     * order is commit order across nodes.  The partial index covers the
     * revoked-entries query (an index-only scan in serial order). */
    {"CREATE TABLE IF NOT EXISTS cert_status_log ("
     "  seq BIGINT PRIMARY KEY,"
     "  serial TEXT COLLATE \"C\" NOT NULL, ca_id TEXT COLLATE \"C\" NOT NULL,"
     "  ts BIGINT NOT NULL);"
     "CREATE INDEX IF NOT EXISTS cert_revoked_crl"
     "  ON certificates(ca_id, serial) INCLUDE (revoked_at, reason) WHERE status = 1;"},
    /* 4: projects (SQLite 4).  SQLite's fixup that fills the new CA
     * columns from each row's certificate has no counterpart: a
     * PostgreSQL store is created by a fleetpki that has migration 4, so
     * it never holds CA rows from before it. */
    {"CREATE TABLE projects (name TEXT COLLATE \"C\" PRIMARY KEY, created_at BIGINT NOT NULL);"
     "INSERT INTO projects VALUES ('default', extract(epoch FROM now())::bigint);"
     "ALTER TABLE ca ADD COLUMN project TEXT COLLATE \"C\" REFERENCES projects(name),"
     "  ADD COLUMN kind SMALLINT NOT NULL DEFAULT 1 CHECK (kind IN (0, 1, 2)),"
     "  ADD COLUMN key_ref TEXT NOT NULL DEFAULT '',"
     "  ADD COLUMN active BOOLEAN NOT NULL DEFAULT false,"
     "  ADD COLUMN subject TEXT NOT NULL DEFAULT '',"
     "  ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0,"
     "  ADD COLUMN not_after BIGINT NOT NULL DEFAULT 0;"
     "UPDATE ca SET kind = 0 WHERE parent_id IS NULL;"
     "UPDATE ca SET project = 'default' WHERE parent_id IS NOT NULL;"
     "UPDATE ca SET active = true WHERE id = (SELECT id FROM ca WHERE parent_id IS NOT NULL"
     "  ORDER BY created_at DESC, id DESC LIMIT 1);"
     "CREATE UNIQUE INDEX ca_active ON ca(project) WHERE active;"
     "CREATE INDEX ca_project ON ca(project, created_at);"
     "ALTER TABLE certificates ADD COLUMN project TEXT COLLATE \"C\" NOT NULL DEFAULT 'default'"
     "  REFERENCES projects(name);"
     "CREATE INDEX certificates_project ON certificates(project, issued_at);"
     "ALTER TABLE enroll_tokens ADD COLUMN project TEXT COLLATE \"C\" NOT NULL DEFAULT 'default'"
     "  REFERENCES projects(name);"
     "ALTER TABLE pending_requests ADD COLUMN project TEXT COLLATE \"C\" NOT NULL"
     "  DEFAULT 'default' REFERENCES projects(name);"
     "ALTER TABLE pending_requests DROP CONSTRAINT pending_unique;"
     "ALTER TABLE pending_requests ADD CONSTRAINT pending_unique"
     "  UNIQUE (project, label, csr_hash);"
     "CREATE INDEX pending_status ON pending_requests(status, id);"
     "ALTER TABLE audit ADD COLUMN project TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE cert_status_log ADD COLUMN project TEXT NOT NULL DEFAULT '';"},
    /* 5: the device registry (SQLite 5).  device_certs.rid: SQLite's
     * rowid, insertion order breaking added_at ties. */
    {"CREATE TABLE devices ("
     "  project TEXT COLLATE \"C\" NOT NULL REFERENCES projects(name),"
     "  name TEXT COLLATE \"C\" NOT NULL,"
     "  state SMALLINT NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"
     "  first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,"
     "  PRIMARY KEY (project, name));"
     "CREATE INDEX devices_state ON devices(project, state, name);"
     "CREATE TABLE device_tags ("
     "  project TEXT COLLATE \"C\" NOT NULL, name TEXT COLLATE \"C\" NOT NULL,"
     "  key TEXT COLLATE \"C\" NOT NULL, value TEXT COLLATE \"C\" NOT NULL,"
     "  PRIMARY KEY (project, name, key),"
     "  FOREIGN KEY (project, name) REFERENCES devices(project, name));"
     "CREATE INDEX device_tags_kv ON device_tags(project, key, value, name);"
     "CREATE TABLE device_certs ("
     "  project TEXT COLLATE \"C\" NOT NULL, fp TEXT COLLATE \"C\" NOT NULL,"
     "  name TEXT COLLATE \"C\" NOT NULL,"
     "  serial TEXT NOT NULL, issuer TEXT NOT NULL, subject TEXT NOT NULL,"
     "  ours SMALLINT NOT NULL CHECK (ours IN (0, 1)),"
     "  added_at BIGINT NOT NULL, der BYTEA NOT NULL, rid BIGSERIAL,"
     "  PRIMARY KEY (project, fp),"
     "  FOREIGN KEY (project, name) REFERENCES devices(project, name));"
     "CREATE INDEX device_certs_device ON device_certs(project, name, added_at);"
     "ALTER TABLE projects ADD COLUMN device_naming SMALLINT NOT NULL DEFAULT 0"
     "  CHECK (device_naming IN (0, 1, 2, 3));"},
    /* 6: API keys of the admin REST API (SQLite 6) */
    {"CREATE TABLE api_keys ("
     "  id TEXT COLLATE \"C\" PRIMARY KEY, project TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
     "  read_only SMALLINT NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),"
     "  hash BYTEA NOT NULL, created_at BIGINT NOT NULL,"
     "  revoked_at BIGINT NOT NULL DEFAULT 0);"},
    /* Migrations 7-10 were renumbered to SQLite's order when the branches
     * that added SQLite 7-9 (device log, firmware signatures, devices.tags)
     * and the PostgreSQL backend (whose crl_published was its 7) were
     * merged.  Safe: no PostgreSQL store had been shipped, so no database
     * at the old numbering exists outside development. */
    /* 7 (SQLite 7, issue 11): the device change log (store_devices.h).  seq
     * is max + 1 under the audit head lock (pg_devices.c), not a sequence:
     * seq order is commit order across nodes, as for cert_status_log. */
    {"CREATE TABLE device_log ("
     "  seq BIGINT PRIMARY KEY,"
     "  project TEXT COLLATE \"C\" NOT NULL, name TEXT COLLATE \"C\" NOT NULL,"
     "  state SMALLINT NOT NULL, ts BIGINT NOT NULL);"},
    /* 8 (SQLite 8, issue 13): firmware signatures (store_firmware.h); the
     * index answers a class's highest sequence; not unique (a forced
     * re-sign may repeat one) */
    {"CREATE TABLE firmware_signatures ("
     "  id BIGSERIAL PRIMARY KEY,"
     "  project TEXT COLLATE \"C\" NOT NULL REFERENCES projects(name),"
     "  vendor_id TEXT NOT NULL, class_id TEXT COLLATE \"C\" NOT NULL, version TEXT NOT NULL,"
     "  sequence BIGINT NOT NULL CHECK (sequence >= 1),"
     "  format TEXT NOT NULL CHECK (format IN ('suit', 'cms')),"
     "  image_sha256 TEXT NOT NULL, image_size BIGINT NOT NULL,"
     "  signer_serial TEXT NOT NULL, actor TEXT NOT NULL,"
     "  forced BOOLEAN NOT NULL DEFAULT false,"
     "  created_at BIGINT NOT NULL);"
     "CREATE INDEX firmware_signatures_seq ON firmware_signatures (project, class_id, sequence);"},
    /* 9 (SQLite 9, issue 10): devices.tags, the device's tags as one JSON
     * object text (keys in byte order, no blanks: what SQLite's
     * json_group_object makes), rewritten by every tag change in its
     * transaction (pg_devices.c) so that a device read does not aggregate
     * device_tags; device_tags stays what the filters walk, and
     * device_tags_key serves the filter by a key alone in name order.
     * SQLite rebuilds devices WITHOUT ROWID; PostgreSQL has no clustered
     * tables, the primary key's index already serves a page. */
    {"ALTER TABLE devices ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';"
     "UPDATE devices d SET tags = t.tags FROM (SELECT project, name,"
     "  '{' || string_agg(to_json(key)::text || ':' || to_json(value)::text, ',' ORDER BY key)"
     "  || '}' AS tags FROM device_tags GROUP BY project, name) t"
     "  WHERE d.project = t.project AND d.name = t.name;"
     "CREATE INDEX device_tags_key ON device_tags(project, key, name);"},
    /* 10 (SQLite 10, issue 15): the newest CRL of each CA, published by
     * the node that generated it for the others to serve (store_status.h) */
    {"CREATE TABLE crl_published ("
     "  ca_id TEXT COLLATE \"C\" PRIMARY KEY, number BIGINT NOT NULL, seq BIGINT NOT NULL,"
     "  this_update BIGINT NOT NULL, next_update BIGINT NOT NULL, der BYTEA NOT NULL);"},
    /* append new migrations here (see the top of this file) */
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(*migrations)))

static int exec_simple(pg_store *s, const char *sql, const char *what, fp_error *err)
{
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = FP_ERR_OK;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = fp_err_set(err, FP_ERR_STORE, "%s: %s", what, PQerrorMessage(s->conn));
    PQclear(res);
    return rc;
}

/* The schema version, 0 for a database fleetpki never used. */
static int schema_version(pg_store *s, int *version, fp_error *err)
{
    PGresult *res;

    *version = 0;
    res = PQexec(s->conn, "SELECT to_regclass('fleetpki_schema') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return fp_err_set(err, FP_ERR_STORE, "schema version: %s", PQerrorMessage(s->conn));
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        return FP_ERR_OK;
    }
    PQclear(res);
    res = PQexec(s->conn, "SELECT version FROM fleetpki_schema");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return fp_err_set(err, FP_ERR_STORE, "schema version: %s", PQerrorMessage(s->conn));
    }
    if (PQntuples(res) > 0)
        *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return FP_ERR_OK;
}

static int too_new(int version, fp_error *err)
{
    return fp_err_set(err, FP_ERR_STORE, "store schema version %d is newer than this fleetpki (%d)",
                      version, N_MIGRATIONS);
}

int pg_migrate(pg_store *s, fp_error *err)
{
    int version = 0, rc;

    if ((rc = schema_version(s, &version, err)) != FP_ERR_OK)
        return rc;
    if (version > N_MIGRATIONS)
        return too_new(version, err);
    if (version == N_MIGRATIONS)
        return FP_ERR_OK; /* the common case: no lock taken */
    for (;;) {
        char set[96];
        if ((rc = exec_simple(s,
                              /* a node starting while another migrates waits
                               * for it, longer than lock_timeout allows other
                               * waits (pg_store.c): a migration of a large
                               * store takes minutes */
                              "BEGIN; SET LOCAL lock_timeout = '15min';"
                              " SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ");"
                              "CREATE TABLE IF NOT EXISTS fleetpki_schema (version INTEGER NOT NULL);"
                              "INSERT INTO fleetpki_schema SELECT 0 WHERE NOT EXISTS"
                              " (SELECT 1 FROM fleetpki_schema)",
                              "migration lock", err)) != FP_ERR_OK)
            goto fail;
        /* again under the lock: another node may have migrated meanwhile */
        if ((rc = schema_version(s, &version, err)) != FP_ERR_OK)
            goto fail;
        if (version >= N_MIGRATIONS) {
            exec_simple(s, "ROLLBACK", "ROLLBACK", NULL);
            return version == N_MIGRATIONS ? FP_ERR_OK : too_new(version, err);
        }
        snprintf(set, sizeof(set), "UPDATE fleetpki_schema SET version = %d", version + 1);
        if ((rc = exec_simple(s, migrations[version].sql, "migration", err)) != FP_ERR_OK ||
            (rc = exec_simple(s, set, "migration", err)) != FP_ERR_OK ||
            (rc = exec_simple(s, "COMMIT", "migration commit", err)) != FP_ERR_OK)
            goto fail;
    }
fail:
    exec_simple(s, "ROLLBACK", "ROLLBACK", NULL);
    return rc;
}
