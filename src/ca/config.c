/* config.c - see config.h.  Options are rows of one table. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/ini.h"
#include "../common/util.h"
#include "../keys/p11.h"
#include "../keys/p11uri.h"

typedef enum { C_STR, C_INT, C_BOOL } ctype;

typedef struct {
    const char *section;
    const char *key;
    ctype type;
    size_t off;
    size_t size; /* for strings: buffer size */
    long min, max;
    const char *def;
    const char *help;
} config_opt;

#define S(f) offsetof(fp_config, f), sizeof(((fp_config *)0)->f)
#define I(f) offsetof(fp_config, f), 0

static const config_opt config_opts[] = {
    {"ca", "org", C_STR, S(org), 0, 0, "fleetpki", "organization name used in CA subjects"},
    {"ca", "root_id", C_STR, S(root_id), 0, 0, "root", "identifier of the root CA (used in URLs)"},
    {"ca", "root_cert", C_STR, S(root_cert), 0, 0, "root.crt", "root CA certificate (PEM)"},
    {"ca", "root_key", C_STR, S(root_key), 0, 0, "root.key", "root CA private key (PKCS#8 PEM); move offline after init"},
    {"ca", "issuing_id", C_STR, S(issuing_id), 0, 0, "issuing", "identifier of the issuing CA (used in URLs)"},
    {"ca", "issuing_cert", C_STR, S(issuing_cert), 0, 0, "issuing.crt", "issuing CA certificate (PEM)"},
    {"ca", "issuing_key", C_STR, S(issuing_key), 0, 0, "issuing.key", "issuing CA private key (PKCS#8 PEM)"},
    {"ca", "keys_encrypted", C_BOOL, I(keys_encrypted), 0, 1, "no", "keys are encrypted: read the passphrase from --passphrase-file or FLEETPKI_PASSPHRASE"},
    {"ca", "pkcs11_module", C_STR, S(pkcs11_module), 0, 0, "", "PKCS#11 module for keys named by pkcs11: URIs without module-path (docs/keys.md)"},
    {"ca", "pkcs11_pin_file", C_STR, S(pkcs11_pin_file), 0, 0, "", "file holding the token PIN when neither the URI's pin-source nor FP_PKCS11_PIN gives it"},
    {"store", "path", C_STR, S(store_path), 0, 0, "fleetpki.db", "SQLite database"},
    {"store", "url", C_STR, S(store_url), 0, 0, "", "PostgreSQL database instead of the SQLite file: a libpq URI (postgres://...) or key=value connection string; see docs/postgresql.md"},
    {"server", "https_listen", C_STR, S(https_listen), 0, 0, "127.0.0.1:8443", "EST and API listener (TLS)"},
    {"server", "http_listen", C_STR, S(http_listen), 0, 0, "127.0.0.1:8080", "CRL and OCSP listener (plain HTTP)"},
    {"server", "public_url", C_STR, S(public_url), 0, 0, "", "base URL relying parties use for CRL/OCSP (empty: no CDP/AIA in certificates)"},
    {"server", "tls_cert", C_STR, S(tls_cert), 0, 0, "tls.crt", "TLS server certificate (PEM, chain follows leaf)"},
    {"server", "tls_key", C_STR, S(tls_key), 0, 0, "tls.key", "TLS server private key"},
    {"server", "ocsp_cert", C_STR, S(ocsp_cert), 0, 0, "ocsp.crt", "delegated OCSP signer certificate"},
    {"server", "ocsp_key", C_STR, S(ocsp_key), 0, 0, "ocsp.key", "OCSP signer private key"},
    {"server", "threads", C_INT, I(threads), 0, 256, "0", "worker threads (0: one per core)"},
    {"server", "signer", C_STR, S(signer), 0, 0, "separate", "separate (default): CA keys live in a signer process of their own, out of the network process, restarted if it dies; inprocess: in the server, faster per signature (BENCHMARKS.md, docs/keys.md)"},
    {"server", "signer_async", C_INT, I(signer_async), 0, 64, "16", "with signer = separate: signatures each network worker may have out at once without waiting for them (pipelined on one signer channel per worker; 0: every signature waits, as in-process; docs/keys.md)"},
    {"server", "user", C_STR, S(user), 0, 0, "", "started as root: the network side drops to this user after binding (the store must be writable by it)"},
    {"server", "audit_key", C_STR, S(audit_key), 0, 0, "", "key (file or pkcs11: URI) that signs audit checkpoints; empty: none (docs/keys.md)"},
    {"server", "audit_pubkey", C_STR, S(audit_pubkey), 0, 0, "audit.pub", "public half of audit_key, for 'fleetpki audit verify --checkpoints'"},
    {"server", "audit_checkpoint_file", C_STR, S(audit_checkpoint_file), 0, 0, "audit-checkpoints.log", "signed audit checkpoints are appended here: put it outside the data directory's disk"},
    {"server", "audit_checkpoint_seconds", C_INT, I(audit_checkpoint_seconds), 1, 86400, "300", "seconds between audit checkpoints (one more at start and at shutdown)"},
    {"server", "audit_checkpoint_syslog", C_BOOL, I(audit_checkpoint_syslog), 0, 1, "no", "also send each checkpoint to syslog (LOG_AUTHPRIV)"},
    {"server", "max_body_bytes", C_INT, I(max_body_bytes), 1024, 16 * 1024 * 1024, "65536", "largest request body accepted"},
    {"server", "max_header_bytes", C_INT, I(max_header_bytes), 1024, 1024 * 1024, "16384", "largest request header block accepted"},
    {"server", "idle_timeout_seconds", C_INT, I(idle_timeout_seconds), 1, 3600, "30", "idle/slow client timeout"},
    {"server", "crl_next_update_hours", C_INT, I(crl_next_update_hours), 1, 24 * 31, "24", "CRL nextUpdate distance"},
    {"server", "ocsp_cache", C_BOOL, I(ocsp_cache), 0, 1, "yes", "serve single-certificate OCSP requests from pre-signed responses (no: sign every response)"},
    {"server", "ocsp_cache_entries", C_INT, I(ocsp_cache_entries), 0, 16 * 1024 * 1024, "65536", "upper bound on cached OCSP responses (about 1 KiB each)"},
    {"server", "ocsp_validity_seconds", C_INT, I(ocsp_validity_seconds), 60, 7 * 86400, "3600", "OCSP nextUpdate - thisUpdate; also bounds HTTP caching of GET responses"},
    {"server", "max_pending_commits", C_INT, I(max_pending_commits), 1, 1000000, "4096", "EST enrollments in progress (being signed or waiting for the group commit) before EST answers 503 + Retry-After"},
    {"server", "max_connections", C_INT, I(max_connections), 16, 1000000, "10000", "connections open at once, all listeners (kept below the descriptor limit)"},
    {"server", "max_connections_per_address", C_INT, I(max_connections_per_address), 1, 1000000, "256", "connections open at once from one client address"},
    {"server", "max_requests_per_connection", C_INT, I(max_requests_per_connection), 1, 1000000, "1000", "requests on one keep-alive connection before it is closed"},
    {"server", "handshake_timeout_seconds", C_INT, I(handshake_timeout_seconds), 1, 600, "10", "whole TLS handshake, from accept (bytes arriving do not extend it)"},
    {"server", "header_timeout_seconds", C_INT, I(header_timeout_seconds), 1, 600, "10", "whole request line and header block, from its first byte"},
    {"server", "body_timeout_seconds", C_INT, I(body_timeout_seconds), 1, 3600, "30", "request body: this long, plus the time min_body_rate allows for the bytes received"},
    {"server", "min_body_rate", C_INT, I(min_body_rate), 1, 1 << 30, "1024", "request body: slowest rate accepted after body_timeout_seconds (bytes/s)"},
    {"server", "rate_per_address", C_INT, I(rate_per_address), 0, 1000000, "0", "requests per second from one client address, then 429 + Retry-After (0: no limit)"},
    {"server", "rate_burst_per_address", C_INT, I(rate_burst_per_address), 1, 1000000, "100", "requests one client address may send at once above rate_per_address"},
    {"server", "rate_per_identity", C_INT, I(rate_per_identity), 0, 1000000, "0", "requests per second per authenticated identity (certificate or token), then 429 (0: no limit)"},
    {"server", "rate_burst_per_identity", C_INT, I(rate_burst_per_identity), 1, 1000000, "20", "requests one identity may send at once above rate_per_identity"},
    {"server", "cmp_confirm_wait_seconds", C_INT, I(cmp_confirm_wait_seconds), 1, 86400, "300", "CMP: how long a certificate sent without implicit confirmation waits for certConf before it is revoked (RFC 4210 5.3.18)"},
    {"server", "cmp_implicit_confirm", C_BOOL, I(cmp_implicit_confirm), 0, 1, "yes", "CMP: grant implicitConfirm when a client asks for it (RFC 9483 4.1.1)"},
    {"server", "rate_limit_keys", C_INT, I(rate_limit_keys), 1024, 16 * 1024 * 1024, "65536", "addresses and identities tracked by each rate limit (fixed memory, ~80 bytes each)"},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL, NULL},
};

