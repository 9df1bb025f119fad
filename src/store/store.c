/* store.c - dispatch to the backend chosen by fp_store_open. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

int fp_store_open(const char *path, fp_store **out, fp_error *err)
{
    *out = NULL;
    if (!strncmp(path, "postgres://", 11) || !strncmp(path, "postgresql://", 13))
        return fp_err_set(err, FP_ERR_CONFIG,
                          "the PostgreSQL store backend is not available in this build");
    return fp_store_sqlite_open(path, out, err);
}

void fp_store_close(fp_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

int fp_store_ca_put(fp_store *s, const char *id, const char *parent_id,
                    const unsigned char *der, size_t der_len,
                    const fp_audit_event *ev, fp_error *err)
{
    return s->ops->ca_put(s, id, parent_id, der, der_len, ev, err);
}

int fp_store_cert_insert(fp_store *s, const fp_cert_rec *recs,
                         const fp_audit_event *evs, size_t n, fp_error *err)
{
    return s->ops->cert_insert(s, recs, evs, NULL, 0, NULL, n, err);
}

int fp_store_cert_insert_spend(fp_store *s, const fp_cert_rec *recs,
                               const fp_audit_event *evs, const char *const *token_ids,
                               int64_t now, fp_error *results, size_t n, fp_error *err)
{
    if (token_ids != NULL && results == NULL)
        return fp_err_set(err, FP_ERR_ARG, "token uses need a results array");
    return s->ops->cert_insert(s, recs, evs, token_ids, now, results, n, err);
}

int fp_store_cert_get(fp_store *s, const char *serial, fp_cert_rec *out,
                      fp_error *err)
{
    return s->ops->cert_get(s, serial, out, err);
}

int fp_store_cert_list(fp_store *s, const fp_cert_filter *f, fp_cert_cb cb,
                       void *arg, fp_error *err)
{
    return s->ops->cert_list(s, f, cb, arg, err);
}

int fp_store_cert_set_status(fp_store *s, const char *serial, int status,
                             int reason, int64_t when, const fp_audit_event *ev,
                             fp_error *err)
{
    return s->ops->cert_set_status(s, serial, status, reason, when, ev, err);
}

int fp_store_audit_append(fp_store *s, const fp_audit_event *ev, fp_error *err)
{
    return s->ops->audit_append(s, ev, err);
}

int fp_store_audit_iter(fp_store *s, fp_audit_cb cb, void *arg, fp_error *err)
{
    return s->ops->audit_iter(s, cb, arg, NULL, NULL, err);
}

int fp_store_check(fp_store *s, fp_error *err)
{
    return s->ops->check(s, err);
}

int fp_store_cert_status(fp_store *s, const char *serial, fp_cert_status_rec *out,
                         fp_error *err)
{
    return s->ops->cert_status(s, serial, out, err);
}

int fp_store_revoked_iter(fp_store *s, const char *ca_id, fp_revoked_cb cb,
                          void *arg, fp_error *err)
{
    return s->ops->revoked_iter(s, ca_id, cb, arg, err);
}

int fp_store_crl_number_next(fp_store *s, const char *ca_id, int64_t *out,
                             fp_error *err)
{
    return s->ops->crl_number_next(s, ca_id, out, err);
}

int fp_store_status_seq(fp_store *s, int64_t *seq, fp_error *err)
{
    return s->ops->status_seq(s, seq, err);
}

int fp_store_status_changes(fp_store *s, int64_t after, int max, fp_change_cb cb,
                            void *arg, fp_error *err)
{
    return s->ops->status_changes(s, after, max, cb, arg, err);
}

int fp_store_token_put(fp_store *s, const fp_token_rec *t, const fp_audit_event *ev,
                       fp_error *err)
{
    return s->ops->token_put(s, t, ev, err);
}

int fp_store_token_get(fp_store *s, const char *id, fp_token_rec *out, fp_error *err)
{
    return s->ops->token_get(s, id, out, err);
}

int fp_store_token_use(fp_store *s, const char *id, int64_t now,
                       const fp_audit_event *ev, fp_error *err)
{
    return s->ops->token_use(s, id, now, ev, err);
}

void fp_pending_rec_clear(fp_pending_rec *r)
{
    free(r->csr);
    free(r->subject);
    free(r->actor);
    memset(r, 0, sizeof(*r));
}

int fp_store_pending_add(fp_store *s, const fp_pending_rec *r, int64_t *id,
                         const fp_audit_event *ev, fp_error *err)
{
    return s->ops->pending_add(s, r, id, ev, err);
}

int fp_store_pending_find(fp_store *s, const char *label, const char *csr_hash,
                          fp_pending_rec *out, fp_error *err)
{
    return s->ops->pending_find(s, label, csr_hash, out, err);
}

int fp_store_pending_get(fp_store *s, int64_t id, fp_pending_rec *out, fp_error *err)
{
    return s->ops->pending_get(s, id, out, err);
}

int fp_store_pending_list(fp_store *s, int status, fp_pending_cb cb, void *arg,
                          fp_error *err)
{
    return s->ops->pending_list(s, status, cb, arg, err);
}

int fp_store_pending_decide(fp_store *s, int64_t id, int status, const char *serial,
                            const fp_audit_event *ev, fp_error *err)
{
    return s->ops->pending_decide(s, id, status, serial, ev, err);
}

int fp_store_set_autocheckpoint(fp_store *s, int pages, fp_error *err)
{
    return s->ops->set_autocheckpoint ? s->ops->set_autocheckpoint(s, pages, err) : FP_ERR_OK;
}

int fp_store_checkpoint(fp_store *s, fp_error *err)
{
    return s->ops->checkpoint ? s->ops->checkpoint(s, err) : FP_ERR_OK;
}

typedef struct {
    int64_t expect_id;
    char prev[65];
    fp_error *err;
} verify_ctx;

static int verify_row(void *arg, const fp_audit_row *r)
{
    verify_ctx *v = arg;
    char h[65];

    if (r->id != v->expect_id)
        return fp_err_set(v->err, FP_ERR_AUDIT,
                          "audit row %" PRId64 " missing (found row %" PRId64 " next): rows were deleted",
                          v->expect_id, r->id);
    if (strcmp(r->prev_hash, v->prev) != 0)
        return fp_err_set(v->err, FP_ERR_AUDIT,
                          "audit row %" PRId64 ": previous-hash link broken", r->id);
    if (fp_audit_hash(v->prev, r->id, r->ts, r->actor, r->action, r->object,
                      r->detail, h) != FP_ERR_OK)
        return fp_err_set(v->err, FP_ERR_CRYPTO, "hashing failed");
    if (strcmp(h, r->hash) != 0)
        return fp_err_set(v->err, FP_ERR_AUDIT,
                          "audit row %" PRId64 ": content does not match its hash (edited)", r->id);
    memcpy(v->prev, h, sizeof(h));
    v->expect_id++;
    return FP_ERR_OK;
}

int fp_store_audit_verify(fp_store *s, int64_t *rows, fp_error *err)
{
    verify_ctx v = {1, FP_AUDIT_GENESIS, err};
    int64_t head_id = 0;
    char head_hash[65];
    int rc;

    *rows = 0;
    rc = s->ops->audit_iter(s, verify_row, &v, &head_id, head_hash, err);
    if (rc != FP_ERR_OK)
        return rc;
    *rows = v.expect_id - 1;
    if (head_id != *rows || strcmp(head_hash, v.prev) != 0)
        return fp_err_set(err, FP_ERR_AUDIT,
                          "audit log ends at row %" PRId64 " but its recorded head is row %" PRId64
                          ": rows were deleted or the head was altered",
                          *rows, head_id);
    return FP_ERR_OK;
}
