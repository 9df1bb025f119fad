/*
 * test_store_sqlite.c - what only the SQLite backend has: its schema and
 * migrations (a data directory made by fleetpki 0.1, tests/fixtures), the
 * append-only triggers, the integrity check, a COMMIT that fails.  The
 * behaviour every backend shares is in store_conformance.c.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/util.h"
#include "store/sqlite_int.h"
#include "store/store.h"
#include "x509/x509util.h"

#ifndef FP_FIXTURES_DIR
#error "FP_FIXTURES_DIR must name tests/fixtures"
#endif

typedef struct {
    char *dir;
    char path[512];
    fp_store *s;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    unsigned char der[3] = {1, 2, 3};
    fp_ca_rec ca = {.id = "issuing", .project = FP_PROJECT_DEFAULT, .kind = FP_CA_ISSUING,
                    .active = true, .der = der, .der_len = 3};
    f->dir = tu_tmpdir();
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    assert_int_equal(fp_store_open(f->path, &f->s, NULL), 0);
    assert_int_equal(fp_store_ca_add(f->s, &ca, NULL, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fp_store_close(f->s);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* One integer from SQL run on a connection of its own. */
static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static fp_cert_rec mkrec(const char *serial)
{
    static unsigned char der[4] = {0x30, 0x02, 0x05, 0x00};
    fp_cert_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.serial, sizeof(r.serial), "%s", serial);
    strcpy(r.ca_id, "issuing");
    strcpy(r.project, FP_PROJECT_DEFAULT);
    strcpy(r.profile, "device");
    r.subject = (char *)"CN=x";
    r.sans = (char *)"";
    r.not_before = 1;
    r.not_after = fp_now() + 1000;
    r.issued_at = fp_now();
    r.der = der;
    r.der_len = sizeof(der);
    return r;
}

static void test_audit_is_append_only(void **state)
{
    fx *f = *state;
    sqlite3 *db = NULL;
    fp_audit_event ev = {"t", "x", "", "", "default"};
    assert_int_equal(fp_store_audit_append(f->s, &ev, NULL), 0);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET actor='x'", NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET project='b'", NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_reopen_keeps_data_and_schema(void **state)
{
    fx *f = *state;
    fp_cert_rec r = mkrec("EE01"), got;
    fp_error e = {0};
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    fp_store_close(f->s);
    assert_int_equal(fp_store_open(f->path, &f->s, &e), 0);
    assert_int_equal(fp_store_cert_get(f->s, "EE01", &got, &e), 0);
    fp_cert_rec_clear(&got);
    assert_int_equal(fp_store_check(f->s, &e), 0);
}

static void test_future_schema_refused(void **state)
{
    fx *f = *state;
    fp_store *s2 = NULL;
    fp_error e = {0};
    exec_sql(f->path, "PRAGMA user_version = 999");
    assert_int_equal(fp_store_open(f->path, &s2, &e), FP_ERR_STORE);
    assert_non_null(strstr(e.msg, "newer"));
    /* a PostgreSQL URL goes to that backend (no server here: unavailable) */
    assert_int_equal(fp_store_open("postgres://x.invalid", &s2, &e), FP_ERR_UNAVAILABLE);
    assert_int_equal(fp_store_open_role("postgresql://x.invalid", FP_STORE_ROLE_COMMITTER, &s2,
                                        &e), FP_ERR_UNAVAILABLE);
}

/* COMMIT itself failing: a deferred foreign key planted in the schema is
 * only checked at COMMIT, after every statement of the batch, token uses
 * included, has succeeded; nothing stays, and the same records go through
 * once the fault is gone. */
static void test_commit_failure_rolls_back_token_uses(void **state)
{
    fx *f = *state;
    fp_cert_rec recs[3] = {mkrec("H1"), mkrec("H2"), mkrec("BOOM")};
    const char *toks[3] = {"pay", "pay", "pay"};
    fp_error res[3], e = {0};
    int64_t rows = 0;

    tu_token_put(f->s, "pay", 5, 0);
    exec_sql(f->path,
             "CREATE TABLE inject_parent (id TEXT PRIMARY KEY);"
             "CREATE TABLE inject (v TEXT REFERENCES inject_parent(id)"
             "  DEFERRABLE INITIALLY DEFERRED);"
             "CREATE TRIGGER inject_boom AFTER INSERT ON certificates"
             "  WHEN NEW.serial = 'BOOM' BEGIN INSERT INTO inject VALUES ('x'); END;");
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, fp_now(), res, 3, &e),
                     FP_ERR_STORE);
    assert_non_null(strstr(e.msg, "COMMIT"));
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].code, FP_ERR_STORE);
    assert_false(tu_cert_stored(f->s, "H1") || tu_cert_stored(f->s, "H2"));
    assert_int_equal(tu_token_uses(f->s, "pay"), 5);
    exec_sql(f->path, "DROP TRIGGER inject_boom;");
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, fp_now(), res, 3, &e), 0);
    assert_int_equal(res[2].code, FP_ERR_OK);
    assert_int_equal(tu_token_uses(f->s, "pay"), 2);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), 0);
}

