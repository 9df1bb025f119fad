/*
 * rev.h - the revocation module of `fleetpki serve` (private to src/rev):
 * OCSP and CRL over plain HTTP, plus the background publisher.
 *
 *   rev_http.c     routes and thin handlers (decode, call core, encode)
 *   rev_publish.c  one background thread with its own store handle:
 *                  - every POLL_MS polls the store's status-change log
 *                    (fp_ocsp_watch), dropping cached OCSP responses of
 *                    changed certificates: a revocation made by any process
 *                    shows in OCSP within one poll;
 *                  - regenerates the CRLs after changes, coalesced (waits
 *                    for a quiet poll, at most COALESCE_MAX_MS), and before
 *                    nextUpdate (at half the interval);
 *                  - renews the OCSP signer certificate at start and hourly.
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

#define REV_MAX_CRLS 2 /* issuing CA, and the root when its key is online */

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
} rev_crl;

typedef struct rev_state {
    const fp_config *cfg;
    fp_ca *ca;
    fp_ocsp_responder *ocsp;
    rev_crl crls[REV_MAX_CRLS];
    int n_crls;
    char *pass; /* key passphrase (for the signer renewal), wiped on free */
    size_t passlen;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    bool thread_started;
    pthread_t thread;
    fp_store *store;  /* the publisher thread's handle */
    int64_t seq;      /* change log position */
} rev_state;

/* Module hooks (listed in src/http/routes.c). */
int fp_rev_init(fp_http_server *srv, void **state, fp_error *err);
void fp_rev_stop(void *state);
void fp_rev_free(void *state);

/* rev_publish.c */
int rev_publish_start(rev_state *st, fp_error *err);
void rev_publish_stop(rev_state *st);
/* Generate and publish the CRL of crls[i] now (publisher or init only). */
int rev_crl_refresh(rev_state *st, int i, fp_error *err);
/* Current CRL of ca_id with a reference (rev_blob_put), or NULL. */
rev_blob *rev_crl_get(rev_state *st, const char *ca_id);
void rev_blob_put(rev_blob *b);

#endif
