/* rollover.c - root key rollover; see rollover.h. */
#define _POSIX_C_SOURCE 200809L
#include "rollover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/util.h"
#include "../keys/offline.h"
#include "../keys/p11uri.h"
#include "../x509/x509util.h"
#include "detail.h"
#include "mint.h"

static const char *const files[] = {"new-root.crt", "newwithold.crt", "oldwithnew.crt"};

static int write_pem(const char *dir, const char *name, X509 *x, fp_error *err)
{
    char path[FP_PATH_MAX];
    int rc;
    if ((rc = fp_path_join(path, sizeof(path), dir, name, err)) == FP_ERR_OK)
        rc = fp_cert_write_pem(path, x, err);
    return rc;
}

/* "<org> Root CA" -> "<org> Root CA G2", "... G2" -> "... G3": the new root
 * needs a name of its own, or chains could not tell the two apart. */
static void next_cn(X509 *old, char *cn, size_t size)
{
    char cur[200] = "";
    int n = 0;
    char *g;
    X509_NAME_get_text_by_NID(X509_get_subject_name(old), NID_commonName, cur, sizeof(cur));
    g = strrchr(cur, ' ');
    if (g != NULL && g[1] == 'G' && sscanf(g + 2, "%d", &n) == 1 && n > 0) {
        *g = '\0';
        snprintf(cn, size, "%s G%d", cur, n + 1);
    } else {
        snprintf(cn, size, "%s G2", cur[0] ? cur : "Root CA");
    }
}

/* The certificate as relying parties see it, decoded from its DER (the
 * object fp_cert_build assembles carries no decoded public key). */
static int redecode(X509 **x, fp_error *err)
{
    unsigned char *der = NULL;
    size_t len = 0;
    X509 *y;
    int rc = fp_cert_to_der(*x, &der, &len, err);
    if (rc != FP_ERR_OK)
        return rc;
    y = fp_cert_from_der(der, len);
    OPENSSL_free(der);
    if (y == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "new root certificate does not decode");
    X509_free(*x);
    *x = y;
    return FP_ERR_OK;
}

int fp_root_rollover(const fp_admin *a, const fp_rollover_opts *o, fp_error *err)
{
    const fp_config *cfg = a->cfg;
    char path[FP_PATH_MAX], rdir[FP_PATH_MAX], cn[256];
    X509 *old = NULL, *new_root = NULL, *nwo = NULL, *own = NULL;
    fp_signer *old_signer = NULL, *new_signer = NULL;
    EVP_PKEY *key = NULL;
    char *detail = NULL;
    fp_audit_event ev;
    int rc;

    if ((rc = fp_config_path(cfg, cfg->root_cert, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_cert_read(path, &old, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, FP_ROLLOVER_DIR, rdir, sizeof(rdir), err)) != FP_ERR_OK)
        goto out;
    if (fp_file_exists(rdir)) {
        rc = fp_err_set(err, FP_ERR_EXISTS, "%s exists: a rollover was made already", rdir);
        goto out;
    }
    if (o->old_key != NULL) {
        rc = fp_offline_root_open(o->old_key, o->old_pass, o->old_passlen, old, &old_signer, err);
    } else if ((rc = fp_config_path(cfg, cfg->root_key, path, sizeof(path), err)) == FP_ERR_OK) {
        if (!fp_p11_uri_is(path) && !fp_file_exists(path))
            rc = fp_err_set(err, FP_ERR_STATE, "the root key is offline: give it with --root-key");
        else if ((rc = fp_signer_open_file(path, a->pass, a->passlen, &old_signer, err)) ==
                 FP_ERR_OK)
            rc = fp_signer_check_cert(old_signer, old, err);
    }
    if (rc != FP_ERR_OK)
        goto out;
    next_cn(old, cn, sizeof(cn));
    if ((rc = fp_key_generate(o->algo ? o->algo : "p256", &key, err)) != FP_ERR_OK ||
        (rc = fp_signer_from_key(key, &new_signer, err)) != FP_ERR_OK ||
        (rc = fp_mint_ca_cert(cfg->org, key, cn, 7305, 2, NULL, new_signer, &new_root, err)) !=
            FP_ERR_OK ||
        (rc = redecode(&new_root, err)) != FP_ERR_OK ||
        (rc = fp_cross_cert(new_root, old, old_signer, &nwo, err)) != FP_ERR_OK ||
        (rc = fp_cross_cert(old, new_root, new_signer, &own, err)) != FP_ERR_OK)
        goto out;
    /* the new key first, offline: without it the rollover is useless */
    if ((rc = fp_offline_root_write(o->new_dir, key, new_root, o->new_pass, o->new_passlen,
                                    err)) != FP_ERR_OK)
        goto out;
    if (mkdir(rdir, 0755) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "%s: %s", rdir, strerror(errno));
        goto out;
    }
    if ((rc = write_pem(rdir, files[0], new_root, err)) != FP_ERR_OK ||
        (rc = write_pem(rdir, files[1], nwo, err)) != FP_ERR_OK ||
        (rc = write_pem(rdir, files[2], own, err)) != FP_ERR_OK)
        goto out;
    detail = fp_audit_detail("new_root", cn, "new_root_dir", o->new_dir, NULL);
    ev = (fp_audit_event){a->actor, "root.rollover", cfg->root_id, detail ? detail : "", ""};
    rc = fp_store_audit_append(a->store, &ev, err);
out:
    free(detail);
    X509_free(old);
    X509_free(new_root);
    X509_free(nwo);
    X509_free(own);
    fp_signer_free(old_signer);
    fp_signer_free(new_signer);
    EVP_PKEY_free(key);
    return rc;
}

int fp_rollover_certs(const fp_config *cfg, STACK_OF(X509) *chain, fp_error *err)
{
    char dir[FP_PATH_MAX], path[FP_PATH_MAX];
    int rc;

    if ((rc = fp_config_path(cfg, FP_ROLLOVER_DIR, dir, sizeof(dir), err)) != FP_ERR_OK)
        return rc;
    if (!fp_file_exists(dir))
        return FP_ERR_OK;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        X509 *x = NULL;
        if ((rc = fp_path_join(path, sizeof(path), dir, files[i], err)) != FP_ERR_OK ||
            (rc = fp_cert_read(path, &x, err)) != FP_ERR_OK)
            return rc;
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        }
    }
    return FP_ERR_OK;
}
