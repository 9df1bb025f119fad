/*
 * profile.c - built-in certificate profiles and their config syntax.
 *
 * Every option is one row in a table with its parser, so the reader, the
 * writer (used by `fleetpki init` to produce a complete, editable config)
 * and the validator stay in step.
 */
#define _POSIX_C_SOURCE 200809L
#include "profile.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/objects.h>
#include <openssl/x509v3.h>

const char *const fp_builtin_profiles[] = {
    "device", "server", "client", "code-signing", "ocsp-signer", "cmp-responder", "sub-ca",
    "scep-ra", NULL,
};

/* ---- name tables ---- */

typedef struct {
    const char *name;
    unsigned bit;
} name_bit;

static const name_bit ku_names[] = {
    {"digitalSignature", KU_DIGITAL_SIGNATURE},
    {"nonRepudiation", KU_NON_REPUDIATION},
    {"keyEncipherment", KU_KEY_ENCIPHERMENT},
    {"dataEncipherment", KU_DATA_ENCIPHERMENT},
    {"keyAgreement", KU_KEY_AGREEMENT},
    {"keyCertSign", KU_KEY_CERT_SIGN},
    {"cRLSign", KU_CRL_SIGN},
    {NULL, 0},
};

static const name_bit alg_names[] = {
    {"rsa", FP_ALG_RSA},     {"p256", FP_ALG_P256},       {"p384", FP_ALG_P384},
    {"p521", FP_ALG_P521},   {"ed25519", FP_ALG_ED25519}, {NULL, 0},
};

static const name_bit san_names[] = {
    {"dns", FP_SAN_DNS}, {"ip", FP_SAN_IP}, {"uri", FP_SAN_URI},
    {"email", FP_SAN_EMAIL}, {NULL, 0},
};

static const char *const reqext_names[] = {"ignore", "honour", "reject"};

/* ---- list parsing helpers ---- */

/* Iterate comma-separated items of value, trimmed; calls fn on each. */
static int each_item(const char *value, int (*fn)(void *, const char *, fp_error *),
                     void *arg, fp_error *err)
{
    char buf[1024];
    char *save = NULL, *tok;

    if (strlen(value) >= sizeof(buf))
        return fp_err_set(err, FP_ERR_CONFIG, "list too long");
    strcpy(buf, value);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        int rc;
        while (isspace((unsigned char)*tok))
            tok++;
        end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        if ((rc = fn(arg, tok, err)) != FP_ERR_OK)
            return rc;
    }
    return FP_ERR_OK;
}

typedef struct {
    const name_bit *table;
    unsigned *bits;
    const char *what;
} bits_ctx;

static int add_bit(void *arg, const char *item, fp_error *err)
{
    bits_ctx *c = arg;
    for (const name_bit *n = c->table; n->name; n++) {
        if (strcasecmp(n->name, item) == 0) {
            *c->bits |= n->bit;
            return FP_ERR_OK;
        }
    }
    return fp_err_set(err, FP_ERR_CONFIG, "unknown %s '%s'", c->what, item);
}

static int parse_bits(const name_bit *table, const char *what,
                      const char *value, unsigned *out, fp_error *err)
{
    unsigned bits = 0;
    bits_ctx c = {table, &bits, what};
    int rc = each_item(value, add_bit, &c, err);
    if (rc == FP_ERR_OK)
        *out = bits;
    return rc;
}

static void write_bits(FILE *f, const name_bit *table, unsigned bits)
{
    const char *sep = "";
    for (const name_bit *n = table; n->name; n++) {
        if (bits & n->bit) {
            fprintf(f, "%s%s", sep, n->name);
            sep = ", ";
        }
    }
}

typedef struct {
    int *nids;
    int *n;
    int max;
} nids_ctx;