static void test_committer_role_and_maintain(void **state)
{
    fx *f = *state;
    fp_store *c = NULL, *m = NULL;
    fp_cert_rec r = mkrec("CM01");
    fp_error e = {0};
    assert_int_equal(fp_store_open_role(f->path, FP_STORE_ROLE_COMMITTER, &c, &e), 0);
    assert_int_equal(fp_store_open(f->path, &m, &e), 0);
    assert_int_equal(fp_store_cert_insert(c, &r, NULL, 1, &e), 0);
    assert_int_equal(fp_store_maintain(m, &e), 0);
    assert_true(tu_cert_stored(f->s, "CM01"));
    fp_store_close(c);
    fp_store_close(m);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_int_equal(fp_reason_from_name("keyCompromise"), 1);
    assert_int_equal(fp_reason_from_name("KEYCOMPROMISE"), 1);
    assert_int_equal(fp_reason_from_name("bogus"), -1);
    assert_string_equal(fp_reason_name(6), "certificateHold");
    assert_null(fp_reason_name(7));
}

/* ---- schema and migrations ---- */

/* The objects of a store, "type:name;" sorted (sqlite_ internals left out). */
static void schema_names(const char *path, char *out, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT type || ':' || name FROM sqlite_master"
                                        " WHERE name NOT LIKE 'sqlite_%' ORDER BY 1",
                                        -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        strncat(out, (const char *)sqlite3_column_text(st, 0), size - strlen(out) - 2);
        strcat(out, ";");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The schema version of a fresh store (4 projects,
 * devices 5 and API keys 6, issue 10; device change log 7, issue 11;
 * firmware signatures 8, issue 13; devices clustered with their tags 9,
 * issue 10; published CRLs 10, issue 15; device columns copied into
 * device_tags 11, issue 10). */
#define SCHEMA_VERSION 11
#define SCHEMA_4                                                                          \
    "index:ca_active;index:ca_project;index:cert_revoked_crl;index:certificates_not_after;" \
    "index:certificates_project;index:certificates_status;index:device_certs_device;"       \
    "index:device_tags_key;index:device_tags_kv;index:devices_state;"                       \
    "index:firmware_signatures_seq;index:pending_status;table:api_keys;"                   \
    "table:audit;table:ca;table:cert_status_log;table:certificates;table:crl_published;"    \
    "table:device_certs;"                                                                   \
    "table:device_log;table:device_tags;table:devices;table:enroll_tokens;"                \
    "table:firmware_signatures;"                                                          \
    "table:meta;table:pending_requests;table:projects;"                                   \
    "trigger:audit_no_delete;trigger:audit_no_update;trigger:device_tags_from_device;"   \
    "trigger:devices_to_tags;"

/* A fresh store's objects are exactly what the migrations make, whatever
 * the store's history. */
static void test_fresh_schema(void **state)
{
    fx *f = *state;
    char names[2048];
    schema_names(f->path, names, sizeof(names));
    assert_string_equal(names, SCHEMA_4);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), SCHEMA_VERSION);
}

/* A data directory made by fleetpki 0.1 (tests/fixtures/README.md), unpacked
 * into dir/datadir and dir/devices. */
static char *unpack_fixture(void)
{
    char *dir = tu_tmpdir(), cmd[1024];
    snprintf(cmd, sizeof(cmd), "tar -xzf '%s/datadir-0.1.tar.gz' -C '%s'", FP_FIXTURES_DIR, dir);
    if (system(cmd) != 0)
        fail_msg("cannot unpack the fixture: %s", cmd);
    return dir;
}

