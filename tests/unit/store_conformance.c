/*
 * store_conformance.c - every behaviour of the store interface, through
 * fp_store_* calls only; see store_conformance.h.
 *
 * Each case gets a fresh store from the backend (setup: with the shared
 * root "root" and the active issuing CA "issuing" of project "default",
 * added without audit rows, so audit row ids in a case start at 1).
 */
#define _GNU_SOURCE
#include "store_conformance.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"

static const sc_backend *B;

typedef struct {
    fp_store *s;
} fx;

static unsigned char der_root[] = {0x30, 0x03, 0x02, 0x01, 0x01};
static unsigned char der_iss[] = {0x30, 0x03, 0x02, 0x01, 0x02};
static unsigned char der_other[] = {0x30, 0x03, 0x02, 0x01, 0x03};
static unsigned char der_cert[] = {0x30, 0x02, 0x05, 0x00};

static fp_ca_rec ca(const char *id, int kind, const char *project, const char *parent,
                    bool active, unsigned char *der, size_t der_len)
{
    fp_ca_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.project, sizeof(r.project), "%s", project);
    snprintf(r.parent_id, sizeof(r.parent_id), "%s", parent);
    r.kind = kind;
    r.active = active;
    snprintf(r.key_ref, sizeof(r.key_ref), "keys/%s.key", id);
    r.subject = (char *)"CN=test CA,O=fleetpki";
    r.not_before = 1000;
    r.not_after = 2000000000;
    r.der = der;
    r.der_len = der_len;
    return r;
}

static int open_empty(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    fp_error e = {0};
    assert_non_null(f);
    if (B->open_fresh(B->arg, &f->s) != FP_ERR_OK)
        fail_msg("%s: cannot open a fresh store", B->name);
    (void)e;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    fx *f;
    fp_ca_rec root = ca("root", FP_CA_ROOT, "", "", false, der_root, sizeof(der_root));
    fp_ca_rec iss = ca("issuing", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", true, der_iss,
                       sizeof(der_iss));
    fp_error e = {0};

    open_empty(state);
    f = *state;
    if (fp_store_ca_add(f->s, &root, NULL, &e) != FP_ERR_OK ||
        fp_store_ca_add(f->s, &iss, NULL, &e) != FP_ERR_OK)
        fail_msg("setup: %s", e.msg);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fp_store_close(f->s);
    B->discard(B->arg);
    free(f);
    return 0;
}

static void assert_msg(const fp_error *e, const char *needle)
{
    if (strstr(e->msg, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", e->msg, needle);
}

static fp_cert_rec mkrec(const char *serial, int64_t not_after)
{
    fp_cert_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.serial, sizeof(r.serial), "%s", serial);
    strcpy(r.ca_id, "issuing");
    strcpy(r.project, FP_PROJECT_DEFAULT);
    strcpy(r.profile, "device");
    r.subject = (char *)"CN=x";
    r.sans = (char *)"";
    r.not_before = 1;
    r.not_after = not_after;
    r.issued_at = fp_now();
    r.der = der_cert;
    r.der_len = sizeof(der_cert);
    return r;
}

static bool cert_stored(fp_store *s, const char *serial)
{
    fp_cert_rec got;
    int rc = fp_store_cert_get(s, serial, &got, NULL);
    if (rc == FP_ERR_OK)
        fp_cert_rec_clear(&got);
    else
        assert_int_equal(rc, FP_ERR_NOT_FOUND);
    return rc == FP_ERR_OK;
}

static void token_put(fp_store *s, const char *project, const char *id, int uses,
                      int64_t expires_at)
{
    fp_token_rec t;
    fp_error e = {0};
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.project, sizeof(t.project), "%s", project);
    strcpy(t.label, "lab");
    memset(t.hash, 0xab, sizeof(t.hash));
    t.uses_left = uses;
    t.expires_at = expires_at;
    t.created_at = fp_now();
    if (fp_store_token_put(s, &t, NULL, &e) != FP_ERR_OK)
        fail_msg("token put %s/%s: %s", project, id, e.msg);
}

static int token_uses(fp_store *s, const char *project, const char *id)
{
    fp_token_rec t;
    fp_error e = {0};
    if (fp_store_token_get(s, project, id, &t, &e) != FP_ERR_OK)
        fail_msg("token get %s/%s: %s", project, id, e.msg);
    return t.uses_left;
}

static void project_put(fp_store *s, const char *name)
{
    fp_error e = {0};
    fp_audit_event ev = {"test", "project.create", name, "", name};
    if (fp_store_project_put(s, name, &ev, &e) != FP_ERR_OK)
        fail_msg("project put %s: %s", name, e.msg);
}

/* ---- audit counting, through the interface ---- */

typedef struct {
    const char *action, *object, *project; /* NULL: any */
    int n;
} audit_count_ctx;

static int audit_count_cb(void *arg, const fp_audit_row *r)
{
    audit_count_ctx *c = arg;
    if ((c->action == NULL || !strcmp(c->action, r->action)) &&
        (c->object == NULL || !strcmp(c->object, r->object)) &&
        (c->project == NULL || !strcmp(c->project, r->project)))
        c->n++;
    return FP_ERR_OK;
}

static int audit_count(fp_store *s, const char *action, const char *object, const char *project)
{
    audit_count_ctx c = {action, object, project, 0};
    fp_error e = {0};
    if (fp_store_audit_iter(s, audit_count_cb, &c, &e) != FP_ERR_OK)
        fail_msg("audit iter: %s", e.msg);
    return c.n;
}

static void assert_audit_ok(fp_store *s, int64_t want_rows)
{
    int64_t rows = -1;
    fp_error e = {0};
    if (fp_store_audit_verify(s, &rows, &e) != FP_ERR_OK)
        fail_msg("audit verify: %s", e.msg);
    if (want_rows >= 0)
        assert_int_equal(rows, want_rows);
}

/* ---- a fresh store ---- */

static int count_project(void *arg, const fp_project_rec *p)
{
    char *names = arg;
    strcat(names, p->name);
    strcat(names, ";");
    return FP_ERR_OK;
}

static int count_any(void *arg, const void *rec)
{
    (void)rec;
    (*(int *)arg)++;
    return FP_ERR_OK;
}

static int count_ca(void *arg, const fp_ca_rec *r) { return count_any(arg, r); }
static int count_cert(void *arg, const fp_cert_rec *r) { return count_any(arg, r); }
static int count_pending(void *arg, const fp_pending_rec *r) { return count_any(arg, r); }

