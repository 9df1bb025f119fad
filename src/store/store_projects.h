/*
 * store_projects.h - projects (tenants) and their CAs: issuing CAs, the
 * shared root and bring-your-own trust roots (part of the store interface,
 * see store.h).
 *
 * A project is named by its name, which is also its id in every row that
 * belongs to it (certificates, tokens, pending requests, CAs, audit rows).
 */
#ifndef FP_STORE_PROJECTS_H
#define FP_STORE_PROJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "store_audit.h"

/* The project `init` makes and every store made before projects is in. */
#define FP_PROJECT_DEFAULT "default"
/* Buffer size of a project name, NUL included. */
#define FP_PROJECT_MAX 64

/* Whether name is a valid project name: [a-z0-9][a-z0-9_-]{0,62}. */
bool fp_project_name_ok(const char *name);

typedef struct fp_project_rec {
    char name[FP_PROJECT_MAX];
    int64_t created_at;
} fp_project_rec;

typedef int (*fp_project_cb)(void *arg, const fp_project_rec *p);

/* Create project name, audited with ev in the same transaction.
 * FP_ERR_ARG "project name ..." if the name is not valid, FP_ERR_DUPLICATE
 * if it exists. */
int fp_store_project_put(fp_store *s, const char *name, const fp_audit_event *ev,
                         fp_error *err);
/* FP_ERR_NOT_FOUND if absent. */
int fp_store_project_get(fp_store *s, const char *name, fp_project_rec *out, fp_error *err);
/* Call cb for every project, ordered by name. */
int fp_store_project_list(fp_store *s, fp_project_cb cb, void *arg, fp_error *err);

typedef enum { FP_CA_ROOT = 0, FP_CA_ISSUING = 1, FP_CA_TRUST_ROOT = 2 } fp_ca_kind;

#define FP_CA_ID_MAX 64

typedef struct fp_ca_rec {
    char id[FP_CA_ID_MAX];
    char project[FP_PROJECT_MAX]; /* "" for the shared root (kind ROOT) */
    char parent_id[FP_CA_ID_MAX]; /* "" none (roots, trust roots) */
    int kind;                     /* fp_ca_kind */
    char key_ref[1024];           /* where the signing key is: a path relative to
                                     the data dir, later a pkcs11: URI; "" = no key
                                     we hold (trust roots) or the [ca] config's key
                                     (migrated stores) */
    bool active;                  /* issuing CA used for new certificates of its
                                     project (at most one active ISSUING per
                                     project: activating one deactivates the
                                     others in the same transaction) */
    char *subject;                /* RFC 2253, heap */
    int64_t not_before, not_after, created_at;
    unsigned char *der;           /* heap */
    size_t der_len;
} fp_ca_rec;

/* Free the heap fields of r (not r itself) and zero it. */
void fp_ca_rec_clear(fp_ca_rec *r);

typedef int (*fp_ca_cb)(void *arg, const fp_ca_rec *r);

/*
 * Add a CA row, audited (created_at is set by the store).  Idempotent when
 * a row with this id and the same DER exists (FP_ERR_OK, nothing written,
 * no audit row); FP_ERR_DUPLICATE when the id exists with another
 * certificate; FP_ERR_NOT_FOUND when project (non-empty) does not exist;
 * FP_ERR_ARG for an empty id or DER, an unknown kind, an ISSUING or
 * TRUST_ROOT CA without a project, or active on a CA that is not ISSUING.
 * An active ISSUING CA deactivates the other CAs of its project.
 */
int fp_store_ca_add(fp_store *s, const fp_ca_rec *r, const fp_audit_event *ev,
                    fp_error *err);
/* FP_ERR_NOT_FOUND if absent.  Clear out with fp_ca_rec_clear. */
int fp_store_ca_get(fp_store *s, const char *id, fp_ca_rec *out, fp_error *err);
/* project NULL: all ("" : the rows without a project, i.e. the shared
 * root); kind -1: all.  Ordered by created_at, id. */
int fp_store_ca_list(fp_store *s, const char *project, int kind, fp_ca_cb cb, void *arg,
                     fp_error *err);
/* Make id the active issuing CA of its project (the others of that project
 * inactive), audited.  FP_ERR_NOT_FOUND if absent, FP_ERR_STATE if id is
 * not an ISSUING CA.  Activating the active CA again is FP_ERR_OK. */
int fp_store_ca_activate(fp_store *s, const char *id, const fp_audit_event *ev,
                         fp_error *err);
/* Replace CA id's certificate (DER, with its subject and validity: the
 * re-signing ceremony, `fleetpki ca resign`), audited; kind, key_ref,
 * parent and active stay.  The caller checks that the new certificate has
 * the same key and subject.  FP_ERR_NOT_FOUND if absent, FP_ERR_ARG for an
 * empty DER or subject. */
int fp_store_ca_set_cert(fp_store *s, const char *id, const unsigned char *der, size_t der_len,
                         const char *subject, int64_t not_before, int64_t not_after,
                         const fp_audit_event *ev, fp_error *err);

#endif
