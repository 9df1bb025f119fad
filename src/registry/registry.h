/*
 * registry.h - the device registry (issue 10): devices of a project, named
 * from their certificates, registered on first contact, suspended, resumed,
 * decommissioned and tagged.  Below the front ends (EST cert auth, the
 * device API, the admin API, the CLI), above ca/ and store/; no HTTP here.
 * docs/registry.md has the model and the choices.
 */
#ifndef FP_REGISTRY_H
#define FP_REGISTRY_H

#include <stdint.h>

#include <openssl/x509.h>

#include "../ca/config.h"
#include "../common/err.h"
#include "../store/store.h"

/* fp_dev_state, fp_device_rec, fp_device_filter, fp_device_cb and
 * FP_DEVICE_NAME_MAX are in ../store/store_devices.h. */
const char *fp_dev_state_name(int state);     /* "active" ...; NULL if unknown */
int fp_dev_state_from_name(const char *name); /* -1 unknown */

/* Store-level calls (all scoped by project; a device of another project
 * is FP_ERR_NOT_FOUND). */
int fp_registry_device_get(fp_store *s, const char *project, const char *name,
                           fp_device_rec *out, fp_error *err);
int fp_registry_device_list(fp_store *s, const fp_device_filter *f, fp_device_cb cb, void *arg,
                            fp_error *err);
/* Lifecycle, audited with actor ("device.suspend", "device.resume",
 * "device.decommission").  FP_ERR_STATE for a transition not allowed:
 * suspend needs active, resume needs suspended, decommission needs active
 * or suspended.  Decommission first revokes every certificate of the
 * device that we issued (cessationOfOperation, through fp_ca_revoke, so
 * OCSP and CRLs follow; one already revoked is skipped): those linked to
 * it, and every valid one of the project that names it by the project's
 * rule though never presented (an LDevID enrolled but unused); then sets the
 * state; when a revocation fails nothing more happens and the call can be
 * repeated. */
int fp_registry_suspend(fp_store *s, const char *project, const char *name, const char *actor,
                        fp_error *err);
int fp_registry_resume(fp_store *s, const char *project, const char *name, const char *actor,
                       fp_error *err);
int fp_registry_decommission(fp_store *s, const char *project, const char *name,
                             const char *actor, fp_error *err);
/* value NULL deletes the tag.  Keys: 1..127 printable ASCII without '=';
 * values: 0..127 printable ASCII (FP_ERR_ARG otherwise).  Audited
 * ("device.tag"). */
int fp_registry_tag(fp_store *s, const char *project, const char *name, const char *key,
                    const char *value, const char *actor, fp_error *err);
/* The certificates the device has held, oldest link first.  One we issued
 * comes as its row of certificates (status current); one under a BYO root
 * as a record with ca_id "" and profile "byo" (status valid: we do not
 * track revocation of certificates we did not issue). */
int fp_registry_device_certs(fp_store *s, const char *project, const char *name,
                             fp_cert_cb cb, void *arg, fp_error *err);

/* The device name certificate x gets under rule (fp_devname_rule):
 * written into name (FP_DEVICE_NAME_MAX).  FP_ERR_ARG when the
 * certificate has no such field, or it is empty, too long or holds a
 * control byte. */
int fp_registry_name_of(X509 *x, int rule, char name[FP_DEVICE_NAME_MAX], fp_error *err);

/* Auto-provisioning (EST cert auth, the device API, later the broker). */
typedef struct fp_registry fp_registry; /* batches last-seen writes; thread-safe */

/* Last-seen updates are queued in memory and written in one transaction
 * by a background thread (its own store handle on store_path) every
 * FP_REGISTRY_FLUSH_SECONDS, or as soon as FP_REGISTRY_FLUSH_BATCH are
 * queued, and on fp_registry_flush / fp_registry_free. */
#define FP_REGISTRY_FLUSH_SECONDS 5
#define FP_REGISTRY_FLUSH_BATCH 1024

/* store_path NULL: cfg's; a relative path is resolved against cfg->dir
 * (as fp_config_store_open does). */
int fp_registry_new(const fp_config *cfg, const char *store_path, fp_registry **out,
                    fp_error *err);
void fp_registry_free(fp_registry *r); /* flushes */
/* Write every queued last-seen now (on the calling thread, with s). */
int fp_registry_flush(fp_registry *r, fp_store *s, fp_error *err);

/* A verified client certificate of project: register the device on first
 * contact (race-safe: one device), record the certificate under it, queue
 * a last-seen update; FP_ERR_STATE (with "suspended"/"decommissioned" in
 * the message) when the device may not connect.  The certificate's chain
 * must have been verified by the caller.  out may be NULL. */
int fp_registry_contact(fp_registry *r, fp_store *s, const char *project, X509 *cert,
                        fp_device_rec *out, fp_error *err);

/* A certificate we just issued in project (its row committed): list it
 * under its device at once, not only when the device first presents it,
 * so the device's certificates show it and a decommission finds it by the
 * link.  The device is the one auth (the client certificate that
 * authenticated the issuance, may be NULL) is linked to; else the one the
 * new certificate names by the project's naming rule; else the one auth
 * names.  It is registered when new (audited device.register with actor,
 * as a first contact), and auth, when not linked yet, is linked to it too
 * (the factory certificate beside its LDevID; a certificate linked to
 * another device already stays there, logged).  Naming no device at all:
 * nothing happens (FP_ERR_OK).  *linked_to (may be NULL,
 * FP_DEVICE_NAME_MAX) receives the device's name or "".  Not in the
 * certificate's own transaction: a crash between the two leaves the
 * certificate unlinked until the device presents it (docs/registry.md).
 * A device's state does not matter here: the certificate exists either
 * way and is listed where decommission will find it. */
int fp_registry_link_issued(fp_store *s, const char *project, X509 *cert, X509 *auth,
                            const char *actor, char *linked_to, fp_error *err);

/* fp_registry_link_issued as the issuer's after-issue hook (ca/issue.h
 * fp_issued_fn, step 6; arg unused): every front end's issuance links
 * its certificate through it. */
int fp_registry_issued_hook(void *arg, fp_store *s, const char *project, X509 *cert,
                            X509 *auth_cert, const char *actor, fp_error *err);

/* The issuer's before-issue device hook (ca/issue.h fp_issuing_fn, step
 * 2; arg unused): refuses (FP_ERR_CSR_SUBJECT, naming the device and its
 * state) a certificate for an existing device that is suspended or
 * decommissioned: the device the authenticating certificate is linked
 * to, or the one the new certificate names by the project's rule (else
 * the one the authenticating certificate names), as
 * fp_registry_link_issued picks.  A device not registered yet is fine. */
int fp_registry_issuing_hook(void *arg, fp_store *s, const char *project, X509 *cert,
                             X509 *auth_cert, fp_error *err);

#endif