static void test_fresh_store(void **state)
{
    fx *f = *state;
    char names[512] = "";
    fp_cert_filter flt = {.status = -1, .now = fp_now()};
    fp_project_rec p;
    int64_t seq = -1;
    int n = 0;
    fp_error e = {0};

    /* holds project "default" and nothing else */
    assert_int_equal(fp_store_project_list(f->s, count_project, names, &e), 0);
    assert_string_equal(names, "default;");
    assert_int_equal(fp_store_project_get(f->s, FP_PROJECT_DEFAULT, &p, &e), 0);
    assert_string_equal(p.name, "default");
    assert_int_equal(fp_store_ca_list(f->s, NULL, -1, count_ca, &n, &e), 0);
    assert_int_equal(fp_store_cert_list(f->s, &flt, count_cert, &n, &e), 0);
    assert_int_equal(fp_store_pending_list(f->s, NULL, -1, count_pending, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(fp_store_status_seq(f->s, &seq, &e), 0);
    assert_int_equal(seq, 0);
    assert_audit_ok(f->s, 0);
    assert_int_equal(fp_store_check(f->s, &e), 0);
    assert_int_equal(fp_store_maintain(f->s, &e), 0);
}

/* ---- projects ---- */

static void test_project_put_get_list(void **state)
{
    fx *f = *state;
    char names[512] = "";
    fp_project_rec p;
    fp_audit_event ev = {"test", "project.create", "a_1", "", "a_1"};
    fp_error e = {0};
    int64_t before = fp_now();

    project_put(f->s, "b-2");
    project_put(f->s, "a_1");
    project_put(f->s, "0z");
    assert_int_equal(fp_store_project_list(f->s, count_project, names, &e), 0);
    assert_string_equal(names, "0z;a_1;b-2;default;"); /* by name */
    assert_int_equal(fp_store_project_get(f->s, "a_1", &p, &e), 0);
    assert_string_equal(p.name, "a_1");
    assert_true(p.created_at >= before && p.created_at <= fp_now());
    assert_int_equal(fp_store_project_get(f->s, "nope", &p, &e), FP_ERR_NOT_FOUND);
    /* a duplicate is refused and writes nothing, audit row included */
    assert_int_equal(fp_store_project_put(f->s, "a_1", &ev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_project_put(f->s, FP_PROJECT_DEFAULT, &ev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(audit_count(f->s, "project.create", NULL, NULL), 3);
    assert_int_equal(audit_count(f->s, "project.create", "a_1", "a_1"), 1);
    assert_audit_ok(f->s, 3);
}

static void test_project_bad_names(void **state)
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
        assert_msg(&e, "project name");
        assert_int_equal(fp_store_project_get(f->s, bad[i], &p, &e), FP_ERR_NOT_FOUND);
    }
    assert_int_equal(fp_store_project_put(f->s, NULL, NULL, &e), FP_ERR_ARG);
    assert_false(fp_project_name_ok(NULL));
    /* the longest name that fits FP_PROJECT_MAX */
    project_put(f->s, "012345678901234567890123456789012345678901234567890123456789012");
    project_put(f->s, "9");
    assert_int_equal(fp_store_project_list(f->s, count_project, names, &e), 0);
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

static void test_ca_add_get(void **state)
{
    fx *f = *state;
    fp_ca_rec got, want;
    fp_error e = {0};

    want = ca("root", FP_CA_ROOT, "", "", false, der_root, sizeof(der_root));
    assert_int_equal(fp_store_ca_get(f->s, "root", &got, &e), 0);
    assert_ca_equal(&got, &want);
    fp_ca_rec_clear(&got);
    want = ca("issuing", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", true, der_iss, sizeof(der_iss));
    assert_int_equal(fp_store_ca_get(f->s, "issuing", &got, &e), 0);
    assert_ca_equal(&got, &want);
    fp_ca_rec_clear(&got);
    assert_int_equal(fp_store_ca_get(f->s, "nope", &got, &e), FP_ERR_NOT_FOUND);
    /* a trust root: no key we hold, no parent */
    project_put(f->s, "p");
    want = ca("p-trust", FP_CA_TRUST_ROOT, "p", "", false, der_other, sizeof(der_other));
    want.key_ref[0] = '\0';
    {
        fp_audit_event ev = {"test", "ca.add", "p-trust", "{}", "p"};
        assert_int_equal(fp_store_ca_add(f->s, &want, &ev, &e), 0);
        assert_int_equal(audit_count(f->s, "ca.add", "p-trust", "p"), 1);
    }
    assert_int_equal(fp_store_ca_get(f->s, "p-trust", &got, &e), 0);
    assert_ca_equal(&got, &want);
    fp_ca_rec_clear(&got);
}

static void test_ca_add_idempotent_and_refusals(void **state)
{
    fx *f = *state;
    fp_audit_event ev = {"test", "ca.add", "x", "", NULL};
    fp_ca_rec r;
    fp_error e = {0};
    int rows;

    /* the same id and certificate again: nothing written, not even audit */
    r = ca("issuing", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", true, der_iss, sizeof(der_iss));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), 0);
    assert_int_equal(audit_count(f->s, NULL, NULL, NULL), 0);
    /* the id with another certificate */
    r = ca("issuing", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", false, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_DUPLICATE);
    r = ca("root", FP_CA_ROOT, "", "", false, der_iss, sizeof(der_iss));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_DUPLICATE);
    /* unknown project */
    r = ca("ghost-iss", FP_CA_ISSUING, "ghost", "root", true, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_NOT_FOUND);
    assert_msg(&e, "ghost");
    /* malformed rows */
    r = ca("x", FP_CA_ISSUING, "", "root", false, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = ca("x", FP_CA_TRUST_ROOT, "", "", false, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = ca("x", FP_CA_TRUST_ROOT, FP_PROJECT_DEFAULT, "", true, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = ca("x", FP_CA_ROOT, "", "", true, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = ca("x", 7, FP_PROJECT_DEFAULT, "", false, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = ca("", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", false, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = ca("x", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", false, NULL, 0);
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    r = ca("x", FP_CA_ISSUING, "Bad Name", "root", false, der_other, sizeof(der_other));
    assert_int_equal(fp_store_ca_add(f->s, &r, &ev, &e), FP_ERR_ARG);
    rows = audit_count(f->s, NULL, NULL, NULL);
    assert_int_equal(rows, 0);
    assert_int_equal(fp_store_ca_get(f->s, "x", &r, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_ca_get(f->s, "ghost-iss", &r, &e), FP_ERR_NOT_FOUND);
    {
        fp_ca_rec got;
        assert_int_equal(fp_store_ca_get(f->s, "issuing", &got, &e), 0);
        assert_memory_equal(got.der, der_iss, sizeof(der_iss)); /* not replaced */
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

static bool ca_active(fp_store *s, const char *id)
{
    fp_ca_rec r;
    bool a;
    assert_int_equal(fp_store_ca_get(s, id, &r, NULL), 0);
    a = r.active;
    fp_ca_rec_clear(&r);
    return a;
}

static void add_ca(fp_store *s, const char *id, int kind, const char *project, bool active)
{
    fp_ca_rec r = ca(id, kind, project, kind == FP_CA_TRUST_ROOT ? "" : "root", active, der_other,
                     sizeof(der_other));
    fp_error e = {0};
    if (fp_store_ca_add(s, &r, NULL, &e) != FP_ERR_OK)
        fail_msg("ca add %s: %s", id, e.msg);
}

static void test_ca_list_filters(void **state)
{
    fx *f = *state;
    ca_list_ctx c;

    project_put(f->s, "p");
    add_ca(f->s, "p-iss", FP_CA_ISSUING, "p", true);
    add_ca(f->s, "p-trust", FP_CA_TRUST_ROOT, "p", false);
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

static void test_ca_activate(void **state)
{
    fx *f = *state;
    fp_audit_event ev = {"test", "ca.activate", "issuing", "", FP_PROJECT_DEFAULT};
    fp_error e = {0};

    project_put(f->s, "p");
    add_ca(f->s, "p-iss", FP_CA_ISSUING, "p", true);
    add_ca(f->s, "p-trust", FP_CA_TRUST_ROOT, "p", false);
    /* an inactive issuing CA leaves the active one alone */
    add_ca(f->s, "iss3", FP_CA_ISSUING, FP_PROJECT_DEFAULT, false);
    assert_true(ca_active(f->s, "issuing"));
    assert_false(ca_active(f->s, "iss3"));
    /* a new active one takes over, in its project only */
    add_ca(f->s, "iss2", FP_CA_ISSUING, FP_PROJECT_DEFAULT, true);
    assert_false(ca_active(f->s, "issuing"));
    assert_true(ca_active(f->s, "iss2"));
    assert_true(ca_active(f->s, "p-iss"));
    /* activate the first again */
    assert_int_equal(fp_store_ca_activate(f->s, "issuing", &ev, &e), 0);
    assert_true(ca_active(f->s, "issuing"));
    assert_false(ca_active(f->s, "iss2"));
    assert_false(ca_active(f->s, "iss3"));
    assert_true(ca_active(f->s, "p-iss"));
    assert_int_equal(fp_store_ca_activate(f->s, "issuing", &ev, &e), 0); /* already */
    assert_true(ca_active(f->s, "issuing"));
    assert_int_equal(audit_count(f->s, "ca.activate", "issuing", FP_PROJECT_DEFAULT), 2);
    /* only issuing CAs can be active */
    assert_int_equal(fp_store_ca_activate(f->s, "root", &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_ca_activate(f->s, "p-trust", &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_ca_activate(f->s, "nope", &ev, &e), FP_ERR_NOT_FOUND);
    assert_false(ca_active(f->s, "root"));
    assert_false(ca_active(f->s, "p-trust"));
    assert_int_equal(audit_count(f->s, "ca.activate", NULL, NULL), 2);
    assert_audit_ok(f->s, 3); /* project.create + 2 activations */
}

/* ---- certificates ---- */

static void test_cert_insert_get_duplicate(void **state)
{
    fx *f = *state;
    fp_cert_rec r = mkrec("AA01", fp_now() + 1000), got;
    fp_audit_event ev = {"t", "cert.issue", "AA01", "{}", FP_PROJECT_DEFAULT};
    fp_error e = {0};

    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), 0);
    assert_int_equal(fp_store_cert_get(f->s, "AA01", &got, &e), 0);
    assert_string_equal(got.serial, "AA01");
    assert_string_equal(got.ca_id, "issuing");
    assert_string_equal(got.project, FP_PROJECT_DEFAULT);
    assert_string_equal(got.profile, "device");
    assert_string_equal(got.subject, "CN=x");
    assert_string_equal(got.sans, "");
    assert_int_equal(got.not_before, 1);
    assert_int_equal(got.not_after, r.not_after);
    assert_int_equal(got.issued_at, r.issued_at);
    assert_int_equal(got.der_len, 4);
    assert_memory_equal(got.der, der_cert, 4);
    assert_int_equal(got.status, FP_CERT_VALID);
    fp_cert_rec_clear(&got);
    /* the same serial again is refused and nothing of the batch lands */
    {
        fp_cert_rec batch[2] = {mkrec("AA02", 5), mkrec("AA01", 5)};
        fp_audit_event evs[2] = {ev, ev};
        assert_int_equal(fp_store_cert_insert(f->s, batch, evs, 2, &e), FP_ERR_DUPLICATE);
        assert_false(cert_stored(f->s, "AA02"));
    }
    /* serials are unique across projects too */
    project_put(f->s, "b");
    add_ca(f->s, "b-iss", FP_CA_ISSUING, "b", true);
    r = mkrec("AA01", 5);
    strcpy(r.project, "b");
    strcpy(r.ca_id, "b-iss");
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_cert_get(f->s, "FFFF", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(audit_count(f->s, "cert.issue", NULL, NULL), 1);
    assert_audit_ok(f->s, 2);
}

static void test_cert_insert_refuses_unknown_parents(void **state)
{
    fx *f = *state;
    fp_cert_rec r;
    fp_audit_event ev = {"t", "cert.issue", "x", "{}", NULL};
    fp_error e = {0};

    r = mkrec("BB01", 5);
    strcpy(r.ca_id, "nope");
    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), FP_ERR_NOT_FOUND);
    assert_msg(&e, "nope");
    r = mkrec("BB02", 5);
    strcpy(r.project, "ghost");
    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), FP_ERR_NOT_FOUND);
    assert_msg(&e, "ghost");
    {
        /* one record of an unknown project sinks the batch */
        fp_cert_rec batch[2] = {mkrec("BB03", 5), mkrec("BB04", 5)};
        strcpy(batch[1].project, "ghost");
        assert_int_equal(fp_store_cert_insert(f->s, batch, NULL, 2, &e), FP_ERR_NOT_FOUND);
        assert_false(cert_stored(f->s, "BB03"));
    }
    r = mkrec("BB05", 5);
    strcpy(r.project, "Ghost");
    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), FP_ERR_ARG);
    assert_msg(&e, "project name");
    r = mkrec("BB06", 5);
    r.project[0] = '\0';
    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), FP_ERR_ARG);
    {
        /* results carry the refusal too */
        const char *toks[1] = {NULL};
        fp_error res[1];
        assert_int_equal(fp_store_cert_insert_spend(f->s, &r, &ev, toks, fp_now(), res, 1, &e),
                         FP_ERR_ARG);
        assert_int_equal(res[0].code, FP_ERR_ARG);
    }
    assert_false(cert_stored(f->s, "BB01") || cert_stored(f->s, "BB02") ||
                 cert_stored(f->s, "BB04") || cert_stored(f->s, "BB05") ||
                 cert_stored(f->s, "BB06"));
    assert_audit_ok(f->s, 0);
}

static void test_cert_status_transitions(void **state)
{
    fx *f = *state;
    fp_cert_rec r = mkrec("CC01", fp_now() + 1000), got;
    fp_audit_event ev = {"t", "cert.revoke", "CC01", "", FP_PROJECT_DEFAULT};
    fp_error e = {0};

    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    /* lifting a hold that is not there */
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_VALID, FP_REASON_REMOVE_FROM_CRL, 0, &ev, &e), FP_ERR_STATE);
    /* hold, hold again (refused), lift, revoke for good, revoke again (refused) */
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_REVOKED, FP_REASON_HOLD, 10, &ev, &e), 0);
    assert_int_equal(fp_store_cert_get(f->s, "CC01", &got, &e), 0);
    assert_int_equal(got.status, FP_CERT_REVOKED);
    assert_int_equal(got.reason, FP_REASON_HOLD);
    fp_cert_rec_clear(&got);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_REVOKED, FP_REASON_HOLD, 11, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_VALID, FP_REASON_REMOVE_FROM_CRL, 0, &ev, &e), 0);
    assert_int_equal(fp_store_cert_get(f->s, "CC01", &got, &e), 0);
    assert_int_equal(got.status, FP_CERT_VALID);
    assert_int_equal(got.revoked_at, 0);
    fp_cert_rec_clear(&got);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_REVOKED, FP_REASON_KEY_COMPROMISE, 12, &ev, &e), 0);
    assert_int_equal(fp_store_cert_get(f->s, "CC01", &got, &e), 0);
    assert_int_equal(got.status, FP_CERT_REVOKED);
    assert_int_equal(got.reason, FP_REASON_KEY_COMPROMISE);
    assert_int_equal(got.revoked_at, 12);
    fp_cert_rec_clear(&got);
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_REVOKED, FP_REASON_SUPERSEDED, 13, &ev, &e), FP_ERR_STATE);
    assert_msg(&e, "already revoked");
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_VALID, FP_REASON_REMOVE_FROM_CRL, 0, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_cert_set_status(f->s, "NOPE", FP_CERT_REVOKED, 1, 1, &ev, &e), FP_ERR_NOT_FOUND);
    /* one audit row per change made, none for refusals */
    assert_int_equal(audit_count(f->s, "cert.revoke", NULL, FP_PROJECT_DEFAULT), 3);
    assert_audit_ok(f->s, 3);
}

