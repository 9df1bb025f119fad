/* issue.c - the one issuance path; see issue.h. */
#define _POSIX_C_SOURCE 200809L
#include "issue.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "detail.h"
#include "policy.h"

#define SERIAL_ATTEMPTS 8

struct fp_issuer {
    const fp_caset *cas;
    fp_committer *committer;
    fp_issued_fn issued; /* step 6 (issue.h) */
    void *issued_arg;
    fp_issuing_fn issuing; /* step 2's device check (issue.h) */
    void *issuing_arg;
};

int fp_issuer_new(const fp_caset *cas, fp_committer *committer, fp_issuer **out, fp_error *err)
{
    fp_issuer *iss = calloc(1, sizeof(*iss));
    *out = NULL;
    if (iss == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    iss->cas = cas;
    iss->committer = committer;
    *out = iss;
    return FP_ERR_OK;
}

void fp_issuer_free(fp_issuer *iss) { free(iss); }

void fp_issuer_set_committer(fp_issuer *iss, fp_committer *committer)
{
    iss->committer = committer;
}

void fp_issuer_set_issued_hook(fp_issuer *iss, fp_issued_fn fn, void *arg)
{
    iss->issued = fn;
    iss->issued_arg = arg;
}

void fp_issuer_set_issuing_hook(fp_issuer *iss, fp_issuing_fn fn, void *arg)
{
    iss->issuing = fn;
    iss->issuing_arg = arg;
}

static const char *req_project(const fp_issue_req *req)
{
    return req->project != NULL && req->project[0] ? req->project : FP_PROJECT_DEFAULT;
}

void fp_issue_after(fp_issuer *iss, fp_store *store, const fp_issue_req *req, X509 *cert)
{
    char serial[FP_SERIAL_HEX_MAX] = "?";
    fp_error e = {0};

    if (iss == NULL || iss->issued == NULL || cert == NULL || req->not_device)
        return;
    if (iss->issued(iss->issued_arg, store, req_project(req), cert, req->auth_cert, req->actor,
                    &e) == FP_ERR_OK)
        return;
    /* the certificate is durable and goes out regardless: its device's
     * first presentation of it links it (docs/registry.md) */
    fp_serial_hex(X509_get0_serialNumber(cert), serial);
    fp_log(FP_LOG_WARN, "certificate %s (%s): linking it to its device failed: %s", serial,
           req->via ? req->via : "-", e.msg);
}

int fp_issuer_pick(const fp_issuer *iss, const fp_issue_req *req, fp_ca **ca, fp_error *err)
{
    const char *project = req_project(req);

    *ca = NULL;
    if (req->ca_id != NULL && req->ca_id[0]) {
        fp_ca *c = fp_caset_find(iss->cas, req->ca_id);
        /* a CA of another project is as absent as an unknown one */
        if (c == NULL || strcmp(fp_ca_project(c), project) != 0)
            return fp_err_set(err, FP_ERR_NOT_FOUND, "project '%s' has no issuing CA '%s'",
                              project, req->ca_id);
        *ca = c;
        return FP_ERR_OK;
    }
    *ca = fp_caset_active(iss->cas, project);
    if (*ca == NULL)
        return fp_err_set(err, FP_ERR_NOT_FOUND, "project '%s' has no active issuing CA "
                                                 "(fleetpki ca create --project %s)",
                          project, project);
    return FP_ERR_OK;
}

/* csr.refuse with the reason; a failure to audit is logged, not fatal
 * (the refusal itself stands). */
static void audit_refusal(fp_store *store, const fp_ca *ca, const fp_issue_req *req,
                          const fp_error *why)
{
    char *subject = req->csr ? fp_name_string(X509_REQ_get_subject_name(req->csr)) : NULL;
    char *detail = fp_audit_detail("error", fp_err_name(why->code), "message", why->msg,
                                   "profile", req->profile, "subject", subject, "via", req->via,
                                   "ca", fp_ca_id(ca), NULL);
    fp_audit_event ev = {.actor = req->actor, .action = "csr.refuse", .object = "",
                         .detail = detail ? detail : "", .project = fp_ca_project(ca)};
    fp_error ignored = {0};

    if (fp_store_audit_append(store, &ev, &ignored) != FP_ERR_OK)
        fp_log(FP_LOG_WARN, "could not audit a refusal: %s", ignored.msg);
    free(subject);
    free(detail);
}

/* A failure of steps 2-3: refusals are audited on store (when non-NULL;
 * a NULL store is a re-signing after a serial collision, whose device was
 * asked at the first signing). */
static int refused(fp_store *store, fp_ca *ca, const fp_issue_req *req, int rc,
                   const fp_error *e)
{
    if (store != NULL && fp_err_is_refusal(rc))
        audit_refusal(store, ca, req, e);
    return rc;
}

/* Steps 2 and 3 after the signature (the signed certificate in *x): its
 * record, iss's device hook (iss non-NULL), the front end's check, the
 * audit detail.  On failure *x is freed and NULL, refusals audited. */
static int after_sign(const fp_issuer *iss, fp_ca *ca, fp_store *store, const fp_issue_req *req,
                      X509 **x, fp_cert_rec *rec, char **detail, fp_error *e)
{
    int rc = fp_ca_record(ca, req, *x, rec, e);

    *detail = NULL;
    /* on the certificate as built: the profile decides the subject and
     * SANs the device's name is taken from */
    if (rc == FP_ERR_OK && iss != NULL && iss->issuing != NULL && store != NULL &&
        !req->not_device)
        rc = iss->issuing(iss->issuing_arg, store, req_project(req), *x, req->auth_cert, e);
    if (rc == FP_ERR_OK && req->check != NULL)
        rc = req->check(req->check_arg, *x, rec, e);
    if (rc == FP_ERR_OK &&
        (*detail = fp_audit_detail("profile", rec->profile, "subject", rec->subject, "via",
                                   req->via, NULL)) == NULL)
        rc = fp_err_set(e, FP_ERR_NOMEM, NULL);
    if (rc != FP_ERR_OK) {
        X509_free(*x);
        *x = NULL;
        fp_cert_rec_clear(rec);
        return refused(store, ca, req, rc, e);
    }
    return FP_ERR_OK;
}

/* Step 2 up to the signature: policy and the unsigned certificate. */
static int before_sign(fp_ca *ca, fp_store *store, const fp_issue_req *req, X509 **x,
                       fp_error *e)
{
    int rc = fp_ca_build(ca, req, x, e);
    return rc == FP_ERR_OK ? FP_ERR_OK : refused(store, ca, req, rc, e);
}

/* Steps 2 and 3 on this thread: before_sign, the signature, after_sign. */
static int sign_checked(const fp_issuer *iss, fp_ca *ca, fp_store *store,
                        const fp_issue_req *req, X509 **x, fp_cert_rec *rec, char **detail,
                        fp_error *e)
{
    int rc;

    *detail = NULL;
    memset(rec, 0, sizeof(*rec));
    if ((rc = before_sign(ca, store, req, x, e)) != FP_ERR_OK)
        return rc;
    if ((rc = fp_signer_sign_cert(fp_ca_get0_signer(ca), *x, e)) != FP_ERR_OK) {
        X509_free(*x);
        *x = NULL;
        return refused(store, ca, req, rc, e);
    }
    return after_sign(iss, ca, store, req, x, rec, detail, e);
}

static const char *req_action(const fp_issue_req *req)
{
    return req->action != NULL ? req->action : "cert.issue";
}

/* Step 4 on the caller's handle: one transaction. */
static int commit_sync(fp_store *store, const fp_issue_req *req, const fp_cert_rec *rec,
                       const char *detail, fp_error *e)
{
    fp_audit_event ev = {.actor = req->actor, .action = req_action(req), .object = rec->serial,
                         .detail = detail, .project = rec->project};
    fp_error result = {0};
    int rc;

    if (req->pending_id > 0) {
        fp_audit_event dev = {.actor = req->actor, .action = "csr.approve", .object = rec->serial,
                              .detail = "", .project = rec->project};
        return fp_store_pending_issue(store, req->pending_id, rec, &ev, &dev, e);
    }
    if (req->token_id == NULL || !req->token_id[0])
        return fp_store_cert_insert(store, rec, &ev, 1, e);
    rc = fp_store_cert_insert_spend(store, rec, &ev, &req->token_id, fp_now(), &result, 1, e);
    if (rc == FP_ERR_OK && result.code != FP_ERR_OK) {
        if (e != NULL)
            *e = result;
        rc = result.code;
    }
    return rc;
}

static int ca_issue(const fp_issuer *iss, fp_ca *ca, fp_store *store, const fp_issue_req *req,
                    X509 **cert, fp_error *err)
{
    fp_error local = {0};
    fp_error *e = err ? err : &local;
    int rc = FP_ERR_INTERNAL;

    *cert = NULL;
    for (int attempt = 0; attempt < SERIAL_ATTEMPTS; attempt++) {
        fp_cert_rec rec;
        X509 *x = NULL;
        char *detail = NULL;

        if ((rc = sign_checked(iss, ca, store, req, &x, &rec, &detail, e)) != FP_ERR_OK)
            return rc;
        fp_test_crash_point("issue-after-sign");
        rc = commit_sync(store, req, &rec, detail, e);
        free(detail);
        fp_cert_rec_clear(&rec);
        if (rc == FP_ERR_OK) {
            fp_test_crash_point("issue-after-commit");
            *cert = x;
            return FP_ERR_OK;
        }
        X509_free(x); /* never handed out: its serial was not recorded */
        if (rc != FP_ERR_DUPLICATE)
            return rc;
        fp_log(FP_LOG_WARN, "serial collision, drawing a new serial (attempt %d)", attempt + 1);
    }
    return fp_err_set(e, FP_ERR_DUPLICATE, "no unique serial after %d attempts", SERIAL_ATTEMPTS);
}

int fp_ca_issue(fp_ca *ca, fp_store *store, const fp_issue_req *req, X509 **cert, fp_error *err)
{
    return ca_issue(NULL, ca, store, req, cert, err);
}

int fp_issue(fp_issuer *iss, fp_store *store, const fp_issue_req *req, X509 **cert,
             fp_error *err)
{
    fp_ca *ca = NULL;
    int rc;

    *cert = NULL;
    if ((rc = fp_issuer_pick(iss, req, &ca, err)) != FP_ERR_OK ||
        (rc = ca_issue(iss, ca, store, req, cert, err)) != FP_ERR_OK)
        return rc;
    fp_issue_after(iss, store, req, *cert);
    return FP_ERR_OK;
}

int fp_issue_precheck(fp_issuer *iss, fp_store *store, const fp_issue_req *req, fp_error *err)
{
    const fp_profile *p;
    fp_ca *ca = NULL;
    int rc;

    if ((rc = fp_issuer_pick(iss, req, &ca, err)) != FP_ERR_OK)
        return rc;
    p = fp_config_profile(fp_ca_config(ca), req->profile);
    rc = p == NULL ? fp_err_set(err, FP_ERR_PROFILE, "no profile named '%s'", req->profile)
                   : fp_policy_check(p, req->csr, err);
    if (rc == FP_ERR_OK && req->check != NULL)
        rc = req->check(req->check_arg, NULL, NULL, err);
    if (rc != FP_ERR_OK && store != NULL && fp_err_is_refusal(rc))
        audit_refusal(store, ca, req, err);
    return rc;
}

/* ---- group commit ---- */

typedef struct issue_job {
    const fp_issuer *iss;
    fp_store *store;  /* fp_issue_submit_async: the submitter's, for after_sign */
    fp_ca *ca;
    fp_committer *committer;
    fp_issue_req req; /* its pointers are the submitter's, valid until done */
    X509 *cert;
    int attempts;
    fp_issue_done done;
    void *arg;
} issue_job;

static void job_committed(void *arg, int rc, const fp_error *err);

/* Sign (again) and hand the record to the writer; done is called in every
 * case from here on (fp_committer_submit calls it on a refusal too). */
static void job_submit(issue_job *j, fp_store *store)
{
    fp_cert_rec rec;
    char *detail = NULL;
    fp_error e = {0};
    int rc;

    j->attempts++;
    rc = sign_checked(j->iss, j->ca, store, &j->req, &j->cert, &rec, &detail, &e);
    if (rc != FP_ERR_OK) {
        job_committed(j, rc, &e);
        return;
    }
    /* the committer takes rec's heap fields, and copies the strings */
    fp_committer_submit(j->committer, &rec, j->req.actor, req_action(&j->req), detail,
                        j->req.token_id, job_committed, j);
    free(detail);
}

/* Writer thread (or the submitter's, when the committer refused at once). */
static void job_committed(void *arg, int rc, const fp_error *err)
{
    issue_job *j = arg;
    fp_error e = {0};

    if (rc == FP_ERR_DUPLICATE && j->attempts < SERIAL_ATTEMPTS) {
        /* a serial collision (2^-128 unless a test forces it): signing
         * once more here costs the writer one signature */
        fp_log(FP_LOG_WARN, "serial collision, signing again (attempt %d)", j->attempts + 1);
        X509_free(j->cert);
        j->cert = NULL;
        job_submit(j, NULL);
        return;
    }
    if (rc != FP_ERR_OK) {
        if (err != NULL)
            e = *err;
        else
            fp_err_set(&e, rc, "issuance failed");
        X509_free(j->cert);
        j->cert = NULL;
    }
    j->done(j->arg, rc, rc == FP_ERR_OK ? NULL : &e, j->cert);
    free(j);
}

/* The job of a group-committed issuance, its CA picked (both submits). */
static int job_new(fp_issuer *iss, fp_store *store, const fp_issue_req *req,
                   fp_issue_done done, void *arg, issue_job **out, fp_error *err)
{
    fp_ca *ca = NULL;
    int rc;

    *out = NULL;
    if (iss->committer == NULL)
        return fp_err_set(err, FP_ERR_STATE, "no group committer: use fp_issue");
    if (req->pending_id > 0)
        return fp_err_set(err, FP_ERR_ARG, "approval is synchronous: use fp_issue");
    if ((rc = fp_issuer_pick(iss, req, &ca, err)) != FP_ERR_OK)
        return rc;
    if ((*out = calloc(1, sizeof(**out))) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    **out = (issue_job){.iss = iss, .store = store, .ca = ca, .committer = iss->committer,
                        .req = *req, .done = done, .arg = arg, .attempts = 1};
    return FP_ERR_OK;
}

int fp_issue_submit(fp_issuer *iss, fp_store *store, const fp_issue_req *req,
                    fp_issue_done done, void *arg, fp_error *err)
{
    issue_job *j;
    fp_cert_rec rec;
    char *detail = NULL;
    int rc;

    if ((rc = job_new(iss, store, req, done, arg, &j, err)) != FP_ERR_OK)
        return rc;
    /* the first signature on the caller's thread, so a refusal is
     * answered (and audited on the caller's handle) without the writer */
    if ((rc = sign_checked(iss, j->ca, store, req, &j->cert, &rec, &detail, err)) !=
        FP_ERR_OK) {
        free(j);
        return rc;
    }
    fp_committer_submit(j->committer, &rec, req->actor, req_action(req), detail, req->token_id,
                        job_committed, j);
    free(detail);
    return FP_ERR_OK;
}

/* The signature is in (fp_issue_submit_async), on the submitter's thread:
 * the rest of steps 2-3, then the writer. */
static void job_signed(void *arg, int rc, const fp_error *err)
{
    issue_job *j = arg;
    fp_cert_rec rec;
    char *detail = NULL;
    fp_error e = {0};

    if (rc != FP_ERR_OK) {
        e = *err;
        refused(j->store, j->ca, &j->req, rc, &e);
        job_committed(j, rc, &e); /* frees the unsigned certificate */
        return;
    }
    if ((rc = after_sign(j->iss, j->ca, j->store, &j->req, &j->cert, &rec, &detail, &e)) !=
        FP_ERR_OK) {
        job_committed(j, rc, &e);
        return;
    }
    fp_committer_submit(j->committer, &rec, j->req.actor, req_action(&j->req), detail,
                        j->req.token_id, job_committed, j);
    free(detail);
}

int fp_issue_submit_async(fp_issuer *iss, fp_store *store, const fp_issue_req *req,
                          fp_issue_done done, void *arg, fp_error *err)
{
    issue_job *j;
    int rc;

    if ((rc = job_new(iss, store, req, done, arg, &j, err)) != FP_ERR_OK)
        return rc;
    if ((rc = before_sign(j->ca, store, req, &j->cert, err)) != FP_ERR_OK) {
        free(j);
        return rc;
    }
    fp_signer_sign_cert_async(fp_ca_get0_signer(j->ca), j->cert, job_signed, j);
    return FP_ERR_OK;
}

/* ---- batches (bulk minting) ---- */

typedef struct batch_item {
    fp_ca *ca;
    X509 *x;
    fp_cert_rec rec;
    char *detail;
} batch_item;

static void item_clear(batch_item *it)
{
    X509_free(it->x);
    it->x = NULL;
    fp_cert_rec_clear(&it->rec);
    free(it->detail);
    it->detail = NULL;
}

typedef struct serial_ref {
    const char *serial;
    size_t i;
} serial_ref;

static int by_serial(const void *a, const void *b)
{
    return strcmp(((const serial_ref *)a)->serial, ((const serial_ref *)b)->serial);
}

/* After FP_ERR_DUPLICATE: mark the items whose serial is already in the
 * store, or repeats one drawn earlier in the batch.  *found counts them. */
static int find_collisions(fp_store *store, const batch_item *items, size_t n, bool *redo,
                           size_t *found, fp_error *e)
{
    serial_ref *order = malloc(n * sizeof(*order));
    int rc = FP_ERR_OK;

    *found = 0;
    if (order == NULL)
        return fp_err_set(e, FP_ERR_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        order[i] = (serial_ref){items[i].rec.serial, i};
        redo[i] = false;
    }
    qsort(order, n, sizeof(*order), by_serial);
    for (size_t k = 1; k < n; k++)
        if (strcmp(order[k].serial, order[k - 1].serial) == 0)
            redo[order[k].i] = true;
    free(order);
    for (size_t i = 0; i < n && rc == FP_ERR_OK; i++) {
        fp_cert_rec old;
        fp_error ge = {0};
        int g = redo[i] ? FP_ERR_NOT_FOUND : fp_store_cert_get(store, items[i].rec.serial, &old, &ge);

        if (g == FP_ERR_OK) {
            fp_cert_rec_clear(&old);
            redo[i] = true;
        } else if (g != FP_ERR_NOT_FOUND) {
            *e = ge;
            rc = g;
        }
    }
    for (size_t i = 0; i < n; i++)
        *found += redo[i];
    return rc;
}

static int batch_sign(fp_store *store, const fp_issue_req *req, batch_item *it, fp_error *e)
{
    item_clear(it);
    /* no device hook for bulk minting, as no step 6 (issue.h) */
    return sign_checked(NULL, it->ca, store, req, &it->x, &it->rec, &it->detail, e);
}

static int batch_commit(fp_store *store, const fp_issue_req *reqs, batch_item *items, size_t n,
                        fp_error *e)
{
    fp_cert_rec *recs = malloc(n * sizeof(*recs));
    fp_audit_event *evs = malloc(n * sizeof(*evs));
    int rc;

    if (recs == NULL || evs == NULL) {
        free(recs);
        free(evs);
        return fp_err_set(e, FP_ERR_NOMEM, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        recs[i] = items[i].rec; /* shallow: items keep ownership */
        evs[i] = (fp_audit_event){.actor = reqs[i].actor, .action = req_action(&reqs[i]),
                                  .object = items[i].rec.serial, .detail = items[i].detail,
                                  .project = items[i].rec.project};
    }
    rc = fp_store_cert_insert(store, recs, evs, n, e);
    free(recs);
    free(evs);
    return rc;
}

struct fp_signed_batch {
    const fp_issue_req *reqs; /* the caller's, valid until commit */
    size_t n;
    batch_item *items;
    bool *redo;
};

void fp_signed_batch_free(fp_signed_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; b->items != NULL && i < b->n; i++)
        item_clear(&b->items[i]);
    free(b->items);
    free(b->redo);
    free(b);
}

int fp_issue_batch_sign(fp_issuer *iss, fp_store *store, const fp_issue_req *reqs, size_t n,
                        fp_signed_batch **out, fp_error *err)
{
    fp_error local = {0};
    fp_error *e = err ? err : &local;
    fp_signed_batch *b = calloc(1, sizeof(*b));
    int rc = FP_ERR_OK;

    *out = NULL;
    if (b == NULL)
        return fp_err_set(e, FP_ERR_NOMEM, NULL);
    b->reqs = reqs;
    b->n = n;
    b->items = calloc(n ? n : 1, sizeof(*b->items));
    b->redo = calloc(n ? n : 1, sizeof(*b->redo));
    if (b->items == NULL || b->redo == NULL)
        rc = fp_err_set(e, FP_ERR_NOMEM, NULL);
    for (size_t i = 0; i < n && rc == FP_ERR_OK; i++) {
        if ((reqs[i].token_id != NULL && reqs[i].token_id[0]) || reqs[i].pending_id > 0)
            rc = fp_err_set(e, FP_ERR_ARG, "a batch takes no token and no held request");
        else if ((rc = fp_issuer_pick(iss, &reqs[i], &b->items[i].ca, e)) == FP_ERR_OK)
            rc = batch_sign(store, &reqs[i], &b->items[i], e);
    }
    if (rc != FP_ERR_OK) {
        fp_signed_batch_free(b);
        return rc;
    }
    *out = b;
    return FP_ERR_OK;
}

int fp_issue_batch_commit(fp_signed_batch *b, fp_store *store, X509 **certs, fp_error *err)
{
    fp_error local = {0};
    fp_error *e = err ? err : &local;
    int rc;

    for (size_t i = 0; i < b->n; i++)
        certs[i] = NULL;
    if (b->n == 0)
        return FP_ERR_OK;
    fp_test_crash_point("batch-before-commit");
    for (int attempt = 1;; attempt++) {
        size_t found = 0;

        rc = batch_commit(store, b->reqs, b->items, b->n, e);
        if (rc != FP_ERR_DUPLICATE)
            break;
        if (attempt >= SERIAL_ATTEMPTS) {
            rc = fp_err_set(e, FP_ERR_DUPLICATE, "no unique serials after %d attempts",
                            SERIAL_ATTEMPTS);
            break;
        }
        if ((rc = find_collisions(store, b->items, b->n, b->redo, &found, e)) != FP_ERR_OK)
            break;
        fp_log(FP_LOG_WARN, "serial collision in a batch of %zu: signing %zu again (attempt %d)",
               b->n, found, attempt + 1);
        /* only the colliding certificates are signed again; the others
         * were never handed out, their serials stay */
        for (size_t i = 0; i < b->n && rc == FP_ERR_OK; i++)
            if (b->redo[i])
                rc = batch_sign(store, &b->reqs[i], &b->items[i], e);
        if (rc != FP_ERR_OK)
            break;
    }
    if (rc != FP_ERR_OK)
        return rc;
    fp_test_crash_point("batch-after-commit");
    for (size_t i = 0; i < b->n; i++) {
        certs[i] = b->items[i].x;
        b->items[i].x = NULL;
    }
    return FP_ERR_OK;
}

int fp_issue_batch(fp_issuer *iss, fp_store *store, const fp_issue_req *reqs, size_t n,
                   X509 **certs, fp_error *err)
{
    fp_signed_batch *b = NULL;
    int rc;

    for (size_t i = 0; i < n; i++)
        certs[i] = NULL;
    if ((rc = fp_issue_batch_sign(iss, store, reqs, n, &b, err)) != FP_ERR_OK)
        return rc;
    rc = fp_issue_batch_commit(b, store, certs, err);
    fp_signed_batch_free(b);
    return rc;
}
