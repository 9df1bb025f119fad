/*
 * cmp_peek.c - header fields of a CMP message that OpenSSL 3.0 parses
 * but offers no getter for: protectionAlg, senderKID, messageTime, and
 * the extraCerts (3.0 hands them over only after its own validation).
 * We need them BEFORE that validation: the senderKID names the
 * enrollment token whose secret the MAC is checked with (RFC 9483 3.2),
 * and the first extraCert is the protection certificate whose chain we
 * check (RFC 9483 3.3).
 *
 * The message was already decoded by d2i_OSSL_CMP_MSG, so these are
 * well-formed; the spans are still found with the bounded DER cursor
 * (x509/der.h), and each content is decoded by OpenSSL's d2i.  The CMP
 * module uses EXPLICIT tags (RFC 4210 Appendix F):
 *   PKIMessage ::= SEQUENCE { header PKIHeader, body PKIBody,
 *       protection [0] PKIProtection OPTIONAL,
 *       extraCerts [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL }
 *   PKIHeader ::= SEQUENCE { pvno, sender, recipient,
 *       messageTime [0] GeneralizedTime OPTIONAL,
 *       protectionAlg [1] AlgorithmIdentifier OPTIONAL,
 *       senderKID [2] KeyIdentifier OPTIONAL, ... }
 */
#include "cmp.h"

#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>

#include "../x509/der.h"
#include "../x509/x509util.h"

#define CMP_MAX_EXTRA 16 /* more extraCerts than any chain we verify */

void cmp_peek_clear(cmp_peek *pk)
{
    sk_X509_pop_free(pk->extra, X509_free);
    memset(pk, 0, sizeof(*pk));
    pk->kid_len = -1;
    pk->nonce_len = -1;
}

/* The header's optional fields [0] [1] [2]. */
static int peek_header(const fp_der *msg, const fp_der_tlv *h, cmp_peek *pk, fp_error *err)
{
    fp_der hd, in;
    fp_der_tlv t, v;
    int rc;

    if ((rc = fp_der_enter(msg, h, &hd, err)) != FP_ERR_OK)
        return rc;
    /* pvno, sender, recipient */
    for (int i = 0; i < 3; i++)
        if ((rc = fp_der_read(&hd, &t, err)) != FP_ERR_OK)
            return rc;
    while (fp_der_left(&hd) > 0) {
        if ((rc = fp_der_read(&hd, &t, err)) != FP_ERR_OK)
            return rc;
        if (t.cls != V_ASN1_CONTEXT_SPECIFIC || t.tag > 5)
            break; /* recipNonce and after: OpenSSL's public getters or unused */
        if (t.tag == 3 || t.tag == 4)
            continue; /* recipKID; transactionID (OSSL_CMP_HDR_get0_transactionID) */
        if ((rc = fp_der_enter(&hd, &t, &in, err)) != FP_ERR_OK ||
            (rc = fp_der_read(&in, &v, err)) != FP_ERR_OK)
            return rc;
        const unsigned char *p = v.start;
        long n = (long)fp_der_tlv_size(&v);
        if (t.tag == 0) {
            ASN1_GENERALIZEDTIME *gt = d2i_ASN1_GENERALIZEDTIME(NULL, &p, n);
            if (gt == NULL)
                return fp_err_set(err, FP_ERR_ARG, "messageTime");
            pk->msg_time = fp_asn1_time_unix(gt);
            pk->has_time = true;
            ASN1_GENERALIZEDTIME_free(gt);
        } else if (t.tag == 1) {
            X509_ALGOR *alg = d2i_X509_ALGOR(NULL, &p, n);
            const ASN1_OBJECT *obj = NULL;
            if (alg == NULL)
                return fp_err_set(err, FP_ERR_ARG, "protectionAlg");
            X509_ALGOR_get0(&obj, NULL, NULL, alg);
            pk->prot_nid = OBJ_obj2nid(obj);
            if (pk->prot_nid == NID_undef)
                pk->prot_nid = -1; /* present but unknown: not "unprotected" */
            X509_ALGOR_free(alg);
        } else if (t.tag == 5) {
            ASN1_OCTET_STRING *no = d2i_ASN1_OCTET_STRING(NULL, &p, n);
            int nl = no ? ASN1_STRING_length(no) : -1;
            if (no == NULL || nl < 0 || nl > (int)sizeof(pk->nonce)) {
                ASN1_OCTET_STRING_free(no);
                return fp_err_set(err, FP_ERR_ARG, "senderNonce missing or longer than %zu octets",
                                  sizeof(pk->nonce));
            }
            memcpy(pk->nonce, ASN1_STRING_get0_data(no), (size_t)nl);
            pk->nonce_len = nl;
            ASN1_OCTET_STRING_free(no);
        } else {
            ASN1_OCTET_STRING *kid = d2i_ASN1_OCTET_STRING(NULL, &p, n);
            int kl = kid ? ASN1_STRING_length(kid) : -1;
            if (kid == NULL || kl < 0 || kl > (int)sizeof(pk->kid)) {
                ASN1_OCTET_STRING_free(kid);
                return fp_err_set(err, FP_ERR_ARG, "senderKID missing or longer than %zu octets",
                                  sizeof(pk->kid));
            }
            memcpy(pk->kid, ASN1_STRING_get0_data(kid), (size_t)kl);
            pk->kid_len = kl;
            ASN1_OCTET_STRING_free(kid);
        }
    }
    return FP_ERR_OK;
}

