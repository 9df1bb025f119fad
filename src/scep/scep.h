/*
 * scep.h - SCEP server (RFC 8894), private to src/scep/.
 *
 *   scep_msg.c   the pkiMessage codec: parse a request (CMS SignedData over
 *                EnvelopedData, its authenticated attributes, the inner
 *                PKCS#10 / IssuerAndSubject / IssuerAndSerialNumber) and
 *                build CertRep answers; OpenSSL's CMS API does all of the
 *                ASN.1 and crypto.  No HTTP, no store: the fuzz harness
 *                (fuzz/fuzz_scep.c) drives it directly.
 *   scep_ra.c    the RA certificate of each issuing CA (created on first
 *                start and renewed like the OCSP responder's).
 *   scep_http.c  routes, GetCACaps, GetCACert, the PKIOperation dispatch.
 *   scep_ops.c   PKCSReq, RenewalReq, CertPoll, GetCert, GetCRL on the one
 *                issuance path.
 */
#ifndef FP_SCEP_H
#define FP_SCEP_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "../ca/ca.h"
#include "../ca/config.h"
#include "../common/err.h"

/* RFC 8894 3.2.1.2 messageType values. */
enum {
    SCEP_CERTREP = 3,
    SCEP_RENEWALREQ = 17,
    SCEP_PKCSREQ = 19,
    SCEP_CERTPOLL = 20,
    SCEP_GETCERT = 21,
    SCEP_GETCRL = 22,
};

/* RFC 8894 3.2.1.3 pkiStatus. */
enum { SCEP_SUCCESS = 0, SCEP_FAILURE = 2, SCEP_PENDING = 3 };

/* RFC 8894 3.2.1.4 failInfo. */
enum {
    SCEP_BAD_ALG = 0,
    SCEP_BAD_MESSAGE_CHECK = 1,
    SCEP_BAD_REQUEST = 2,
    SCEP_BAD_TIME = 3,
    SCEP_BAD_CERT_ID = 4,
};

#define SCEP_NONCE_LEN 16
#define SCEP_TXID_MAX 128 /* longest transactionID we accept (printable) */

/* A parsed, signature-checked request.  Own references throughout. */
typedef struct scep_msg {
    int type;                         /* SCEP_PKCSREQ ... */
    char txid[SCEP_TXID_MAX + 1];     /* "" when absent (parse failed early) */
    unsigned char nonce[SCEP_NONCE_LEN];
    bool has_nonce;
    X509 *signer;                     /* the signing certificate */
    const EVP_MD *md;                 /* its digest (for the answer) */
    int cipher_nid;                   /* the envelope's content cipher */
    /* inner content, by type */
    X509_REQ *csr;                    /* PKCSReq, RenewalReq */
    unsigned char *csr_der;           /* its DER as sent */
    size_t csr_der_len;
    X509_NAME *issuer, *subject;      /* CertPoll (IssuerAndSubject) */
    ASN1_INTEGER *serial;             /* GetCert, GetCRL (with issuer) */
} scep_msg;

/* Why a request failed: the failInfo to answer with, and the reason
 * (logged and audited, never sent beyond failInfoText). */
typedef struct scep_fail {
    int info;         /* SCEP_BAD_* */
    fp_error err;
} scep_fail;

/* Register the SCEP attribute OIDs (OBJ_create): once, before any other
 * call here, from one thread.  Returns FP_ERR_OK or FP_ERR_CRYPTO. */
int scep_oids_init(fp_error *err);

/* Parse and check der (a pkiMessage): SignedData with one signer whose
 * signature over the authenticated attributes and content verifies with
 * the certificate it carries (the chain of that certificate is the
 * caller's business: self-signed for PKCSReq), a digest of SHA-256 or
 * better, the SCEP attributes, an EnvelopedData decrypted with ra_key,
 * and the inner content of the message type.  On failure *fail says what
 * to answer and out keeps what was read so far (transactionID, nonce,
 * signer) for the CertRep.  Decryption failures and undecodable inner
 * content get the same answer, so the RA key is no padding oracle. */
int scep_msg_parse(const unsigned char *der, size_t len, X509 *ra_cert, EVP_PKEY *ra_key,
                   OSSL_LIB_CTX *legacy, scep_msg *out, scep_fail *fail);

