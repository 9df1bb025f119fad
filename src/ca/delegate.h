/*
 * delegate.h - a certificate the CA delegates one job to (the OCSP
 * signer, RFC 6960 4.2.2.2; the CMP responder, RFC 9483 3.3): a fresh key,
 * issued by that CA through the issuance path, written to disk.
 */
#ifndef FP_CA_DELEGATE_H
#define FP_CA_DELEGATE_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca.h"

typedef struct {
    const char *org;     /* O of the subject */
    const char *cn;      /* CN of the subject */
    const char *what;    /* for error messages: "OCSP signer", "CMP responder" */
    const char *profile; /* issuance profile, actor and via of the audit row */
    const char *actor;
    const char *via;
    const char *cert_path; /* written: the certificate then the CA's, PEM */
    const char *key_path;  /* written: the key, encrypted when pass is set */
} fp_ca_delegate;

/* Makes a key (P-256 unless the CA's own key is RSA: rsa3072), has ca
 * issue it under d->profile (audited and stored on store), writes the key
 * then the certificate, each replaced atomically.  On FP_ERR_OK *cert
 * (as decoded from its DER, as relying parties see it) and *key are the
 * caller's to free; otherwise both are NULL. */
int fp_ca_delegate_issue(fp_ca *ca, fp_store *store, const fp_ca_delegate *d, const char *pass,
                         size_t passlen, X509 **cert, EVP_PKEY **key, fp_error *err);

#endif