static int peek_extra(const fp_der *msg, const fp_der_tlv *t, cmp_peek *pk, fp_error *err)
{
    fp_der in, seq;
    fp_der_tlv s, c;
    int rc;

    if ((rc = fp_der_enter(msg, t, &in, err)) != FP_ERR_OK ||
        (rc = fp_der_expect(&in, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &s, err)) != FP_ERR_OK ||
        (rc = fp_der_enter(&in, &s, &seq, err)) != FP_ERR_OK)
        return rc;
    if ((pk->extra = sk_X509_new_null()) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    while (fp_der_left(&seq) > 0) {
        X509 *x;
        const unsigned char *p;
        if (sk_X509_num(pk->extra) >= CMP_MAX_EXTRA)
            return fp_err_set(err, FP_ERR_TOO_LARGE, "more than %d extraCerts", CMP_MAX_EXTRA);
        if ((rc = fp_der_read(&seq, &c, err)) != FP_ERR_OK)
            return rc;
        p = c.start;
        x = d2i_X509(NULL, &p, (long)fp_der_tlv_size(&c));
        if (x == NULL || !sk_X509_push(pk->extra, x)) {
            X509_free(x);
            return fp_err_set(err, FP_ERR_ARG, "extraCerts: certificate %d does not decode",
                              sk_X509_num(pk->extra) + 1);
        }
    }
    return FP_ERR_OK;
}

int cmp_peek_msg(const unsigned char *der, size_t len, cmp_peek *pk, fp_error *err)
{
    fp_der top, msg;
    fp_der_tlv m, h, t;
    int rc;

    memset(pk, 0, sizeof(*pk));
    pk->kid_len = -1;
    pk->nonce_len = -1;
    pk->prot_nid = NID_undef;
    fp_der_init(&top, der, len);
    if ((rc = fp_der_expect(&top, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &m, err)) != FP_ERR_OK ||
        (rc = fp_der_enter(&top, &m, &msg, err)) != FP_ERR_OK ||
        (rc = fp_der_expect(&msg, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &h, err)) != FP_ERR_OK ||
        (rc = peek_header(&msg, &h, pk, err)) != FP_ERR_OK ||
        (rc = fp_der_read(&msg, &t, err)) != FP_ERR_OK) /* body */
        goto out;
    while (fp_der_left(&msg) > 0) {
        if ((rc = fp_der_read(&msg, &t, err)) != FP_ERR_OK)
            goto out;
        if (t.cls == V_ASN1_CONTEXT_SPECIFIC && t.tag == 1 &&
            (rc = peek_extra(&msg, &t, pk, err)) != FP_ERR_OK)
            goto out;
    }
out:
    ERR_clear_error();
    if (rc != FP_ERR_OK)
        cmp_peek_clear(pk);
    return rc;
}
