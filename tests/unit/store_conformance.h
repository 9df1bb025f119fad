/*
 * store_conformance.h - the behaviour every store backend must have,
 * checked through the fp_store_* interface only (no SQL), so that each
 * backend (SQLite today: test_store.c; PostgreSQL next) runs the very same
 * cases.  A backend supplies how to get a fresh store and the few
 * tampering hooks that need its insides (an attacker editing the audit
 * table directly).
 */
#ifndef FP_STORE_CONFORMANCE_H
#define FP_STORE_CONFORMANCE_H

#include <stdint.h>

#include "store/store.h"

typedef struct sc_backend {
    const char *name;
    void *arg;
    /* A fresh, empty store (as a new deployment sees it); each case gets
     * its own.  FP_ERR_OK or the failure. */
    int (*open_fresh)(void *arg, fp_store **out);
    /* Another handle on the store open_fresh made last. */
    int (*open_again)(void *arg, fp_store **out);
    /* Remove what open_fresh made (handles are closed by then). */
    void (*discard)(void *arg);
    /* As an attacker with write access to the database: set column (one of
     * actor, action, object, detail, project, hash) of audit row id to
     * value, bypassing whatever protects the log.  0 on success. */
    int (*audit_edit)(void *arg, int64_t id, const char *column, const char *value);
    /* The same, deleting audit row id.  0 on success. */
    int (*audit_delete)(void *arg, int64_t id);
} sc_backend;

/* Run every case against b; returns the number of failed cases. */
int store_conformance_run(const sc_backend *b);

#endif
