/* fw_ca.c - firmware root, signing CA and signer of a project (fw_ca.h). */
#include "fw_ca.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "../ca/caset.h"
#include "../ca/detail.h"
#include "../ca/mint.h"
#include "../common/util.h"
#include "../x509/x509util.h"

#define ROOT_DAYS 7300 /* the anchor outlives many signers */
#define CA_DAYS 3650

int fp_fw_ca_ids(const char *project, char root_id[FP_FW_ID_MAX], char ca_id[FP_FW_ID_MAX],
                 fp_error *err)
{
    int a = snprintf(root_id, FP_FW_ID_MAX, "%s-fw-root", project);
    int b = snprintf(ca_id, FP_FW_ID_MAX, "%s-fw-ca", project);
    if (a < 0 || b < 0 || a >= FP_FW_ID_MAX || b >= FP_FW_ID_MAX)
        return fp_err_set(err, FP_ERR_ARG, "project name too long for firmware CA ids");
    return FP_ERR_OK;
}

static int mkdirs_for(const fp_config *cfg, const char *rel, char *out, size_t size,
                      fp_error *err)
{
    char *slash;
    int rc;

    if ((rc = fp_config_path(cfg, rel, out, size, err)) != FP_ERR_OK)
        return rc;
    /* every directory below the data directory, 0700 (keys live there) */
    for (slash = strchr(out + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(out, 0700) != 0 && errno != EEXIST) {
            rc = fp_err_set(err, FP_ERR_IO, "%s: %s", out, strerror(errno));
            *slash = '/';
            return rc;
        }
        *slash = '/';
    }
    return FP_ERR_OK;
}

