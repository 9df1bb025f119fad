/*
 * fw_ca.h - the firmware trust anchor of a project and its signer
 * (docs/firmware.md).
 *
 * Each project that signs firmware gets its own two-level code-signing
 * PKI, separate from the TLS one, so that no TLS key (the shared root,
 * the project's issuing CA, a device's key) can ever sign firmware:
 *   <project>-fw-root  self-signed root: the device's FIRMWARE anchor
 *                      (store kind ROOT with the project set, never a
 *                      TLS anchor; its key may be taken offline)
 *   <project>-fw-ca    signing CA under it (store kind ISSUING, never
 *                      active: it issues only when named by id, through
 *                      the one issuance path, issue.h)
 *   signer             a P-256 key with a certificate of the code-signing
 *                      profile (KU digitalSignature, EKU codeSigning)
 *                      issued by <project>-fw-ca with fp_issue: committed,
 *                      audited and revocable like every certificate.
 * Files: DIR/ca/<id>/ca.{crt,key} for the two CAs (as `ca create`),
 * DIR/firmware/<project>/signer.{key,crt} (chain: signer, signing CA).
 */
#ifndef FP_FW_CA_H
#define FP_FW_CA_H

#include <openssl/x509.h>

#include "../ca/admin.h"
#include "../ca/issue.h"
#include "../ca/signer.h"

#define FP_FW_ID_MAX 64

/* <project>-fw-root and <project>-fw-ca */
int fp_fw_ca_ids(const char *project, char root_id[FP_FW_ID_MAX], char ca_id[FP_FW_ID_MAX],
                 fp_error *err);

/* Create the project's firmware root and signing CA (keys, certificates,
 * store rows, audited as firmware.ca.create).  FP_ERR_EXISTS when the
 * project has them already. */
int fp_fw_ca_create(const fp_admin *a, const char *project, fp_error *err);

/* The firmware root certificate of project (the device's anchor);
 * *out caller frees. FP_ERR_NOT_FOUND without `firmware ca create`. */
int fp_fw_anchor(fp_store *store, const char *project, X509 **out, fp_error *err);

/* A new signer key and code-signing certificate for project, issued by
 * its firmware CA through iss (fp_issue: committed and audited), days 0:
 * the profile's default.  An existing signer is kept as
 * signer-<unix time>.{key,crt} (replace) or refused (FP_ERR_EXISTS).
 * serial receives the certificate's hex serial. */
int fp_fw_signer_create(const fp_admin *a, fp_issuer *iss, const char *project, int days,
                        bool replace, char serial[80], fp_error *err);

/* The project's signer: key behind the signer interface, its certificate
 * and the chain above it (signing CA).  Caller frees all three. */
int fp_fw_signer_load(const fp_config *cfg, const char *project, const char *pass,
                      size_t passlen, fp_signer **signer, X509 **cert, STACK_OF(X509) **chain,
                      fp_error *err);

#endif
