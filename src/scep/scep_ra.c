/*
 * scep_ra.c - the SCEP RA identity of an issuing CA (RFC 8894 2.1.2,
 * 3.5.1): the certificate GetCACert hands out beside the CA, to which
 * clients encrypt their requests and which signs every CertRep.
 *
 * One key serves both, so the certificate carries keyUsage
 * digitalSignature (CertRep signatures) and keyEncipherment (the RSA key
 * transport of the request's EnvelopedData), the "scep-ra" profile.  The
 * key is RSA: RFC 8894's clients (and Debian's scepclient) encrypt with
 * RSA key transport only.  It lives beside the CA's other files, created
 * on the first start and renewed when a third of its life is left, the
 * way the OCSP responder certificate is (ocsp_setup.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "scep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../ca/caset.h"
#include "../common/util.h"
#include "../x509/x509util.h"

#define RA_KEY_ALGO "rsa3072"
#define RA_RENEW_DIVISOR 3

static int ra_paths(const fp_config *cfg, fp_ca *ca, char *cert, char *key, fp_error *err)
{
    int rc;
    if ((rc = fp_caset_file(cfg, fp_ca_id(ca), "scep-ra.crt", cert, FP_PATH_MAX, err)) != FP_ERR_OK ||
        (rc = fp_caset_file(cfg, fp_ca_id(ca), "scep-ra.key", key, FP_PATH_MAX, err)) != FP_ERR_OK)
        return rc;
    return FP_ERR_OK;
}

/* The files as they are, if usable for a while yet: issued by ca, key
 * matching, both key usages, more than a third of its life left. */
static bool load_current(const char *cpath, const char *kpath, fp_ca *ca, const char *pass,
                         size_t passlen, X509 **cert, EVP_PKEY **key)
{
    int64_t nb, na, now = fp_now();
    uint32_t ku;

    *cert = NULL;
    *key = NULL;
    if (access(cpath, R_OK) != 0 || access(kpath, R_OK) != 0 ||
        fp_cert_read(cpath, cert, NULL) != FP_ERR_OK ||
        fp_key_read(kpath, pass, passlen, key, NULL) != FP_ERR_OK)
        goto stale;
    ku = X509_get_key_usage(*cert);
    nb = fp_asn1_time_unix(X509_get0_notBefore(*cert));
    na = fp_asn1_time_unix(X509_get0_notAfter(*cert));
    if (X509_check_issued(fp_ca_get0_cert(ca), *cert) != X509_V_OK ||
        X509_verify(*cert, X509_get0_pubkey(fp_ca_get0_cert(ca))) != 1 ||
        X509_check_private_key(*cert, *key) != 1 || EVP_PKEY_get_base_id(*key) != EVP_PKEY_RSA ||
        (ku & (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT)) !=
            (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT) ||
        na <= now || (na - now) < (na - nb) / RA_RENEW_DIVISOR)
        goto stale;
    return true;
stale:
    ERR_clear_error();
    X509_free(*cert);
    EVP_PKEY_free(*key);
    *cert = NULL;
    *key = NULL;
    return false;
}

/* mkdir -p of the directory holding path (ca/<id>/), mode 0700. */
static int make_parent(const char *path, fp_error *err)
{
    char dir[FP_PATH_MAX];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    if ((slash = strrchr(dir, '/')) == NULL)
        return FP_ERR_OK;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return fp_err_set(err, FP_ERR_IO, "mkdir %s: %s", dir, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return fp_err_set(err, FP_ERR_IO, "mkdir %s: %s", dir, strerror(errno));
    return FP_ERR_OK;
}

static int issue_new(const fp_config *cfg, fp_ca *ca, fp_store *store, const char *cpath,
                     const char *kpath, const char *pass, size_t passlen, X509 **out_cert,
                     EVP_PKEY **out_key, fp_error *err)
{
    X509_NAME *name = X509_NAME_new();
    X509_REQ *req = X509_REQ_new();
    X509 *issued = NULL, *cert = NULL;
    EVP_PKEY *key = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    char cn[160], tmp[FP_PATH_MAX + 8];
    char *pem = NULL;
    size_t pemlen = 0;
    fp_issue_req ir;
    int rc;

    snprintf(cn, sizeof(cn), "%s SCEP RA (%s)", cfg->org, fp_ca_id(ca));
    if (name == NULL || req == NULL ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)cfg->org, -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0)) {
        rc = fp_err_set(err, FP_ERR_NOMEM, "SCEP RA request");
        goto out;
    }
    if ((rc = fp_key_generate(RA_KEY_ALGO, &key, err)) != FP_ERR_OK)
        goto out;
    if (!X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key) ||
        X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "SCEP RA request");
        goto out;
    }
    ir = (fp_issue_req){.csr = req, .profile = "scep-ra", .days = SCEP_RA_DAYS,
                        .actor = "server:scep-ra", .project = fp_ca_project(ca),
                        .via = "scep-ra"};
    if ((rc = fp_ca_issue(ca, store, &ir, &issued, err)) != FP_ERR_OK)
        goto out;
    /* the certificate as clients see it, decoded from its DER (the signed
     * object carries no decoded key, ca.h) */
    if ((rc = fp_cert_to_der(issued, &der, &derlen, err)) != FP_ERR_OK)
        goto out;
    if ((cert = fp_cert_from_der(der, derlen)) == NULL) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "issued SCEP RA certificate does not decode");
        goto out;
    }
    /* key first, then certificate, each replaced atomically; a crash in
     * between leaves a mismatch that the next start repairs */
    if ((rc = make_parent(kpath, err)) != FP_ERR_OK)
        goto out;
    snprintf(tmp, sizeof(tmp), "%s.new", kpath);
    unlink(tmp);
    if ((rc = fp_key_write(tmp, key, pass, passlen, err)) != FP_ERR_OK)
        goto out;
    if (rename(tmp, kpath) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "rename %s: %s", kpath, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if ((rc = fp_cert_to_pem(cert, &pem, &pemlen, err)) != FP_ERR_OK ||
        (rc = fp_file_replace(cpath, pem, pemlen, 0644, err)) != FP_ERR_OK)
        goto out;
    fp_log(FP_LOG_INFO, "SCEP RA certificate of CA %s issued (%s)", fp_ca_id(ca), cpath);
    *out_cert = cert;
    *out_key = key;
    cert = NULL;
    key = NULL;
out:
    free(pem);
    OPENSSL_free(der);
    X509_free(issued);
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_REQ_free(req);
    X509_NAME_free(name);
    return rc;
}

int scep_ra_ensure(const fp_config *cfg, fp_ca *ca, fp_store *store, const char *pass,
                   size_t passlen, X509 **cert, EVP_PKEY **key, fp_error *err)
{
    char cpath[FP_PATH_MAX], kpath[FP_PATH_MAX];
    int rc;

    *cert = NULL;
    *key = NULL;
    if ((rc = ra_paths(cfg, ca, cpath, kpath, err)) != FP_ERR_OK)
        return rc;
    if (load_current(cpath, kpath, ca, pass, passlen, cert, key))
        return FP_ERR_OK;
    rc = issue_new(cfg, ca, store, cpath, kpath, pass, passlen, cert, key, err);
    if (rc != FP_ERR_OK)
        fp_err_prefix(err, "SCEP RA of CA '%s': ", fp_ca_id(ca));
    return rc;
}
