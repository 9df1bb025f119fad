/*
 * chain_check.h - a verified certificate chain checked against our own
 * records (issue 8, defect 3).
 *
 * Signature verification proves a chain is authentic, not that it is
 * still good: a sub-CA or client certificate we issued may since have been
 * revoked, put on hold or (in our record) have expired.  Every front end
 * that accepts a client chain (EST, later CMP and SCEP) runs it through
 * here after X509_verify_cert, so each certificate of it that our issuing
 * CA signed is looked up in the store, at every depth.
 *
 * Two steps so a caller can cache the expensive one: collecting the
 * serials (walks the chain once per connection) and checking them (one
 * indexed status query per serial, per request, so a revocation takes
 * effect on the next request of a keep-alive connection).
 */
#ifndef FP_CHAIN_CHECK_H
#define FP_CHAIN_CHECK_H

#include <stdint.h>

#include <openssl/x509.h>

#include "../store/store.h"

#define FP_CHAIN_SERIAL_LEN 41 /* uppercase hex + NUL, as fp_serial_hex */

/* Serials (fp_serial_hex form) of the certificates of chain that issuer
 * signed, by name and key identifier (X509_check_issued; the chain is
 * assumed verified, so the signature was checked there).  *out is a
 * malloc'd array of *n entries (NULL when *n is 0); free() it. */
int fp_chain_issued_serials(X509 *issuer, STACK_OF(X509) *chain,
                            char (**out)[FP_CHAIN_SERIAL_LEN], int *n, fp_error *err);

/* Each serial must be a certificate of ca_id in the store, valid (not
 * revoked, not on hold) and inside its not_before..not_after at now.  FP_ERR_STATE
 * names the first that is not (unknown to the store counts: a certificate
 * our CA signed that we have no record of is not one we stand behind);
 * store errors pass through. */
int fp_chain_check_serials(fp_store *s, const char *ca_id,
                           const char (*serials)[FP_CHAIN_SERIAL_LEN], int n, int64_t now,
                           fp_error *err);

/* Both steps at once: every certificate of chain that issuer (our issuing
 * CA, store id ca_id) signed must be valid in our store at now. */
int fp_chain_check_store(fp_store *s, X509 *issuer, const char *ca_id, STACK_OF(X509) *chain,
                         int64_t now, fp_error *err);

#endif
