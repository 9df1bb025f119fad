/*
 * cmp_responder.c - the certificate that signs CMP responses for one
 * issuing CA (RFC 9483 3.3: "the PKI management entity ... signature-based
 * protection"), made the way the OCSP responder's is (ocsp/ocsp_setup.c):
 * a fresh key, issued by the CA through the issuance path (profile
 * cmp-responder: digitalSignature, id-kp-cmcRA; audited, stored), kept
 * in DIR/cmp.crt + DIR/cmp.key for the CA `init` made and in
 * DIR/ca/<id>/cmp.crt + cmp.key for the others.  The key is encrypted
 * when the data directory's keys are.  Checked at every start: a missing,
 * mismatched or expired pair, or one in the last third of its life, is
 * replaced (key first, then certificate, each atomically).
 */
#define _POSIX_C_SOURCE 200809L
#include "cmp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "../ca/caset.h"
#include "../ca/issue.h"
#include "../common/util.h"
#include "../x509/x509util.h"

static int paths(const fp_config *cfg, fp_ca *ca, char *cpath, char *kpath, fp_error *err)
{
    int rc;
    if (!strcmp(fp_ca_id(ca), cfg->issuing_id)) {
        if ((rc = fp_path_join(cpath, FP_PATH_MAX, cfg->dir, "cmp.crt", err)) != FP_ERR_OK)
            return rc;
        return fp_path_join(kpath, FP_PATH_MAX, cfg->dir, "cmp.key", err);
    }
    if ((rc = fp_caset_file(cfg, fp_ca_id(ca), "cmp.crt", cpath, FP_PATH_MAX, err)) != FP_ERR_OK)
        return rc;
    return fp_caset_file(cfg, fp_ca_id(ca), "cmp.key", kpath, FP_PATH_MAX, err);
}

/* The pair on disk if it is current: issued by ca, matching, inside the
 * first two thirds of its life. */
static bool load_current(fp_ca *ca, const char *cpath, const char *kpath, const char *pass,
                         size_t passlen, X509 **cert, EVP_PKEY **key)
{
    X509 *c = NULL;
    EVP_PKEY *k = NULL;
    fp_error e = {0};
    int64_t nb, na, now = fp_now();
    bool ok = false;

    if (fp_cert_read(cpath, &c, &e) != FP_ERR_OK ||
        fp_key_read(kpath, pass, passlen, &k, &e) != FP_ERR_OK)
        goto out;
    nb = fp_asn1_time_unix(X509_get0_notBefore(c));
    na = fp_asn1_time_unix(X509_get0_notAfter(c));
    ok = X509_check_private_key(c, k) == 1 &&
         X509_check_issued(fp_ca_get0_cert(ca), c) == X509_V_OK && na > now &&
         (na - now) >= (na - nb) / 3;
out:
    ERR_clear_error();
    if (ok) {
        *cert = c;
        *key = k;
    } else {
        X509_free(c);
        EVP_PKEY_free(k);
    }
    return ok;
}

int cmp_responder_load(const fp_config *cfg, fp_ca *ca, fp_store *store, const char *pass,
                       size_t passlen, X509 **cert, EVP_PKEY **key, fp_error *err)
{
    char cpath[FP_PATH_MAX], kpath[FP_PATH_MAX], tmp[FP_PATH_MAX + 8], cn[200];
    X509 *issued = NULL, *c = NULL, *ca_cert = fp_ca_get0_cert(ca);
    X509_REQ *req = NULL;
    X509_NAME *name = NULL;
    EVP_PKEY *k = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    char *pem = NULL, *capem = NULL, *both = NULL;
    size_t pemlen = 0, capemlen = 0;
    fp_issue_req ir;
    int rc;

    *cert = NULL;
    *key = NULL;
    if ((rc = paths(cfg, ca, cpath, kpath, err)) != FP_ERR_OK)
        return rc;
    if (load_current(ca, cpath, kpath, pass, passlen, cert, key))
        return FP_ERR_OK;
    snprintf(cn, sizeof(cn), "%s CMP responder (%s)", cfg->org, fp_ca_id(ca));
    name = X509_NAME_new();
    req = X509_REQ_new();
    if (name == NULL || req == NULL ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)cfg->org, -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0)) {
        rc = fp_err_set(err, FP_ERR_NOMEM, "CMP responder request");
        goto out;
    }
    if ((rc = fp_key_generate(EVP_PKEY_get_base_id(X509_get0_pubkey(ca_cert)) == EVP_PKEY_RSA
                                  ? "rsa3072" : "p256", &k, err)) != FP_ERR_OK)
        goto out;
    if (!X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, k) ||
        X509_REQ_sign(req, k, fp_key_sig_md(k)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CMP responder request");
        goto out;
    }
    ir = (fp_issue_req){.csr = req, .profile = "cmp-responder", .actor = "server:cmp-responder",
                        .via = "cmp-responder-renewal"};
    if ((rc = fp_ca_issue(ca, store, &ir, &issued, err)) != FP_ERR_OK)
        goto out;
    /* as relying parties will see it: decoded from its DER */
    if ((rc = fp_cert_to_der(issued, &der, &derlen, err)) != FP_ERR_OK)
        goto out;
    if ((c = fp_cert_from_der(der, derlen)) == NULL) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "issued CMP responder does not decode");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.new", kpath);
    unlink(tmp);
    if ((rc = fp_key_write(tmp, k, pass, passlen, err)) != FP_ERR_OK)
        goto out;
    if (rename(tmp, kpath) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "rename %s: %s", kpath, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if ((rc = fp_cert_to_pem(c, &pem, &pemlen, err)) != FP_ERR_OK ||
        (rc = fp_cert_to_pem(ca_cert, &capem, &capemlen, err)) != FP_ERR_OK)
        goto out;
    if ((both = malloc(pemlen + capemlen)) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    memcpy(both, pem, pemlen);
    memcpy(both + pemlen, capem, capemlen);
    if ((rc = fp_file_replace(cpath, both, pemlen + capemlen, 0644, err)) != FP_ERR_OK)
        goto out;
    fp_log(FP_LOG_INFO, "CMP responder certificate of CA %s issued (%s)", fp_ca_id(ca), cpath);
    *cert = c;
    *key = k;
    c = NULL;
    k = NULL;
out:
    free(both);
    free(pem);
    free(capem);
    OPENSSL_free(der);
    X509_free(issued);
    X509_free(c);
    EVP_PKEY_free(k);
    X509_REQ_free(req);
    X509_NAME_free(name);
    return rc;
}
