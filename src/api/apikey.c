/* apikey.c - API key generation, parsing and checking (apikey.h). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../common/util.h"
#include "apikey.h"

static void secret_hash(const char *secret, unsigned char hash[FP_APIKEY_HASH_LEN])
{
    unsigned int len = 0;
    EVP_Digest(secret, strlen(secret), hash, &len, EVP_sha256(), NULL);
}

int fp_apikey_generate(char id[FP_APIKEY_ID_MAX], char token[FP_APIKEY_TOKEN_MAX],
                       unsigned char hash[FP_APIKEY_HASH_LEN], fp_error *err)
{
    unsigned char rnd[FP_APIKEY_ID_LEN / 2 + FP_APIKEY_SECRET_LEN / 2];

    if (RAND_bytes(rnd, (int)sizeof(rnd)) != 1)
        return fp_err_set(err, FP_ERR_CRYPTO, "no random bytes for an API key");
    fp_hex(rnd, FP_APIKEY_ID_LEN / 2, id);
    memcpy(token, id, FP_APIKEY_ID_LEN);
    token[FP_APIKEY_ID_LEN] = '.';
    fp_hex(rnd + FP_APIKEY_ID_LEN / 2, FP_APIKEY_SECRET_LEN / 2, token + FP_APIKEY_ID_LEN + 1);
    secret_hash(token + FP_APIKEY_ID_LEN + 1, hash);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return FP_ERR_OK;
}

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool fp_apikey_parse(const char *token, char id[FP_APIKEY_ID_MAX], const char **secret)
{
    if (strlen(token) != FP_APIKEY_TOKEN_MAX - 1 || token[FP_APIKEY_ID_LEN] != '.' ||
        !lower_hex(token, FP_APIKEY_ID_LEN) ||
        !lower_hex(token + FP_APIKEY_ID_LEN + 1, FP_APIKEY_SECRET_LEN))
        return false;
    memcpy(id, token, FP_APIKEY_ID_LEN);
    id[FP_APIKEY_ID_LEN] = '\0';
    *secret = token + FP_APIKEY_ID_LEN + 1;
    return true;
}

bool fp_apikey_matches(const fp_apikey_rec *k, const char *secret)
{
    unsigned char h[FP_APIKEY_HASH_LEN];
    bool ok;

    secret_hash(secret, h);
    ok = CRYPTO_memcmp(h, k->hash, sizeof(h)) == 0;
    OPENSSL_cleanse(h, sizeof(h));
    return ok;
}