/* [est LABEL] options: same row format, offsets into fp_est_label. */
#define LS(f) offsetof(fp_est_label, f), sizeof(((fp_est_label *)0)->f)
#define LI(f) offsetof(fp_est_label, f), 0

static const config_opt label_opts[] = {
    {"est", "project", C_STR, LS(project), 0, 0, "default", "project whose CA issues for this label, whose tokens and certificates authenticate on it, and whose trust roots it trusts"},
    {"est", "profile", C_STR, LS(profile), 0, 0, "device", "certificate profile used for this label"},
    {"est", "auth", C_STR, 0, 0, 0, 0, "either", "cert | token | either (TLS client certificate and/or enrollment token)"},
    {"est", "trust_anchors", C_STR, LS(trust_anchors), 0, 0, "", "PEM bundle of extra CAs whose certificates may enroll (e.g. manufacturer IDevID CA)"},
    {"est", "revoke_on_renew", C_BOOL, LI(revoke_on_renew), 0, 1, "no", "revoke the old certificate (superseded) on simplereenroll"},
    {"est", "manual_approval", C_BOOL, LI(manual_approval), 0, 1, "no", "hold enrollments for 'fleetpki approve' (answers 202)"},
    {"est", "require_pop_linking", C_BOOL, LI(require_pop_linking), 0, 1, "no", "CSR challengePassword must carry the TLS channel binding (RFC 7030 3.5)"},
    {"est", "csrattrs", C_STR, LS(csrattrs), 0, 0, "auto", "auto | none | list of key, sigalg, challenge, OIDs"},
    {"est", "retry_after_seconds", C_INT, LI(retry_after_seconds), 1, 86400, "60", "Retry-After sent with 202 (manual approval)"},
    {"est", "cert_identity", C_STR, LS(cert_identity), 0, 0, "same", "certificate-authenticated enrollment may request: same (subject and SANs of the authenticating certificate) | cn (same CN) | serialnumber (CN = its subject serialNumber, IDevID) | pattern (CN matches cert_identity_pattern)"},
    {"est", "cert_identity_pattern", C_STR, LS(cert_identity_pattern), 0, 0, "", "cert_identity = pattern: pattern for the CSR's CN (the token CN pattern language, docs/policy.md); {cn} and {serialnumber} stand for the authenticating certificate's, taken literally"},
    {"est", "scep_legacy_crypto", C_BOOL, LI(scep_legacy_crypto), 0, 1, "no", "SCEP on this label (/scep/LABEL) also accepts requests signed with SHA-1 and enveloped with single DES, as Debian's scepclient (micromdm 2.1) sends them; answers stay SHA-256 and AES (docs/scep.md)"},
    {"est", "serverkeygen_algo", C_STR, LS(serverkeygen_algo), 0, 0, "auto", "serverkeygen key: auto (profile's first of p256, p384, ed25519, rsa, p521) | p256 | p384 | p521 | ed25519 | rsa2048 | rsa3072 | rsa4096"},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL, NULL},
};