/* Key and certificate of CA id into DIR/ca/<id>/ (O_EXCL: never over a key). */
static int write_ca(const fp_admin *a, const char *id, EVP_PKEY *key, X509 *cert,
                    char key_ref[FP_PATH_MAX], fp_error *err)
{
    char rel[FP_PATH_MAX], path[FP_PATH_MAX];
    int rc;

    snprintf(key_ref, FP_PATH_MAX, "ca/%s/ca.key", id);
    snprintf(rel, sizeof(rel), "ca/%s/ca.crt", id);
    if ((rc = mkdirs_for(a->cfg, key_ref, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_key_write(path, key, a->pass, a->passlen, err)) != FP_ERR_OK ||
        (rc = fp_config_path(a->cfg, rel, path, sizeof(path), err)) != FP_ERR_OK)
        return rc;
    return fp_cert_write_pem(path, cert, err);
}

int fp_fw_ca_create(const fp_admin *a, const char *project, fp_error *err)
{
    char root_id[FP_FW_ID_MAX], ca_id[FP_FW_ID_MAX], key_ref[FP_PATH_MAX], cn[256];
    fp_project_rec pr;
    fp_ca_rec existing;
    EVP_PKEY *root_key = NULL, *ca_key = NULL;
    X509 *root = NULL, *ca = NULL;
    fp_signer *root_signer = NULL;
    char *detail = NULL;
    int rc;

    memset(&existing, 0, sizeof(existing));
    if ((rc = fp_fw_ca_ids(project, root_id, ca_id, err)) != FP_ERR_OK ||
        (rc = fp_store_project_get(a->store, project, &pr, err)) != FP_ERR_OK)
        return rc;
    if (fp_store_ca_get(a->store, root_id, &existing, NULL) == FP_ERR_OK) {
        fp_ca_rec_clear(&existing);
        return fp_err_set(err, FP_ERR_EXISTS, "project %s has a firmware CA (%s)", project, root_id);
    }
    /* P-256 throughout: ES256 is what SUIT devices verify (draft-ietf-suit-mti) */
    if ((rc = fp_key_generate("p256", &root_key, err)) != FP_ERR_OK ||
        (rc = fp_key_generate("p256", &ca_key, err)) != FP_ERR_OK ||
        (rc = fp_signer_from_key(root_key, &root_signer, err)) != FP_ERR_OK)
        goto out;
    snprintf(cn, sizeof(cn), "%s %s Firmware Root", a->cfg->org, project);
    if ((rc = fp_mint_ca_cert(a->cfg->org, root_key, cn, ROOT_DAYS, 1, NULL, root_signer, &root,
                              err)) != FP_ERR_OK)
        goto out;
    snprintf(cn, sizeof(cn), "%s %s Firmware Signing CA", a->cfg->org, project);
    if ((rc = fp_mint_ca_cert(a->cfg->org, ca_key, cn, CA_DAYS, 0, root, root_signer, &ca,
                              err)) != FP_ERR_OK)
        goto out;
    /* files before rows (admin.h): a crash leaves unused files at worst */
    if ((rc = write_ca(a, root_id, root_key, root, key_ref, err)) != FP_ERR_OK)
        goto out;
    detail = fp_audit_detail("role", "firmware-root", "algo", "p256", NULL);
    if ((rc = fp_admin_ca_row_add(a, root_id, project, "", FP_CA_ROOT, key_ref, root,
                                  "firmware.ca.create", detail, err)) != FP_ERR_OK)
        goto out;
    free(detail);
    if ((rc = write_ca(a, ca_id, ca_key, ca, key_ref, err)) != FP_ERR_OK)
        goto out;
    detail = fp_audit_detail("role", "firmware-signing-ca", "algo", "p256", "parent", root_id, NULL);
    rc = fp_admin_ca_row_add(a, ca_id, project, root_id, FP_CA_ISSUING, key_ref, ca,
                             "firmware.ca.create", detail, err);
out:
    free(detail);
    fp_signer_free(root_signer);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(ca_key);
    X509_free(root);
    X509_free(ca);
    return rc;
}

int fp_fw_anchor(fp_store *store, const char *project, X509 **out, fp_error *err)
{
    char root_id[FP_FW_ID_MAX], ca_id[FP_FW_ID_MAX];
    fp_ca_rec r;
    int rc;

    *out = NULL;
    if ((rc = fp_fw_ca_ids(project, root_id, ca_id, err)) != FP_ERR_OK)
        return rc;
    memset(&r, 0, sizeof(r));
    if ((rc = fp_store_ca_get(store, root_id, &r, err)) != FP_ERR_OK)
        return rc == FP_ERR_NOT_FOUND
                   ? fp_err_set(err, rc, "project %s has no firmware CA (fleetpki firmware ca create)",
                                project)
                   : rc;
    if (strcmp(r.project, project) != 0 || r.kind != FP_CA_ROOT ||
        (*out = fp_cert_from_der(r.der, r.der_len)) == NULL)
        rc = fp_err_set(err, FP_ERR_STORE, "firmware root %s is not a root of project %s", root_id,
                        project);
    fp_ca_rec_clear(&r);
    return rc;
}

/* Every certificate of a PEM file, in order. */
static int certs_read(const char *path, STACK_OF(X509) **out, fp_error *err)
{
    BIO *b = BIO_new_file(path, "r");
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;

    *out = NULL;
    if (b == NULL || sk == NULL) {
        BIO_free(b);
        sk_X509_free(sk);
        return fp_err_set(err, FP_ERR_IO, "cannot read %s", path);
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            break;
        }
    ERR_clear_error();
    BIO_free(b);
    *out = sk;
    return FP_ERR_OK;
}

static int signer_paths(const fp_config *cfg, const char *project, const char *suffix,
                        char key[FP_PATH_MAX], char crt[FP_PATH_MAX], fp_error *err)
{
    char rel[FP_PATH_MAX];
    int rc;

    snprintf(rel, sizeof(rel), "firmware/%s/signer%s.key", project, suffix);
    if ((rc = mkdirs_for(cfg, rel, key, FP_PATH_MAX, err)) != FP_ERR_OK)
        return rc;
    snprintf(rel, sizeof(rel), "firmware/%s/signer%s.crt", project, suffix);
    return fp_config_path(cfg, rel, crt, FP_PATH_MAX, err);
}

int fp_fw_signer_create(const fp_admin *a, fp_issuer *iss, const char *project, int days,
                        bool replace, char serial[80], fp_error *err)
{
    char root_id[FP_FW_ID_MAX], ca_id[FP_FW_ID_MAX], keyp[FP_PATH_MAX], crtp[FP_PATH_MAX];
    char cn[256], *pem = NULL, *chain_pem = NULL;
    size_t len = 0, chain_len = 0;
    EVP_PKEY *key = NULL;
    X509_REQ *csr = NULL;
    X509 *cert = NULL, *parsed = NULL;
    fp_ca *ca = NULL;
    fp_issue_req req;
    unsigned char *der = NULL;
    size_t der_len = 0;
    int rc;

    if ((rc = fp_fw_ca_ids(project, root_id, ca_id, err)) != FP_ERR_OK ||
        (rc = signer_paths(a->cfg, project, "", keyp, crtp, err)) != FP_ERR_OK)
        return rc;
    if (fp_file_exists(keyp) || fp_file_exists(crtp)) {
        char sfx[32], okey[FP_PATH_MAX], ocrt[FP_PATH_MAX];
        if (!replace)
            return fp_err_set(err, FP_ERR_EXISTS,
                              "project %s has a firmware signer (%s); --replace makes a new one",
                              project, keyp);
        /* the old pair is kept, renamed: nothing is ever deleted */
        snprintf(sfx, sizeof(sfx), "-%lld", (long long)fp_now());
        if ((rc = signer_paths(a->cfg, project, sfx, okey, ocrt, err)) != FP_ERR_OK)
            return rc;
        if ((fp_file_exists(keyp) && rename(keyp, okey) != 0) ||
            (fp_file_exists(crtp) && rename(crtp, ocrt) != 0))
            return fp_err_set(err, FP_ERR_IO, "moving the old signer aside: %s", strerror(errno));
    }
    memset(&req, 0, sizeof(req));
    req.profile = "code-signing";
    req.days = days;
    req.actor = a->actor;
    req.project = project;
    req.ca_id = ca_id; /* never the project's TLS issuer */
    req.via = "firmware";
    req.not_device = true; /* a signer of firmware, not a device */
    snprintf(cn, sizeof(cn), "%s firmware signer", project);
    if ((rc = fp_issuer_pick(iss, &req, &ca, err)) != FP_ERR_OK) {
        if (rc == FP_ERR_NOT_FOUND)
            fp_err_set(err, rc, "project %s has no firmware CA (fleetpki firmware ca create)", project);
        return rc;
    }
    if ((rc = fp_key_generate("p256", &key, err)) != FP_ERR_OK ||
        (rc = fp_mint_req(key, a->cfg->org, cn, NULL, &csr, err)) != FP_ERR_OK)
        goto out;
    req.csr = csr;
    if ((rc = fp_issue(iss, a->store, &req, &cert, err)) != FP_ERR_OK)
        goto out;
    /* fp_issue's certificate keeps its key undecoded (ca.h): re-read */
    if ((rc = fp_cert_to_der(cert, &der, &der_len, err)) != FP_ERR_OK)
        goto out;
    if ((parsed = fp_cert_from_der(der, der_len)) == NULL) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "issued signer certificate does not parse");
        goto out;
    }
    if ((rc = fp_cert_to_pem(parsed, &pem, &len, err)) != FP_ERR_OK ||
        (rc = fp_cert_to_pem(fp_ca_get0_cert(ca), &chain_pem, &chain_len, err)) != FP_ERR_OK)
        goto out;
    if ((pem = realloc(pem, len + chain_len + 1)) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    memcpy(pem + len, chain_pem, chain_len);
    len += chain_len;
    if ((rc = fp_key_write(keyp, key, a->pass, a->passlen, err)) != FP_ERR_OK ||
        (rc = fp_file_create(crtp, pem, len, 0644, err)) != FP_ERR_OK)
        goto out;
    if (serial != NULL && fp_serial_hex(X509_get0_serialNumber(parsed), serial) != FP_ERR_OK)
        serial[0] = '\0';
out:
    free(pem);
    free(chain_pem);
    OPENSSL_free(der);
    X509_free(parsed);
    X509_free(cert);
    X509_REQ_free(csr);
    EVP_PKEY_free(key);
    return rc;
}

