/*
 * store.h - the durable store behind the CA core.
 *
 * An interface with one backend today (SQLite, store_sqlite.c) and room for
 * PostgreSQL: the CA core only calls fp_store_* functions.  Contract common
 * to every backend:
 *   - each mutating call is one transaction, committed durably (fsync'd)
 *     before it returns FP_ERR_OK, together with its audit row;
 *   - a serial is unique across the store (the constraint is the only
 *     coordination between nodes; FP_ERR_DUPLICATE tells the caller to
 *     draw a new one);
 *   - the audit log is append-only and hash-chained: row n stores
 *     SHA-256(row n-1 hash || row n fields), see fp_audit_hash();
 *   - a handle is used by one thread at a time; open one per thread.
 */
#ifndef FP_STORE_H
#define FP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

typedef struct fp_store fp_store;

typedef enum {
    FP_CERT_VALID = 0,
    FP_CERT_REVOKED = 1,
} fp_cert_status;

/* RFC 5280 5.3.1 CRLReason values (7 is unused). */
typedef enum {
    FP_REASON_UNSPECIFIED = 0,
    FP_REASON_KEY_COMPROMISE = 1,
    FP_REASON_CA_COMPROMISE = 2,
    FP_REASON_AFFILIATION_CHANGED = 3,
    FP_REASON_SUPERSEDED = 4,
    FP_REASON_CESSATION = 5,
    FP_REASON_HOLD = 6,
    FP_REASON_REMOVE_FROM_CRL = 8,
    FP_REASON_PRIVILEGE_WITHDRAWN = 9,
    FP_REASON_AA_COMPROMISE = 10,
} fp_reason;

/* Name <-> code for CRL reasons ("keyCompromise"); -1 / NULL if unknown. */
int fp_reason_from_name(const char *name);
const char *fp_reason_name(int reason);

typedef struct fp_cert_rec {
    char serial[41]; /* uppercase hex, as fp_serial_hex */
    char ca_id[64];
    char profile[64];
    char *subject; /* RFC 2253 */
    char *sans;    /* "DNS:a, IP:b" */
    int64_t not_before, not_after, issued_at;
    int status;      /* fp_cert_status */
    int64_t revoked_at;
    int reason;      /* fp_reason, meaningful when revoked */
    unsigned char *der;
    size_t der_len;
} fp_cert_rec;

/* Free the heap fields of rec (not rec itself) and zero it. */
void fp_cert_rec_clear(fp_cert_rec *rec);

/* One audit event; all strings borrowed.  detail is free text or JSON. */
typedef struct fp_audit_event {
    const char *actor;  /* "cli:root", "est:token:abc", ... */
    const char *action; /* "cert.issue", "cert.revoke", "csr.refuse", ... */
    const char *object; /* serial, CA id, ... */
    const char *detail;
} fp_audit_event;

typedef struct fp_audit_row {
    int64_t id;
    int64_t ts;
    const char *actor, *action, *object, *detail;
    const char *prev_hash; /* hex */
    const char *hash;      /* hex */
} fp_audit_row;

/* Hex SHA-256 chaining hash of a row over prev_hash (64 hex chars + NUL). */
int fp_audit_hash(const char *prev_hash, int64_t id, int64_t ts,
                  const char *actor, const char *action, const char *object,
                  const char *detail, char out[65]);

/* Hash that precedes the first row. */
#define FP_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

typedef struct fp_cert_filter {
    int status;              /* -1 any, else fp_cert_status */
    bool expired_only;       /* not_after < now */
    bool unexpired_only;     /* not_after >= now */
    int64_t expiring_before; /* 0: none; else not_after <= this and >= now */
    const char *profile;     /* NULL: any */
    const char *name_contains; /* NULL: any; substring of the RFC 2253 subject
                                  or of the SAN list */
    int64_t now;
    int limit;               /* 0: no limit */
} fp_cert_filter;

typedef int (*fp_cert_cb)(void *arg, const fp_cert_rec *rec);
typedef int (*fp_audit_cb)(void *arg, const fp_audit_row *row);

/* Open (creating and migrating if needed) the store at path.  A path of
 * the form "postgres://..." is reserved for the PostgreSQL backend. */
int fp_store_open(const char *path, fp_store **out, fp_error *err);
void fp_store_close(fp_store *s);

/* Record a CA (idempotent on id with the same certificate). */
int fp_store_ca_put(fp_store *s, const char *id, const char *parent_id,
                    const unsigned char *der, size_t der_len,
                    const fp_audit_event *ev, fp_error *err);

