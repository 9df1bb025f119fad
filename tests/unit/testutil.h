/* testutil.h - helpers shared by the cmocka unit tests. */
#ifndef FP_TESTUTIL_H
#define FP_TESTUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/x509.h>

#include "ca/ca.h"

/* A fresh private temp directory (removed by tu_rmdir). */
char *tu_tmpdir(void);
void tu_rmdir(char *dir);

/* Key of the given fp_key_generate algorithm name. */
EVP_PKEY *tu_key(const char *algo);

/* Build a CSR: subject like "/CN=x/O=y", optional SAN string for
 * X509V3_EXT_conf ("DNS:a,IP:1.2.3.4"), optional extra extension (nid,
 * value) when extra_nid != 0; signed with key and md (NULL: default). */
X509_REQ *tu_csr(EVP_PKEY *key, const char *subject, const char *sans,
                 int extra_nid, const char *extra_value, const EVP_MD *md);

/* Store an enrollment token id (label "default") with uses and an expiry
 * (0: none); fails the test on error. */
void tu_token_put(fp_store *s, const char *id, int uses, int64_t expires_at);
/* Uses left on token id (fails the test if it is absent). */
int tu_token_uses(fp_store *s, const char *id);

/* Whether the store holds a certificate with this serial (any other
 * error than not-found fails the test). */
bool tu_cert_stored(fp_store *s, const char *serial);

/* A fresh CA made by fp_ca_init in a temp dir, with its config, store and
 * CA opened, and a P-256 key for test requests. */
typedef struct tu_ca {
    char *dir;
    fp_config cfg;
    fp_store *store;
    fp_ca *ca;
    EVP_PKEY *key;
} tu_ca;

/* Fill f (org name, algorithm: NULL for p256); fails the test on error. */
void tu_ca_init(tu_ca *f, const char *org, const char *algo);
/* Close and remove everything tu_ca_init made (f itself is the caller's). */
void tu_ca_clear(tu_ca *f);

#endif
