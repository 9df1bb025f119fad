/* ocsp_cache.c - bounded pre-signed response cache; see ocsp_cache.h. */
#define _POSIX_C_SOURCE 200809L
#include "ocsp_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4
#define STRIPES 256
#define SERIAL_MAX 41

typedef struct {
    bool used;
    int ca, alg;
    char serial[SERIAL_MAX];
    uint64_t last_use;
    unsigned char *der;
    size_t len;
    ocsp_cache_meta meta;
} slot;

struct ocsp_cache {
    size_t n_sets;
    slot *slots; /* n_sets * WAYS */
    pthread_mutex_t locks[STRIPES];
    atomic_uint_fast64_t epoch, tick;
    atomic_uint_fast64_t hits, misses, inserts, invalidations;
    atomic_long entries;
};

static uint64_t hash_serial(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

ocsp_cache *ocsp_cache_new(int entries)
{
    ocsp_cache *c = calloc(1, sizeof(*c));
    size_t sets = entries > WAYS ? (size_t)entries / WAYS : 1;

    if (c == NULL)
        return NULL;
    c->n_sets = sets;
    c->slots = calloc(sets * WAYS, sizeof(slot));
    if (c->slots == NULL) {
        free(c);
        return NULL;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    return c;
}

static void slot_clear(ocsp_cache *c, slot *s)
{
    if (!s->used)
        return;
    free(s->der);
    memset(s, 0, sizeof(*s));
    atomic_fetch_sub(&c->entries, 1);
}

void ocsp_cache_free(ocsp_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_sets * WAYS; i++)
        free(c->slots[i].der);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    free(c->slots);
    free(c);
}

uint64_t ocsp_cache_epoch(ocsp_cache *c)
{
    return atomic_load(&c->epoch);
}

static slot *set_of(ocsp_cache *c, const char *serial, pthread_mutex_t **lock)
{
    size_t set = (size_t)(hash_serial(serial) % c->n_sets);
    *lock = &c->locks[set % STRIPES];
    return &c->slots[set * WAYS];
}

bool ocsp_cache_get(ocsp_cache *c, int ca, int alg, const char *serial, int64_t now,
                    unsigned char **der, size_t *len, ocsp_cache_meta *meta)
{
    pthread_mutex_t *lock;
    slot *set = set_of(c, serial, &lock);
    bool hit = false;

    *der = NULL;
    *len = 0;
    pthread_mutex_lock(lock);
    for (int w = 0; w < WAYS; w++) {
        slot *s = &set[w];
        if (!s->used || s->ca != ca || s->alg != alg || strcmp(s->serial, serial) != 0)
            continue;
        if (now >= s->meta.refresh_at) {
            slot_clear(c, s); /* stale: the caller signs a fresh one */
            break;
        }
        *der = malloc(s->len);
        if (*der != NULL) {
            memcpy(*der, s->der, s->len);
            *len = s->len;
            *meta = s->meta;
            s->last_use = atomic_fetch_add(&c->tick, 1);
            hit = true;
        }
        break;
    }
    pthread_mutex_unlock(lock);
    atomic_fetch_add(hit ? &c->hits : &c->misses, 1);
    return hit;
}

void ocsp_cache_put(ocsp_cache *c, uint64_t epoch, int ca, int alg, const char *serial,
                    const unsigned char *der, size_t len, const ocsp_cache_meta *meta)
{
    pthread_mutex_t *lock;
    slot *set = set_of(c, serial, &lock), *victim = NULL;
    unsigned char *copy;

    if (strlen(serial) >= SERIAL_MAX || (copy = malloc(len)) == NULL)
        return;
    memcpy(copy, der, len);
    pthread_mutex_lock(lock);
    if (atomic_load(&c->epoch) != epoch) {
        /* a status changed while this response was being built */
        pthread_mutex_unlock(lock);
        free(copy);
        return;
    }
    for (int w = 0; w < WAYS; w++) {
        slot *s = &set[w];
        if (s->used && s->ca == ca && s->alg == alg && !strcmp(s->serial, serial)) {
            victim = s; /* another thread got there first: replace */
            break;
        }
        if (victim == NULL || !s->used || (victim->used && s->last_use < victim->last_use))
            victim = s;
    }
    slot_clear(c, victim);
    victim->used = true;
    victim->ca = ca;
    victim->alg = alg;
    snprintf(victim->serial, sizeof(victim->serial), "%s", serial);
    victim->der = copy;
    victim->len = len;
    victim->meta = *meta;
    victim->last_use = atomic_fetch_add(&c->tick, 1);
    atomic_fetch_add(&c->entries, 1);
    pthread_mutex_unlock(lock);
    atomic_fetch_add(&c->inserts, 1);
}

void ocsp_cache_invalidate(ocsp_cache *c, const char *serial)
{
    pthread_mutex_t *lock;
    slot *set = set_of(c, serial, &lock);

    atomic_fetch_add(&c->epoch, 1); /* before clearing: see the race rule */
    pthread_mutex_lock(lock);
    for (int w = 0; w < WAYS; w++)
        if (set[w].used && !strcmp(set[w].serial, serial))
            slot_clear(c, &set[w]);
    pthread_mutex_unlock(lock);
    atomic_fetch_add(&c->invalidations, 1);
}

void ocsp_cache_flush(ocsp_cache *c)
{
    atomic_fetch_add(&c->epoch, 1);
    for (size_t set = 0; set < c->n_sets; set++) {
        pthread_mutex_t *lock = &c->locks[set % STRIPES];
        pthread_mutex_lock(lock);
        for (int w = 0; w < WAYS; w++)
            slot_clear(c, &c->slots[set * WAYS + w]);
        pthread_mutex_unlock(lock);
    }
    atomic_fetch_add(&c->invalidations, 1);
}

void ocsp_cache_stats(ocsp_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *inserts,
                      uint64_t *invalidations, long *entries)
{
    *hits = atomic_load(&c->hits);
    *misses = atomic_load(&c->misses);
    *inserts = atomic_load(&c->inserts);
    *invalidations = atomic_load(&c->invalidations);
    *entries = atomic_load(&c->entries);
}
