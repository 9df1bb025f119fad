/*
 * checkpoint.h - signed audit checkpoints: the audit chain anchored
 * outside the database.
 *
 * The hash chain (store_audit.h) shows any edit of the audit log, unless
 * whoever edits it also recomputes every later hash and the recorded head:
 * someone who owns the database file can do that.  So the server signs the
 * chain's head (sequence number and hash) with the audit key at an
 * interval and when it stops, and appends each checkpoint as one line to a
 * file outside the database (and, optionally, syslog, which may ship it to
 * another machine):
 *
 *   fleetpki-audit-checkpoint v1 seq=<id> hash=<64 hex> time=<unix> sig=<base64>
 *
 * The signature covers the line up to " sig=".  `fleetpki audit verify
 * --checkpoints FILE` checks every signature with the audit public key and
 * that the chain in the database still has each checkpoint's hash at its
 * sequence number; a consistent rewrite fails at the first checkpoint taken
 * after the rewritten row.
 */
#ifndef FP_CHECKPOINT_H
#define FP_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "../ca/signer.h"
#include "../store/store.h"

#define FP_CHECKPOINT_LINE_MAX 1024

/* Sign the store's current head: one line (with '\n') into line. */
int fp_checkpoint_make(fp_store *store, fp_signer *key, int64_t now, char *line, size_t size,
                       fp_error *err);

/* Append line to path (O_APPEND, created 0644, fsync'ed); with syslog, also
 * to syslog (LOG_AUTHPRIV | LOG_NOTICE). */
int fp_checkpoint_append(const char *path, const char *line, bool syslog, fp_error *err);

/* Result of a verification. */
typedef struct fp_checkpoint_report {
    int checked;      /* checkpoints verified */
    int64_t last_seq; /* sequence number of the last one */
} fp_checkpoint_report;

/*
 * Verify every checkpoint of path against pub and against store's chain.
 * FP_ERR_AUDIT naming the first checkpoint (line number, seq) whose
 * signature fails or whose hash the chain no longer has at its seq (or
 * whose seq the chain no longer reaches); FP_ERR_OK otherwise.
 */
int fp_checkpoint_verify(fp_store *store, const char *path, EVP_PKEY *pub,
                         fp_checkpoint_report *rep, fp_error *err);

/* The background checkpointer of `serve`. */
typedef struct fp_checkpointer fp_checkpointer;

/* Start: its own store handle (store_path), key (borrowed, outlives it),
 * one checkpoint now and then every interval seconds. */
int fp_checkpointer_start(const char *store_path, fp_signer *key, const char *file,
                          int interval, bool syslog, fp_checkpointer **out, fp_error *err);
/* Stop: a last checkpoint (the shutdown one), then free. */
void fp_checkpointer_stop(fp_checkpointer *c);

#endif
