/* build.h - assemble an (unsigned) certificate from a checked CSR. */
#ifndef FP_BUILD_H
#define FP_BUILD_H

#include <stdint.h>

#include <openssl/x509.h>

#include "profile.h"

typedef struct fp_build_params {
    const fp_profile *profile;
    X509 *issuer;             /* NULL: self-signed (root) */
    X509_REQ *req;            /* subject, key and requested SANs */
    const ASN1_INTEGER *serial;
    int64_t now;
    int days;                 /* 0: profile default */
    const char *crl_url;      /* optional CRL distribution point */
    const char *ocsp_url;     /* optional AIA OCSP */
    const char *ca_issuers_url; /* optional AIA caIssuers */
} fp_build_params;

/* Build the certificate (not signed).  The CSR must have passed
 * fp_policy_check for the same profile. */
int fp_cert_build(const fp_build_params *p, X509 **out, fp_error *err);

#endif
