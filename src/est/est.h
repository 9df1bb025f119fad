/*
 * est.h - EST server (RFC 7030, with RFC 8951 clarifications), private to
 * src/est/.  Routes are in est.c; authentication in est_auth.c; the
 * enrollment flow (sign, group commit, reply) in est_enroll.c; wire
 * encodings in est_codec.c.
 */
#ifndef FP_EST_H
#define FP_EST_H

#include <stdatomic.h>
#include <stdbool.h>

#include <openssl/x509.h>

#include "../ca/ca.h"
#include "../ca/chain_check.h"
#include "../ca/committer.h"
#include "../ca/config.h"
#include "../http/http.h"
#include "../serve/app.h"

#define EST_CT_PKCS7 "application/pkcs7-mime; smime-type=certs-only"
#define EST_CT_CSRATTRS "application/csrattrs"

/* Per-label state built at startup (immutable while serving). */
typedef struct est_label {
    const fp_est_label *cfg;
    fp_ca *ca;            /* the project's active issuing CA (cacerts, "ours") */
    fp_ca *cas[16];       /* every issuing CA of the project (renewals after a rollover) */
    int n_cas;
    char *cacerts;        /* base64 certs-only PKCS#7 of ca's chain */
    size_t cacerts_len;
    X509_STORE *anchors;  /* the project's CAs and trust roots + label trust_anchors;
                             never the shared root: a certificate of another
                             project's CA must not chain through it */
    unsigned char *csrattrs; /* base64 body, NULL when the label has none */
    size_t csrattrs_len;
} est_label;

typedef struct est_state {
    const fp_config *cfg;
    const fp_app *app;
    fp_committer *committer;
    est_label labels[FP_MAX_EST_LABELS];
    int n_labels;
    int ssl_idx;          /* SSL ex_data index caching the verified peer */
    atomic_size_t enrolling; /* enrollments past the overload check and not
                                answered yet: signing or waiting for the
                                commit (est_enroll) */
} est_state;

/* The authenticated caller of one request. */
typedef struct est_identity {
    bool by_cert;
    bool ours;             /* client certificate issued by an issuing CA of the label's project */
    X509 *cert;            /* the client certificate (borrowed from the request) */
    char serial[41];       /* of the client certificate */
    char token_id[FP_TOKEN_ID_MAX];
    char cn_pattern[128];  /* the token's --cn limit, "" for none */
    char key[96];          /* "cert:SERIAL", "anchor:HASH:SERIAL" or "token:ID": per-identity limits */
    char actor[160];       /* for the audit log: "est:cert:SERIAL", "est:token:ID" */
} est_identity;

/* ---- est_codec.c ---- */

/* Degenerate certs-only SignedData (RFC 7030 4.1.3 / 4.2.3) of certs,
 * base64 with line breaks.  *out malloc'd. */
int est_certs_only_b64(STACK_OF(X509) *certs, char **out, size_t *len, fp_error *err);
/* The same from already-encoded certificates ders[i] (lens[i] octets
 * each, at most 64 KiB), copied in order as they are. */
int est_certs_only_der_b64(const unsigned char *const *ders, const size_t *lens, size_t n,
                           char **out, size_t *len, fp_error *err);

/* Decode an EST base64 body (RFC 8951: line breaks tolerated, and
 * Content-Transfer-Encoding must be absent or "base64") into a CSR. */
int est_decode_csr(const fp_http_req *req, X509_REQ **out, unsigned char **der,
                   size_t *der_len, fp_error *err);

/* est_csr.c: PKCS#10 DER with an EC key on P-256/384/521, read without
 * OpenSSL 3's decoder set-up; NULL when the request is not of that simple
 * form (the caller then uses d2i_X509_REQ), never a different request.
 * Its public key is not decoded: X509_REQ_get0_pubkey() returns NULL;
 * verify it with fp_csr_verify. */
X509_REQ *est_csr_fast_parse(const unsigned char *der, size_t len);

/* The public half of an EC key (curve OID, point octets) as an EVP_PKEY
 * that X509_REQ_set_pubkey encodes without OpenSSL 3's encoders. */
