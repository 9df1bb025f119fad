/*
 * store_conformance.c - every behaviour of the store interface, through
 * fp_store_* calls only; see store_conformance.h.
 *
 * Each case gets a fresh store from the backend (setup: with the shared
 * root "root" and the active issuing CA "issuing" of project "default",
 * added without audit rows, so audit row ids in a case start at 1).
 */
#define _GNU_SOURCE
#include "store_conformance_int.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"

const sc_backend *sc_be;

unsigned char sc_der_root[] = {0x30, 0x03, 0x02, 0x01, 0x01};
unsigned char sc_der_iss[] = {0x30, 0x03, 0x02, 0x01, 0x02};
unsigned char sc_der_other[] = {0x30, 0x03, 0x02, 0x01, 0x03};
unsigned char sc_der_cert[] = {0x30, 0x02, 0x05, 0x00};

fp_ca_rec sc_ca(const char *id, int kind, const char *project, const char *parent,
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
    if (sc_be->open_fresh(sc_be->arg, &f->s) != FP_ERR_OK)
        fail_msg("%s: cannot open a fresh store", sc_be->name);
    (void)e;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    fx *f;
    fp_ca_rec root = sc_ca("root", FP_CA_ROOT, "", "", false, sc_der_root, sizeof(sc_der_root));
    fp_ca_rec iss = sc_ca("issuing", FP_CA_ISSUING, FP_PROJECT_DEFAULT, "root", true, sc_der_iss,
                       sizeof(sc_der_iss));
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
    sc_be->discard(sc_be->arg);
    free(f);
    return 0;
}

void sc_assert_msg(const fp_error *e, const char *needle)
{
    if (strstr(e->msg, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", e->msg, needle);
}

fp_cert_rec sc_mkrec(const char *serial, int64_t not_after)
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
    r.der = sc_der_cert;
    r.der_len = sizeof(sc_der_cert);
    return r;
}

bool sc_cert_stored(fp_store *s, const char *serial)
{
    fp_cert_rec got;
    int rc = fp_store_cert_get(s, serial, &got, NULL);
    if (rc == FP_ERR_OK)
        fp_cert_rec_clear(&got);
    else
        assert_int_equal(rc, FP_ERR_NOT_FOUND);
    return rc == FP_ERR_OK;
}

void sc_token_put(fp_store *s, const char *project, const char *id, int uses,
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

int sc_token_uses(fp_store *s, const char *project, const char *id)
{
    fp_token_rec t;
    fp_error e = {0};
    if (fp_store_token_get(s, project, id, &t, &e) != FP_ERR_OK)
        fail_msg("token get %s/%s: %s", project, id, e.msg);
    return t.uses_left;
}

void sc_project_put(fp_store *s, const char *name)
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

int sc_audit_count(fp_store *s, const char *action, const char *object, const char *project)
{
    audit_count_ctx c = {action, object, project, 0};
    fp_error e = {0};
    if (fp_store_audit_iter(s, audit_count_cb, &c, &e) != FP_ERR_OK)
        fail_msg("audit iter: %s", e.msg);
    return c.n;
}

void sc_assert_audit_ok(fp_store *s, int64_t want_rows)
{
    int64_t rows = -1;
    fp_error e = {0};
    if (fp_store_audit_verify(s, &rows, &e) != FP_ERR_OK)
        fail_msg("audit verify: %s", e.msg);
    if (want_rows >= 0)
        assert_int_equal(rows, want_rows);
}

/* ---- a fresh store ---- */

int sc_count_project(void *arg, const fp_project_rec *p)
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

int sc_count_ca(void *arg, const fp_ca_rec *r) { return count_any(arg, r); }
int sc_count_cert(void *arg, const fp_cert_rec *r) { return count_any(arg, r); }
int sc_count_pending(void *arg, const fp_pending_rec *r) { return count_any(arg, r); }

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
    assert_int_equal(fp_store_project_list(f->s, sc_count_project, names, &e), 0);
    assert_string_equal(names, "default;");
    assert_int_equal(fp_store_project_get(f->s, FP_PROJECT_DEFAULT, &p, &e), 0);
    assert_string_equal(p.name, "default");
    assert_int_equal(fp_store_ca_list(f->s, NULL, -1, sc_count_ca, &n, &e), 0);
    assert_int_equal(fp_store_cert_list(f->s, &flt, sc_count_cert, &n, &e), 0);
    assert_int_equal(fp_store_pending_list(f->s, NULL, -1, sc_count_pending, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(fp_store_status_seq(f->s, &seq, &e), 0);
    assert_int_equal(seq, 0);
    sc_assert_audit_ok(f->s, 0);
    assert_int_equal(fp_store_check(f->s, &e), 0);
    assert_int_equal(fp_store_maintain(f->s, &e), 0);
}


bool sc_ca_active(fp_store *s, const char *id)
{
    fp_ca_rec r;
    bool a;
    assert_int_equal(fp_store_ca_get(s, id, &r, NULL), 0);
    a = r.active;
    fp_ca_rec_clear(&r);
    return a;
}

void sc_add_ca(fp_store *s, const char *id, int kind, const char *project, bool active)
{
    fp_ca_rec r = sc_ca(id, kind, project, kind == FP_CA_TRUST_ROOT ? "" : "root", active, sc_der_other,
                     sizeof(sc_der_other));
    fp_error e = {0};
    if (fp_store_ca_add(s, &r, NULL, &e) != FP_ERR_OK)
        fail_msg("ca add %s: %s", id, e.msg);
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
        T(test_ca_set_cert),
        T(test_cert_insert_get_duplicate),
        T(test_cert_insert_refuses_unknown_parents),
        T(test_cert_status_transitions),
        T(test_cert_list_filters),
        T(test_cert_list_order),
        T(test_cert_status_lookup),
        T(test_revoked_entries_and_numbers),
        T(test_status_changes),
        T(test_status_wait),
        T(test_crl_published),
        T(test_tokens),
        T(test_apikeys),
        T(test_apikey_secret_matches),
        T(test_firmware_signatures),
        T(test_token_list_delete),
        T(test_tokens_scoped_by_project),
        T(test_spend_refuses_only_the_unpaid),
        T(test_spend_refuses_expired),
        T(test_spend_token_of_another_project),
        T(test_spend_rolled_back_with_the_batch),
        T(test_pending),
        T(test_pending_scoped_by_project),
        T(test_pending_issue),
        T(test_audit_chain_mixed_projects),
        T(test_audit_head),
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
        T(test_device_register_get),
        T(test_device_refusals),
        T(test_device_scoped_by_project),
        T(test_device_list_filters),
        T(test_device_list_prefix_edges),
        T(test_device_state_and_touch),
        T(test_device_certs_and_naming),
        T(test_device_changes),
        T(test_device_tag_page_follows_device),
        T(test_device_tags_bounded),
    };
    sc_be = b;
    return _cmocka_run_group_tests(b->name, tests, sizeof(tests) / sizeof(*tests), NULL, NULL);
}