/* Insert certificates and their audit rows (evs may be NULL) in one
 * durable transaction.  FP_ERR_DUPLICATE if any serial exists (nothing is
 * written then).  Same as fp_store_cert_insert_spend with no tokens. */
int fp_store_cert_insert(fp_store *s, const fp_cert_rec *recs,
                         const fp_audit_event *evs, size_t n, fp_error *err);

/*
 * fp_store_cert_insert with enrollment tokens paid in the same transaction,
 * so a token use is never lost without its certificate and a certificate
 * is never stored without its token use.
 *
 * For each record i in order: when token_ids[i] is non-NULL (token_ids
 * itself may be NULL: no tokens), spend one use of that token if it has
 * uses left and is not expired at now, with its own audit row
 * {evs[i].actor, "token.use", token id, ""}; then insert recs[i] and its
 * audit row evs[i].  A record whose token cannot pay is refused and the
 * batch goes on without it: neither its certificate nor any audit row of
 * it is written, and results[i] says why (FP_ERR_STATE "token X is used
 * up" / "has expired", FP_ERR_NOT_FOUND for an unknown token).
 *
 * results (n entries; may be NULL only when token_ids is) receives each
 * record's fate.  On FP_ERR_OK the transaction is durable and results[i]
 * is FP_ERR_OK for every stored record.  On any other return nothing at
 * all was written, token uses included, and every results[i] holds the
 * returned error: FP_ERR_DUPLICATE if a serial exists already (one
 * transaction per record then finds which), else the store's failure.
 */
int fp_store_cert_insert_spend(fp_store *s, const fp_cert_rec *recs,
                               const fp_audit_event *evs, const char *const *token_ids,
                               int64_t now, fp_error *results, size_t n, fp_error *err);

/* Look a certificate up by serial; FP_ERR_NOT_FOUND if absent. */
int fp_store_cert_get(fp_store *s, const char *serial, fp_cert_rec *out,
                      fp_error *err);

/* Call cb for each certificate matching f, ordered by issue time. */
int fp_store_cert_list(fp_store *s, const fp_cert_filter *f, fp_cert_cb cb,
                       void *arg, fp_error *err);

/* Change status: revoke with reason at when, or (reason == removeFromCRL)
 * lift a certificateHold.  FP_ERR_STATE if the transition is not allowed
 * (already revoked for good, or lifting a non-hold). */
int fp_store_cert_set_status(fp_store *s, const char *serial, int status,
                             int reason, int64_t when, const fp_audit_event *ev,
                             fp_error *err);

/* Append an audit row on its own. */
int fp_store_audit_append(fp_store *s, const fp_audit_event *ev, fp_error *err);

/* Iterate the audit log in id order. */
int fp_store_audit_iter(fp_store *s, fp_audit_cb cb, void *arg, fp_error *err);

/* Recompute the chain; FP_ERR_AUDIT with the first bad row in err if an
 * edit, deletion or reordering is found.  *rows receives the count. */
int fp_store_audit_verify(fp_store *s, int64_t *rows, fp_error *err);

/* ---- revocation support (CRL, OCSP) ---- */

/* Just what a status answer needs: no DER, no heap fields. */
typedef struct fp_cert_status_rec {
    char ca_id[64];
    int status;      /* fp_cert_status */
    int64_t revoked_at;
    int reason;
    int64_t not_before;
    int64_t not_after;
} fp_cert_status_rec;

/* Status of serial (uppercase hex); FP_ERR_NOT_FOUND if never issued. */
int fp_store_cert_status(fp_store *s, const char *serial, fp_cert_status_rec *out,
                         fp_error *err);

/* One revoked (or on-hold) certificate, as a CRL entry needs it. */
typedef int (*fp_revoked_cb)(void *arg, const char *serial, int64_t revoked_at,
                             int reason);

/* Call cb for every certificate of ca_id whose status is revoked (holds
 * included), ordered by serial text.  Only serial, revocation time and
 * reason are read (a covering index), so memory stays flat for any count. */
int fp_store_revoked_iter(fp_store *s, const char *ca_id, fp_revoked_cb cb,
                          void *arg, fp_error *err);

/* Durably increment the CRL number of ca_id and return the new value
 * (1 for the first CRL).  RFC 5280 5.2.3: monotonically increasing. */
int fp_store_crl_number_next(fp_store *s, const char *ca_id, int64_t *out,
                             fp_error *err);

