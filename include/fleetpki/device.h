/*
 * fleetpki/device.h - libfleetpki-device: an RFC 7030 (EST) client and a
 * power-cut-safe credential store for devices.
 *
 * Everything hangs off explicit objects: there is no global state, no
 * thread, no event loop.  One fp_device is used by one thread at a time;
 * independent objects may be used from different threads.
 *
 * Ownership (OpenSSL's words): _new/_free pairs; "get0" borrows (valid
 * until the owner changes or is freed); "get1"/"out" parameters hand the
 * caller something it frees with the named function; "set1" copies or
 * takes its own reference, the caller keeps its argument.
 *
 * Errors: every function that can fail returns an fp_device_err
 * (FP_DEVICE_OK = 0); the object it was called on keeps a message with
 * details (fp_device_errmsg, fp_credstore_errmsg).  The stable short name
 * of a code is fp_device_err_name().  Nothing prints, nothing exits.
 *
 * Secrets (private keys, passwords) are wiped from the library's memory
 * when freed; buffers holding them are freed with fp_device_secret_free.
 */
#ifndef FLEETPKI_DEVICE_H
#define FLEETPKI_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FP_DEVICE_BUILDING) && defined(__GNUC__)
#define FP_DEVICE_API __attribute__((visibility("default")))
#else
#define FP_DEVICE_API
#endif

/* Error codes; the names are stable, the numbers too (never reordered). */
#define FP_DEVICE_ERR_LIST(X)                                                        \
    X(OK, "ok", "success")                                                           \
    X(ARG, "bad-argument", "invalid argument or missing configuration")              \
    X(NOMEM, "nomem", "out of memory")                                               \
    X(IO, "io", "network or storage input/output error")                             \
    X(TLS, "tls", "TLS connection or handshake failed")                              \
    X(TRUST, "untrusted", "peer or certificate does not chain to the trust anchor") \
    X(FINGERPRINT, "fingerprint", "bootstrap CA fingerprint does not match")         \
    X(MALFORMED, "malformed", "malformed answer from the server")                    \
    X(TOO_BIG, "too-big", "answer exceeds the configured size limit")                \
    X(TRUNCATED, "truncated", "answer ended before it was complete")                 \
    X(HTTP, "http-status", "server answered with an unexpected HTTP status")         \
    X(AUTH, "auth", "server refused the credentials (401/403)")                      \
    X(RETRY_LATER, "retry-later", "server asks to retry later (202/503)")            \
    X(KEY_MISMATCH, "key-mismatch", "certificate does not hold our key")            \
    X(CRYPTO, "crypto", "cryptographic operation failed")                            \
    X(UNSUPPORTED, "unsupported", "not supported by this build")                    \
    X(STORE, "store", "credential store error")                                      \
    X(NOT_FOUND, "not-found", "no usable credentials")

typedef enum {
#define FP_DEVICE_X_ENUM(sym, name, msg) FP_DEVICE_ERR_##sym,
    FP_DEVICE_ERR_LIST(FP_DEVICE_X_ENUM)
#undef FP_DEVICE_X_ENUM
    FP_DEVICE_ERR__COUNT
} fp_device_err;
#define FP_DEVICE_OK FP_DEVICE_ERR_OK

/* Stable short name / default message of a code (static strings). */
FP_DEVICE_API const char *fp_device_err_name(int code);
FP_DEVICE_API const char *fp_device_err_message(int code);
/* Name of the TLS/crypto backend compiled in: "openssl" or "mbedtls". */
FP_DEVICE_API const char *fp_device_backend(void);

/* Wipes and frees a buffer the library handed out holding a secret (key
 * PEM).  NULL is a no-op. */
FP_DEVICE_API void fp_device_secret_free(void *p, size_t len);
/* Frees any other buffer the library handed out.  NULL is a no-op. */
FP_DEVICE_API void fp_device_buf_free(void *p);

/* ---------------------------------------------------------------------
 * Credentials: a private key and its certificate chain (leaf first).
 * Reference counted; not thread-safe to share between threads.
 * ------------------------------------------------------------------- */
typedef struct fp_device_cred fp_device_cred;

/* Parses a key (PEM: PKCS#8, or the backend's traditional forms) and a
 * certificate chain (PEM, leaf first).  Fails with KEY_MISMATCH unless the
 * leaf holds the key.  *out: a new credential, fp_device_cred_free it.
 * The inputs are not kept. */
