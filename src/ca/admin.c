/* admin.c - projects, CA creation and import, trust roots; see admin.h. */
#define _POSIX_C_SOURCE 200809L
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../keys/offline.h"
#include "../keys/p11.h"
#include "../keys/p11uri.h"
#include "../x509/x509util.h"
#include "build.h"
#include "caset.h"
#include "detail.h"
#include "mint.h"

#define MAX_BUNDLE 16            /* certificates in a root add file */
#define MAX_BUNDLE_BYTES (256 * 1024)
#define ISSUING_DAYS 3652        /* as init's issuing CA: 10 years */

/* ---- files ---- */

static int ca_dir(const fp_config *cfg, const char *id, char *buf, size_t size, fp_error *err)
{
    char top[FP_PATH_MAX];
    int rc;

    if ((rc = fp_config_path(cfg, "ca", top, sizeof(top), err)) != FP_ERR_OK ||
        (rc = fp_path_join(buf, size, top, id, err)) != FP_ERR_OK)
        return rc;
    if (mkdir(top, 0700) != 0 && errno != EEXIST)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", top, strerror(errno));
    /* a directory left by an interrupted attempt is reused: its files are
     * created with O_EXCL, so nothing in it is ever overwritten */
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", buf, strerror(errno));
    return FP_ERR_OK;
}

/* ---- ids ---- */

typedef struct {
    const char *project;
    int kind;
    int n;
} kind_count;

static int count_kind(void *arg, const fp_ca_rec *r)
{
    kind_count *k = arg;
    if (r->kind == k->kind && !strcmp(r->project, k->project))
        k->n++;
    return FP_ERR_OK;
}

/* "<project>-<n>", the first n not taken by a row or a directory. */
static int next_ca_id(const fp_admin *a, const char *project, char id[64], fp_error *err)
{
    kind_count k = {project, FP_CA_ISSUING, 0};
    int rc = fp_store_ca_list(a->store, project, -1, count_kind, &k, err);

    if (rc != FP_ERR_OK)
        return rc;
    for (int n = k.n + 1; n < k.n + 1000; n++) {
        char path[FP_PATH_MAX];
        fp_ca_rec r;
        fp_error e = {0};
        int w = snprintf(id, 64, "%s-%d", project, n);
        if (w < 0 || w >= 64)
            return fp_err_set(err, FP_ERR_ARG, "project name too long for a CA id");
        rc = fp_store_ca_get(a->store, id, &r, &e);
        if (rc == FP_ERR_OK) {
            fp_ca_rec_clear(&r);
            continue;
        }
        if (rc != FP_ERR_NOT_FOUND) {
            if (err != NULL)
                *err = e;
            return rc;
        }
        if (fp_caset_file(a->cfg, id, "ca.key", path, sizeof(path), err) != FP_ERR_OK)
            return FP_ERR_TOO_LARGE;
        if (!fp_file_exists(path))
            return FP_ERR_OK;
    }
    return fp_err_set(err, FP_ERR_STATE, "no free CA id for project '%s'", project);
}

/* ---- the checks a CA certificate handed to us must pass ---- */

static int check_ca_cert(X509 *cert, const char *what, fp_error *err)
{
    uint32_t ex = X509_get_extension_flags(cert);
    int64_t now = fp_now();

    /* RFC 5280 4.2.1.9: cA TRUE marks a CA; 4.2.1.3: keyCertSign is what
     * lets its key sign certificates */
    if (!(ex & EXFLAG_BCONS) || !(ex & EXFLAG_CA))
        return fp_err_set(err, FP_ERR_CA_CERT,
                          "%s: rule 'ca': not a CA certificate (basicConstraints CA:TRUE missing)",
                          what);
    if (!(ex & EXFLAG_KUSAGE) || !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN))
        return fp_err_set(err, FP_ERR_CA_CERT,
                          "%s: rule 'ca': keyUsage keyCertSign missing", what);
    if (ex & EXFLAG_INVALID)
        return fp_err_set(err, FP_ERR_CA_CERT, "%s: rule 'ca': extensions do not decode", what);
    if (fp_asn1_time_unix(X509_get0_notAfter(cert)) < now)
        return fp_err_set(err, FP_ERR_CA_CERT, "%s: rule 'validity': expired", what);
    if (fp_asn1_time_unix(X509_get0_notBefore(cert)) > now)
        return fp_err_set(err, FP_ERR_CA_CERT, "%s: rule 'validity': not valid yet", what);
    if (fp_x509_cert_key_check(cert, err) != FP_ERR_OK) {
        fp_err_prefix(err, "%s: rule 'key': ", what);
        if (err != NULL)
            err->code = FP_ERR_CA_CERT;
        return FP_ERR_CA_CERT;
    }
    return FP_ERR_OK;
}

