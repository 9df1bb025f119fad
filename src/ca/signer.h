/*
 * signer.h - the one interface through which CA private keys are used.
 *
 * A key file, a key in a PKCS#11 token (keys/p11.h: the "path" is an RFC
 * 7512 pkcs11: URI) or a key held by the separate signer process
 * (signer/): for the last two the EVP_PKEY is a remote key (keys/rkey.h)
 * and the private half never enters this process.  A signer is safe to use
 * from several threads at once (each call uses its own EVP_MD_CTX; OpenSSL
 * 3 keys are immutable once loaded; token sessions are locked per key).
 * A token or signer process that is away fails a call with
 * FP_ERR_KEY_UNAVAILABLE (front ends: 503).
 */
#ifndef FP_SIGNER_H
#define FP_SIGNER_H

#include <stdbool.h>

#include <openssl/cms.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "../common/err.h"

typedef struct fp_signer fp_signer;

/* Load a signer from a PEM key file (decrypting with pass if needed), or
 * from a token when path is a pkcs11: URI (the PIN comes from the URI's
 * pin-source, FP_PKCS11_PIN or [ca] pkcs11_pin_file; pass is unused). */
int fp_signer_open_file(const char *path, const char *pass, size_t passlen,
                        fp_signer **out, fp_error *err);
/* Wrap an in-memory key; takes a new reference (key stays the caller's). */
int fp_signer_from_key(EVP_PKEY *key, fp_signer **out, fp_error *err);
void fp_signer_free(fp_signer *s);

/*
 * Route every later fp_signer_open_file of this process to open: the
 * separate signer process (signer/privsep.h) installs itself here in
 * `serve`, so CA, OCSP and CRL code opens its keys the same way whether
 * they live in this process or another.  open returns a remote key (or an
 * error); NULL restores direct opening.  Set before any thread starts.
 */
typedef int (*fp_signer_opener)(void *arg, const char *path, const char *pass, size_t passlen,
                                EVP_PKEY **out, fp_error *err);
void fp_signer_set_opener(fp_signer_opener open, void *arg);

/*
 * A new key for the file key reference ref (algo as fp_key_generate:
 * "p256", "rsa3072"), written to "<ref>.new" (mode 0600, made anew) and
 * returned as a signer; the caller renames it over ref once the key is
 * wanted (the OCSP signer's renewal: after its certificate is issued).
 * With the separate signer the signer process makes and writes the key,
 * so the network process never holds it (docs/keys.md).
 */
int fp_signer_generate_file(const char *ref, const char *algo, const char *pass, size_t passlen,
                            fp_signer **out, fp_error *err);
typedef int (*fp_signer_generator)(void *arg, const char *ref, const char *algo,
                                   const char *pass, size_t passlen, EVP_PKEY **out,
                                   fp_error *err);
void fp_signer_set_generator(fp_signer_generator gen, void *arg);
/* What the signer process (or this one, without it) does for it. */
int fp_signer_generate_direct(const char *ref, const char *algo, const char *pass,
                              size_t passlen, EVP_PKEY **out, fp_error *err);

/* Open path directly (file or pkcs11: URI), ignoring any opener: what the
 * signer process itself does. */
int fp_signer_open_direct(const char *path, const char *pass, size_t passlen, fp_signer **out,
                          fp_error *err);

/* The key as an EVP_PKEY (borrowed), for OpenSSL calls this interface
 * does not wrap yet (CMS_sign for firmware, issue 13).  For token and
 * signer-process keys it is a remote key: OpenSSL signs through it, the
 * private half stays where it is.  Report signing failures through the
 * signer's functions where possible: they carry the token's reason. */
EVP_PKEY *fp_signer_get0_pkey(fp_signer *s);

/* FP_ERR_OK if cert's public key is this signer's. */
int fp_signer_check_cert(fp_signer *s, X509 *cert, fp_error *err);

int fp_signer_sign_cert(fp_signer *s, X509 *cert, fp_error *err);
int fp_signer_sign_crl(fp_signer *s, X509_CRL *crl, fp_error *err);
int fp_signer_sign_req(fp_signer *s, X509_REQ *req, fp_error *err);
/* Sign an OCSP basic response with signer_cert as the responder. */
int fp_signer_sign_ocsp(fp_signer *s, OCSP_BASICRESP *resp, X509 *signer_cert,
                        STACK_OF(X509) *certs, unsigned long flags, fp_error *err);

