/*
 * offline.h - the offline root: its key lives on removable media,
 * encrypted, and is brought to the machine only for a ceremony (signing a
 * CA, the root's CRL, a rollover).  Nothing here keeps it: every function
 * takes the key file and passphrase explicitly.
 */
#ifndef FP_OFFLINE_H
#define FP_OFFLINE_H

#include <stddef.h>

#include <openssl/x509.h>

#include "../ca/signer.h"
#include "../common/err.h"

/* The root key's passphrase: file (first line), else FLEETPKI_ROOT_PASSPHRASE,
 * else fallback (the data directory's passphrase; may be NULL).  *out is
 * OPENSSL_malloc'd (free with fp_passphrase_free) or NULL. */
int fp_root_passphrase_load(const char *file, const char *fallback, size_t fallback_len,
                            char **out, size_t *len, fp_error *err);

/* Write key (PKCS#8, encrypted: pass must not be empty) and cert to
 * dir/root.key and dir/root.crt; dir is created 0700 if missing.  Refuses
 * to overwrite either file. */
int fp_offline_root_write(const char *dir, EVP_PKEY *key, X509 *cert, const char *pass,
                          size_t passlen, fp_error *err);

/* Open the offline root: key file and its passphrase, checked against the
 * root certificate (the one the data directory trusts). */
int fp_offline_root_open(const char *key_path, const char *pass, size_t passlen, X509 *root,
                         fp_signer **out, fp_error *err);

/*
 * A cross certificate for a root key rollover (RFC 4210 4.4; RFC 7030
 * 4.1.3): subject's name and public key, issued under issuer's name, signed
 * by issuer_signer.  NewWithOld = cross(new, old, old's key); OldWithNew =
 * cross(old, new, new's key).  A CA certificate (basicConstraints CA,
 * keyCertSign + cRLSign), subject key id kept, authority key id the
 * issuer's, valid from now (an hour back) to the earlier of the two roots'
 * ends.
 */
int fp_cross_cert(X509 *subject, X509 *issuer, fp_signer *issuer_signer, X509 **out,
                  fp_error *err);

#endif
