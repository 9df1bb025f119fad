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
 * is taken apart with the DER cursor (der.h: bounded, DER lengths only),
 * each part is read with OpenSSL's own d2i functions over exactly its
 * octets, an X509_REQ is assembled from them, and it is used ONLY if its
 * re-encoded CertificationRequestInfo is byte for byte the one received
 * (so the signature, checked later by the policy, covers exactly what we
 * read).  Anything else - other key types, explicit curve parameters,
 * attributes not in DER order, BER, any surprise - returns "not handled"
 * and the caller uses d2i_X509_REQ.
 */
#include <stdbool.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "../x509/der.h"
#include "../x509/x509util.h"
#include "est.h"

/* EC public key on a named curve from an AlgorithmIdentifier's parameters
 * (the curve OID) and the subjectPublicKey bits, as a legacy key (cheap
 * to encode, see ec_curve.c). */
EVP_PKEY *est_ec_public_key(const ASN1_OBJECT *curve, const unsigned char *pt, long ptlen)
{
    if (ptlen < 0)
        return NULL;
    return fp_ec_key_legacy(OBJ_obj2nid(curve), pt, (size_t)ptlen);
}

/* The next element of d, to be decoded by a d2i function: *q is set to
 * its first octet and *e one past its last (a d2i must reach exactly *e);
 * returns its size, 0 when there is no well-formed element. */
static long next_element(fp_der *d, const unsigned char **q, const unsigned char **e)
{
    fp_der_tlv t;

    if (fp_der_read(d, &t, NULL) != FP_ERR_OK)
        return 0;
    *q = t.start;
    *e = t.content + t.len;
    return (long)fp_der_tlv_size(&t);
}

X509_REQ *est_csr_fast_parse(const unsigned char *der, size_t len)
{
    fp_der d, body, info, spki, attrs;
    fp_der_tlv outer, tbs, t;
    const unsigned char *q = NULL, *e = NULL;
    long n;
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
    fp_der_init(&d, der, len);
    if (fp_der_expect(&d, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &outer, NULL) != FP_ERR_OK ||
        fp_der_finish(&d, NULL) != FP_ERR_OK || fp_der_enter(&d, &outer, &body, NULL) != FP_ERR_OK ||
        fp_der_expect(&body, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &tbs, NULL) != FP_ERR_OK)
        return NULL;
    /* signatureAlgorithm, signature */
    if ((n = next_element(&body, &q, &e)) == 0 || (salg = d2i_X509_ALGOR(NULL, &q, n)) == NULL ||
        q != e)
        goto out;
    if ((n = next_element(&body, &q, &e)) == 0 || (sig = d2i_ASN1_BIT_STRING(NULL, &q, n)) == NULL ||
        q != e || fp_der_finish(&body, NULL) != FP_ERR_OK)
        goto out;
    /* CertificationRequestInfo ::= SEQUENCE { version, subject, spki, [0] attributes } */
    if (fp_der_enter(&body, &tbs, &info, NULL) != FP_ERR_OK)
        goto out;
    if ((n = next_element(&info, &q, &e)) == 0 || (ver = d2i_ASN1_INTEGER(NULL, &q, n)) == NULL ||
        q != e || ASN1_INTEGER_get(ver) != 0)
        goto out;
    if ((n = next_element(&info, &q, &e)) == 0 || (name = d2i_X509_NAME(NULL, &q, n)) == NULL ||
        q != e)
        goto out;
    /* SubjectPublicKeyInfo, read without building a key through decoders */
    if (fp_der_expect(&info, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &t, NULL) != FP_ERR_OK ||
        fp_der_enter(&info, &t, &spki, NULL) != FP_ERR_OK)
        goto out;
    if ((n = next_element(&spki, &q, &e)) == 0 || (kalg = d2i_X509_ALGOR(NULL, &q, n)) == NULL ||
        q != e)
        goto out;
    if ((n = next_element(&spki, &q, &e)) == 0 || (kbits = d2i_ASN1_BIT_STRING(NULL, &q, n)) == NULL ||
        q != e || fp_der_finish(&spki, NULL) != FP_ERR_OK)
        goto out;
    X509_ALGOR_get0(&aobj, &ptype, &pval, kalg);
    if (OBJ_obj2nid(aobj) != NID_X9_62_id_ecPublicKey || ptype != V_ASN1_OBJECT || pval == NULL ||
        !fp_ec_curve_cached(OBJ_obj2nid(pval)) || kbits->length <= 0 || (kbits->flags & 0x07) != 0)
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
    if (fp_der_expect(&info, 0, V_ASN1_CONTEXT_SPECIFIC, true, &t, NULL) != FP_ERR_OK ||
        fp_der_finish(&info, NULL) != FP_ERR_OK || fp_der_enter(&info, &t, &attrs, NULL) != FP_ERR_OK)
        goto out;
    while (fp_der_left(&attrs) > 0) {
        X509_ATTRIBUTE *attr;
        int added;
        if ((n = next_element(&attrs, &q, &e)) == 0 || (attr = d2i_X509_ATTRIBUTE(NULL, &q, n)) == NULL)
            goto out;
        added = q == e && X509_REQ_add1_attr(req, attr);
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
    if (relen <= 0 || (size_t)relen != fp_der_tlv_size(&tbs) || memcmp(re, tbs.start, (size_t)relen) != 0)
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
