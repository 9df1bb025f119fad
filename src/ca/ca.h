/*
 * ca.h - the CA core: takes a parsed request and an authenticated identity,
 * returns a decision and a certificate.  It never sees HTTP or argv.
 *
 * Issuance order (the durability rule): policy -> build -> sign -> commit
 * to the store -> return.  Nothing leaves fp_ca_issue before the commit.
 */
#ifndef FP_CA_H
#define FP_CA_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "../store/store.h"
#include "config.h"
#include "signer.h"

typedef struct fp_ca fp_ca;

/* Source of serials; tests inject collisions through it. */
typedef int (*fp_serial_fn)(void *arg, ASN1_INTEGER **out, fp_error *err);

/* The front end's last word on a signed certificate before it is
 * committed (issue.h step 3); FP_ERR_OK lets it through. */
typedef int (*fp_issue_check_fn)(void *arg, X509 *cert, const fp_cert_rec *rec, fp_error *err);

/* One request for a certificate, as every front end states it (issue.h).
 * All pointers are borrowed. */
typedef struct fp_issue_req {
    X509_REQ *csr;       /* the parsed request (or one wrapping a key this
                            server generated, with own_key) */
    const char *profile; /* profile name */
    int days;            /* 0: profile default */
    const char *actor;   /* the authenticated identity, for the audit log */
    bool own_key;        /* csr wraps a key this server just generated
                            (serverkeygen): fp_policy_check_own_key */
    const char *project; /* whose CA signs; NULL: FP_PROJECT_DEFAULT */
    const char *ca_id;   /* NULL: the project's active issuing CA */
    const char *action;  /* audit action; NULL: "cert.issue" */
    const char *via;     /* audit detail "via" ("cli", "est/simpleenroll") */
    const char *token_id; /* one use of this token of the project pays */
    int64_t pending_id;  /* > 0: this held request becomes issued */
    fp_issue_check_fn check; /* may be NULL */
    void *check_arg;
    X509 *auth_cert;     /* the client certificate that authenticated the
                            request (EST/CMP cert auth, SCEP renewal), or
                            NULL (token, operator): step 6 of issue.h links
                            it to the same device as the new certificate */
    bool not_device;     /* not a device's certificate (a firmware signer):
                            step 6 skips it */
} fp_issue_req;

/* Where an issuing CA's parts are (fp_ca_open_spec); all borrowed. */
typedef struct fp_ca_spec {
    const char *id;
    const char *project;
    X509 *cert;
    STACK_OF(X509) *chain;   /* issuers above cert, ending with a root */
    const char *key_path;    /* absolute or relative to the working directory */
    const char *ocsp_cert;   /* its delegated OCSP responder (may not exist yet) */
    const char *ocsp_key;
} fp_ca_spec;

/* Load the issuing CA named by cfg's [ca] section (project default).
 * cfg must outlive the CA. */
int fp_ca_open(const fp_config *cfg, const char *pass, size_t passlen,
               fp_ca **out, fp_error *err);
/* Load an issuing CA from its parts; the key must match the certificate. */
int fp_ca_open_spec(const fp_config *cfg, const fp_ca_spec *spec, const char *pass,
                    size_t passlen, fp_ca **out, fp_error *err);
void fp_ca_free(fp_ca *ca);

const char *fp_ca_id(const fp_ca *ca);
const char *fp_ca_project(const fp_ca *ca);
const fp_config *fp_ca_config(const fp_ca *ca);
X509 *fp_ca_get0_cert(const fp_ca *ca);
/* The root at the top of the CA's chain. */
X509 *fp_ca_get0_root(const fp_ca *ca);
/* Issuers above the CA certificate, nearest first, ending with the root. */
STACK_OF(X509) *fp_ca_get0_chain(const fp_ca *ca);
fp_signer *fp_ca_get0_signer(const fp_ca *ca);
/* Paths of the CA's delegated OCSP responder certificate and key. */
void fp_ca_ocsp_paths(const fp_ca *ca, const char **cert, const char **key);

/* Replace the serial source (NULL restores the CSPRNG). */
void fp_ca_set_serial_source(fp_ca *ca, fp_serial_fn fn, void *arg);

