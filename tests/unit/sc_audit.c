/* sc_audit.c - store conformance: the audit chain and several handles on one
 * store (see store_conformance.h). */
#define _GNU_SOURCE
#include "store_conformance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* ---- audit ---- */

typedef struct {
    char projects[256];
} audit_proj_ctx;

static int audit_proj_cb(void *arg, const fp_audit_row *r)
{
    audit_proj_ctx *c = arg;
    strcat(c->projects, r->project);
    strcat(c->projects, ";");
    return FP_ERR_OK;
}

/* Rows 1-5: no project (NULL), project b, "" (none), project default,
 * no project. */
static void add_mixed_events(fx *f)
{
    static const char *const projects[5] = {NULL, "b", "", FP_PROJECT_DEFAULT, NULL};
    for (int i = 0; i < 5; i++) {
        char obj[16];
        fp_audit_event ev = {"tester", "test.event", obj, "{\"i\":1}", projects[i]};
        snprintf(obj, sizeof(obj), "o%d", i);
        assert_int_equal(fp_store_audit_append(f->s, &ev, NULL), 0);
    }
}

void test_audit_chain_mixed_projects(void **state)
{
    fx *f = *state;
    audit_proj_ctx c;
    fp_error e = {0};

    add_mixed_events(f);
    memset(&c, 0, sizeof(c));
    assert_int_equal(fp_store_audit_iter(f->s, audit_proj_cb, &c, &e), 0);
    assert_string_equal(c.projects, ";b;;default;;");
    sc_assert_audit_ok(f->s, 5);
    {
        /* another handle appends to the same chain */
        fp_store *s2 = NULL;
        fp_audit_event ev = {"other", "test.event", "o5", "", "b"};
        assert_int_equal(sc_be->open_again(sc_be->arg, &s2), 0);
        assert_int_equal(fp_store_audit_append(s2, &ev, &e), 0);
        fp_store_close(s2);
    }
    add_mixed_events(f);
    sc_assert_audit_ok(f->s, 11);
}

/* The hash covers the project exactly when there is one. */
void test_audit_hash_covers_project(void **state)
{
    char h0[65], h1[65], h2[65], h3[65];
    (void)state;
    assert_int_equal(fp_audit_hash(FP_AUDIT_GENESIS, 1, 2, "a", "b", "c", "d", NULL, h0), 0);
    assert_int_equal(fp_audit_hash(FP_AUDIT_GENESIS, 1, 2, "a", "b", "c", "d", "", h1), 0);
    assert_int_equal(fp_audit_hash(FP_AUDIT_GENESIS, 1, 2, "a", "b", "c", "d", "p", h2), 0);
    assert_int_equal(fp_audit_hash(FP_AUDIT_GENESIS, 1, 2, "a", "b", "c", "d", "q", h3), 0);
    assert_string_equal(h0, h1);
    assert_string_not_equal(h0, h2);
    assert_string_not_equal(h2, h3);
    /* a project's bytes cannot pose as part of the detail */
    assert_int_equal(fp_audit_hash(FP_AUDIT_GENESIS, 1, 2, "a", "b", "c", "d1:p", NULL, h1), 0);
    assert_string_not_equal(h1, h2);
}

static void tamper_and_expect(void **state, bool del, int64_t row, const char *column,
                              const char *value, const char *needle)
{
    fx *f = *state;
    int64_t rows = 0;
    fp_error e = {0};

    add_mixed_events(f);
    sc_assert_audit_ok(f->s, 5);
    if (del)
        assert_int_equal(sc_be->audit_delete(sc_be->arg, row), 0);
    else
        assert_int_equal(sc_be->audit_edit(sc_be->arg, row, column, value), 0);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), FP_ERR_AUDIT);
    sc_assert_msg(&e, needle);
}

void test_audit_detects_edit(void **state)
{
    tamper_and_expect(state, false, 3, "detail", "{\"i\":2}", "row 3");
}

void test_audit_detects_edited_project(void **state)
{
    tamper_and_expect(state, false, 2, "project", "c", "row 2");
}

void test_audit_detects_cleared_project(void **state)
{
    tamper_and_expect(state, false, 4, "project", "", "row 4");
}

void test_audit_detects_project_added(void **state)
{
    tamper_and_expect(state, false, 3, "project", "b", "row 3");
}