static void test_cert_list_filters(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[4] = {mkrec("D1", now - 10), mkrec("D2", now + 86400),
                           mkrec("D3", now + 90 * 86400), mkrec("D4", now + 86400)};
    fp_cert_filter flt = {.status = -1, .now = now};
    fp_error e = {0};
    int n;

    project_put(f->s, "b");
    add_ca(f->s, "b-iss", FP_CA_ISSUING, "b", true);
    strcpy(recs[3].project, "b");
    strcpy(recs[3].ca_id, "b-iss");
    strcpy(recs[3].profile, "server");
    recs[1].subject = (char *)"CN=gateway-7,O=acme";
    recs[2].sans = (char *)"DNS:cam-9.example";
    assert_int_equal(fp_store_cert_insert(f->s, recs, NULL, 4, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "D3", FP_CERT_REVOKED, 1, now, NULL, &e), 0);
#define COUNT(want)                                                             \
    do {                                                                        \
        n = 0;                                                                  \
        assert_int_equal(fp_store_cert_list(f->s, &flt, count_cert, &n, &e), 0); \
        assert_int_equal(n, want);                                              \
    } while (0)
    COUNT(4);
    flt.expired_only = true;
    COUNT(1);
    flt.expired_only = false;
    flt.unexpired_only = true;
    COUNT(3);
    flt.unexpired_only = false;
    flt.expiring_before = now + 2 * 86400;
    COUNT(2); /* D2, D4: D1 already expired, D3 later */
    flt.expiring_before = 0;
    flt.status = FP_CERT_REVOKED;
    COUNT(1);
    flt.status = FP_CERT_VALID;
    COUNT(3);
    flt.status = -1;
    flt.limit = 2;
    COUNT(2);
    flt.limit = 0;
    flt.profile = "server";
    COUNT(1);
    flt.profile = NULL;
    flt.name_contains = "gateway-7";
    COUNT(1);
    flt.name_contains = "cam-9";
    COUNT(1);
    flt.name_contains = NULL;
    flt.project = FP_PROJECT_DEFAULT;
    COUNT(3);
    flt.project = "b";
    COUNT(1);
    flt.project = "ghost";
    COUNT(0);
    flt.project = NULL;
    flt.ca_id = "b-iss";
    COUNT(1);
    flt.ca_id = "issuing";
    COUNT(3);
    flt.project = "b";
    COUNT(0); /* both filters apply */
#undef COUNT
}

