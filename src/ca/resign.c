/* resign.c - re-sign an issuing CA with the offline root; see resign.h. */
#define _POSIX_C_SOURCE 200809L
#include "resign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/x509.h>

#include "../common/util.h"
#include "../keys/offline.h"
#include "../store/store_audit.h"
#include "../x509/x509util.h"
#include "caset.h"
#include "detail.h"
#include "mint.h"
#include "signer.h"

#define RESIGN_DAYS 3652   /* as `ca create` */
#define BACKDATE_S 3600    /* devices with lagging clocks, as at creation */

static int write_pem(const char *path, X509 *cert, fp_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = fp_cert_to_pem(cert, &pem, &len, err);
    if (rc == FP_ERR_OK)
        rc = fp_file_replace(path, pem, len, 0644, err);
    free(pem);
    return rc;
}

int fp_admin_ca_resign(const fp_admin *a, const char *ca_id, const fp_ca_resign_opts *o,
                       char serial_hex[80], fp_error *err)
{
    const fp_config *cfg = a->cfg;
    fp_ca_rec rec;
    X509 *root = NULL, *old = NULL, *cert = NULL;
    fp_signer *root_signer = NULL;
    ASN1_INTEGER *serial = NULL;
    BIGNUM *bn = NULL;
    char *hex = NULL, *subject = NULL, *detail = NULL, path[FP_PATH_MAX], days_s[16];
    unsigned char *der = NULL;
    size_t derlen = 0;
    int64_t now = fp_now(), nb, na;
    int days = o->days > 0 ? o->days : RESIGN_DAYS, rc = FP_ERR_OK;
    fp_audit_event ev = {.actor = a->actor, .action = "ca.resign", .object = ca_id};

    memset(&rec, 0, sizeof(rec));
    serial_hex[0] = '\0';
    if (o->root_key == NULL)
        return fp_err_set(err, FP_ERR_ARG, "--root-key FILE is required (the offline root key)");
    if (o->days < 0 || o->days > 36525)
        return fp_err_set(err, FP_ERR_ARG, "--days: 1..36525");
    if ((rc = fp_store_ca_get(a->store, ca_id, &rec, err)) != FP_ERR_OK) {
        if (rc == FP_ERR_NOT_FOUND)
            rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no CA '%s' (fleetpki ca list)", ca_id);
        return rc;
    }
    if (rec.kind != FP_CA_ISSUING) {
        rc = fp_err_set(err, FP_ERR_STATE, "CA '%s' is not an issuing CA", ca_id);
        goto out;
    }
    if ((old = fp_cert_from_der(rec.der, rec.der_len)) == NULL) {
        rc = fp_err_set(err, FP_ERR_STORE, "CA '%s': its certificate does not decode", ca_id);
        goto out;
    }
    /* the root: its certificate from the data directory, its key from the
     * ceremony (checked to be that certificate's key) */
    if ((rc = fp_config_path(cfg, cfg->root_cert, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_cert_read(path, &root, err)) != FP_ERR_OK ||
        (rc = fp_offline_root_open(o->root_key, o->root_pass, o->root_passlen, root,
                                   &root_signer, err)) != FP_ERR_OK)
        goto out;
    if (strcmp(rec.parent_id, cfg->root_id) != 0 || X509_check_issued(root, old) != X509_V_OK ||
        X509_verify(old, X509_get0_pubkey(root)) != 1) {
        rc = fp_err_set(err, FP_ERR_STATE,
                        "CA '%s' was not issued by this root (%s); re-sign it where its "
                        "issuer's key is", ca_id, cfg->root_id);
        goto out;
    }
    nb = now - BACKDATE_S;
    na = now + (int64_t)days * 86400;
    if (na > fp_asn1_time_unix(X509_get0_notAfter(root))) {
        rc = fp_err_set(err, FP_ERR_ARG,
                        "a validity of %d days would outlive the root (RFC 5280 6.1.3); "
                        "choose fewer --days", days);
        goto out;
    }
    /* the same certificate with a new serial and validity: subject, key
     * and extensions (SKI, AKI, basicConstraints, key usage) unchanged */
    if ((cert = X509_dup(old)) == NULL ||
        (rc = fp_serial_random(&serial, err)) != FP_ERR_OK)
        goto nomem_or_rc;
    if (!X509_set_serialNumber(cert, serial) ||
        X509_time_adj_ex(X509_getm_notBefore(cert), 0, nb - now, NULL) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) == NULL) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "new certificate fields");
        goto out;
    }
    if ((rc = fp_signer_sign_cert(root_signer, cert, err)) != FP_ERR_OK ||
        (rc = fp_cert_to_der(cert, &der, &derlen, err)) != FP_ERR_OK)
        goto out;
    X509_free(cert);
    if ((cert = fp_cert_from_der(der, derlen)) == NULL) { /* as relying parties see it */
        rc = fp_err_set(err, FP_ERR_CRYPTO, "re-signed certificate does not decode");
        goto out;
    }
    if (X509_verify(cert, X509_get0_pubkey(root)) != 1 ||
        EVP_PKEY_eq(X509_get0_pubkey(cert), X509_get0_pubkey(old)) != 1 ||
        X509_NAME_cmp(X509_get_subject_name(cert), X509_get_subject_name(old)) != 0) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "re-signed certificate fails its own checks");
        goto out;
    }
    /* file first (the server reads init's CA from it), then the row */
    if (rec.key_ref[0] == '\0')
        rc = fp_config_path(cfg, cfg->issuing_cert, path, sizeof(path), err);
    else
        rc = fp_caset_file(cfg, ca_id, "ca.crt", path, sizeof(path), err);
    if (rc != FP_ERR_OK || (rc = write_pem(path, cert, err)) != FP_ERR_OK)
        goto out;
    if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) == NULL ||
        (hex = BN_bn2hex(bn)) == NULL || (subject = fp_name_string(X509_get_subject_name(cert))) == NULL)
        goto nomem;
    snprintf(serial_hex, 80, "%s", hex);
    snprintf(days_s, sizeof(days_s), "%d", days);
    detail = fp_audit_detail("serial", hex, "days", days_s, NULL);
    ev.detail = detail ? detail : "";
    ev.project = rec.project;
    rc = fp_store_ca_set_cert(a->store, ca_id, der, derlen, subject,
                              fp_asn1_time_unix(X509_get0_notBefore(cert)),
                              fp_asn1_time_unix(X509_get0_notAfter(cert)), &ev, err);
    goto out;
nomem_or_rc:
    if (rc != FP_ERR_OK)
        goto out;
nomem:
    rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
out:
    free(detail);
    free(subject);
    OPENSSL_free(hex);
    BN_free(bn);
    OPENSSL_free(der);
    ASN1_INTEGER_free(serial);
    X509_free(cert);
    X509_free(old);
    X509_free(root);
    fp_signer_free(root_signer);
    fp_ca_rec_clear(&rec);
    return rc;
}
