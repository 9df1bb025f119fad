/* test_store.c - SQLite store: inserts, uniqueness, status rules, audit chain. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/util.h"
#include "store/store.h"

typedef struct {
    char *dir;
    char path[512];
    fp_store *s;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    unsigned char der[3] = {1, 2, 3};
    f->dir = tu_tmpdir();
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    assert_int_equal(fp_store_open(f->path, &f->s, NULL), 0);
    assert_int_equal(fp_store_ca_put(f->s, "issuing", NULL, der, 3, NULL, NULL), 0);
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

static fp_cert_rec mkrec(const char *serial, int64_t not_after)
{
    static unsigned char der[4] = {0x30, 0x02, 0x05, 0x00};
    fp_cert_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.serial, sizeof(r.serial), "%s", serial);
    strcpy(r.ca_id, "issuing");
    strcpy(r.profile, "device");
    r.subject = (char *)"CN=x";
    r.sans = (char *)"";
    r.not_before = 1;
    r.not_after = not_after;
    r.issued_at = fp_now();
    r.der = der;
    r.der_len = sizeof(der);
    return r;
}

static void test_insert_get_duplicate(void **state)
{
    fx *f = *state;
    fp_cert_rec r = mkrec("AA01", fp_now() + 1000), got;
    fp_audit_event ev = {"t", "cert.issue", "AA01", "{}"};
    fp_error e = {0};

    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), 0);
    assert_int_equal(fp_store_cert_get(f->s, "AA01", &got, &e), 0);
    assert_string_equal(got.subject, "CN=x");
    assert_int_equal(got.der_len, 4);
    assert_int_equal(got.status, FP_CERT_VALID);
    fp_cert_rec_clear(&got);
    /* the same serial again is refused and nothing of the batch lands */
    {
        fp_cert_rec batch[2] = {mkrec("AA02", 5), mkrec("AA01", 5)};
        fp_audit_event evs[2] = {ev, ev};
        assert_int_equal(fp_store_cert_insert(f->s, batch, evs, 2, &e), FP_ERR_DUPLICATE);
        assert_int_equal(fp_store_cert_get(f->s, "AA02", &got, &e), FP_ERR_NOT_FOUND);
    }
    assert_int_equal(fp_store_cert_get(f->s, "FFFF", &got, &e), FP_ERR_NOT_FOUND);
}

static void test_unknown_ca_refused(void **state)
{
    fx *f = *state;
    fp_cert_rec r = mkrec("BB01", 5);
    fp_error e = {0};
    strcpy(r.ca_id, "nope");
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), FP_ERR_STORE);
}

static void test_status_transitions(void **state)
{
    fx *f = *state;
    fp_cert_rec r = mkrec("CC01", fp_now() + 1000), got;
    fp_error e = {0};

    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    /* lifting a hold that is not there */
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_VALID, FP_REASON_REMOVE_FROM_CRL, 0, NULL, &e), FP_ERR_STATE);
    /* hold, hold again (refused), lift, revoke for good, revoke again (refused) */
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_REVOKED, FP_REASON_HOLD, 10, NULL, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_REVOKED, FP_REASON_HOLD, 11, NULL, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_VALID, FP_REASON_REMOVE_FROM_CRL, 0, NULL, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_REVOKED, FP_REASON_KEY_COMPROMISE, 12, NULL, &e), 0);
    assert_int_equal(fp_store_cert_get(f->s, "CC01", &got, &e), 0);
    assert_int_equal(got.status, FP_CERT_REVOKED);
    assert_int_equal(got.reason, FP_REASON_KEY_COMPROMISE);
    assert_int_equal(got.revoked_at, 12);
    fp_cert_rec_clear(&got);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_REVOKED, FP_REASON_SUPERSEDED, 13, NULL, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_VALID, FP_REASON_REMOVE_FROM_CRL, 0, NULL, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_cert_set_status(f->s, "NOPE", FP_CERT_REVOKED, 1, 1, NULL, &e), FP_ERR_NOT_FOUND);
}

