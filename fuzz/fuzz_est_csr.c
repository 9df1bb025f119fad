/* fuzz_est_csr.c - the EST request path on arbitrary bytes: the lenient
 * base64 body decoder, then the fast PKCS#10 reader checked differentially
 * against d2i_X509_REQ: whenever the fast reader accepts an input, OpenSSL
 * must accept it too and both must encode to the same bytes, with the same
 * signature verdict (fp_csr_verify on the fast one, X509_REQ_verify on
 * OpenSSL's).  Inputs are tried both as DER and as base64 text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

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
     * own verdict on the reference must agree */
    if ((fp_csr_verify(fast) == 1) !=
        (X509_REQ_get0_pubkey(ref) != NULL && X509_REQ_verify(ref, X509_REQ_get0_pubkey(ref)) == 1))
        abort(); /* a different signature verdict */
    ERR_clear_error();
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