/* Check, build and sign a certificate for req, without storing it.  On
 * success *cert (caller frees) and *rec (fp_cert_rec_clear) describe it.
 *
 * For speed the certificate carries the request's SubjectPublicKeyInfo as
 * encoded bytes (build.c copy_spki): its EVP_PKEY is never decoded, so
 * X509_get0_pubkey(*cert) returns NULL and X509_check_private_key fails.
 * Use X509_REQ_get0_pubkey(req->csr) for the key, or decode rec->der
 * (fp_cert_from_der) when a fully parsed certificate is needed. */
int fp_ca_sign(fp_ca *ca, const fp_issue_req *req, X509 **cert,
               fp_cert_rec *rec, fp_error *err);
/* fp_ca_sign in its three steps, so that the signature may be made
 * without waiting for it (ca/issue.h, signer/async.h): _build checks the
 * policy and builds the certificate, unsigned; the caller signs it with
 * fp_ca_get0_signer's key; _record describes the signed certificate. */
int fp_ca_build(fp_ca *ca, const fp_issue_req *req, X509 **cert, fp_error *err);
int fp_ca_record(fp_ca *ca, const fp_issue_req *req, X509 *cert, fp_cert_rec *rec,
                 fp_error *err);

/* The issuance path of issue.h for this very CA (init's and the OCSP
 * responder's own certificates; front ends use fp_issue): sign, check,
 * commit with the audit row (and req's token / held request), drawing a
 * new serial on a collision; refusals audited.  *cert is returned only
 * after the commit; its public key is not decoded (see fp_ca_sign). */
int fp_ca_issue(fp_ca *ca, fp_store *store, const fp_issue_req *req,
                X509 **cert, fp_error *err);

/* Revoke serial with an RFC 5280 reason (certificateHold is reversible;
 * FP_REASON_REMOVE_FROM_CRL lifts a hold).  Audited. */
int fp_ca_revoke(fp_store *store, const char *serial, int reason,
                 const char *actor, fp_error *err);

/* Called once per certificate fp_ca_revoke_cn acted on (or failed on). */
typedef void (*fp_revoke_report_fn)(void *arg, const char *serial, const fp_error *result);

/* Revoke (or, with removeFromCRL, lift the hold of) every certificate whose
 * subject has a commonName exactly equal to cn: unexpired valid ones, and
 * held ones (a final reason replaces a hold).  Each is audited like
 * fp_ca_revoke.  *count receives how many changed; FP_ERR_NOT_FOUND if
 * none matched.  A failure on one certificate is reported and the rest
 * are still processed; the first failure is returned. */
int fp_ca_revoke_cn(fp_store *store, const char *cn, int reason, const char *actor,
                    fp_revoke_report_fn report, void *arg, int *count, fp_error *err);

/* fp_ca_revoke_cn for a device id: matches the subject commonName or any
 * DNS, URI or email subjectAltName equal to id. */
int fp_ca_revoke_device(fp_store *store, const char *id, int reason, const char *actor,
                        fp_revoke_report_fn report, void *arg, int *count, fp_error *err);

/* Parameters of `fleetpki init`. */
typedef struct fp_init_opts {
    const char *dir;
    const char *algo; /* p256 (default), p384, ed25519, rsa3072 */
    const char *org;
    const char *pass; /* NULL: keys stored unencrypted */
    size_t passlen;
    bool force;       /* move an existing CA aside instead of refusing */
    /* RFC 7512 URI of a PKCS#11 token: root, issuing and OCSP keys are
     * generated in it (non-exportable), labelled <object>-root, -issuing,
     * -ocsp (object= in the URI, default "fleetpki"); NULL: key files */
    const char *pkcs11;
    /* the root key goes to this directory (removable media), encrypted
     * with root_pass, and nowhere else: no root key online (docs/keys.md) */
    const char *offline_root;
    const char *root_pass;
    size_t root_passlen;
    const char *store_url; /* NULL: the SQLite file; else [store] url (PostgreSQL) */
    char backup_dir[FP_PATH_MAX]; /* out: where --force moved old files */
} fp_init_opts;

/* Create root + issuing CA, TLS server and OCSP signer certificates, the
 * store and the config in o->dir.  Never deletes or overwrites a key. */
int fp_ca_init(fp_init_opts *o, fp_error *err);

#endif