/* PRAGMA data_version on a connection of its own changes when another
 * connection commits, so an unchanged value proves nothing was written. */
static int64_t data_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t v;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void read_token_id(const char *dir, char *id, size_t size)
{
    char path[1024], line[256];
    FILE *fp;
    snprintf(path, sizeof(path), "%s/devices/token.txt", dir);
    assert_non_null(fp = fopen(path, "r"));
    id[0] = '\0';
    while (fgets(line, sizeof(line), fp))
        if (!strncmp(line, "id: ", 4))
            snprintf(id, size, "%.*s", (int)strcspn(line + 4, "\n"), line + 4);
    fclose(fp);
    assert_true(id[0] != '\0');
}

typedef struct {
    char summary[1024];
} cert_sum;

static int sum_cert(void *arg, const fp_cert_rec *r)
{
    cert_sum *c = arg;
    char one[128];
    assert_string_equal(r->project, FP_PROJECT_DEFAULT);
    assert_string_equal(r->ca_id, "issuing");
    snprintf(one, sizeof(one), "%s:%d:%d;", r->subject, r->status,
             r->status == FP_CERT_REVOKED ? r->reason : -1);
    strcat(c->summary, one);
    return FP_ERR_OK;
}

static int audit_no_project(void *arg, const fp_audit_row *r)
{
    (*(int *)arg)++;
    assert_string_equal(r->project, "");
    return FP_ERR_OK;
}

static int pending_one(void *arg, const fp_pending_rec *r)
{
    fp_pending_rec *out = arg;
    assert_int_equal(out->id, 0);
    out->id = r->id;
    snprintf(out->project, sizeof(out->project), "%s", r->project);
    snprintf(out->label, sizeof(out->label), "%s", r->label);
    snprintf(out->csr_hash, sizeof(out->csr_hash), "%s", r->csr_hash);
    out->status = r->status;
    return FP_ERR_OK;
}

static void check_ca_row(fp_store *s, const char *dir, const char *id, const char *file)
{
    char path[1024];
    X509 *x = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    fp_ca_rec r;
    char *subject;
    fp_error e = {0};

    snprintf(path, sizeof(path), "%s/datadir/%s", dir, file);
    assert_int_equal(fp_cert_read(path, &x, &e), 0);
    assert_int_equal(fp_cert_to_der(x, &der, &der_len, &e), 0);
    assert_int_equal(fp_store_ca_get(s, id, &r, &e), 0);
    assert_int_equal(r.der_len, der_len);
    assert_memory_equal(r.der, der, der_len);
    subject = fp_name_string(X509_get_subject_name(x));
    assert_string_equal(r.subject, subject);
    assert_int_equal(r.not_before, fp_asn1_time_unix(X509_get0_notBefore(x)));
    assert_int_equal(r.not_after, fp_asn1_time_unix(X509_get0_notAfter(x)));
    assert_string_equal(r.key_ref, ""); /* the [ca] config's key */
    if (!strcmp(id, "root")) {
        assert_int_equal(r.kind, FP_CA_ROOT);
        assert_string_equal(r.project, "");
        assert_string_equal(r.parent_id, "");
        assert_false(r.active);
    } else {
        assert_int_equal(r.kind, FP_CA_ISSUING);
        assert_string_equal(r.project, FP_PROJECT_DEFAULT);
        assert_string_equal(r.parent_id, "root");
        assert_true(r.active);
    }
    fp_ca_rec_clear(&r);
    free(subject);
    OPENSSL_free(der);
    X509_free(x);
}