static const char *const auth_names[] = {"either", "cert", "token"};
static const char *const cert_identity_names[] = {"same", "cn", "serialnumber", "pattern", NULL};
static const char *const keygen_algo_names[] = {"auto", "p256", "p384", "p521", "ed25519",
                                                "rsa2048", "rsa3072", "rsa4096", NULL};

static bool in_list(const char *const *names, const char *value)
{
    for (int i = 0; names[i]; i++)
        if (!strcasecmp(value, names[i]))
            return true;
    return false;
}

static int set_opt_base(char *base, const config_opt *o, const char *value,
                        int line, fp_error *err);

/* serverkeygen_algo must name a key the label's profile accepts. */
static int keygen_algo_allowed(const fp_est_label *l, const fp_profile *p, fp_error *err)
{
    static const struct {
        const char *name;
        unsigned alg;
        int bits;
    } algos[] = {{"p256", FP_ALG_P256, 0},    {"p384", FP_ALG_P384, 0},
                 {"p521", FP_ALG_P521, 0},    {"ed25519", FP_ALG_ED25519, 0},
                 {"rsa2048", FP_ALG_RSA, 2048}, {"rsa3072", FP_ALG_RSA, 3072},
                 {"rsa4096", FP_ALG_RSA, 4096}};
    for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
        if (strcasecmp(l->serverkeygen_algo, algos[i].name) != 0)
            continue;
        if (!(p->algs & algos[i].alg) ||
            (algos[i].bits && (algos[i].bits < p->rsa_min_bits || algos[i].bits > p->rsa_max_bits)))
            return fp_err_set(err, FP_ERR_CONFIG,
                              "[est %s]: serverkeygen_algo %s is not allowed by profile '%s'",
                              l->name, algos[i].name, p->name);
    }
    return FP_ERR_OK;
}

