/*
 * init.c - `fleetpki init`: a fresh CA hierarchy in a directory.
 *
 * Order is chosen so an interrupted init is never mistaken for a working
 * one and never loses a key: keys and certificates first (each created
 * with O_EXCL, keys 0600), the store next, the config file last.  A later
 * init refuses while any of these files exists; with --force it moves them
 * into DIR/backup-<time>/ and starts over.  Nothing is ever deleted.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../keys/p11.h"
#include "../keys/offline.h"
#include "../keys/p11uri.h"
#include "../x509/x509util.h"
#include "build.h"
#include "ca.h"
#include "mint.h"

static const char *const ca_files[] = {
    FP_CONFIG_FILE, "root.key", "root.crt", "issuing.key", "issuing.crt",
    "tls.key",      "tls.crt",  "ocsp.key", "ocsp.crt",    "audit.key", "audit.pub",
    "fleetpki.db",
    "fleetpki.db-wal", "fleetpki.db-shm", NULL,
};

static int existing_files(const char *dir)
{
    char path[FP_PATH_MAX];
    int n = 0;
    for (int i = 0; ca_files[i]; i++)
        if (fp_path_join(path, sizeof(path), dir, ca_files[i], NULL) == FP_ERR_OK &&
            fp_file_exists(path))
            n++;
    return n;
}

static int move_aside(fp_init_opts *o, fp_error *err)
{
    char stamp[32], from[FP_PATH_MAX], to[FP_PATH_MAX + 64];
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "backup-%Y%m%dT%H%M%SZ", &tm);
    if ((rc = fp_path_join(o->backup_dir, sizeof(o->backup_dir), o->dir, stamp, err)) != FP_ERR_OK)
        return rc;
    if (mkdir(o->backup_dir, 0700) != 0)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", o->backup_dir, strerror(errno));
    for (int i = 0; ca_files[i]; i++) {
        if (fp_path_join(from, sizeof(from), o->dir, ca_files[i], err) != FP_ERR_OK)
            return FP_ERR_TOO_LARGE;
        if (!fp_file_exists(from))
            continue;
        snprintf(to, sizeof(to), "%s/%s", o->backup_dir, ca_files[i]);
        if (rename(from, to) != 0)
            return fp_err_set(err, FP_ERR_IO, "moving %s aside: %s", from, strerror(errno));
    }
    return FP_ERR_OK;
}

static int write_certs(const char *path, X509 *leaf, X509 *chain, fp_error *err)
{
    char *a = NULL, *b = NULL, *both = NULL;
    size_t alen = 0, blen = 0;
    int rc;

    if ((rc = fp_cert_to_pem(leaf, &a, &alen, err)) != FP_ERR_OK)
        goto out;
    if (chain != NULL && (rc = fp_cert_to_pem(chain, &b, &blen, err)) != FP_ERR_OK)
        goto out;
    both = malloc(alen + blen + 1);
    if (both == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    memcpy(both, a, alen);
    if (blen)
        memcpy(both + alen, b, blen);
    rc = fp_file_create(path, both, alen + blen, 0644, err);
out:
    free(a);
    free(b);
    free(both);
    return rc;
}

/*
 * A new CA key named role: in the token when o->pkcs11 is set (its URI
 * goes to ref, the config option), else generated here and written to the
 * file ref already names.
 */
static int new_key(const fp_init_opts *o, const fp_config *cfg, const char *algo,
                   const char *role, char *ref, size_t refsize, EVP_PKEY **key, fp_error *err)
{
    char path[FP_PATH_MAX], label[FP_P11_ATTR_MAX + 32];
    fp_p11_uri u;
    int rc;

    *key = NULL;
    if (o->pkcs11 == NULL) {
        if ((rc = fp_key_generate(algo, key, err)) != FP_ERR_OK ||
            (rc = fp_config_path(cfg, ref, path, sizeof(path), err)) != FP_ERR_OK ||
            (rc = fp_key_write(path, *key, o->pass, o->passlen, err)) != FP_ERR_OK) {
            EVP_PKEY_free(*key);
            *key = NULL;
        }
        return rc;
    }
    if ((rc = fp_p11_uri_parse(o->pkcs11, &u, err)) != FP_ERR_OK)
        return rc;
    snprintf(label, sizeof(label), "%s-%s", u.object[0] ? u.object : "fleetpki", role);
    if ((rc = fp_p11_uri_with_object(o->pkcs11, label, path, sizeof(path), err)) != FP_ERR_OK)
        return rc;
    if (strlen(path) >= refsize)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "pkcs11 URI too long");
    if ((rc = fp_p11_generate(path, algo, NULL, key, err)) != FP_ERR_OK)
        return rc;
    snprintf(ref, refsize, "%s", path);
    return FP_ERR_OK;
}