EVP_PKEY *est_ec_public_key(const ASN1_OBJECT *curve, const unsigned char *pt, long ptlen);

/* RFC 7030 4.5.2 CsrAttrs for the label (base64), NULL when "none". */
int est_csrattrs_build(const fp_est_label *l, const fp_profile *p, unsigned char **out,
                       size_t *len, fp_error *err);

/* PKCS#8 (RFC 5958) DER of an EC private key, built directly (OpenSSL
 * 3.0's EVP_PKEY2PKCS8 goes through its encoders); *out is
 * OPENSSL_malloc'd and must be freed with OPENSSL_clear_free. */
int est_ec_pkcs8(EVP_PKEY *key, unsigned char **out, size_t *outlen, fp_error *err);

/* multipart/mixed body for serverkeygen (RFC 7030 4.4.2).  The parts are
 * (content type, base64 text); boundary is written into boundary (>= 40).
 * *out is OPENSSL_malloc'd; free with OPENSSL_clear_free (it holds a key). */
int est_multipart(const char *ct1, const char *b64_1, const char *ct2, const char *b64_2,
                  char boundary[48], char **out, size_t *len, fp_error *err);

/* ---- est_auth.c ---- */

/* Authenticate req for label per its auth mode, from the TLS client
 * certificate and headers only: nothing of the body is decoded before the
 * caller is known (issue 8, defect 2).  On failure answers the request
 * itself (401, or 500) and returns non-OK.  A token is only checked here;
 * its use is spent by the committer with the certificate (id->token_id),
 * and its CN limit applies later (est_check_requested_name). */
int est_authenticate(est_state *st, const est_label *lb, fp_http_req *req, est_identity *id);

/* The client chain check est_authenticate runs for certificates not
 * issued by us: leaf + untrusted verified for TLS client use against
 * anchors; on success *ours (malloc'd, *n_ours entries) lists the serials
 * of the chain's certificates issuer signed, for fp_chain_check_serials,
 * and *valid_until (if not NULL) is the earliest notAfter of the chain
 * (Unix time), until which a cached verdict may stand.
 * FP_ERR_STATE when the chain does not verify. */
int est_chain_verify(X509_STORE *anchors, X509 *leaf, STACK_OF(X509) *untrusted, X509 *issuer,
                     char (**ours)[FP_CHAIN_SERIAL_LEN], int *n_ours, int64_t *valid_until,
                     fp_error *err);

/* ---- est_identity.c ---- */

/* May the caller id request csr's names?  Token: its CN pattern.
 * Certificate: the label's cert_identity rule; issued (may be NULL) is
 * the certificate about to be issued for csr.  FP_ERR_CSR_CN or
 * FP_ERR_CSR_SUBJECT (403) with the reason in err. */
int est_check_requested_name(const est_label *lb, const est_identity *id, X509_REQ *csr,
                             X509 *issued, fp_error *err);

/* Same subject and same set of subjectAltNames. */
bool est_same_identity(X509 *a, X509 *b);
/* The same for a request and a certificate: csr asks for exactly cert's
 * subject and set of subjectAltNames. */
bool est_csr_same_identity(X509_REQ *csr, X509 *cert);

/* CRYPTO_EX_free for the per-connection verdict cache (est->ssl_idx). */
void est_peer_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp);

/* RFC 7030 3.5: CSR challengePassword must equal the TLS channel binding
 * (tls-unique in TLS 1.2, tls-exporter in TLS 1.3), base64.  Answers 403
 * on failure. */
int est_check_pop_linking(fp_http_req *req, X509_REQ *csr);

/* Channel binding of req's TLS connection, base64 (for docs/tests). */
int est_channel_binding_b64(SSL *ssl, char *out, size_t size);

/* ---- est_enroll.c ---- */

typedef enum { EST_ENROLL, EST_REENROLL, EST_KEYGEN } est_op;

/* POST simpleenroll / simplereenroll / serverkeygen. */
int est_enroll(est_state *st, const est_label *lb, fp_http_req *req, est_op op);

/* Map an fp_errcode from policy/signing to an HTTP error answer. */
void est_answer_error(fp_http_req *req, const fp_error *err);

#endif
