/*
 * store_audit.h - the append-only, hash-chained audit log (part of the
 * store interface, see store.h).
 *
 * Row n stores SHA-256(row n-1 hash || row n fields), see fp_audit_hash();
 * every mutating store call appends its event in its own transaction.
 */
#ifndef FP_STORE_AUDIT_H
#define FP_STORE_AUDIT_H

#include <stdint.h>

#include "../common/err.h"

typedef struct fp_store fp_store;

/* One audit event; all strings borrowed.  detail is free text or JSON. */
typedef struct fp_audit_event {
    const char *actor;   /* "cli:root", "est:token:abc", ... */
    const char *action;  /* "cert.issue", "cert.revoke", "csr.refuse", ... */
    const char *object;  /* serial, CA id, ... */
    const char *detail;
    const char *project; /* NULL or "": not specific to a project */
} fp_audit_event;

typedef struct fp_audit_row {
    int64_t id;
    int64_t ts;
    const char *actor, *action, *object, *detail;
    const char *project;   /* "" when not specific to a project */
    const char *prev_hash; /* hex */
    const char *hash;      /* hex */
} fp_audit_row;

/*
 * Hex SHA-256 chaining hash of a row over prev_hash (64 hex chars + NUL).
 * project (NULL or "": none) is hashed only when non-empty, after the other
 * fields, so a row without a project hashes exactly as before projects
 * existed and every older row still verifies; fields are length-prefixed,
 * so a row with a project never serialises like one without.
 */
int fp_audit_hash(const char *prev_hash, int64_t id, int64_t ts,
                  const char *actor, const char *action, const char *object,
                  const char *detail, const char *project, char out[65]);

/* Hash that precedes the first row. */
#define FP_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

typedef int (*fp_audit_cb)(void *arg, const fp_audit_row *row);

/* Append an audit row on its own. */
int fp_store_audit_append(fp_store *s, const fp_audit_event *ev, fp_error *err);

/* Iterate the audit log in id order (row strings valid during cb only). */
int fp_store_audit_iter(fp_store *s, fp_audit_cb cb, void *arg, fp_error *err);

/* The chain's head: the last row's id and hash (*id 0 and the genesis hash
 * for an empty log), as one consistent read.  What audit checkpoints sign. */
int fp_store_audit_head(fp_store *s, int64_t *id, char hash[65], fp_error *err);

/* Recompute the chain; FP_ERR_AUDIT with the first bad row in err if an
 * edit, deletion or reordering is found.  *rows receives the count. */
int fp_store_audit_verify(fp_store *s, int64_t *rows, fp_error *err);

#endif
