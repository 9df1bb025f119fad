/*
 * committer.h - group commit of issued certificates.
 *
 * One writer thread owns one store handle.  Any thread submits a signed
 * certificate record; the writer takes everything queued (up to
 * FP_COMMIT_BATCH), inserts it with fp_store_cert_insert in ONE durable
 * transaction (one fsync for the batch) and then calls each job's done
 * callback ON THE WRITER THREAD.  So many concurrent enrollments share an
 * fsync and each still learns that its own certificate is on disk before
 * anything is sent to its client.
 *
 * A job that carries an enrollment token pays with it in that same
 * transaction (fp_store_cert_insert_spend): the token use and the
 * certificate are durable together or not at all, and a job whose token
 * turns out used up or expired is refused alone while the rest of the
 * batch commits.
 *
 * If the batch fails with FP_ERR_DUPLICATE (a serial collision, or the
 * same serial twice), the writer retries the jobs one by one (token uses
 * included) so only the colliding job fails with FP_ERR_DUPLICATE, its
 * token unspent; its owner re-signs with a fresh serial and submits again
 * with the same token.
 *
 * Tests only: FLEETPKI_TEST_COMMIT_DELAY_MS=N pauses N ms (<= 10 s) before
 * each batch, so tests can hold enrollments in flight deterministically.
 */
#ifndef FP_COMMITTER_H
#define FP_COMMITTER_H

#include <stddef.h>

#include "../store/store.h"

#define FP_COMMIT_BATCH 512

typedef struct fp_committer fp_committer;

/* Called on the writer thread once the job's fate is known (rc FP_ERR_OK:
 * durable).  err is only valid during the call. */
typedef void (*fp_commit_done)(void *arg, int rc, const fp_error *err);

/* Open a store handle at store_path and start the writer thread. */
int fp_committer_start(const char *store_path, fp_committer **out, fp_error *err);

/* Queue rec (its heap fields are taken over and freed by the committer;
 * rec is zeroed) with an audit event (strings copied).  With token_id
 * (may be NULL), one use of that enrollment token is spent in the
 * transaction that stores rec; if the token cannot pay the certificate is
 * not stored and done gets the token's error (FP_ERR_STATE: used up or
 * expired; FP_ERR_NOT_FOUND), and if the transaction fails the use is not
 * spent.  done(arg, ...) is called exactly once, also when this returns
 * an error (then on the calling thread, before returning). */
int fp_committer_submit(fp_committer *c, fp_cert_rec *rec, const char *actor,
                        const char *action, const char *detail, const char *token_id,
                        fp_commit_done done, void *arg);

/* Jobs queued and not yet committed (for overload answers). */
size_t fp_committer_backlog(fp_committer *c);

/* Commit everything queued, stop the thread, close the store, free c. */
void fp_committer_stop(fp_committer *c);

#endif
