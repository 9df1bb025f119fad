/*
 * store_apikeys.h - API keys of the admin REST API (part of the store
 * interface, see store.h), and the token calls the API needs (list,
 * delete).  A key is an id plus a 256-bit random secret shown once; only
 * SHA-256 of the secret is stored.  A key is of one project (it sees
 * nothing else) or an admin key (project "": every project).
 */
#ifndef FP_STORE_APIKEYS_H
#define FP_STORE_APIKEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/err.h"
#include "store_audit.h"
#include "store_projects.h"
#include "store_tokens.h"

#define FP_APIKEY_ID_MAX 33
#define FP_APIKEY_HASH_LEN 32

typedef struct fp_apikey_rec {
    char id[FP_APIKEY_ID_MAX];
    char project[FP_PROJECT_MAX]; /* "" : admin key (all projects) */
    bool read_only;
    unsigned char hash[FP_APIKEY_HASH_LEN];
    int64_t created_at;
    int64_t revoked_at; /* 0: not revoked */
} fp_apikey_rec;

typedef int (*fp_apikey_cb)(void *arg, const fp_apikey_rec *r);

/* Store a new key: FP_ERR_DUPLICATE if the id exists, FP_ERR_NOT_FOUND if
 * its project does not exist, FP_ERR_ARG for a malformed project name. */
int fp_store_apikey_put(fp_store *s, const fp_apikey_rec *k, const fp_audit_event *ev,
                        fp_error *err);
/* Key id (revoked ones too: the caller checks revoked_at);
 * FP_ERR_NOT_FOUND if absent. */
int fp_store_apikey_get(fp_store *s, const char *id, fp_apikey_rec *out, fp_error *err);
/* Every key in id order; project non-NULL: only that project's keys. */
int fp_store_apikey_list(fp_store *s, const char *project, fp_apikey_cb cb, void *arg,
                         fp_error *err);
/* Revoke key id at when: FP_ERR_NOT_FOUND if absent, FP_ERR_STATE if
 * revoked already.  Audited with ev. */
int fp_store_apikey_revoke(fp_store *s, const char *id, int64_t when,
                           const fp_audit_event *ev, fp_error *err);

typedef int (*fp_token_cb)(void *arg, const fp_token_rec *t);
/* Tokens of project in id order (hash fields included). */
int fp_store_token_list(fp_store *s, const char *project, fp_token_cb cb, void *arg,
                        fp_error *err);
/* Delete token id of project: FP_ERR_NOT_FOUND if absent or of another
 * project (exactly as if absent).  Audited with ev. */
int fp_store_token_delete(fp_store *s, const char *project, const char *id,
                          const fp_audit_event *ev, fp_error *err);

#endif
