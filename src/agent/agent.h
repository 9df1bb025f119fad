/*
 * agent.h - fleetpki-agent internals: configuration, the retry schedule,
 * the renewal time, root rollover, logging and one renewal cycle.  The
 * agent drives libfleetpki-device through its public API only
 * (include/fleetpki/device.h); see docs/agent.md.
 */
#ifndef FPA_AGENT_H
#define FPA_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "fleetpki/device.h"

/* Exit codes (docs/agent.md). */
enum {
    FPA_EXIT_OK = 0,      /* credentials present and fresh (or just obtained) */
    FPA_EXIT_RETRY = 1,   /* transient failure (network, 5xx, held): try again later */
    FPA_EXIT_CONFIG = 2,  /* usage or configuration error */
    FPA_EXIT_REFUSED = 3, /* server untrusted or bootstrap credential refused: operator needed */
    FPA_EXIT_STORE = 4    /* the credential directory cannot be used */
};

#define FPA_PATH_MAX 1024
#define FPA_ERR_MAX 512

typedef struct {
    char host[254];
    unsigned port;
    char label[65];
    char trust_anchor[FPA_PATH_MAX]; /* PEM file, or "" with a fingerprint */
    unsigned char fingerprint[32];
    int has_fingerprint;
    char cred_dir[FPA_PATH_MAX];
    char bootstrap_cert[FPA_PATH_MAX], bootstrap_key[FPA_PATH_MAX];
    char bootstrap_token_file[FPA_PATH_MAX]; /* one line "ID:SECRET" */
    char common_name[254], dns_name[254], serial_number[65];
    fp_device_key_type key_type;
    int use_csrattrs;
    double renew_at; /* fraction of the lifetime, (0, 1) */
    int rekey;
    unsigned backoff_base_ms, backoff_cap_ms;
    unsigned check_interval; /* seconds between checks when nothing is due */
    unsigned retry_after_max; /* seconds: a longer Retry-After is clamped */
    unsigned timeout;         /* seconds per network read/write/connect */
} fpa_config;

/* Parses a config text (name used in messages).  Strict: unknown or
 * repeated keys, empty or out-of-range values and missing required keys
 * are errors; err gets "NAME:LINE: key 'K': what" (or "NAME: ..." for
 * whole-file checks).  Returns 0 or -1. */
int fpa_config_parse(const char *name, const char *text, fpa_config *cfg, char *err, size_t errsz);
/* Reads and parses a file; -1 with err set. */
int fpa_config_load(const char *path, fpa_config *cfg, char *err, size_t errsz);

/* Exponential backoff with full jitter: the n-th consecutive failure
 * (n from 0) waits a uniformly random time in [0, min(cap, base * 2^n)]. */
typedef struct {
    unsigned base_ms, cap_ms;
    unsigned attempt; /* consecutive failures so far */
} fpa_backoff;

typedef uint64_t (*fpa_rand_fn)(void *ctx);
void fpa_backoff_init(fpa_backoff *b, unsigned base_ms, unsigned cap_ms);
/* min(cap, base * 2^attempt), without overflow */
uint64_t fpa_backoff_ceiling(const fpa_backoff *b);
/* The delay for this failure (rnd: uniform 64-bit values; NULL uses the
 * system's random source), then counts it. */
uint64_t fpa_backoff_next(fpa_backoff *b, fpa_rand_fn rnd, void *ctx);
void fpa_backoff_reset(fpa_backoff *b);
/* Uniform in [0, bound] from rnd (rejection sampling, no modulo bias). */
uint64_t fpa_uniform(uint64_t bound, fpa_rand_fn rnd, void *ctx);

/* When to renew a certificate valid [not_before, not_after]: at fraction
 * of its lifetime.  A lifetime <= 0 gives not_before. */
int64_t fpa_renew_time(int64_t not_before, int64_t not_after, double fraction);

/* Logging: one line per event on stderr: time, level, event, details.
 * fpa_esc quotes a string for a log line, escaping '"', '\\', control
 * and non-ASCII bytes (client- or server-supplied text goes through it). */
typedef enum { FPA_INFO, FPA_WARN, FPA_ERROR } fpa_level;
void fpa_log(fpa_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *fpa_esc(const char *s, char *buf, size_t size);

/* Root rollover decision (RFC 7030 4.1.3, RFC 4210 4.4) over PEM texts:
 * anchors (current trust anchors), received (/cacerts as received).
 * A self-signed CA in received that is not already an anchor is accepted
 * only when linked to a current anchor: its signature verifies with that
 * anchor's key (the root re-issued with the same key), or received holds
 * both NewWithOld (the new key certified by the anchor) and OldWithNew
 * (the anchor's key certified by the new one).  Returns the number of new
 * roots accepted; *out (malloc'd PEM: the accepted roots then the current
 * anchors, expired ones dropped) is set only when that is > 0.  Refused
 * candidates are logged.  -1 on a parse or memory error (msg set). */
int fpa_rollover(const char *anchors, size_t anchors_len, const char *received,
                 size_t received_len, char **out, size_t *out_len, char *msg, size_t msgsz);

/* Serial (hex) and notAfter of the first certificate of a PEM chain, for
 * log lines; "?" when it cannot be read. */
void fpa_cert_brief(const char *pem, size_t len, char *serial, size_t serial_sz);

/* One agent: the client, the credential store and the retry state. */
typedef struct fpa_agent fpa_agent;

typedef struct {
    int exit_code;     /* FPA_EXIT_*: what --once returns */
    uint64_t sleep_ms; /* the daemon's wait before the next cycle */
} fpa_result;

int fpa_agent_new(const fpa_config *cfg, fpa_agent **out);
void fpa_agent_free(fpa_agent *a);
/* One cycle: trust anchors, enrollment or renewal when due, confirm,
 * anchor refresh; every decision logged. */
fpa_result fpa_agent_cycle(fpa_agent *a);

#endif
