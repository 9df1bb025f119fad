/*
 * store.h - the durable store: everything fleetpki keeps (projects and
 * their CAs, certificates and their status, enrollment tokens, requests
 * held for approval, the audit log).
 *
 * The CA layer (src/ca), the command line (src/cli) and the protocol
 * front ends (EST, revocation answers) call these fp_store_* functions;
 * none of them sees the database behind it.  This header opens and closes
 * a handle and includes the interface by domain:
 *   store_projects.h  projects, CAs (root, issuing, trust roots)
 *   store_certs.h     certificates
 *   store_status.h    status lookups, revoked entries, status-change log
 *   store_tokens.h    enrollment tokens
 *   store_pending.h   requests held for manual approval
 *   store_audit.h     the hash-chained audit log
 *   store_devices.h   the device registry (devices, tags, their certificates)
 *   store_apikeys.h   API keys of the admin REST API; token list/delete
 * One backend today (SQLite, sqlite_*.c) and room for PostgreSQL; every
 * backend passes tests/unit/store_conformance.c.  Contract common to every
 * backend:
 *   - each mutating call is one transaction, committed durably (fsync'd)
 *     before it returns FP_ERR_OK, together with its audit row;
 *   - a serial is unique across the store (the constraint is the only
 *     coordination between nodes; FP_ERR_DUPLICATE tells the caller to
 *     draw a new one);
 *   - every row that belongs to a project carries its name, and lookups
 *     that take a project never return another project's row;
 *   - the audit log is append-only and hash-chained: row n stores
 *     SHA-256(row n-1 hash || row n fields), see fp_audit_hash();
 *   - a handle is used by one thread at a time; open one per thread;
 *   - a fresh store holds project FP_PROJECT_DEFAULT and nothing else.
 */
#ifndef FP_STORE_H
#define FP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "store_apikeys.h"
#include "store_audit.h"
#include "store_certs.h"
#include "store_devices.h"
#include "store_firmware.h"
#include "store_pending.h"
#include "store_projects.h"
#include "store_status.h"
#include "store_tokens.h"

/* How a handle will be used, so that a backend can tune it. */
typedef enum {
    FP_STORE_ROLE_DEFAULT = 0,
    /* Commits batches back to back (group commit, src/ca/committer.c);
     * fp_store_maintain runs on another handle meanwhile. */
    FP_STORE_ROLE_COMMITTER = 1,
} fp_store_role;

/* A store path that starts with this is a libpq key=value connection
 * string ("pg:host=/run/pg dbname=fleetpki"). */
#define FP_STORE_PG_PREFIX "pg:"

/* Open (creating and migrating if needed) the store at path: a SQLite
 * file, or a PostgreSQL database named by a libpq URI ("postgres://...",
 * "postgresql://...") or by FP_STORE_PG_PREFIX and a key=value connection
 * string (docs/postgresql.md). */
int fp_store_open(const char *path, fp_store **out, fp_error *err);
/* The same for a handle with a role. */
int fp_store_open_role(const char *path, fp_store_role role, fp_store **out,
                       fp_error *err);
void fp_store_close(fp_store *s);

/* Background upkeep that never blocks writers, for a thread of its own
 * beside a FP_STORE_ROLE_COMMITTER handle (SQLite: a passive checkpoint of
 * its write-ahead log).  FP_ERR_OK with nothing to do in backends without
 * such upkeep. */
int fp_store_maintain(fp_store *s, fp_error *err);

/* Integrity check of the backend (SQLite: PRAGMA integrity_check). */
int fp_store_check(fp_store *s, fp_error *err);

#endif
