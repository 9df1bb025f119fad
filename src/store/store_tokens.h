/*
 * store_tokens.h - enrollment tokens (HTTP Basic credentials, RFC 7030
 * 3.2.3), each of one project (part of the store interface, see store.h).
 * Only a hash of the secret is stored.
 */
#ifndef FP_STORE_TOKENS_H
#define FP_STORE_TOKENS_H

#include <stdint.h>

#include "../common/err.h"
#include "store_audit.h"
#include "store_projects.h"

#define FP_TOKEN_ID_MAX 33
#define FP_TOKEN_HASH_LEN 32 /* SHA-256 of the secret; the secret is never stored */

typedef struct fp_token_rec {
    char id[FP_TOKEN_ID_MAX];
    char project[FP_PROJECT_MAX]; /* required on put; must exist */
    char label[64];
    unsigned char hash[FP_TOKEN_HASH_LEN];
    char cn_pattern[128]; /* fnmatch pattern the CSR CN must match; "" any */
    int uses_left;
    int64_t expires_at; /* 0: never */
    int64_t created_at;
} fp_token_rec;

/* Store a new token: FP_ERR_DUPLICATE if the id exists (in any project:
 * ids are unique across the store), FP_ERR_NOT_FOUND if its project does
 * not exist, FP_ERR_ARG for a malformed project name. */
int fp_store_token_put(fp_store *s, const fp_token_rec *t, const fp_audit_event *ev,
                       fp_error *err);
/* Look token id of project up; FP_ERR_NOT_FOUND if absent or of another
 * project (exactly as if absent). */
int fp_store_token_get(fp_store *s, const char *project, const char *id,
                       fp_token_rec *out, fp_error *err);
/* Spend one use of token id of project atomically: FP_ERR_STATE when it is
 * used up or expired at now, FP_ERR_NOT_FOUND if absent or of another
 * project.  Audited with ev.  To pay for a certificate use
 * fp_store_cert_insert_spend instead: a use spent here is not given back if
 * the certificate then fails to be stored. */
int fp_store_token_use(fp_store *s, const char *project, const char *id, int64_t now,
                       const fp_audit_event *ev, fp_error *err);

#endif
