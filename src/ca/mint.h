/*
 * mint.h - CA certificates and requests made by fleetpki itself (init's
 * root and issuing CA, `ca create`'s project CAs, service requests).
 */
#ifndef FP_MINT_H
#define FP_MINT_H

#include <openssl/x509.h>

#include "signer.h"

/* A self-signed request for key with subject O=org, CN=cn and optional
 * SANs ("DNS:a,IP:b"). */
int fp_mint_req(EVP_PKEY *key, const char *org, const char *cn, const char *sans,
                X509_REQ **out, fp_error *err);

/* A CA certificate for key: self-signed when issuer is NULL (issuer_signer
 * must then be key's own signer), else signed by issuer_signer under
 * issuer.  days of validity, path_len for basicConstraints, backdated an
 * hour for devices whose clocks lag. */
int fp_mint_ca_cert(const char *org, EVP_PKEY *key, const char *cn, int days, int path_len,
                    X509 *issuer, fp_signer *issuer_signer, X509 **out, fp_error *err);

#endif