static void test_migrate_datadir_0_1(void **state)
{
    char *dir = unpack_fixture(), path[1024], tok[64], names[2048];
    fp_store *s = NULL;
    fp_token_rec t;
    fp_pending_rec pr;
    fp_cert_status_rec cs;
    cert_sum sum;
    fp_cert_filter flt = {.status = -1, .now = fp_now()};
    int64_t rows = 0, seq = 0, num = 0;
    int n = 0;
    sqlite3 *watch = NULL;
    fp_error e = {0};
    (void)state;

    snprintf(path, sizeof(path), "%s/datadir/fleetpki.db", dir);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), 2);
    read_token_id(dir, tok, sizeof(tok));
    if (fp_store_open(path, &s, &e) != FP_ERR_OK)
        fail_msg("opening the 0.1 store: %s", e.msg);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_VERSION);
    schema_names(path, names, sizeof(names));
    assert_string_equal(names, SCHEMA_4);
    /* every row passes the foreign keys the migration added */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    assert_int_equal(fp_store_check(s, &e), 0);

    /* project default holds what 0.1 made */
    {
        fp_project_rec p;
        assert_int_equal(fp_store_project_get(s, FP_PROJECT_DEFAULT, &p, &e), 0);
    }
    check_ca_row(s, dir, "root", "root.crt");
    check_ca_row(s, dir, "issuing", "issuing.crt");
    memset(&sum, 0, sizeof(sum));
    assert_int_equal(fp_store_cert_list(s, &flt, sum_cert, &sum, &e), 0);
    assert_string_equal(sum.summary,
                        "CN=Fixture Org EST server:0:-1;CN=Fixture Org OCSP responder:0:-1;"
                        "CN=dev-1:0:-1;CN=dev-2:1:1;CN=dev-3:1:6;CN=dev-4:0:-1;");
    flt.project = FP_PROJECT_DEFAULT;
    flt.ca_id = "issuing";
    memset(&sum, 0, sizeof(sum));
    assert_int_equal(fp_store_cert_list(s, &flt, sum_cert, &sum, &e), 0);
    assert_non_null(strstr(sum.summary, "CN=dev-4:0:-1;"));
    {
        /* status lookups carry the project */
        char serial[64];
        snprintf(serial, sizeof(serial), "%s", "65927FE8AF19D1886A6617D1DE3A5A4B"); /* dev-2 */
        assert_int_equal(fp_store_cert_status(s, serial, &cs, &e), 0);
        assert_string_equal(cs.project, FP_PROJECT_DEFAULT);
        assert_int_equal(cs.status, FP_CERT_REVOKED);
        assert_int_equal(cs.reason, FP_REASON_KEY_COMPROMISE);
    }
    /* the token is default's, and only default's */
    assert_int_equal(fp_store_token_get(s, FP_PROJECT_DEFAULT, tok, &t, &e), 0);
    assert_string_equal(t.project, FP_PROJECT_DEFAULT);
    assert_string_equal(t.label, "lab");
    assert_int_equal(t.uses_left, 5); /* a held request spends no use */
    /* the held request */
    memset(&pr, 0, sizeof(pr));
    assert_int_equal(fp_store_pending_list(s, FP_PROJECT_DEFAULT, FP_PENDING_WAITING, pending_one,
                                           &pr, &e), 0);
    assert_true(pr.id > 0);
    assert_string_equal(pr.project, FP_PROJECT_DEFAULT);
    assert_string_equal(pr.label, "lab");
    {
        fp_pending_rec got;
        assert_int_equal(fp_store_pending_find(s, FP_PROJECT_DEFAULT, "lab", pr.csr_hash, &got, &e), 0);
        assert_int_equal(got.id, pr.id);
        fp_pending_rec_clear(&got);
    }
    /* the status log and revocation list numbers carry on */
    assert_int_equal(fp_store_status_seq(s, &seq, &e), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(fp_store_revocation_number_next(s, "issuing", &num, &e), 0);
    assert_int_equal(num, 2);
    /* every 0.1 audit row still verifies; none has a project */
    assert_int_equal(fp_store_audit_verify(s, &rows, &e), 0);
    assert_int_equal(rows, 12);
    assert_int_equal(fp_store_audit_iter(s, audit_no_project, &n, &e), 0);
    assert_int_equal(n, 12);
    fp_store_close(s);

    /* opening it again writes nothing */
    assert_int_equal(sqlite3_open(path, &watch), SQLITE_OK);
    {
        int64_t v0 = data_version(watch);
        assert_int_equal(fp_store_open(path, &s, &e), 0);
        fp_store_close(s);
        assert_int_equal(fp_store_open(path, &s, &e), 0);
        assert_int_equal(data_version(watch), v0);
    }
    sqlite3_close(watch);
    /* and the upgraded store takes new rows of new projects */
    {
        fp_audit_event ev = {"test", "project.create", "b", "", "b"};
        fp_cert_rec r = mkrec("0B01");
        assert_int_equal(fp_store_project_put(s, "b", &ev, &e), 0);
        assert_int_equal(fp_store_cert_insert(s, &r, NULL, 1, &e), 0);
        assert_int_equal(fp_store_token_get(s, "b", tok, &t, &e), FP_ERR_NOT_FOUND);
        assert_int_equal(fp_store_audit_verify(s, &rows, &e), 0);
        assert_int_equal(rows, 13);
    }
    fp_store_close(s);
    tu_rmdir(dir);
}