static int set_label_opt(fp_est_label *l, const config_opt *o, const char *value,
                         int line, fp_error *err)
{
    if (!strcmp(o->key, "auth")) {
        for (int i = 0; i < 3; i++) {
            if (!strcasecmp(value, auth_names[i])) {
                l->auth = i;
                return FP_ERR_OK;
            }
        }
        return fp_err_set(err, FP_ERR_CONFIG, "line %d: [est] auth: expected cert, token or either",
                          line);
    }
    if (!strcmp(o->key, "cert_identity") && !in_list(cert_identity_names, value))
        return fp_err_set(err, FP_ERR_CONFIG,
                          "line %d: [est] cert_identity: expected same, cn, serialnumber or pattern",
                          line);
    if (!strcmp(o->key, "serverkeygen_algo") && !in_list(keygen_algo_names, value))
        return fp_err_set(err, FP_ERR_CONFIG,
                          "line %d: [est] serverkeygen_algo: expected auto, p256, p384, p521, "
                          "ed25519, rsa2048, rsa3072 or rsa4096", line);
    return set_opt_base((char *)l, o, value, line, err);
}

static void label_defaults(fp_est_label *l, const char *name)
{
    memset(l, 0, sizeof(*l));
    snprintf(l->name, sizeof(l->name), "%s", name);
    for (const config_opt *o = label_opts; o->key; o++)
        (void)set_label_opt(l, o, o->def, 0, NULL);
}

static int set_opt(fp_config *c, const config_opt *o, const char *value,
                   int line, fp_error *err)
{
    return set_opt_base((char *)c, o, value, line, err);
}

