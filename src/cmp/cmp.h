/*
 * cmp.h - the CMP server (RFC 9483 lightweight profile of RFC 4210 /
 * RFC 9480, over HTTP as RFC 6712 says), private to src/cmp/.
 *
 * Every message is parsed, its protection checked and its answer built
 * and protected by OpenSSL's CMP server (OSSL_CMP_SRV_CTX and its
 * callbacks); fleetpki decides who the sender is, what it may do, and
 * hands certificate requests to the one issuance path (ca/issue.h).
 *
 * Files: cmp_module.c (routes, labels, lifecycle), cmp_handle.c (one
 * request: authenticate, run the OpenSSL server, answer), cmp_cb.c (the
 * OpenSSL server callbacks), cmp_txn.c (open transactions, replay
 * memory, the confirmation sweeper), cmp_peek.c (header fields OpenSSL
 * 3.0 has no getter for), cmp_req.c (CRMF template -> PKCS#10 form, genm
 * answers), cmp_secret.c (MAC secrets of enrollment tokens),
 * cmp_responder.c (the per-CA CMP responder certificate).
 *
 * Configuration: CMP shares the [est LABEL] sections (docs/cmp.md): a
 * label selects project, profile, auth mode, trust anchors and manual
 * approval for both protocols.
 */
#ifndef FP_CMP_H
#define FP_CMP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/x509.h>

#include "../ca/ca.h"
#include "../ca/config.h"
#include "../http/http.h"
#include "../serve/app.h"
#include "../store/store.h"

#define CMP_CT "application/pkixcmp" /* RFC 6712 3.4 */
#define CMP_TID_MAX 64               /* longer transactionIDs are refused (RFC 4210: 128 bits) */
#define CMP_MAC_KEY_FILE "cmp-mac.key"
#define CMP_SECRET_MAX 64
/* How long a finished transaction's ID is remembered (replay refused),
 * and how far a request's messageTime may lie from our clock. */
#define CMP_REPLAY_SECONDS 900
#define CMP_MSGTIME_SKEW 300
#define CMP_POLL_SECONDS 86400   /* a held request may be polled this long */
#define CMP_MAX_TXNS 262144      /* open + remembered transactions */

/* PKIBody choice numbers (RFC 4210 5.1.2); OpenSSL 3.0 makes only ir,
 * cr, p10cr and kur public. */
enum {
    CMP_BODY_IR = 0, CMP_BODY_IP = 1, CMP_BODY_CR = 2, CMP_BODY_CP = 3, CMP_BODY_P10CR = 4,
    CMP_BODY_KUR = 7, CMP_BODY_KUP = 8, CMP_BODY_RR = 11, CMP_BODY_RP = 12,
    CMP_BODY_PKICONF = 19, CMP_BODY_GENM = 21, CMP_BODY_GENP = 22, CMP_BODY_ERROR = 23,
    CMP_BODY_CERTCONF = 24, CMP_BODY_POLLREQ = 25, CMP_BODY_POLLREP = 26,
};

/* PKIFailureInfo bits (RFC 4210 5.2.3, RFC 9480 2.x). */
#define CMP_FAIL(bit) (1 << OSSL_CMP_PKIFAILUREINFO_##bit)

/* Per-label state, built at start (immutable while serving). */
typedef struct cmp_label {
    const fp_est_label *cfg;
    int index;
    fp_ca *ca;            /* the project's active issuing CA */
    fp_ca *cas[16];       /* every issuing CA of the project */
    int n_cas;
    X509_STORE *anchors;  /* project CAs + trust roots + trust_anchors (PARTIAL_CHAIN) */
    X509 *resp_cert;      /* the CA's CMP responder (cmp_responder.c) */
    EVP_PKEY *resp_key;
    STACK_OF(X509) *resp_chain; /* issuing CA and above, for extraCerts */
    STACK_OF(X509) *ca_certs;   /* issuing CA and its chain: genm caCerts, chainOut */
    X509 *root;           /* the top of the CA chain: caPubs of an ip */
} cmp_label;

typedef struct cmp_txns cmp_txns;

typedef struct cmp_state {
    const fp_config *cfg;
    const fp_app *app;
    cmp_label labels[FP_MAX_EST_LABELS];
    int n_labels;
    unsigned char mac_key[32]; /* cmp_secret.c */
    cmp_txns *txns;
    bool grant_implicit;
    int confirm_wait;
    int64_t msgtime_skew;  /* CMP_MSGTIME_SKEW; the fuzz harness widens it to replay old seeds */
} cmp_state;