typedef struct {
    char serials[256];
    int64_t last_issued;
} order_ctx;

static int order_cb(void *arg, const fp_cert_rec *r)
{
    order_ctx *c = arg;
    assert_true(r->issued_at >= c->last_issued);
    c->last_issued = r->issued_at;
    strcat(c->serials, r->serial);
    strcat(c->serials, ";");
    return FP_ERR_OK;
}

static void test_cert_list_order(void **state)
{
    fx *f = *state;
    fp_cert_rec recs[3] = {mkrec("E3", 5), mkrec("E1", 5), mkrec("E2", 5)};
    fp_cert_filter flt = {.status = -1, .now = fp_now()};
    order_ctx c = {"", 0};
    fp_error e = {0};

    recs[0].issued_at = 300;
    recs[1].issued_at = 100;
    recs[2].issued_at = 200;
    assert_int_equal(fp_store_cert_insert(f->s, recs, NULL, 3, &e), 0);
    assert_int_equal(fp_store_cert_list(f->s, &flt, order_cb, &c, &e), 0);
    assert_string_equal(c.serials, "E1;E2;E3;");
}

static void test_cert_status_lookup(void **state)
{
    fx *f = *state;
    fp_cert_rec r = mkrec("5A", 4000);
    fp_cert_status_rec st;
    fp_error e = {0};

    r.not_before = 1500;
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    assert_int_equal(fp_store_cert_status(f->s, "5A", &st, &e), 0);
    assert_string_equal(st.ca_id, "issuing");
    assert_string_equal(st.project, FP_PROJECT_DEFAULT);
    assert_int_equal(st.status, FP_CERT_VALID);
    assert_int_equal(st.not_before, 1500);
    assert_int_equal(st.not_after, 4000);
    assert_int_equal(fp_store_cert_set_status(f->s, "5A", FP_CERT_REVOKED, FP_REASON_CESSATION,
                                              77, NULL, &e), 0);
    assert_int_equal(fp_store_cert_status(f->s, "5A", &st, &e), 0);
    assert_int_equal(st.status, FP_CERT_REVOKED);
    assert_int_equal(st.reason, FP_REASON_CESSATION);
    assert_int_equal(st.revoked_at, 77);
    assert_int_equal(fp_store_cert_status(f->s, "5B", &st, &e), FP_ERR_NOT_FOUND);
}

typedef struct {
    char entries[512];
} revoked_ctx;

static int revoked_cb(void *arg, const char *serial, int64_t revoked_at, int reason)
{
    revoked_ctx *c = arg;
    char one[64];
    snprintf(one, sizeof(one), "%s@%lld/%d;", serial, (long long)revoked_at, reason);
    strcat(c->entries, one);
    return FP_ERR_OK;
}

static void test_revoked_entries_and_numbers(void **state)
{
    fx *f = *state;
    fp_cert_rec recs[5] = {mkrec("0C", 5), mkrec("0A", 5), mkrec("0B", 5), mkrec("0D", 5),
                           mkrec("0E", 5)};
    revoked_ctx c;
    int64_t num = 0;
    fp_error e = {0};

    project_put(f->s, "b");
    add_ca(f->s, "b-iss", FP_CA_ISSUING, "b", true);
    strcpy(recs[4].project, "b");
    strcpy(recs[4].ca_id, "b-iss");
    assert_int_equal(fp_store_cert_insert(f->s, recs, NULL, 5, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "0C", FP_CERT_REVOKED, 1, 30, NULL, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "0A", FP_CERT_REVOKED, 6, 10, NULL, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "0D", FP_CERT_REVOKED, 6, 40, NULL, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "0D", FP_CERT_VALID, 8, 0, NULL, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "0E", FP_CERT_REVOKED, 4, 50, NULL, &e), 0);
    /* holds included, lifted holds and other CAs' entries not; by serial */
    memset(&c, 0, sizeof(c));
    assert_int_equal(fp_store_revoked_iter(f->s, "issuing", revoked_cb, &c, &e), 0);
    assert_string_equal(c.entries, "0A@10/6;0C@30/1;");
    memset(&c, 0, sizeof(c));
    assert_int_equal(fp_store_revoked_iter(f->s, "b-iss", revoked_cb, &c, &e), 0);
    assert_string_equal(c.entries, "0E@50/4;");
    memset(&c, 0, sizeof(c));
    assert_int_equal(fp_store_revoked_iter(f->s, "nope", revoked_cb, &c, &e), 0);
    assert_string_equal(c.entries, "");
    /* RFC 5280 5.2.3: each CA counts on its own, from 1, never back */
    assert_int_equal(fp_store_revocation_number_next(f->s, "issuing", &num, &e), 0);
    assert_int_equal(num, 1);
    assert_int_equal(fp_store_revocation_number_next(f->s, "issuing", &num, &e), 0);
    assert_int_equal(num, 2);
    assert_int_equal(fp_store_revocation_number_next(f->s, "b-iss", &num, &e), 0);
    assert_int_equal(num, 1);
    {
        fp_store *s2 = NULL;
        assert_int_equal(B->open_again(B->arg, &s2), 0);
        assert_int_equal(fp_store_revocation_number_next(s2, "issuing", &num, &e), 0);
        assert_int_equal(num, 3);
        fp_store_close(s2);
    }
}

typedef struct {
    int n;
    char serials[256];
    int64_t last;
} changes_ctx;