/*
 * The same signatures without waiting (signer/async.h): on a thread with a
 * runner (a network worker) and a key whose signer can answer later (the
 * separate signer process), the signing call runs in an ASYNC job that
 * pauses while the signature is out, and done(arg, rc, err) is called from
 * the thread's event loop once it is in; anywhere else the call is made at
 * once and done is called before this returns.  done is called exactly
 * once, on this thread; err is valid during the call only.  cert, resp and
 * what they point to must stay valid until then.
 */
typedef void (*fp_sign_done)(void *arg, int rc, const fp_error *err);
void fp_signer_sign_cert_async(fp_signer *s, X509 *cert, fp_sign_done done, void *arg);
void fp_signer_sign_ocsp_async(fp_signer *s, OCSP_BASICRESP *resp, X509 *signer_cert,
                               STACK_OF(X509) *certs, unsigned long flags, fp_sign_done done,
                               void *arg);

/* The calling thread's runner for the above (signer/async.c installs it on
 * each network worker; NULL: none).  run returns false when it cannot
 * (the caller then signs at once); true: it calls done exactly once. */
typedef int (*fp_sign_call)(void *carg, fp_error *err);
typedef bool (*fp_sign_runner)(void *rarg, fp_sign_call call, void *carg, fp_sign_done done,
                               void *darg);
void fp_signer_set_thread_runner(fp_sign_runner run, void *rarg);

/*
 * A remote key's descriptor that carries one request after another (the
 * separate signer's async channel, signer/privsep.c): keep says the
 * thread's runner may go on watching it between requests rather than
 * adding and removing it each time; forget, called before closing it,
 * drops the watch (libevent must not see a closed descriptor's number
 * reused under a registration it still holds).  The runner installs the
 * hook (rarg is fp_signer_set_thread_runner's); no hook: nothing.
 */
typedef void (*fp_sign_fd_hook)(void *rarg, int fd, bool keep);
void fp_signer_set_thread_fd_hook(fp_sign_fd_hook hook);
void fp_signer_thread_keep_fd(int fd);
void fp_signer_thread_forget_fd(int fd);

/*
 * Run fn(arg) once at the end of the event loop's current turn, after the
 * other callbacks that are ready now (so a backend can send the requests
 * of a whole turn in one write and wake the signer once); a second call
 * with the same arg before then is the same one.  true: it will run (the
 * thread's runner installed the hook); false: no runner, run it now.
 */
typedef void (*fp_sign_defer_fn)(void *arg);
typedef bool (*fp_sign_defer_hook)(void *rarg, fp_sign_defer_fn fn, void *arg);
void fp_signer_set_thread_defer_hook(fp_sign_defer_hook hook);
bool fp_signer_thread_defer(fp_sign_defer_fn fn, void *arg);

/* A CMS SignedData (RFC 5652) over data by this key with signer_cert
 * (and certs, the chain, included), as OpenSSL's CMS_sign with flags
 * (CMS_DETACHED, CMS_BINARY ...).  data is read to its end.  *out (caller
 * frees) on FP_ERR_OK.  For firmware signatures (src/firmware/fw_cms.c). */
int fp_signer_sign_cms(fp_signer *s, X509 *signer_cert, STACK_OF(X509) *certs, BIO *data,
                       unsigned int flags, CMS_ContentInfo **out, fp_error *err);

/*
 * Incremental signing, for documents too large to hold in memory (a CRL
 * with a million entries).  The caller frames the DER itself: it asks for
 * the AlgorithmIdentifier to embed in the to-be-signed data, feeds those
 * bytes with _update, and receives the raw signature value from _final.
 * EdDSA signs the whole message in one pass (RFC 8032 PureEdDSA), so for an
 * Ed25519 key the stream buffers the data and memory grows with it.
 */
typedef struct fp_sign_stream fp_sign_stream;

int fp_signer_stream_new(fp_signer *s, fp_sign_stream **out, fp_error *err);
/* DER AlgorithmIdentifier of the signature (borrowed from st). */
void fp_signer_stream_get0_alg(const fp_sign_stream *st, const unsigned char **der,
                               size_t *len);
int fp_signer_stream_update(fp_sign_stream *st, const void *data, size_t len,
                            fp_error *err);
/* Signature value (DER ECDSA-Sig-Value, RSA octets or EdDSA octets);
 * *sig is OPENSSL_malloc'd and owned by the caller.  Ends the stream. */
int fp_signer_stream_final(fp_sign_stream *st, unsigned char **sig, size_t *siglen,
                           fp_error *err);
void fp_signer_stream_free(fp_sign_stream *st);

#endif