/* Issue a service certificate (TLS server, OCSP signer) through the normal
 * CA path, so it is recorded and audited like any other. */
static int make_service_cert(fp_ca *ca, fp_store *store, fp_config *cfg,
                             const fp_init_opts *o, const char *algo, const char *profile,
                             const char *cn, const char *sans, char *keyref, size_t keyref_size,
                             bool in_token, const char *certfile, fp_error *err)
{
    EVP_PKEY *key = NULL;
    X509_REQ *req = NULL;
    X509 *cert = NULL;
    char path[FP_PATH_MAX];
    fp_issue_req ir;
    int rc;

    /* the key is written (or made in the token) before the certificate:
     * an interrupted init leaves an unused key, never a certificate whose
     * key is lost */
    if (in_token) {
        if ((rc = new_key(o, cfg, algo, "ocsp", keyref, keyref_size, &key, err)) != FP_ERR_OK)
            goto out;
    } else {
        fp_init_opts files = *o;
        files.pkcs11 = NULL;
        if ((rc = new_key(&files, cfg, algo, "", keyref, keyref_size, &key, err)) != FP_ERR_OK)
            goto out;
    }
    if ((rc = fp_mint_req(key, o->org, cn, sans, &req, err)) != FP_ERR_OK)
        goto out;
    ir = (fp_issue_req){.csr = req, .profile = profile, .actor = "cli:init", .via = "init"};
    if ((rc = fp_ca_issue(ca, store, &ir, &cert, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, certfile, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = write_certs(path, cert, fp_ca_get0_cert(ca), err)) != FP_ERR_OK)
        goto out;
out:
    X509_free(cert);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return rc;
}

/* The audit checkpoint key (audit/checkpoint.h): a CA-grade key like the
 * others (in the token with --pkcs11), its public half beside it for
 * `audit verify --checkpoints`. */
static int make_audit_key(fp_config *cfg, const fp_init_opts *o, const char *algo, fp_error *err)
{
    EVP_PKEY *key = NULL;
    BIO *mem = BIO_new(BIO_s_mem());
    char path[FP_PATH_MAX], *pem = NULL;
    long len;
    int rc;

    snprintf(cfg->audit_key, sizeof(cfg->audit_key), "audit.key");
    if (mem == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if ((rc = new_key(o, cfg, algo, "audit", cfg->audit_key, sizeof(cfg->audit_key), &key,
                      err)) != FP_ERR_OK)
        goto out;
    if (!PEM_write_bio_PUBKEY(mem, key) || (len = BIO_get_mem_data(mem, &pem)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "audit public key");
        goto out;
    }
    if ((rc = fp_config_path(cfg, cfg->audit_pubkey, path, sizeof(path), err)) == FP_ERR_OK)
        rc = fp_file_create(path, pem, (size_t)len, 0644, err);
out:
    BIO_free(mem);
    EVP_PKEY_free(key);
    return rc;
}

static int write_config(const fp_config *cfg, fp_error *err)
{
    char path[FP_PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc;

    if (f == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    fp_config_write(cfg, f);
    fclose(f);
    rc = fp_config_path(cfg, FP_CONFIG_FILE, path, sizeof(path), err);
    if (rc == FP_ERR_OK)
        rc = fp_file_create(path, text, len, 0644, err);
    free(text);
    return rc;
}

/* Project "default", which holds the issuing CA init makes.  A fresh
 * store has it already (the store's contract); should it not, it is
 * created here, audited. */
static int store_project_default(fp_store *store, fp_error *err)
{
    fp_project_rec p;
    fp_audit_event ev = {"cli:init", "project.create", FP_PROJECT_DEFAULT, "",
                         FP_PROJECT_DEFAULT};
    int rc = fp_store_project_get(store, FP_PROJECT_DEFAULT, &p, err);
    if (rc == FP_ERR_NOT_FOUND)
        rc = fp_store_project_put(store, FP_PROJECT_DEFAULT, &ev, err);
    return rc;
}

/* Record a CA init made: the root (no project) or the active issuing CA
 * of project "default", whose key is the [ca] config's (key_ref ""). */
static int store_ca(fp_store *store, const char *id, int kind, const char *project,
                    const char *parent, X509 *cert, fp_error *err)
{
    fp_ca_rec r;
    fp_audit_event ev = {"cli:init", "ca.create", id,
                         kind == FP_CA_ROOT ? "{\"role\":\"root\"}" : "{\"role\":\"issuing\"}",
                         project};
    int rc;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.project, sizeof(r.project), "%s", project);
    snprintf(r.parent_id, sizeof(r.parent_id), "%s", parent);
    r.kind = kind;
    r.active = kind == FP_CA_ISSUING;
    r.not_before = fp_asn1_time_unix(X509_get0_notBefore(cert));
    r.not_after = fp_asn1_time_unix(X509_get0_notAfter(cert));
    r.subject = fp_name_string(X509_get_subject_name(cert));
    if (r.subject == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    rc = fp_cert_to_der(cert, &r.der, &r.der_len, err);
    if (rc == FP_ERR_OK)
        rc = fp_store_ca_add(store, &r, &ev, err);
    free(r.subject);
    OPENSSL_free(r.der);
    return rc;
}

int fp_ca_init(fp_init_opts *o, fp_error *err)
{
    fp_config *cfg = NULL;
    EVP_PKEY *root_key = NULL, *iss_key = NULL;
    fp_signer *root_signer = NULL;
    X509 *root = NULL, *iss = NULL;
    fp_store *store = NULL;
    fp_ca *ca = NULL;
    char path[FP_PATH_MAX], cn[256];
    const char *svc_algo;
    int rc;

    o->backup_dir[0] = '\0';
    if (o->algo == NULL)
        o->algo = "p256";
    if (o->org == NULL || !o->org[0])
        o->org = "fleetpki";
    if (strlen(o->org) > 64)
        return fp_err_set(err, FP_ERR_ARG, "--name is longer than 64 characters");
    if (strcmp(o->algo, "p256") && strcmp(o->algo, "p384") && strcmp(o->algo, "ed25519") &&
        strcmp(o->algo, "rsa3072"))
        return fp_err_set(err, FP_ERR_ARG,
                          "unknown --algo '%s': choose p256, p384, ed25519 or rsa3072", o->algo);
    if (o->offline_root != NULL && (o->root_pass == NULL || o->root_passlen == 0))
        return fp_err_set(err, FP_ERR_PASSPHRASE,
                          "--offline-root: the root key must be encrypted: give "
                          "--root-passphrase-file or FLEETPKI_ROOT_PASSPHRASE");
    if (o->pkcs11 != NULL && !strcmp(o->algo, "ed25519"))
        return fp_err_set(err, FP_ERR_ARG, "--pkcs11 keys: choose p256, p384 or rsa3072");
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", o->dir, strerror(errno));
    if (existing_files(o->dir) > 0) {
        if (!o->force)
            return fp_err_set(err, FP_ERR_EXISTS,
                              "%s already holds a CA; refusing to overwrite it "
                              "(--force moves it into a backup directory first)", o->dir);
        if ((rc = move_aside(o, err)) != FP_ERR_OK)
            return rc;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    fp_config_defaults(cfg, o->dir);
    snprintf(cfg->org, sizeof(cfg->org), "%s", o->org);
    cfg->keys_encrypted = o->pass != NULL && o->passlen > 0;
    if (o->store_url != NULL &&
        snprintf(cfg->store_url, sizeof(cfg->store_url), "%s", o->store_url) >=
            (int)sizeof(cfg->store_url)) {
        rc = fp_err_set(err, FP_ERR_TOO_LARGE, "--store-url is too long");
        goto out;
    }

    /* root: 20 years, room for issuing + one sub-CA level below it */
    snprintf(cn, sizeof(cn), "%s Root CA", o->org);
    if (o->offline_root != NULL) {
        /* generated here, written only to the offline directory */
        if ((rc = fp_key_generate(o->algo, &root_key, err)) != FP_ERR_OK ||
            (rc = fp_signer_from_key(root_key, &root_signer, err)) != FP_ERR_OK ||
            (rc = fp_mint_ca_cert(o->org, root_key, cn, 7305, 2, NULL, root_signer, &root,
                                  err)) != FP_ERR_OK ||
            (rc = fp_offline_root_write(o->offline_root, root_key, root, o->root_pass,
                                        o->root_passlen, err)) != FP_ERR_OK)
            goto out;
    } else if ((rc = new_key(o, cfg, o->algo, "root", cfg->root_key, sizeof(cfg->root_key),
                             &root_key, err)) != FP_ERR_OK ||
               (rc = fp_signer_from_key(root_key, &root_signer, err)) != FP_ERR_OK ||
               (rc = fp_mint_ca_cert(o->org, root_key, cn, 7305, 2, NULL, root_signer, &root,
                                     err)) != FP_ERR_OK) {
        goto out;
    }
    if ((rc = fp_config_path(cfg, cfg->root_cert, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = write_certs(path, root, NULL, err)) != FP_ERR_OK)
        goto out;
    /* issuing: 10 years, may sign sub-CAs (profile sub-ca, pathLen 0) */
    snprintf(cn, sizeof(cn), "%s Issuing CA 1", o->org);
    if ((rc = new_key(o, cfg, o->algo, "issuing", cfg->issuing_key, sizeof(cfg->issuing_key),
                      &iss_key, err)) != FP_ERR_OK ||
        (rc = fp_mint_ca_cert(o->org, iss_key, cn, 3652, 1, root, root_signer, &iss, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->issuing_cert, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = write_certs(path, iss, NULL, err)) != FP_ERR_OK)
        goto out;

    if ((rc = fp_config_path(cfg, cfg->store_path, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_store_open(path, &store, err)) != FP_ERR_OK)
        goto out;
    if ((rc = store_project_default(store, err)) != FP_ERR_OK ||
        (rc = store_ca(store, cfg->root_id, FP_CA_ROOT, "", "", root, err)) != FP_ERR_OK ||
        (rc = store_ca(store, cfg->issuing_id, FP_CA_ISSUING, FP_PROJECT_DEFAULT, cfg->root_id,
                       iss, err)) != FP_ERR_OK)
        goto out;

    if ((rc = fp_ca_open(cfg, o->pass, o->passlen, &ca, err)) != FP_ERR_OK)
        goto out;
    /* TLS and OCSP keys live online: P-256 unless the operator chose RSA,
     * since Ed25519 server certificates are poorly supported by clients */
    svc_algo = !strcmp(o->algo, "rsa3072") ? "rsa3072" : !strcmp(o->algo, "p384") ? "p384" : "p256";
    snprintf(cn, sizeof(cn), "%s EST server", o->org);
    /* the TLS key stays a file: the network side uses it for every handshake */
    if ((rc = make_service_cert(ca, store, cfg, o, svc_algo, "server", cn,
                                "DNS:localhost,IP:127.0.0.1,IP:::1", cfg->tls_key,
                                sizeof(cfg->tls_key), false, cfg->tls_cert, err)) != FP_ERR_OK)
        goto out;
    snprintf(cn, sizeof(cn), "%s OCSP responder", o->org);
    if ((rc = make_service_cert(ca, store, cfg, o, svc_algo, "ocsp-signer", cn, NULL,
                                cfg->ocsp_key, sizeof(cfg->ocsp_key), o->pkcs11 != NULL,
                                cfg->ocsp_cert, err)) != FP_ERR_OK)
        goto out;
    if ((rc = make_audit_key(cfg, o, svc_algo, err)) != FP_ERR_OK)
        goto out;
    rc = write_config(cfg, err);
out:
    fp_ca_free(ca);
    fp_store_close(store);
    X509_free(root);
    X509_free(iss);
    fp_signer_free(root_signer);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(iss_key);
    free(cfg);
    return rc;
}
