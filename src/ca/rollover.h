/*
 * rollover.h - root key rollover (RFC 4210 4.4; RFC 7030 4.1.3).
 *
 * A new root key and self-signed certificate (NewWithNew) go to an offline
 * directory, encrypted; the two cross certificates NewWithOld (the new key
 * certified by the old root) and OldWithNew (the old key certified by the
 * new root) and the new root's certificate go to DIR/rollover/, from where
 * EST cacerts serves them beside the current chain.  Devices that trust the
 * old root learn the new one through NewWithOld; devices that already trust
 * the new one still verify everything issued under the old root through
 * OldWithNew: no flag day.
 */
#ifndef FP_ROLLOVER_H
#define FP_ROLLOVER_H

#include "admin.h"

#define FP_ROLLOVER_DIR "rollover"

typedef struct fp_rollover_opts {
    const char *algo;       /* new root key: p256 (default), p384, rsa3072, ed25519 */
    const char *old_key;    /* the current root key file (offline); NULL: the config's */
    const char *old_pass;
    size_t old_passlen;
    const char *new_dir;    /* where the new root key and certificate go (offline) */
    const char *new_pass;   /* encrypts the new root key (required) */
    size_t new_passlen;
} fp_rollover_opts;

/* Make the new root and both cross certificates; audited as root.rollover.
 * Refuses when DIR/rollover/ already holds a rollover. */
int fp_root_rollover(const fp_admin *a, const fp_rollover_opts *o, fp_error *err);

/* The rollover certificates of cfg's data directory for cacerts (NewWithNew,
 * NewWithOld, OldWithNew), appended to chain; none when there is no
 * rollover. */
int fp_rollover_certs(const fp_config *cfg, STACK_OF(X509) *chain, fp_error *err);

#endif
