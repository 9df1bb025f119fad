/*
 * profile.h - certificate profiles: what a CA will put into a certificate
 * and which requests it accepts.  A profile is plain data (built-in ones
 * and the config's [profile NAME] sections: profile.c); policy.c checks
 * CSRs against it and build.c builds certificates from it.
 */
#ifndef FP_PROFILE_H
#define FP_PROFILE_H

#include <stdbool.h>
#include <stdio.h>

#include "../common/err.h"

#define FP_PROFILE_NAME_MAX 64
#define FP_PROFILE_MAX_EKU 8
#define FP_PROFILE_MAX_RDN 12
#define FP_PROFILE_PATTERN_MAX 128
#define FP_PROFILE_VALUE_MAX 128

/* Key algorithms a profile may allow (bit set). */
enum {
    FP_ALG_RSA = 1u << 0,
    FP_ALG_P256 = 1u << 1,
    FP_ALG_P384 = 1u << 2,
    FP_ALG_P521 = 1u << 3,
    FP_ALG_ED25519 = 1u << 4,
};

/* SAN types a profile may allow (bit set). */
enum {
    FP_SAN_DNS = 1u << 0,
    FP_SAN_IP = 1u << 1,
    FP_SAN_URI = 1u << 2,
    FP_SAN_EMAIL = 1u << 3,
};

/* What to do with extensions the CSR requests beyond subjectAltName. */
typedef enum {
    FP_REQEXT_IGNORE = 0, /* drop them silently (default) */
    FP_REQEXT_HONOUR,     /* narrow keyUsage/EKU to the requested subset */
    FP_REQEXT_REJECT,     /* refuse a CSR that carries any of them */
} fp_reqext_mode;

typedef struct fp_rdn_force {
    int nid;
    char value[FP_PROFILE_VALUE_MAX];
} fp_rdn_force;

typedef struct fp_profile {
    char name[FP_PROFILE_NAME_MAX];
    int validity_days;     /* default lifetime */
    int max_validity_days; /* upper bound for --days / requests */
    int backdate_seconds;  /* notBefore = now - this, for clock skew */
    unsigned key_usage;    /* X509v3 KU_* bits, always critical */
    int eku_nids[FP_PROFILE_MAX_EKU];
    int n_eku;
    bool is_ca;   /* sub-CA profile: CA:TRUE, pathLen below */
    int path_len; /* -1 = no pathLenConstraint */
    bool ocsp_nocheck;
    unsigned algs; /* FP_ALG_* */
    int rsa_min_bits, rsa_max_bits;
    char cn_pattern[FP_PROFILE_PATTERN_MAX]; /* fnmatch(3) pattern */
    bool cn_required;
    bool allow_bidi; /* accept Unicode bidi controls in subject values (default no) */
    int copy_nids[FP_PROFILE_MAX_RDN]; /* RDN types copied from the CSR */
    int n_copy;
    fp_rdn_force force[FP_PROFILE_MAX_RDN]; /* RDNs set regardless of CSR */
    int n_force;
    unsigned san_types; /* FP_SAN_*: which SAN types may be requested */
    int max_sans;
    bool san_required;
    char dns_pattern[FP_PROFILE_PATTERN_MAX]; /* each DNS SAN must match */
    fp_reqext_mode requested_extensions;
} fp_profile;

/* Names of the built-in profiles, NULL-terminated. */
extern const char *const fp_builtin_profiles[];

/* Fill p with the built-in defaults of name.  Unknown names get a
 * conservative client-certificate base so a custom profile only lists what
 * it changes.  Returns FP_ERR_OK. */
int fp_profile_defaults(const char *name, fp_profile *p);

/* Apply one "key = value" from a [profile NAME] section. */
int fp_profile_set(fp_profile *p, const char *key, const char *value,
                   fp_error *err);

/* Check cross-field consistency (min <= max, CA fields) after parsing. */
int fp_profile_validate(const fp_profile *p, fp_error *err);

/* Write p as a "[profile NAME]" section that fp_profile_set reads back. */
void fp_profile_write(const fp_profile *p, FILE *f);

#endif
