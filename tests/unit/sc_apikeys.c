/* sc_apikeys.c - store conformance: API keys, token list and delete (see
 * store_conformance.h). */
#define _GNU_SOURCE
#include "store_conformance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/apikey.h"
#include "common/util.h"

static int count_key(void *arg, const fp_apikey_rec *k)
{
    (void)k;
    (*(int *)arg)++;
    return FP_ERR_OK;
}

static int count_token(void *arg, const fp_token_rec *t)
{
    (void)t;
    (*(int *)arg)++;
    return FP_ERR_OK;
}

static fp_apikey_rec mkkey(const char *id, const char *project, bool ro)
{
    fp_apikey_rec k;
    memset(&k, 0, sizeof(k));
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.project, sizeof(k.project), "%s", project);
    k.read_only = ro;
    memset(k.hash, 0x33, sizeof(k.hash));
    k.created_at = 1000;
    return k;
}

void test_apikeys(void **state)
{
    fx *f = *state;
    fp_audit_event ev = {"test", "apikey.x", "", "", ""};
    fp_apikey_rec k = mkkey("k1", FP_PROJECT_DEFAULT, true), a = mkkey("k2", "", false), got;
    fp_apikey_rec bad = mkkey("k3", "nope", false), badname = mkkey("k4", "Bad Name", false);
    fp_error e = {0};
    int n = 0;

    assert_int_equal(fp_store_apikey_put(f->s, &k, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_apikey_put(f->s, &a, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_apikey_put(f->s, &k, &ev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_apikey_put(f->s, &bad, &ev, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_apikey_put(f->s, &badname, &ev, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_apikey_get(f->s, "k1", &got, &e), FP_ERR_OK);
    assert_string_equal(got.project, FP_PROJECT_DEFAULT);
    assert_true(got.read_only);
    assert_memory_equal(got.hash, k.hash, FP_APIKEY_HASH_LEN);
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.revoked_at, 0);
    assert_int_equal(fp_store_apikey_get(f->s, "k2", &got, &e), FP_ERR_OK);
    assert_string_equal(got.project, "");
    assert_false(got.read_only);
    assert_int_equal(fp_store_apikey_get(f->s, "k9", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_apikey_list(f->s, NULL, count_key, &n, &e), FP_ERR_OK);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(fp_store_apikey_list(f->s, FP_PROJECT_DEFAULT, count_key, &n, &e), FP_ERR_OK);
    assert_int_equal(n, 1);
    /* revoke: once, audited; again is a state error; unknown is not found */
    assert_int_equal(fp_store_apikey_revoke(f->s, "k1", 2000, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_apikey_get(f->s, "k1", &got, &e), FP_ERR_OK);
    assert_int_equal(got.revoked_at, 2000);
    assert_int_equal(fp_store_apikey_revoke(f->s, "k1", 3000, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_apikey_revoke(f->s, "k9", 3000, &ev, &e), FP_ERR_NOT_FOUND);
    /* 2 puts + 1 revoke audited; the refused calls wrote nothing */
    assert_int_equal(sc_audit_count(f->s, "apikey.x", NULL, NULL), 3);
    sc_assert_audit_ok(f->s, 3);
}

void test_apikey_secret_matches(void **state)
{
    char id[FP_APIKEY_ID_MAX], token[FP_APIKEY_TOKEN_MAX], pid[FP_APIKEY_ID_MAX];
    const char *secret = NULL;
    fp_apikey_rec k;
    fp_error e = {0};

    (void)state;
    memset(&k, 0, sizeof(k));
    assert_int_equal(fp_apikey_generate(id, token, k.hash, &e), FP_ERR_OK);
    assert_true(fp_apikey_parse(token, pid, &secret));
    assert_string_equal(pid, id);
    assert_true(fp_apikey_matches(&k, secret));
    token[FP_APIKEY_TOKEN_MAX - 2] = token[FP_APIKEY_TOKEN_MAX - 2] == '0' ? '1' : '0';
    assert_true(fp_apikey_parse(token, pid, &secret));
    assert_false(fp_apikey_matches(&k, secret));
    assert_false(fp_apikey_parse("", pid, &secret));
    assert_false(fp_apikey_parse("0123456789abcdef", pid, &secret));
    token[FP_APIKEY_ID_LEN] = ':';
    assert_false(fp_apikey_parse(token, pid, &secret));
    token[FP_APIKEY_ID_LEN] = '.';
    token[0] = 'A'; /* uppercase is not of the shape */
    assert_false(fp_apikey_parse(token, pid, &secret));
}

void test_token_list_delete(void **state)
{
    fx *f = *state;
    fp_audit_event ev = {"test", "token.delete", "t1", "", FP_PROJECT_DEFAULT};
    fp_error e = {0};
    int n = 0;

    sc_project_put(f->s, "other");
    sc_token_put(f->s, FP_PROJECT_DEFAULT, "t1", 1, 0);
    sc_token_put(f->s, FP_PROJECT_DEFAULT, "t2", 1, 0);
    sc_token_put(f->s, "other", "t3", 1, 0);
    assert_int_equal(fp_store_token_list(f->s, FP_PROJECT_DEFAULT, count_token, &n, &e), FP_ERR_OK);
    assert_int_equal(n, 2);
    /* another project's token is not found, exactly as an absent one */
    assert_int_equal(fp_store_token_delete(f->s, FP_PROJECT_DEFAULT, "t3", &ev, &e),
                     FP_ERR_NOT_FOUND);
    assert_int_equal(sc_token_uses(f->s, "other", "t3"), 1);
    assert_int_equal(fp_store_token_delete(f->s, FP_PROJECT_DEFAULT, "t1", &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_delete(f->s, FP_PROJECT_DEFAULT, "t1", &ev, &e),
                     FP_ERR_NOT_FOUND);
    n = 0;
    assert_int_equal(fp_store_token_list(f->s, FP_PROJECT_DEFAULT, count_token, &n, &e), FP_ERR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sc_audit_count(f->s, "token.delete", "t1", FP_PROJECT_DEFAULT), 1);
}