static int set_opt_base(char *obj, const config_opt *o, const char *value,
                        int line, fp_error *err)
{
    char *base = obj + o->off;
    switch (o->type) {
    case C_STR:
        if (strlen(value) >= o->size)
            return fp_err_set(err, FP_ERR_CONFIG, "line %d: [%s] %s: value too long",
                              line, o->section, o->key);
        strcpy(base, value);
        return FP_ERR_OK;
    case C_INT: {
        char *end = NULL;
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        if (end == value || *end || errno || v < o->min || v > o->max)
            return fp_err_set(err, FP_ERR_CONFIG,
                              "line %d: [%s] %s: expected integer in [%ld, %ld], got '%s'",
                              line, o->section, o->key, o->min, o->max, value);
        *(int *)(void *)base = (int)v;
        return FP_ERR_OK;
    }
    case C_BOOL:
        if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1"))
            *(bool *)(void *)base = true;
        else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0"))
            *(bool *)(void *)base = false;
        else
            return fp_err_set(err, FP_ERR_CONFIG, "line %d: [%s] %s: expected yes or no",
                              line, o->section, o->key);
        return FP_ERR_OK;
    }
    return FP_ERR_INTERNAL;
}

void fp_config_defaults(fp_config *c, const char *dir)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s", dir ? dir : ".");
    for (const config_opt *o = config_opts; o->key; o++)
        (void)set_opt(c, o, o->def, 0, NULL);
    for (int i = 0; fp_builtin_profiles[i]; i++)
        fp_profile_defaults(fp_builtin_profiles[i], &c->profiles[c->n_profiles++]);
    label_defaults(&c->est_labels[0], "");
    c->n_est_labels = 1;
}

/* Where a [profile] or [est] option (or, with key "", the section) was
 * set: the checks made once the whole file is read (fp_profile_validate,
 * the label checks) name the line of the option at fault. */
typedef struct {
    const void *owner; /* the fp_profile or fp_est_label */
    char key[32];
    int line;
} key_line;
#define MAX_KEY_LINES 512 /* beyond: those errors name no line */

typedef struct {
    fp_config *c;
    fp_profile *cur; /* profile being filled, or NULL */
    fp_est_label *label; /* [est LABEL] being filled, or NULL */
    key_line lines[MAX_KEY_LINES];
    int n_lines;
} parse_ctx;

static void note_line(parse_ctx *pc, const void *owner, const char *key, int line)
{
    for (int i = 0; i < pc->n_lines; i++)
        if (pc->lines[i].owner == owner && !strcmp(pc->lines[i].key, key)) {
            pc->lines[i].line = line;
            return;
        }
    if (pc->n_lines < MAX_KEY_LINES && strlen(key) < sizeof(pc->lines[0].key)) {
        pc->lines[pc->n_lines].owner = owner;
        strcpy(pc->lines[pc->n_lines].key, key);
        pc->lines[pc->n_lines++].line = line;
    }
}

/* The line where owner's key was set, 0 if it was not. */
static int line_of(const parse_ctx *pc, const void *owner, const char *key)
{
    for (int i = 0; i < pc->n_lines; i++)
        if (pc->lines[i].owner == owner && !strcmp(pc->lines[i].key, key))
            return pc->lines[i].line;
    return 0;
}

/* Prefix err with the line of the last-set option of owner that its
 * message names (a rule between two options is broken where the second
 * is set), else of owner's section; nothing for a built-in default. */
static void prefix_line(const parse_ctx *pc, const void *owner, fp_error *err)
{
    int line = 0;

    if (err == NULL)
        return;
    for (int i = 0; i < pc->n_lines; i++) {
        const key_line *k = &pc->lines[i];
        size_t n = strlen(k->key);
        if (k->owner != owner || n == 0 || k->line <= line)
            continue;
        for (const char *m = strstr(err->msg, k->key); m; m = strstr(m + 1, k->key)) {
            char before = m > err->msg ? m[-1] : ' ', after = m[n];
            if (!(before == '_' || isalnum((unsigned char)before)) &&
                !(after == '_' || isalnum((unsigned char)after))) {
                line = k->line;
                break;
            }
        }
    }
    if (line == 0)
        line = line_of(pc, owner, "");
    if (line > 0)
        fp_err_prefix(err, "line %d: ", line);
}

