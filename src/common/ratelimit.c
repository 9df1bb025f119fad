/*
 * ratelimit.c - see ratelimit.h.
 *
 * Layout: one array of buckets, a power of two long, split into stripes
 * of STRIPE_SLOTS slots with a mutex each (contention spreads over the
 * stripes).  A key hashes to a stripe and a start slot in it and probes
 * at most PROBE slots; if none holds the key, it takes an empty slot or
 * else evicts the probed bucket used longest ago.  So lookups cost O(1)
 * and the table never grows.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STRIPE_SLOTS 256
#define PROBE 8

typedef struct bucket {
    uint64_t hash;    /* 0: empty */
    int64_t last_ns;  /* last refill */
    double tokens;
    unsigned char klen;
    char key[FP_RATELIMIT_KEY_MAX];
} bucket;

struct fp_ratelimit {
    double rate, burst;
    size_t nslots, nstripes;
    bucket *slots;
    pthread_mutex_t *mu;
};

/* FNV-1a, 64 bit; never 0 (0 marks an empty slot). */
static uint64_t key_hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

int fp_ratelimit_new(double rate, double burst, size_t max_keys, fp_ratelimit **out,
                     fp_error *err)
{
    fp_ratelimit *rl;
    size_t n = STRIPE_SLOTS;

    *out = NULL;
    if (!(rate > 0) || !(burst >= 1) || max_keys < 16 || max_keys > ((size_t)1 << 26))
        return fp_err_set(err, FP_ERR_ARG, "rate limit: bad parameters");
    while (n < max_keys)
        n <<= 1;
    rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    rl->rate = rate;
    rl->burst = burst;
    rl->nslots = n;
    rl->nstripes = n / STRIPE_SLOTS;
    rl->slots = calloc(n, sizeof(*rl->slots));
    rl->mu = calloc(rl->nstripes, sizeof(*rl->mu));
    if (rl->slots == NULL || rl->mu == NULL) {
        fp_ratelimit_free(rl);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    for (size_t i = 0; i < rl->nstripes; i++)
        pthread_mutex_init(&rl->mu[i], NULL);
    *out = rl;
    return FP_ERR_OK;
}

void fp_ratelimit_free(fp_ratelimit *rl)
{
    if (rl == NULL)
        return;
    if (rl->mu != NULL)
        for (size_t i = 0; i < rl->nstripes; i++)
            pthread_mutex_destroy(&rl->mu[i]);
    free(rl->mu);
    free(rl->slots);
    free(rl);
}

static bool same_key(const bucket *b, uint64_t h, const char *key, size_t klen)
{
    return b->hash == h && b->klen == klen && memcmp(b->key, key, klen) == 0;
}

bool fp_ratelimit_take(fp_ratelimit *rl, const char *key, size_t keylen, int64_t now_ns,
                       int *retry_after)
{
    uint64_t h = key_hash(key, keylen);
    size_t klen = keylen < FP_RATELIMIT_KEY_MAX ? keylen : FP_RATELIMIT_KEY_MAX;
    size_t stripe = (size_t)(h >> 40) % rl->nstripes;
    size_t base = stripe * STRIPE_SLOTS, start = (size_t)h % STRIPE_SLOTS;
    bucket *b = NULL, *victim = NULL;
    bool ok;

    pthread_mutex_lock(&rl->mu[stripe]);
    for (size_t i = 0; i < PROBE; i++) {
        bucket *c = &rl->slots[base + (start + i) % STRIPE_SLOTS];
        if (same_key(c, h, key, klen)) {
            b = c;
            break;
        }
        if (victim == NULL || victim->hash != 0) {
            /* prefer an empty slot, else the bucket idle longest */
            if (c->hash == 0 || victim == NULL || c->last_ns < victim->last_ns)
                victim = c;
        }
    }
    if (b == NULL) {
        b = victim;
        b->hash = h;
        b->klen = (unsigned char)klen;
        memcpy(b->key, key, klen);
        b->tokens = rl->burst;
        b->last_ns = now_ns;
    } else if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) / 1e9 * rl->rate;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ns = now_ns;
    }
    ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else if (retry_after != NULL) {
        double s = (1.0 - b->tokens) / rl->rate; /* seconds, rounded up */
        int whole = s > 86400 ? 86400 : (int)s;
        if (whole < s)
            whole++;
        *retry_after = whole < 1 ? 1 : whole;
    }
    pthread_mutex_unlock(&rl->mu[stripe]);
    return ok;
}

size_t fp_ratelimit_count(fp_ratelimit *rl)
{
    size_t n = 0;
    for (size_t s = 0; s < rl->nstripes; s++) {
        pthread_mutex_lock(&rl->mu[s]);
        for (size_t i = 0; i < STRIPE_SLOTS; i++)
            n += rl->slots[s * STRIPE_SLOTS + i].hash != 0;
        pthread_mutex_unlock(&rl->mu[s]);
    }
    return n;
}
