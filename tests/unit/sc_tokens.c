/* sc_tokens.c - store conformance: enrollment tokens, certificates paid with them,
 * requests held for approval (see store_conformance.h). */
#define _GNU_SOURCE
#include "store_conformance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* ---- tokens ---- */

void test_tokens(void **state)
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
    sc_assert_msg(&e, "expired");
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok1", now + 99, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok1", now, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok1", now, &ev, &e), FP_ERR_STATE);
    sc_assert_msg(&e, "used up");
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "tok1"), 0);
    /* a token that never expires */
    sc_token_put(f->s, FP_PROJECT_DEFAULT, "tok2", 1, 0);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tok2", INT64_MAX / 2, &ev, &e), FP_ERR_OK);
    /* put, and the two uses spent, are audited; refusals are not */
    assert_int_equal(sc_audit_count(f->s, "token.x", NULL, NULL), 4);
    sc_assert_audit_ok(f->s, 4);
}

void test_tokens_scoped_by_project(void **state)
{
    fx *f = *state;
    fp_token_rec t, got;
    fp_error e = {0}, e_absent = {0};

    sc_project_put(f->s, "b");
    sc_token_put(f->s, FP_PROJECT_DEFAULT, "ta", 3, 0);
    sc_token_put(f->s, "b", "tb", 3, 0);
    /* a token of another project is exactly as if absent */
    assert_int_equal(fp_store_token_get(f->s, "b", "ta", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_get(f->s, "b", "zz", &got, &e_absent), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_use(f->s, "b", "ta", fp_now(), NULL, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_use(f->s, FP_PROJECT_DEFAULT, "tb", fp_now(), NULL, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_get(f->s, "ghost", "ta", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_use(f->s, "ghost", "ta", fp_now(), NULL, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_get(f->s, "", "ta", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "ta"), 3);
    assert_int_equal(sc_token_uses(f->s, "b", "tb"), 3);
    assert_int_equal(fp_store_token_get(f->s, "b", "tb", &got, &e), 0);
    assert_string_equal(got.project, "b");
    /* ids are unique across projects */
    memset(&t, 0, sizeof(t));
    strcpy(t.id, "ta");
    strcpy(t.project, "b");
    t.uses_left = 1;
    assert_int_equal(fp_store_token_put(f->s, &t, NULL, &e), FP_ERR_DUPLICATE);
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "ta"), 3);
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

void test_spend_refuses_only_the_unpaid(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[6] = {sc_mkrec("F1", now + 99), sc_mkrec("F2", now + 99), sc_mkrec("F3", now + 99),
                           sc_mkrec("F4", now + 99), sc_mkrec("F5", now + 99), sc_mkrec("F6", now + 99)};
    fp_audit_event evs[6];
    /* F2 wants the use F1 just took; F5 a token with none; F6 no token */
    const char *toks[6] = {"one", "one", "two", "none", "ghost", NULL};
    fp_error res[6], e = {0};
    static const char *const serials[6] = {"F1", "F2", "F3", "F4", "F5", "F6"};

    sc_token_put(f->s, FP_PROJECT_DEFAULT, "one", 1, 0);
    sc_token_put(f->s, FP_PROJECT_DEFAULT, "two", 2, now + 3600);
    sc_token_put(f->s, FP_PROJECT_DEFAULT, "none", 0, 0);
    for (int i = 0; i < 6; i++)
        evs[i] = (fp_audit_event){"est:token:x", "cert.issue", serials[i], "{}", FP_PROJECT_DEFAULT};
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, evs, toks, now, res, 6, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_OK);
    assert_int_equal(res[1].code, FP_ERR_STATE);
    sc_assert_msg(&res[1], "token one is used up");
    assert_int_equal(res[2].code, FP_ERR_OK);
    assert_int_equal(res[3].code, FP_ERR_STATE);
    sc_assert_msg(&res[3], "token none is used up");
    assert_int_equal(res[4].code, FP_ERR_NOT_FOUND);
    assert_int_equal(res[5].code, FP_ERR_OK);
    assert_true(sc_cert_stored(f->s, "F1") && sc_cert_stored(f->s, "F3") && sc_cert_stored(f->s, "F6"));
    assert_false(sc_cert_stored(f->s, "F2") || sc_cert_stored(f->s, "F4") || sc_cert_stored(f->s, "F5"));
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "one"), 0);
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "two"), 1);
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "none"), 0);
    /* one token.use row per use spent (with the record's project), none for
     * refused records, whose certificate audit rows are not written either */
    assert_int_equal(sc_audit_count(f->s, "token.use", NULL, NULL), 2);
    assert_int_equal(sc_audit_count(f->s, "token.use", "one", FP_PROJECT_DEFAULT), 1);
    assert_int_equal(sc_audit_count(f->s, "cert.issue", "F2", NULL) +
                     sc_audit_count(f->s, "cert.issue", "F4", NULL) +
                     sc_audit_count(f->s, "cert.issue", "F5", NULL), 0);
    assert_int_equal(sc_audit_count(f->s, "cert.issue", NULL, NULL), 3);
    sc_assert_audit_ok(f->s, 5);
    /* no tokens means no results needed; tokens without results is refused */
    recs[0] = sc_mkrec("F7", now + 99);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, NULL, now, NULL, 1, &e), 0);
    recs[0] = sc_mkrec("F8", now + 99);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks + 2, now, NULL, 1, &e),
                     FP_ERR_ARG);
    assert_false(sc_cert_stored(f->s, "F8"));
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "two"), 1);
}

