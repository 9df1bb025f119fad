/*
 * csr_verify.c - a PKCS#10 request's proof of possession (RFC 2986 3,
 * RFC 7030 3.4 / 4.2): its signature checked with its own public key.
 *
 * Why not just X509_REQ_verify: with OpenSSL 3.0 the key X509_REQ
 * carries for an EC request is a "legacy" key, and every verification
 * first exports it into the provider, building a brand-new EC group
 * (~40 us on the 2-core bench machine, a third of the ECDSA verification
 * itself).  For the named curves devices use, the key is instead made
 * provider-native from a per-curve domain-parameters template (ec_curve.c;
 * a copy of the template plus the public point: ~7 us) and the signature checked
 * with the ordinary EVP_DigestVerify.  Everything else (RSA, Ed25519,
 * explicit curves, unusual signature encodings) goes to X509_REQ_verify.
 *
 * The signed bytes are taken from i2d_X509_REQ, which for a parsed
 * request returns the received encoding; one that is not DER (the
 * cursor of der.h refuses it) is left to X509_REQ_verify.
 */
#define _POSIX_C_SOURCE 200809L
#include "x509util.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include "der.h"

/* The request's outer SEQUENCE's first element (CertificationRequestInfo)
 * within der; 0 on success, -1 when it is not DER (the caller then leaves
 * the check to X509_REQ_verify). */
static int tbs_span(const unsigned char *der, size_t len, const unsigned char **tbs, size_t *tbs_len)
{
    fp_der d, body;
    fp_der_tlv t;

    fp_der_init(&d, der, len);
    if (fp_der_expect(&d, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &t, NULL) != FP_ERR_OK ||
        fp_der_enter(&d, &t, &body, NULL) != FP_ERR_OK ||
        fp_der_expect(&body, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &t, NULL) != FP_ERR_OK)
        return -1;
    *tbs = t.start;
    *tbs_len = fp_der_tlv_size(&t);
    return 0;
}

/* 1 valid, 0 invalid signature, -1 unusable public key, -2 not a case
 * this path handles. */
static int ec_named_verify(X509_REQ *req)
{
    X509_PUBKEY *xpk = X509_REQ_get_X509_PUBKEY(req);
    ASN1_OBJECT *kobj = NULL;
    X509_ALGOR *kalg = NULL;
    const ASN1_OBJECT *cobj = NULL, *sobj = NULL;
    const ASN1_BIT_STRING *sig = NULL;
    const X509_ALGOR *salg = NULL;
    const unsigned char *pt = NULL, *tbs = NULL;
    const void *cval = NULL, *sval = NULL;
    const char *md = NULL;
    unsigned char *der = NULL;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *mctx = NULL;
    size_t tbs_len = 0;
    int ptlen = 0, ctype = 0, stype = 0, der_len, cnid, rc = -2;

    if (xpk == NULL || !X509_PUBKEY_get0_param(&kobj, &pt, &ptlen, &kalg, xpk) ||
        OBJ_obj2nid(kobj) != NID_X9_62_id_ecPublicKey || kalg == NULL)
        return -2;
    X509_ALGOR_get0(&cobj, &ctype, &cval, kalg);
    if (ctype != V_ASN1_OBJECT || cval == NULL)
        return -2;
    cnid = OBJ_obj2nid(cval);
    if (!fp_ec_curve_cached(cnid))
        return -2;
    /* RFC 5758 3.2: ecdsa-with-SHA2 AlgorithmIdentifiers have no parameters */
    X509_REQ_get0_signature(req, &sig, &salg);
    X509_ALGOR_get0(&sobj, &stype, &sval, salg);
    switch (OBJ_obj2nid(sobj)) {
    case NID_ecdsa_with_SHA256: md = "SHA256"; break;
    case NID_ecdsa_with_SHA384: md = "SHA384"; break;
    case NID_ecdsa_with_SHA512: md = "SHA512"; break;
    default: return -2;
    }
    if (stype != V_ASN1_UNDEF || sig == NULL || (sig->flags & 0x07) != 0)
        return -2;
    if ((der_len = i2d_X509_REQ(req, &der)) <= 0 ||
        tbs_span(der, (size_t)der_len, &tbs, &tbs_len) != 0)
        goto out;
    /* a point not on the curve (or not a point) is an unusable key */
    rc = -1;
    if (ptlen <= 0 || (key = fp_ec_key_native(cnid, pt, (size_t)ptlen)) == NULL)
        goto out;
    rc = 0;
    if ((mctx = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestVerifyInit_ex(mctx, NULL, md, NULL, NULL, key, NULL) != 1)
        goto out;
    rc = EVP_DigestVerify(mctx, sig->data, (size_t)sig->length, tbs, tbs_len) == 1;
out:
    EVP_MD_CTX_free(mctx);
    EVP_PKEY_free(key);
    OPENSSL_free(der);
    return rc;
}

/* The request's key as an EVP_PKEY for X509_REQ_verify: the one d2i
 * decoded, or, for a request read by est_csr_fast_parse (which builds
 * none), decoded now from its SubjectPublicKeyInfo.  Without the second
 * case such a request that ec_named_verify leaves to OpenSSL (an ECDSA
 * signature algorithm with parameters, say) would be called undecodable
 * here and valid on the d2i path.  *owned receives what to free. */
static EVP_PKEY *request_key(X509_REQ *req, EVP_PKEY **owned)
{
    X509_PUBKEY *xpk = X509_REQ_get_X509_PUBKEY(req);
    unsigned char *der = NULL;
    const unsigned char *p;
    EVP_PKEY *pk = X509_REQ_get0_pubkey(req);
    int len;

    *owned = NULL;
    if (pk != NULL || xpk == NULL)
        return pk;
    if ((len = i2d_X509_PUBKEY(xpk, &der)) > 0) {
        p = der;
        pk = d2i_PUBKEY(NULL, &p, len);
        if (pk != NULL && p != der + len) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
    }
    OPENSSL_free(der);
    *owned = pk;
    return pk;
}

int fp_csr_verify(X509_REQ *req)
{
    EVP_PKEY *pk, *owned = NULL;
    int rc;

    /* the key rules first: no exponentiation with a key we would refuse */
    if (fp_x509_spki_check(X509_REQ_get_X509_PUBKEY(req), NULL, NULL) != FP_ERR_OK)
        return -1;
    rc = ec_named_verify(req);
    if (rc == -2) {
        pk = request_key(req, &owned);
        rc = pk == NULL ? -1 : X509_REQ_verify(req, pk) == 1;
    }
    EVP_PKEY_free(owned);
    ERR_clear_error();
    return rc;
}
