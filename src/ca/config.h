/*
 * config.h - fleetpki.conf, parsed once into an immutable struct.
 *
 * Every global option is a row in a table (type, bounds, default) in
 * config.c; `fleetpki init` writes a file listing all of them with their
 * defaults so an operator can read what is in force.
 */
#ifndef FP_CONFIG_H
#define FP_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "../common/err.h"
#include "../store/store.h"
#include "profile.h"

#define FP_PATH_MAX 1024
#define FP_MAX_PROFILES 32
#define FP_CONFIG_FILE "fleetpki.conf"
#define FP_CONFIG_MAX_BYTES (1024 * 1024)
#define FP_MAX_EST_LABELS 32
#define FP_EST_LABEL_MAX 64

/* How an EST label authenticates enrollment (RFC 7030 3.2-3.3). */
typedef enum {
    FP_EST_AUTH_EITHER = 0, /* TLS client certificate or enrollment token */
    FP_EST_AUTH_CERT,       /* TLS client certificate only */
    FP_EST_AUTH_TOKEN,      /* HTTP Basic enrollment token only */
} fp_est_auth;

/* An [est LABEL] section ("" is the default label, /.well-known/est/). */
typedef struct fp_est_label {
    char name[FP_EST_LABEL_MAX];
    char project[64]; /* the project this label enrolls into */
    char profile[64];
    int auth; /* fp_est_auth */
    char trust_anchors[FP_PATH_MAX]; /* extra enrollment CAs (PEM bundle), e.g. IDevID */
    bool revoke_on_renew;
    bool manual_approval;
    bool require_pop_linking;
    char csrattrs[256]; /* "auto", "none", or a list: key, sigalg, challenge, OIDs */
    int retry_after_seconds;
    /* certificate-authenticated enrollment: how the requested name relates
     * to the authenticating certificate's (docs/est.md) */
    char cert_identity[16];          /* same | cn | serialnumber | pattern */
    char cert_identity_pattern[128]; /* fnmatch, {cn} and {serialnumber} expanded */
    char serverkeygen_algo[16];      /* auto | p256 | p384 | p521 | ed25519 | rsa2048.. */
    bool scep_legacy_crypto;         /* SCEP: accept SHA-1 and single-DES requests (docs/scep.md) */
} fp_est_label;

typedef struct fp_config {
    char dir[FP_PATH_MAX]; /* directory holding the config; relative paths resolve here */

    /* [ca] */
    char org[128];
    char root_id[64];
    char root_cert[FP_PATH_MAX];
    char root_key[FP_PATH_MAX];
    char issuing_id[64];
    char issuing_cert[FP_PATH_MAX];
    char issuing_key[FP_PATH_MAX];
    bool keys_encrypted;
    char pkcs11_module[FP_PATH_MAX];   /* docs/keys.md */
    char pkcs11_pin_file[FP_PATH_MAX];

    /* [store] */
    char store_path[FP_PATH_MAX];
    char store_url[FP_PATH_MAX]; /* PostgreSQL instead of store_path (docs/postgresql.md) */

    /* [server] (used by `serve`) */
    char https_listen[128];
    char http_listen[128];
    char public_url[256];
    char tls_cert[FP_PATH_MAX];
    char tls_key[FP_PATH_MAX];
    char ocsp_cert[FP_PATH_MAX];
    char ocsp_key[FP_PATH_MAX];
    int threads;
    char signer[16]; /* separate | inprocess (docs/keys.md) */
    int signer_async; /* async signatures out per worker (docs/keys.md) */
    char user[64];   /* drop to this user after binding when started as root */
    /* signed audit checkpoints (audit/checkpoint.h) */
    char audit_key[FP_PATH_MAX];
    char audit_pubkey[FP_PATH_MAX];
    char audit_checkpoint_file[FP_PATH_MAX];
    int audit_checkpoint_seconds;
    bool audit_checkpoint_syslog;
    int max_body_bytes;
    int max_header_bytes;
    int idle_timeout_seconds;
    int crl_next_update_hours;
    bool ocsp_cache;
    int ocsp_cache_entries;
    int ocsp_validity_seconds;
    int max_pending_commits;
    /* [server] limits and abuse (issue 8): copied into fp_http_opts by cmd_serve.c */
    int max_connections;
    int max_connections_per_address;
    int max_requests_per_connection;
    int handshake_timeout_seconds;
    int header_timeout_seconds;
    int body_timeout_seconds;
    int min_body_rate;
    int rate_per_address;
    int rate_burst_per_address;
    int rate_per_identity;
    int rate_burst_per_identity;
    int rate_limit_keys;
    /* [server] CMP (docs/cmp.md) */
    int cmp_confirm_wait_seconds;
    bool cmp_implicit_confirm;

    fp_profile profiles[FP_MAX_PROFILES];
    int n_profiles;

    fp_est_label est_labels[FP_MAX_EST_LABELS]; /* [0] is the default label */
    int n_est_labels;
} fp_config;

/* Defaults for a config in dir (all built-in profiles, default paths). */
void fp_config_defaults(fp_config *c, const char *dir);

/* Parse text (from a file in dir) over fp_config_defaults(dir).  A [profile
 * NAME] section starts from NAME's built-in defaults. */
int fp_config_parse(fp_config *c, const char *dir, const char *text, size_t len,
                    fp_error *err);

/* Load DIR/fleetpki.conf. */
int fp_config_load(fp_config *c, const char *dir, fp_error *err);

/* Write c as a complete, commented config file. */
void fp_config_write(const fp_config *c, FILE *f);

/* Profile by name, or NULL. */
const fp_profile *fp_config_profile(const fp_config *c, const char *name);


/* EST label by name ("" = default), or NULL. */
const fp_est_label *fp_config_est_label(const fp_config *c, const char *name);

/* Resolve a path option against c->dir into buf. */
/* Open the store named by [store] path (resolved like fp_config_path). */
int fp_config_store_open(const fp_config *c, fp_store **out, fp_error *err);
/* The same, as a protocol module's per-worker state (fp_http_module
 * worker_init: a store handle is one thread's), and its worker_free. */
int fp_config_worker_store_open(const fp_config *c, void **wstate, fp_error *err);
void fp_config_worker_store_close(void *state, void *wstate);

int fp_config_path(const fp_config *c, const char *opt, char *buf, size_t size,
                   fp_error *err);

#endif