/* Verify leaf against anchors (trusted) with untrusted intermediates;
 * X509_V_OK or the verification error. */
static int verify_chain(X509 *leaf, STACK_OF(X509) *anchors, STACK_OF(X509) *untrusted,
                        const char **why)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = 0, code = X509_V_ERR_UNSPECIFIED;

    if (st != NULL && ctx != NULL) {
        for (int i = 0; i < sk_X509_num(anchors); i++)
            X509_STORE_add_cert(st, sk_X509_value(anchors, i));
        if (X509_STORE_CTX_init(ctx, st, leaf, untrusted) == 1) {
            /* the leaf is a CA: check it as one, and any purpose */
            X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
            ok = X509_verify_cert(ctx) == 1;
            code = ok ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
        }
    }
    *why = X509_verify_cert_error_string(code);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return ok ? X509_V_OK : code;
}

/* All certificates of a PEM bundle or one DER certificate, bounded. */
static int read_bundle(const char *path, STACK_OF(X509) **out, fp_error *err)
{
    unsigned char *data = NULL;
    size_t len = 0;
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *b = NULL;
    X509 *x;
    int rc;

    *out = NULL;
    if (sk == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if ((rc = fp_file_read(path, MAX_BUNDLE_BYTES, &data, &len, err)) != FP_ERR_OK)
        goto out;
    if ((b = BIO_new_mem_buf(data, (int)len)) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    while (sk_X509_num(sk) <= MAX_BUNDLE && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
            goto out;
        }
    ERR_clear_error();
    if (sk_X509_num(sk) == 0 && (x = fp_cert_from_der(data, len)) != NULL && !sk_X509_push(sk, x))
        X509_free(x);
    if (sk_X509_num(sk) == 0) {
        rc = fp_err_set(err, FP_ERR_CA_CERT, "%s: no certificate (PEM or DER) in it", path);
        goto out;
    }
    if (sk_X509_num(sk) > MAX_BUNDLE) {
        rc = fp_err_set(err, FP_ERR_TOO_LARGE, "%s: more than %d certificates", path, MAX_BUNDLE);
        goto out;
    }
    *out = sk;
    sk = NULL;
out:
    sk_X509_pop_free(sk, X509_free);
    BIO_free(b);
    free(data);
    return rc;
}

/* ---- rows ---- */

int fp_admin_ca_row_add(const fp_admin *a, const char *id, const char *project,
                        const char *parent, int kind, const char *key_ref, X509 *cert,
                        const char *action, const char *detail, fp_error *err)
{
    fp_ca_rec r;
    fp_audit_event ev = {.actor = a->actor, .action = action, .object = id,
                         .detail = detail ? detail : "", .project = project};
    int rc;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.project, sizeof(r.project), "%s", project);
    snprintf(r.parent_id, sizeof(r.parent_id), "%s", parent ? parent : "");
    snprintf(r.key_ref, sizeof(r.key_ref), "%s", key_ref ? key_ref : "");
    r.kind = kind;
    r.active = false; /* fp_admin_ca_activate makes one the issuer */
    r.subject = fp_name_string(X509_get_subject_name(cert));
    r.not_before = fp_asn1_time_unix(X509_get0_notBefore(cert));
    r.not_after = fp_asn1_time_unix(X509_get0_notAfter(cert));
    r.created_at = fp_now();
    if (r.subject == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if ((rc = fp_cert_to_der(cert, &r.der, &r.der_len, err)) == FP_ERR_OK)
        rc = fp_store_ca_add(a->store, &r, &ev, err);
    free(r.subject);
    OPENSSL_free(r.der);
    return rc;
}

static int activate(const fp_admin *a, const char *id, const char *project, fp_error *err)
{
    fp_audit_event ev = {.actor = a->actor, .action = "ca.activate", .object = id, .detail = "",
                         .project = project};
    return fp_store_ca_activate(a->store, id, &ev, err);
}

static int project_must_exist(const fp_admin *a, const char *project, fp_error *err)
{
    fp_project_rec p;
    int rc = fp_store_project_get(a->store, project, &p, err);
    if (rc == FP_ERR_NOT_FOUND)
        return fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%s' (fleetpki project create %s)",
                          project, project);
    return rc;
}

/* ---- commands ---- */

int fp_admin_ca_create(const fp_admin *a, const char *project, const char *algo,
                       char ca_id[64], fp_error *err)
{
    fp_ca_create_opts o = {.algo = algo};
    return fp_admin_ca_create_ex(a, project, &o, ca_id, err);
}

int fp_admin_ca_create_ex(const fp_admin *a, const char *project, const fp_ca_create_opts *o,
                          char ca_id[64], fp_error *err)
{
    const char *algo = o->algo, *pkcs11 = o->pkcs11;
    const fp_config *cfg = a->cfg;
    char dir[FP_PATH_MAX], keyp[FP_PATH_MAX], certp[FP_PATH_MAX], key_ref[FP_PATH_MAX], cn[256];
    X509 *root = NULL, *cert = NULL;
    fp_signer *root_signer = NULL;
    EVP_PKEY *key = NULL;
    char *detail = NULL;
    int rc;

    if (algo == NULL)
        algo = "p256";
    if ((rc = project_must_exist(a, project, err)) != FP_ERR_OK)
        return rc;
    /* the root signs: its key must be here (and decrypt) */
    if ((rc = fp_config_path(cfg, cfg->root_cert, certp, sizeof(certp), err)) != FP_ERR_OK ||
        (rc = fp_cert_read(certp, &root, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->root_key, keyp, sizeof(keyp), err)) != FP_ERR_OK)
        goto out;
    if (o->root_key != NULL) {
        /* the ceremony: the offline root key, given explicitly */
        if ((rc = fp_offline_root_open(o->root_key, o->root_pass, o->root_passlen, root,
                                       &root_signer, err)) != FP_ERR_OK)
            goto out;
    } else if (!fp_p11_uri_is(keyp) && !fp_file_exists(keyp)) {
        rc = fp_err_set(err, FP_ERR_STATE,
                        "the root key (%s) is offline: bring it for a ceremony with "
                        "--root-key FILE (docs/keys.md), or sign the new CA's request "
                        "elsewhere and bring it in with 'fleetpki ca import'", keyp);
        goto out;
    } else if ((rc = fp_signer_open_file(keyp, a->pass, a->passlen, &root_signer, err)) !=
                   FP_ERR_OK ||
               (rc = fp_signer_check_cert(root_signer, root, err)) != FP_ERR_OK) {
        goto out;
    }
    if ((rc = next_ca_id(a, project, ca_id, err)) != FP_ERR_OK)
        goto out;
    snprintf(key_ref, sizeof(key_ref), "ca/%s/ca.key", ca_id);
    if (pkcs11 != NULL) {
        /* in the token: the key_ref is its URI, and ca.key holds the URI
         * too, for the tools that find a CA's key by its file */
        fp_p11_uri u;
        char label[FP_P11_ATTR_MAX + 80];
        if ((rc = fp_p11_uri_parse(pkcs11, &u, err)) != FP_ERR_OK)
            goto out;
        snprintf(label, sizeof(label), "%s-%s", u.object[0] ? u.object : "fleetpki", ca_id);
        if ((rc = fp_p11_uri_with_object(pkcs11, label, key_ref, sizeof(key_ref), err)) !=
                FP_ERR_OK ||
            (rc = fp_p11_generate(key_ref, algo, NULL, &key, err)) != FP_ERR_OK)
            goto out;
    } else if ((rc = fp_key_generate(algo, &key, err)) != FP_ERR_OK) {
        goto out;
    }
    snprintf(cn, sizeof(cn), "%s %s Issuing CA (%s)", cfg->org, project, ca_id);
    if ((rc = fp_mint_ca_cert(cfg->org, key, cn, ISSUING_DAYS, 0, root, root_signer, &cert,
                              err)) != FP_ERR_OK ||
        (rc = ca_dir(cfg, ca_id, dir, sizeof(dir), err)) != FP_ERR_OK ||
        (rc = fp_caset_file(cfg, ca_id, "ca.key", keyp, sizeof(keyp), err)) != FP_ERR_OK ||
        (rc = fp_caset_file(cfg, ca_id, "ca.crt", certp, sizeof(certp), err)) != FP_ERR_OK)
        goto out;
    if (pkcs11 != NULL) {
        char line[FP_PATH_MAX + 2];
        int n = snprintf(line, sizeof(line), "%s\n", key_ref);
        rc = fp_file_create(keyp, line, (size_t)n, 0600, err);
    } else {
        rc = fp_key_write(keyp, key, a->pass, a->passlen, err);
    }
    if (rc != FP_ERR_OK || (rc = fp_cert_write_pem(certp, cert, err)) != FP_ERR_OK)
        goto out;
    detail = fp_audit_detail("role", "issuing", "algo", algo, "parent", cfg->root_id, NULL);
    if ((rc = fp_admin_ca_row_add(a, ca_id, project, cfg->root_id, FP_CA_ISSUING, key_ref, cert, "ca.create",
                      detail, err)) != FP_ERR_OK ||
        (rc = activate(a, ca_id, project, err)) != FP_ERR_OK)
        goto out;
out:
    free(detail);
    EVP_PKEY_free(key);
    X509_free(cert);
    X509_free(root);
    fp_signer_free(root_signer);
    return rc;
}

int fp_admin_project_create(const fp_admin *a, const char *name, const char *algo,
                            char ca_id[64], fp_error *err)
{
    fp_audit_event ev = {.actor = a->actor, .action = "project.create", .object = name,
                         .detail = "", .project = name};
    int rc = fp_store_project_put(a->store, name, &ev, err);
    if (rc == FP_ERR_DUPLICATE)
        return fp_err_set(err, FP_ERR_EXISTS, "project '%s' exists already", name);
    if (rc != FP_ERR_OK)
        return rc;
    return fp_admin_ca_create(a, name, algo, ca_id, err);
}

int fp_admin_project_create_ex(const fp_admin *a, const char *name, const fp_ca_create_opts *o,
                               char ca_id[64], fp_error *err)
{
    fp_audit_event ev = {.actor = a->actor, .action = "project.create", .object = name,
                         .detail = "", .project = name};
    int rc = fp_store_project_put(a->store, name, &ev, err);
    if (rc == FP_ERR_DUPLICATE)
        return fp_err_set(err, FP_ERR_EXISTS, "project '%s' exists already", name);
    if (rc != FP_ERR_OK)
        return rc;
    return fp_admin_ca_create_ex(a, name, o, ca_id, err);
}

/* The certificates of path (the first one a CA certificate that passes
 * check_ca_cert) for project, which must exist. */
static int read_ca_file(const fp_admin *a, const char *project, const char *path,
                        STACK_OF(X509) **bundle, fp_error *err)
{
    int rc;
    if ((rc = project_must_exist(a, project, err)) != FP_ERR_OK ||
        (rc = read_bundle(path, bundle, err)) != FP_ERR_OK)
        return rc;
    if ((rc = check_ca_cert(sk_X509_value(*bundle, 0), path, err)) != FP_ERR_OK) {
        sk_X509_pop_free(*bundle, X509_free);
        *bundle = NULL;
    }
    return rc;
}

typedef struct {
    X509 *cert;
    const char *project;
    char parent[64];
    STACK_OF(X509) *anchors;
} issuer_find;

/* Collect the root and the project's trust roots; note which one issued
 * cert (its signature is checked by verify_chain). */
static int collect_anchor(void *arg, const fp_ca_rec *r)
{
    issuer_find *f = arg;
    X509 *x;

    /* the shared root (no project): a project's firmware root (fw_ca.h)
     * is a ROOT row with a project and must never anchor a TLS CA */
    if (!((r->kind == FP_CA_ROOT && r->project[0] == '\0') ||
          (r->kind == FP_CA_TRUST_ROOT && !strcmp(r->project, f->project))))
        return FP_ERR_OK;
    if ((x = fp_cert_from_der(r->der, r->der_len)) == NULL)
        return FP_ERR_OK;
    if (!sk_X509_push(f->anchors, x)) {
        X509_free(x);
        return FP_ERR_NOMEM;
    }
    if (!f->parent[0] && X509_check_issued(x, f->cert) == X509_V_OK)
        snprintf(f->parent, sizeof(f->parent), "%s", r->id);
    return FP_ERR_OK;
}

int fp_admin_ca_import(const fp_admin *a, const char *project, const char *cert_path,
                       const char *key_path, char ca_id[64], fp_error *err)
{
    const fp_config *cfg = a->cfg;
    STACK_OF(X509) *bundle = NULL;
    issuer_find f = {0};
    EVP_PKEY *key = NULL;
    fp_signer *signer = NULL;
    char dir[FP_PATH_MAX], keyp[FP_PATH_MAX], certp[FP_PATH_MAX], key_ref[FP_PATH_MAX];
    char *detail = NULL;
    const char *why = NULL;
    X509 *cert;
    int rc;

    if ((rc = read_ca_file(a, project, cert_path, &bundle, err)) != FP_ERR_OK)
        goto out;
    cert = sk_X509_value(bundle, 0);
    /* the key: it must decrypt, obey the key rules and match */
    if ((rc = fp_key_read(key_path, a->pass, a->passlen, &key, err)) != FP_ERR_OK) {
        fp_err_prefix(err, "%s: ", key_path);
        goto out;
    }
    if ((rc = fp_signer_from_key(key, &signer, err)) != FP_ERR_OK)
        goto out;
    if (fp_signer_check_cert(signer, cert, NULL) != FP_ERR_OK) {
        rc = fp_err_set(err, FP_ERR_CA_CERT, "%s: rule 'key-match': the key is not the key of %s",
                        key_path, cert_path);
        goto out;
    }
    f.cert = cert;
    f.project = project;
    if ((f.anchors = sk_X509_new_null()) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = fp_store_ca_list(a->store, NULL, -1, collect_anchor, &f, err)) != FP_ERR_OK)
        goto out;
    if (!f.parent[0]) {
        rc = fp_err_set(err, FP_ERR_CA_CERT,
                        "%s: rule 'chain': not issued by the root or by a trust root of project "
                        "'%s' (fleetpki root add --project %s FILE first)",
                        cert_path, project, project);
        goto out;
    }
    if (verify_chain(cert, f.anchors, NULL, &why) != X509_V_OK) {
        rc = fp_err_set(err, FP_ERR_CA_CERT, "%s: rule 'chain': %s", cert_path, why);
        goto out;
    }
    if ((rc = next_ca_id(a, project, ca_id, err)) != FP_ERR_OK ||
        (rc = ca_dir(cfg, ca_id, dir, sizeof(dir), err)) != FP_ERR_OK ||
        (rc = fp_caset_file(cfg, ca_id, "ca.key", keyp, sizeof(keyp), err)) != FP_ERR_OK ||
        (rc = fp_caset_file(cfg, ca_id, "ca.crt", certp, sizeof(certp), err)) != FP_ERR_OK ||
        /* rewritten under the data directory's own protection */
        (rc = fp_key_write(keyp, key, a->pass, a->passlen, err)) != FP_ERR_OK ||
        (rc = fp_cert_write_pem(certp, cert, err)) != FP_ERR_OK)
        goto out;
    snprintf(key_ref, sizeof(key_ref), "ca/%s/ca.key", ca_id);
    detail = fp_audit_detail("role", "issuing", "imported", cert_path, "parent", f.parent, NULL);
    if ((rc = fp_admin_ca_row_add(a, ca_id, project, f.parent, FP_CA_ISSUING, key_ref, cert, "ca.import",
                      detail, err)) != FP_ERR_OK ||
        (rc = activate(a, ca_id, project, err)) != FP_ERR_OK)
        goto out;
out:
    free(detail);
    sk_X509_pop_free(f.anchors, X509_free);
    sk_X509_pop_free(bundle, X509_free);
    fp_signer_free(signer);
    EVP_PKEY_free(key);
    return rc;
}

