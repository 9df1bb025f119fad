/* sc_certs.c - store conformance: certificates, their status, revoked entries,
 * revocation list numbers and the change log (see store_conformance.h). */
#define _GNU_SOURCE
#include "store_conformance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* ---- certificates ---- */

void test_cert_insert_get_duplicate(void **state)
{
    fx *f = *state;
    fp_cert_rec r = sc_mkrec("AA01", fp_now() + 1000), got;
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
    assert_memory_equal(got.der, sc_der_cert, 4);
    assert_int_equal(got.status, FP_CERT_VALID);
    fp_cert_rec_clear(&got);
    /* the same serial again is refused and nothing of the batch lands */
    {
        fp_cert_rec batch[2] = {sc_mkrec("AA02", 5), sc_mkrec("AA01", 5)};
        fp_audit_event evs[2] = {ev, ev};
        assert_int_equal(fp_store_cert_insert(f->s, batch, evs, 2, &e), FP_ERR_DUPLICATE);
        assert_false(sc_cert_stored(f->s, "AA02"));
    }
    /* serials are unique across projects too */
    sc_project_put(f->s, "b");
    sc_add_ca(f->s, "b-iss", FP_CA_ISSUING, "b", true);
    r = sc_mkrec("AA01", 5);
    strcpy(r.project, "b");
    strcpy(r.ca_id, "b-iss");
    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_cert_get(f->s, "FFFF", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(sc_audit_count(f->s, "cert.issue", NULL, NULL), 1);
    sc_assert_audit_ok(f->s, 2);
}

void test_cert_insert_refuses_unknown_parents(void **state)
{
    fx *f = *state;
    fp_cert_rec r;
    fp_audit_event ev = {"t", "cert.issue", "x", "{}", NULL};
    fp_error e = {0};

    r = sc_mkrec("BB01", 5);
    strcpy(r.ca_id, "nope");
    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), FP_ERR_NOT_FOUND);
    sc_assert_msg(&e, "nope");
    r = sc_mkrec("BB02", 5);
    strcpy(r.project, "ghost");
    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), FP_ERR_NOT_FOUND);
    sc_assert_msg(&e, "ghost");
    {
        /* one record of an unknown project sinks the batch */
        fp_cert_rec batch[2] = {sc_mkrec("BB03", 5), sc_mkrec("BB04", 5)};
        strcpy(batch[1].project, "ghost");
        assert_int_equal(fp_store_cert_insert(f->s, batch, NULL, 2, &e), FP_ERR_NOT_FOUND);
        assert_false(sc_cert_stored(f->s, "BB03"));
    }
    r = sc_mkrec("BB05", 5);
    strcpy(r.project, "Ghost");
    assert_int_equal(fp_store_cert_insert(f->s, &r, &ev, 1, &e), FP_ERR_ARG);
    sc_assert_msg(&e, "project name");
    r = sc_mkrec("BB06", 5);
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
    assert_false(sc_cert_stored(f->s, "BB01") || sc_cert_stored(f->s, "BB02") ||
                 sc_cert_stored(f->s, "BB04") || sc_cert_stored(f->s, "BB05") ||
                 sc_cert_stored(f->s, "BB06"));
    sc_assert_audit_ok(f->s, 0);
}

