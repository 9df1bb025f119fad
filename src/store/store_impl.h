/* store_impl.h - what a store backend implements (private to src/store).
 * store.c validates what is backend-independent (project names, required
 * arguments) and dispatches; the headers of store.h have the contracts. */
#ifndef FP_STORE_IMPL_H
#define FP_STORE_IMPL_H

#include "store.h"

typedef struct fp_store_ops {
    const char *name;
    void (*close)(fp_store *s);
    /* fp_store_maintain; NULL: nothing to do */
    int (*maintain)(fp_store *s, fp_error *err);
    int (*check)(fp_store *s, fp_error *err);

    int (*project_put)(fp_store *s, const char *name, const fp_audit_event *ev,
                       fp_error *err);
    int (*project_get)(fp_store *s, const char *name, fp_project_rec *out, fp_error *err);
    int (*project_list)(fp_store *s, fp_project_cb cb, void *arg, fp_error *err);
    int (*ca_add)(fp_store *s, const fp_ca_rec *r, const fp_audit_event *ev, fp_error *err);
    int (*ca_get)(fp_store *s, const char *id, fp_ca_rec *out, fp_error *err);
    int (*ca_list)(fp_store *s, const char *project, int kind, fp_ca_cb cb, void *arg,
                   fp_error *err);
    int (*ca_activate)(fp_store *s, const char *id, const fp_audit_event *ev, fp_error *err);
    int (*ca_set_cert)(fp_store *s, const char *id, const unsigned char *der, size_t der_len,
                       const char *subject, int64_t not_before, int64_t not_after,
                       const fp_audit_event *ev, fp_error *err);

    /* fp_store_cert_insert_spend (fp_store_cert_insert passes no tokens
     * and no results). */
    int (*cert_insert)(fp_store *s, const fp_cert_rec *recs, const fp_audit_event *evs,
                       const char *const *token_ids, int64_t now, fp_error *results,
                       size_t n, fp_error *err);
    int (*cert_get)(fp_store *s, const char *serial, fp_cert_rec *out, fp_error *err);
    int (*cert_list)(fp_store *s, const fp_cert_filter *f, fp_cert_cb cb, void *arg,
                     fp_error *err);
    int (*cert_set_status)(fp_store *s, const char *serial, int status, int reason,
                           int64_t when, const fp_audit_event *ev, fp_error *err);

    int (*cert_status)(fp_store *s, const char *serial, fp_cert_status_rec *out,
                       fp_error *err);
    int (*revoked_iter)(fp_store *s, const char *ca_id, fp_revoked_cb cb, void *arg,
                        fp_error *err);
    int (*revocation_number_next)(fp_store *s, const char *ca_id, int64_t *out,
                                  fp_error *err);
    int (*status_seq)(fp_store *s, int64_t *seq, fp_error *err);
    int (*status_changes)(fp_store *s, int64_t after, int max, fp_change_cb cb,
                          void *arg, fp_error *err);
    int (*crl_put)(fp_store *s, const char *ca_id, const fp_crl_pub *c, fp_error *err);
    int (*crl_get)(fp_store *s, const char *ca_id, fp_crl_pub *out, fp_error *err);
    /* NULL: one node only, the lock is always taken */
    int (*crl_lock)(fp_store *s, const char *ca_id, bool lock, bool *got, fp_error *err);
    /* NULL: the backend does not announce changes (callers poll) */
    int (*status_wait)(fp_store *s, int timeout_ms, bool *woken, fp_error *err);

    int (*token_put)(fp_store *s, const fp_token_rec *t, const fp_audit_event *ev,
                     fp_error *err);
    int (*token_get)(fp_store *s, const char *project, const char *id, fp_token_rec *out,
                     fp_error *err);
    int (*token_use)(fp_store *s, const char *project, const char *id, int64_t now,
                     const fp_audit_event *ev, fp_error *err);

    int (*token_list)(fp_store *s, const char *project, fp_token_cb cb, void *arg,
                      fp_error *err);
    int (*token_delete)(fp_store *s, const char *project, const char *id,
                        const fp_audit_event *ev, fp_error *err);
    int (*apikey_put)(fp_store *s, const fp_apikey_rec *k, const fp_audit_event *ev,
                      fp_error *err);
    int (*apikey_get)(fp_store *s, const char *id, fp_apikey_rec *out, fp_error *err);
    int (*apikey_list)(fp_store *s, const char *project, fp_apikey_cb cb, void *arg,
                       fp_error *err);
    int (*apikey_revoke)(fp_store *s, const char *id, int64_t when, const fp_audit_event *ev,
                         fp_error *err);

    int (*pending_add)(fp_store *s, const fp_pending_rec *r, int64_t *id,
                       const fp_audit_event *ev, fp_error *err);
    int (*pending_find)(fp_store *s, const char *project, const char *label,
                        const char *csr_hash, fp_pending_rec *out, fp_error *err);
    int (*pending_get)(fp_store *s, int64_t id, fp_pending_rec *out, fp_error *err);
    int (*pending_list)(fp_store *s, const char *project, int status, fp_pending_cb cb,
                        void *arg, fp_error *err);
    int (*pending_decide)(fp_store *s, int64_t id, int status, const char *serial,
                          const fp_audit_event *ev, fp_error *err);
    int (*pending_issue)(fp_store *s, int64_t id, const fp_cert_rec *rec,
                         const fp_audit_event *cert_ev, const fp_audit_event *decide_ev,
                         fp_error *err);

    int (*audit_append)(fp_store *s, const fp_audit_event *ev, fp_error *err);
    /* Iterate rows in id order; when head_id is non-NULL also read the
     * separately recorded chain head, in the same read snapshot so that a
     * concurrent writer cannot make rows and head disagree. */
    int (*audit_iter)(fp_store *s, fp_audit_cb cb, void *arg, int64_t *head_id,
                      char head_hash[65], fp_error *err);
    /* fp_store_audit_head */
    int (*audit_head)(fp_store *s, int64_t *id, char hash[65], fp_error *err);

    /* store_devices.h */
    int (*device_register)(fp_store *s, const char *project, const char *name, int64_t now,
                           const fp_device_cert *cert, const fp_audit_event *ev,
                           fp_device_rec *out, bool *created, fp_error *err);
    int (*device_get)(fp_store *s, const char *project, const char *name, const char *cert_fp,
                      bool *linked, fp_device_rec *out, fp_error *err);
    int (*device_list)(fp_store *s, const fp_device_filter *f, fp_device_cb cb, void *arg,
                       fp_error *err);
    int (*device_set_state)(fp_store *s, const char *project, const char *name,
                            unsigned from_mask, int to, const fp_audit_event *ev, fp_error *err);
    int (*device_tag)(fp_store *s, const char *project, const char *name, const char *key,
                      const char *value, const fp_audit_event *ev, fp_error *err);
    int (*device_touch)(fp_store *s, const char *const *projects, const char *const *names,
                        const int64_t *seen, size_t n, fp_error *err);
    int (*device_certs)(fp_store *s, const char *project, const char *name,
                        fp_device_cert_cb cb, void *arg, fp_error *err);
    int (*device_seq)(fp_store *s, int64_t *seq, fp_error *err);
    int (*device_changes)(fp_store *s, int64_t after, int max, fp_device_change_cb cb,
                          void *arg, fp_error *err);
    int (*device_naming_get)(fp_store *s, const char *project, int *rule, fp_error *err);
    int (*device_naming_set)(fp_store *s, const char *project, int rule,
                             const fp_audit_event *ev, fp_error *err);

    /* store_firmware.h */
    int (*fw_sig_record)(fp_store *s, const fp_fw_sig_rec *r, const fp_audit_event *ev,
                         int64_t *id, fp_error *err);
    int (*fw_sig_last)(fp_store *s, const char *project, const char *class_id, int64_t *seq,
                       fp_error *err);
    int (*fw_sig_list)(fp_store *s, const char *project, const char *class_id,
                       fp_fw_sig_cb cb, void *arg, fp_error *err);
} fp_store_ops;

/* Every backend's handle starts with this. */
struct fp_store {
    const fp_store_ops *ops;
};

int fp_store_sqlite_open(const char *path, fp_store_role role, fp_store **out,
                         fp_error *err);
/* conninfo: any libpq connection string (pg_store.c) */
int fp_store_pg_open(const char *conninfo, fp_store_role role, fp_store **out, fp_error *err);

#endif
