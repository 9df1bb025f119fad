/* offline.c - offline root key files and rollover cross certificates; see
 * offline.h. */
#define _POSIX_C_SOURCE 200809L
#include "offline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../x509/x509util.h"

int fp_root_passphrase_load(const char *file, const char *fallback, size_t fallback_len,
                            char **out, size_t *len, fp_error *err)
{
    const char *env = getenv("FLEETPKI_ROOT_PASSPHRASE");
    *out = NULL;
    *len = 0;
    if (file != NULL)
        return fp_passphrase_load(file, out, len, err);
    if (env != NULL && *env) {
        *len = strlen(env);
        if ((*out = OPENSSL_strndup(env, *len)) == NULL)
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        return FP_ERR_OK;
    }
    if (fallback != NULL && fallback_len > 0) {
        if ((*out = OPENSSL_strndup(fallback, fallback_len)) == NULL)
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        *len = fallback_len;
    }
    return FP_ERR_OK;
}

int fp_offline_root_write(const char *dir, EVP_PKEY *key, X509 *cert, const char *pass,
                          size_t passlen, fp_error *err)
{
    char path[4096];
    char *pem = NULL;
    size_t pemlen = 0;
    int rc;

    if (pass == NULL || passlen == 0)
        return fp_err_set(err, FP_ERR_PASSPHRASE,
                          "the offline root key must be encrypted: give --root-passphrase-file, "
                          "FLEETPKI_ROOT_PASSPHRASE or the data directory's passphrase");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", dir, strerror(errno));
    if ((rc = fp_path_join(path, sizeof(path), dir, "root.key", err)) != FP_ERR_OK ||
        (rc = fp_key_write(path, key, pass, passlen, err)) != FP_ERR_OK ||
        (rc = fp_path_join(path, sizeof(path), dir, "root.crt", err)) != FP_ERR_OK ||
        (rc = fp_cert_to_pem(cert, &pem, &pemlen, err)) != FP_ERR_OK)
        goto out;
    rc = fp_file_create(path, pem, pemlen, 0644, err);
out:
    free(pem);
    return rc;
}

int fp_offline_root_open(const char *key_path, const char *pass, size_t passlen, X509 *root,
                         fp_signer **out, fp_error *err)
{
    int rc;
    *out = NULL;
    if ((rc = fp_signer_open_direct(key_path, pass, passlen, out, err)) != FP_ERR_OK)
        return rc;
    if ((rc = fp_signer_check_cert(*out, root, err)) != FP_ERR_OK) {
        fp_err_prefix(err, "%s is not this data directory's root key: ", key_path);
        fp_signer_free(*out);
        *out = NULL;
    }
    return rc;
}

/* Add extension nid with value (X509V3 config syntax) to x issued by issuer. */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return 0;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

int fp_cross_cert(X509 *subject, X509 *issuer, fp_signer *issuer_signer, X509 **out,
                  fp_error *err)
{
    X509 *x = X509_new();
    ASN1_INTEGER *serial = NULL;
    const ASN1_TIME *end_s = X509_get0_notAfter(subject), *end_i = X509_get0_notAfter(issuer);
    int day = 0, sec = 0, rc;

    *out = NULL;
    if (x == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if ((rc = fp_serial_random(&serial, err)) != FP_ERR_OK)
        goto fail;
    /* the earlier end: a cross certificate must not outlive either root */
    if (!ASN1_TIME_diff(&day, &sec, end_s, end_i)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "root validity");
        goto fail;
    }
    if (!X509_set_version(x, 2) || !X509_set_serialNumber(x, serial) ||
        !X509_set_subject_name(x, X509_get_subject_name(subject)) ||
        !X509_set_issuer_name(x, X509_get_subject_name(issuer)) ||
        !X509_set_pubkey(x, X509_get0_pubkey(subject)) ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        !X509_set1_notAfter(x, (day < 0 || (day == 0 && sec < 0)) ? end_i : end_s) ||
        /* RFC 5280 4.2.1.9, 4.2.1.3: a CA that signs certificates and CRLs */
        !add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        /* 4.2.1.2: the subject's key id is its own (hash of its key); 4.2.1.1
         * the issuer's is the issuing root's */
        !add_ext(x, issuer, NID_subject_key_identifier, "hash") ||
        !add_ext(x, issuer, NID_authority_key_identifier, "keyid:always")) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "building the cross certificate");
        goto fail;
    }
    if ((rc = fp_signer_sign_cert(issuer_signer, x, err)) != FP_ERR_OK)
        goto fail;
    ASN1_INTEGER_free(serial);
    *out = x;
    return FP_ERR_OK;
fail:
    ASN1_INTEGER_free(serial);
    X509_free(x);
    return rc;
}