static int count_cb(void *arg, const fp_cert_rec *r)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static void test_list_filters(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[3] = {mkrec("D1", now - 10), mkrec("D2", now + 86400), mkrec("D3", now + 90 * 86400)};
    fp_cert_filter flt = {.status = -1, .now = now};
    fp_error e = {0};
    int n;

    assert_int_equal(fp_store_cert_insert(f->s, recs, NULL, 3, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "D3", FP_CERT_REVOKED, 1, now, NULL, &e), 0);
    n = 0;
    assert_int_equal(fp_store_cert_list(f->s, &flt, count_cb, &n, &e), 0);
    assert_int_equal(n, 3);
    flt.expired_only = true;
    n = 0;
    fp_store_cert_list(f->s, &flt, count_cb, &n, &e);
    assert_int_equal(n, 1);
    flt.expired_only = false;
    flt.expiring_before = now + 2 * 86400;
    n = 0;
    fp_store_cert_list(f->s, &flt, count_cb, &n, &e);
    assert_int_equal(n, 1); /* D2 only: D1 already expired, D3 later */
    flt.expiring_before = 0;
    flt.status = FP_CERT_REVOKED;
    n = 0;
    fp_store_cert_list(f->s, &flt, count_cb, &n, &e);
    assert_int_equal(n, 1);
    flt.status = -1;
    flt.limit = 2;
    n = 0;
    fp_store_cert_list(f->s, &flt, count_cb, &n, &e);
    assert_int_equal(n, 2);
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

static void add_events(fx *f, int n)
{
    for (int i = 0; i < n; i++) {
        char obj[16];
        fp_audit_event ev = {"tester", "test.event", obj, "{\"i\":1}"};
        snprintf(obj, sizeof(obj), "o%d", i);
        assert_int_equal(fp_store_audit_append(f->s, &ev, NULL), 0);
    }
}

static void test_audit_chain_ok(void **state)
{
    fx *f = *state;
    int64_t rows = 0;
    fp_error e = {0};
    add_events(f, 5);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), 0);
    assert_int_equal(rows, 5);
}

static void test_audit_is_append_only(void **state)
{
    fx *f = *state;
    sqlite3 *db = NULL;
    add_events(f, 2);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET actor='x'", NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Tampering needs the triggers dropped first, as an attacker with the file
 * would; verify must then catch each kind of change. */
static void tamper_and_expect(void **state, const char *sql, const char *needle)
{
    fx *f = *state;
    int64_t rows = 0;
    fp_error e = {0};
    add_events(f, 5);
    exec_sql(f->path, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;");
    exec_sql(f->path, sql);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), FP_ERR_AUDIT);
    if (strstr(e.msg, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

static void test_audit_detects_edit(void **state)
{
    tamper_and_expect(state, "UPDATE audit SET detail='{\"i\":2}' WHERE id = 3", "row 3");
}

static void test_audit_detects_delete_middle(void **state)
{
    tamper_and_expect(state, "DELETE FROM audit WHERE id = 2", "deleted");
}

static void test_audit_detects_delete_tail(void **state)
{
    tamper_and_expect(state, "DELETE FROM audit WHERE id = 5", "head");
}

static void test_audit_detects_consistent_rehash_of_tail(void **state)
{
    /* rewrite the last row's content AND its hash so the chain itself is
     * consistent: the separately kept head still names the old hash */
    fx *f = *state;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char hash[65], sql[256];
    int64_t rows = 0;
    fp_error e = {0};

    add_events(f, 5);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT prev_hash, ts FROM audit WHERE id = 5", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(fp_audit_hash((const char *)sqlite3_column_text(st, 0), 5, sqlite3_column_int64(st, 1),
                                   "mallory", "test.event", "o4", "{\"i\":1}", hash), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    exec_sql(f->path, "DROP TRIGGER audit_no_update;");
    snprintf(sql, sizeof(sql), "UPDATE audit SET actor='mallory', hash='%s' WHERE id = 5", hash);
    exec_sql(f->path, sql);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), FP_ERR_AUDIT);
    assert_non_null(strstr(e.msg, "head"));
}

static void test_audit_detects_plain_edit_of_tail(void **state)
{
    tamper_and_expect(state, "UPDATE audit SET actor='mallory' WHERE id = 5", "row 5");
}

