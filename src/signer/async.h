/*
 * async.h - signatures that do not stop a network worker.
 *
 * With the separate signer (privsep.h) a signature is a request to another
 * process and its answer.  A worker that waited for it would sleep once per
 * signature, and the signer would too (BENCHMARKS.md, "Separate signer":
 * the context switches were the separation's main cost).  Instead the
 * worker runs the signing call (X509_sign, OCSP_basic_sign: never more, an
 * OpenSSL 3.0 job has a fixed 32 KB stack) in an OpenSSL ASYNC job
 * (openssl/async.h); the remote key's provider (keys/rkey.c) sends the
 * request and pauses the job; this runner watches the answer's descriptor
 * on the worker's event loop and resumes the job when it is readable; the
 * caller's continuation then finishes the work (the issuance's stage 2,
 * ca/issue.h; the OCSP answer).  Meanwhile the worker serves its other
 * connections, and under load several signatures are out at once.
 *
 * One runner per worker thread, installed on that thread: ca/signer.h's
 * *_async calls use it through fp_signer_set_thread_runner.  Threads
 * without one (CLI, CRL, committer, CMP and SCEP callers of the
 * synchronous calls) sign as before.
 */
#ifndef FP_SIGNER_ASYNC_H
#define FP_SIGNER_ASYNC_H

#include <stdbool.h>

#include <event2/event.h>

#include "../common/err.h"

typedef struct fp_sasync fp_sasync;

/* A runner on base for the calling thread (its event loop's thread), made
 * the thread's runner for ca/signer.h.  NULL on allocation failure (the
 * thread then signs synchronously). */
fp_sasync *fp_sasync_thread_begin(struct event_base *base);

/* On the same thread, once its event loop is over: every paused signature
 * is waited for (a dead signer ends each with FP_ERR_KEY_UNAVAILABLE) and
 * its continuation run; then the runner is freed and the thread's OpenSSL
 * job pool with it.  A signer that does not answer within the end wait
 * (FP_SASYNC_END_WAIT_MS after the loop ended) is cut off: the
 * descriptors still waited on are shut down, so the rest end with
 * FP_ERR_KEY_UNAVAILABLE too.  NULL: nothing. */
void fp_sasync_thread_end(fp_sasync *sa);
#define FP_SASYNC_END_WAIT_MS 10000

/* Another end wait (tests). */
void fp_sasync_set_end_wait(fp_sasync *sa, int ms);

/* Run call(carg) in a job; done(darg, rc, err) exactly once with its
 * result, on this thread: before this returns if the call did not pause,
 * else from the event loop.  false (done not called): not possible here
 * (inside a job already, no job available); the caller calls synchronously. */
typedef int (*fp_sasync_call)(void *carg, fp_error *err);
typedef void (*fp_sasync_done)(void *darg, int rc, const fp_error *err);
bool fp_sasync_run(fp_sasync *sa, fp_sasync_call call, void *carg, fp_sasync_done done,
                   void *darg);

/* Signatures started and not yet done (tests, drain). */
int fp_sasync_pending(const fp_sasync *sa);

#endif
