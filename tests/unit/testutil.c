/* testutil.c - see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "common/util.h"
#include "store/store.h"
#include "x509/x509util.h"

char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/fpunit.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rmdir(char *dir)
{
    if (dir != NULL)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

EVP_PKEY *tu_key(const char *algo)
{
    EVP_PKEY *k = NULL;
    assert_int_equal(fp_key_generate(algo, &k, NULL), 0);
    return k;
}

static void add_ext(STACK_OF(X509_EXTENSION) *exts, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, nid, value);
    assert_non_null(e);
    assert_true(sk_X509_EXTENSION_push(exts, e) > 0);
}

X509_REQ *tu_csr(EVP_PKEY *key, const char *subject, const char *sans,
                 int extra_nid, const char *extra_value, const EVP_MD *md)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    char buf[1024], *save = NULL, *tok;

    assert_non_null(req);
    snprintf(buf, sizeof(buf), "%s", subject);
    for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        /* V_ASN1_UTF8STRING, not MBSTRING_UTF8: skip OpenSSL's length
         * table so tests can build the oversize names clients may send */
        assert_true(X509_NAME_add_entry_by_txt(name, tok, V_ASN1_UTF8STRING,
                                               (unsigned char *)eq + 1, -1, -1, 0));
    }
    assert_true(X509_REQ_set_subject_name(req, name));
    assert_true(X509_REQ_set_pubkey(req, key));
    if (sans)
        add_ext(exts, NID_subject_alt_name, sans);
    if (extra_nid)
        add_ext(exts, extra_nid, extra_value);
    if (sk_X509_EXTENSION_num(exts) > 0)
        assert_true(X509_REQ_add_extensions(req, exts));
    if (md == NULL)
        md = fp_key_sig_md(key);
    assert_true(X509_REQ_sign(req, key, md) > 0);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(name);
    return req;
}

void tu_ca_init(tu_ca *f, const char *org, const char *algo)
{
    fp_init_opts o = {0};
    fp_error e = {0};
    char path[1024];

    memset(f, 0, sizeof(*f));
    f->dir = tu_tmpdir();
    o.dir = f->dir;
    o.org = org;
    o.algo = algo;
    if (fp_ca_init(&o, &e) != 0)
        fail_msg("init: %s", e.msg);
    assert_int_equal(fp_config_load(&f->cfg, f->dir, &e), 0);
    snprintf(path, sizeof(path), "%s/fleetpki.db", f->dir);
    assert_int_equal(fp_store_open(path, &f->store, &e), 0);
    assert_int_equal(fp_ca_open(&f->cfg, NULL, 0, &f->ca, &e), 0);
    f->key = tu_key("p256");
}

void tu_ca_clear(tu_ca *f)
{
    fp_ca_free(f->ca);
    fp_store_close(f->store);
    EVP_PKEY_free(f->key);
    tu_rmdir(f->dir);
    memset(f, 0, sizeof(*f));
}

void tu_token_put(fp_store *s, const char *id, int uses, int64_t expires_at)
{
    fp_token_rec t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    strcpy(t.project, FP_PROJECT_DEFAULT);
    strcpy(t.label, "default");
    t.uses_left = uses;
    t.expires_at = expires_at;
    t.created_at = fp_now();
    assert_int_equal(fp_store_token_put(s, &t, NULL, NULL), 0);
}

int tu_token_uses(fp_store *s, const char *id)
{
    fp_token_rec t;
    assert_int_equal(fp_store_token_get(s, FP_PROJECT_DEFAULT, id, &t, NULL), 0);
    return t.uses_left;
}

bool tu_cert_stored(fp_store *s, const char *serial)
{
    fp_cert_rec got;
    int rc = fp_store_cert_get(s, serial, &got, NULL);
    if (rc == FP_ERR_OK)
        fp_cert_rec_clear(&got);
    else
        assert_int_equal(rc, FP_ERR_NOT_FOUND);
    return rc == FP_ERR_OK;
}
