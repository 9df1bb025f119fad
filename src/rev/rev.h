/*
 * rev.h - the revocation module of `fleetpki serve` (private to src/rev):
 * OCSP and CRL over plain HTTP, plus the background publisher.
 *
 *   rev_http.c     routes and thin handlers (decode, call core, encode)
 *   rev_publish.c  two background threads, each with its own store handle:
 *                  the watcher, woken by the store's change announcements
 *                  (PostgreSQL LISTEN/NOTIFY: a change on any node) or
 *                  every POLL_MS, polls the store's status-change log
 *                  (fp_ocsp_watch), dropping cached OCSP
 *                  responses of changed certificates (a revocation made by
 *                  any process shows in OCSP within one poll), marks the
 *                  CRLs dirty, and renews the OCSP signer hourly; the CRL
 *                  thread regenerates the CRLs after changes, coalesced
 *                  (after a quiet poll interval, at most COALESCE_MAX_MS
 *                  into a burst), and before nextUpdate (at half the
 *                  interval).  Apart, so that signing a CRL of a million
 *                  entries never delays OCSP invalidation.
 */
#ifndef FP_REV_H
#define FP_REV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../ca/ca.h"
#include "../ca/config.h"
#include "../crl/crl.h"
#include "../http/http.h"
#include "../ocsp/ocsp.h"
#include "../serve/app.h"

/* every issuing CA, and the root when its key is online */
#define REV_MAX_CRLS (FP_OCSP_MAX_CAS + 1)

/* Immutable published bytes, shared by reference between threads. */
typedef struct rev_blob {
    atomic_int refs;
    unsigned char *data;
    size_t len;
    int64_t this_update, next_update;
    int64_t number;
    char etag[48];
} rev_blob;

typedef struct rev_crl {
    char ca_id[64];
    X509 *cert;
    fp_signer *signer;
    unsigned char *cert_der; /* for /ca/<id>.crt */
    int cert_der_len;
    rev_blob *current;       /* guarded by rev_state.lock */
    /* signed elsewhere (offline root), served as is (rev_upload.c) */
    bool uploaded;
    /* the upload file last read: inode, mtime in nanoseconds, size (an
     * mv'd replacement is a new inode even within the same second) */
    int64_t upload_ino, upload_mtime, upload_size;
} rev_crl;

typedef struct rev_state {
    const fp_config *cfg;
    const fp_app *app;        /* every CA, by project (caset.h) */
    fp_ocsp_responder *ocsp;
    rev_crl crls[REV_MAX_CRLS];
    int n_crls;
    char *pass; /* key passphrase (for the signer renewal), wiped on free */
    size_t passlen;

    pthread_mutex_t lock;
    pthread_cond_t wake;     /* stop, or work for the CRL thread */
    bool stopping;
    bool threads_started;
    pthread_t watcher, crl_thread;
    fp_store *store;         /* the watcher's handle (init uses it first) */
    fp_store *crl_store;     /* the CRL thread's handle */
    int64_t seq;             /* change log position */
    bool crl_dirty;          /* guarded by lock */
    int64_t dirty_since_ms, last_change_ms;
    int64_t dirty_seq;       /* change log position the CRLs must cover (lock) */
} rev_state;

/* The module the composition root mounts (src/cli/cmd_serve.c), with
 * what its init hook takes (borrowed during fp_http_mount only: the
 * passphrase is copied). */
typedef struct fp_rev_args {
    const fp_config *cfg;
    const fp_app *app;       /* every issuing CA is served */
    const char *pass;        /* passphrase of the CA and OCSP keys, or NULL */
    size_t passlen;
} fp_rev_args;
extern const fp_http_module fp_rev_module;

/* rev_publish.c */
int rev_publish_start(rev_state *st, fp_error *err);
void rev_publish_stop(rev_state *st);
/* Generate and publish the CRL of crls[i] now with store (the CRL
 * thread's handle, or init's). */
int rev_crl_refresh(rev_state *st, fp_store *store, int i, fp_error *err);
/* Bring crls[i] up to the change log position need_seq: serve the CRL
 * another node published (fp_store_crl_get) when it covers need_seq and is
 * not due, else regenerate it under the store's per-CA lock and publish
 * it.  *busy: another node holds the lock (nothing done; try again later). */
int rev_crl_sync(rev_state *st, fp_store *store, int i, int64_t need_seq, bool *busy,
                 fp_error *err);
/* Current CRL of ca_id with a reference (rev_blob_put), or NULL. */
rev_blob *rev_crl_get(rev_state *st, const char *ca_id);
void rev_blob_put(rev_blob *b);

/* rev_upload.c: DIR/crl-upload/<ca id>.crl of a CA whose key is offline.
 * add: FP_ERR_NOT_FOUND (nothing added) when there is no upload; cert_opt
 * is the config option naming the CA certificate.  refresh: re-read when
 * the file changed. */
int rev_crl_upload_add(rev_state *st, const char *ca_id, const char *cert_opt, fp_error *err);
int rev_crl_upload_refresh(rev_state *st, int i, fp_error *err);

#endif