FP_DEVICE_API int fp_device_cred_from_pem(const char *key_pem, size_t key_len,
                                          const char *chain_pem, size_t chain_len,
                                          fp_device_cred **out);
/* Drops one reference; the last one wipes the key.  NULL is a no-op. */
FP_DEVICE_API void fp_device_cred_free(fp_device_cred *c);
/* Key as PEM (PKCS#8 on OpenSSL; SEC1/PKCS#1 on mbedTLS 2.28, which
 * writes no PKCS#8; both backends read both): *out allocated, release
 * with fp_device_secret_free. */
FP_DEVICE_API int fp_device_cred_key_pem(const fp_device_cred *c, char **out, size_t *len);
/* Chain as PEM certificates, leaf first: *out allocated, fp_device_buf_free. */
FP_DEVICE_API int fp_device_cred_chain_pem(const fp_device_cred *c, char **out, size_t *len);
/* Leaf notBefore/notAfter as seconds since the epoch. */
FP_DEVICE_API int fp_device_cred_validity(const fp_device_cred *c, int64_t *not_before,
                                          int64_t *not_after);

/* ---------------------------------------------------------------------
 * EST client (RFC 7030)
 * ------------------------------------------------------------------- */
typedef struct fp_device fp_device;

/* A new client with nothing configured; NULL when out of memory. */
FP_DEVICE_API fp_device *fp_device_new(void);
/* Frees the client, wipes the password it holds.  NULL is a no-op. */
FP_DEVICE_API void fp_device_free(fp_device *d);
/* Message of the last failed call on d (details, server's one-line reason);
 * get0: valid until the next call on d.  "" after success. */
FP_DEVICE_API const char *fp_device_errmsg(const fp_device *d);
/* HTTP status of the last answer (0 when none arrived). */
FP_DEVICE_API int fp_device_http_status(const fp_device *d);
/* Retry-After of the last 202/503 in seconds, -1 when absent. */
FP_DEVICE_API long fp_device_retry_after(const fp_device *d);

/* Server: host name or address (checked against the TLS certificate),
 * port, and an optional label (RFC 7030 3.2.2; NULL or "" for none).
 * The strings are copied. */
FP_DEVICE_API int fp_device_set_server(fp_device *d, const char *host, unsigned port,
                                       const char *label);
/* Explicit trust anchor(s) (RFC 7030 3.6.1): PEM certificates, copied.
 * The server's TLS certificate must chain to one of them, and so must
 * every certificate the client accepts.  Required before any operation
 * except fp_device_bootstrap. */
FP_DEVICE_API int fp_device_set1_trust_anchors(fp_device *d, const char *pem, size_t len);
/* HTTP Basic credentials (RFC 7030 3.2.3), copied; NULL user clears.
 * Sent only over a TLS connection whose server was verified. */
FP_DEVICE_API int fp_device_set_basic_auth(fp_device *d, const char *user, const char *password);
/* TLS client certificate (RFC 7030 3.3.2): d takes its own reference;
 * NULL clears.  Used for every later operation (e.g. an IDevID for the
 * first enrollment, the current certificate for simplereenroll). */
FP_DEVICE_API int fp_device_set1_client_cred(fp_device *d, fp_device_cred *c);
/* Limits: largest answer body accepted (default 64 KiB) and the network
 * timeout per read/write/connect in milliseconds (default 30000). */
FP_DEVICE_API int fp_device_set_limits(fp_device *d, size_t max_body, int timeout_ms);

/* Bootstrap (RFC 7030 4.1.1): fetches /cacerts WITHOUT verifying the
 * server, then accepts the answer only if one of its certificates is a
 * self-signed CA whose SHA-256 fingerprint (of the DER) equals
 * expected_sha256 (obtained out of band), every other certificate chains
 * to it, and the server's own TLS certificate chains to it too.  No
 * credentials are sent on that connection.  On success the fingerprinted
 * certificate becomes d's trust anchor and the chain d's CA certificates;
 * if pem_out is non-NULL it receives the anchor as PEM (fp_device_buf_free). */
FP_DEVICE_API int fp_device_bootstrap(fp_device *d, const unsigned char expected_sha256[32],
                                      char **pem_out, size_t *pem_len);

/* /cacerts (RFC 7030 4.1) over a verified connection.  Each certificate
 * must chain to the trust anchors.  Kept in d (used as intermediates when
 * verifying issued certificates); if pem_out is non-NULL it receives them
 * as PEM (fp_device_buf_free). */
