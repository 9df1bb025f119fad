/*
 * cmp_secret.c - the shared secret of MAC-based CMP protection
 * (RFC 9483 4.1.5, PasswordBasedMac of RFC 4210 5.1.3.1) for an
 * enrollment token.
 *
 * A MAC check needs the secret itself on our side, but the store keeps
 * only SHA-256 of a token's secret (est/token.h), by design: a copy of
 * the database must not hand out working tokens.  So the CMP secret of a
 * token is derived from a server key kept OUTSIDE the database
 * (DIR/cmp-mac.key, 32 random octets, 0600) and what the store has:
 *     secret = base64url(HMAC-SHA256(key, "fleetpki-cmp-pbm-1" 0 id 0 hash))
 * `fleetpki cmp-secret ID` prints it for the operator to hand to the
 * device with the token id (the senderKID).  The store alone is not
 * enough to compute it, and the token's own secret (the EST password)
 * is a different value.
 */
#include "cmp.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "../common/util.h"

#define CMP_SECRET_LABEL "fleetpki-cmp-pbm-1"

int cmp_mac_key_load(const fp_config *cfg, unsigned char key[32], fp_error *err)
{
    char path[FP_PATH_MAX];
    unsigned char *data = NULL;
    size_t len = 0;
    int rc;

    if ((rc = fp_path_join(path, sizeof(path), cfg->dir, CMP_MAC_KEY_FILE, err)) != FP_ERR_OK)
        return rc;
    if (!fp_file_exists(path)) {
        unsigned char fresh[32];
        if (RAND_priv_bytes(fresh, sizeof(fresh)) != 1)
            return fp_err_set(err, FP_ERR_CRYPTO, "RAND_priv_bytes");
        rc = fp_file_create(path, fresh, sizeof(fresh), 0600, err);
        OPENSSL_cleanse(fresh, sizeof(fresh));
        /* another process may have made it first: read what is there */
        if (rc != FP_ERR_OK && rc != FP_ERR_EXISTS)
            return rc;
    }
    if ((rc = fp_file_read(path, 64, &data, &len, err)) != FP_ERR_OK)
        return rc;
    if (len != 32) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "%s: expected 32 octets, found %zu", path, len);
    } else {
        memcpy(key, data, 32);
        rc = FP_ERR_OK;
    }
    OPENSSL_clear_free(data, len);
    return rc;
}

int cmp_token_secret(const unsigned char key[32], const char *token_id,
                     const unsigned char hash[FP_TOKEN_HASH_LEN], char out[CMP_SECRET_MAX],
                     fp_error *err)
{
    unsigned char msg[sizeof(CMP_SECRET_LABEL) + FP_TOKEN_ID_MAX + 1 + FP_TOKEN_HASH_LEN];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t idl = strlen(token_id), o = 0;
    int n;

    if (idl >= FP_TOKEN_ID_MAX)
        return fp_err_set(err, FP_ERR_ARG, "token id too long");
    memcpy(msg, CMP_SECRET_LABEL, sizeof(CMP_SECRET_LABEL)); /* with its NUL */
    o = sizeof(CMP_SECRET_LABEL);
    memcpy(msg + o, token_id, idl + 1);
    o += idl + 1;
    memcpy(msg + o, hash, FP_TOKEN_HASH_LEN);
    o += FP_TOKEN_HASH_LEN;
    if (HMAC(EVP_sha256(), key, 32, msg, o, mac, &maclen) == NULL || maclen != 32)
        return fp_err_set(err, FP_ERR_CRYPTO, "HMAC");
    n = EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
    OPENSSL_cleanse(mac, sizeof(mac));
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return FP_ERR_OK;
}
