/*
 * ocsp_setup.h - build a responder from fleetpki.conf and keep its
 * delegated signer certificate fresh.
 */
#ifndef FP_OCSP_SETUP_H
#define FP_OCSP_SETUP_H

#include <stdbool.h>

#include "../ca/ca.h"
#include "../ca/config.h"
#include "ocsp.h"

/* Renew when less than this fraction of the signer's lifetime remains. */
#define FP_OCSP_RENEW_DIVISOR 3

/* Responder for the issuing CA of cfg, signed by ocsp_cert/ocsp_key
 * (which must be issued by that CA and carry id-kp-OCSPSigning).  Options
 * from [server] ocsp_cache, ocsp_cache_entries, ocsp_validity_seconds. */
int fp_ocsp_from_config(const fp_config *cfg, const char *pass, size_t passlen,
                        fp_ocsp_responder **out, fp_error *err);

/* Serve ca from r, signed by its delegated responder (fp_ca_ocsp_paths). */
int fp_ocsp_add_ca(fp_ocsp_responder *r, fp_ca *ca, const char *pass, size_t passlen,
                   fp_error *err);

/*
 * Check the OCSP signer of ca (its fp_ca_ocsp_paths) at now: if ocsp_cert is missing, unreadable, does
 * not match ocsp_key, or has less than 1/FP_OCSP_RENEW_DIVISOR of its
 * lifetime left, issue a new one through ca (profile ocsp-signer, audited,
 * stored) with a fresh key, and replace ocsp_key then ocsp_cert atomically
 * (a crash between the two leaves a mismatch, which the next check
 * repairs).  *renewed tells whether files changed.  If r is non-NULL it
 * starts signing with the new identity at once.
 */
int fp_ocsp_signer_check(const fp_config *cfg, fp_ca *ca, fp_store *store,
                         const char *pass, size_t passlen, int64_t now,
                         fp_ocsp_responder *r, bool *renewed, fp_error *err);

#endif
