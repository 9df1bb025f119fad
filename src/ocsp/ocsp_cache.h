/*
 * ocsp_cache.h - bounded cache of pre-signed OCSP responses (private to
 * src/ocsp).
 *
 * Set-associative: a serial hashes to one set of WAYS slots; all the
 * (CA, hash algorithm) variants of one serial land in the same set, so
 * invalidating a serial touches one set.  A full set evicts its least
 * recently used slot.  Sets are guarded by striped mutexes.
 *
 * Race rule (no stale insert): a responder reads the epoch before it reads
 * a status from the store and passes it to _put; invalidation bumps the
 * epoch BEFORE clearing slots, and _put refuses (under the set lock) when
 * the epoch moved.  So a response built from a status read before a change
 * either is refused or was inserted before the clearing, which removes it.
 */
#ifndef FP_OCSP_CACHE_H
#define FP_OCSP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ocsp_cache ocsp_cache;

typedef struct ocsp_cache_meta {
    int cert_status;
    int64_t this_update, next_update, produced_at, refresh_at;
    char etag[36];
} ocsp_cache_meta;

ocsp_cache *ocsp_cache_new(int entries);
void ocsp_cache_free(ocsp_cache *c);

uint64_t ocsp_cache_epoch(ocsp_cache *c);

/* Copy the response for (ca, alg, serial) into a malloc'd *der if present
 * and now < refresh_at; true on a hit. */
bool ocsp_cache_get(ocsp_cache *c, int ca, int alg, const char *serial, int64_t now,
                    unsigned char **der, size_t *len, ocsp_cache_meta *meta);

/* Store a copy of der unless the epoch moved since `epoch` was read. */
void ocsp_cache_put(ocsp_cache *c, uint64_t epoch, int ca, int alg, const char *serial,
                    const unsigned char *der, size_t len, const ocsp_cache_meta *meta);

void ocsp_cache_invalidate(ocsp_cache *c, const char *serial);
void ocsp_cache_flush(ocsp_cache *c);

void ocsp_cache_stats(ocsp_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *inserts,
                      uint64_t *invalidations, long *entries);

#endif
