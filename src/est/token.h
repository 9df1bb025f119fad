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

/* ---- CN patterns (`token create --cn`, docs/policy.md) ----
 *
 * A small language of its own, not fnmatch(3), whose '*' crosses '/' and
 * matches any byte:
 *   '*'  one or more characters from [A-Za-z0-9._-]
 *   '?'  exactly one character from [A-Za-z0-9._-]
 *   any other printable ASCII character (space included) matches itself,
 *        case-sensitively, except '[', ']' and '\\', reserved.
 * So "sensor-*" matches "sensor-17" and "sensor-a.b", never "sensor-",
 * "sensor-/../x", "sensor-\n" or anything with a non-ASCII character. */
#define FP_TOKEN_PATTERN_MAX 128 /* including the NUL, as fp_token_rec.cn_pattern */
#define FP_TOKEN_CN_MAX 256      /* longer CNs never match */

/* FP_ERR_OK when pattern is non-empty, shorter than FP_TOKEN_PATTERN_MAX
 * and uses the language above; else FP_ERR_ARG naming the problem. */
int fp_token_pattern_check(const char *pattern, fp_error *err);

/* Does cn match pattern?  A pattern that fp_token_pattern_check refuses
 * (a stored one from an older release, say) matches nothing. */
bool fp_token_cn_match(const char *pattern, const char *cn);

/* The same language with some positions taken literally: where lit[i] is
 * true, pattern[i] matches only itself, even a '*' or '?'.  For patterns
 * that embed a value taken from a certificate ([est] cert_identity_pattern
 * with {cn} / {serialnumber}).  The other positions must follow the
 * language; the pattern is shorter than FP_TOKEN_TEMPLATE_MAX. */
#define FP_TOKEN_TEMPLATE_MAX 1024
bool fp_token_cn_match_lit(const char *pattern, const bool *lit, const char *cn);

#endif
