/*
 * ratelimit.h - keyed token buckets in bounded memory, thread-safe.
 *
 * Each key (a client address, "cert:<serial>", "token:<id>") gets a
 * bucket of `burst` tokens refilled at `rate` tokens per second; a request
 * takes one.  The table holds at most max_keys buckets, allocated once:
 * an attacker who sends many distinct keys cannot grow memory, he can
 * only push out buckets that were idle longest (a pushed-out key starts
 * again with a full bucket, which is the price of the bound).
 */
#ifndef FP_RATELIMIT_H
#define FP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct fp_ratelimit fp_ratelimit;

/* rate > 0 tokens per second, burst >= 1, max_keys >= 16 (rounded up to a
 * power of two).  FP_ERR_ARG on a bad parameter, FP_ERR_NOMEM. */
int fp_ratelimit_new(double rate, double burst, size_t max_keys, fp_ratelimit **out,
                     fp_error *err);
void fp_ratelimit_free(fp_ratelimit *rl);

/* Take one token from key's bucket at time now_ns (monotonic).  true:
 * allowed.  false: over the limit, and *retry_after (if not NULL) is the
 * whole number of seconds (>= 1) until a token is back.  Keys longer than
 * FP_RATELIMIT_KEY_MAX - 1 bytes are compared on their first bytes plus a
 * hash of the whole. */
bool fp_ratelimit_take(fp_ratelimit *rl, const char *key, size_t keylen, int64_t now_ns,
                       int *retry_after);

/* Buckets in use (for tests). */
size_t fp_ratelimit_count(fp_ratelimit *rl);

#define FP_RATELIMIT_KEY_MAX 48

#endif