/* Each worker's own: a store handle and a server context for messages
 * that start a transaction (one whose transaction stays open moves into
 * the table and the worker takes a fresh one). */
typedef struct cmp_worker {
    fp_store *store;
    OSSL_CMP_SRV_CTX *srv;
} cmp_worker;

/* One open or remembered transaction (cmp_txn.c); the fields below the
 * line belong to whoever holds it (state CMP_TX_BUSY). */
enum { CMP_TX_BUSY = 1, CMP_TX_CONFIRM, CMP_TX_POLL, CMP_TX_DONE };
typedef struct cmp_txn {
    struct cmp_txn *hnext, *lnext, *lprev;
    unsigned char tid[CMP_TID_MAX];
    int tid_len;
    int state;
    int64_t deadline;
    int taken_state;         /* state before cmp_txn_take (to put it back unchanged) */
    /* ---- */
    OSSL_CMP_SRV_CTX *srv;   /* the transaction's OpenSSL state (nonces, certReqId) */
    int label;
    char project[64];
    char actor[160];
    char token_id[FP_TOKEN_ID_MAX];
    char cn_pattern[128];
    bool by_cert, ours;
    X509 *signer;            /* protection certificate (own reference) */
    X509 *cert;              /* issued, awaiting certConf */
    char serial[41];
    int64_t pending_id;      /* held for approval */
    OSSL_CMP_MSG *certreq;   /* the held request, answered again when approved */
    int req_type;            /* body type that started it */
    bool confirmed;
    unsigned char nonce[64]; /* the senderNonce of our last answer */
    int nonce_len;
} cmp_txn;

/* A certificate on its way through the group commit (ca/issue.h
 * fp_issue_submit): signed and checked on the worker inside the OpenSSL
 * callback, which answers with it; the answer is held until the writer
 * thread reports the commit (nothing of a certificate leaves before it
 * is durable).  Everything fp_issue_submit borrows lives here. */
typedef struct cmp_job {
    fp_issue_req ir;
    X509_REQ *csr;
    char actor[160];
    char token_id[FP_TOKEN_ID_MAX];
    const cmp_label *lb;
    bool by_cert, ours;
    X509 *signer;
    unsigned char *der;      /* as signed and sent */
    size_t der_len;
    bool resigned;           /* a serial collision made the writer sign again */
    /* the commit (writer thread) */
    int rc;
    fp_error err;
    X509 *cert;
    /* the held answer and its sender (cmp_module.c) */
    unsigned char *rsp;
    size_t rsp_len;
    fp_http_req *req;
    fp_http_post post;
    unsigned char tid[CMP_TID_MAX];
    int tid_len, label;
    int refs;                /* commit and handler: the last one posts finish */
} cmp_job;

void cmp_job_free(cmp_job *j);
/* The handler is done with j (answer held in j->rsp); when the commit has
 * also reported, j->post runs on j->req's worker. */
void cmp_job_arm(cmp_job *j);

/* What the callbacks of one OpenSSL call see (custom ctx). */
typedef struct cmp_call {
    cmp_state *st;
    const cmp_label *lb;
    fp_store *store;
    const char *req_id;
    cmp_txn *tx;
    int refuse_info;          /* >= 0: answer every callback with this rejection */
    char refuse_text[256];
    int fail_info;            /* set by a callback that rejected (for the log) */
    char fail_text[256];
    bool issued;              /* a certificate left in this answer */
    bool waiting;             /* held for approval */
    bool audited;             /* the issuance path audited the refusal (csr.refuse) */
    bool async;               /* group commit allowed (the HTTP module) */
    cmp_job *job;             /* a certificate waiting for its commit */
} cmp_call;

/* ---- cmp_handle.c ---- */

/* Answer one DER request for label lb: *out (OPENSSL_malloc'd DER) is
 * always a CMP message when FP_ERR_OK; FP_ERR_ARG when the body is not a
 * CMP message at all (the caller answers HTTP 400).  unknown_label (or
 * NULL): the label the client named, which does not exist; the request
 * is then refused in CMP form, answered for lb.  who (may be NULL,
 * whosize octets) receives the sender as authenticated ("cmp:token:ID",
 * "cmp:cert:SERIAL", ...) or "" for the HTTP log line.  job: NULL for a
 * synchronous commit (fp_issue); otherwise *job is set when the answer
 * carries a certificate still being committed: the caller holds *out
 * until then (cmp_job_arm). */
int cmp_handle(cmp_state *st, cmp_worker *wk, const cmp_label *lb, const char *unknown_label,
               const char *req_id, const unsigned char *der, size_t len, unsigned char **out,
               size_t *outlen, char *who, size_t whosize, cmp_job **job, fp_error *err);