/* RFC 7030 3.2.2: a label is a path segment; keep it to a safe alphabet. */
static bool label_name_ok(const char *s)
{
    if (strlen(s) >= FP_EST_LABEL_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static int on_section(void *arg, const char *section, const char *sarg, int line,
                      fp_error *err)
{
    parse_ctx *pc = arg;
    pc->cur = NULL;
    pc->label = NULL;
    if (!strcmp(section, "est")) {
        fp_config *c = pc->c;
        static const char *const ops[] = {"cacerts", "simpleenroll", "simplereenroll",
                                          "serverkeygen", "csrattrs", "fullcmc", NULL};
        if (!label_name_ok(sarg) || !strcmp(sarg, ".") || !strcmp(sarg, ".."))
            return fp_err_set(err, FP_ERR_CONFIG,
                              "line %d: [est LABEL]: label must be letters, digits, '-', '_', '.'",
                              line);
        for (int i = 0; ops[i]; i++)
            if (!strcmp(sarg, ops[i]))
                return fp_err_set(err, FP_ERR_CONFIG,
                                  "line %d: [est %s]: label may not be an EST operation name",
                                  line, sarg);
        for (int i = 0; i < c->n_est_labels; i++)
            if (!strcmp(c->est_labels[i].name, sarg))
                pc->label = &c->est_labels[i];
        if (pc->label == NULL) {
            if (c->n_est_labels >= FP_MAX_EST_LABELS)
                return fp_err_set(err, FP_ERR_CONFIG, "line %d: too many [est] labels", line);
            pc->label = &c->est_labels[c->n_est_labels++];
        }
        label_defaults(pc->label, sarg);
        note_line(pc, pc->label, "", line);
        return FP_ERR_OK;
    }
    if (!strcmp(section, "profile")) {
        fp_config *c = pc->c;
        if (sarg[0] == '\0' || strlen(sarg) >= FP_PROFILE_NAME_MAX)
            return fp_err_set(err, FP_ERR_CONFIG, "line %d: [profile NAME] needs a name", line);
        for (int i = 0; i < c->n_profiles; i++)
            if (!strcmp(c->profiles[i].name, sarg))
                pc->cur = &c->profiles[i];
        if (pc->cur == NULL) {
            if (c->n_profiles >= FP_MAX_PROFILES)
                return fp_err_set(err, FP_ERR_CONFIG, "line %d: too many profiles", line);
            pc->cur = &c->profiles[c->n_profiles++];
        }
        /* a profile section is complete in itself: start from defaults */
        fp_profile_defaults(sarg, pc->cur);
        note_line(pc, pc->cur, "", line);
        return FP_ERR_OK;
    }
    if (strcmp(section, "ca") && strcmp(section, "store") && strcmp(section, "server"))
        return fp_err_set(err, FP_ERR_CONFIG, "line %d: unknown section [%s]", line, section);
    if (sarg[0] != '\0')
        return fp_err_set(err, FP_ERR_CONFIG, "line %d: [%s] takes no argument", line, section);
    return FP_ERR_OK;
}

static int on_key(void *arg, const char *section, const char *sarg, const char *key,
                  const char *value, int line, fp_error *err)
{
    parse_ctx *pc = arg;
    (void)sarg;
    if (pc->label != NULL) {
        note_line(pc, pc->label, key, line);
        for (const config_opt *o = label_opts; o->key; o++)
            if (!strcmp(o->key, key))
                return set_label_opt(pc->label, o, value, line, err);
        return fp_err_set(err, FP_ERR_CONFIG, "line %d: [est] unknown option '%s'", line, key);
    }
    if (pc->cur != NULL) {
        int rc = fp_profile_set(pc->cur, key, value, err);
        note_line(pc, pc->cur, key, line);
        if (rc != FP_ERR_OK)
            fp_err_prefix(err, "line %d: ", line);
        return rc;
    }
    if (section[0] == '\0')
        return fp_err_set(err, FP_ERR_CONFIG, "line %d: '%s' outside any section", line, key);
    for (const config_opt *o = config_opts; o->key; o++)
        if (!strcmp(o->section, section) && !strcmp(o->key, key))
            return set_opt(pc->c, o, value, line, err);
    return fp_err_set(err, FP_ERR_CONFIG, "line %d: [%s] unknown option '%s'", line,
                      section, key);
}

int fp_config_parse(fp_config *c, const char *dir, const char *text, size_t len,
                    fp_error *err)
{
    parse_ctx pc = {c, NULL, NULL, {{0}}, 0};
    int rc;

    fp_config_defaults(c, dir);
    rc = fp_ini_parse(text, len, on_section, on_key, &pc, err);
    if (rc != FP_ERR_OK)
        return rc;
    if (strcmp(c->signer, "separate") && strcmp(c->signer, "inprocess"))
        return fp_err_set(err, FP_ERR_CONFIG, "[server] signer: expected separate or inprocess");
    for (int i = 0; i < c->n_profiles; i++)
        if ((rc = fp_profile_validate(&c->profiles[i], err)) != FP_ERR_OK) {
            prefix_line(&pc, &c->profiles[i], err);
            return rc;
        }
    for (int i = 0; i < c->n_est_labels; i++) {
        const fp_est_label *l = &c->est_labels[i];
        const fp_profile *p = fp_config_profile(c, l->profile);
        if (p == NULL)
            rc = fp_err_set(err, FP_ERR_CONFIG, "[est %s] profile: no profile named '%s'", l->name,
                            l->profile);
        else if (!fp_project_name_ok(l->project))
            rc = fp_err_set(err, FP_ERR_CONFIG,
                            "[est %s] project: '%s' is not a project name (a-z, 0-9, '-', "
                            "'_'; at most 63, starting with a letter or digit)",
                            l->name, l->project);
        else if (!strcasecmp(l->cert_identity, "pattern") && l->cert_identity_pattern[0] == '\0')
            rc = fp_err_set(err, FP_ERR_CONFIG,
                            "[est %s] cert_identity = pattern needs cert_identity_pattern",
                            l->name);
        else
            rc = keygen_algo_allowed(l, p, err);
        if (rc != FP_ERR_OK) {
            prefix_line(&pc, l, err);
            return rc;
        }
    }
    return FP_ERR_OK;
}

int fp_config_load(fp_config *c, const char *dir, fp_error *err)
{
    char path[FP_PATH_MAX];
    unsigned char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = fp_path_join(path, sizeof(path), dir, FP_CONFIG_FILE, err)) != FP_ERR_OK)
        return rc;
    rc = fp_file_read(path, FP_CONFIG_MAX_BYTES, &text, &len, err);
    if (rc == FP_ERR_NOT_FOUND)
        return fp_err_set(err, FP_ERR_NOT_FOUND,
                          "%s not found: run 'fleetpki init --dir %s' first", path, dir);
    if (rc != FP_ERR_OK)
        return rc;
    rc = fp_config_parse(c, dir, (const char *)text, len, err);
    if (rc != FP_ERR_OK)
        fp_err_prefix(err, "%s: ", path);
    free(text);
    if (rc == FP_ERR_OK) {
        /* PKCS#11 defaults for every pkcs11: key this process opens */
        char pin[FP_PATH_MAX] = "";
        if (c->pkcs11_pin_file[0] &&
            (rc = fp_config_path(c, c->pkcs11_pin_file, pin, sizeof(pin), err)) != FP_ERR_OK)
            return rc;
        fp_p11_set_defaults(c->pkcs11_module, pin);
    }
    return rc;
}

