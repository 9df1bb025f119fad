/* ocsp_setup.c - responder from config, signer renewal; see ocsp_setup.h. */
#define _POSIX_C_SOURCE 200809L
#include "ocsp_setup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../ca/delegate.h"
#include "../common/util.h"
#include "../x509/x509util.h"

/* The signer must be a delegated responder of the CA: issued by it and
 * carrying id-kp-OCSPSigning (RFC 6960 4.2.2.2). */
static int check_delegation(X509 *ca, X509 *signer, fp_error *err)
{
    if (X509_check_issued(ca, signer) != X509_V_OK)
        return fp_err_set(err, FP_ERR_CONFIG, "OCSP signer certificate is not issued by the CA");
    if (!(X509_get_extension_flags(signer) & EXFLAG_XKUSAGE) ||
        !(X509_get_extended_key_usage(signer) & XKU_OCSP_SIGN))
        return fp_err_set(err, FP_ERR_CONFIG, "OCSP signer certificate lacks id-kp-OCSPSigning");
    return FP_ERR_OK;
}

static int load_identity(const char *cert_path, const char *key_path, X509 *ca_cert,
                         const char *pass, size_t passlen, fp_signer **signer, X509 **cert,
                         fp_error *err)
{
    int rc;

    *signer = NULL;
    *cert = NULL;
    if ((rc = fp_cert_read(cert_path, cert, err)) != FP_ERR_OK ||
        (rc = fp_signer_open_file(key_path, pass, passlen, signer, err)) != FP_ERR_OK ||
        (rc = fp_signer_check_cert(*signer, *cert, err)) != FP_ERR_OK ||
        (rc = check_delegation(ca_cert, *cert, err)) != FP_ERR_OK) {
        fp_signer_free(*signer);
        X509_free(*cert);
        *signer = NULL;
        *cert = NULL;
        return rc;
    }
    return FP_ERR_OK;
}

int fp_ocsp_from_config(const fp_config *cfg, const char *pass, size_t passlen,
                        fp_ocsp_responder **out, fp_error *err)
{
    fp_ocsp_opts o = {cfg->ocsp_validity_seconds, cfg->ocsp_cache, cfg->ocsp_cache_entries};
    fp_ocsp_responder *r = NULL;
    fp_signer *signer = NULL;
    X509 *ca = NULL, *cert = NULL;
    char path[FP_PATH_MAX], cpath[FP_PATH_MAX], kpath[FP_PATH_MAX];
    int rc;

    *out = NULL;
    if ((rc = fp_config_path(cfg, cfg->issuing_cert, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_cert_read(path, &ca, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->ocsp_cert, cpath, sizeof(cpath), err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->ocsp_key, kpath, sizeof(kpath), err)) != FP_ERR_OK ||
        (rc = load_identity(cpath, kpath, ca, pass, passlen, &signer, &cert, err)) != FP_ERR_OK ||
        (rc = fp_ocsp_responder_new(&o, &r, err)) != FP_ERR_OK)
        goto out;
    rc = fp_ocsp_responder_add_ca(r, cfg->issuing_id, ca, signer, cert, err);
    signer = NULL; /* taken */
    if (rc != FP_ERR_OK)
        goto out;
    *out = r;
    r = NULL;
out:
    fp_ocsp_responder_free(r);
    fp_signer_free(signer);
    X509_free(cert);
    X509_free(ca);
    return rc;
}

int fp_ocsp_add_ca(fp_ocsp_responder *r, fp_ca *ca, const char *pass, size_t passlen,
                   fp_error *err)
{
    const char *cpath, *kpath;
    fp_signer *signer = NULL;
    X509 *cert = NULL;
    int rc;

    fp_ca_ocsp_paths(ca, &cpath, &kpath);
    if ((rc = load_identity(cpath, kpath, fp_ca_get0_cert(ca), pass, passlen, &signer, &cert,
                            err)) != FP_ERR_OK) {
        fp_err_prefix(err, "OCSP responder of CA '%s': ", fp_ca_id(ca));
        return rc;
    }
    rc = fp_ocsp_responder_add_ca(r, fp_ca_id(ca), fp_ca_get0_cert(ca), signer, cert, err);
    X509_free(cert);
    return rc; /* signer taken */
}

/* Does the current signer need replacing at now? */
static bool needs_renewal(fp_ca *ca, const char *pass, size_t passlen, int64_t now)
{
    fp_signer *signer = NULL;
    X509 *cert = NULL;
    const char *cpath, *kpath;
    int64_t nb, na;
    bool renew;

    fp_ca_ocsp_paths(ca, &cpath, &kpath);
    if (load_identity(cpath, kpath, fp_ca_get0_cert(ca), pass, passlen, &signer, &cert, NULL) !=
        FP_ERR_OK)
        return true;
    nb = fp_asn1_time_unix(X509_get0_notBefore(cert));
    na = fp_asn1_time_unix(X509_get0_notAfter(cert));
    renew = na <= now || (na - now) < (na - nb) / FP_OCSP_RENEW_DIVISOR;
    fp_signer_free(signer);
    X509_free(cert);
    return renew;
}

int fp_ocsp_signer_check(const fp_config *cfg, fp_ca *ca, fp_store *store,
                         const char *pass, size_t passlen, int64_t now,
                         fp_ocsp_responder *r, bool *renewed, fp_error *err)
{
    const char *cpath, *kpath;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    fp_signer *signer = NULL;
    char cn[160];
    fp_ca_delegate d;
    int rc;

    *renewed = false;
    if (!needs_renewal(ca, pass, passlen, now))
        return FP_ERR_OK;
    fp_ca_ocsp_paths(ca, &cpath, &kpath);
    /* the CA init made keeps its responder's name; others say whose */
    if (!strcmp(fp_ca_id(ca), cfg->issuing_id))
        snprintf(cn, sizeof(cn), "%s OCSP responder", cfg->org);
    else
        snprintf(cn, sizeof(cn), "%s OCSP responder (%s)", cfg->org, fp_ca_id(ca));
    d = (fp_ca_delegate){.org = cfg->org, .cn = cn, .what = "OCSP signer",
                         .profile = "ocsp-signer", .actor = "server:ocsp-renew",
                         .via = "ocsp-signer-renewal", .cert_path = cpath, .key_path = kpath};
    if ((rc = fp_ca_delegate_issue(ca, store, &d, pass, passlen, &cert, &key, err)) != FP_ERR_OK)
        goto out;
    *renewed = true;
    if (r != NULL) {
        if ((rc = fp_signer_from_key(key, &signer, err)) != FP_ERR_OK)
            goto out;
        rc = fp_ocsp_responder_set_signer(r, fp_ca_id(ca), signer, cert, err);
        signer = NULL;
    }
out:
    fp_signer_free(signer);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}