static int add_nid(void *arg, const char *item, fp_error *err)
{
    nids_ctx *c = arg;
    int nid = OBJ_txt2nid(item);
    if (nid == NID_undef)
        return fp_err_set(err, FP_ERR_CONFIG, "unknown object name '%s'", item);
    if (*c->n >= c->max)
        return fp_err_set(err, FP_ERR_CONFIG, "too many entries (max %d)", c->max);
    c->nids[(*c->n)++] = nid;
    return FP_ERR_OK;
}

static int add_force(void *arg, const char *item, fp_error *err)
{
    fp_profile *p = arg;
    const char *eq = strchr(item, '=');
    char type[64];
    int nid;

    if (eq == NULL || eq == item || (size_t)(eq - item) >= sizeof(type))
        return fp_err_set(err, FP_ERR_CONFIG, "expected TYPE=value, got '%s'", item);
    memcpy(type, item, (size_t)(eq - item));
    type[eq - item] = '\0';
    nid = OBJ_txt2nid(type);
    if (nid == NID_undef)
        return fp_err_set(err, FP_ERR_CONFIG, "unknown RDN type '%s'", type);
    if (p->n_force >= FP_PROFILE_MAX_RDN)
        return fp_err_set(err, FP_ERR_CONFIG, "too many entries");
    if (strlen(eq + 1) == 0 || strlen(eq + 1) >= FP_PROFILE_VALUE_MAX)
        return fp_err_set(err, FP_ERR_CONFIG, "bad value length for %s", type);
    p->force[p->n_force].nid = nid;
    strcpy(p->force[p->n_force].value, eq + 1);
    p->n_force++;
    return FP_ERR_OK;
}

/* ---- option table ---- */

typedef enum { T_INT, T_BOOL, T_STR, T_SPECIAL } opt_type;

typedef struct {
    const char *key;
    opt_type type;
    size_t off;
    long min, max;
    const char *help;
} profile_opt;

#define OFF(f) offsetof(fp_profile, f)

static const profile_opt profile_opts[] = {
    {"validity_days", T_INT, OFF(validity_days), 1, 36500, "default lifetime in days"},
    {"max_validity_days", T_INT, OFF(max_validity_days), 1, 36500, "upper bound for requested lifetime"},
    {"backdate_seconds", T_INT, OFF(backdate_seconds), 0, 86400, "notBefore is set this far in the past (clock skew)"},
    {"key_usage", T_SPECIAL, 0, 0, 0, "keyUsage bits (always critical)"},
    {"extended_key_usage", T_SPECIAL, 0, 0, 0, "extendedKeyUsage purposes"},
    {"ca", T_BOOL, OFF(is_ca), 0, 1, "issue CA certificates (sub-ca only)"},
    {"path_len", T_INT, OFF(path_len), -1, 16, "pathLenConstraint for CA profiles, -1 for none"},
    {"ocsp_nocheck", T_BOOL, OFF(ocsp_nocheck), 0, 1, "add id-pkix-ocsp-nocheck"},
    {"key_algorithms", T_SPECIAL, 0, 0, 0, "allowed subject key algorithms"},
    {"rsa_min_bits", T_INT, OFF(rsa_min_bits), 2048, 16384, "smallest RSA modulus accepted"},
    {"rsa_max_bits", T_INT, OFF(rsa_max_bits), 2048, 16384, "largest RSA modulus accepted"},
    {"cn_pattern", T_STR, OFF(cn_pattern), 0, FP_PROFILE_PATTERN_MAX, "fnmatch pattern the CN must match"},
    {"cn_required", T_BOOL, OFF(cn_required), 0, 1, "refuse requests without a CN"},
    {"allow_bidi", T_BOOL, OFF(allow_bidi), 0, 1, "accept Unicode bidi controls (U+202E...) in subject values; control characters are always refused"},
    {"subject_copy", T_SPECIAL, 0, 0, 0, "RDN types copied from the CSR; others are dropped"},
    {"subject_force", T_SPECIAL, 0, 0, 0, "RDNs always set, TYPE=value"},
    {"san_types", T_SPECIAL, 0, 0, 0, "subjectAltName types a CSR may request"},
    {"max_sans", T_INT, OFF(max_sans), 0, 256, "most SAN entries accepted"},
    {"san_required", T_BOOL, OFF(san_required), 0, 1, "refuse requests without a SAN"},
    {"dns_pattern", T_STR, OFF(dns_pattern), 0, FP_PROFILE_PATTERN_MAX, "fnmatch pattern each DNS SAN must match"},
    {"requested_extensions", T_SPECIAL, 0, 0, 0, "ignore | honour | reject other CSR extensions"},
    {NULL, 0, 0, 0, 0, NULL},
};

