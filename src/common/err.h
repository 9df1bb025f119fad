/*
 * err.h - fleetpki error codes and the per-call error context.
 *
 * One X-macro list yields the enum, the stable short names (used in CLI
 * output and protocol error bodies, e.g. "csr-key-size") and default
 * messages.  Names are part of the public interface: never rename an
 * existing entry.  The numbers are internal (never stored or sent).  What
 * kind of failure each code is (a policy refusal, malformed input, ...)
 * is decided by fp_err_class() alone; a new refusal goes inside the
 * PROFILE..ISSUER_EXPIRED range, which fp_err_class reads.
 */
#ifndef FP_ERR_H
#define FP_ERR_H

#include <stddef.h>

#define FP_ERR_LIST(X)                                                        \
    X(OK, "ok", "success")                                                    \
    X(NOMEM, "nomem", "out of memory")                                        \
    X(IO, "io", "input/output error")                                         \
    X(ARG, "bad-argument", "invalid argument")                                \
    X(CONFIG, "config", "invalid configuration")                              \
    X(CRYPTO, "crypto", "cryptographic operation failed")                     \
    X(STORE, "store", "store error")                                          \
    X(NOT_FOUND, "not-found", "not found")                                    \
    X(EXISTS, "exists", "already exists")                                     \
    X(DUPLICATE, "duplicate", "unique constraint violated")                   \
    X(PASSPHRASE, "passphrase", "wrong or missing passphrase")                \
    X(PROFILE, "profile-unknown", "no such certificate profile")              \
    X(TOO_LARGE, "too-large", "input exceeds size limit")                     \
    X(CSR_MALFORMED, "csr-malformed", "CSR is not a valid PKCS#10 request")   \
    X(CSR_POP, "csr-pop", "CSR signature does not verify")                    \
    X(CSR_SIG_ALG, "csr-sig-alg", "CSR signature algorithm not allowed")      \
    X(CSR_KEY_ALG, "csr-key-alg", "key algorithm not allowed by profile")     \
    X(CSR_KEY_SIZE, "csr-key-size", "key size not allowed by profile")        \
    X(CSR_KEY, "csr-key-params", "public key parameters not accepted (RSA exponent or modulus, EC point)") \
    X(CSR_CA, "csr-ca", "CSR requests a CA certificate on a leaf profile")    \
    X(CSR_KEY_USAGE, "csr-key-usage", "CSR requests a key usage the profile forbids") \
    X(CSR_EXT, "csr-ext", "CSR carries an extension the profile rejects")     \
    X(CSR_SUBJECT, "csr-subject", "subject violates profile rules")           \
    X(CSR_CN, "csr-cn", "common name missing or not matching profile pattern") \
    X(CSR_SAN, "csr-san", "subjectAltName violates profile rules")            \
    X(VALIDITY, "validity", "requested validity not allowed")                 \
    X(ISSUER_EXPIRED, "issuer-expired", "issuing CA is expired or not yet valid") \
    X(STATE, "bad-state", "operation not allowed in the current state")       \
    X(AUDIT, "audit-broken", "audit log chain does not verify")               \
    X(INTERNAL, "internal", "internal error")                                 \
    X(CA_CERT, "ca-cert-rejected", "certificate is not acceptable as a CA or trust root") \
    X(KEY_UNAVAILABLE, "key-unavailable", "signing key unavailable (token or signer process)") \
    X(UNAVAILABLE, "unavailable", "temporarily unavailable, retry later")

typedef enum {
#define FP_X_ENUM(sym, name, msg) FP_ERR_##sym,
    FP_ERR_LIST(FP_X_ENUM)
#undef FP_X_ENUM
    FP_ERR__COUNT
} fp_errcode;

#define FP_ERRMSG_MAX 512

/* Per-call error context.  Functions that can fail take an fp_error * (may
 * be NULL) and fill it on failure; the return value is the fp_errcode. */
typedef struct fp_error {
    fp_errcode code;
    char msg[FP_ERRMSG_MAX];
} fp_error;

/*
 * Error classes: what kind of failure a code is, decided here once for
 * every front end.  Each protocol maps classes (never single codes) to its
 * wire status with one table (EST: est_status_of, the CLI: cli_fail).
 */
typedef enum {
    FP_ERRCLASS_INTERNAL = 0, /* our fault: logged with detail, answered vaguely */
    FP_ERRCLASS_BAD_INPUT,    /* an invalid argument or parameter */
    FP_ERRCLASS_MALFORMED,    /* a request that does not parse */
    FP_ERRCLASS_REFUSED,      /* well-formed, refused by policy (audited) */
    FP_ERRCLASS_TOO_LARGE,
    FP_ERRCLASS_NOT_FOUND,
    FP_ERRCLASS_CONFLICT,     /* exists / duplicate / wrong state */
    FP_ERRCLASS_AUTH,         /* wrong or missing credentials */
    FP_ERRCLASS_UNAVAILABLE,  /* a dependency is down (database, key token, signer): retry later */
} fp_errclass;

fp_errclass fp_err_class(int code);
/* A policy refusal (class REFUSED): the CSR policy, profile and validity
 * rules, which every issuance writes to the audit log. */
int fp_err_is_refusal(int code);

/* Stable short name of code ("csr-pop"); never NULL. */
const char *fp_err_name(int code);
/* Default human message of code; never NULL. */
const char *fp_err_default_msg(int code);

/*
 * Record an error in e (if non-NULL) and return code.  The formatted message
 * is followed by the drained OpenSSL error queue when FP_ERR_CRYPTO is set,
 * so the caller sees why OpenSSL failed.  The queue is always cleared.
 */
int fp_err_set(fp_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend a formatted context ("line 3: ") to e's message, bounded. */
void fp_err_prefix(fp_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear e to FP_ERR_OK. */
void fp_err_clear(fp_error *e);
/* "name: message" for e, in a static-free way: writes into buf. */
const char *fp_err_str(const fp_error *e);

#endif
