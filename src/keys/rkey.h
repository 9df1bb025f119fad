/*
 * rkey.h - an EVP_PKEY whose private operation happens somewhere else.
 *
 * A CA key in a PKCS#11 token or in the separate signer process is never in
 * this process's memory, yet OpenSSL's X509_sign, X509_CRL_sign,
 * OCSP_basic_sign and CMS_sign all want an EVP_PKEY.  rkey.c is a small
 * OpenSSL 3 provider, loaded into a library context of its own, whose key
 * management holds only the public key plus a callback, and whose
 * signature implementations hash locally and hand the digest (or, for
 * PureEdDSA, the whole message, RFC 8032 5.1.6) to that callback.  OpenSSL
 * itself frames the DER, so no ASN.1 is written here.
 *
 * Key types: EC (ECDSA), RSA (PKCS#1 v1.5, RFC 8017 8.2) and Ed25519.
 */
#ifndef FP_RKEY_H
#define FP_RKEY_H

#include <stddef.h>

#include <openssl/evp.h>

#include "../common/err.h"

/*
 * The backend's one operation.  mdname is the digest's name ("SHA256") and
 * data its value, or mdname is NULL and data is the message to sign in one
 * pass (Ed25519).  On success *sig holds an OPENSSL_malloc'd signature in
 * the form OpenSSL writes it (DER ECDSA-Sig-Value, RSA octets, EdDSA
 * octets).  Called from any thread; the backend serialises itself.
 */
typedef int (*fp_rkey_sign_fn)(void *arg, const char *mdname, const unsigned char *data,
                               size_t len, unsigned char **sig, size_t *siglen,
                               fp_error *err);

/*
 * Asynchronous signing (optional; NULL: sign only).  When a signature is
 * asked for inside an OpenSSL ASYNC job (openssl/async.h), the provider
 * calls start instead of sign: it sends the request and sets *fd to a
 * descriptor that becomes readable when the answer is there, and *ticket
 * to what finish needs to collect it.  The provider then registers fd with
 * the job's wait context and pauses the job (ASYNC_pause_job); whoever
 * runs the job (signer/async.h) resumes it once fd is readable, and the
 * provider calls finish, which reads the answer (the sign contract's
 * *sig and err).  finish is called exactly once for every start that set
 * *fd >= 0, on the thread that called start.
 * finish may also return FP_RKEY_AGAIN: the answer is not in yet (fd was
 * readable for an earlier request's answer on the same descriptor); the
 * job waits for fd again and finish is called again.  A runner resumes
 * the jobs waiting on one descriptor in the order they paused, which is
 * the order their requests went out.
 * start may also set *fd to FP_RKEY_WAIT: no channel is free now, the job
 * pauses with no descriptor and start is tried again when it is resumed
 * (its runner resumes such a job once another signature came back); or
 * to FP_RKEY_BLOCK: this thread cannot sign asynchronously, sign is used.
 */
#define FP_RKEY_WAIT (-1)
#define FP_RKEY_BLOCK (-2)
#define FP_RKEY_AGAIN (-3)
typedef int (*fp_rkey_start_fn)(void *arg, const char *mdname, const unsigned char *data,
                                size_t len, int *fd, void **ticket, fp_error *err);
typedef int (*fp_rkey_finish_fn)(void *arg, void *ticket, unsigned char **sig, size_t *siglen,
                                 fp_error *err);

typedef struct fp_rkey_backend {
    fp_rkey_sign_fn sign;
    void (*free)(void *arg); /* may be NULL */
    void *arg;
    fp_rkey_start_fn start;   /* may be NULL (then finish too) */
    fp_rkey_finish_fn finish;
} fp_rkey_backend;

/*
 * A remote key with pub's public half.  The new key takes ownership of be
 * (be->free(be->arg) runs when the last reference goes, or here on failure).
 */
int fp_rkey_new(EVP_PKEY *pub, const fp_rkey_backend *be, EVP_PKEY **out, fp_error *err);

/* Sign a digest (or, mdname NULL, a whole message for Ed25519) with a
 * remote key's backend directly: the signer process uses it to serve a
 * token key.  FP_ERR_ARG if key is not remote. */
int fp_rkey_sign_raw(EVP_PKEY *key, const char *mdname, const unsigned char *data, size_t len,
                     unsigned char **sig, size_t *siglen, fp_error *err);

/* true if key is one made by fp_rkey_new. */
int fp_rkey_is_remote(const EVP_PKEY *key);

/* true if key is remote and its backend can sign asynchronously (start):
 * worth running its signing call in an ASYNC job. */
int fp_rkey_can_async(EVP_PKEY *key);

/* The last backend error seen in this thread (its message), "" if none:
 * OpenSSL's signing calls only say "failed", and the caller wants why.
 * With ASYNC jobs interleaving on one thread it is still the error of the
 * signature just made: it is written only after the job resumed, and the
 * job runs on to its end before any other job runs (call it inside the
 * job, as signer.c does). */
const fp_error *fp_rkey_last_error(void);
void fp_rkey_clear_error(void);

#endif
