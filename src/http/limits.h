/*
 * limits.h - bookkeeping for connection limits (no libevent): how many
 * connections each client address holds, in a table sized once for the
 * connection cap (it cannot fill: every entry is an open connection).
 */
#ifndef FP_HTTP_LIMITS_H
#define FP_HTTP_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fp_addr_count fp_addr_count;

/* A table for at most max_conns simultaneous connections; NULL on OOM. */
fp_addr_count *fp_addr_count_new(size_t max_conns);
void fp_addr_count_free(fp_addr_count *t);

/* One more connection from addr (16 bytes: IPv6, or IPv4-mapped).
 * Returns the address's count including this one, or 0 if the table is
 * full (then nothing was counted).  Thread-safe. */
unsigned long fp_addr_count_inc(fp_addr_count *t, const unsigned char addr[16]);

/* How many connections addr holds now (0 if none).  Thread-safe. */
unsigned long fp_addr_count_get(fp_addr_count *t, const unsigned char addr[16]);

/* One connection from addr closed (it must have been counted). */
void fp_addr_count_dec(fp_addr_count *t, const unsigned char addr[16]);

#endif