void test_spend_refuses_expired(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[2] = {sc_mkrec("G1", now + 99), sc_mkrec("G2", now + 99)};
    const char *toks[2] = {"old", "fresh"};
    fp_error res[2], e = {0};

    sc_token_put(f->s, FP_PROJECT_DEFAULT, "old", 3, now + 100);
    sc_token_put(f->s, FP_PROJECT_DEFAULT, "fresh", 3, now + 101);
    /* expired from its expires_at second on, as fp_store_token_use has it */
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now + 100, res, 2, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_STATE);
    sc_assert_msg(&res[0], "token old has expired");
    assert_int_equal(res[1].code, FP_ERR_OK);
    assert_false(sc_cert_stored(f->s, "G1"));
    assert_true(sc_cert_stored(f->s, "G2"));
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "old"), 3);
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "fresh"), 2);
    /* the same token one second earlier still pays */
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now + 99, res, 1, &e), 0);
    assert_int_equal(res[0].code, FP_ERR_OK);
    assert_true(sc_cert_stored(f->s, "G1"));
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "old"), 2);
}

void test_spend_token_of_another_project(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[3] = {sc_mkrec("J1", now + 99), sc_mkrec("J2", now + 99), sc_mkrec("J3", now + 99)};
    /* J1 (project default) offers b's token; J2 (project b) its own; J3
     * (default) default's */
    const char *toks[3] = {"tb", "tb", "ta"};
    fp_error res[3], e = {0}, absent = {0};

    sc_project_put(f->s, "b");
    sc_add_ca(f->s, "b-iss", FP_CA_ISSUING, "b", true);
    sc_token_put(f->s, FP_PROJECT_DEFAULT, "ta", 5, 0);
    sc_token_put(f->s, "b", "tb", 5, 0);
    strcpy(recs[1].project, "b");
    strcpy(recs[1].ca_id, "b-iss");
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now, res, 3, &e), 0);
    /* refused exactly as an unknown token would be */
    assert_int_equal(res[0].code, FP_ERR_NOT_FOUND);
    {
        fp_cert_rec one = sc_mkrec("J4", now + 99);
        const char *ghost[1] = {"no-such-token"};
        assert_int_equal(fp_store_cert_insert_spend(f->s, &one, NULL, ghost, now, &absent, 1, &e), 0);
        assert_int_equal(absent.code, FP_ERR_NOT_FOUND);
    }
    assert_int_equal(res[1].code, FP_ERR_OK);
    assert_int_equal(res[2].code, FP_ERR_OK);
    assert_false(sc_cert_stored(f->s, "J1"));
    assert_true(sc_cert_stored(f->s, "J2") && sc_cert_stored(f->s, "J3"));
    assert_int_equal(sc_token_uses(f->s, "b", "tb"), 4); /* J2's use only */
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "ta"), 4);
    assert_int_equal(sc_audit_count(f->s, "token.use", "tb", "b"), 1);
}

