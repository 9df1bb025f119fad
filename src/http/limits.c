/*
 * limits.c - see limits.h.  Open addressing with linear probing and
 * backward-shift deletion (no tombstones, so the table never degrades),
 * twice as many slots as connections can exist; one mutex (taken once per
 * accepted and per closed connection, never per request).
 */
#include "limits.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    unsigned long count; /* 0: empty */
    unsigned char addr[16];
} slot;

struct fp_addr_count {
    pthread_mutex_t mu;
    size_t mask;
    size_t used;
    slot *s;
};

static size_t addr_hash(const unsigned char a[16])
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 16; i++) {
        h ^= a[i];
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

fp_addr_count *fp_addr_count_new(size_t max_conns)
{
    fp_addr_count *t = calloc(1, sizeof(*t));
    size_t n = 64;
    if (t == NULL)
        return NULL;
    while (n < 2 * max_conns)
        n <<= 1;
    t->s = calloc(n, sizeof(*t->s));
    if (t->s == NULL) {
        free(t);
        return NULL;
    }
    t->mask = n - 1;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void fp_addr_count_free(fp_addr_count *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->s);
    free(t);
}

unsigned long fp_addr_count_inc(fp_addr_count *t, const unsigned char addr[16])
{
    unsigned long n = 0;
    size_t i = addr_hash(addr) & t->mask;

    pthread_mutex_lock(&t->mu);
    for (;;) {
        slot *s = &t->s[i];
        if (s->count == 0) {
            if (t->used + 1 > t->mask) /* keep one slot empty: probes end */
                break;
            memcpy(s->addr, addr, 16);
            s->count = n = 1;
            t->used++;
            break;
        }
        if (memcmp(s->addr, addr, 16) == 0) {
            n = ++s->count;
            break;
        }
        i = (i + 1) & t->mask;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

unsigned long fp_addr_count_get(fp_addr_count *t, const unsigned char addr[16])
{
    size_t i = addr_hash(addr) & t->mask;
    unsigned long n;

    pthread_mutex_lock(&t->mu);
    while (t->s[i].count != 0 && memcmp(t->s[i].addr, addr, 16) != 0)
        i = (i + 1) & t->mask;
    n = t->s[i].count;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void fp_addr_count_dec(fp_addr_count *t, const unsigned char addr[16])
{
    size_t i = addr_hash(addr) & t->mask, j;

    pthread_mutex_lock(&t->mu);
    while (t->s[i].count != 0 && memcmp(t->s[i].addr, addr, 16) != 0)
        i = (i + 1) & t->mask;
    if (t->s[i].count == 0 || --t->s[i].count > 0) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    /* remove slot i: shift back later entries of the same probe run */
    t->used--;
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & t->mask;
        if (t->s[j].count == 0)
            break;
        home = addr_hash(t->s[j].addr) & t->mask;
        /* move j to i unless its home lies cyclically in (i, j] */
        if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
            t->s[i] = t->s[j];
            i = j;
        }
    }
    t->s[i].count = 0;
    pthread_mutex_unlock(&t->mu);
}
