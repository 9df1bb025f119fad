/* test_crl.c - streaming CRL generation: structure, signature, entries,
 * reasons, numbering, holds, spooling, and the store pieces it uses. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "ca/ca.h"
#include "common/util.h"
#include "crl/crl.h"
#include "x509/x509util.h"

typedef tu_ca fx;

static int setup_algo(void **state, const char *algo)
{
    fx *f = malloc(sizeof(*f));
    tu_ca_init(f, "CRL Org", algo);
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_algo(state, "p256"); }
static int setup_ed(void **state) { return setup_algo(state, "ed25519"); }
static int setup_rsa(void **state) { return setup_algo(state, "rsa3072"); }

static int teardown(void **state)
{
    tu_ca_clear(*state);
    free(*state);
    return 0;
}

/* Issue a device certificate; returns its serial (static buffer per call site). */
static void issue(fx *f, const char *cn, char serial[FP_SERIAL_HEX_MAX])
{
    char subj[128];
    X509_REQ *req;
    X509 *x = NULL;
    fp_error e = {0};
    fp_issue_req ir;

    snprintf(subj, sizeof(subj), "/CN=%s", cn);
    req = tu_csr(f->key, subj, NULL, 0, NULL, NULL);
    ir = (fp_issue_req){.csr = req, .profile = "device", .days = 0, .actor = "unit"};
    if (fp_ca_issue(f->ca, f->store, &ir, &x, &e) != 0)
        fail_msg("issue: %s", e.msg);
    fp_serial_hex(X509_get0_serialNumber(x), serial);
    X509_free(x);
    X509_REQ_free(req);
}

/* Generate a CRL into memory and parse it back. */
static X509_CRL *gen(fx *f, fp_crl_info *info, int hours)
{
    fp_crl_params p = {0};
    fp_error e = {0};
    BIO *mem = BIO_new(BIO_s_mem());
    const unsigned char *data = NULL, *q;
    char *raw = NULL;
    long n;
    X509_CRL *crl;

    p.ca_id = f->cfg.issuing_id;
    p.issuer = fp_ca_get0_cert(f->ca);
    p.signer = fp_ca_get0_signer(f->ca);
    p.next_update_hours = hours;
    p.spool_dir = f->dir;
    if (fp_crl_generate(f->store, &p, mem, info, &e) != 0)
        fail_msg("crl: %s", e.msg);
    n = BIO_get_mem_data(mem, &raw);
    data = (const unsigned char *)raw;
    assert_int_equal((uint64_t)n, info->der_len);
    q = data;
    crl = d2i_X509_CRL(NULL, &q, n);
    assert_non_null(crl);
    assert_ptr_equal(q, data + n); /* no trailing bytes: the framing is exact */
    BIO_free(mem);
    return crl;
}

static int entry_reason(X509_REVOKED *rv)
{
    int crit = 0;
    ASN1_ENUMERATED *r = X509_REVOKED_get_ext_d2i(rv, NID_crl_reason, &crit, NULL);
    int v = r ? (int)ASN1_ENUMERATED_get(r) : -1;
    ASN1_ENUMERATED_free(r);
    return v;
}

static X509_REVOKED *find(X509_CRL *crl, const char *serial)
{
    STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
    char hex[FP_SERIAL_HEX_MAX];
    for (int i = 0; i < sk_X509_REVOKED_num(revs); i++) {
        X509_REVOKED *rv = sk_X509_REVOKED_value(revs, i);
        fp_serial_hex(X509_REVOKED_get0_serialNumber(rv), hex);
        if (!strcmp(hex, serial))
            return rv;
    }
    return NULL;
}

static long crl_number(X509_CRL *crl)
{
    ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    long v = n ? ASN1_INTEGER_get(n) : -1;
    ASN1_INTEGER_free(n);
    return v;
}

static void test_empty_crl(void **state)
{
    fx *f = *state;
    fp_crl_info info;
    X509_CRL *crl = gen(f, &info, 24);
    X509 *ca = fp_ca_get0_cert(f->ca);
    AUTHORITY_KEYID *akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);

    assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca)), 1);
    assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)), 0);
    /* RFC 5280 5.1.2.6: no entries, no (empty) list */
    assert_null(X509_CRL_get_REVOKED(crl));
    assert_int_equal(info.entries, 0);
    assert_int_equal(crl_number(crl), info.number);
    assert_non_null(akid);
    assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca)), 0);
    assert_int_equal(fp_asn1_time_unix(X509_CRL_get0_nextUpdate(crl)) -
                         fp_asn1_time_unix(X509_CRL_get0_lastUpdate(crl)),
                     24 * 3600);
    AUTHORITY_KEYID_free(akid);
    X509_CRL_free(crl);
}