/* Every failure of the transaction gives the token use back: nothing is
 * written, and every record carries the batch's error. */
static void expect_batch_fails(fx *f, const fp_cert_rec *recs, size_t n, int want,
                               const char *needle)
{
    const char *toks[3] = {"pay", "pay", "pay"};
    fp_error res[3], e = {0};
    int before = sc_audit_count(f->s, NULL, NULL, NULL);

    assert_true(n <= 3);
    assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, fp_now(), res, n, &e), want);
    sc_assert_msg(&e, needle);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(res[i].code, want);
        assert_string_equal(res[i].msg, e.msg);
    }
    assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "pay"), 5);
    assert_int_equal(sc_audit_count(f->s, NULL, NULL, NULL), before);
    assert_false(sc_cert_stored(f->s, recs[0].serial));
}

void test_spend_rolled_back_with_the_batch(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec r = sc_mkrec("H0", now + 99);
    fp_error e = {0};

    sc_token_put(f->s, FP_PROJECT_DEFAULT, "pay", 5, 0);
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    {
        /* a serial collision after the first record's token was spent */
        fp_cert_rec recs[2] = {sc_mkrec("H1", now + 99), sc_mkrec("H0", now + 99)};
        expect_batch_fails(f, recs, 2, FP_ERR_DUPLICATE, "serial H0 already issued");
    }
    {
        /* an unknown CA */
        fp_cert_rec recs[2] = {sc_mkrec("H1", now + 99), sc_mkrec("H2", now + 99)};
        strcpy(recs[1].ca_id, "nope");
        expect_batch_fails(f, recs, 2, FP_ERR_NOT_FOUND, "no CA 'nope'");
    }
    {
        /* an unknown project without a token sinks the batch */
        fp_cert_rec recs[2] = {sc_mkrec("H1", now + 99), sc_mkrec("H2", now + 99)};
        const char *toks[2] = {"pay", NULL};
        fp_error res[2];
        strcpy(recs[1].project, "ghost");
        assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now, res, 2, &e),
                         FP_ERR_NOT_FOUND);
        sc_assert_msg(&e, "no project 'ghost'");
        assert_int_equal(res[0].code, FP_ERR_NOT_FOUND);
        assert_false(sc_cert_stored(f->s, "H1"));
        assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "pay"), 5);
        /* with a token it is refused alone: no token of "pay" exists there */
        toks[1] = "pay";
        assert_int_equal(fp_store_cert_insert_spend(f->s, recs, NULL, toks, now, res, 2, &e), 0);
        assert_int_equal(res[0].code, FP_ERR_OK);
        assert_int_equal(res[1].code, FP_ERR_NOT_FOUND);
        assert_true(sc_cert_stored(f->s, "H1"));
        assert_false(sc_cert_stored(f->s, "H2"));
        assert_int_equal(sc_token_uses(f->s, FP_PROJECT_DEFAULT, "pay"), 4);
    }
    sc_assert_audit_ok(f->s, 1);
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