static void test_reopen_keeps_data_and_schema(void **state)
{
    fx *f = *state;
    fp_cert_rec r = mkrec("EE01", 5), got;
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
    assert_int_equal(fp_store_open("postgres://x", &s2, &e), FP_ERR_CONFIG);
}

/* ---- certificates paid with enrollment tokens in the same transaction ---- */

/* One integer from SQL run on a connection of its own. */
static int64_t sql_int(fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void assert_msg(const fp_error *e, const char *needle)
{
    if (strstr(e->msg, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", e->msg, needle);
}

static void test_spend_refuses_only_the_unpaid(void **state)
{
    fx *f = *state;
    int64_t now = fp_now(), rows = 0;
    fp_cert_rec recs[6] = {mkrec("F1", now + 99), mkrec("F2", now + 99), mkrec("F3", now + 99),
                           mkrec("F4", now + 99), mkrec("F5", now + 99), mkrec("F6", now + 99)};
    fp_audit_event evs[6];
    /* F2 wants the use F1 just took; F5 a token with none; F6 no token */
    const char *toks[6] = {"one", "one", "two", "none", "ghost", NULL};
    fp_error res[6], e = {0};
    static const char *const serials[6] = {"F1", "F2", "F3", "F4", "F5", "F6"};

    tu_token_put(f->s, "one", 1, 0);
    tu_token_put(f->s, "two", 2, now + 3600);
    tu_token_put(f->s, "none", 0, 0);
    for (int i = 0; i < 6; i++)
        evs[i] = (fp_audit_event){"est:token:x", "cert.issue", serials[i], "{}"};
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, evs, toks, now, res, 6, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_OK);
    assert_int_equal(res[1].code, FP_ERR_STATE);
    assert_msg(&res[1], "token one is used up");
    assert_int_equal(res[2].code, FP_ERR_OK);
    assert_int_equal(res[3].code, FP_ERR_STATE);
    assert_msg(&res[3], "token none is used up");
    assert_int_equal(res[4].code, FP_ERR_NOT_FOUND);
    assert_int_equal(res[5].code, FP_ERR_OK);
    assert_true(tu_cert_stored(f->s, "F1") && tu_cert_stored(f->s, "F3") && tu_cert_stored(f->s, "F6"));
    assert_false(tu_cert_stored(f->s, "F2") || tu_cert_stored(f->s, "F4") || tu_cert_stored(f->s, "F5"));
    assert_int_equal(tu_token_uses(f->s, "one"), 0);
    assert_int_equal(tu_token_uses(f->s, "two"), 1);
    assert_int_equal(tu_token_uses(f->s, "none"), 0);
    /* one token.use row per use spent, none for refused records, whose
     * certificate audit rows are not written either */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM audit WHERE action = 'token.use'"), 2);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM audit WHERE action = 'token.use'"
                                " AND object = 'one' AND actor = 'est:token:x'"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM audit WHERE action = 'cert.issue'"
                                " AND object IN ('F2', 'F4', 'F5')"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM audit WHERE action = 'cert.issue'"), 3);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), 0);
    /* no tokens means no results needed; tokens without results is refused */
    recs[0] = mkrec("F7", now + 99);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, NULL, now, NULL, 1, &e), 0);
    recs[0] = mkrec("F8", now + 99);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks + 2, now, NULL, 1, &e),
                     FP_ERR_ARG);
    assert_false(tu_cert_stored(f->s, "F8"));
    assert_int_equal(tu_token_uses(f->s, "two"), 1);
}

static void test_spend_refuses_expired(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[2] = {mkrec("G1", now + 99), mkrec("G2", now + 99)};
    const char *toks[2] = {"old", "fresh"};
    fp_error res[2], e = {0};

    tu_token_put(f->s, "old", 3, now + 100);
    tu_token_put(f->s, "fresh", 3, now + 101);
    /* expired from its expires_at second on, as fp_store_token_use has it */
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now + 100, res, 2, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_STATE);
    assert_msg(&res[0], "token old has expired");
    assert_int_equal(res[1].code, FP_ERR_OK);
    assert_false(tu_cert_stored(f->s, "G1"));
    assert_true(tu_cert_stored(f->s, "G2"));
    assert_int_equal(tu_token_uses(f->s, "old"), 3);
    assert_int_equal(tu_token_uses(f->s, "fresh"), 2);
    /* the same token one second earlier still pays */
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now + 99, res, 1, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_OK);
    assert_true(tu_cert_stored(f->s, "G1"));
    assert_int_equal(tu_token_uses(f->s, "old"), 2);
}

