/*
 * admin.h - projects and their CAs: create, import, bring-your-own roots.
 *
 * Files before rows: a CA's key and certificate are written (keys 0600,
 * O_EXCL, encrypted when the data directory's keys are) before its store
 * row, so a crash leaves at worst unused files, never a row whose key is
 * missing.  Every change is audited.
 */
#ifndef FP_ADMIN_H
#define FP_ADMIN_H

#include "ca.h"

typedef struct fp_admin {
    const fp_config *cfg;
    fp_store *store;
    const char *pass; /* the data directory's key passphrase, or NULL */
    size_t passlen;
    const char *actor;
} fp_admin;

/* A new project with its own issuing CA (fp_admin_ca_create). */
int fp_admin_project_create(const fp_admin *a, const char *name, const char *algo,
                            char ca_id[64], fp_error *err);

/* A new issuing CA for project, signed by the root (whose key must be
 * online), made the project's active CA.  algo NULL: p256. */
int fp_admin_ca_create(const fp_admin *a, const char *project, const char *algo,
                       char ca_id[64], fp_error *err);
/* How `ca create` / `project create` make the CA (docs/keys.md). */
typedef struct fp_ca_create_opts {
    const char *algo;      /* NULL: p256 */
    /* generate the key inside this PKCS#11 token (RFC 7512 URI; NULL: a key
     * file), non-exportable, labelled <object or "fleetpki">-<ca id>; the
     * CA's key_ref is then the key's URI */
    const char *pkcs11;
    /* the ceremony: sign with the offline root key in this file (checked
     * against the data directory's root certificate), decrypted with
     * root_pass; NULL: the root key the config names */
    const char *root_key;
    const char *root_pass;
    size_t root_passlen;
} fp_ca_create_opts;

int fp_admin_ca_create_ex(const fp_admin *a, const char *project, const fp_ca_create_opts *o,
                          char ca_id[64], fp_error *err);
int fp_admin_project_create_ex(const fp_admin *a, const char *name, const fp_ca_create_opts *o,
                               char ca_id[64], fp_error *err);

/* An issuing CA made elsewhere: cert_path holds its certificate (PEM or
 * DER), key_path its key (unencrypted, or encrypted with the data
 * directory's passphrase).  Checked: a CA certificate (basicConstraints
 * CA:TRUE, keyCertSign), inside its validity, key rules, the key matches,
 * and it is signed by the root or by one of the project's trust roots.
 * Made the project's active CA.  FP_ERR_CA_CERT names the rule broken. */
int fp_admin_ca_import(const fp_admin *a, const char *project, const char *cert_path,
                       const char *key_path, char ca_id[64], fp_error *err);

/* Make issuing CA ca_id its project's active CA again (a rollback after
 * `ca create` or `ca import`); the others of the project stop issuing. */
int fp_admin_ca_activate(const fp_admin *a, const char *ca_id, fp_error *err);

/* A bring-your-own root (or factory CA) of project: authenticates devices,
 * never signs.  path is PEM (the certificate first, then the chain up to
 * its self-signed root when it is not self-signed) or one DER certificate.
 * Checked: a CA certificate, inside its validity, key rules, and a chain
 * that verifies; FP_ERR_CA_CERT names the rule broken.  Adding the same
 * certificate again is a no-op. */
int fp_admin_root_add(const fp_admin *a, const char *project, const char *path,
                      char root_id[64], fp_error *err);

/* The store row of a CA whose key and certificate are already on disk
 * (kind FP_CA_*; parent and key_ref may be NULL for none), never active,
 * with its audit event (action, detail) in the same transaction.  Used
 * here and by the firmware CAs (firmware/fw_ca.c). */
int fp_admin_ca_row_add(const fp_admin *a, const char *id, const char *project,
                        const char *parent, int kind, const char *key_ref, X509 *cert,
                        const char *action, const char *detail, fp_error *err);

#endif
