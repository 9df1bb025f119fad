/*
 * cmp_responder.c - the certificate that signs CMP responses for one
 * issuing CA (RFC 9483 3.3: "the PKI management entity ... signature-based
 * protection"), made like the OCSP responder's (one function: ca/delegate.c):
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
#include "../ca/delegate.h"
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
    char cpath[FP_PATH_MAX], kpath[FP_PATH_MAX], cn[200];
    fp_ca_delegate d;
    int rc;

    *cert = NULL;
    *key = NULL;
    if ((rc = paths(cfg, ca, cpath, kpath, err)) != FP_ERR_OK)
        return rc;
    if (load_current(ca, cpath, kpath, pass, passlen, cert, key))
        return FP_ERR_OK;
    snprintf(cn, sizeof(cn), "%s CMP responder (%s)", cfg->org, fp_ca_id(ca));
    d = (fp_ca_delegate){.org = cfg->org, .cn = cn, .what = "CMP responder",
                         .profile = "cmp-responder", .actor = "server:cmp-responder",
                         .via = "cmp-responder-renewal", .cert_path = cpath, .key_path = kpath};
    if ((rc = fp_ca_delegate_issue(ca, store, &d, pass, passlen, cert, key, err)) != FP_ERR_OK)
        return rc;
    fp_log(FP_LOG_INFO, "CMP responder certificate of CA %s issued (%s)", fp_ca_id(ca), cpath);
    return FP_ERR_OK;
}
