/* token.c - enrollment token secrets and hashes.  See token.h. */
#include "token.h"

#include <stdbool.h>
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

/* What '*' and '?' may stand for: no '/', no space, no control, nothing
 * outside ASCII (see token.h). */
static bool wild_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

static bool literal_char(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e && c != '*' && c != '?' && c != '[' && c != ']' && c != '\\';
}

int fp_token_pattern_check(const char *pattern, fp_error *err)
{
    size_t n = strlen(pattern);

    if (n == 0 || n >= FP_TOKEN_PATTERN_MAX)
        return fp_err_set(err, FP_ERR_ARG, "CN pattern must be 1..%d characters",
                          FP_TOKEN_PATTERN_MAX - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pattern[i];
        if (c != '*' && c != '?' && !literal_char(c))
            return fp_err_set(err, FP_ERR_ARG,
                              "CN pattern: character %zu (0x%02x) is not allowed: use printable "
                              "ASCII, '*' and '?' ('[', ']' and '\\' are reserved)",
                              i + 1, c);
    }
    return FP_ERR_OK;
}

/* The matcher behind both entry points: lit[i] (when lit is not NULL)
 * makes pattern[i] match only itself, whatever it is. */
static bool cn_match(const char *pattern, const bool *lit, const char *cn)
{
    /* m[j]: does the pattern from position i on match cn from j on?
     * Computed from the end of the pattern backwards, one row per pattern
     * character: O(pattern x cn), no backtracking blow-up. */
    bool row[FP_TOKEN_CN_MAX + 1], next[FP_TOKEN_CN_MAX + 1];
    size_t pn = strlen(pattern), cn_len = strlen(cn);

    if (cn_len > FP_TOKEN_CN_MAX)
        return false;
    for (size_t j = 0; j <= cn_len; j++)
        next[j] = j == cn_len; /* the empty pattern matches only the empty rest */
    for (size_t i = pn; i-- > 0;) {
        unsigned char pc = (unsigned char)pattern[i];
        bool literal = lit != NULL && lit[i];
        row[cn_len] = false; /* every pattern character consumes at least one */
        for (size_t j = cn_len; j-- > 0;) {
            unsigned char c = (unsigned char)cn[j];
            if (!literal && pc == '*')
                row[j] = wild_char(c) && (next[j + 1] || row[j + 1]);
            else if (!literal && pc == '?')
                row[j] = wild_char(c) && next[j + 1];
            else
                row[j] = c == pc && next[j + 1];
        }
        memcpy(next, row, sizeof(bool) * (cn_len + 1));
    }
    return next[0];
}

bool fp_token_cn_match(const char *pattern, const char *cn)
{
    if (fp_token_pattern_check(pattern, NULL) != FP_ERR_OK)
        return false;
    return cn_match(pattern, NULL, cn);
}

bool fp_token_cn_match_lit(const char *pattern, const bool *lit, const char *cn)
{
    size_t n = strlen(pattern);

    if (n == 0 || n >= FP_TOKEN_TEMPLATE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pattern[i];
        if (!lit[i] && c != '*' && c != '?' && !literal_char(c))
            return false;
    }
    return cn_match(pattern, lit, cn);
}
