/* testutil.h - helpers shared by the cmocka unit tests. */
#ifndef FP_TESTUTIL_H
#define FP_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/x509.h>

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

#endif
