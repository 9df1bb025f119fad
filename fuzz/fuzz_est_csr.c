/* fuzz_est_csr.c - the EST request path on arbitrary bytes: the lenient
 * base64 body decoder, then the fast PKCS#10 reader checked differentially
 * against d2i_X509_REQ: whenever the fast reader accepts an input, OpenSSL
 * must accept it too and both must encode to the same bytes, with the same
 * signature verdict (fp_csr_verify on the fast one, X509_REQ_verify on
 * OpenSSL's), and the same fp_policy_check verdict code under every
 * built-in profile (issue 8, defect 9: the two readers must never give a
 * client different answers).  Inputs are tried both as DER and as base64
 * text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "ca/policy.h"
#include "est/est.h"
#include "x509/x509util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void differential(const unsigned char *der, size_t len)
{
    X509_REQ *fast = est_csr_fast_parse(der, len), *ref = NULL;
    const unsigned char *p = der;
    unsigned char *a = NULL, *b = NULL;
    int alen, blen;

    if (fast == NULL)
        return;
    ref = d2i_X509_REQ(NULL, &p, (long)len);
    if (ref == NULL || p != der + len)
        abort(); /* fast reader accepted what OpenSSL refuses */
    alen = i2d_X509_REQ(fast, &a);
    blen = i2d_X509_REQ(ref, &b);
    if (alen != blen || alen <= 0 || memcmp(a, b, (size_t)alen) != 0)
        abort(); /* a different request */
    /* the fast request has no decoded key: fp_csr_verify checks it; OpenSSL's
     * own verdict on the reference must agree (for keys the rules accept) */
    if ((fp_csr_verify(fast) == 1) !=
        (X509_REQ_get0_pubkey(ref) != NULL && X509_REQ_verify(ref, X509_REQ_get0_pubkey(ref)) == 1 &&
         fp_x509_spki_check(X509_REQ_get_X509_PUBKEY(ref), NULL, NULL) == FP_ERR_OK))
        abort(); /* a different signature verdict */
    ERR_clear_error();
    /* and the whole policy: the CLI reads these bytes as ref does, EST as
     * fast; every profile must give both the same verdict code */
    for (int i = 0; fp_builtin_profiles[i]; i++) {
        fp_profile prof;
        fp_profile_defaults(fp_builtin_profiles[i], &prof);
        prof.algs |= FP_ALG_RSA | FP_ALG_P256 | FP_ALG_P384 | FP_ALG_P521 | FP_ALG_ED25519;
        if (fp_policy_check(&prof, fast, NULL) != fp_policy_check(&prof, ref, NULL))
            abort(); /* the CLI and EST disagree on this request */
    }
    OPENSSL_free(a);
    OPENSSL_free(b);
    X509_REQ_free(ref);
    X509_REQ_free(fast);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *bin = NULL;
    size_t blen = 0;

    differential(data, size);
    if (fp_b64_decode_lenient((const char *)data, size, 64 * 1024, &bin, &blen, NULL) == FP_ERR_OK) {
        differential(bin, blen);
        free(bin);
    }
    return 0;
}
