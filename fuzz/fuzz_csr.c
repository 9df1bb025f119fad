/* fuzz_csr.c - PKCS#10 parsing and the full policy check on arbitrary bytes.
 *
 * A mutated request almost never keeps a valid signature, which would stop
 * every input at the proof-of-possession rule.  So each parsed request is
 * checked twice under every profile: as received, and re-signed with a fixed
 * key so that the extension, subject and SAN rules see the fuzzed content.
 * As received, fp_csr_verify's verdict must also be OpenSSL's own
 * (X509_REQ_verify over the bytes as parsed) for every key the key rules
 * accept. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "ca/policy.h"
#include "x509/x509util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_all(const fp_profile *profiles, X509_REQ *req)
{
    for (int i = 0; fp_builtin_profiles[i]; i++) {
        fp_profile p = profiles[i];
        fp_policy_check(&p, req, NULL);
        p.requested_extensions = FP_REQEXT_HONOUR;
        fp_policy_check(&p, req, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fp_profile profiles[8];
    static EVP_PKEY *key;
    X509_REQ *req = NULL;

    if (key == NULL) {
        for (int i = 0; fp_builtin_profiles[i]; i++)
            fp_profile_defaults(fp_builtin_profiles[i], &profiles[i]);
        key = EVP_EC_gen("P-256");
    }
    if (fp_csr_parse(data, size, &req, NULL) != FP_ERR_OK)
        return 0;
    {
        /* fp_csr_verify also applies the key rules (fp_x509_spki_check):
         * OpenSSL verifies with e = 1 or a 3000-bit exponent, we refuse */
        EVP_PKEY *pk = X509_REQ_get0_pubkey(req);
        int ours = fp_csr_verify(req) == 1;
        int theirs = pk != NULL && X509_REQ_verify(req, pk) == 1 &&
                     fp_x509_spki_check(X509_REQ_get_X509_PUBKEY(req), NULL, NULL) == FP_ERR_OK;
        ERR_clear_error();
        if (ours != theirs)
            abort(); /* fp_csr_verify disagrees with OpenSSL */
    }
    check_all(profiles, req);
    if (X509_REQ_set_pubkey(req, key) && X509_REQ_sign(req, key, EVP_sha256()) > 0)
        check_all(profiles, req);
    X509_REQ_free(req);
    return 0;
}
