/*
 * store_conformance_int.h - shared by the files of the store conformance
 * suite (store_conformance.c: helpers and the case table; sc_projects.c,
 * sc_certs.c, sc_tokens.c, sc_audit.c, sc_devices.c: the cases by domain).
 */
#ifndef FP_STORE_CONFORMANCE_INT_H
#define FP_STORE_CONFORMANCE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_conformance.h"

/* The backend under test (set by store_conformance_run). */
extern const sc_backend *sc_be;

/* A case's state: a fresh store with the shared root "root" and the
 * active issuing CA "issuing" of project "default" (no audit rows). */
typedef struct {
    fp_store *s;
} fx;

/* Arbitrary DER blobs: the store keeps certificates, it does not parse them. */
extern unsigned char sc_der_root[5], sc_der_iss[5], sc_der_other[5], sc_der_cert[4];

/* A CA row (subject, validity and key_ref filled in; der borrowed). */
fp_ca_rec sc_ca(const char *id, int kind, const char *project, const char *parent,
                bool active, unsigned char *der, size_t der_len);
/* Add a CA (parent "root" unless a trust root); fails the case on error. */
void sc_add_ca(fp_store *s, const char *id, int kind, const char *project, bool active);
bool sc_ca_active(fp_store *s, const char *id);
/* A certificate of project default by CA "issuing" (borrowed fields). */
fp_cert_rec sc_mkrec(const char *serial, int64_t not_after);
bool sc_cert_stored(fp_store *s, const char *serial);
void sc_token_put(fp_store *s, const char *project, const char *id, int uses,
                  int64_t expires_at);
int sc_token_uses(fp_store *s, const char *project, const char *id);
/* Create a project, audited {test, project.create, name, "", name}. */
void sc_project_put(fp_store *s, const char *name);
/* Audit rows matching action, object, project (NULL: any). */
int sc_audit_count(fp_store *s, const char *action, const char *object, const char *project);
/* The chain verifies, with want_rows rows (-1: any number). */
void sc_assert_audit_ok(fp_store *s, int64_t want_rows);
void sc_assert_msg(const fp_error *e, const char *needle);
/* Callbacks counting into an int (sc_count_project appends "name;" to a
 * char buffer instead). */
int sc_count_project(void *arg, const fp_project_rec *p);
int sc_count_ca(void *arg, const fp_ca_rec *r);
int sc_count_cert(void *arg, const fp_cert_rec *r);
int sc_count_pending(void *arg, const fp_pending_rec *r);

/* The cases. */
void test_project_put_get_list(void **state);
void test_project_bad_names(void **state);
void test_ca_add_get(void **state);
void test_ca_add_idempotent_and_refusals(void **state);
void test_ca_list_filters(void **state);
void test_ca_activate(void **state);
void test_ca_set_cert(void **state);
void test_cert_insert_get_duplicate(void **state);
void test_cert_insert_refuses_unknown_parents(void **state);
void test_cert_status_transitions(void **state);
void test_cert_list_filters(void **state);
void test_cert_list_order(void **state);
void test_cert_status_lookup(void **state);
void test_revoked_entries_and_numbers(void **state);
void test_status_changes(void **state);
void test_status_wait(void **state);
void test_crl_published(void **state);
void test_tokens(void **state);
void test_tokens_scoped_by_project(void **state);
void test_spend_refuses_only_the_unpaid(void **state);
void test_spend_refuses_expired(void **state);
void test_spend_token_of_another_project(void **state);
void test_spend_rolled_back_with_the_batch(void **state);
void test_pending(void **state);
void test_pending_scoped_by_project(void **state);
void test_pending_issue(void **state);
void test_apikeys(void **state);
void test_apikey_secret_matches(void **state);
void test_firmware_signatures(void **state);
void test_token_list_delete(void **state);
void test_audit_chain_mixed_projects(void **state);
void test_audit_head(void **state);
void test_audit_hash_covers_project(void **state);
void test_audit_detects_edit(void **state);
void test_audit_detects_edited_project(void **state);
void test_audit_detects_cleared_project(void **state);
void test_audit_detects_project_added(void **state);
void test_audit_detects_delete_middle(void **state);
void test_audit_detects_delete_tail(void **state);
void test_audit_detects_plain_edit_of_tail(void **state);
void test_audit_detects_consistent_rehash_of_tail(void **state);
void test_handles_share_one_store(void **state);
void test_device_register_get(void **state);
void test_device_refusals(void **state);
void test_device_scoped_by_project(void **state);
void test_device_list_filters(void **state);
void test_device_list_prefix_edges(void **state);
void test_device_state_and_touch(void **state);
void test_device_certs_and_naming(void **state);
void test_device_changes(void **state);
void test_device_tag_page_follows_device(void **state);
void test_device_tags_bounded(void **state);

#endif