void test_pending(void **state)
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
    assert_int_equal(sc_audit_count(f->s, "csr.hold", NULL, NULL), 1);
    {
        char obj[32];
        snprintf(obj, sizeof(obj), "pending:%lld", (long long)id1);
        assert_int_equal(sc_audit_count(f->s, "csr.hold", obj, FP_PROJECT_DEFAULT), 1);
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
    assert_int_equal(fp_store_pending_list(f->s, NULL, FP_PENDING_WAITING, sc_count_pending, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(fp_store_pending_decide(f->s, id2, FP_PENDING_REJECTED, NULL, &ev, &e), FP_ERR_OK);
    n = 0;
    assert_int_equal(fp_store_pending_list(f->s, NULL, FP_PENDING_WAITING, sc_count_pending, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(fp_store_pending_list(f->s, NULL, FP_PENDING_REJECTED, sc_count_pending, &n, &e), 0);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(fp_store_pending_list(f->s, NULL, -1, sc_count_pending, &n, &e), 0);
    assert_int_equal(n, 2);
    sc_assert_audit_ok(f->s, 3);
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

void test_pending_scoped_by_project(void **state)
{
    fx *f = *state;
    fp_pending_rec pa = mkpending(FP_PROJECT_DEFAULT, "lab", "abc");
    fp_pending_rec pb = mkpending("b", "lab", "abc"), out;
    int64_t ida = 0, idb = 0, again = 0;
    pending_ids l;
    fp_error e = {0};

    sc_project_put(f->s, "b");
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

/* Approval: the held request becomes issued and the certificate is stored
 * in one transaction, or neither happens. */
void test_pending_issue(void **state)
{
    fx *f = *state;
    fp_pending_rec pr = mkpending(FP_PROJECT_DEFAULT, "lab", "abc"), out;
    fp_cert_rec r = sc_mkrec("BB01", fp_now() + 1000);
    fp_audit_event cev = {"t", "cert.issue", "BB01", "{}", FP_PROJECT_DEFAULT};
    fp_audit_event dev = {"t", "csr.approve", "BB01", "", FP_PROJECT_DEFAULT};
    fp_error e = {0};
    int64_t id = 0, idb = 0;

    assert_int_equal(fp_store_pending_add(f->s, &pr, &id, NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_pending_issue(f->s, id, &r, &cev, &dev, &e), FP_ERR_OK);
    assert_true(sc_cert_stored(f->s, "BB01"));
    assert_int_equal(fp_store_pending_get(f->s, id, &out, &e), FP_ERR_OK);
    assert_int_equal(out.status, FP_PENDING_ISSUED);
    assert_string_equal(out.serial, "BB01");
    fp_pending_rec_clear(&out);
    assert_int_equal(sc_audit_count(f->s, "csr.approve", "BB01", FP_PROJECT_DEFAULT), 1);
    assert_int_equal(sc_audit_count(f->s, "cert.issue", "BB01", FP_PROJECT_DEFAULT), 1);
    /* decided already: refused, and the new certificate is not stored */
    r = sc_mkrec("BB02", fp_now() + 1000);
    assert_int_equal(fp_store_pending_issue(f->s, id, &r, &cev, &dev, &e), FP_ERR_STATE);
    assert_false(sc_cert_stored(f->s, "BB02"));
    /* a request of another project cannot be issued under this one */
    sc_project_put(f->s, "b");
    pr = mkpending("b", "lab", "abc");
    assert_int_equal(fp_store_pending_add(f->s, &pr, &idb, NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_pending_issue(f->s, idb, &r, &cev, &dev, &e), FP_ERR_STATE);
    assert_false(sc_cert_stored(f->s, "BB02"));
    /* a serial collision leaves the request waiting */
    pr = mkpending(FP_PROJECT_DEFAULT, "lab", "def");
    assert_int_equal(fp_store_pending_add(f->s, &pr, &id, NULL, &e), FP_ERR_OK);
    r = sc_mkrec("BB01", fp_now() + 1000);
    assert_int_equal(fp_store_pending_issue(f->s, id, &r, &cev, &dev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_pending_get(f->s, id, &out, &e), FP_ERR_OK);
    assert_int_equal(out.status, FP_PENDING_WAITING);
    fp_pending_rec_clear(&out);
    assert_int_equal(sc_audit_count(f->s, "csr.approve", NULL, NULL), 1);
    sc_assert_audit_ok(f->s, 3); /* cert.issue, csr.approve, project b */
}