/* ---- cmp_module.c (also what the fuzz harness builds) ---- */

int cmp_state_new(const fp_config *cfg, const fp_app *app, cmp_state **out, fp_error *err);
void cmp_state_free(cmp_state *st);
int cmp_worker_new(cmp_state *st, cmp_worker **out, fp_error *err);
void cmp_worker_free(cmp_worker *wk);

/* A worker server context set up with the callbacks (cmp_cb.c). */
OSSL_CMP_SRV_CTX *cmp_srv_new(void);

/* ---- cmp_cb.c ---- */

int cmp_srv_set_callbacks(OSSL_CMP_SRV_CTX *srv, cmp_call *call);
/* Revoke c->tx's certificate (not confirmed) now, logged with why. */
void cmp_revoke_unconfirmed(cmp_call *c, const char *why);

/* ---- cmp_peek.c ---- */

typedef struct cmp_peek {
    int prot_nid;             /* NID of protectionAlg; NID_undef: unprotected */
    unsigned char kid[64];    /* senderKID */
    int kid_len;              /* -1 absent */
    bool has_time;
    int64_t msg_time;         /* messageTime (Unix) */
    unsigned char nonce[64];  /* senderNonce */
    int nonce_len;            /* -1 absent */
    STACK_OF(X509) *extra;    /* extraCerts in order (own) or NULL */
} cmp_peek;

/* Fields of msg (der: its encoding, as received and parsed by OpenSSL)
 * that OpenSSL 3.0 keeps private: read through the DER cursor
 * (x509/der.h), each content decoded by OpenSSL's d2i. */
int cmp_peek_msg(const unsigned char *der, size_t len, cmp_peek *pk, fp_error *err);
void cmp_peek_clear(cmp_peek *pk);

/* ---- cmp_req.c ---- */

/* The certificate template of crm as an (unsigned) PKCS#10 request:
 * subject, public key, extensions; possession was proven by the CRMF
 * POPO, which OpenSSL verified.  FP_ERR_CSR_MALFORMED without a key. */
int cmp_crmf_to_req(const OSSL_CRMF_MSG *crm, X509_REQ **out, fp_error *err);
/* genm answers (RFC 9483 4.3): caCerts, rootCaKeyUpdate, certReqTemplate. */
int cmp_genm_answer(const cmp_label *lb, const STACK_OF(OSSL_CMP_ITAV) *in,
                    STACK_OF(OSSL_CMP_ITAV) **out, fp_error *err);

/* ---- cmp_txn.c ---- */

int cmp_txns_new(cmp_state *st, cmp_txns **out, fp_error *err);
void cmp_txns_free(cmp_txns *t);
/* Start transaction tid: a fresh BUSY record, FP_ERR_EXISTS if tid is
 * open or remembered (a replay), FP_ERR_TOO_LARGE when the table is full. */
int cmp_txn_begin(cmp_txns *t, const unsigned char *tid, int len, cmp_txn **out);
/* Take the open transaction tid of label (CONFIRM or POLL -> BUSY); NULL
 * if none, with *other_label set when it is open on another label. */
cmp_txn *cmp_txn_take(cmp_txns *t, const unsigned char *tid, int len, int label,
                      bool *other_label);
/* Give tx back in state (CONFIRM / POLL: open until deadline; DONE:
 * remembered for replay detection, its resources freed). */
void cmp_txn_put(cmp_txns *t, cmp_txn *tx, int state, int64_t deadline);
/* Free the per-transaction resources of tx (not the record). */
void cmp_txn_release(cmp_txn *tx);

/* ---- cmp_secret.c ---- */

/* Load DIR/cmp-mac.key, creating it (32 random octets, 0600) if absent. */
int cmp_mac_key_load(const fp_config *cfg, unsigned char key[32], fp_error *err);
/* The PBM shared secret of token (id, stored hash): base64url of
 * HMAC-SHA256(mac key, label || id || hash), NUL-terminated. */
int cmp_token_secret(const unsigned char key[32], const char *token_id,
                     const unsigned char hash[FP_TOKEN_HASH_LEN], char out[CMP_SECRET_MAX],
                     fp_error *err);

/* ---- cmp_responder.c ---- */

/* Make sure ca has a current CMP responder certificate (issuing one
 * through the issuance path when missing or in its last third), and load
 * it with its key. */
int cmp_responder_load(const fp_config *cfg, fp_ca *ca, fp_store *store, const char *pass,
                       size_t passlen, X509 **cert, EVP_PKEY **key, fp_error *err);

#endif