void test_cert_status_transitions(void **state)
{
    fx *f = *state;
    fp_cert_rec r = sc_mkrec("CC01", fp_now() + 1000), got;
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
    sc_assert_msg(&e, "already revoked");
    assert_int_equal(fp_store_cert_set_status(f->s, "CC01", FP_CERT_VALID, FP_REASON_REMOVE_FROM_CRL, 0, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_cert_set_status(f->s, "NOPE", FP_CERT_REVOKED, 1, 1, &ev, &e), FP_ERR_NOT_FOUND);
    /* one audit row per change made, none for refusals */
    assert_int_equal(sc_audit_count(f->s, "cert.revoke", NULL, FP_PROJECT_DEFAULT), 3);
    sc_assert_audit_ok(f->s, 3);
}

void test_cert_list_filters(void **state)
{
    fx *f = *state;
    int64_t now = fp_now();
    fp_cert_rec recs[4] = {sc_mkrec("D1", now - 10), sc_mkrec("D2", now + 86400),
                           sc_mkrec("D3", now + 90 * 86400), sc_mkrec("D4", now + 86400)};
    fp_cert_filter flt = {.status = -1, .now = now};
    fp_error e = {0};
    int n;

    sc_project_put(f->s, "b");
    sc_add_ca(f->s, "b-iss", FP_CA_ISSUING, "b", true);
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
        assert_int_equal(fp_store_cert_list(f->s, &flt, sc_count_cert, &n, &e), 0); \
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

void test_cert_list_order(void **state)
{
    fx *f = *state;
    fp_cert_rec recs[3] = {sc_mkrec("E3", 5), sc_mkrec("E1", 5), sc_mkrec("E2", 5)};
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

void test_cert_status_lookup(void **state)
{
    fx *f = *state;
    fp_cert_rec r = sc_mkrec("5A", 4000);
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

void test_revoked_entries_and_numbers(void **state)
{
    fx *f = *state;
    fp_cert_rec recs[5] = {sc_mkrec("0C", 5), sc_mkrec("0A", 5), sc_mkrec("0B", 5), sc_mkrec("0D", 5),
                           sc_mkrec("0E", 5)};
    revoked_ctx c;
    int64_t num = 0;
    fp_error e = {0};

    sc_project_put(f->s, "b");
    sc_add_ca(f->s, "b-iss", FP_CA_ISSUING, "b", true);
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
        assert_int_equal(sc_be->open_again(sc_be->arg, &s2), 0);
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

void test_status_changes(void **state)
{
    fx *f = *state;
    fp_cert_rec recs[2] = {sc_mkrec("71", 5), sc_mkrec("72", 5)};
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

/* A change made through another handle is announced to a waiting one
 * (backends that announce changes; the others return at once and the
 * caller polls).  The bound is generous and never reached when it works. */
void test_status_wait(void **state)
{
    fx *f = *state;
    fp_store *s2 = NULL;
    fp_cert_rec r = sc_mkrec("73", 5);
    bool waited = false, woken = true;
    changes_ctx c;
    fp_error e = {0};

    assert_int_equal(fp_store_cert_insert(f->s, &r, NULL, 1, &e), 0);
    /* subscribes; nothing announced yet */
    assert_int_equal(fp_store_status_wait(f->s, 0, &waited, &woken, &e), 0);
    assert_false(woken);
    assert_int_equal(sc_be->open_again(sc_be->arg, &s2), 0);
    assert_int_equal(fp_store_cert_set_status(s2, "73", FP_CERT_REVOKED, 1, 2, NULL, &e), 0);
    fp_store_close(s2);
    assert_int_equal(fp_store_status_wait(f->s, 60000, &waited, &woken, &e), 0);
    if (waited)
        assert_true(woken);
    memset(&c, 0, sizeof(c));
    assert_int_equal(fp_store_status_changes(f->s, 0, 100, changes_cb, &c, &e), 0);
    assert_string_equal(c.serials, "73/issuing;");
}

/* Published CRLs: the newest number wins; the regeneration lock can be
 * taken and given back by any handle. */
void test_crl_published(void **state)
{
    fx *f = *state;
    fp_store *s2 = NULL;
    unsigned char d1[] = {0x30, 0x01, 0x01}, d2[] = {0x30, 0x01, 0x02};
    fp_crl_pub c = {2, 7, 100, 200, d2, sizeof(d2)}, got;
    bool taken = false;
    fp_error e = {0};

    assert_int_equal(fp_store_crl_get(f->s, "issuing", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_crl_put(f->s, "issuing", &c, &e), 0);
    /* an older number does not replace a newer one */
    c = (fp_crl_pub){1, 9, 300, 400, d1, sizeof(d1)};
    assert_int_equal(fp_store_crl_put(f->s, "issuing", &c, &e), 0);
    assert_int_equal(sc_be->open_again(sc_be->arg, &s2), 0);
    assert_int_equal(fp_store_crl_get(s2, "issuing", &got, &e), 0);
    assert_int_equal(got.number, 2);
    assert_int_equal(got.seq, 7);
    assert_int_equal(got.this_update, 100);
    assert_int_equal(got.next_update, 200);
    assert_int_equal(got.der_len, sizeof(d2));
    assert_memory_equal(got.der, d2, sizeof(d2));
    free(got.der);
    c = (fp_crl_pub){3, 9, 300, 400, d1, sizeof(d1)};
    assert_int_equal(fp_store_crl_put(s2, "issuing", &c, &e), 0);
    assert_int_equal(fp_store_crl_get(f->s, "issuing", &got, &e), 0);
    assert_int_equal(got.number, 3);
    free(got.der);
    assert_int_equal(fp_store_crl_get(f->s, "root", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_crl_lock(f->s, "issuing", true, &taken, &e), 0);
    assert_true(taken);
    assert_int_equal(fp_store_crl_lock(f->s, "issuing", false, &taken, &e), 0);
    assert_int_equal(fp_store_crl_lock(s2, "issuing", true, &taken, &e), 0);
    assert_true(taken); /* given back by the first handle */
    assert_int_equal(fp_store_crl_lock(s2, "issuing", false, &taken, &e), 0);
    fp_store_close(s2);
}
