/* test_store.c - the store conformance suite (store_conformance.c) on the
 * SQLite backend.  SQLite-only behaviour is in test_store_sqlite.c. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store_conformance.h"

typedef struct {
    char *dir;
    char path[512];
} sq_backend;

static int sq_open_fresh(void *arg, fp_store **out)
{
    sq_backend *b = arg;
    b->dir = tu_tmpdir();
    snprintf(b->path, sizeof(b->path), "%s/t.db", b->dir);
    return fp_store_open(b->path, out, NULL);
}

static int sq_open_again(void *arg, fp_store **out)
{
    sq_backend *b = arg;
    return fp_store_open(b->path, out, NULL);
}

static void sq_discard(void *arg)
{
    sq_backend *b = arg;
    tu_rmdir(b->dir);
    b->dir = NULL;
}

/* As an attacker with the file would: drop the append-only triggers, then
 * change the table. */
static int sq_tamper(sq_backend *b, const char *column, const char *value, int64_t id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char q[256];
    int rc = -1;

    if (column != NULL)
        snprintf(q, sizeof(q), "UPDATE audit SET %s = ?1 WHERE id = ?2", column);
    else
        snprintf(q, sizeof(q), "DELETE FROM audit WHERE id = ?1");
    if (sqlite3_open(b->path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "DROP TRIGGER IF EXISTS audit_no_update;"
                         "DROP TRIGGER IF EXISTS audit_no_delete;", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (value != NULL) {
        sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, id);
    } else {
        sqlite3_bind_int64(st, 1, id);
    }
    if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db) == 1)
        rc = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static int sq_audit_edit(void *arg, int64_t id, const char *column, const char *value)
{
    static const char *const ok[] = {"actor", "action", "object", "detail", "project", "hash"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
        if (!strcmp(column, ok[i]))
            return sq_tamper(arg, column, value, id);
    return -1;
}

static int sq_audit_delete(void *arg, int64_t id)
{
    return sq_tamper(arg, NULL, NULL, id);
}

int main(void)
{
    sq_backend b = {0};
    sc_backend sc = {"store conformance: sqlite", &b, sq_open_fresh, sq_open_again, sq_discard,
                     sq_audit_edit, sq_audit_delete};
    return store_conformance_run(&sc);
}
