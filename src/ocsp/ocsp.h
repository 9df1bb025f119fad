/*
 * ocsp.h - the OCSP responder core (RFC 6960, RFC 5019 profile, RFC 8954
 * nonces).  Takes DER request bytes, returns DER response bytes; knows
 * nothing of HTTP.
 *
 * Served CAs: each is registered with its certificate and the identity
 * that signs for it (a delegated OCSP signer with id-kp-OCSPSigning and
 * id-pkix-ocsp-nocheck, RFC 6960 4.2.2.2).  CertIDs are matched on
 * issuerNameHash/issuerKeyHash computed with the hash the client chose
 * (SHA-1, SHA-256, SHA-384 or SHA-512).
 *
 * Answers:
 *   - malformedRequest: empty, oversize, undecodable, trailing bytes, no
 *     or too many CertIDs, a nonce outside 1..128 octets (RFC 9654 2.1,
 *     which obsoletes RFC 8954's 32);
 *   - unauthorized: no CertID names a CA served here (RFC 5019 2.2.3);
 *   - successful, per CertID: good, revoked (time, reason unless
 *     unspecified; certificateHold for held ones) or unknown (serial never
 *     issued by that CA, or an issuer this signer does not speak for).
 *
 * Fast path and its policy: a single-CertID request without a nonce is
 * answered from a cache of pre-signed responses keyed by (CA, hash
 * algorithm, serial).  A cached response is dropped the moment the
 * certificate's status changes (fp_ocsp_invalidate, driven by the store's
 * change log) and refreshed after half its validity.  "unknown" answers
 * are kept only FP_OCSP_UNKNOWN_TTL seconds: issuance makes them wrong and
 * is not in the change log (a never-issued random serial that somebody
 * asked about is, in practice, never issued later; the short life covers
 * the rest).  A request carrying a nonce asks for a fresh response
 * (RFC 8954), so it is always signed fresh and never cached.
 */
#ifndef FP_OCSP_H
#define FP_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "../ca/signer.h"
#include "../common/err.h"
#include "../store/store.h"

#define FP_OCSP_MAX_REQUEST 8192 /* DER bytes; RFC 5019 requests are ~100 */
#define FP_OCSP_MAX_CERTS 32     /* CertIDs in one request */
#define FP_OCSP_MAX_CAS 64       /* issuing CAs of every project + the root */
#define FP_OCSP_MAX_CHILDREN 64  /* sub-CA certificates per served CA (the root: every issuing CA) */
#define FP_OCSP_NONCE_MAX 128    /* RFC 9654 2.1 (was 32 in RFC 8954) */
#define FP_OCSP_UNKNOWN_TTL 30   /* seconds an "unknown" answer stays cached */

typedef struct fp_ocsp_responder fp_ocsp_responder;

typedef struct fp_ocsp_opts {
    int validity_seconds; /* nextUpdate - thisUpdate (>= 60) */
    bool cache;           /* serve single-certificate requests from the cache */
    int cache_entries;    /* upper bound on cached responses */
} fp_ocsp_opts;

int fp_ocsp_responder_new(const fp_ocsp_opts *o, fp_ocsp_responder **out, fp_error *err);
void fp_ocsp_responder_free(fp_ocsp_responder *r);

/* Serve ca_id, whose certificate is ca_cert (a reference is taken).  The
 * responses are signed by signer (ownership taken, also on failure) with
 * signer_cert as the responder certificate (reference taken). */
int fp_ocsp_responder_add_ca(fp_ocsp_responder *r, const char *ca_id, X509 *ca_cert,
                             fp_signer *signer, X509 *signer_cert, fp_error *err);

/* Answer "good" for child, a CA certificate issued by the served ca_id
 * (sub-CAs live in the store's CA table, not among the leaf certificates).
 * Call during setup, before responding. */
int fp_ocsp_responder_add_child(fp_ocsp_responder *r, const char *ca_id, X509 *child,
                                fp_error *err);

/* Replace the signing identity of ca_id (OCSP signer renewal); takes
 * ownership of signer (also on failure), a reference to signer_cert.
 * Cached responses are dropped.  Safe while other threads respond. */
int fp_ocsp_responder_set_signer(fp_ocsp_responder *r, const char *ca_id, fp_signer *signer,
                                 X509 *signer_cert, fp_error *err);

typedef struct fp_ocsp_result {
    int status;            /* OCSPResponseStatus: 0 successful, 1 malformedRequest, ... */
    int n_certs;           /* CertIDs answered */
    int cert_status;       /* first CertID: V_OCSP_CERTSTATUS_GOOD/REVOKED/UNKNOWN */
    bool from_cache;
    bool nonce;            /* the request carried a nonce (echoed) */
    int64_t this_update, next_update, produced_at; /* successful only */
    char etag[36];         /* successful only: quoted strong validator of the bytes */
    fp_error why;          /* reason for a non-successful status, for the log */
} fp_ocsp_result;

/*
 * Answer the DER OCSPRequest req (len bytes) at time now, using store (the
 * calling thread's handle) for statuses.  On FP_ERR_OK *out holds a DER
 * OCSPResponse (malloc'd, caller frees) whatever the protocol outcome,
 * which res describes.  Only resource failures return an error; a store
 * failure yields the internalError / tryLater response, not an error.
 * Thread-safe.
 */
int fp_ocsp_respond(fp_ocsp_responder *r, fp_store *store, const unsigned char *req,
                    size_t len, int64_t now, unsigned char **out, size_t *out_len,
                    fp_ocsp_result *res, fp_error *err);

/*
 * fp_ocsp_respond without waiting for a fresh signature (ca/signer.h
 * fp_signer_sign_ocsp_async): on a network worker whose OCSP key is in the
 * separate signer process the answer is made when the signature is in,
 * from the worker's event loop; elsewhere at once.  done(arg, rc, err,
 * out, out_len, res) is called exactly once on this thread, with what
 * fp_ocsp_respond would return (out is the callee's to free on
 * FP_ERR_OK; err and res valid during the call; res NULL only with an
 * error).  req need not outlive this call; store is used only during it.
 */
typedef void (*fp_ocsp_done)(void *arg, int rc, const fp_error *err, unsigned char *out,
                             size_t out_len, const fp_ocsp_result *res);
void fp_ocsp_respond_async(fp_ocsp_responder *r, fp_store *store, const unsigned char *req,
                           size_t len, int64_t now, fp_ocsp_done done, void *arg);

/* Drop cached responses for serial (uppercase hex) under every CA. */
void fp_ocsp_invalidate(fp_ocsp_responder *r, const char *serial);
/* Drop every cached response. */
void fp_ocsp_flush(fp_ocsp_responder *r);

typedef struct fp_ocsp_stats {
    uint64_t hits, misses, inserts, invalidations;
    long entries;
} fp_ocsp_stats;
void fp_ocsp_get_stats(fp_ocsp_responder *r, fp_ocsp_stats *st);

/*
 * Poll the store's change log: invalidate the cached response of every
 * certificate whose status changed since *seq and advance *seq.  When the
 * log has moved further than it keeps, everything is flushed.  *changed
 * (may be NULL) is set when anything changed.  Call every ~200 ms from one
 * thread with its own store handle; start with *seq from
 * fp_store_status_seq.
 */
int fp_ocsp_watch(fp_ocsp_responder *r, fp_store *store, int64_t *seq, bool *changed,
                  fp_error *err);

#endif