void fp_config_write(const fp_config *c, FILE *f)
{
    const char *section = "";
    fprintf(f, "# fleetpki configuration, written by 'fleetpki init'.\n"
               "# Relative paths are relative to this file's directory.\n"
               "# Check edits with 'fleetpki check-config'.\n");
    for (const config_opt *o = config_opts; o->key; o++) {
        const char *base = (const char *)c + o->off;
        if (strcmp(section, o->section)) {
            section = o->section;
            fprintf(f, "\n[%s]\n", section);
        }
        fprintf(f, "# %s (default: %s)\n%s = ", o->help, o->def[0] ? o->def : "empty", o->key);
        if (o->type == C_STR)
            fprintf(f, "%s\n", base);
        else if (o->type == C_INT)
            fprintf(f, "%d\n", *(const int *)(const void *)base);
        else
            fprintf(f, "%s\n", *(const bool *)(const void *)base ? "yes" : "no");
    }
    fputc('\n', f);
    for (int i = 0; i < c->n_est_labels; i++) {
        const fp_est_label *l = &c->est_labels[i];
        fprintf(f, "# EST label %s (RFC 7030 3.2.2)\n[est%s%s]\n",
                l->name[0] ? l->name : "(default: /.well-known/est/)", l->name[0] ? " " : "",
                l->name);
        for (const config_opt *o = label_opts; o->key; o++) {
            const char *base = (const char *)l + o->off;
            fprintf(f, "# %s (default: %s)\n%s = ", o->help, o->def[0] ? o->def : "empty", o->key);
            if (!strcmp(o->key, "auth"))
                fprintf(f, "%s\n", auth_names[l->auth]);
            else if (o->type == C_STR)
                fprintf(f, "%s\n", base);
            else if (o->type == C_INT)
                fprintf(f, "%d\n", *(const int *)(const void *)base);
            else
                fprintf(f, "%s\n", *(const bool *)(const void *)base ? "yes" : "no");
        }
        fputc('\n', f);
    }
    for (int i = 0; i < c->n_profiles; i++)
        fp_profile_write(&c->profiles[i], f);
}