FP_DEVICE_API int fp_device_cacerts(fp_device *d, char **pem_out, size_t *pem_len);
/* /cacerts over a connection whose server is verified against the anchors
 * as above, but the certificates themselves are only parsed, not verified
 * and not kept in d: for a caller deciding a root rollover (RFC 7030
 * 4.1.3, RFC 4210 4.4), where the new root does not chain to the current
 * anchor by itself.  *pem_out (required) receives them as PEM
 * (fp_device_buf_free).  Trust nothing in it without checking. */
FP_DEVICE_API int fp_device_cacerts_unverified(fp_device *d, char **pem_out, size_t *pem_len);

/* Key types (what to generate). */
typedef enum {
    FP_DEVICE_KEY_AUTO = 0, /* what /csrattrs asks for, else P-256 */
    FP_DEVICE_KEY_P256,
    FP_DEVICE_KEY_P384,
    FP_DEVICE_KEY_P521,
    FP_DEVICE_KEY_ED25519,
    FP_DEVICE_KEY_RSA2048,
    FP_DEVICE_KEY_RSA3072
} fp_device_key_type;

/* What the server's /csrattrs asked for (RFC 7030 4.5), as far as the
 * client understood it; unknown items are ignored (RFC 7030 4.5.2). */
typedef struct {
    fp_device_key_type key_type; /* AUTO when no key type was asked for */
    int digest_bits;             /* 256/384/512, 0 when not asked */
    int challenge_password;      /* 1 when challengePassword was asked for */
    int n_items;                 /* items in the answer, understood or not */
} fp_device_csrattrs;

/* /csrattrs: out zeroed and filled; a 204 or 404 answer gives zero items. */
FP_DEVICE_API int fp_device_get_csrattrs(fp_device *d, fp_device_csrattrs *out);

/* Options of an enrollment.  Zero-initialise and set what you need. */
typedef struct {
    const char *common_name;    /* subject CN (required for enroll/keygen) */
    const char *serial_number;  /* subject serialNumber, optional */
    const char *dns_name;       /* one subjectAltName dNSName, optional */
    fp_device_key_type key_type;
    int use_csrattrs;           /* fetch /csrattrs and honour it */
    const char *challenge_password; /* put in the CSR, optional (secret) */
    int rekey;                  /* reenroll: 1 = new key, 0 = keep the key */
    int encrypt_key;            /* serverkeygen: ask for the key encrypted to
                                   the TLS client certificate (4.4.1.2) */
} fp_device_enroll_opts;

/* A simpleenroll or simplereenroll answered 202 or 503 (RETRY_LATER), or
 * lost to a network failure after the request was sent, leaves its key
 * and CSR pending in d: the next call of the SAME operation sends that CSR
 * again byte for byte (RFC 7030 4.2.3; a server holding it for approval
 * recognises it) and its options are then ignored.  Any other answer, a
 * call of another operation, fp_device_set_server or
 * fp_device_drop_pending discards it.  Not kept: a CSR carrying the
 * connection's channel binding (valid on that connection only) and
 * serverkeygen requests. */
FP_DEVICE_API int fp_device_has_pending(const fp_device *d);
FP_DEVICE_API void fp_device_drop_pending(fp_device *d);

/* /simpleenroll (RFC 7030 4.2.1): generates a key, sends a CSR, and checks
 * the answer: certs-only PKCS#7 whose certificate holds our key and chains
 * to the trust anchors.  *out: new credential (fp_device_cred_free). */
FP_DEVICE_API int fp_device_enroll(fp_device *d, const fp_device_enroll_opts *o,
                                   fp_device_cred **out);
/* /simplereenroll (RFC 7030 4.2.2) authenticated by the client credential
 * (fp_device_set1_client_cred), Subject and subjectAltName copied from its
 * certificate; a new key when o->rekey.  o may be NULL (rekey). */
FP_DEVICE_API int fp_device_reenroll(fp_device *d, const fp_device_enroll_opts *o,
                                     fp_device_cred **out);
/* /serverkeygen (RFC 7030 4.4): the server makes the key; the answer's key
 * must match its certificate.  With o->encrypt_key the key arrives as CMS
 * SignedData(EnvelopedData) (4.4.2), signed by a certificate chaining to
 * the anchors and decrypted with the client credential's key (OpenSSL
 * backend only; UNSUPPORTED elsewhere). */
FP_DEVICE_API int fp_device_serverkeygen(fp_device *d, const fp_device_enroll_opts *o,
                                         fp_device_cred **out);