static void test_entries_reasons_number(void **state)
{
    fx *f = *state;
    char s1[FP_SERIAL_HEX_MAX], s2[FP_SERIAL_HEX_MAX], s3[FP_SERIAL_HEX_MAX],
        s4[FP_SERIAL_HEX_MAX], good[FP_SERIAL_HEX_MAX];
    fp_error e = {0};
    fp_crl_info i1, i2;
    X509_CRL *crl, *crl2;

    issue(f, "a", s1);
    issue(f, "b", s2);
    issue(f, "c", s3);
    issue(f, "d", s4);
    issue(f, "ok", good);
    assert_int_equal(fp_ca_revoke(f->store, s1, FP_REASON_KEY_COMPROMISE, "unit", &e), 0);
    assert_int_equal(fp_ca_revoke(f->store, s2, FP_REASON_UNSPECIFIED, "unit", &e), 0);
    assert_int_equal(fp_ca_revoke(f->store, s3, FP_REASON_HOLD, "unit", &e), 0);
    assert_int_equal(fp_ca_revoke(f->store, s4, FP_REASON_AA_COMPROMISE, "unit", &e), 0);

    crl = gen(f, &i1, 6);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(fp_ca_get0_cert(f->ca))), 1);
    assert_int_equal(i1.entries, 4);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 4);
    assert_int_equal(entry_reason(find(crl, s1)), FP_REASON_KEY_COMPROMISE);
    assert_int_equal(entry_reason(find(crl, s2)), -1); /* unspecified: no extension */
    assert_int_equal(entry_reason(find(crl, s3)), FP_REASON_HOLD);
    assert_int_equal(entry_reason(find(crl, s4)), FP_REASON_AA_COMPROMISE);
    assert_null(find(crl, good));

    /* lift the hold: the entry disappears; the number goes up */
    assert_int_equal(fp_ca_revoke(f->store, s3, FP_REASON_REMOVE_FROM_CRL, "unit", &e), 0);
    crl2 = gen(f, &i2, 6);
    assert_true(i2.number > i1.number);
    assert_int_equal(crl_number(crl2), i2.number);
    assert_int_equal(i2.entries, 3);
    assert_null(find(crl2, s3));
    assert_non_null(find(crl2, s1));
    X509_CRL_free(crl);
    X509_CRL_free(crl2);
}

/* Entries come out in serial order and the revocation time is kept. */
static void test_order_and_time(void **state)
{
    fx *f = *state;
    char s[6][FP_SERIAL_HEX_MAX], prev[FP_SERIAL_HEX_MAX] = "";
    fp_error e = {0};
    fp_crl_info info;
    X509_CRL *crl;
    STACK_OF(X509_REVOKED) *revs;
    fp_cert_rec rec;

    for (int i = 0; i < 6; i++) {
        issue(f, "o", s[i]);
        assert_int_equal(fp_ca_revoke(f->store, s[i], FP_REASON_SUPERSEDED, "unit", &e), 0);
    }
    crl = gen(f, &info, 1);
    revs = X509_CRL_get_REVOKED(crl);
    assert_int_equal(sk_X509_REVOKED_num(revs), 6);
    for (int i = 0; i < 6; i++) {
        char hex[FP_SERIAL_HEX_MAX];
        X509_REVOKED *rv = sk_X509_REVOKED_value(revs, i);
        fp_serial_hex(X509_REVOKED_get0_serialNumber(rv), hex);
        assert_true(strcmp(prev, hex) < 0);
        strcpy(prev, hex);
        assert_int_equal(fp_store_cert_get(f->store, hex, &rec, &e), 0);
        assert_int_equal(fp_asn1_time_unix(X509_REVOKED_get0_revocationDate(rv)), rec.revoked_at);
        fp_cert_rec_clear(&rec);
    }
    X509_CRL_free(crl);
}

/* A tiny memory budget forces the spool to a file; the result must be
 * the same CRL (entries, signature). */
static void test_spool_to_file(void **state)
{
    fx *f = *state;
    char s[12][FP_SERIAL_HEX_MAX];
    fp_crl_params p = {0};
    fp_crl_info info;
    fp_error e = {0};
    BIO *mem = BIO_new(BIO_s_mem());
    const unsigned char *q;
    char *raw = NULL;
    long n;
    X509_CRL *crl;

    for (int i = 0; i < 12; i++) {
        issue(f, "spool", s[i]);
        assert_int_equal(fp_ca_revoke(f->store, s[i], FP_REASON_CESSATION, "unit", &e), 0);
    }
    p.ca_id = f->cfg.issuing_id;
    p.issuer = fp_ca_get0_cert(f->ca);
    p.signer = fp_ca_get0_signer(f->ca);
    p.next_update_hours = 2;
    p.spool_dir = f->dir;
    p.spool_mem = 100; /* two entries or so, then the file */
    assert_int_equal(fp_crl_generate(f->store, &p, mem, &info, &e), 0);
    n = BIO_get_mem_data(mem, &raw);
    q = (const unsigned char *)raw;
    crl = d2i_X509_CRL(NULL, &q, n);
    assert_non_null(crl);
    assert_int_equal(info.entries, 12);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 12);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(fp_ca_get0_cert(f->ca))), 1);
    for (int i = 0; i < 12; i++)
        assert_non_null(find(crl, s[i]));
    X509_CRL_free(crl);
    BIO_free(mem);
}