/* 0.1 development builds made stores without the revocation objects (they
 * were created on open then); migration 3 adds them, and the revoked-entry
 * query walks the covering index. */
static void test_migrate_without_revocation_objects(void **state)
{
    char *dir = unpack_fixture(), path[1024];
    fp_store *s = NULL;
    int64_t seq = -1;
    bool uses_index = false;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    fp_error e = {0};
    (void)state;

    snprintf(path, sizeof(path), "%s/datadir/fleetpki.db", dir);
    exec_sql(path, "DROP TABLE cert_status_log; DROP INDEX cert_revoked_crl;"
                   "CREATE INDEX certificates_revoked ON certificates(ca_id) WHERE status = 1;");
    assert_int_equal(fp_store_open(path, &s, &e), 0);
    assert_int_equal(fp_store_status_seq(s, &seq, &e), 0);
    assert_int_equal(seq, 0);
    assert_int_equal(fp_store_cert_set_status(s, "7C5732C934130E78E8FDD7E926C68A43",
                                              FP_CERT_REVOKED, FP_REASON_SUPERSEDED, 5, NULL, &e), 0);
    assert_int_equal(fp_store_status_seq(s, &seq, &e), 0);
    assert_int_equal(seq, 1);
    fp_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'certificates_revoked'"), 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT serial, revoked_at, reason FROM"
                                        " certificates WHERE status = 1 AND ca_id = 'issuing'"
                                        " ORDER BY serial", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 3);
        if (d && strstr(d, "COVERING INDEX cert_revoked_crl"))
            uses_index = true;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(uses_index);
    tu_rmdir(dir);
}

/* A migration that fails leaves the store at the version before it, with
 * its data, and the next open finishes the job. */
static void test_failed_migration_is_rolled_back(void **state)
{
    char *dir = unpack_fixture(), path[1024];
    fp_store *s = NULL;
    int64_t rows = 0;
    fp_error e = {0};
    (void)state;

    snprintf(path, sizeof(path), "%s/datadir/fleetpki.db", dir);
    exec_sql(path, "CREATE TABLE projects (x);"); /* migration 4 creates it */
    assert_int_equal(fp_store_open(path, &s, &e), FP_ERR_STORE);
    assert_non_null(strstr(e.msg, "projects"));
    assert_int_equal(sql_int(path, "PRAGMA user_version"), 3);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM certificates"), 6);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM pragma_table_info('certificates')"
                                   " WHERE name = 'project'"), 0);
    exec_sql(path, "DROP TABLE projects;");
    assert_int_equal(fp_store_open(path, &s, &e), 0);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_VERSION);
    assert_int_equal(fp_store_audit_verify(s, &rows, &e), 0);
    assert_int_equal(rows, 12);
    fp_store_close(s);
    tu_rmdir(dir);
}

/* Each device-list variant reads the page through an index in name order
 * (EXPLAIN QUERY PLAN): no scan of a whole table, no sort of what it read,
 * and the tag filters start from a tag index, not from the devices of the
 * project in name order testing each one's tags (what the first version
 * did: 2 ms a page at 1,000,000 devices, bench/run-registry-api.sh).  The
 * tag filters are one step, device_tags alone (no join to devices), and
 * tag=KEY=VALUE reads its covering index only. */
