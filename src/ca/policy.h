/*
 * policy.h - checks a PKCS#10 request against a profile before anything is
 * signed.  Each refusal maps to a stable error code (err.h, FP_ERR_CSR_*)
 * and a message that names the offending field.
 */
#ifndef FP_POLICY_H
#define FP_POLICY_H

#include <openssl/x509.h>

#include "profile.h"

/* Limits on what a request may contain ("sane lengths"). */
#define FP_POLICY_MAX_SUBJECT_DER 1024
#define FP_POLICY_MAX_RDNS 16
#define FP_POLICY_MAX_RDN_VALUE 128
#define FP_POLICY_MAX_CN 64 /* RFC 5280 ub-common-name */
#define FP_POLICY_MAX_EXTENSIONS 32
#define FP_POLICY_MAX_URI 1024

/* FP_ERR_OK when req may be issued under p; else an FP_ERR_CSR_* code. */
int fp_policy_check(const fp_profile *p, X509_REQ *req, fp_error *err);

/* fp_policy_check without the proof-of-possession and signature-algorithm
 * checks, for a request the server assembled around a key it generated
 * itself (EST serverkeygen): such a request need not be signed at all.
 * Every other rule applies. */
int fp_policy_check_own_key(const fp_profile *p, X509_REQ *req, fp_error *err);

/* Only the rules a client's own request must meet to prove possession of
 * its key: signature algorithm, the key rules (fp_x509_spki_check) and the
 * signature itself; codes as fp_policy_check.  For EST serverkeygen, whose
 * client request is not the one certified (RFC 7030 4.4.1) but must still
 * not "prove" possession with an e = 1 key or a SHA-1 signature. */
int fp_policy_check_pop(X509_REQ *req, fp_error *err);

#endif