/*
 * Status-change tracking.  Every status change (revoke, hold, lift) appends
 * (seq, serial, ca_id) to a change log in the same transaction, with seq
 * strictly increasing; a server polls it to learn within a poll interval
 * about revocations made by other processes or nodes.  The log keeps at
 * least the last FP_STORE_CHANGES_KEEP entries.
 */
#define FP_STORE_CHANGES_KEEP 10000

/* Highest change sequence number so far (0 if none). */
int fp_store_status_seq(fp_store *s, int64_t *seq, fp_error *err);

typedef int (*fp_change_cb)(void *arg, int64_t seq, const char *serial,
                            const char *ca_id);

/* Call cb for changes with seq > after, oldest first, at most max of them. */
int fp_store_status_changes(fp_store *s, int64_t after, int max, fp_change_cb cb,
                            void *arg, fp_error *err);
/* ---- enrollment tokens (EST HTTP Basic, RFC 7030 3.2.3) ---- */

#define FP_TOKEN_ID_MAX 33
#define FP_TOKEN_HASH_LEN 32 /* SHA-256 of the secret; the secret is never stored */

typedef struct fp_token_rec {
    char id[FP_TOKEN_ID_MAX];
    char label[64];
    unsigned char hash[FP_TOKEN_HASH_LEN];
    char cn_pattern[128]; /* fnmatch pattern the CSR CN must match; "" any */
    int uses_left;
    int64_t expires_at; /* 0: never */
    int64_t created_at;
} fp_token_rec;

/* Store a new token (FP_ERR_DUPLICATE if the id exists). */
int fp_store_token_put(fp_store *s, const fp_token_rec *t, const fp_audit_event *ev,
                       fp_error *err);
/* Look a token up; FP_ERR_NOT_FOUND if absent. */
int fp_store_token_get(fp_store *s, const char *id, fp_token_rec *out, fp_error *err);
/* Spend one use of token id atomically: FP_ERR_STATE when it is used up or
 * expired at now, FP_ERR_NOT_FOUND if absent.  Audited with ev.  To pay
 * for a certificate use fp_store_cert_insert_spend instead: a use spent
 * here is not given back if the certificate then fails to be stored. */
int fp_store_token_use(fp_store *s, const char *id, int64_t now,
                       const fp_audit_event *ev, fp_error *err);

/* ---- enrollment requests held for manual approval ---- */

enum { FP_PENDING_WAITING = 0, FP_PENDING_ISSUED = 1, FP_PENDING_REJECTED = 2 };

typedef struct fp_pending_rec {
    int64_t id;
    char label[64];
    char csr_hash[65]; /* hex SHA-256 of the CSR DER: a retry is the same CSR */
    unsigned char *csr;
    size_t csr_len;
    char *subject;
    char *actor;
    int status;
    char serial[41]; /* when issued */
    int64_t created_at, decided_at;
} fp_pending_rec;

void fp_pending_rec_clear(fp_pending_rec *r);

/* Add a request; if (label, csr_hash) exists already nothing changes and
 * *id is the existing one.  Audited (new rows only). */
int fp_store_pending_add(fp_store *s, const fp_pending_rec *r, int64_t *id,
                         const fp_audit_event *ev, fp_error *err);
/* By (label, csr_hash) or by id; FP_ERR_NOT_FOUND if absent. */
int fp_store_pending_find(fp_store *s, const char *label, const char *csr_hash,
                          fp_pending_rec *out, fp_error *err);
int fp_store_pending_get(fp_store *s, int64_t id, fp_pending_rec *out, fp_error *err);
typedef int (*fp_pending_cb)(void *arg, const fp_pending_rec *r);
/* status -1: all. */
int fp_store_pending_list(fp_store *s, int status, fp_pending_cb cb, void *arg,
                          fp_error *err);
/* WAITING -> ISSUED (with serial) or REJECTED; FP_ERR_STATE otherwise. */
int fp_store_pending_decide(fp_store *s, int64_t id, int status, const char *serial,
                            const fp_audit_event *ev, fp_error *err);

/* Write-ahead-log tuning for a handle that only commits (group commit):
 * this handle checkpoints by itself once the log holds `pages` pages
 * (<= 0: never); fp_store_checkpoint, on another handle and thread,
 * copies the log back without blocking writers (committer.c explains why
 * both are needed).  Backends without such a log ignore both. */
int fp_store_set_autocheckpoint(fp_store *s, int pages, fp_error *err);
int fp_store_checkpoint(fp_store *s, fp_error *err);

/* Integrity check of the backend (SQLite: PRAGMA integrity_check). */
int fp_store_check(fp_store *s, fp_error *err);

#endif
