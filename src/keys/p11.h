/*
 * p11.h - CA keys in a PKCS#11 token (an HSM; SoftHSM2 in the tests).
 *
 * The PKCS#11 API is used directly: the module named by the URI's
 * module-path (or [ca] pkcs11_module) is dlopen'ed and driven through its
 * function list, with Debian's p11-kit headers for the types.  No OpenSSL
 * engine is involved (OpenSSL 3 deprecates engines); the key reaches
 * OpenSSL as a remote key (rkey.h) whose signatures are computed by the
 * token.  The private key never leaves it: keys made here are CKA_SENSITIVE
 * and not CKA_EXTRACTABLE.
 *
 * PIN: the URI's pin-source (file:PATH), else FP_PKCS11_PIN from the
 * environment, else [ca] pkcs11_pin_file.  Never the config itself, never
 * a log line.
 *
 * A lost session (token unplugged and back, module restarted) is re-opened
 * on the next signature; a token that stays away, or a locked PIN, gives
 * FP_ERR_KEY_UNAVAILABLE, which the front ends answer with 503.
 */
#ifndef FP_P11_H
#define FP_P11_H

#include <openssl/evp.h>

#include "../common/err.h"

/* Process-wide defaults used when a URI names no module-path or
 * pin-source (NULL or "" for none).  Call before any open. */
void fp_p11_set_defaults(const char *module_path, const char *pin_file);

/* The private key the URI names, as a remote EVP_PKEY (caller frees). */
int fp_p11_open_key(const char *uri, EVP_PKEY **out, fp_error *err);

/*
 * Generate a key pair in the URI's token under its object label (required)
 * and id (random when absent): algo p256, p384 or rsa3072.  Refuses when a
 * private key with that label exists.  *pub gets the public key, *out the
 * remote private key; either may be NULL.
 */
int fp_p11_generate(const char *uri, const char *algo, EVP_PKEY **pub, EVP_PKEY **out,
                    fp_error *err);

#endif
