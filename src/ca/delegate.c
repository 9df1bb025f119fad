/* delegate.c - a delegated certificate of a CA; see delegate.h. */
#define _POSIX_C_SOURCE 200809L
#include "delegate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/util.h"
#include "../x509/x509util.h"

/* A CSR for a fresh key named O=org, CN=cn. */
static int make_request(const fp_ca_delegate *d, X509 *ca_cert, X509_REQ **req, EVP_PKEY **key,
                        fp_error *err)
{
    X509_NAME *name = X509_NAME_new();
    int rc;

    *req = X509_REQ_new();
    if (name == NULL || *req == NULL ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)d->org, -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)d->cn, -1,
                                    -1, 0)) {
        rc = fp_err_set(err, FP_ERR_NOMEM, "%s request", d->what);
        goto out;
    }
    /* P-256 unless the CA is RSA, as at init */
    if ((rc = fp_key_generate(EVP_PKEY_get_base_id(X509_get0_pubkey(ca_cert)) == EVP_PKEY_RSA
                                  ? "rsa3072" : "p256", key, err)) != FP_ERR_OK)
        goto out;
    if (!X509_REQ_set_subject_name(*req, name) || !X509_REQ_set_pubkey(*req, *key) ||
        X509_REQ_sign(*req, *key, fp_key_sig_md(*key)) <= 0)
        rc = fp_err_set(err, FP_ERR_CRYPTO, "%s request", d->what);
out:
    X509_NAME_free(name);
    return rc;
}

/* The certificate, then the CA's, as one PEM file. */
static int write_chain(const char *path, X509 *leaf, X509 *ca_cert, fp_error *err)
{
    char *a = NULL, *b = NULL, *both = NULL;
    size_t al = 0, bl = 0;
    int rc;

    if ((rc = fp_cert_to_pem(leaf, &a, &al, err)) != FP_ERR_OK ||
        (rc = fp_cert_to_pem(ca_cert, &b, &bl, err)) != FP_ERR_OK)
        goto out;
    if ((both = malloc(al + bl)) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    memcpy(both, a, al);
    memcpy(both + al, b, bl);
    rc = fp_file_replace(path, both, al + bl, 0644, err);
out:
    free(both);
    free(a);
    free(b);
    return rc;
}

int fp_ca_delegate_issue(fp_ca *ca, fp_store *store, const fp_ca_delegate *d, const char *pass,
                         size_t passlen, X509 **cert, EVP_PKEY **key, fp_error *err)
{
    X509 *ca_cert = fp_ca_get0_cert(ca), *issued = NULL, *c = NULL;
    X509_REQ *req = NULL;
    EVP_PKEY *k = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    char tmp[FP_PATH_MAX + 16];
    fp_issue_req ir;
    int rc;

    *cert = NULL;
    *key = NULL;
    if ((rc = make_request(d, ca_cert, &req, &k, err)) != FP_ERR_OK)
        goto out;
    ir = (fp_issue_req){.csr = req, .profile = d->profile, .actor = d->actor, .via = d->via};
    if ((rc = fp_ca_issue(ca, store, &ir, &issued, err)) != FP_ERR_OK)
        goto out;
    /* work on the certificate as relying parties will see it: decoded from
     * its DER (the object fp_cert_build assembles carries no decoded key) */
    if ((rc = fp_cert_to_der(issued, &der, &derlen, err)) != FP_ERR_OK)
        goto out;
    if ((c = fp_cert_from_der(der, derlen)) == NULL) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "issued %s does not decode", d->what);
        goto out;
    }
    /* key first, then certificate; each replaced atomically */
    snprintf(tmp, sizeof(tmp), "%s.new", d->key_path);
    unlink(tmp); /* a leftover of an interrupted renewal */
    if ((rc = fp_key_write(tmp, k, pass, passlen, err)) != FP_ERR_OK)
        goto out;
    if (rename(tmp, d->key_path) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "rename %s: %s", d->key_path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if ((rc = write_chain(d->cert_path, c, ca_cert, err)) != FP_ERR_OK)
        goto out;
    *cert = c;
    *key = k;
    c = NULL;
    k = NULL;
out:
    OPENSSL_free(der);
    X509_free(issued);
    X509_free(c);
    EVP_PKEY_free(k);
    X509_REQ_free(req);
    return rc;
}