static int changes_cb(void *arg, int64_t seq, const char *serial, const char *ca_id)
{
    changes_ctx *c = arg;
    assert_true(seq > c->last);
    c->last = seq;
    c->n++;
    strcat(c->serials, serial);
    strcat(c->serials, "/");
    strcat(c->serials, ca_id);
    strcat(c->serials, ";");
    return FP_ERR_OK;
}

static void test_status_changes(void **state)
{
    fx *f = *state;
    fp_cert_rec recs[2] = {mkrec("71", 5), mkrec("72", 5)};
    int64_t seq0 = -1, seq1 = -1;
    changes_ctx c;
    fp_error e = {0};

    assert_int_equal(fp_store_cert_insert(f->s, recs, NULL, 2, &e), 0);
    assert_int_equal(fp_store_status_seq(f->s, &seq0, &e), 0);
    assert_int_equal(seq0, 0); /* issuing is not a status change */
    assert_int_equal(fp_store_cert_set_status(f->s, "71", FP_CERT_REVOKED, 6, 1, NULL, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "71", FP_CERT_VALID, 8, 0, NULL, &e), 0);
    assert_int_equal(fp_store_cert_set_status(f->s, "72", FP_CERT_REVOKED, 1, 2, NULL, &e), 0);
    /* a refused change is not logged */
    assert_int_equal(fp_store_cert_set_status(f->s, "72", FP_CERT_REVOKED, 1, 2, NULL, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_status_seq(f->s, &seq1, &e), 0);
    assert_true(seq1 >= seq0 + 3);
    memset(&c, 0, sizeof(c));
    c.last = seq0;
    assert_int_equal(fp_store_status_changes(f->s, seq0, 100, changes_cb, &c, &e), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.serials, "71/issuing;71/issuing;72/issuing;");
    assert_int_equal(c.last, seq1);
    memset(&c, 0, sizeof(c));
    c.last = seq0;
    assert_int_equal(fp_store_status_changes(f->s, seq0, 1, changes_cb, &c, &e), 0);
    assert_int_equal(c.n, 1);
    memset(&c, 0, sizeof(c));
    c.last = seq1;
    assert_int_equal(fp_store_status_changes(f->s, seq1, 100, changes_cb, &c, &e), 0);
    assert_int_equal(c.n, 0);
}

/* ---- tokens ---- */

static void test_tokens(void **state)
{
    fx *f = *state;
    fp_token_rec t, got;
    fp_audit_event ev = {"test", "token.x", "", "", FP_PROJECT_DEFAULT};
    int64_t now = fp_now();
    fp_error e = {0};

    memset(&t, 0, sizeof(t));
    strcpy(t.id, "tok1");
    strcpy(t.project, FP_PROJECT_DEFAULT);
    strcpy(t.label, "lab");
    strcpy(t.cn_pattern, "dev-*");
    memset(t.hash, 0x5a, sizeof(t.hash));
    t.uses_left = 2;
    t.created_at = now;
    t.expires_at = now + 100;
    assert_int_equal(fp_store_token_put(f->s, &t, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_put(f->s, &t, &ev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_token_get(f->s, FP_PROJECT_DEFAULT, "tok1", &got, &e), FP_ERR_OK);
    assert_string_equal(got.id, "tok1");
    assert_string_equal(got.project, FP_PROJECT_DEFAULT);
    assert_string_equal(got.label, "lab");
    assert_string_equal(got.cn_pattern, "dev-*");
    assert_memory_equal(got.hash, t.hash, FP_TOKEN_HASH_LEN);
    assert_int_equal(got.uses_left, 2);
    assert_int_equal(got.created_at, now);
    assert_int_equal(got.expires_at, now + 100);
    assert_int_equal(fp_store_token_get(f->s, FP_PROJECT_DEFAULT, "nope", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "nope", now, &ev, &e), FP_ERR_NOT_FOUND);
    /* expired from its expires_at second on: refused without spending */
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok1", now + 100, &ev, &e), FP_ERR_STATE);
    assert_msg(&e, "expired");
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok1", now + 99, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok1", now, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok1", now, &ev, &e), FP_ERR_STATE);
    assert_msg(&e, "used up");
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "tok1"), 0);
    /* a token that never expires */
    token_put(f->s, FP_PROJECT_DEFAULT, "tok2", 1, 0);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok2", INT64_MAX / 2, &ev, &e), FP_ERR_OK);
    /* put, and the two uses spent, are audited; refusals are not */
    assert_int_equal(audit_count(f->s, "token.x", NULL, NULL), 4);
    assert_audit_ok(f->s, 4);
}

static void test_tokens_scoped_by_project(void **state)
{
    fx *f = *state;
    fp_token_rec t, got;
    fp_error e = {0}, e_absent = {0};

    project_put(f->s, "b");
    token_put(f->s, FP_PROJECT_DEFAULT, "ta", 3, 0);
    token_put(f->s, "b", "tb", 3, 0);
    /* a token of another project is exactly as if absent */
    assert_int_equal(fp_store_token_get(f->s, "b", "ta", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_get(f->s, "b", "zz", &got, &e_absent), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_use(f->s, "b", "ta", fp_now(), NULL, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tb", fp_now(), NULL, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_get(f->s, "ghost", "ta", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_use(f->s, "ghost", "ta", fp_now(), NULL, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_get(f->s, "", "ta", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "ta"), 3);
    assert_int_equal(token_uses(f->s, "b", "tb"), 3);
    assert_int_equal(fp_store_token_get(f->s, "b", "tb", &got, &e), 0);
    assert_string_equal(got.project, "b");
    /* ids are unique across projects */
    memset(&t, 0, sizeof(t));
    strcpy(t.id, "ta");
    strcpy(t.project, "b");
    t.uses_left = 1;
    assert_int_equal(fp_store_token_put(f->s, &t, NULL, &e), FP_ERR_DUPLICATE);
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "ta"), 3);
    /* unknown or malformed project */
    strcpy(t.id, "tc");
    strcpy(t.project, "ghost");
    assert_int_equal(fp_store_token_put(f->s, &t, NULL, &e), FP_ERR_NOT_FOUND);
    strcpy(t.project, "B");
    assert_int_equal(fp_store_token_put(f->s, &t, NULL, &e), FP_ERR_ARG);
    t.project[0] = '\0';
    assert_int_equal(fp_store_token_put(f->s, &t, NULL, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_token_get(f->s, FP_PROJECT_DEFAULT, "tc", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_get(f->s, NULL, "ta", &got, &e), FP_ERR_ARG);
}

/* ---- certificates paid with tokens in the same transaction ---- */

static void test_spend_refuses_only_the_unpaid(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[6] = {mkrec("F1", now + 99), mkrec("F2", now + 99), mkrec("F3", now + 99),
                           mkrec("F4", now + 99), mkrec("F5", now + 99), mkrec("F6", now + 99)};
    fp_audit_event evs[6];
    /* F2 wants the use F1 just took; F5 a token with none; F6 no token */
    const char *toks[6] = {"one", "one", "two", "none", "ghost", NULL};
    fp_error res[6], e = {0};
    static const char *const serials[6] = {"F1", "F2", "F3", "F4", "F5", "F6"};

    token_put(f->s, FP_PROJECT_DEFAULT, "one", 1, 0);
    token_put(f->s, FP_PROJECT_DEFAULT, "two", 2, now + 3600);
    token_put(f->s, FP_PROJECT_DEFAULT, "none", 0, 0);
    for (int i = 0; i < 6; i++)
        evs[i] = (fp_audit_event){"est:token:x", "cert.issue", serials[i], "{}", FP_PROJECT_DEFAULT};
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, evs, toks, now, res, 6, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_OK);
    assert_int_equal(res[1].code, FP_ERR_STATE);
    assert_msg(&res[1], "token one is used up");
    assert_int_equal(res[2].code, FP_ERR_OK);
    assert_int_equal(res[3].code, FP_ERR_STATE);
    assert_msg(&res[3], "token none is used up");
    assert_int_equal(res[4].code, FP_ERR_NOT_FOUND);
    assert_int_equal(res[5].code, FP_ERR_OK);
    assert_true(cert_stored(f->s, "F1") && cert_stored(f->s, "F3") && cert_stored(f->s, "F6"));
    assert_false(cert_stored(f->s, "F2") || cert_stored(f->s, "F4") || cert_stored(f->s, "F5"));
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "one"), 0);
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "two"), 1);
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "none"), 0);
    /* one token.use row per use spent (with the record's project), none for
     * refused records, whose certificate audit rows are not written either */
    assert_int_equal(audit_count(f->s, "token.use", NULL, NULL), 2);
    assert_int_equal(audit_count(f->s, "token.use", "one", FP_PROJECT_DEFAULT), 1);
    assert_int_equal(audit_count(f->s, "cert.issue", "F2", NULL) +
                     audit_count(f->s, "cert.issue", "F4", NULL) +
                     audit_count(f->s, "cert.issue", "F5", NULL), 0);
    assert_int_equal(audit_count(f->s, "cert.issue", NULL, NULL), 3);
    assert_audit_ok(f->s, 5);
    /* no tokens means no results needed; tokens without results is refused */
    recs[0] = mkrec("F7", now + 99);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, NULL, now, NULL, 1, &e), 0);
    recs[0] = mkrec("F8", now + 99);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks + 2, now, NULL, 1, &e),
                     FP_ERR_ARG);
    assert_false(cert_stored(f->s, "F8"));
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "two"), 1);
}

