/*
 * store.c - backend-independent checks, then dispatch to the backend
 * chosen by fp_store_open.  What every backend would otherwise check alike
 * (project names, required fields of a CA row) is checked here once, so
 * the backends agree on FP_ERR_ARG.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

int fp_store_open_role(const char *path, fp_store_role role, fp_store **out, fp_error *err)
{
    *out = NULL;
    /* a libpq URI, or "pg:" and a key=value connection string */
    if (!strncmp(path, "postgres://", 11) || !strncmp(path, "postgresql://", 13))
        return fp_store_pg_open(path, role, out, err);
    if (!strncmp(path, FP_STORE_PG_PREFIX, strlen(FP_STORE_PG_PREFIX)))
        return fp_store_pg_open(path + strlen(FP_STORE_PG_PREFIX), role, out, err);
    return fp_store_sqlite_open(path, role, out, err);
}

int fp_store_open(const char *path, fp_store **out, fp_error *err)
{
    return fp_store_open_role(path, FP_STORE_ROLE_DEFAULT, out, err);
}

void fp_store_close(fp_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

int fp_store_maintain(fp_store *s, fp_error *err)
{
    return s->ops->maintain ? s->ops->maintain(s, err) : FP_ERR_OK;
}

int fp_store_check(fp_store *s, fp_error *err)
{
    return s->ops->check(s, err);
}

/* ---- projects and CAs ---- */

bool fp_project_name_ok(const char *name)
{
    size_t n;

    if (name == NULL || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
        return false;
    for (n = 1; name[n] != '\0'; n++) {
        char c = name[n];
        if (n >= FP_PROJECT_MAX - 1)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int bad_project(fp_error *err, const char *name)
{
    return fp_err_set(err, FP_ERR_ARG,
                      "project name '%.64s' is not valid: 1 to %d characters a-z 0-9 _ -,"
                      " starting with a letter or digit",
                      name ? name : "", FP_PROJECT_MAX - 1);
}

int fp_store_project_put(fp_store *s, const char *name, const fp_audit_event *ev,
                         fp_error *err)
{
    if (!fp_project_name_ok(name))
        return bad_project(err, name);
    return s->ops->project_put(s, name, ev, err);
}

int fp_store_project_get(fp_store *s, const char *name, fp_project_rec *out, fp_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!fp_project_name_ok(name))
        return fp_err_set(err, FP_ERR_NOT_FOUND, "no project '%.64s'", name ? name : "");
    return s->ops->project_get(s, name, out, err);
}

int fp_store_project_list(fp_store *s, fp_project_cb cb, void *arg, fp_error *err)
{
    return s->ops->project_list(s, cb, arg, err);
}

void fp_ca_rec_clear(fp_ca_rec *r)
{
    if (r == NULL)
        return;
    free(r->subject);
    free(r->der);
    memset(r, 0, sizeof(*r));
}

int fp_store_ca_add(fp_store *s, const fp_ca_rec *r, const fp_audit_event *ev, fp_error *err)
{
    if (r->id[0] == '\0' || memchr(r->id, '\0', sizeof(r->id)) == NULL)
        return fp_err_set(err, FP_ERR_ARG, "a CA needs an id (at most %d characters)",
                          FP_CA_ID_MAX - 1);
    if (r->der == NULL || r->der_len == 0)
        return fp_err_set(err, FP_ERR_ARG, "CA %s: no certificate", r->id);
    if (r->kind != FP_CA_ROOT && r->kind != FP_CA_ISSUING && r->kind != FP_CA_TRUST_ROOT)
        return fp_err_set(err, FP_ERR_ARG, "CA %s: unknown kind %d", r->id, r->kind);
    if (r->project[0] != '\0' && !fp_project_name_ok(r->project))
        return bad_project(err, r->project);
    if (r->project[0] == '\0' && r->kind != FP_CA_ROOT)
        return fp_err_set(err, FP_ERR_ARG, "CA %s: an issuing CA or trust root needs a project",
                          r->id);
    if (r->active && r->kind != FP_CA_ISSUING)
        return fp_err_set(err, FP_ERR_ARG, "CA %s: only an issuing CA can be active", r->id);
    return s->ops->ca_add(s, r, ev, err);
}

int fp_store_ca_get(fp_store *s, const char *id, fp_ca_rec *out, fp_error *err)
{
    return s->ops->ca_get(s, id, out, err);
}

int fp_store_ca_list(fp_store *s, const char *project, int kind, fp_ca_cb cb, void *arg,
                     fp_error *err)
{
    return s->ops->ca_list(s, project, kind, cb, arg, err);
}

int fp_store_ca_activate(fp_store *s, const char *id, const fp_audit_event *ev, fp_error *err)
{
    return s->ops->ca_activate(s, id, ev, err);
}

int fp_store_ca_set_cert(fp_store *s, const char *id, const unsigned char *der, size_t der_len,
                         const char *subject, int64_t not_before, int64_t not_after,
                         const fp_audit_event *ev, fp_error *err)
{
    if (s->ops->ca_set_cert == NULL) /* a backend that has not caught up */
        return fp_err_set(err, FP_ERR_STATE, "this store cannot replace a CA certificate");
    if (der == NULL || der_len == 0 || subject == NULL || subject[0] == '\0')
        return fp_err_set(err, FP_ERR_ARG, "CA certificate: empty DER or subject");
    return s->ops->ca_set_cert(s, id, der, der_len, subject, not_before, not_after, ev, err);
}

/* ---- certificates ---- */

int fp_store_cert_insert(fp_store *s, const fp_cert_rec *recs,
                         const fp_audit_event *evs, size_t n, fp_error *err)
{
    return fp_store_cert_insert_spend(s, recs, evs, NULL, 0, NULL, n, err);
}

int fp_store_cert_insert_spend(fp_store *s, const fp_cert_rec *recs,
                               const fp_audit_event *evs, const char *const *token_ids,
                               int64_t now, fp_error *results, size_t n, fp_error *err)
{
    if (token_ids != NULL && results == NULL)
        return fp_err_set(err, FP_ERR_ARG, "token uses need a results array");
    for (size_t i = 0; i < n; i++) {
        if (!fp_project_name_ok(recs[i].project)) {
            fp_error e = {0};
            int rc = bad_project(&e, recs[i].project);
            for (size_t j = 0; results != NULL && j < n; j++)
                results[j] = e;
            if (err != NULL)
                *err = e;
            return rc;
        }
    }
    return s->ops->cert_insert(s, recs, evs, token_ids, now, results, n, err);
}

int fp_store_cert_get(fp_store *s, const char *serial, fp_cert_rec *out, fp_error *err)
{
    return s->ops->cert_get(s, serial, out, err);
}

int fp_store_cert_list(fp_store *s, const fp_cert_filter *f, fp_cert_cb cb, void *arg,
                       fp_error *err)
{
    return s->ops->cert_list(s, f, cb, arg, err);
}

int fp_store_cert_set_status(fp_store *s, const char *serial, int status, int reason,
                             int64_t when, const fp_audit_event *ev, fp_error *err)
{
    return s->ops->cert_set_status(s, serial, status, reason, when, ev, err);
}

/* ---- status ---- */

int fp_store_cert_status(fp_store *s, const char *serial, fp_cert_status_rec *out,
                         fp_error *err)
{
    return s->ops->cert_status(s, serial, out, err);
}

int fp_store_revoked_iter(fp_store *s, const char *ca_id, fp_revoked_cb cb, void *arg,
                          fp_error *err)
{
    return s->ops->revoked_iter(s, ca_id, cb, arg, err);
}

int fp_store_revocation_number_next(fp_store *s, const char *ca_id, int64_t *out,
                                    fp_error *err)
{
    return s->ops->revocation_number_next(s, ca_id, out, err);
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

int fp_store_crl_put(fp_store *s, const char *ca_id, const fp_crl_pub *c, fp_error *err)
{
    if (ca_id == NULL || c == NULL || c->der == NULL || c->der_len == 0 || c->number < 1)
        return fp_err_set(err, FP_ERR_ARG, "a published CRL needs a CA, a number and its DER");
    return s->ops->crl_put(s, ca_id, c, err);
}

int fp_store_crl_get(fp_store *s, const char *ca_id, fp_crl_pub *out, fp_error *err)
{
    memset(out, 0, sizeof(*out));
    if (ca_id == NULL)
        return fp_err_set(err, FP_ERR_ARG, "CRL lookup needs a CA");
    return s->ops->crl_get(s, ca_id, out, err);
}

int fp_store_crl_lock(fp_store *s, const char *ca_id, bool lock, bool *got, fp_error *err)
{
    *got = true;
    if (ca_id == NULL)
        return fp_err_set(err, FP_ERR_ARG, "CRL lock needs a CA");
    return s->ops->crl_lock ? s->ops->crl_lock(s, ca_id, lock, got, err) : FP_ERR_OK;
}

int fp_store_status_wait(fp_store *s, int timeout_ms, bool *waited, bool *woken,
                         fp_error *err)
{
    *waited = *woken = false;
    if (s->ops->status_wait == NULL)
        return FP_ERR_OK;
    *waited = true;
    return s->ops->status_wait(s, timeout_ms < 0 ? 0 : timeout_ms, woken, err);
}

/* ---- tokens ---- */

int fp_store_token_put(fp_store *s, const fp_token_rec *t, const fp_audit_event *ev,
                       fp_error *err)
{
    if (!fp_project_name_ok(t->project))
        return bad_project(err, t->project);
    if (t->id[0] == '\0' || memchr(t->id, '\0', sizeof(t->id)) == NULL)
        return fp_err_set(err, FP_ERR_ARG, "a token needs an id");
    return s->ops->token_put(s, t, ev, err);
}

int fp_store_token_get(fp_store *s, const char *project, const char *id, fp_token_rec *out,
                       fp_error *err)
{
    if (project == NULL || id == NULL)
        return fp_err_set(err, FP_ERR_ARG, "token lookup needs a project and an id");
    return s->ops->token_get(s, project, id, out, err);
}

int fp_store_token_use(fp_store *s, const char *project, const char *id, int64_t now,
                       const fp_audit_event *ev, fp_error *err)
{
    if (project == NULL || id == NULL)
        return fp_err_set(err, FP_ERR_ARG, "token use needs a project and an id");
    return s->ops->token_use(s, project, id, now, ev, err);
}

int fp_store_token_list(fp_store *s, const char *project, fp_token_cb cb, void *arg,
                        fp_error *err)
{
    if (project == NULL || cb == NULL)
        return fp_err_set(err, FP_ERR_ARG, "token list needs a project and a callback");
    return s->ops->token_list(s, project, cb, arg, err);
}

int fp_store_token_delete(fp_store *s, const char *project, const char *id,
                          const fp_audit_event *ev, fp_error *err)
{
    if (project == NULL || id == NULL)
        return fp_err_set(err, FP_ERR_ARG, "token delete needs a project and an id");
    return s->ops->token_delete(s, project, id, ev, err);
}

/* ---- API keys ---- */

int fp_store_apikey_put(fp_store *s, const fp_apikey_rec *k, const fp_audit_event *ev,
                        fp_error *err)
{
    /* "" is an admin key; any other project must be a valid name */
    if (k->project[0] != '\0' && !fp_project_name_ok(k->project))
        return bad_project(err, k->project);
    if (k->id[0] == '\0' || memchr(k->id, '\0', sizeof(k->id)) == NULL)
        return fp_err_set(err, FP_ERR_ARG, "an API key needs an id");
    return s->ops->apikey_put(s, k, ev, err);
}

int fp_store_apikey_get(fp_store *s, const char *id, fp_apikey_rec *out, fp_error *err)
{
    if (id == NULL)
        return fp_err_set(err, FP_ERR_ARG, "API key lookup needs an id");
    return s->ops->apikey_get(s, id, out, err);
}

int fp_store_apikey_list(fp_store *s, const char *project, fp_apikey_cb cb, void *arg,
                         fp_error *err)
{
    if (cb == NULL)
        return fp_err_set(err, FP_ERR_ARG, "API key list needs a callback");
    return s->ops->apikey_list(s, project, cb, arg, err);
}

int fp_store_apikey_revoke(fp_store *s, const char *id, int64_t when,
                           const fp_audit_event *ev, fp_error *err)
{
    if (id == NULL)
        return fp_err_set(err, FP_ERR_ARG, "API key revoke needs an id");
    return s->ops->apikey_revoke(s, id, when, ev, err);
}

/* ---- firmware signatures ---- */

/* a backend written before store_firmware.h: a clear error, not a crash */
static int no_firmware(fp_store *s, fp_error *err)
{
    return fp_err_set(err, FP_ERR_STORE, "the %s store does not record firmware signatures",
                      s->ops->name);
}

int fp_store_fw_sig_record(fp_store *s, const fp_fw_sig_rec *r, const fp_audit_event *ev,
                           int64_t *id, fp_error *err)
{
    if (r == NULL || !fp_project_name_ok(r->project))
        return bad_project(err, r != NULL ? r->project : "");
    if (r->class_id[0] == '\0' || r->vendor_id[0] == '\0' || r->image_sha256[0] == '\0')
        return fp_err_set(err, FP_ERR_ARG, "a firmware signature needs vendor, class and digest");
    if (r->sequence < 1)
        return fp_err_set(err, FP_ERR_ARG, "firmware sequence numbers start at 1");
    if (strcmp(r->format, "suit") != 0 && strcmp(r->format, "cms") != 0)
        return fp_err_set(err, FP_ERR_ARG, "firmware signature format must be suit or cms");
    if (s->ops->fw_sig_record == NULL)
        return no_firmware(s, err);
    return s->ops->fw_sig_record(s, r, ev, id, err);
}

int fp_store_fw_sig_last(fp_store *s, const char *project, const char *class_id, int64_t *seq,
                         fp_error *err)
{
    if (project == NULL || !fp_project_name_ok(project))
        return bad_project(err, project != NULL ? project : "");
    if (class_id == NULL || seq == NULL)
        return fp_err_set(err, FP_ERR_ARG, "firmware sequence lookup needs a class");
    if (s->ops->fw_sig_last == NULL)
        return no_firmware(s, err);
    return s->ops->fw_sig_last(s, project, class_id, seq, err);
}

int fp_store_fw_sig_list(fp_store *s, const char *project, const char *class_id,
                         fp_fw_sig_cb cb, void *arg, fp_error *err)
{
    if (project == NULL || !fp_project_name_ok(project))
        return bad_project(err, project != NULL ? project : "");
    if (cb == NULL)
        return fp_err_set(err, FP_ERR_ARG, "firmware signature list needs a callback");
    if (s->ops->fw_sig_list == NULL)
        return no_firmware(s, err);
    return s->ops->fw_sig_list(s, project, class_id, cb, arg, err);
}

/* ---- pending requests ---- */

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
    *id = 0;
    if (!fp_project_name_ok(r->project))
        return bad_project(err, r->project);
    return s->ops->pending_add(s, r, id, ev, err);
}

int fp_store_pending_find(fp_store *s, const char *project, const char *label,
                          const char *csr_hash, fp_pending_rec *out, fp_error *err)
{
    if (project == NULL || label == NULL || csr_hash == NULL)
        return fp_err_set(err, FP_ERR_ARG, "pending lookup needs a project, label and hash");
    return s->ops->pending_find(s, project, label, csr_hash, out, err);
}

int fp_store_pending_get(fp_store *s, int64_t id, fp_pending_rec *out, fp_error *err)
{
    return s->ops->pending_get(s, id, out, err);
}

int fp_store_pending_list(fp_store *s, const char *project, int status, fp_pending_cb cb,
                          void *arg, fp_error *err)
{
    return s->ops->pending_list(s, project, status, cb, arg, err);
}

int fp_store_pending_decide(fp_store *s, int64_t id, int status, const char *serial,
                            const fp_audit_event *ev, fp_error *err)
{
    if (status != FP_PENDING_ISSUED && status != FP_PENDING_REJECTED)
        return fp_err_set(err, FP_ERR_ARG, "bad pending status %d", status);
    return s->ops->pending_decide(s, id, status, serial, ev, err);
}

int fp_store_pending_issue(fp_store *s, int64_t id, const fp_cert_rec *rec,
                           const fp_audit_event *cert_ev, const fp_audit_event *decide_ev,
                           fp_error *err)
{
    return s->ops->pending_issue(s, id, rec, cert_ev, decide_ev, err);
}

/* ---- audit ---- */

int fp_store_audit_append(fp_store *s, const fp_audit_event *ev, fp_error *err)
{
    return s->ops->audit_append(s, ev, err);
}

int fp_store_audit_head(fp_store *s, int64_t *id, char hash[65], fp_error *err)
{
    return s->ops->audit_head(s, id, hash, err);
}

int fp_store_audit_iter(fp_store *s, fp_audit_cb cb, void *arg, fp_error *err)
{
    return s->ops->audit_iter(s, cb, arg, NULL, NULL, err);
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
                      r->detail, r->project, h) != FP_ERR_OK)
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

/* ---- devices ---- */

void fp_device_rec_clear(fp_device_rec *r)
{
    if (r == NULL)
        return;
    free(r->tags);
    memset(r, 0, sizeof(*r));
}

static const char *const devname_rules[] = {"cn", "san-uri", "san-dns", "serialnumber"};

const char *fp_devname_rule_name(int rule)
{
    return rule >= 0 && rule < 4 ? devname_rules[rule] : NULL;
}

int fp_devname_rule_from_name(const char *n)
{
    for (int i = 0; n != NULL && i < 4; i++)
        if (!strcmp(n, devname_rules[i]))
            return i;
    return -1;
}

/* A device name: non-empty, shorter than FP_DEVICE_NAME_MAX, no control
 * bytes (names come from certificates; they reach logs and JSON). */
static int dev_name_check(const char *project, const char *name, fp_error *err)
{
    size_t n;

    if (!fp_project_name_ok(project))
        return bad_project(err, project);
    if (name == NULL || (n = strlen(name)) == 0 || n >= FP_DEVICE_NAME_MAX)
        return fp_err_set(err, FP_ERR_ARG, "a device name needs 1..%d bytes",
                          FP_DEVICE_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return fp_err_set(err, FP_ERR_ARG, "device name contains a control byte");
    return FP_ERR_OK;
}

int fp_store_device_register(fp_store *s, const char *project, const char *name, int64_t now,
                             const fp_device_cert *cert, const fp_audit_event *ev,
                             fp_device_rec *out, bool *created, fp_error *err)
{
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if ((rc = dev_name_check(project, name, err)) != FP_ERR_OK)
        return rc;
    if (cert != NULL && strlen(cert->fp) != FP_DEVICE_FP_LEN - 1)
        return fp_err_set(err, FP_ERR_ARG, "a device certificate needs its SHA-256");
    return s->ops->device_register(s, project, name, now, cert, ev, out, created, err);
}

int fp_store_device_get(fp_store *s, const char *project, const char *name, const char *cert_fp,
                        bool *linked, fp_device_rec *out, fp_error *err)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (project == NULL || name == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device lookup needs a project and a name");
    return s->ops->device_get(s, project, name, cert_fp, linked, out, err);
}

int fp_store_device_list(fp_store *s, const fp_device_filter *f, fp_device_cb cb, void *arg,
                         fp_error *err)
{
    if (f == NULL || f->project == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device list needs a project");
    if (f->limit < 1 || f->limit > 1000)
        return fp_err_set(err, FP_ERR_ARG, "device list limit must be 1..1000");
    if (f->state < -1 || f->state > FP_DEV_DECOMMISSIONED)
        return fp_err_set(err, FP_ERR_ARG, "unknown device state %d", f->state);
    if (f->tag_value != NULL && f->tag_key == NULL)
        return fp_err_set(err, FP_ERR_ARG, "a tag value filter needs its key");
    return s->ops->device_list(s, f, cb, arg, err);
}

int fp_store_device_set_state(fp_store *s, const char *project, const char *name,
                              unsigned from_mask, int to, const fp_audit_event *ev,
                              fp_error *err)
{
    if (project == NULL || name == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device update needs a project and a name");
    if (to < FP_DEV_ACTIVE || to > FP_DEV_DECOMMISSIONED)
        return fp_err_set(err, FP_ERR_ARG, "unknown device state %d", to);
    return s->ops->device_set_state(s, project, name, from_mask, to, ev, err);
}

/* Tag keys and values: printable ASCII, bounded. */
static int tag_text_ok(const char *t, bool key)
{
    size_t n = t ? strlen(t) : 0;

    if (t == NULL || n >= FP_DEVICE_TAG_MAX || (key && n == 0))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] > 0x7e || (key && t[i] == '='))
            return 0;
    return 1;
}

int fp_store_device_tag(fp_store *s, const char *project, const char *name, const char *key,
                        const char *value, const fp_audit_event *ev, fp_error *err)
{
    if (project == NULL || name == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device tag needs a project and a name");
    if (!tag_text_ok(key, true))
        return fp_err_set(err, FP_ERR_ARG,
                          "a tag key is 1..%d printable ASCII characters without '='",
                          FP_DEVICE_TAG_MAX - 1);
    if (value != NULL && !tag_text_ok(value, false))
        return fp_err_set(err, FP_ERR_ARG, "a tag value is 0..%d printable ASCII characters",
                          FP_DEVICE_TAG_MAX - 1);
    return s->ops->device_tag(s, project, name, key, value, ev, err);
}

int fp_store_device_touch(fp_store *s, const char *const *projects, const char *const *names,
                          const int64_t *seen, size_t n, fp_error *err)
{
    return s->ops->device_touch(s, projects, names, seen, n, err);
}

int fp_store_device_certs(fp_store *s, const char *project, const char *name,
                          fp_device_cert_cb cb, void *arg, fp_error *err)
{
    if (project == NULL || name == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device certificates need a project and a name");
    return s->ops->device_certs(s, project, name, cb, arg, err);
}

int fp_store_device_seq(fp_store *s, int64_t *seq, fp_error *err)
{
    return s->ops->device_seq(s, seq, err);
}

int fp_store_device_changes(fp_store *s, int64_t after, int max, fp_device_change_cb cb,
                            void *arg, fp_error *err)
{
    if (cb == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device changes need a callback");
    return s->ops->device_changes(s, after, max, cb, arg, err);
}

int fp_store_device_naming_get(fp_store *s, const char *project, int *rule, fp_error *err)
{
    if (project == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device naming needs a project");
    return s->ops->device_naming_get(s, project, rule, err);
}

int fp_store_device_naming_set(fp_store *s, const char *project, int rule,
                               const fp_audit_event *ev, fp_error *err)
{
    if (project == NULL)
        return fp_err_set(err, FP_ERR_ARG, "device naming needs a project");
    if (fp_devname_rule_name(rule) == NULL)
        return fp_err_set(err, FP_ERR_ARG, "unknown device naming rule %d", rule);
    return s->ops->device_naming_set(s, project, rule, ev, err);
}
