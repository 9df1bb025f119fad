/* test_cmp.c - the parts of src/cmp/ below OpenSSL's CMP server: the
 * transaction table (replay, labels, one holder at a time), the MAC
 * secret derivation, and the header peek on real requests (the seeds of
 * fuzz/corpus/cmp, made by openssl cmp). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmp/cmp.h"
#include "common/util.h"

static char *dir;
static fp_config cfg;
static cmp_state st;

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    fp_config_defaults(&cfg, dir);
    memset(&st, 0, sizeof(st));
    st.cfg = &cfg;
    st.confirm_wait = 300;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmdir(dir);
    return 0;
}

static void test_txn_replay_and_labels(void **state)
{
    cmp_txns *t = NULL;
    cmp_txn *tx = NULL, *again = NULL;
    unsigned char tid[16] = "0123456789abcdef", long_tid[CMP_TID_MAX + 1] = {0};
    bool other = false;

    (void)state;
    assert_int_equal(cmp_txns_new(&st, &t, NULL), FP_ERR_OK);
    assert_int_equal(cmp_txn_begin(t, tid, sizeof(tid), &tx), FP_ERR_OK);
    tx->label = 3;
    /* the same transactionID again, while busy: a replay */
    assert_int_equal(cmp_txn_begin(t, tid, sizeof(tid), &again), FP_ERR_EXISTS);
    assert_null(again);
    /* busy: no continuation can take it */
    assert_null(cmp_txn_take(t, tid, sizeof(tid), 3, &other));
    cmp_txn_put(t, tx, CMP_TX_CONFIRM, fp_now() + 100);
    /* another label's continuation does not get it */
    assert_null(cmp_txn_take(t, tid, sizeof(tid), 4, &other));
    assert_true(other);
    again = cmp_txn_take(t, tid, sizeof(tid), 3, &other);
    assert_ptr_equal(again, tx);
    assert_false(other);
    /* one holder at a time */
    assert_null(cmp_txn_take(t, tid, sizeof(tid), 3, &other));
    cmp_txn_put(t, tx, CMP_TX_DONE, 0);
    /* finished: remembered, not open */
    assert_null(cmp_txn_take(t, tid, sizeof(tid), 3, &other));
    assert_int_equal(cmp_txn_begin(t, tid, sizeof(tid), &again), FP_ERR_EXISTS);
    /* transactionIDs outside 1..64 octets */
    assert_int_equal(cmp_txn_begin(t, tid, 0, &again), FP_ERR_ARG);
    assert_int_equal(cmp_txn_begin(t, long_tid, sizeof(long_tid), &again), FP_ERR_ARG);
    /* an open transaction past its deadline cannot be continued */
    tid[0] = 'X';
    assert_int_equal(cmp_txn_begin(t, tid, sizeof(tid), &tx), FP_ERR_OK);
    tx->label = 0;
    cmp_txn_put(t, tx, CMP_TX_POLL, fp_now() - 1);
    assert_null(cmp_txn_take(t, tid, sizeof(tid), 0, &other));
    cmp_txns_free(t);
}

static void test_secret(void **state)
{
    unsigned char k1[32], k2[32], h1[FP_TOKEN_HASH_LEN], h2[FP_TOKEN_HASH_LEN];
    char a[CMP_SECRET_MAX], b[CMP_SECRET_MAX];

    (void)state;
    memset(k1, 1, sizeof(k1));
    memset(k2, 2, sizeof(k2));
    memset(h1, 3, sizeof(h1));
    memset(h2, 4, sizeof(h2));
    assert_int_equal(cmp_token_secret(k1, "abc", h1, a, NULL), FP_ERR_OK);
    assert_int_equal(strlen(a), 43); /* 256 bits, base64url, no padding */
    assert_null(strpbrk(a, "+/="));
    assert_int_equal(cmp_token_secret(k1, "abc", h1, b, NULL), FP_ERR_OK);
    assert_string_equal(a, b);
    assert_int_equal(cmp_token_secret(k2, "abc", h1, b, NULL), FP_ERR_OK);
    assert_string_not_equal(a, b); /* the server key matters */
    assert_int_equal(cmp_token_secret(k1, "abd", h1, b, NULL), FP_ERR_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(cmp_token_secret(k1, "abc", h2, b, NULL), FP_ERR_OK);
    assert_string_not_equal(a, b);
    /* the key file: made once, read back the same */
    unsigned char f1[32], f2[32];
    assert_int_equal(cmp_mac_key_load(&cfg, f1, NULL), FP_ERR_OK);
    assert_int_equal(cmp_mac_key_load(&cfg, f2, NULL), FP_ERR_OK);
    assert_memory_equal(f1, f2, 32);
}

static unsigned char *seed(const char *name, size_t *len)
{
    char path[1024];
    unsigned char *data = NULL;
    snprintf(path, sizeof(path), "%s/%s", FP_CMP_CORPUS, name);
    assert_int_equal(fp_file_read(path, 1 << 20, &data, len, NULL), FP_ERR_OK);
    return data;
}

static void test_peek(void **state)
{
    size_t len = 0;
    unsigned char *d;
    cmp_peek pk;

    (void)state;
    d = seed("ir-1", &len);
    assert_int_equal(cmp_peek_msg(d, len, &pk, NULL), FP_ERR_OK);
    assert_int_equal(pk.prot_nid, NID_id_PasswordBasedMAC);
    assert_int_equal(pk.kid_len, 16);
    assert_memory_equal(pk.kid, "f0220000000c0001", 16);
    assert_true(pk.has_time);
    assert_int_equal(pk.nonce_len, 16); /* senderNonce: 128 bits (RFC 4210 5.1.1) */
    cmp_peek_clear(&pk);
    /* every prefix is refused, none read out of bounds (ASan) */
    for (size_t n = 0; n < len; n++)
        assert_int_not_equal(cmp_peek_msg(d, n, &pk, NULL), FP_ERR_OK);
    free(d);

    d = seed("cr-sig-1", &len);
    assert_int_equal(cmp_peek_msg(d, len, &pk, NULL), FP_ERR_OK);
    assert_int_equal(pk.prot_nid, NID_ecdsa_with_SHA256);
    assert_non_null(pk.extra);
    assert_true(sk_X509_num(pk.extra) >= 1);
    cmp_peek_clear(&pk);
    free(d);

    d = seed("unprotected-1", &len);
    assert_int_equal(cmp_peek_msg(d, len, &pk, NULL), FP_ERR_OK);
    assert_int_equal(pk.prot_nid, NID_undef);
    assert_null(pk.extra);
    cmp_peek_clear(&pk);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_txn_replay_and_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
