/*
 * est_csr.c - a faster PKCS#10 reader for the common case (EC key on a
 * named curve), with d2i_X509_REQ as the general path.
 *
 * Why: with OpenSSL 3.0, d2i_X509_REQ decodes the public key through the
 * OSSL_DECODER machinery, whose set-up costs more than verifying the
 * request's signature (about 330 us against 130 us per request on the
 * benchmark machine): a third of the server's CPU per enrollment.  Here
 * no EVP_PKEY is built at all: the SubjectPublicKeyInfo is set as encoded
 * (X509_PUBKEY_set0_param), so X509_REQ_get0_pubkey() of a request read
 * here is NULL; the policy reads the key's algorithm and curve from the
 * SPKI and fp_csr_verify checks the point along with the signature.  Only
 * P-256, P-384 and P-521 (the curves fp_csr_verify handles) are read here.
 *
 * How, without trusting our own parser more than OpenSSL's: the request
 * is taken apart with ASN1_get_object (bounded, exact lengths), each part
 * is read with OpenSSL's own d2i functions, an X509_REQ is assembled from
 * them, and it is used ONLY if its re-encoded CertificationRequestInfo is
 * byte for byte the one received (so the signature, checked later by the
 * policy, covers exactly what we read).  Anything else - other key types,
 * explicit curve parameters, attributes not in DER order, any surprise -
 * returns "not handled" and the caller uses d2i_X509_REQ.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "../x509/x509util.h"
#include "est.h"

/* Read one TLV at *p (within end): tag/class/constructed must match;
 * sets *content and *clen, advances *p past it. */
static int tlv(const unsigned char **p, const unsigned char *end, int tag, int cls,
               int constructed, const unsigned char **content, long *clen)
{
    const unsigned char *q = *p;
    long len = 0;
    int t = 0, c = 0, r;

    if (q >= end)
        return -1;
    r = ASN1_get_object(&q, &len, &t, &c, end - q);
    if ((r & 0x80) || (r & 1) || t != tag || c != cls || ((r & V_ASN1_CONSTRUCTED) != 0) != (constructed != 0) ||
        len < 0 || len > end - q)
        return -1;
    *content = q;
    *clen = len;
    *p = q + len;
    return 0;
}

/* Curve parameters as a key template, decoded once per common curve:
 * d2i_KeyParams builds the EC group (~25 us), a copy of the template is
 * several times cheaper.  Read-only once built; copies are per request. */
static const int cached_curves[] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
static EVP_PKEY *curve_templates[3];
static pthread_once_t curve_once = PTHREAD_ONCE_INIT;

static EVP_PKEY *params_from_oid(const ASN1_OBJECT *curve)
{
    unsigned char *par = NULL;
    const unsigned char *q;
    EVP_PKEY *params = NULL;
    int parlen = i2d_ASN1_OBJECT(curve, &par);

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
    for (size_t i = 0; i < sizeof(cached_curves) / sizeof(*cached_curves); i++)
        curve_templates[i] = params_from_oid(OBJ_nid2obj(cached_curves[i]));
}

/* EC public key on a named curve from an AlgorithmIdentifier's parameters
 * (the curve OID) and the subjectPublicKey bits. */
EVP_PKEY *est_ec_public_key(const ASN1_OBJECT *curve, const unsigned char *pt, long ptlen)
{
    const unsigned char *q = pt;
    EVP_PKEY *params = NULL, *key;
    int nid = OBJ_obj2nid(curve);

    pthread_once(&curve_once, build_templates);
    for (size_t i = 0; i < sizeof(cached_curves) / sizeof(*cached_curves); i++)
        if (nid == cached_curves[i] && curve_templates[i] != NULL)
            params = EVP_PKEY_dup(curve_templates[i]);
    if (params == NULL)
        params = params_from_oid(curve);
    if (params == NULL)
        return NULL;
    key = d2i_PublicKey(EVP_PKEY_EC, &params, &q, ptlen); /* fills params */
    if (key == NULL || q != pt + ptlen) {
        EVP_PKEY_free(key != NULL ? key : params);
        return NULL;
    }
    return key;
}

/* The curves fp_csr_verify checks without a decoded key. */
static bool fast_curve(int nid)
{
    return nid == NID_X9_62_prime256v1 || nid == NID_secp384r1 || nid == NID_secp521r1;
}

