/*
 * store_status.h - certificate status for revocation answers: status
 * lookups, the revoked entries of a CA, revocation list numbers and the
 * status-change log (part of the store interface, see store.h).
 */
#ifndef FP_STORE_STATUS_H
#define FP_STORE_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/err.h"
#include "store_certs.h"

/* Just what a status answer needs: no DER, no heap fields. */
typedef struct fp_cert_status_rec {
    char ca_id[64];
    char project[FP_PROJECT_MAX];
    int status;      /* fp_cert_status */
    int64_t revoked_at;
    int reason;
    int64_t not_before;
    int64_t not_after;
} fp_cert_status_rec;

/* Status of serial (uppercase hex); FP_ERR_NOT_FOUND if never issued. */
int fp_store_cert_status(fp_store *s, const char *serial, fp_cert_status_rec *out,
                         fp_error *err);

/* One revoked (or on-hold) certificate, as a revocation list entry needs it. */
typedef int (*fp_revoked_cb)(void *arg, const char *serial, int64_t revoked_at,
                             int reason);

/* Call cb for every certificate of ca_id whose status is revoked (holds
 * included), ordered by serial text.  Only serial, revocation time and
 * reason are read, so memory stays flat for any count. */
int fp_store_revoked_iter(fp_store *s, const char *ca_id, fp_revoked_cb cb,
                          void *arg, fp_error *err);

/* Durably increment the revocation list (CRL) number of ca_id and return
 * the new value (1 for the first).  RFC 5280 5.2.3: monotonically
 * increasing; each CA counts on its own. */
int fp_store_revocation_number_next(fp_store *s, const char *ca_id, int64_t *out,
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

/*
 * Published revocation lists, shared by every node of one store, so that
 * one node regenerates a CA's CRL and the others serve its bytes.
 *
 * fp_store_crl_put records a CRL of ca_id with its number, its validity
 * and seq: the status-change seq read before it was generated (it lists
 * every change up to seq).  It replaces the stored one only when number is
 * greater.  fp_store_crl_get returns the stored one (FP_ERR_NOT_FOUND if
 * none); *der is malloc'd, the caller frees it.
 * fp_store_crl_lock(lock = true) tries to take the right to regenerate
 * ca_id's CRL without waiting (*got false: another handle, on any node,
 * holds it); lock = false gives it back.  PostgreSQL: a session advisory
 * lock (released too if the connection drops); SQLite: always taken.
 */
typedef struct fp_crl_pub {
    int64_t number, seq, this_update, next_update;
    unsigned char *der;
    size_t der_len;
} fp_crl_pub;
int fp_store_crl_put(fp_store *s, const char *ca_id, const fp_crl_pub *c, fp_error *err);
int fp_store_crl_get(fp_store *s, const char *ca_id, fp_crl_pub *out, fp_error *err);
int fp_store_crl_lock(fp_store *s, const char *ca_id, bool lock, bool *got, fp_error *err);

/*
 * Wait up to timeout_ms for a status change made through any handle, on
 * any node, to be announced, so that a follower need not poll quickly.
 * Backends that announce changes (PostgreSQL: LISTEN/NOTIFY) block and set
 * *waited; *woken then says whether a change was announced (a later
 * fp_store_status_changes returns it).  Backends that do not (SQLite)
 * return at once with *waited false: the caller polls as before.  The
 * first call subscribes the handle; use the handle for nothing else while
 * it waits.
 */
int fp_store_status_wait(fp_store *s, int timeout_ms, bool *waited, bool *woken,
                         fp_error *err);

#endif