static void test_spend_refuses_expired(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[2] = {mkrec("G1", now + 99), mkrec("G2", now + 99)};
    const char *toks[2] = {"old", "fresh"};
    fp_error res[2], e = {0};

    token_put(f->s, FP_PROJECT_DEFAULT, "old", 3, now + 100);
    token_put(f->s, FP_PROJECT_DEFAULT, "fresh", 3, now + 101);
    /* expired from its expires_at second on, as fp_store_token_use has it */
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now + 100, res, 2, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_STATE);
    assert_msg(&res[0], "token old has expired");
    assert_int_equal(res[1].code, FP_ERR_OK);
    assert_false(cert_stored(f->s, "G1"));
    assert_true(cert_stored(f->s, "G2"));
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "old"), 3);
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "fresh"), 2);
    /* the same token one second earlier still pays */
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now + 99, res, 1, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_OK);
    assert_true(cert_stored(f->s, "G1"));
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "old"), 2);
}

static void test_spend_token_of_another_project(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[3] = {mkrec("J1", now + 99), mkrec("J2", now + 99), mkrec("J3", now + 99)};
    /* J1 (project default) offers b's token; J2 (project b) its own; J3
     * (default) default's */
    const char *toks[3] = {"tb", "tb", "ta"};
    fp_error res[3], e = {0}, absent = {0};

    project_put(f->s, "b");
    add_ca(f->s, "b-iss", FP_CA_ISSUING, "b", true);
    token_put(f->s, FP_PROJECT_DEFAULT, "ta", 5, 0);
    token_put(f->s, "b", "tb", 5, 0);
    strcpy(recs[1].project, "b");
    strcpy(recs[1].ca_id, "b-iss");
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now, res, 3, &e), 0);
    /* refused exactly as an unknown token would be */
    assert_int_equal(res[0].code, FP_ERR_NOT_FOUND);
    {
        fp_cert_rec one = mkrec("J4", now + 99);
        const char *ghost[1] = {"no-such-token"};
        assert_int_equal(fp_store_cert_insert_spend(f->s, &one, NULL, ghost, now, &absent, 1, &e), 0);
        assert_int_equal(absent.code, FP_ERR_NOT_FOUND);
    }
    assert_int_equal(res[1].code, FP_ERR_OK);
    assert_int_equal(res[2].code, FP_ERR_OK);
    assert_false(cert_stored(f->s, "J1"));
    assert_true(cert_stored(f->s, "J2") && cert_stored(f->s, "J3"));
    assert_int_equal(token_uses(f->s, "b", "tb"), 4); /* J2's use only */
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "ta"), 4);
    assert_int_equal(audit_count(f->s, "token.use", "tb", "b"), 1);
}

/* Every failure of the transaction gives the token use back: nothing is
 * written, and every record carries the batch's error. */
static void expect_batch_fails(fx *f, const fp_cert_rec *recs, size_t n, int want,
                               const char *needle)
{
    const char *toks[3] = {"pay", "pay", "pay"};
    fp_error res[3], e = {0};
    int before = audit_count(f->s, NULL, NULL, NULL);

    assert_true(n <= 3);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, fp_now(), res, n, &e), want);
    assert_msg(&e, needle);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(res[i].code, want);
        assert_string_equal(res[i].msg, e.msg);
    }
    assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "pay"), 5);
    assert_int_equal(audit_count(f->s, NULL, NULL, NULL), before);
    assert_false(cert_stored(f->s, recs[0].serial));
}

static void test_spend_rolled_back_with_the_batch(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec r = mkrec("H0", now + 99);
    fp_error e = {0};

    token_put(f->s, FP_PROJECT_DEFAULT, "pay", 5, 0);
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    {
        /* a serial collision after the first record's token was spent */
        fp_cert_rec recs[2] = {mkrec("H1", now + 99), mkrec("H0", now + 99)};
        expect_batch_fails(f, recs, 2, FP_ERR_DUPLICATE, "serial H0 already issued");
    }
    {
        /* an unknown CA */
        fp_cert_rec recs[2] = {mkrec("H1", now + 99), mkrec("H2", now + 99)};
        strcpy(recs[1].ca_id, "nope");
        expect_batch_fails(f, recs, 2, FP_ERR_NOT_FOUND, "no CA 'nope'");
    }
    {
        /* an unknown project without a token sinks the batch */
        fp_cert_rec recs[2] = {mkrec("H1", now + 99), mkrec("H2", now + 99)};
        const char *toks[2] = {"pay", NULL};
        fp_error res[2];
        strcpy(recs[1].project, "ghost");
        assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now, res, 2, &e),
                         FP_ERR_NOT_FOUND);
        assert_msg(&e, "no project 'ghost'");
        assert_int_equal(res[0].code, FP_ERR_NOT_FOUND);
        assert_false(cert_stored(f->s, "H1"));
        assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "pay"), 5);
        /* with a token it is refused alone: no token of "pay" exists there */
        toks[1] = "pay";
        assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now, res, 2, &e), 0);
        assert_int_equal(res[0].code, FP_ERR_OK);
        assert_int_equal(res[1].code, FP_ERR_NOT_FOUND);
        assert_true(cert_stored(f->s, "H1"));
        assert_false(cert_stored(f->s, "H2"));
        assert_int_equal(token_uses(f->s, FP_PROJECT_DEFAULT, "pay"), 4);
    }
    assert_audit_ok(f->s, 1);
}

/* ---- pending requests ---- */

