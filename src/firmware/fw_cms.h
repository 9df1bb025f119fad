/*
 * fw_cms.h - detached CMS SignedData (RFC 5652) over a firmware image, the
 * form Linux update frameworks (RAUC, SWUpdate) verify; checkable with
 * `openssl cms -verify -binary -purpose any -inform DER -content IMAGE`.
 */
#ifndef FP_FW_CMS_H
#define FP_FW_CMS_H

#include <stddef.h>

#include <openssl/x509.h>

#include "../ca/signer.h"

/* Sign the file image_path (streamed, never held whole) with s / cert,
 * chain included; DER into *out (OPENSSL_malloc'd).  sha256 receives the
 * messageDigest the signature covers (what was actually read). */
int fp_fw_cms_sign(fp_signer *s, X509 *cert, STACK_OF(X509) *chain, const char *image_path,
                   unsigned char **out, size_t *len, unsigned char sha256[32], fp_error *err);

/* Verify der against image_path: the signer chains to anchor (CRL: crls
 * may be NULL), carries EKU codeSigning, and the signature covers the
 * image.  FP_ERR_CRYPTO with the reason otherwise. */
int fp_fw_cms_verify(const unsigned char *der, size_t len, const char *image_path, X509 *anchor,
                     STACK_OF(X509_CRL) *crls, fp_error *err);

#endif