static int parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") ||
        !strcasecmp(v, "on"))
        *out = true;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") ||
             !strcasecmp(v, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

static int set_special(fp_profile *p, const char *key, const char *value,
                       fp_error *err)
{
    if (!strcmp(key, "key_usage"))
        return parse_bits(ku_names, "key usage", value, &p->key_usage, err);
    if (!strcmp(key, "key_algorithms"))
        return parse_bits(alg_names, "key algorithm", value, &p->algs, err);
    if (!strcmp(key, "san_types"))
        return parse_bits(san_names, "SAN type", value, &p->san_types, err);
    if (!strcmp(key, "extended_key_usage")) {
        nids_ctx c = {p->eku_nids, &p->n_eku, FP_PROFILE_MAX_EKU};
        p->n_eku = 0;
        return each_item(value, add_nid, &c, err);
    }
    if (!strcmp(key, "subject_copy")) {
        nids_ctx c = {p->copy_nids, &p->n_copy, FP_PROFILE_MAX_RDN};
        p->n_copy = 0;
        return each_item(value, add_nid, &c, err);
    }
    if (!strcmp(key, "subject_force")) {
        p->n_force = 0;
        return each_item(value, add_force, p, err);
    }
    if (!strcmp(key, "requested_extensions")) {
        for (size_t i = 0; i < sizeof(reqext_names) / sizeof(*reqext_names); i++) {
            if (!strcasecmp(value, reqext_names[i])) {
                p->requested_extensions = (fp_reqext_mode)i;
                return FP_ERR_OK;
            }
        }
        return fp_err_set(err, FP_ERR_CONFIG,
                          "expected ignore, honour or reject");
    }
    return fp_err_set(err, FP_ERR_INTERNAL, "no parser for %s", key);
}

int fp_profile_set(fp_profile *p, const char *key, const char *value,
                   fp_error *err)
{
    for (const profile_opt *o = profile_opts; o->key; o++) {
        char *base = (char *)p + o->off;
        if (strcmp(o->key, key) != 0)
            continue;
        switch (o->type) {
        case T_INT: {
            char *end = NULL;
            long v;
            errno = 0;
            v = strtol(value, &end, 10);
            if (end == value || *end != '\0' || v < o->min || v > o->max)
                return fp_err_set(err, FP_ERR_CONFIG,
                                  "profile %s: %s must be an integer in [%ld, %ld], got '%s'",
                                  p->name, key, o->min, o->max, value);
            *(int *)(void *)base = (int)v;
            return FP_ERR_OK;
        }
        case T_BOOL:
            if (parse_bool(value, (bool *)(void *)base) != 0)
                return fp_err_set(err, FP_ERR_CONFIG,
                                  "profile %s: %s must be yes or no, got '%s'",
                                  p->name, key, value);
            return FP_ERR_OK;
        case T_STR:
            if (strlen(value) >= (size_t)o->max)
                return fp_err_set(err, FP_ERR_CONFIG, "profile %s: %s too long",
                                  p->name, key);
            strcpy(base, value);
            return FP_ERR_OK;
        case T_SPECIAL: {
            int rc = set_special(p, key, value, err);
            if (rc != FP_ERR_OK)
                fp_err_prefix(err, "profile %s: %s: ", p->name, key);
            return rc;
        }
        }
    }
    return fp_err_set(err, FP_ERR_CONFIG, "profile %s: unknown option '%s'",
                      p->name, key);
}

int fp_profile_validate(const fp_profile *p, fp_error *err)
{
    if (p->validity_days > p->max_validity_days)
        return fp_err_set(err, FP_ERR_CONFIG,
                          "profile %s: validity_days exceeds max_validity_days", p->name);
    if (p->rsa_min_bits > p->rsa_max_bits)
        return fp_err_set(err, FP_ERR_CONFIG,
                          "profile %s: rsa_min_bits exceeds rsa_max_bits", p->name);
    if (p->algs == 0)
        return fp_err_set(err, FP_ERR_CONFIG,
                          "profile %s: key_algorithms is empty", p->name);
    if (!p->is_ca && (p->key_usage & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
        return fp_err_set(err, FP_ERR_CONFIG,
                          "profile %s: key_usage keyCertSign/cRLSign needs ca = yes", p->name);
    if (p->is_ca && !(p->key_usage & KU_KEY_CERT_SIGN))
        return fp_err_set(err, FP_ERR_CONFIG,
                          "profile %s: ca = yes needs keyCertSign in key_usage", p->name);
    if (p->key_usage == 0)
        return fp_err_set(err, FP_ERR_CONFIG, "profile %s: key_usage is empty", p->name);
    return FP_ERR_OK;
}

/* ---- defaults ---- */

static void set_nids(int *dst, int *n, const int *src, int count)
{
    for (int i = 0; i < count; i++)
        dst[i] = src[i];
    *n = count;
}

int fp_profile_defaults(const char *name, fp_profile *p)
{
    static const int copy_default[] = {NID_commonName, NID_serialNumber,
                                       NID_organizationalUnitName};
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->validity_days = 365;
    p->max_validity_days = 825;
    p->backdate_seconds = 300;
    p->key_usage = KU_DIGITAL_SIGNATURE;
    p->path_len = -1;
    p->algs = FP_ALG_P256 | FP_ALG_P384 | FP_ALG_ED25519 | FP_ALG_RSA;
    p->rsa_min_bits = 2048;
    p->rsa_max_bits = 4096;
    strcpy(p->cn_pattern, "*");
    p->cn_required = true;
    set_nids(p->copy_nids, &p->n_copy, copy_default, 3);
    p->san_types = FP_SAN_DNS | FP_SAN_IP | FP_SAN_URI | FP_SAN_EMAIL;
    p->max_sans = 16;
    strcpy(p->dns_pattern, "*");
    p->requested_extensions = FP_REQEXT_IGNORE;

    if (!strcmp(name, "device")) {
        /* Device identity for mutual TLS (MQTT, device APIs). */
        p->eku_nids[p->n_eku++] = NID_client_auth;
        p->san_types = FP_SAN_DNS | FP_SAN_URI;
    } else if (!strcmp(name, "server")) {
        p->eku_nids[p->n_eku++] = NID_server_auth;
        p->key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT;
        p->san_types = FP_SAN_DNS | FP_SAN_IP;
        p->san_required = true;
        p->max_validity_days = 397; /* CA/B Forum ceiling for TLS servers */
    } else if (!strcmp(name, "client")) {
        p->eku_nids[p->n_eku++] = NID_client_auth;
        p->key_usage = KU_DIGITAL_SIGNATURE;
    } else if (!strcmp(name, "code-signing")) {
        p->eku_nids[p->n_eku++] = NID_code_sign;
        p->key_usage = KU_DIGITAL_SIGNATURE;
        p->san_types = FP_SAN_URI | FP_SAN_EMAIL;
        p->validity_days = 730;
        p->max_validity_days = 1095;
    } else if (!strcmp(name, "ocsp-signer")) {
        p->eku_nids[p->n_eku++] = NID_OCSP_sign;
        p->key_usage = KU_DIGITAL_SIGNATURE;
        p->ocsp_nocheck = true;
        p->san_types = 0;
        p->max_sans = 0;
        p->validity_days = 90;
        p->max_validity_days = 397;
    } else if (!strcmp(name, "cmp-responder")) {
        /* signs CMP responses for its CA (RFC 9483 3.3; id-kp-cmcRA, RFC 6402 2.10) */
        p->eku_nids[p->n_eku++] = NID_cmcRA;
        p->key_usage = KU_DIGITAL_SIGNATURE;
        p->san_types = 0;
        p->max_sans = 0;
        p->validity_days = 90;
        p->max_validity_days = 397;
    } else if (!strcmp(name, "scep-ra")) {
        /* SCEP RA (src/scep/scep_ra.c): signs CertReps and is the RSA
         * key-transport recipient of requests (RFC 8894 2.1.2) */
        p->key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT;
        p->algs = FP_ALG_RSA;
        p->san_types = 0;
        p->max_sans = 0;
        p->validity_days = 365;
        p->max_validity_days = 397;
    } else if (!strcmp(name, "sub-ca")) {
        static const int copy_ca[] = {NID_commonName, NID_organizationName,
                                      NID_organizationalUnitName, NID_countryName};
        p->is_ca = true;
        p->path_len = 0;
        p->key_usage = KU_KEY_CERT_SIGN | KU_CRL_SIGN;
        p->algs = FP_ALG_P256 | FP_ALG_P384 | FP_ALG_RSA;
        p->rsa_min_bits = 3072;
        p->san_types = 0;
        p->max_sans = 0;
        p->validity_days = 1825;
        p->max_validity_days = 3650;
        set_nids(p->copy_nids, &p->n_copy, copy_ca, 4);
    } else {
        /* custom profile: a client-auth leaf unless the config says more */
        p->eku_nids[p->n_eku++] = NID_client_auth;
    }
    return FP_ERR_OK;
}

/* ---- writer ---- */

void fp_profile_write(const fp_profile *p, FILE *f)
{
    fprintf(f, "[profile %s]\n", p->name);
    for (const profile_opt *o = profile_opts; o->key; o++) {
        const char *base = (const char *)p + o->off;
        fprintf(f, "# %s\n%s = ", o->help, o->key);
        switch (o->type) {
        case T_INT:
            fprintf(f, "%d", *(const int *)(const void *)base);
            break;
        case T_BOOL:
            fprintf(f, "%s", *(const bool *)(const void *)base ? "yes" : "no");
            break;
        case T_STR:
            fprintf(f, "%s", base);
            break;
        case T_SPECIAL:
            if (!strcmp(o->key, "key_usage"))
                write_bits(f, ku_names, p->key_usage);
            else if (!strcmp(o->key, "key_algorithms"))
                write_bits(f, alg_names, p->algs);
            else if (!strcmp(o->key, "san_types"))
                write_bits(f, san_names, p->san_types);
            else if (!strcmp(o->key, "extended_key_usage"))
                for (int i = 0; i < p->n_eku; i++)
                    fprintf(f, "%s%s", i ? ", " : "", OBJ_nid2sn(p->eku_nids[i]));
            else if (!strcmp(o->key, "subject_copy"))
                for (int i = 0; i < p->n_copy; i++)
                    fprintf(f, "%s%s", i ? ", " : "", OBJ_nid2sn(p->copy_nids[i]));
            else if (!strcmp(o->key, "subject_force"))
                for (int i = 0; i < p->n_force; i++)
                    fprintf(f, "%s%s=%s", i ? ", " : "", OBJ_nid2sn(p->force[i].nid),
                            p->force[i].value);
            else if (!strcmp(o->key, "requested_extensions"))
                fprintf(f, "%s", reqext_names[p->requested_extensions]);
            break;
        }
        fputc('\n', f);
    }
    fputc('\n', f);
}