static void test_device_list_plans(void **state)
{
    fx *f = *state;
    static const char *const want[] = {"PRIMARY KEY", "devices_state", "device_tags_key",
                                       "device_tags_key", "device_tags_kv", "device_tags_kv"};
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    for (int v = 0; v < SQ_C_DEV_LIST_N; v++) {
        char plan[2048] = "", sql[4096];
        sqlite3_stmt *st = NULL;
        snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", sq_device_list_sql(v));
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
            fail_msg("variant %d: %s", v, sqlite3_errmsg(db));
        while (sqlite3_step(st) == SQLITE_ROW) {
            size_t l = strlen(plan);
            snprintf(plan + l, sizeof(plan) - l, "%s|", (const char *)sqlite3_column_text(st, 3));
        }
        sqlite3_finalize(st);
        if (strstr(plan, "SCAN ") != NULL || strstr(plan, "TEMP B-TREE") != NULL)
            fail_msg("variant %d reads more than the page: %s", v, plan);
        /* the first step searches the expected index */
        char first[256];
        snprintf(first, sizeof(first), "SEARCH %s USING ", v < 2 ? "d" : "x");
        if (strncmp(plan, first, strlen(first)) != 0 || strstr(plan, want[v]) == NULL)
            fail_msg("variant %d does not start from %s: %s", v, want[v], plan);
        /* a tag page answers from device_tags alone (its copies of the
         * device columns), never descending devices per hit; with a value
         * it reads the covering index alone, not even device_tags' rows */
        if (v >= 2 && strchr(plan, '|') != plan + strlen(plan) - 1)
            fail_msg("variant %d reads more than one table: %s", v, plan);
        if (v >= 4 && strstr(plan, "USING COVERING INDEX device_tags_kv ") == NULL)
            fail_msg("variant %d does not read device_tags_kv alone: %s", v, plan);
    }
    assert_null(sq_device_list_sql(SQ_C_DEV_LIST_N));
    sqlite3_close(db);
}

/* Tag rows of the store whose copies of the device columns differ from
 * their device (the last migration; none may). */
#define TAG_COPIES_WRONG                                                                   \
    "SELECT count(*) FROM device_tags t JOIN devices d USING (project, name)"              \
    " WHERE t.state IS NOT d.state OR t.first_seen IS NOT d.first_seen"                    \
    " OR t.last_seen IS NOT d.last_seen OR t.tags IS NOT d.tags"

static void tag_dev(fp_store *s, const char *name, const char *key, const char *value)
{
    fp_error e = {0};
    if (fp_store_device_tag(s, FP_PROJECT_DEFAULT, name, key, value, NULL, &e) != FP_ERR_OK)
        fail_msg("tag %s: %s", name, e.msg);
}

static int first_name(void *arg, const fp_device_rec *r)
{
    *(fp_device_rec *)arg = *r;
    ((fp_device_rec *)arg)->tags = NULL;
    return 1;
}

/* The copies follow writes that bypass the store functions too (the
 * triggers are in the schema): a bulk load as bench/populate_devices does
 * it (the device with its tags JSON, then its tag rows), and plain UPDATEs
 * of each copied column, first_seen included (no store function changes
 * it). */
static void test_tag_copies_follow_raw_writes(void **state)
{
    fx *f = *state;
    fp_error e = {0};
    fp_device_rec r;
    fp_device_filter fl = {FP_PROJECT_DEFAULT, -1, "site", "p", "bulk", NULL, 1};

    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "a", 10, NULL, NULL,
                                              NULL, NULL, &e), FP_ERR_OK);
    tag_dev(f->s, "a", "site", "p");
    exec_sql(f->path,
             "INSERT INTO devices (project, name, state, first_seen, last_seen, tags)"
             "  VALUES ('default', 'bulk', 1, 5, 6, '{\"model\":\"m\",\"site\":\"p\"}');"
             "INSERT INTO device_tags (project, name, key, value)"
             "  VALUES ('default', 'bulk', 'site', 'p'), ('default', 'bulk', 'model', 'm');");
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM device_tags"), 3);
    assert_int_equal(sql_int(f->path, TAG_COPIES_WRONG), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(fp_store_device_list(f->s, &fl, first_name, &r, &e), FP_ERR_OK);
    assert_string_equal(r.name, "bulk");
    assert_int_equal(r.state, 1);
    assert_int_equal(r.first_seen, 5);
    assert_int_equal(r.last_seen, 6);
    exec_sql(f->path, "UPDATE devices SET state = 2 WHERE name = 'a';");
    assert_int_equal(sql_int(f->path, TAG_COPIES_WRONG), 0);
    exec_sql(f->path, "UPDATE devices SET first_seen = 1 WHERE name = 'a';");
    assert_int_equal(sql_int(f->path, TAG_COPIES_WRONG), 0);
    exec_sql(f->path, "UPDATE devices SET last_seen = 99 WHERE name = 'a';");
    assert_int_equal(sql_int(f->path, TAG_COPIES_WRONG), 0);
    exec_sql(f->path, "UPDATE devices SET tags = '{\"site\":\"p\",\"x\":\"y\"}' WHERE name = 'a';");
    assert_int_equal(sql_int(f->path, TAG_COPIES_WRONG), 0);
    assert_int_equal(sql_int(f->path, "SELECT first_seen * 1000 + last_seen FROM device_tags"
                                      " WHERE name = 'a'"), 1099);
}

