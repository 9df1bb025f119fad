/*
 * pubkey_check.c - the public key rules of x509util.h, in one place.
 *
 * Why these rules (SECURITY.md has the long form): RFC 8017 3.1 allows any
 * RSA exponent 3 <= e <= n - 1, and OpenSSL verifies with whatever e a
 * key carries.  e = 1 turns a signature into the padded hash itself, so a
 * request "proves" possession of a key nobody holds and the certificate
 * authenticates whoever sees it; a huge e turns every verification into a
 * private-key-sized exponentiation.  We take NIST SP 800-89 5.3.3 /
 * FIPS 186-5 A.1.1 (odd, 2^16 < e < 2^256), which the CA/Browser Forum
 * Baseline Requirements 6.1.6 also use: every mainstream key generator
 * (OpenSSL, BoringSSL, Go, Java, Windows, HSMs) makes e = 65537, so the
 * narrower rule refuses no real device, and the bound on e keeps the cost
 * of a verification predictable.
 *
 * The RSAPublicKey (RFC 8017 A.1.1) is read with an OpenSSL ASN.1
 * template, not through a decoded EVP_PKEY: the check runs before the
 * signature is verified, and for requests read by est_csr.c no key exists
 * yet.  EC keys are judged by their curve OID and the point's encoding;
 * building the key (which checks the point is on the curve) is left to
 * fp_csr_verify, which does it anyway.
 */
#include "x509util.h"

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } */
typedef struct {
    ASN1_INTEGER *n;
    ASN1_INTEGER *e;
} rsa_pub;