/* ---------------------------------------------------------------------
 * Storage interface: what the credential store needs from a filesystem.
 * Names are short relative names ("cred0.key"); the implementation maps
 * them into its directory.  Each function returns 0 or -1.
 * Durability contract the store relies on: data written to a file is
 * durable once sync(file) returned 0; a create, rename or unlink is
 * durable once sync(NULL) (the directory) returned 0; rename replaces its
 * target atomically.
 * ------------------------------------------------------------------- */
typedef struct fp_storage_file fp_storage_file;
typedef struct {
    void *ctx;
    /* write != 0: create or truncate for writing; else open for reading
     * (-1 with *missing = 1 when the name does not exist). */
    int (*open)(void *ctx, const char *name, int write, fp_storage_file **f, int *missing);
    /* reads up to len bytes; *got = 0 at the end */
    int (*read)(void *ctx, fp_storage_file *f, void *buf, size_t len, size_t *got);
    int (*write)(void *ctx, fp_storage_file *f, const void *buf, size_t len);
    /* f == NULL: make creates, renames and unlinks in the directory durable */
    int (*sync)(void *ctx, fp_storage_file *f);
    int (*close)(void *ctx, fp_storage_file *f);
    int (*rename)(void *ctx, const char *from, const char *to);
    /* a missing name is not an error */
    int (*unlink)(void *ctx, const char *name);
} fp_storage;

/* The POSIX implementation over directory dir (which must exist).  *out
 * is filled; release with fp_storage_posix_close. */
FP_DEVICE_API int fp_storage_posix_open(const char *dir, fp_storage *out);
FP_DEVICE_API void fp_storage_posix_close(fp_storage *s);

/* ---------------------------------------------------------------------
 * Credential store: two slots of (key, chain) files; see docs/device.md.
 * ------------------------------------------------------------------- */
typedef struct fp_credstore fp_credstore;

/* Opens the store over st (borrowed: must outlive the store) and picks the
 * newest pair whose key matches its certificate and whose chain verifies
 * against anchors_pem (copied; validity dates are not checked here: an
 * expired pair is still the device's identity for renewal decisions).
 * *out is created even when no pair is usable (fp_credstore_get1_current
 * then answers NOT_FOUND). */
FP_DEVICE_API int fp_credstore_open(const fp_storage *st, const char *anchors_pem,
                                    size_t anchors_len, fp_credstore **out);
FP_DEVICE_API void fp_credstore_free(fp_credstore *s);
/* get0: details of the last failed call on s. */
FP_DEVICE_API const char *fp_credstore_errmsg(const fp_credstore *s);
/* The current pair: *out gets a new reference (fp_device_cred_free). */
FP_DEVICE_API int fp_credstore_get1_current(fp_credstore *s, fp_device_cred **out);
/* 1 when a previous pair is still kept (the current one not confirmed). */
FP_DEVICE_API int fp_credstore_has_previous(const fp_credstore *s);
/* Writes c beside the current pair, syncs, and switches to it atomically;
 * the current pair stays as the fallback until fp_credstore_confirm.  c
 * must hold a matching key and a chain verifying against the anchors.
 * On any failure the store on disk still yields a valid pair. */
FP_DEVICE_API int fp_credstore_rotate(fp_credstore *s, fp_device_cred *c);
/* The current pair was used successfully: forget the previous one. */
FP_DEVICE_API int fp_credstore_confirm(fp_credstore *s);
/* The current (unconfirmed) pair does not work: go back to the previous. */
FP_DEVICE_API int fp_credstore_rollback(fp_credstore *s);
/* Factory provisioning (`fleetpki factory mint`): writes a first pair into
 * an EMPTY store over st, as slot 0, generation 1, with the very steps
 * and format of fp_credstore_rotate (each file written as .new and synced
 * through st, renamed into place, directory synced).  The PEM is written
 * as given, neither parsed nor verified (the factory made the key and the
 * chain; fp_credstore_open checks them as it checks any pair).  key_pem:
 * the private key (PKCS#8 PEM); chain_pem: PEM certificates, leaf first.
 * STORE when the store already holds a credential file (nothing is
 * written), IO when a storage call fails. */
FP_DEVICE_API int fp_credstore_provision(const fp_storage *st, const char *key_pem,
                                         size_t key_len, const char *chain_pem,
                                         size_t chain_len);

#ifdef __cplusplus
}
#endif
#endif
