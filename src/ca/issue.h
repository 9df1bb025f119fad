/*
 * issue.h - the one issuance path.
 *
 * Every front end (the CLI's issue and approve, EST enroll / re-enroll /
 * serverkeygen, later the admin API, CMP, SCEP, ACME) hands its parsed
 * request and the identity it authenticated to fp_issue (synchronous:
 * commits on the caller's store handle) or fp_issue_submit (group commit
 * on the committer's writer thread).  Both run the same steps in the same
 * order:
 *   1. pick the CA: the project's active issuing CA, or req->ca_id when it
 *      belongs to the project;
 *   2. policy, build, sign (fp_ca_sign), then the issuer's before-issue
 *      hook on the built certificate (set once by the composition root:
 *      the device registry refuses a certificate for a suspended or
 *      decommissioned device, issue 10); a refused certificate is
 *      discarded, never recorded nor handed out;
 *   3. the front end's own last word on the signed certificate
 *      (req->check: e.g. EST's "the name asked for is the caller's");
 *   4. commit: the certificate, its audit row, the token use that pays
 *      for it and (approval) the held request's new state, in ONE durable
 *      transaction; a serial collision signs again with a fresh serial;
 *   5. only then is the certificate handed back;
 *   6. after the commit, the issuer's after-issue hook (set once by the
 *      composition root: the device registry links the certificate, and
 *      req->auth_cert, to the device the certificate belongs to, issue
 *      10).  Its own short transaction, never a reason to fail the
 *      issuance: the certificate is durable already.  fp_issue runs it
 *      itself; for fp_issue_submit the front end runs it with
 *      fp_issue_after on its own thread and store handle before it
 *      answers (the writer thread would serialise every link behind the
 *      group commit).  A crash between steps 4 and 6 leaves a durable,
 *      unlinked certificate: the device's first presentation of it links
 *      it, and decommission finds it by name (docs/registry.md).
 * A refusal in step 2 or 3 (fp_err_is_refusal) is written to the audit
 * log as csr.refuse, with the reason, before it is returned.  No front end
 * runs the policy or writes issuance audit rows itself.
 */
#ifndef FP_ISSUE_H
#define FP_ISSUE_H

#include "caset.h"
#include "committer.h"

typedef struct fp_issuer fp_issuer;

/* committer may be NULL (fp_issue_submit then fails with FP_ERR_STATE). */
int fp_issuer_new(const fp_caset *cas, fp_committer *committer, fp_issuer **out, fp_error *err);
void fp_issuer_free(fp_issuer *iss);
/* Group commit for fp_issue_submit (the server's writer; NULL: none). */
void fp_issuer_set_committer(fp_issuer *iss, fp_committer *committer);

/* Step 6's hook: told of every certificate issued through this issuer
 * to a device (not those of fp_ca_issue, nor req->not_device, nor bulk
 * batches), after its commit, on the caller's thread and store handle;
 * project is req's (FP_PROJECT_DEFAULT when NULL).  A failure is logged
 * by fp_issue_after and changes nothing else. */
typedef int (*fp_issued_fn)(void *arg, fp_store *store, const char *project, X509 *cert,
                            X509 *auth_cert, const char *actor, fp_error *err);
/* Set at start, before any issuance (NULL fn: none). */
void fp_issuer_set_issued_hook(fp_issuer *iss, fp_issued_fn fn, void *arg);
/* Step 2's device hook: asked about every certificate built through this
 * issuer for a device (as step 6: not fp_ca_issue, nor req->not_device),
 * after signing and before step 3 and the commit, on the caller's thread
 * and store handle.  Returns FP_ERR_OK to go on, or a refusal
 * (fp_err_is_refusal; audited as csr.refuse like the policy's) naming
 * the device and why.  Bulk batches (fp_issue_batch*) are not asked, as
 * they get no step 6. */
typedef int (*fp_issuing_fn)(void *arg, fp_store *store, const char *project, X509 *cert,
                             X509 *auth_cert, fp_error *err);
/* Set at start, before any issuance (NULL fn: none). */
void fp_issuer_set_issuing_hook(fp_issuer *iss, fp_issuing_fn fn, void *arg);

/* Step 6 for cert, issued and committed for req: what a front end of
 * fp_issue_submit calls once done reported FP_ERR_OK, before its answer
 * (fp_issue calls it itself).  Never fails: the outcome is logged. */
void fp_issue_after(fp_issuer *iss, fp_store *store, const fp_issue_req *req, X509 *cert);

/* The CA that would sign req (see step 1); FP_ERR_NOT_FOUND with the
 * project named when there is none. */