/* A store of the layout before the copies (tag rows without them, the
 * key=value index not covering) gets them filled from devices when it is
 * opened: the migration, on rows made by the store functions in every
 * state. */
static void test_migration_fills_tag_copies(void **state)
{
    char *dir = tu_tmpdir(), path[1024], downgrade[1024];
    const char *projects[] = {FP_PROJECT_DEFAULT};
    const char *names[] = {"b"};
    int64_t seen[] = {77};
    fp_store *s = NULL;
    fp_error e = {0};
    char before[2048], after[2048];
    (void)state;

    snprintf(path, sizeof(path), "%s/m.db", dir);
    assert_int_equal(fp_store_open(path, &s, &e), FP_ERR_OK);
    schema_names(path, before, sizeof(before));
    for (int i = 0; i < 3; i++) {
        char n[8];
        snprintf(n, sizeof(n), "%c", 'a' + i);
        assert_int_equal(fp_store_device_register(s, FP_PROJECT_DEFAULT, n, 10 + i, NULL, NULL,
                                                  NULL, NULL, &e), FP_ERR_OK);
        tag_dev(s, n, "site", "p");
    }
    tag_dev(s, "a", "model", "m");
    assert_int_equal(fp_store_device_set_state(s, FP_PROJECT_DEFAULT, "c", 1u, FP_DEV_SUSPENDED,
                                               NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_touch(s, projects, names, seen, 1, &e), FP_ERR_OK);
    fp_store_close(s);
    /* back to the layout before the copies, as that version left it */
    snprintf(downgrade, sizeof(downgrade),
             "DROP TRIGGER devices_to_tags; DROP TRIGGER device_tags_from_device;"
             "DROP INDEX device_tags_kv;"
             "ALTER TABLE device_tags DROP COLUMN state;"
             "ALTER TABLE device_tags DROP COLUMN first_seen;"
             "ALTER TABLE device_tags DROP COLUMN last_seen;"
             "ALTER TABLE device_tags DROP COLUMN tags;"
             "CREATE INDEX device_tags_kv ON device_tags(project, key, value, name);"
             "PRAGMA user_version = %d;",
             SCHEMA_VERSION - 1);
    exec_sql(path, downgrade);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM pragma_table_info('device_tags')"), 4);
    assert_int_equal(fp_store_open(path, &s, &e), FP_ERR_OK);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_VERSION);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM device_tags"), 4);
    assert_int_equal(sql_int(path, TAG_COPIES_WRONG), 0);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM device_tags WHERE state = 1"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM device_tags WHERE last_seen = 77"), 1);
    schema_names(path, after, sizeof(after));
    assert_string_equal(after, before);
    /* the index is the covering one again, and the copies still follow */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM pragma_index_info('device_tags_kv')"),
                     8);
    tag_dev(s, "b", "model", "n");
    assert_int_equal(sql_int(path, TAG_COPIES_WRONG), 0);
    fp_store_close(s);
    tu_rmdir(dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_audit_is_append_only),
        T(test_reopen_keeps_data_and_schema),
        T(test_future_schema_refused),
        T(test_commit_failure_rolls_back_token_uses),
        T(test_committer_role_and_maintain),
        T(test_fresh_schema),
        T(test_device_list_plans),
        T(test_tag_copies_follow_raw_writes),
        cmocka_unit_test(test_migration_fills_tag_copies),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_migrate_datadir_0_1),
        cmocka_unit_test(test_migrate_without_revocation_objects),
        cmocka_unit_test(test_failed_migration_is_rolled_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