const fp_est_label *fp_config_est_label(const fp_config *c, const char *name)
{
    for (int i = 0; i < c->n_est_labels; i++)
        if (!strcmp(c->est_labels[i].name, name))
            return &c->est_labels[i];
    return NULL;
}

const fp_profile *fp_config_profile(const fp_config *c, const char *name)
{
    for (int i = 0; i < c->n_profiles; i++)
        if (!strcmp(c->profiles[i].name, name))
            return &c->profiles[i];
    return NULL;
}

int fp_config_path(const fp_config *c, const char *opt, char *buf, size_t size,
                   fp_error *err)
{
    /* a key in a token is named by an RFC 7512 URI, not a path */
    if (fp_p11_uri_is(opt))
        return fp_path_join(buf, size, NULL, opt, err);
    /* [store] url replaces the SQLite path: a URI as it is, a key=value
     * connection string marked for fp_store_open */
    if (opt == c->store_path && c->store_url[0] != '\0') {
        bool uri = !strncmp(c->store_url, "postgres://", 11) ||
                   !strncmp(c->store_url, "postgresql://", 13);
        int n = snprintf(buf, size, "%s%s", uri ? "" : FP_STORE_PG_PREFIX, c->store_url);
        if (n < 0 || (size_t)n >= size)
            return fp_err_set(err, FP_ERR_TOO_LARGE, "[store] url is too long");
        return FP_ERR_OK;
    }
    return fp_path_join(buf, size, c->dir, opt, err);
}

int fp_config_store_open(const fp_config *c, fp_store **out, fp_error *err)
{
    char path[FP_PATH_MAX];
    int rc = fp_config_path(c, c->store_path, path, sizeof(path), err);
    *out = NULL;
    return rc != FP_ERR_OK ? rc : fp_store_open(path, out, err);
}

int fp_config_worker_store_open(const fp_config *c, void **wstate, fp_error *err)
{
    fp_store *store = NULL;
    int rc = fp_config_store_open(c, &store, err);

    *wstate = store;
    return rc;
}

void fp_config_worker_store_close(void *state, void *wstate)
{
    (void)state;
    fp_store_close(wstate);
}