int fp_issuer_pick(const fp_issuer *iss, const fp_issue_req *req, fp_ca **ca, fp_error *err);

/* Steps 1-6 on the caller's thread and store handle.  *cert (caller
 * frees) only on FP_ERR_OK. */
int fp_issue(fp_issuer *iss, fp_store *store, const fp_issue_req *req, X509 **cert,
             fp_error *err);

/* Steps 1-2 without signing, for a request to be held for approval:
 * would the project's CA accept it?  req->check is called with a NULL
 * certificate and record.  Refusals audited on store, as fp_issue. */
int fp_issue_precheck(fp_issuer *iss, fp_store *store, const fp_issue_req *req, fp_error *err);

/* Called once, on the committer's writer thread, when the commit is done:
 * rc FP_ERR_OK and cert (the callee's to free) when durable; otherwise
 * the error (FP_ERR_STATE / FP_ERR_NOT_FOUND: the token could not pay)
 * and cert NULL.  err is valid only during the call. */
typedef void (*fp_issue_done)(void *arg, int rc, const fp_error *err, X509 *cert);

/* Steps 1-3 on the caller's thread (refusals audited on store), step 4 on
 * the writer thread; step 6 is the front end's (fp_issue_after).  Returns FP_ERR_OK when the job was queued: done
 * will be called; any other return means done will NOT be called.
 * req and everything it points to must stay valid until done runs.
 * req->pending_id is not supported here (approval is synchronous). */
int fp_issue_submit(fp_issuer *iss, fp_store *store, const fp_issue_req *req,
                    fp_issue_done done, void *arg, fp_error *err);

/*
 * fp_issue_submit without waiting for the signature (ca/signer.h
 * fp_signer_sign_cert_async): for a front end on a network worker that can
 * answer later (EST).  The same steps in the same order, split at the
 * signature: pick, policy and build here; then, once the signature is in
 * (later, on this thread's event loop, when the CA key is in the separate
 * signer process), the device hook, req->check and the hand-over to the
 * writer, on this thread and store.  Returns FP_ERR_OK when the job was
 * taken: done will be called, also for a refusal or failure after the
 * signature (audited as fp_issue_submit's), with its error; any other
 * return (pick, policy, build) means done will NOT be called.  store and
 * req as fp_issue_submit, valid until done runs.
 */
int fp_issue_submit_async(fp_issuer *iss, fp_store *store, const fp_issue_req *req,
                          fp_issue_done done, void *arg, fp_error *err);

/*
 * Steps 1-5 for n requests at once (bulk minting: `fleetpki factory
 * mint`), on the caller's thread and store handle.  Each request is
 * signed by its project's CA with the same policy, build, sign and check
 * steps as fp_issue; then every certificate of the batch is committed with
 * its audit row in ONE durable transaction (fp_store_cert_insert).  On a
 * serial collision (with the store, or two of the batch drawing the same
 * serial) only the colliding certificates are signed again and the batch
 * is committed again, up to the same attempt limit as fp_issue.
 * All or nothing: a refusal of any request (audited as csr.refuse, as
 * fp_issue does) or a store failure fails the whole batch and nothing is
 * committed.  Tokens and held requests are not supported here
 * (req->token_id, req->pending_id: FP_ERR_ARG).  certs[0..n-1] (caller
 * frees each) only on FP_ERR_OK; they are NULL otherwise.  Safe to call
 * from several threads at once, each with its own store handle.
 */
int fp_issue_batch(fp_issuer *iss, fp_store *store, const fp_issue_req *reqs, size_t n,
                   X509 **certs, fp_error *err);

/* fp_issue_batch in its two halves, so that several threads can sign
 * while one at a time commits (the factory serialises the commits itself
 * instead of waiting on the store's lock).  _sign: steps 1-3 for every
 * request (refusals audited on store, all or nothing); *out (free with
 * fp_signed_batch_free) keeps pointers into reqs, which must stay valid
 * until it is freed.  _commit: steps 4-5 as fp_issue_batch (collisions
 * signed again, audited on store); certs as fp_issue_batch.  A batch
 * whose commit failed may be committed again or freed. */
typedef struct fp_signed_batch fp_signed_batch;
int fp_issue_batch_sign(fp_issuer *iss, fp_store *store, const fp_issue_req *reqs, size_t n,
                        fp_signed_batch **out, fp_error *err);
int fp_issue_batch_commit(fp_signed_batch *b, fp_store *store, X509 **certs, fp_error *err);
void fp_signed_batch_free(fp_signed_batch *b);

#endif
