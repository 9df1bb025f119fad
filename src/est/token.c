/* token.c - enrollment token secrets and hashes.  See token.h. */
#include "token.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../common/util.h"

int fp_token_generate(char id[FP_TOKEN_ID_MAX], char secret[FP_TOKEN_SECRET_MAX],
                      unsigned char hash[FP_TOKEN_HASH_LEN], fp_error *err)
{
    unsigned char idraw[8], raw[32];
    int n;

    if (RAND_bytes(idraw, sizeof(idraw)) != 1 || RAND_bytes(raw, sizeof(raw)) != 1)
        return fp_err_set(err, FP_ERR_CRYPTO, "RAND_bytes");
    fp_hex(idraw, sizeof(idraw), id);
    /* base64url without padding (RFC 4648 5): safe in Basic and in URLs */
    n = EVP_EncodeBlock((unsigned char *)secret, raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    while (n > 0 && secret[n - 1] == '=')
        secret[--n] = '\0';
    for (int i = 0; i < n; i++)
        secret[i] = secret[i] == '+' ? '-' : secret[i] == '/' ? '_' : secret[i];
    if (fp_token_hash(secret, (size_t)n, hash) != 0) {
        OPENSSL_cleanse(secret, FP_TOKEN_SECRET_MAX);
        return fp_err_set(err, FP_ERR_CRYPTO, "hashing the token");
    }
    return FP_ERR_OK;
}

int fp_token_hash(const char *secret, size_t len, unsigned char hash[FP_TOKEN_HASH_LEN])
{
    unsigned int dlen = 0;
    if (EVP_Digest(secret, len, hash, &dlen, EVP_sha256(), NULL) != 1 ||
        dlen != FP_TOKEN_HASH_LEN)
        return -1;
    return 0;
}

bool fp_token_matches(const fp_token_rec *t, const char *secret, size_t len)
{
    unsigned char h[FP_TOKEN_HASH_LEN];
    bool ok;
    if (fp_token_hash(secret, len, h) != 0)
        return false;
    ok = CRYPTO_memcmp(h, t->hash, sizeof(h)) == 0;
    OPENSSL_cleanse(h, sizeof(h));
    return ok;
}