X509_REQ *est_csr_fast_parse(const unsigned char *der, size_t len)
{
    const unsigned char *p = der, *end = der + len, *body, *tbs, *tbs_end, *c, *spki_end;
    const unsigned char *q;
    long blen, clen;
    X509_REQ *req = NULL;
    X509_NAME *name = NULL;
    X509_ALGOR *kalg = NULL, *salg = NULL;
    ASN1_BIT_STRING *kbits = NULL, *sig = NULL;
    ASN1_INTEGER *ver = NULL;
    unsigned char *re = NULL, *pt = NULL;
    const ASN1_OBJECT *aobj = NULL;
    const void *pval = NULL;
    int ptype = 0, relen;
    X509_REQ *ok = NULL;

    if (len == 0 || len > FP_CSR_MAX_BYTES)
        return NULL;
    /* CertificationRequest ::= SEQUENCE { info, signatureAlgorithm, signature } */
    if (tlv(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, 1, &body, &blen) != 0 || p != end)
        return NULL;
    p = body;
    end = body + blen;
    tbs = p;
    if (tlv(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, 1, &c, &clen) != 0)
        return NULL;
    tbs_end = p;
    /* signatureAlgorithm, signature */
    q = p;
    if ((salg = d2i_X509_ALGOR(NULL, &q, end - p)) == NULL)
        goto out;
    p = q;
    if ((sig = d2i_ASN1_BIT_STRING(NULL, &q, end - p)) == NULL || q != end)
        goto out;
    /* CertificationRequestInfo ::= SEQUENCE { version, subject, spki, [0] attributes } */
    p = c;
    end = c + clen;
    q = p;
    if ((ver = d2i_ASN1_INTEGER(NULL, &q, end - p)) == NULL || ASN1_INTEGER_get(ver) != 0)
        goto out;
    p = q;
    if ((name = d2i_X509_NAME(NULL, &q, end - p)) == NULL)
        goto out;
    p = q;
    /* SubjectPublicKeyInfo, read without building a key through decoders */
    {
        const unsigned char *s = p, *sc;
        long slen;
        if (tlv(&s, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, 1, &sc, &slen) != 0)
            goto out;
        spki_end = s;
        q = sc;
        if ((kalg = d2i_X509_ALGOR(NULL, &q, spki_end - sc)) == NULL)
            goto out;
        if ((kbits = d2i_ASN1_BIT_STRING(NULL, &q, spki_end - q)) == NULL || q != spki_end)
            goto out;
        p = spki_end;
    }
    X509_ALGOR_get0(&aobj, &ptype, &pval, kalg);
    if (OBJ_obj2nid(aobj) != NID_X9_62_id_ecPublicKey || ptype != V_ASN1_OBJECT || pval == NULL ||
        !fast_curve(OBJ_obj2nid(pval)) || kbits->length <= 0 || (kbits->flags & 0x07) != 0)
        goto out; /* other keys, curves and explicit parameters: general path */

    /* the SubjectPublicKeyInfo is set as encoded: no EVP_PKEY is built
     * (the point is checked when the signature is, by fp_csr_verify) */
    if ((req = X509_REQ_new()) == NULL || !X509_REQ_set_version(req, 0) ||
        !X509_REQ_set_subject_name(req, name) ||
        (pt = OPENSSL_memdup(kbits->data, (size_t)kbits->length)) == NULL ||
        !X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                                V_ASN1_OBJECT, OBJ_nid2obj(OBJ_obj2nid(pval)), pt, kbits->length))
        goto out;
    pt = NULL; /* owned by the request now */
    /* attributes [0] IMPLICIT SET OF Attribute */
    if (tlv(&p, end, 0, V_ASN1_CONTEXT_SPECIFIC, 1, &c, &clen) != 0 || p != end)
        goto out;
    for (q = c; q < c + clen;) {
        const unsigned char *a0 = q;
        X509_ATTRIBUTE *attr = d2i_X509_ATTRIBUTE(NULL, &q, c + clen - a0);
        int added;
        if (attr == NULL)
            goto out;
        added = X509_REQ_add1_attr(req, attr);
        X509_ATTRIBUTE_free(attr);
        if (!added)
            goto out;
    }
    if (!X509_REQ_set1_signature_algo(req, salg))
        goto out;
    X509_REQ_set0_signature(req, sig);
    sig = NULL;
    /* the assembled request must encode to exactly what was signed */
    relen = i2d_re_X509_REQ_tbs(req, &re);
    if (relen <= 0 || (size_t)relen != (size_t)(tbs_end - tbs) || memcmp(re, tbs, (size_t)relen) != 0)
        goto out;
    ok = req;
    req = NULL;
out:
    OPENSSL_free(re);
    X509_REQ_free(req);
    OPENSSL_free(pt);
    ASN1_BIT_STRING_free(kbits);
    X509_ALGOR_free(kalg);
    X509_NAME_free(name);
    ASN1_INTEGER_free(ver);
    ASN1_BIT_STRING_free(sig);
    X509_ALGOR_free(salg);
    return ok;
}
