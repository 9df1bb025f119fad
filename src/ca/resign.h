/*
 * resign.h - the offline root ceremony's "re-sign an existing issuing CA":
 * a new certificate for the same key and subject, with a new validity and
 * serial, signed by the root key given explicitly (docs/keys.md).
 */
#ifndef FP_RESIGN_H
#define FP_RESIGN_H

#include "admin.h"

typedef struct fp_ca_resign_opts {
    const char *root_key; /* the offline root key file (required) */
    const char *root_pass;
    size_t root_passlen;
    int days; /* new validity from now; 0: 3652 (as `ca create`) */
} fp_ca_resign_opts;

/*
 * Re-sign issuing CA ca_id (a root-issued CA): its certificate is copied,
 * given a new serial (RFC 5280 4.1.2.2: unique per issuer) and notBefore
 * (now, backdated an hour as at creation) / notAfter (now + days), and
 * signed by the offline root; subject, key and every extension stay, so
 * certificates it issued chain to it unchanged (same name, same SKI).  It
 * replaces the CA's certificate in the store (fp_store_ca_set_cert) and in
 * its file (issuing.crt for init's CA, ca/ID/ca.crt otherwise); a running
 * server uses it after a restart.  Refused: an unknown or non-issuing CA,
 * a CA the root did not issue, a root key that does not match the root
 * certificate, a validity past the root's.  The new certificate's serial
 * (hex) goes to serial_hex.
 */
int fp_admin_ca_resign(const fp_admin *a, const char *ca_id, const fp_ca_resign_opts *o,
                       char serial_hex[80], fp_error *err);

#endif