static fp_pending_rec mkpending(const char *project, const char *label, const char *hash)
{
    fp_pending_rec pr;
    memset(&pr, 0, sizeof(pr));
    snprintf(pr.project, sizeof(pr.project), "%s", project);
    snprintf(pr.label, sizeof(pr.label), "%s", label);
    snprintf(pr.csr_hash, sizeof(pr.csr_hash), "%s", hash);
    pr.csr = (unsigned char *)"csr";
    pr.csr_len = 3;
    pr.subject = (char *)"CN=x";
    pr.actor = (char *)"est:token:1";
    return pr;
}

static void test_pending(void **state)
{
    fx *f = *state;
    fp_pending_rec pr = mkpending(FP_PROJECT_DEFAULT, "lab", "abc"), out;
    fp_audit_event ev = {"test", "csr.hold", "", "", FP_PROJECT_DEFAULT};
    int64_t id1 = 0, id2 = 0;
    int n = 0;
    fp_error e = {0};

    assert_int_equal(fp_store_pending_add(f->s, &pr, &id1, &ev, &e), FP_ERR_OK);
    assert_true(id1 > 0);
    /* the same CSR again: the same row, nothing new (no audit row either) */
    assert_int_equal(fp_store_pending_add(f->s, &pr, &id2, &ev, &e), FP_ERR_OK);
    assert_int_equal(id1, id2);
    assert_int_equal(audit_count(f->s, "csr.hold", NULL, NULL), 1);
    {
        char obj[32];
        snprintf(obj, sizeof(obj), "pending:%lld", (long long)id1);
        assert_int_equal(audit_count(f->s, "csr.hold", obj, FP_PROJECT_DEFAULT), 1);
    }
    assert_int_equal(fp_store_pending_find(f->s, FP_PROJECT_DEFAULT, "lab", "abc", &out, &e), FP_ERR_OK);
    assert_int_equal(out.id, id1);
    assert_string_equal(out.project, FP_PROJECT_DEFAULT);
    assert_string_equal(out.label, "lab");
    assert_string_equal(out.csr_hash, "abc");
    assert_int_equal(out.csr_len, 3);
    assert_memory_equal(out.csr, "csr", 3);
    assert_string_equal(out.subject, "CN=x");
    assert_string_equal(out.actor, "est:token:1");
    assert_int_equal(out.status, FP_PENDING_WAITING);
    assert_string_equal(out.serial, "");
    assert_true(out.created_at > 0);
    fp_pending_rec_clear(&out);
    assert_int_equal(fp_store_pending_find(f->s, FP_PROJECT_DEFAULT, "other", "abc", &out, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_pending_find(f->s, FP_PROJECT_DEFAULT, "lab", "abd", &out, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_pending_decide(f->s, id1, FP_PENDING_WAITING, NULL, &ev, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_pending_decide(f->s, id1, FP_PENDING_ISSUED, "0A", &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_pending_decide(f->s, id1, FP_PENDING_REJECTED, NULL, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_pending_decide(f->s, 999, FP_PENDING_REJECTED, NULL, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_pending_get(f->s, id1, &out, &e), FP_ERR_OK);
    assert_int_equal(out.status, FP_PENDING_ISSUED);
    assert_string_equal(out.serial, "0A");
    assert_true(out.decided_at > 0);
    fp_pending_rec_clear(&out);
    assert_int_equal(fp_store_pending_get(f->s, 999, &out, &e), FP_ERR_NOT_FOUND);
    /* a second request, rejected */
    pr = mkpending(FP_PROJECT_DEFAULT, "lab", "def");
    assert_int_equal(fp_store_pending_add(f->s, &pr, &id2, NULL, &e), FP_ERR_OK);
    assert_true(id2 != id1);
    assert_int_equal(fp_store_pending_list(f->s, NULL, FP_PENDING_WAITING, count_pending, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(fp_store_pending_decide(f->s, id2, FP_PENDING_REJECTED, NULL, &ev, &e), FP_ERR_OK);
    n = 0;
    assert_int_equal(fp_store_pending_list(f->s, NULL, FP_PENDING_WAITING, count_pending, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(fp_store_pending_list(f->s, NULL, FP_PENDING_REJECTED, count_pending, &n, &e), 0);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(fp_store_pending_list(f->s, NULL, -1, count_pending, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_audit_ok(f->s, 3);
}

typedef struct {
    int64_t ids[8];
    int n;
} pending_ids;

static int pending_ids_cb(void *arg, const fp_pending_rec *r)
{
    pending_ids *p = arg;
    assert_true(p->n < 8);
    assert_true(p->n == 0 || r->id > p->ids[p->n - 1]); /* by id */
    p->ids[p->n++] = r->id;
    return FP_ERR_OK;
}

/* Approval: the held request becomes issued and the certificate is stored
 * in one transaction, or neither happens. */
static void test_pending_issue(void **state)
{
    fx *f = *state;
    fp_pending_rec pr = mkpending(FP_PROJECT_DEFAULT, "lab", "abc"), out;
    fp_cert_rec r = mkrec("BB01", fp_now() + 1000);
    fp_audit_event cev = {"t", "cert.issue", "BB01", "{}", FP_PROJECT_DEFAULT};
    fp_audit_event dev = {"t", "csr.approve", "BB01", "", FP_PROJECT_DEFAULT};
    fp_error e = {0};
    int64_t id = 0, idb = 0;

    assert_int_equal(fp_store_pending_add(f->s, &pr, &id, NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_pending_issue(f->s, id, &r, &cev, &dev, &e), FP_ERR_OK);
    assert_true(cert_stored(f->s, "BB01"));
    assert_int_equal(fp_store_pending_get(f->s, id, &out, &e), FP_ERR_OK);
    assert_int_equal(out.status, FP_PENDING_ISSUED);
    assert_string_equal(out.serial, "BB01");
    fp_pending_rec_clear(&out);
    assert_int_equal(audit_count(f->s, "csr.approve", "BB01", FP_PROJECT_DEFAULT), 1);
    assert_int_equal(audit_count(f->s, "cert.issue", "BB01", FP_PROJECT_DEFAULT), 1);
    /* decided already: refused, and the new certificate is not stored */
    r = mkrec("BB02", fp_now() + 1000);
    assert_int_equal(fp_store_pending_issue(f->s, id, &r, &cev, &dev, &e), FP_ERR_STATE);
    assert_false(cert_stored(f->s, "BB02"));
    /* a request of another project cannot be issued under this one */
    project_put(f->s, "b");
    pr = mkpending("b", "lab", "abc");
    assert_int_equal(fp_store_pending_add(f->s, &pr, &idb, NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_pending_issue(f->s, idb, &r, &cev, &dev, &e), FP_ERR_STATE);
    assert_false(cert_stored(f->s, "BB02"));
    /* a serial collision leaves the request waiting */
    pr = mkpending(FP_PROJECT_DEFAULT, "lab", "def");
    assert_int_equal(fp_store_pending_add(f->s, &pr, &id, NULL, &e), FP_ERR_OK);
    r = mkrec("BB01", fp_now() + 1000);
    assert_int_equal(fp_store_pending_issue(f->s, id, &r, &cev, &dev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_pending_get(f->s, id, &out, &e), FP_ERR_OK);
    assert_int_equal(out.status, FP_PENDING_WAITING);
    fp_pending_rec_clear(&out);
    assert_int_equal(audit_count(f->s, "csr.approve", NULL, NULL), 1);
    assert_audit_ok(f->s, 3); /* cert.issue, csr.approve, project b */
}

static void test_pending_scoped_by_project(void **state)
{
    fx *f = *state;
    fp_pending_rec pa = mkpending(FP_PROJECT_DEFAULT, "lab", "abc");
    fp_pending_rec pb = mkpending("b", "lab", "abc"), out;
    int64_t ida = 0, idb = 0, again = 0;
    pending_ids l;
    fp_error e = {0};

    project_put(f->s, "b");
    /* the same label and CSR in two projects are two requests */
    assert_int_equal(fp_store_pending_add(f->s, &pa, &ida, NULL, &e), 0);
    assert_int_equal(fp_store_pending_add(f->s, &pb, &idb, NULL, &e), 0);
    assert_true(ida > 0 && idb > 0 && ida != idb);
    assert_int_equal(fp_store_pending_add(f->s, &pb, &again, NULL, &e), 0);
    assert_int_equal(again, idb);
    assert_int_equal(fp_store_pending_find(f->s, "b", "lab", "abc", &out, &e), 0);
    assert_int_equal(out.id, idb);
    assert_string_equal(out.project, "b");
    fp_pending_rec_clear(&out);
    assert_int_equal(fp_store_pending_find(f->s, FP_PROJECT_DEFAULT, "lab", "abc", &out, &e), 0);
    assert_int_equal(out.id, ida);
    fp_pending_rec_clear(&out);
    assert_int_equal(fp_store_pending_find(f->s, "ghost", "lab", "abc", &out, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_pending_get(f->s, idb, &out, &e), 0);
    assert_string_equal(out.project, "b");
    fp_pending_rec_clear(&out);
    memset(&l, 0, sizeof(l));
    assert_int_equal(fp_store_pending_list(f->s, "b", -1, pending_ids_cb, &l, &e), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.ids[0], idb);
    memset(&l, 0, sizeof(l));
    assert_int_equal(fp_store_pending_list(f->s, NULL, -1, pending_ids_cb, &l, &e), 0);
    assert_int_equal(l.n, 2);
    memset(&l, 0, sizeof(l));
    assert_int_equal(fp_store_pending_list(f->s, "ghost", -1, pending_ids_cb, &l, &e), 0);
    assert_int_equal(l.n, 0);
    /* deciding b's leaves default's waiting */
    assert_int_equal(fp_store_pending_decide(f->s, idb, FP_PENDING_REJECTED, NULL, NULL, &e), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(fp_store_pending_list(f->s, NULL, FP_PENDING_WAITING, pending_ids_cb, &l, &e), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.ids[0], ida);
    /* unknown and malformed projects */
    pa = mkpending("ghost", "lab", "x1");
    assert_int_equal(fp_store_pending_add(f->s, &pa, &again, NULL, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(again, 0);
    pa = mkpending("Ghost", "lab", "x1");
    assert_int_equal(fp_store_pending_add(f->s, &pa, &again, NULL, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_pending_find(f->s, NULL, "lab", "x1", &out, &e), FP_ERR_ARG);
}

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

static void test_audit_chain_mixed_projects(void **state)
{
    fx *f = *state;
    audit_proj_ctx c;
    fp_error e = {0};

    add_mixed_events(f);
    memset(&c, 0, sizeof(c));
    assert_int_equal(fp_store_audit_iter(f->s, audit_proj_cb, &c, &e), 0);
    assert_string_equal(c.projects, ";b;;default;;");
    assert_audit_ok(f->s, 5);
    {
        /* another handle appends to the same chain */
        fp_store *s2 = NULL;
        fp_audit_event ev = {"other", "test.event", "o5", "", "b"};
        assert_int_equal(B->open_again(B->arg, &s2), 0);
        assert_int_equal(fp_store_audit_append(s2, &ev, &e), 0);
        fp_store_close(s2);
    }
    add_mixed_events(f);
    assert_audit_ok(f->s, 11);
}

/* The hash covers the project exactly when there is one. */
static void test_audit_hash_covers_project(void **state)
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
    assert_audit_ok(f->s, 5);
    if (del)
        assert_int_equal(B->audit_delete(B->arg, row), 0);
    else
        assert_int_equal(B->audit_edit(B->arg, row, column, value), 0);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), FP_ERR_AUDIT);
    assert_msg(&e, needle);
}

static void test_audit_detects_edit(void **state)
{
    tamper_and_expect(state, false, 3, "detail", "{\"i\":2}", "row 3");
}

static void test_audit_detects_edited_project(void **state)
{
    tamper_and_expect(state, false, 2, "project", "c", "row 2");
}

static void test_audit_detects_cleared_project(void **state)
{
    tamper_and_expect(state, false, 4, "project", "", "row 4");
}

static void test_audit_detects_project_added(void **state)
{
    tamper_and_expect(state, false, 3, "project", "b", "row 3");
}

static void test_audit_detects_delete_middle(void **state)
{
    tamper_and_expect(state, true, 2, NULL, NULL, "deleted");
}

static void test_audit_detects_delete_tail(void **state)
{
    tamper_and_expect(state, true, 5, NULL, NULL, "head");
}

static void test_audit_detects_plain_edit_of_tail(void **state)
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

static void test_audit_detects_consistent_rehash_of_tail(void **state)
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
    assert_int_equal(B->audit_edit(B->arg, 5, "actor", "mallory"), 0);
    assert_int_equal(B->audit_edit(B->arg, 5, "hash", hash), 0);
    assert_int_equal(fp_store_audit_verify(f->s, &rows, &e), FP_ERR_AUDIT);
    assert_msg(&e, "head");
}

/* ---- handles ---- */

static void test_handles_share_one_store(void **state)
{
    fx *f = *state;
    fp_store *s2 = NULL;
    fp_cert_rec r = mkrec("K1", 5);
    fp_project_rec p;
    fp_error e = {0};

    assert_int_equal(B->open_again(B->arg, &s2), 0);
    project_put(s2, "b");
    assert_int_equal(fp_store_project_get(f->s, "b", &p, &e), 0);
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    assert_true(cert_stored(s2, "K1"));
    token_put(f->s, "b", "tk", 2, 0);
    assert_int_equal(fp_store_token_use(s2, "b", "tk", fp_now(), NULL, &e), 0);
    assert_int_equal(token_uses(f->s, "b", "tk"), 1);
    fp_store_close(s2);
    assert_audit_ok(f->s, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int store_conformance_run(const sc_backend *b)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_store, open_empty, teardown),
        T(test_project_put_get_list),
        T(test_project_bad_names),
        T(test_ca_add_get),
        T(test_ca_add_idempotent_and_refusals),
        T(test_ca_list_filters),
        T(test_ca_activate),
        T(test_cert_insert_get_duplicate),
        T(test_cert_insert_refuses_unknown_parents),
        T(test_cert_status_transitions),
        T(test_cert_list_filters),
        T(test_cert_list_order),
        T(test_cert_status_lookup),
        T(test_revoked_entries_and_numbers),
        T(test_status_changes),
        T(test_tokens),
        T(test_tokens_scoped_by_project),
        T(test_spend_refuses_only_the_unpaid),
        T(test_spend_refuses_expired),
        T(test_spend_token_of_another_project),
        T(test_spend_rolled_back_with_the_batch),
        T(test_pending),
        T(test_pending_scoped_by_project),
        T(test_pending_issue),
        T(test_audit_chain_mixed_projects),
        cmocka_unit_test(test_audit_hash_covers_project),
        T(test_audit_detects_edit),
        T(test_audit_detects_edited_project),
        T(test_audit_detects_cleared_project),
        T(test_audit_detects_project_added),
        T(test_audit_detects_delete_middle),
        T(test_audit_detects_delete_tail),
        T(test_audit_detects_plain_edit_of_tail),
        T(test_audit_detects_consistent_rehash_of_tail),
        T(test_handles_share_one_store),
    };
    B = b;
    return _cmocka_run_group_tests(b->name, tests, sizeof(tests) / sizeof(*tests), NULL, NULL);
}
