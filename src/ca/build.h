/* build.h - assemble an (unsigned) certificate from a checked CSR. */
#ifndef FP_BUILD_H
#define FP_BUILD_H

#include <stdint.h>

#include <openssl/x509.h>

#include "profile.h"

/* The extensions every certificate of one profile and one issuer shares
 * (basicConstraints, keyUsage, extendedKeyUsage, authorityKeyIdentifier,
 * OCSP no-check, CRL distribution point, AIA) and the issuer's validity,
 * made once so each certificate copies them instead of building them. */
typedef struct fp_build_fixed fp_build_fixed;

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
    const fp_build_fixed *fixed; /* optional: made by fp_build_fixed_new from
                                    the same profile, issuer and URLs */
} fp_build_params;

/* Build the certificate (not signed).  The CSR must have passed
 * fp_policy_check for the same profile. */
int fp_cert_build(const fp_build_params *p, X509 **out, fp_error *err);

/* The fixed part of what fp_cert_build makes for bp's profile, issuer (not
 * NULL) and URLs; the other fields of bp are not used.  The result is
 * read-only and may be shared by threads. */
int fp_build_fixed_new(const fp_build_params *bp, fp_build_fixed **out, fp_error *err);
void fp_build_fixed_free(fp_build_fixed *f);

#endif