static int count_changes(void *arg, int64_t seq, const char *serial, const char *ca_id)
{
    (void)seq;
    (void)serial;
    (void)ca_id;
    (*(int *)arg)++;
    return 0;
}

/* Every status change lands in the change log with a rising seq. */
static void test_change_log(void **state)
{
    fx *f = *state;
    char s1[FP_SERIAL_HEX_MAX];
    fp_error e = {0};
    int64_t seq0 = -1, seq1 = -1, seq2 = -1;
    int n = 0;

    assert_int_equal(fp_store_status_seq(f->store, &seq0, &e), 0);
    issue(f, "log", s1);
    assert_int_equal(fp_store_status_seq(f->store, &seq1, &e), 0);
    assert_int_equal(seq1, seq0); /* issuance is not a status change */
    assert_int_equal(fp_ca_revoke(f->store, s1, FP_REASON_HOLD, "unit", &e), 0);
    assert_int_equal(fp_ca_revoke(f->store, s1, FP_REASON_REMOVE_FROM_CRL, "unit", &e), 0);
    /* a refused change leaves no trace */
    assert_int_equal(fp_ca_revoke(f->store, s1, FP_REASON_REMOVE_FROM_CRL, "unit", &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_store_status_seq(f->store, &seq2, &e), 0);
    assert_int_equal(seq2, seq0 + 2);
    assert_int_equal(fp_store_status_changes(f->store, seq0, 100, count_changes, &n, &e), 0);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(fp_store_status_changes(f->store, seq0, 1, count_changes, &n, &e), 0);
    assert_int_equal(n, 1);
}

static void test_revoke_by_cn(void **state)
{
    fx *f = *state;
    char a1[FP_SERIAL_HEX_MAX], a2[FP_SERIAL_HEX_MAX], b[FP_SERIAL_HEX_MAX];
    fp_error e = {0};
    fp_cert_rec rec;
    int count = 0;

    issue(f, "dev-7", a1);
    issue(f, "dev-7", a2);
    issue(f, "dev-77", b); /* substring of nothing, superstring of dev-7: must not match */
    assert_int_equal(fp_ca_revoke_cn(f->store, "dev-7", FP_REASON_HOLD, "unit", NULL, NULL,
                                     &count, &e), 0);
    assert_int_equal(count, 2);
    assert_int_equal(fp_store_cert_get(f->store, b, &rec, &e), 0);
    assert_int_equal(rec.status, FP_CERT_VALID);
    fp_cert_rec_clear(&rec);
    /* held ones can be lifted, or revoked for good */
    assert_int_equal(fp_ca_revoke_cn(f->store, "dev-7", FP_REASON_KEY_COMPROMISE, "unit", NULL,
                                     NULL, &count, &e), 0);
    assert_int_equal(count, 2);
    assert_int_equal(fp_store_cert_get(f->store, a2, &rec, &e), 0);
    assert_int_equal(rec.reason, FP_REASON_KEY_COMPROMISE);
    fp_cert_rec_clear(&rec);
    /* nothing left to revoke or lift */
    assert_int_equal(fp_ca_revoke_cn(f->store, "dev-7", FP_REASON_SUPERSEDED, "unit", NULL, NULL,
                                     &count, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_ca_revoke_cn(f->store, "dev-7", FP_REASON_REMOVE_FROM_CRL, "unit", NULL,
                                     NULL, &count, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_ca_revoke_cn(f->store, "", FP_REASON_SUPERSEDED, "unit", NULL, NULL,
                                     &count, &e), FP_ERR_ARG);
    /* a CN with RFC 2253 specials is matched exactly, without prefiltering */
    issue(f, "a,b+c", a1);
    assert_int_equal(fp_ca_revoke_cn(f->store, "a,b+c", FP_REASON_SUPERSEDED, "unit", NULL, NULL,
                                     &count, &e), 0);
    assert_int_equal(count, 1);
}

/* By device id: the CN or a DNS/URI SAN; --subject does not look at SANs. */
static void test_revoke_by_device(void **state)
{
    fx *f = *state;
    fp_error e = {0};
    fp_issue_req ir;
    X509_REQ *req;
    X509 *x = NULL;
    char by_cn[FP_SERIAL_HEX_MAX];
    int count = 0;

    req = tu_csr(f->key, "/CN=gateway", "URI:urn:dev:abc-1", 0, NULL, NULL);
    ir = (fp_issue_req){.csr = req, .profile = "device", .days = 0, .actor = "unit"};
    if (fp_ca_issue(f->ca, f->store, &ir, &x, &e) != 0)
        fail_msg("issue: %s", e.msg);
    X509_free(x);
    X509_REQ_free(req);
    issue(f, "urn:dev:abc-1", by_cn);
    assert_int_equal(fp_ca_revoke_cn(f->store, "urn:dev:abc", FP_REASON_SUPERSEDED, "unit", NULL,
                                     NULL, &count, &e), FP_ERR_NOT_FOUND); /* no substrings */
    assert_int_equal(fp_ca_revoke_device(f->store, "urn:dev:abc-1", FP_REASON_KEY_COMPROMISE,
                                         "unit", NULL, NULL, &count, &e), 0);
    assert_int_equal(count, 2);
    assert_int_equal(fp_ca_revoke_device(f->store, "gateway", FP_REASON_KEY_COMPROMISE, "unit",
                                         NULL, NULL, &count, &e), FP_ERR_NOT_FOUND);
}

/* The CRL query really uses the covering index, and a reopened store has
 * an empty change log.  (A store made before the revocation objects
 * existed gains them by migration: test_store_sqlite.c checks that.) */
static void test_schema_upgrade(void **state)
{
    fx *f = *state;
    char path[1024], s1[FP_SERIAL_HEX_MAX];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    fp_error e = {0};
    fp_crl_info info;
    int64_t seq = -1;
    bool uses_index = false;
    X509_CRL *crl;

    issue(f, "old", s1);
    assert_int_equal(fp_ca_revoke(f->store, s1, FP_REASON_SUPERSEDED, "unit", &e), 0);
    fp_store_close(f->store);
    snprintf(path, sizeof(path), "%s/fleetpki.db", f->dir);
    assert_int_equal(fp_store_open(path, &f->store, &e), 0);
    assert_int_equal(fp_store_status_seq(f->store, &seq, &e), 0);
    assert_int_equal(seq, 1);
    crl = gen(f, &info, 1);
    assert_int_equal(info.entries, 1);
    X509_CRL_free(crl);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT serial, revoked_at, reason FROM"
                                        " certificates WHERE status = 1 AND ca_id = 'issuing'"
                                        " ORDER BY serial", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 3);
        if (d && strstr(d, "COVERING INDEX cert_revoked_crl"))
            uses_index = true;
        assert_null(d ? strstr(d, "TEMP B-TREE") : NULL); /* no sort */
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(uses_index);
}

static void test_bad_params(void **state)
{
    fx *f = *state;
    fp_crl_params p = {0};
    fp_crl_info info;
    fp_error e = {0};
    BIO *mem = BIO_new(BIO_s_mem());
    X509 *cert = NULL;
    fp_signer *signer = NULL;

    p.ca_id = f->cfg.issuing_id;
    p.issuer = fp_ca_get0_cert(f->ca);
    p.signer = fp_ca_get0_signer(f->ca);
    p.next_update_hours = 0;
    assert_int_equal(fp_crl_generate(f->store, &p, mem, &info, &e), FP_ERR_ARG);
    BIO_free(mem);
    assert_int_equal(fp_crl_load_ca(&f->cfg, "nope", NULL, 0, &cert, &signer, &e),
                     FP_ERR_NOT_FOUND);
    assert_null(cert);
    assert_int_equal(fp_crl_load_ca(&f->cfg, f->cfg.root_id, NULL, 0, &cert, &signer, &e), 0);
    X509_free(cert);
    fp_signer_free(signer);
}

/* Other key types sign through the same stream (Ed25519 one-shot). */
static void test_key_types(void **state)
{
    fx *f = *state;
    char s[FP_SERIAL_HEX_MAX];
    fp_error e = {0};
    fp_crl_info info;
    X509_CRL *crl;

    issue(f, "k", s);
    assert_int_equal(fp_ca_revoke(f->store, s, FP_REASON_KEY_COMPROMISE, "unit", &e), 0);
    crl = gen(f, &info, 3);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(fp_ca_get0_cert(f->ca))), 1);
    assert_non_null(find(crl, s));
    X509_CRL_free(crl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_crl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_reasons_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_and_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_to_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_by_cn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_by_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_types, setup_ed, teardown),
        cmocka_unit_test_setup_teardown(test_key_types, setup_rsa, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