int fp_fw_signer_load(const fp_config *cfg, const char *project, const char *pass,
                      size_t passlen, fp_signer **signer, X509 **cert, STACK_OF(X509) **chain,
                      fp_error *err)
{
    char keyp[FP_PATH_MAX], crtp[FP_PATH_MAX];
    STACK_OF(X509) *all = NULL;
    int rc;

    *signer = NULL;
    *cert = NULL;
    *chain = NULL;
    if ((rc = signer_paths(cfg, project, "", keyp, crtp, err)) != FP_ERR_OK)
        return rc;
    if (!fp_file_exists(keyp) || !fp_file_exists(crtp))
        return fp_err_set(err, FP_ERR_NOT_FOUND,
                          "project %s has no firmware signer (fleetpki firmware signer create)",
                          project);
    if ((rc = certs_read(crtp, &all, err)) != FP_ERR_OK)
        return rc;
    if (sk_X509_num(all) < 1) {
        sk_X509_pop_free(all, X509_free);
        return fp_err_set(err, FP_ERR_CONFIG, "%s holds no certificate", crtp);
    }
    *cert = sk_X509_shift(all);
    *chain = all;
    if ((rc = fp_signer_open_file(keyp, pass, passlen, signer, err)) != FP_ERR_OK ||
        (rc = fp_signer_check_cert(*signer, *cert, err)) != FP_ERR_OK) {
        fp_signer_free(*signer);
        X509_free(*cert);
        sk_X509_pop_free(*chain, X509_free);
        *signer = NULL;
        *cert = NULL;
        *chain = NULL;
    }
    return rc;
}
