/* sc_projects.c - store conformance: projects and CAs (see store_conformance.h). */
#define _GNU_SOURCE
#include "store_conformance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* ---- projects ---- */

void test_project_put_get_list(void **state)
{
    fx *f = *state;
    char names[512] = "";
    fp_project_rec p;
    fp_audit_event ev = {"test", "project.create", "a_1", "", "a_1"};
    fp_error e = {0};
    int64_t before = fp_now();

    sc_project_put(f->s, "b-2");
    sc_project_put(f->s, "a_1");
    sc_project_put(f->s, "0z");
    assert_int_equal(fp_store_project_list(f->s, sc_count_project, names, &e), 0);
    assert_string_equal(names, "0z;a_1;b-2;default;"); /* by name */
    assert_int_equal(fp_store_project_get(f->s, "a_1", &p, &e), 0);
    assert_string_equal(p.name, "a_1");
    assert_true(p.created_at >= before && p.created_at <= fp_now());
    assert_int_equal(fp_store_project_get(f->s, "nope", &p, &e), FP_ERR_NOT_FOUND);
    /* a duplicate is refused and writes nothing, audit row included */
    assert_int_equal(fp_store_project_put(f->s, "a_1", &ev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_project_put(f->s, FP_PROJECT_DEFAULT, &ev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(sc_audit_count(f->s, "project.create", NULL, NULL), 3);
    assert_int_equal(sc_audit_count(f->s, "project.create", "a_1", "a_1"), 1);
    sc_assert_audit_ok(f->s, 3);
}

void test_project_bad_names(void **state)
{
    fx *f = *state;
    static const char *const bad[] = {
        "", "A", "Default", "-x", "_x", "a b", "a/b", "../x", "a.b", "x\n", "caf\xc3\xa9",
        "0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
    };
    char names[512] = "";
    fp_project_rec p;
    fp_error e = {0};

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        fp_err_clear(&e);
        if (fp_store_project_put(f->s, bad[i], NULL, &e) != FP_ERR_ARG)
            fail_msg("project name '%s' was not refused", bad[i]);
        sc_assert_msg(&e, "project name");
        assert_int_equal(fp_store_project_get(f->s, bad[i], &p, &e), FP_ERR_NOT_FOUND);
    }
    assert_int_equal(fp_store_project_put(f->s, NULL, NULL, &e), FP_ERR_ARG);
    assert_false(fp_project_name_ok(NULL));
    /* the longest name that fits FP_PROJECT_MAX */
    sc_project_put(f->s, "012345678901234567890123456789012345678901234567890123456789012");
    sc_project_put(f->s, "9");
    assert_int_equal(fp_store_project_list(f->s, sc_count_project, names, &e), 0);
    assert_string_equal(names,
                        "012345678901234567890123456789012345678901234567890123456789012;9;default;");
}

/* ---- CAs ---- */

static void assert_ca_equal(const fp_ca_rec *got, const fp_ca_rec *want)
{
    assert_string_equal(got->id, want->id);
    assert_string_equal(got->project, want->project);
    assert_string_equal(got->parent_id, want->parent_id);
    assert_int_equal(got->kind, want->kind);
    assert_string_equal(got->key_ref, want->key_ref);
    assert_int_equal(got->active, want->active);
    assert_string_equal(got->subject, want->subject);
    assert_int_equal(got->not_before, want->not_before);
    assert_int_equal(got->not_after, want->not_after);
    assert_int_equal(got->der_len, want->der_len);
    assert_memory_equal(got->der, want->der, want->der_len);
    assert_true(got->created_at > 0);
}

void test_ca_add_get(void **state)
{
    fx *f = *state;
    fp_ca_rec got, want;
    fp_error e = {0};

    want = sc_ca("root", FP_CA_ROOT, "", "", false, sc_der_root, sizeof(sc_der_root));
    assert_int_equal(fp_store_ca_get(f->s, "root", &got, &e), 0);
    assert_ca_equal(&got, &want);
    fp_ca_rec_clear(&got);
    want = sc_ca("issuing", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", true, sc_der_iss, sizeof(sc_der_iss));
    assert_int_equal(fp_store_ca_get(f->s, "issuing", &got, &e), 0);
    assert_ca_equal(&got, &want);
    fp_ca_rec_clear(&got);
    assert_int_equal(fp_store_ca_get(f->s, "nope", &got, &e), FP_ERR_NOT_FOUND);
    /* a trust root: no key we hold, no parent */
    sc_project_put(f->s, "p");
    want = sc_ca("p-trust", FP_CA_TRUST_ROOT, "p", "", false, sc_der_other, sizeof(sc_der_other));
    want.key_ref[0] = '\0';
    {
        fp_audit_event ev = {"test", "ca.add", "p-trust", "{}", "p"};
        assert_int_equal(fp_store_ca_add(f->s, &want, &ev, &e), 0);
        assert_int_equal(sc_audit_count(f->s, "ca.add", "p-trust", "p"), 1);
    }
    assert_int_equal(fp_store_ca_get(f->s, "p-trust", &got, &e), 0);
    assert_ca_equal(&got, &want);
    fp_ca_rec_clear(&got);
}

void test_ca_add_idempotent_and_refusals(void **state)
{
    fx *f = *state;
    fp_audit_event ev = {"test", "ca.add", "x", "", NULL};
    fp_ca_rec r;
    fp_error e = {0};
    int rows;

    /* the same id and certificate again: nothing written, not even audit */
    r = sc_ca("issuing", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", true, sc_der_iss, sizeof(sc_der_iss));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), 0);
    assert_int_equal(sc_audit_count(f->s, NULL, NULL, NULL), 0);
    /* the id with another certificate */
    r = sc_ca("issuing", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", false, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_DUPLICATE);
    r = sc_ca("root", FP_CA_ROOT, "", "", false, sc_der_iss, sizeof(sc_der_iss));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_DUPLICATE);
    /* unknown project */
    r = sc_ca("ghost-iss", FP_CA_ISSUING, "ghost", "root", true, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_NOT_FOUND);
    sc_assert_msg(&e, "ghost");
    /* malformed rows */
    r = sc_ca("x", FP_CA_ISSUING, "", "root", false, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = sc_ca("x", FP_CA_TRUST_ROOT, "", "", false, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = sc_ca("x", FP_CA_TRUST_ROOT, FP_PROJECT_DEFAULT, "", true, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = sc_ca("x", FP_CA_ROOT, "", "", true, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = sc_ca("x", 7, FP_PROJECT_DEFAULT, "", false, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = sc_ca("", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", false, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = sc_ca("x", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", false, NULL, 0);
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = sc_ca("x", FP_CA_ISSUING, "Bad Name", "root", false, sc_der_other, sizeof(sc_der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    rows = sc_audit_count(f->s, NULL, NULL, NULL);
    assert_int_equal(rows, 0);
    assert_int_equal(fp_store_ca_get(f->s, "x", &r, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_ca_get(f->s, "ghost-iss", &r, &e), FP_ERR_NOT_FOUND);
    {
        fp_ca_rec got;
        assert_int_equal(fp_store_ca_get(f->s, "issuing", &got, &e), 0);
        assert_memory_equal(got.der, sc_der_iss, sizeof(sc_der_iss)); /* not replaced */
        assert_true(got.active);
        fp_ca_rec_clear(&got);
    }
}

typedef struct {
    char ids[512];
    int64_t last_created;
    char last_id[64];
} ca_list_ctx;

static int ca_list_cb(void *arg, const fp_ca_rec *r)
{
    ca_list_ctx *c = arg;
    /* ordered by created_at, then id */
    assert_true(r->created_at > c->last_created ||
                (r->created_at == c->last_created && strcmp(r->id, c->last_id) > 0));
    c->last_created = r->created_at;
    snprintf(c->last_id, sizeof(c->last_id), "%s", r->id);
    strcat(c->ids, r->id);
    strcat(c->ids, ";");
    return FP_ERR_OK;
}

static const char *ca_ids(fp_store *s, const char *project, int kind, ca_list_ctx *c)
{
    fp_error e = {0};
    memset(c, 0, sizeof(*c));
    if (fp_store_ca_list(s, project, kind, ca_list_cb, c, &e) != FP_ERR_OK)
        fail_msg("ca list: %s", e.msg);
    return c->ids;
}

void test_ca_list_filters(void **state)
{
    fx *f = *state;
    ca_list_ctx c;

    sc_project_put(f->s, "p");
    sc_add_ca(f->s, "p-iss", FP_CA_ISSUING, "p", true);
    sc_add_ca(f->s, "p-trust", FP_CA_TRUST_ROOT, "p", false);
    ca_ids(f->s, NULL, -1, &c);
    assert_int_equal(strlen(c.ids), strlen("root;issuing;p-iss;p-trust;"));
    assert_non_null(strstr(c.ids, "p-trust;"));
    assert_string_equal(ca_ids(f->s, "", -1, &c), "root;");
    assert_string_equal(ca_ids(f->s, FP_PROJECT_DEFAULT, -1, &c), "issuing;");
    ca_ids(f->s, "p", -1, &c);
    assert_true(!strcmp(c.ids, "p-iss;p-trust;") || !strcmp(c.ids, "p-trust;p-iss;"));
    assert_string_equal(ca_ids(f->s, "p", FP_CA_TRUST_ROOT, &c), "p-trust;");
    assert_string_equal(ca_ids(f->s, NULL, FP_CA_ROOT, &c), "root;");
    ca_ids(f->s, NULL, FP_CA_ISSUING, &c);
    assert_true(!strcmp(c.ids, "issuing;p-iss;") || !strcmp(c.ids, "p-iss;issuing;"));
    assert_string_equal(ca_ids(f->s, "ghost", -1, &c), "");
}

void test_ca_activate(void **state)
{
    fx *f = *state;
    fp_audit_event ev = {"test", "ca.activate", "issuing", "", FP_PROJECT_DEFAULT};
    fp_error e = {0};

    sc_project_put(f->s, "p");
    sc_add_ca(f->s, "p-iss", FP_CA_ISSUING, "p", true);
    sc_add_ca(f->s, "p-trust", FP_CA_TRUST_ROOT, "p", false);
    /* an inactive issuing CA leaves the active one alone */
    sc_add_ca(f->s, "iss3", FP_CA_ISSUING, FP_PROJECT_DEFAULT, false);
    assert_true(sc_ca_active(f->s, "issuing"));
    assert_false(sc_ca_active(f->s, "iss3"));
    /* a new active one takes over, in its project only */
    sc_add_ca(f->s, "iss2", FP_CA_ISSUING, FP_PROJECT_DEFAULT, true);
    assert_false(sc_ca_active(f->s, "issuing"));
    assert_true(sc_ca_active(f->s, "iss2"));
    assert_true(sc_ca_active(f->s, "p-iss"));
    /* activate the first again */
    assert_int_equal(fp_store_ca_activate(f->s, "issuing", &ev, &e), 0);
    assert_true(sc_ca_active(f->s, "issuing"));
    assert_false(sc_ca_active(f->s, "iss2"));
    assert_false(sc_ca_active(f->s, "iss3"));
    assert_true(sc_ca_active(f->s, "p-iss"));
    assert_int_equal(fp_store_ca_activate(f->s, "issuing", &ev, &e), 0); /* already */
    assert_true(sc_ca_active(f->s, "issuing"));
    assert_int_equal(sc_audit_count(f->s, "ca.activate", "issuing", FP_PROJECT_DEFAULT), 2);
    /* only issuing CAs can be active */
    assert_int_equal(fp_store_ca_activate(f->s, "root", &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_ca_activate(f->s, "p-trust", &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_ca_activate(f->s, "nope", &ev, &e), FP_ERR_NOT_FOUND);
    assert_false(sc_ca_active(f->s, "root"));
    assert_false(sc_ca_active(f->s, "p-trust"));
    assert_int_equal(sc_audit_count(f->s, "ca.activate", NULL, NULL), 2);
    sc_assert_audit_ok(f->s, 3); /* project.create + 2 activations */
}

/* The re-signing ceremony replaces a CA's certificate in place: the row
 * keeps its id, kind, key and active flag (certificates issued under it
 * stay its own), audited; an unknown id changes nothing. */
void test_ca_set_cert(void **state)
{
    fx *f = *state;
    fp_audit_event ev = {"test", "ca.resign", "issuing", "", FP_PROJECT_DEFAULT};
    const unsigned char der[] = {0x30, 0x03, 0x02, 0x01, 0x07};
    fp_ca_rec r;
    fp_error e = {0};

    assert_true(sc_ca_active(f->s, "issuing"));
    assert_int_equal(fp_store_ca_set_cert(f->s, "issuing", der, sizeof(der), "CN=renewed", 1000,
                                          2000, &ev, &e),
                     0);
    assert_int_equal(fp_store_ca_get(f->s, "issuing", &r, &e), 0);
    assert_int_equal(r.der_len, sizeof(der));
    assert_memory_equal(r.der, der, sizeof(der));
    assert_string_equal(r.subject, "CN=renewed");
    assert_int_equal(r.not_before, 1000);
    assert_int_equal(r.not_after, 2000);
    assert_int_equal(r.kind, FP_CA_ISSUING);
    assert_true(r.active);
    fp_ca_rec_clear(&r);
    assert_int_equal(sc_audit_count(f->s, "ca.resign", "issuing", FP_PROJECT_DEFAULT), 1);
    assert_int_equal(fp_store_ca_set_cert(f->s, "nope", der, sizeof(der), "CN=x", 1, 2, &ev, &e),
                     FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_ca_set_cert(f->s, "issuing", der, 0, "CN=x", 1, 2, &ev, &e),
                     FP_ERR_ARG);
    assert_int_equal(sc_audit_count(f->s, "ca.resign", NULL, NULL), 1);
}
