/*
 * ec_curve.c - the one cache of EC domain-parameter templates, for the
 * named curves devices use (P-256, P-384, P-521; RFC 5480 2.1.1.1).
 *
 * Why: with OpenSSL 3.0 building an EC group costs 25-40 us on the bench
 * machine, more than an ECDSA verification's share of a request; a copy
 * of a template that already holds the group costs a fraction of that.
 * Built once (pthread_once), read-only after: copies are per call.
 *
 * Each curve is held in the two forms OpenSSL 3.0 treats differently:
 *   - provider-native (EVP_PKEY_fromdata): EVP_DigestVerify uses such a
 *     key directly, where a "legacy" key is first exported into the
 *     provider, building a brand-new group every time (csr_verify.c);
 *   - legacy (d2i_KeyParams): X509_PUBKEY_set encodes such a key with its
 *     method's own encoder, where a provider key goes through the
 *     OSSL_ENCODER machinery, a third of a serverkeygen's CPU (EST's
 *     request for a server-generated key, est_enroll.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "x509util.h"

#include <limits.h>
#include <pthread.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>

static const struct {
    int nid;
    const char *group;
} curves[] = {
    {NID_X9_62_prime256v1, "prime256v1"},
    {NID_secp384r1, "secp384r1"},
    {NID_secp521r1, "secp521r1"},
};
#define N_CURVES (sizeof(curves) / sizeof(*curves))

static EVP_PKEY *native[N_CURVES]; /* domain parameters only; NULL: build failed */
static EVP_PKEY *legacy[N_CURVES];
static pthread_once_t templates_once = PTHREAD_ONCE_INIT;

/* Legacy parameters for a named curve, decoded from its OID. */
static EVP_PKEY *legacy_params(int nid)
{
    unsigned char *par = NULL;
    const unsigned char *q;
    EVP_PKEY *params = NULL;
    ASN1_OBJECT *obj = OBJ_nid2obj(nid);
    int parlen = obj != NULL ? i2d_ASN1_OBJECT(obj, &par) : -1;

    if (parlen > 0) {
        q = par;
        params = d2i_KeyParams(EVP_PKEY_EC, NULL, &q, parlen);
        if (params != NULL && q != par + parlen) {
            EVP_PKEY_free(params);
            params = NULL;
        }
    }
    OPENSSL_free(par);
    return params;
}

static void build_templates(void)
{
    for (size_t i = 0; i < N_CURVES; i++) {
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                     (char *)curves[i].group, 0);
        params[1] = OSSL_PARAM_construct_end();
        if (kc == NULL || EVP_PKEY_fromdata_init(kc) != 1 ||
            EVP_PKEY_fromdata(kc, &native[i], EVP_PKEY_KEY_PARAMETERS, params) != 1)
            native[i] = NULL; /* that curve takes the general path */
        EVP_PKEY_CTX_free(kc);
        legacy[i] = legacy_params(curves[i].nid);
    }
    ERR_clear_error();
}

/* Index of nid in curves[], or -1. */
static int curve_index(int nid)
{
    for (size_t i = 0; i < N_CURVES; i++)
        if (curves[i].nid == nid)
            return (int)i;
    return -1;
}

bool fp_ec_curve_cached(int nid)
{
    int i = curve_index(nid);

    pthread_once(&templates_once, build_templates);
    return i >= 0 && native[i] != NULL;
}

EVP_PKEY *fp_ec_key_native(int nid, const unsigned char *pt, size_t len)
{
    int i = curve_index(nid);
    EVP_PKEY *key;

    pthread_once(&templates_once, build_templates);
    if (i < 0 || native[i] == NULL || (key = EVP_PKEY_dup(native[i])) == NULL)
        return NULL;
    /* decoding the point checks that it is on the curve */
    if (EVP_PKEY_set1_encoded_public_key(key, pt, len) != 1) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

EVP_PKEY *fp_ec_key_legacy(int nid, const unsigned char *pt, size_t len)
{
    int i = curve_index(nid);
    const unsigned char *q = pt;
    EVP_PKEY *params = NULL, *key;

    pthread_once(&templates_once, build_templates);
    if (len > LONG_MAX)
        return NULL;
    if (i >= 0 && legacy[i] != NULL)
        params = EVP_PKEY_dup(legacy[i]);
    if (params == NULL)
        params = legacy_params(nid); /* another curve, or the copy failed */
    if (params == NULL)
        return NULL;
    key = d2i_PublicKey(EVP_PKEY_EC, &params, &q, (long)len); /* fills params */
    if (key == NULL || q != pt + len) {
        EVP_PKEY_free(key != NULL ? key : params);
        return NULL;
    }
    return key;
}
