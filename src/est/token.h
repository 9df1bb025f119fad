/*
 * token.h - one-time EST enrollment tokens (HTTP Basic, RFC 7030 3.2.3).
 *
 * A token is an id (16 hex characters, the Basic user name) and a secret
 * (256 random bits, base64url without padding, the Basic password).  The
 * store keeps SHA-256(secret) only: the secret has full entropy, so a
 * plain hash cannot be brute-forced and needs no salt or KDF.
 */
#ifndef FP_TOKEN_H
#define FP_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "../store/store.h"

#define FP_TOKEN_SECRET_MAX 64 /* 43 characters + NUL, with room */

/* Fresh id and secret, and the hash to store. */
int fp_token_generate(char id[FP_TOKEN_ID_MAX], char secret[FP_TOKEN_SECRET_MAX],
                      unsigned char hash[FP_TOKEN_HASH_LEN], fp_error *err);

/* SHA-256 of the secret as presented. */
int fp_token_hash(const char *secret, size_t len, unsigned char hash[FP_TOKEN_HASH_LEN]);

/* Does secret match t's stored hash?  Constant time in the hash. */
bool fp_token_matches(const fp_token_rec *t, const char *secret, size_t len);

#endif
