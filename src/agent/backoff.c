/*
 * backoff.c - retry schedule: exponential backoff with FULL jitter.  The
 * n-th consecutive failure waits a uniformly random time in
 * [0, min(cap, base * 2^n)].  Full jitter (not "base * 2^n plus a little")
 * is what spreads a fleet that lost its server at the same moment: after
 * an outage the devices come back at independent random times instead of
 * in synchronised waves (a fleet must not stampede the server).
 */
#define _GNU_SOURCE
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"

void fpa_backoff_init(fpa_backoff *b, unsigned base_ms, unsigned cap_ms)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
    b->attempt = 0;
}

uint64_t fpa_backoff_ceiling(const fpa_backoff *b)
{
    uint64_t c = b->base_ms;
    for (unsigned i = 0; i < b->attempt && c < b->cap_ms; i++)
        c *= 2; /* base <= 2^32 and stops at cap <= 2^32: no overflow */
    return c < b->cap_ms ? c : b->cap_ms;
}

static uint64_t sys_rand(void *ctx)
{
    uint64_t v = 0;
    (void)ctx;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        /* no entropy source: still spread, if less well */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)rand() << 32);
    }
    return v;
}

uint64_t fpa_uniform(uint64_t bound, fpa_rand_fn rnd, void *ctx)
{
    uint64_t n, limit, v;

    if (rnd == NULL)
        rnd = sys_rand;
    if (bound == UINT64_MAX)
        return rnd(ctx);
    n = bound + 1;
    /* reject the top partial block so every value is equally likely */
    limit = UINT64_MAX - (UINT64_MAX % n);
    do
        v = rnd(ctx);
    while (v >= limit);
    return v % n;
}

uint64_t fpa_backoff_next(fpa_backoff *b, fpa_rand_fn rnd, void *ctx)
{
    uint64_t d = fpa_uniform(fpa_backoff_ceiling(b), rnd, ctx);
    if (b->attempt < 64)
        b->attempt++;
    return d;
}

void fpa_backoff_reset(fpa_backoff *b)
{
    b->attempt = 0;
}
