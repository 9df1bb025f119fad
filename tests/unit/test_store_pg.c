/* test_store_pg.c - the store conformance suite (store_conformance.c) on
 * the PostgreSQL backend, against a private server that tests/pg_run.sh
 * starts (FP_TEST_PG: a superuser connection string of it).  Each case
 * gets a fresh database owned by role fleetpki, which is not a superuser
 * (docs/postgresql.md).  Without FP_TEST_PG it exits 77 (skipped). */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store_conformance.h"

typedef struct {
    const char *admin; /* superuser connection string */
    char url[1024];    /* "pg:" + the fleetpki role's connection string */
    char conninfo[1024];
    int n;
} pg_backend;

static int admin_exec(const pg_backend *b, const char *sql)
{
    PGconn *c = PQconnectdb(b->admin);
    PGresult *r;
    int ok;

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "admin connection: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    r = PQexec(c, sql);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

static int pg_open_fresh(void *arg, fp_store **out)
{
    pg_backend *b = arg;
    char sql[256], base[768];
    const char *host = getenv("FP_TEST_PG_DIR"), *port = getenv("FP_TEST_PG_PORT");

    if (admin_exec(b, "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE"
                      " rolname = 'fleetpki') THEN CREATE ROLE fleetpki LOGIN NOSUPERUSER"
                      " NOCREATEDB NOCREATEROLE; END IF; END$$") != 0 ||
        admin_exec(b, "DROP DATABASE IF EXISTS sc WITH (FORCE)") != 0)
        return FP_ERR_STORE;
    snprintf(sql, sizeof(sql), "CREATE DATABASE sc OWNER fleetpki");
    if (admin_exec(b, sql) != 0)
        return FP_ERR_STORE;
    snprintf(base, sizeof(base), "host=%s port=%s dbname=sc user=fleetpki", host ? host : "",
             port ? port : "");
    snprintf(b->conninfo, sizeof(b->conninfo), "%s", base);
    snprintf(b->url, sizeof(b->url), "%s%s", FP_STORE_PG_PREFIX, base);
    b->n++;
    return fp_store_open(b->url, out, NULL);
}

static int pg_open_again(void *arg, fp_store **out)
{
    pg_backend *b = arg;
    return fp_store_open(b->url, out, NULL);
}

static void pg_discard(void *arg)
{
    (void)arg; /* the next case drops the database */
}

/* As the owner of the tables would (an attacker with the database
 * account): switch the append-only trigger off, then change the table. */
static int pg_tamper(pg_backend *b, const char *column, const char *value, int64_t id)
{
    PGconn *c = PQconnectdb(b->conninfo);
    PGresult *r = NULL;
    char q[256], idbuf[24];
    const char *params[2];
    int rc = -1;

    if (PQstatus(c) != CONNECTION_OK)
        goto out;
    PQclear(PQexec(c, "ALTER TABLE audit DISABLE TRIGGER USER"));
    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
    if (column != NULL) {
        snprintf(q, sizeof(q), "UPDATE audit SET %s = $1 WHERE id = $2", column);
        params[0] = value;
        params[1] = idbuf;
        r = PQexecParams(c, q, 2, NULL, params, NULL, NULL, 0);
    } else {
        params[0] = idbuf;
        r = PQexecParams(c, "DELETE FROM audit WHERE id = $1", 1, NULL, params, NULL, NULL, 0);
    }
    if (PQresultStatus(r) == PGRES_COMMAND_OK && !strcmp(PQcmdTuples(r), "1"))
        rc = 0;
    else
        fprintf(stderr, "tamper: %s", PQerrorMessage(c));
out:
    PQclear(r);
    PQfinish(c);
    return rc;
}

static int pg_audit_edit(void *arg, int64_t id, const char *column, const char *value)
{
    static const char *const ok[] = {"actor", "action", "object", "detail", "project", "hash"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
        if (!strcmp(column, ok[i]))
            return pg_tamper(arg, column, value, id);
    return -1;
}

static int pg_audit_delete(void *arg, int64_t id)
{
    return pg_tamper(arg, NULL, NULL, id);
}

/* ---- PostgreSQL only ---- */

static pg_backend *g_b;

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "a store call waited on a lock for 120 s: no lock_timeout\n";
    (void)!write(2, m, sizeof(m) - 1);
    _exit(1);
}

/* A store call waiting on a lock someone else holds gives up after the
 * store's lock_timeout (10 s, pg_store.c) with FP_ERR_UNAVAILABLE, where it
 * used to wait as long as the lock was held (the broker could not stop). */
static void test_lock_wait_bounded(void **state)
{
    fp_store *s = NULL;
    PGconn *holder;
    PGresult *r;
    fp_project_rec rec;
    fp_error e = {0};
    int rc;
    (void)state;

    assert_int_equal(pg_open_fresh(g_b, &s), FP_ERR_OK);
    holder = PQconnectdb(g_b->conninfo);
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    r = PQexec(holder, "BEGIN; LOCK TABLE projects IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    signal(SIGALRM, on_alarm);
    alarm(120);
    rc = fp_store_project_get(s, "p1", &rec, &e);
    alarm(0);
    assert_int_equal(rc, FP_ERR_UNAVAILABLE);
    if (strstr(e.msg, "lock") == NULL)
        fail_msg("lock wait error: %s", e.msg);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    /* the lock gone, the same handle answers again */
    rc = fp_store_project_get(s, "p1", &rec, &e);
    assert_true(rc == FP_ERR_ARG || rc == FP_ERR_NOT_FOUND);
    fp_store_close(s);
}

int main(void)
{
    pg_backend b = {0};
    sc_backend sc = {"store conformance: postgresql", &b, pg_open_fresh, pg_open_again,
                     pg_discard, pg_audit_edit, pg_audit_delete};

    b.admin = getenv("FP_TEST_PG");
    if (b.admin == NULL || !*b.admin) {
        fprintf(stderr, "skip: FP_TEST_PG is not set (run through tests/pg_run.sh, which"
                        " starts a private PostgreSQL)\n");
        return 77;
    }
    {
        const struct CMUnitTest pg_only[] = {cmocka_unit_test(test_lock_wait_bounded)};
        int failed = store_conformance_run(&sc);
        g_b = &b;
        return failed + cmocka_run_group_tests_name("postgresql only", pg_only, NULL, NULL);
    }
}
