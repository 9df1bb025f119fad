/*
 * apikey.h - API key credentials of the admin REST API (docs/api.md).
 *
 * A key is sent as `Authorization: Bearer <id>.<secret>` (RFC 6750 2.1):
 * id is 16 lowercase hex characters (64 random bits, public, the audit
 * actor "api:<id>"), secret 64 lowercase hex characters (256 random bits).
 * Only SHA-256 of the secret is stored (a 256-bit random secret needs no
 * slow hash), compared in constant time.
 */
#ifndef FP_API_APIKEY_H
#define FP_API_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "../store/store.h"

#define FP_APIKEY_ID_LEN 16
#define FP_APIKEY_SECRET_LEN 64
/* "<id>.<secret>" plus NUL */
#define FP_APIKEY_TOKEN_MAX (FP_APIKEY_ID_LEN + 1 + FP_APIKEY_SECRET_LEN + 1)

/* Fresh id, the full bearer token to show once, and the hash to store. */
int fp_apikey_generate(char id[FP_APIKEY_ID_MAX], char token[FP_APIKEY_TOKEN_MAX],
                       unsigned char hash[FP_APIKEY_HASH_LEN], fp_error *err);

/* Split a bearer token into id (copied) and a pointer to the secret inside
 * token; false when it is not of the documented shape. */
bool fp_apikey_parse(const char *token, char id[FP_APIKEY_ID_MAX], const char **secret);

/* Does secret (of the documented shape) match k's stored hash?  The
 * comparison is constant time (CRYPTO_memcmp). */
bool fp_apikey_matches(const fp_apikey_rec *k, const char *secret);

#endif