int fp_admin_root_add(const fp_admin *a, const char *project, const char *path,
                      char root_id[64], fp_error *err)
{
    STACK_OF(X509) *bundle = NULL, *anchors = NULL, *untrusted = NULL;
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65], *detail = NULL;
    const char *why = NULL;
    X509 *cert;
    int rc;

    if ((rc = read_ca_file(a, project, path, &bundle, err)) != FP_ERR_OK)
        goto out;
    cert = sk_X509_value(bundle, 0);
    /* the chain: up to a self-signed certificate of the file, every
     * signature and validity checked by OpenSSL's verifier */
    anchors = sk_X509_new_null();
    untrusted = sk_X509_new_null();
    if (anchors == NULL || untrusted == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    for (int i = 0; i < sk_X509_num(bundle); i++) {
        X509 *x = sk_X509_value(bundle, i);
        bool self = X509_check_issued(x, x) == X509_V_OK;
        if (!sk_X509_push(self ? anchors : untrusted, x)) {
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
            goto out;
        }
    }
    if (sk_X509_num(anchors) == 0) {
        rc = fp_err_set(err, FP_ERR_CA_CERT,
                        "%s: rule 'chain': not self-signed and the file holds no self-signed "
                        "root to verify it against (append the chain up to the root)", path);
        goto out;
    }
    if (verify_chain(cert, anchors, untrusted, &why) != X509_V_OK) {
        rc = fp_err_set(err, FP_ERR_CA_CERT, "%s: rule 'chain': %s", path, why);
        goto out;
    }
    if (!X509_digest(cert, EVP_sha256(), md, &mdlen)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "fingerprint");
        goto out;
    }
    fp_hex(md, 8, hex);
    if (snprintf(root_id, 64, "%s-root-%s", project, hex) >= 64) {
        rc = fp_err_set(err, FP_ERR_ARG, "project name too long for a root id");
        goto out;
    }
    fp_hex(md, sizeof(md), hex);
    detail = fp_audit_detail("role", "trust-root", "sha256", hex, NULL);
    rc = fp_admin_ca_row_add(a, root_id, project, NULL, FP_CA_TRUST_ROOT, NULL, cert, "root.add", detail, err);