ASN1_SEQUENCE(rsa_pub) = {
    ASN1_SIMPLE(rsa_pub, n, ASN1_INTEGER),
    ASN1_SIMPLE(rsa_pub, e, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(rsa_pub)

/* The RSA rule on n and e (both non-negative BIGNUMs). */
static int rsa_rule(const BIGNUM *n, const BIGNUM *e, int *bits_out, fp_error *err)
{
    int bits = BN_num_bits(n), ebits = BN_num_bits(e);

    if (bits_out != NULL)
        *bits_out = bits;
    if (BN_is_negative(n) || BN_is_negative(e))
        return fp_err_set(err, FP_ERR_CSR_KEY, "RSA key with a negative modulus or exponent");
    if (bits < FP_RSA_MIN_BITS || bits > FP_RSA_MAX_BITS)
        return fp_err_set(err, FP_ERR_CSR_KEY_SIZE, "RSA modulus of %d bits is outside [%d, %d]",
                          bits, FP_RSA_MIN_BITS, FP_RSA_MAX_BITS);
    if (!BN_is_odd(n))
        return fp_err_set(err, FP_ERR_CSR_KEY, "RSA modulus is even");
    /* odd with at least 17 bits: e >= 65537 (65536 is the only 17-bit even
     * number below it) */
    if (!BN_is_odd(e) || ebits < 17 || ebits > 256)
        return fp_err_set(err, FP_ERR_CSR_KEY,
                          "RSA public exponent is not accepted (%d bits, %s): it must be odd and "
                          "65537 <= e < 2^256",
                          ebits, BN_is_odd(e) ? "odd" : "even");
    return FP_ERR_OK;
}

static int rsa_spki(const unsigned char *der, int len, int *bits, fp_error *err)
{
    const unsigned char *p = der;
    rsa_pub *k = (rsa_pub *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(rsa_pub));
    BIGNUM *n = NULL, *e = NULL;
    int rc;

    if (k == NULL || p != der + len) {
        rc = fp_err_set(err, FP_ERR_CSR_KEY, "RSA public key is not an RSAPublicKey");
        goto out;
    }
    if (ASN1_STRING_type(k->n) != V_ASN1_INTEGER || ASN1_STRING_type(k->e) != V_ASN1_INTEGER) {
        rc = fp_err_set(err, FP_ERR_CSR_KEY, "RSA key with a negative modulus or exponent");
        goto out;
    }
    if ((n = ASN1_INTEGER_to_BN(k->n, NULL)) == NULL || (e = ASN1_INTEGER_to_BN(k->e, NULL)) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    rc = rsa_rule(n, e, bits, err);
out:
    BN_free(n);
    BN_free(e);
    ASN1_item_free((ASN1_VALUE *)k, ASN1_ITEM_rptr(rsa_pub));
    ERR_clear_error();
    return rc;
}

/* Field size in octets of the curves we accept, 0 for others. */
static int curve_octets(int nid)
{
    switch (nid) {
    case NID_X9_62_prime256v1: return 32;
    case NID_secp384r1: return 48;
    case NID_secp521r1: return 66;
    default: return 0;
    }
}

int fp_x509_spki_check(const X509_PUBKEY *xpk, fp_spki_info *info, fp_error *err)
{
    ASN1_OBJECT *kobj = NULL;
    X509_ALGOR *kalg = NULL;
    const ASN1_OBJECT *aobj = NULL;
    const unsigned char *pk = NULL;
    const void *pval = NULL;
    int pklen = 0, ptype = V_ASN1_UNDEF, nid, cnid, octets;
    fp_spki_info dummy;

    if (info == NULL)
        info = &dummy;
    info->key_nid = info->curve_nid = NID_undef;
    info->bits = 0;
    if (xpk == NULL || !X509_PUBKEY_get0_param(&kobj, &pk, &pklen, &kalg, xpk) || pk == NULL)
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "public key is missing");
    if (kalg != NULL)
        X509_ALGOR_get0(&aobj, &ptype, &pval, kalg);
    info->key_nid = nid = OBJ_obj2nid(kobj);
    switch (nid) {
    case NID_rsaEncryption:
        return rsa_spki(pk, pklen, &info->bits, err);
    case NID_X9_62_id_ecPublicKey:
        if (ptype != V_ASN1_OBJECT || pval == NULL)
            return fp_err_set(err, FP_ERR_CSR_KEY_ALG,
                              "EC key with explicit or unnamed curve parameters");
        info->curve_nid = cnid = OBJ_obj2nid(pval);
        if ((octets = curve_octets(cnid)) == 0)
            return fp_err_set(err, FP_ERR_CSR_KEY_SIZE, "EC curve %s is not supported",
                              cnid != NID_undef ? OBJ_nid2sn(cnid) : "(unknown)");
        info->bits = cnid == NID_secp521r1 ? 521 : octets * 8;
        /* RFC 5480 2.2: uncompressed 04 || X || Y or compressed 02/03 || X;
         * the single octet 00 (the point at infinity) is neither */
        if (!((pklen == 1 + 2 * octets && pk[0] == 0x04) ||
              (pklen == 1 + octets && (pk[0] == 0x02 || pk[0] == 0x03))))
            return fp_err_set(err, FP_ERR_CSR_KEY,
                              "EC public key is not an RFC 5480 point encoding for %s",
                              OBJ_nid2sn(cnid));
        return FP_ERR_OK;
    case NID_ED25519:
        info->bits = 256;
        if (ptype != V_ASN1_UNDEF || pklen != 32)
            return fp_err_set(err, FP_ERR_CSR_KEY,
                              "Ed25519 key must be 32 octets without parameters (RFC 8410 3)");
        return FP_ERR_OK;
    default:
        return fp_err_set(err, FP_ERR_CSR_KEY_ALG, "key algorithm %s is not allowed",
                          nid != NID_undef ? OBJ_nid2sn(nid) : "(unknown)");
    }
}

int fp_x509_pubkey_check(EVP_PKEY *pk, fp_error *err)
{
    BIGNUM *n = NULL, *e = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    char group[64] = "";
    int rc, explicit_params = 0;

    if (pk == NULL)
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "public key is missing or undecodable");
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA:
        if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) ||
            !EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e))
            rc = fp_err_set(err, FP_ERR_CSR_KEY, "RSA key without modulus or exponent");
        else
            rc = rsa_rule(n, e, NULL, err);
        break;
    case EVP_PKEY_EC:
        EVP_PKEY_get_int_param(pk, OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS,
                               &explicit_params);
        if (explicit_params ||
            !EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                            NULL)) {
            rc = fp_err_set(err, FP_ERR_CSR_KEY_ALG, "EC key with explicit or unnamed curve parameters");
            break;
        }
        if (curve_octets(OBJ_txt2nid(group)) == 0) {
            rc = fp_err_set(err, FP_ERR_CSR_KEY_SIZE, "EC curve %s is not supported", group);
            break;
        }
        /* on the curve and not the point at infinity */
        if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL ||
            EVP_PKEY_public_check_quick(ctx) != 1)
            rc = fp_err_set(err, FP_ERR_CSR_KEY, "EC public key is not a valid point on %s", group);
        else
            rc = FP_ERR_OK;
        break;
    case EVP_PKEY_ED25519:
        rc = FP_ERR_OK;
        break;
    default:
        rc = fp_err_set(err, FP_ERR_CSR_KEY_ALG, "key algorithm %s is not allowed",
                        OBJ_nid2sn(EVP_PKEY_get_base_id(pk)));
    }
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    ERR_clear_error();
    return rc;
}

int fp_x509_cert_key_check(X509 *cert, fp_error *err)
{
    int rc;

    if (cert == NULL)
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "no certificate");
    if ((rc = fp_x509_spki_check(X509_get_X509_PUBKEY(cert), NULL, err)) != FP_ERR_OK)
        return rc;
    /* d2i_X509 decoded the key already; for EC that decode put the point
     * on the curve (EC_POINT_oct2point refuses any other) and the encoding
     * rule above excludes infinity, so EVP_PKEY_public_check_quick would
     * only repeat it, at ~8 us per request instead of ~0.1 */
    if (X509_get0_pubkey(cert) == NULL) {
        ERR_clear_error();
        return fp_err_set(err, FP_ERR_CSR_KEY, "certificate public key does not decode");
    }
    return FP_ERR_OK;
}
