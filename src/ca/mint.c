/* mint.c - CA certificates and requests fleetpki makes; see mint.h. */
#define _POSIX_C_SOURCE 200809L
#include "mint.h"

#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "build.h"
#include "profile.h"

/* A request for key with subject CN (and O), optional SANs ("DNS:a,IP:b"). */
int fp_mint_req(EVP_PKEY *key, const char *org, const char *cn, const char *sans,
                    X509_REQ **out, fp_error *err)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    STACK_OF(X509_EXTENSION) *exts = NULL;
    int rc = FP_ERR_OK;

    *out = NULL;
    if (req == NULL || name == NULL ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
        !X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "building request");
        goto out;
    }
    if (sans != NULL) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, sans);
        exts = sk_X509_EXTENSION_new_null();
        if (ext == NULL || exts == NULL || !sk_X509_EXTENSION_push(exts, ext) ||
            !X509_REQ_add_extensions(req, exts)) {
            X509_EXTENSION_free(ext);
            rc = fp_err_set(err, FP_ERR_CRYPTO, "request SANs");
            goto out;
        }
    }
    if (X509_REQ_sign(req, key, fp_key_sig_md(key)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "signing request");
        goto out;
    }
    *out = req;
    req = NULL;
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return rc;
}

int fp_mint_ca_cert(const char *org, EVP_PKEY *key, const char *cn, int days, int path_len,
                    X509 *issuer, fp_signer *issuer_signer, X509 **out, fp_error *err)
{
    fp_profile prof;
    fp_build_params bp;
    ASN1_INTEGER *serial = NULL;
    X509_REQ *req = NULL;
    X509 *cert = NULL;
    int rc;

    *out = NULL;
    fp_profile_defaults("sub-ca", &prof);
    snprintf(prof.name, sizeof(prof.name), "%s", issuer ? "issuing-ca" : "root-ca");
    prof.path_len = path_len;
    prof.validity_days = prof.max_validity_days = days;
    prof.backdate_seconds = 3600; /* devices with lagging clocks */
    memset(&bp, 0, sizeof(bp));
    if ((rc = fp_mint_req(key, org, cn, NULL, &req, err)) != FP_ERR_OK ||
        (rc = fp_serial_random(&serial, err)) != FP_ERR_OK)
        goto out;
    bp.profile = &prof;
    bp.issuer = issuer;
    bp.req = req;
    bp.serial = serial;
    bp.now = fp_now();
    if ((rc = fp_cert_build(&bp, &cert, err)) != FP_ERR_OK ||
        (rc = fp_signer_sign_cert(issuer_signer, cert, err)) != FP_ERR_OK)
        goto out;
    *out = cert;
    cert = NULL;
out:
    X509_free(cert);
    X509_REQ_free(req);
    ASN1_INTEGER_free(serial);
    return rc;
}

