/*
 * mq_hash.c - a chained hash map over byte-string keys, for the plugin's
 * devices, revoked serials and sessions.  Keys are copied into the node;
 * values are the caller's.  FNV-1a keyed with a per-process random seed,
 * so that certificate names chosen by a device cannot be picked to pile
 * into one bucket predictably.  Grows at load factor 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "mq.h"

struct mq_hnode {
    mq_hnode *next;
    uint64_t h;
    void *val;
    size_t klen;
    unsigned char key[];
};

static uint64_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void)
{
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        seed = 0x9e3779b97f4a7c15ULL;
}

static uint64_t hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h;

    pthread_once(&seed_once, seed_init);
    h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static mq_hnode **find(const mq_hash *t, const void *key, size_t klen, uint64_t h)
{
    mq_hnode **pp;

    if (t->nb == 0)
        return NULL;
    for (pp = &t->b[h & (t->nb - 1)]; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->h == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            return pp;
    return NULL;
}

void *mq_hash_get(const mq_hash *t, const void *key, size_t klen)
{
    mq_hnode **pp = find(t, key, klen, hash(key, klen));
    return pp ? (*pp)->val : NULL;
}

static int grow(mq_hash *t)
{
    size_t nb = t->nb ? t->nb * 2 : 64;
    mq_hnode **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return -1;
    for (size_t i = 0; i < t->nb; i++) {
        mq_hnode *n = t->b[i], *next;
        for (; n != NULL; n = next) {
            next = n->next;
            n->next = b[n->h & (nb - 1)];
            b[n->h & (nb - 1)] = n;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

int mq_hash_put(mq_hash *t, const void *key, size_t klen, void *val)
{
    uint64_t h = hash(key, klen);
    mq_hnode **pp = find(t, key, klen, h), *n;

    if (pp != NULL) {
        (*pp)->val = val;
        return 0;
    }
    if (t->n >= t->nb && grow(t) != 0)
        return -1;
    if ((n = malloc(sizeof(*n) + klen)) == NULL)
        return -1;
    n->h = h;
    n->val = val;
    n->klen = klen;
    memcpy(n->key, key, klen);
    n->next = t->b[h & (t->nb - 1)];
    t->b[h & (t->nb - 1)] = n;
    t->n++;
    return 0;
}

void *mq_hash_del(mq_hash *t, const void *key, size_t klen)
{
    mq_hnode **pp = find(t, key, klen, hash(key, klen)), *n;
    void *val;

    if (pp == NULL)
        return NULL;
    n = *pp;
    *pp = n->next;
    val = n->val;
    free(n);
    t->n--;
    return val;
}

void mq_hash_clear(mq_hash *t, void (*fn)(void *))
{
    for (size_t i = 0; i < t->nb; i++) {
        mq_hnode *n = t->b[i], *next;
        for (; n != NULL; n = next) {
            next = n->next;
            if (fn != NULL)
                fn(n->val);
            free(n);
        }
    }
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

void mq_hash_each(const mq_hash *t, void (*fn)(void *arg, void *val), void *arg)
{
    for (size_t i = 0; i < t->nb; i++)
        for (mq_hnode *n = t->b[i]; n != NULL; n = n->next)
            fn(arg, n->val);
}