void test_audit_detects_delete_middle(void **state)
{
    tamper_and_expect(state, true, 2, NULL, NULL, "deleted");
}

void test_audit_detects_delete_tail(void **state)
{
    tamper_and_expect(state, true, 5, NULL, NULL, "head");
}

void test_audit_detects_plain_edit_of_tail(void **state)
{
    tamper_and_expect(state, false, 5, "actor", "mallory", "row 5");
}

typedef struct {
    char prev[65];
    int64_t ts;
} tail_ctx;

static int tail_cb(void *arg, const fp_audit_row *r)
{
    tail_ctx *t = arg;
    snprintf(t->prev, sizeof(t->prev), "%s", r->prev_hash);
    t->ts = r->ts;
    return FP_ERR_OK;
}

void test_audit_detects_consistent_rehash_of_tail(void **state)
{
    /* rewrite the last row's content AND its hash so the chain itself is
     * consistent: the separately kept head still names the old hash */
    fx *f = *state;
    tail_ctx t;
    char hash[65];
    int64_t rows = 0;
    fp_error e = {0};

    add_mixed_events(f);
    memset(&t, 0, sizeof(t));
    assert_int_equal(fp_store_audit_iter(f->s, tail_cb, &t, &e), 0);
    assert_int_equal(fp_audit_hash(t.prev, 5, t.ts, "mallory", "test.event", "o4", "{\"i\":1}",
                                   NULL, hash), 0);
    assert_int_equal(sc_be->audit_edit(sc_be->arg, 5, "actor", "mallory"), 0);
    assert_int_equal(sc_be->audit_edit(sc_be->arg, 5, "hash", hash), 0);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), FP_ERR_AUDIT);
    sc_assert_msg(&e, "head");
}

/* ---- handles ---- */

void test_handles_share_one_store(void **state)
{
    fx *f = *state;
    fp_store *s2 = NULL;
    fp_cert_rec r = sc_mkrec("K1", 5);
    fp_project_rec p;
    fp_error e = {0};

    assert_int_equal(sc_be->open_again(sc_be->arg, &s2), 0);
    sc_project_put(s2, "b");
    assert_int_equal(fp_store_project_get(f->s, "b", &p, &e), 0);
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    assert_true(sc_cert_stored(s2, "K1"));
    sc_token_put(f->s, "b", "tk", 2, 0);
    assert_int_equal(fp_store_token_use(s2, "b", "tk", fp_now(), NULL, &e), 0);
    assert_int_equal(sc_token_uses(f->s, "b", "tk"), 1);
    fp_store_close(s2);
    sc_assert_audit_ok(f->s, 1);
}

/* fp_store_audit_head: the genesis for an empty log, then the last row's
 * id and hash as iteration sees them, also after another handle appends. */
typedef struct {
    int64_t id;
    char hash[65];
} last_row;

static int last_cb(void *arg, const fp_audit_row *r)
{
    last_row *l = arg;
    l->id = r->id;
    snprintf(l->hash, sizeof(l->hash), "%s", r->hash);
    return FP_ERR_OK;
}

void test_audit_head(void **state)
{
    fx *f = *state;
    int64_t id = -1, before = 0;
    char hash[65];
    last_row l = {0, ""};
    fp_error e = {0};

    assert_int_equal(fp_store_audit_head(f->s, &before, hash, &e), 0);
    assert_true(before >= 0);
    add_mixed_events(f);
    assert_int_equal(fp_store_audit_iter(f->s, last_cb, &l, &e), 0);
    assert_int_equal(fp_store_audit_head(f->s, &id, hash, &e), 0);
    assert_int_equal(id, l.id);
    assert_true(id >= before + 5);
    assert_string_equal(hash, l.hash);
    {
        fp_store *s2 = NULL;
        fp_audit_event ev = {"other", "test.event", "o9", "", NULL};
        assert_int_equal(sc_be->open_again(sc_be->arg, &s2), 0);
        assert_int_equal(fp_store_audit_append(s2, &ev, &e), 0);
        fp_store_close(s2);
    }
    assert_int_equal(fp_store_audit_head(f->s, &id, hash, &e), 0);
    assert_int_equal(id, l.id + 1);
    assert_string_not_equal(hash, l.hash);
}