/* Every failure of the transaction gives the token use back: nothing is
 * written, and every record carries the batch's error. */
static void expect_batch_fails(fx *f, const fp_cert_rec *recs, size_t n, int want,
                               const char *needle)
{
    const char *toks[3] = {"pay", "pay", "pay"};
    fp_error res[3], e = {0};
    int64_t before = sql_int(f, "SELECT count(*) FROM audit");

    assert_true(n <= 3);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, fp_now(), res, n, &e), want);
    assert_msg(&e, needle);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(res[i].code, want);
        assert_string_equal(res[i].msg, e.msg);
    }
    assert_int_equal(tu_token_uses(f->s, "pay"), 5);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM audit"), before);
    assert_false(tu_cert_stored(f->s, recs[0].serial));
}

static void test_spend_rolled_back_with_the_batch(void **state)
{
    fx *f = *state;
    int64_t now = fp_now(), rows = 0;
    fp_cert_rec r = mkrec("H0", now + 99);
    fp_error e = {0};

    tu_token_put(f->s, "pay", 5, 0);
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    {
        /* a serial collision after the first record's token was spent */
        fp_cert_rec recs[2] = {mkrec("H1", now + 99), mkrec("H0", now + 99)};
        expect_batch_fails(f, recs, 2, FP_ERR_DUPLICATE, "serial H0 already issued");
    }
    {
        /* any other failing statement (an unknown CA) */
        fp_cert_rec recs[2] = {mkrec("H1", now + 99), mkrec("H2", now + 99)};
        strcpy(recs[1].ca_id, "nope");
        expect_batch_fails(f, recs, 2, FP_ERR_STORE, "certificate insert");
    }
    {
        /* COMMIT itself failing: a deferred foreign key planted in the
         * schema is only checked at COMMIT, after every statement of the
         * batch, token uses included, has succeeded */
        fp_cert_rec recs[3] = {mkrec("H1", now + 99), mkrec("H2", now + 99), mkrec("BOOM", now + 99)};
        exec_sql(f->path,
                 "CREATE TABLE inject_parent (id TEXT PRIMARY KEY);"
                 "CREATE TABLE inject (v TEXT REFERENCES inject_parent(id)"
                 "  DEFERRABLE INITIALLY DEFERRED);"
                 "CREATE TRIGGER inject_boom AFTER INSERT ON certificates"
                 "  WHEN NEW.serial = 'BOOM' BEGIN INSERT INTO inject VALUES ('x'); END;");
        expect_batch_fails(f, recs, 3, FP_ERR_STORE, "COMMIT");
        assert_false(tu_cert_stored(f->s, "H2"));
        exec_sql(f->path, "DROP TRIGGER inject_boom;");
        /* the device is not locked out: the same records go through now */
        {
            const char *toks[3] = {"pay", "pay", "pay"};
            fp_error res[3];
            assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now, res, 3, &e), 0);
            assert_int_equal(res[2].code, FP_ERR_OK);
        }
    }
    assert_int_equal(tu_token_uses(f->s, "pay"), 2);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), 0);
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

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_insert_get_duplicate),
        T(test_unknown_ca_refused),
        T(test_status_transitions),
        T(test_list_filters),
        T(test_audit_chain_ok),
        T(test_audit_is_append_only),
        T(test_audit_detects_edit),
        T(test_audit_detects_delete_middle),
        T(test_audit_detects_delete_tail),
        T(test_audit_detects_consistent_rehash_of_tail),
        T(test_audit_detects_plain_edit_of_tail),
        T(test_reopen_keeps_data_and_schema),
        T(test_future_schema_refused),
        T(test_reason_names),
        T(test_spend_refuses_only_the_unpaid),
        T(test_spend_refuses_expired),
        T(test_spend_rolled_back_with_the_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