out:
    free(detail);
    sk_X509_free(anchors);   /* borrowed from bundle */
    sk_X509_free(untrusted);
    sk_X509_pop_free(bundle, X509_free);
    return rc;
}

int fp_admin_ca_activate(const fp_admin *a, const char *ca_id, fp_error *err)
{
    fp_ca_rec r;
    int rc = fp_store_ca_get(a->store, ca_id, &r, err);

    if (rc == FP_ERR_NOT_FOUND)
        return fp_err_set(err, FP_ERR_NOT_FOUND, "no CA '%s' ('fleetpki ca list' shows them)", ca_id);
    if (rc != FP_ERR_OK)
        return rc;
    if (r.kind != FP_CA_ISSUING) {
        rc = fp_err_set(err, FP_ERR_STATE, "CA '%s' is not an issuing CA: only issuing CAs sign",
                        ca_id);
    } else {
        /* a firmware signing CA (under a project's own firmware root,
         * src/firmware/fw_ca.h) must never become a TLS issuer */
        fp_ca_rec parent;
        memset(&parent, 0, sizeof(parent));
        if (r.parent_id[0] != '\0' &&
            fp_store_ca_get(a->store, r.parent_id, &parent, NULL) == FP_ERR_OK &&
            parent.kind == FP_CA_ROOT && parent.project[0] != '\0')
            rc = fp_err_set(err, FP_ERR_STATE,
                            "CA '%s' signs firmware (under root '%s'): it never issues TLS "
                            "certificates", ca_id, parent.id);
        else
            rc = activate(a, r.id, r.project, err);
        fp_ca_rec_clear(&parent);
    }
    fp_ca_rec_clear(&r);
    return rc;
}