/* A library context with OpenSSL's default and legacy providers, for
 * scep_msg_parse's legacy argument (NULL there: SHA-2 signatures and
 * AES/3DES envelopes only).  With it, SHA-1 signatures and single-DES
 * envelopes are accepted too (a label's scep_legacy_crypto); nothing else
 * uses this context, so the legacy algorithms stay out of the rest of the
 * process.  Free with scep_legacy_ctx_free (it unloads the providers). */
OSSL_LIB_CTX *scep_legacy_ctx_new(fp_error *err);
void scep_legacy_ctx_free(OSSL_LIB_CTX *ctx);
void scep_msg_clear(scep_msg *m);

/* A CertRep (RFC 8894 3.3.2) for req (may be a half-parsed request),
 * signed by ra_cert/ra_key.  status SCEP_SUCCESS: certs (the issued
 * certificate, or a CRL when crl_der is set) enveloped to req->signer;
 * SCEP_FAILURE: fail_info and text (failInfoText, may be NULL);
 * SCEP_PENDING: nothing else.  *out OPENSSL_malloc'd DER. */
typedef struct scep_rep {
    int status;
    int fail_info;
    const char *text;
    const unsigned char *cert_der; /* SUCCESS: the issued certificate (DER) */
    size_t cert_der_len;
    const unsigned char *crl_der;  /* SUCCESS for GetCRL */
    size_t crl_der_len;
} scep_rep;
int scep_certrep(const scep_msg *req, const scep_rep *rep, X509 *ra_cert, EVP_PKEY *ra_key,
                 unsigned char **out, size_t *outlen, fp_error *err);

/* Degenerate certs-only SignedData of certs (GetCACert, RFC 8894 4.2.1.2),
 * DER, OPENSSL_malloc'd. */
int scep_certs_only(STACK_OF(X509) *certs, unsigned char **out, size_t *outlen, fp_error *err);

/* ---- scep_ra.c ---- */

/* Days an RA certificate lives; renewed when a third is left. */
#define SCEP_RA_DAYS 365

/* The RA identity of ca: key (RSA, for key transport) and certificate
 * (issued by ca, keyUsage digitalSignature + keyEncipherment), under
 * ca/<ca-id>/scep-ra.{key,crt} of cfg's directory.  Created or renewed
 * (through fp_ca_issue on store: audited) when missing, unreadable,
 * mismatched or with less than a third of its life left.  *cert and *key
 * are the caller's. */
int scep_ra_ensure(const fp_config *cfg, fp_ca *ca, fp_store *store, const char *pass,
                   size_t passlen, X509 **cert, EVP_PKEY **key, fp_error *err);


/* ---- server state (scep_http.c, scep_ops.c) ---- */
#ifdef FP_SCEP_SERVER
#include "../http/http.h"
#include "../serve/app.h"

#define SCEP_LABEL_CAS 16

/* The RA of one issuing CA and its GetCACert answer. */
typedef struct scep_ra {
    fp_ca *ca;
    X509 *cert;
    EVP_PKEY *key;
    unsigned char *cacert; /* degenerate PKCS#7: RA and CA */
    size_t cacert_len;
} scep_ra;

/* Per label (an [est LABEL] section), immutable while serving. */
typedef struct scep_label {
    const fp_est_label *cfg;
    fp_ca *cas[SCEP_LABEL_CAS]; /* every issuing CA of the project */
    int n_cas;
    X509_STORE *ours;           /* those CAs as anchors (partial chain) */
    scep_ra *ra;                /* of the project's active CA */
} scep_label;

typedef struct scep_state {
    const fp_config *cfg;
    const fp_app *app;
    scep_label labels[FP_MAX_EST_LABELS];
    int n_labels;
    scep_ra ras[FP_MAX_EST_LABELS];
    int n_ras;
    OSSL_LIB_CTX *legacy; /* when a label has scep_legacy_crypto */
} scep_state;

/* scep_ops.c: a PKIOperation message der for label lb (NULL: unknown
 * label, answered with a FAILURE signed by the default label's RA).
 * Answers req; returns FP_HTTP_DONE or FP_HTTP_DEFERRED. */
int scep_pkioperation(scep_state *st, const scep_label *lb, fp_http_req *req,
                      const unsigned char *der, size_t len);
#endif

#endif
