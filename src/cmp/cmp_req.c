/*
 * cmp_req.c - what a CRMF certificate request (RFC 4211) asks for, in the
 * PKCS#10 form the issuance path takes, and the answers to genm
 * (RFC 9483 4.3).
 *
 * OpenSSL 3.0 has getters for the template's subject but none for its
 * public key or extensions (OSSL_CRMF_CERTTEMPLATE_get0_publicKey came
 * later), so the template OpenSSL decoded is re-encoded by it and the two
 * fields are found with the DER cursor; OpenSSL's d2i decodes them.  The
 * CRMF module uses IMPLICIT tags (RFC 4211 Appendix B):
 *   CertTemplate ::= SEQUENCE { version [0], serialNumber [1],
 *       signingAlg [2], issuer [3] Name, validity [4], subject [5] Name,
 *       publicKey [6] SubjectPublicKeyInfo, issuerUID [7], subjectUID [8],
 *       extensions [9] Extensions }   (all OPTIONAL)
 */
#include "cmp.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "../x509/der.h"

/* The content of an IMPLICIT [n] element as the SEQUENCE it replaces,
 * decoded by d2i. */
static void *implicit_seq(const fp_der_tlv *t, void *(*d2i)(void **, const unsigned char **, long))
{
    unsigned char hdr[FP_DER_HDR_MAX], *buf;
    size_t hl = fp_der_put_hdr(hdr, 0x30, t->len);
    const unsigned char *p;
    void *v;

    if ((buf = malloc(hl + t->len)) == NULL)
        return NULL;
    memcpy(buf, hdr, hl);
    memcpy(buf + hl, t->content, t->len);
    p = buf;
    v = d2i(NULL, &p, (long)(hl + t->len));
    if (v != NULL && p != buf + hl + t->len) {
        v = NULL; /* trailing octets cannot happen after OpenSSL's own encoding */
    }
    free(buf);
    return v;
}

static void *d2i_pubkey_any(void **a, const unsigned char **p, long n)
{
    return d2i_X509_PUBKEY((X509_PUBKEY **)a, p, n);
}

static void *d2i_exts_any(void **a, const unsigned char **p, long n)
{
    return d2i_X509_EXTENSIONS((X509_EXTENSIONS **)a, p, n);
}

int cmp_crmf_to_req(const OSSL_CRMF_MSG *crm, X509_REQ **out, fp_error *err)
{
    OSSL_CRMF_CERTTEMPLATE *tmpl = OSSL_CRMF_MSG_get0_tmpl(crm);
    const X509_NAME *subj = tmpl ? OSSL_CRMF_CERTTEMPLATE_get0_subject(tmpl) : NULL;
    unsigned char *der = NULL;
    int derlen;
    X509_PUBKEY *xpk = NULL;
    X509_EXTENSIONS *exts = NULL;
    X509_REQ *req = NULL;
    EVP_PKEY *pk;
    fp_der top, in;
    fp_der_tlv s, t;
    int rc;

    *out = NULL;
    if (tmpl == NULL || (derlen = i2d_OSSL_CRMF_CERTTEMPLATE(tmpl, &der)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CSR_MALFORMED, "certificate template missing");
        goto out;
    }
    fp_der_init(&top, der, (size_t)derlen);
    if ((rc = fp_der_expect(&top, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, &s, err)) != FP_ERR_OK ||
        (rc = fp_der_enter(&top, &s, &in, err)) != FP_ERR_OK)
        goto out;
    while (fp_der_left(&in) > 0) {
        if ((rc = fp_der_read(&in, &t, err)) != FP_ERR_OK)
            goto out;
        if (t.cls != V_ASN1_CONTEXT_SPECIFIC)
            continue;
        if (t.tag == 6 && xpk == NULL)
            xpk = implicit_seq(&t, d2i_pubkey_any);
        else if (t.tag == 9 && exts == NULL)
            exts = implicit_seq(&t, d2i_exts_any);
    }
    /* RFC 9483 4.1.1: the template carries the public key to certify */
    if (xpk == NULL || (pk = X509_PUBKEY_get0(xpk)) == NULL) {
        rc = fp_err_set(err, FP_ERR_CSR_MALFORMED,
                        "certificate template has no usable publicKey (central key generation "
                        "is not offered)");
        goto out;
    }
    req = X509_REQ_new();
    if (req == NULL || (subj != NULL && !X509_REQ_set_subject_name(req, subj)) ||
        !X509_REQ_set_pubkey(req, pk) ||
        (exts != NULL && sk_X509_EXTENSION_num(exts) > 0 && !X509_REQ_add_extensions(req, exts))) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "building the request from the template");
        goto out;
    }
    *out = req;
    req = NULL;
    rc = FP_ERR_OK;
out:
    ERR_clear_error();
    OPENSSL_free(der);
    X509_PUBKEY_free(xpk);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return rc;
}

/* SEQUENCE OF Certificate as an ASN1_TYPE (RFC 9483 4.3.1 caCerts). */
static ASN1_TYPE *cert_seq(STACK_OF(X509) *certs)
{
    STACK_OF(ASN1_TYPE) *items = sk_ASN1_TYPE_new_null();
    ASN1_TYPE *res = NULL;
    ASN1_STRING *s = NULL;
    unsigned char *der = NULL;
    int len;

    if (items == NULL)
        return NULL;
    for (int i = 0; i < sk_X509_num(certs); i++) {
        unsigned char *cd = NULL;
        int cl = i2d_X509(sk_X509_value(certs, i), &cd);
        ASN1_STRING *cs = cl > 0 ? ASN1_STRING_new() : NULL;
        ASN1_TYPE *t = cs ? ASN1_TYPE_new() : NULL;
        if (t == NULL || !ASN1_STRING_set(cs, cd, cl)) {
            OPENSSL_free(cd);
            ASN1_STRING_free(cs);
            ASN1_TYPE_free(t);
            goto out;
        }
        OPENSSL_free(cd);
        ASN1_TYPE_set(t, V_ASN1_SEQUENCE, cs);
        if (!sk_ASN1_TYPE_push(items, t)) {
            ASN1_TYPE_free(t);
            goto out;
        }
    }
    if ((len = i2d_ASN1_SEQUENCE_ANY(items, &der)) <= 0 || (s = ASN1_STRING_new()) == NULL ||
        !ASN1_STRING_set(s, der, len) || (res = ASN1_TYPE_new()) == NULL)
        goto out;
    ASN1_TYPE_set(res, V_ASN1_SEQUENCE, s);
    s = NULL;
out:
    ASN1_STRING_free(s);
    OPENSSL_free(der);
    sk_ASN1_TYPE_pop_free(items, ASN1_TYPE_free);
    return res;
}

int cmp_genm_answer(const cmp_label *lb, const STACK_OF(OSSL_CMP_ITAV) *in,
                    STACK_OF(OSSL_CMP_ITAV) **out, fp_error *err)
{
    STACK_OF(OSSL_CMP_ITAV) *res = sk_OSSL_CMP_ITAV_new_null();

    *out = NULL;
    if (res == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int i = 0; i < sk_OSSL_CMP_ITAV_num(in); i++) {
        int nid = OBJ_obj2nid(OSSL_CMP_ITAV_get0_type(sk_OSSL_CMP_ITAV_value(in, i)));
        ASN1_TYPE *val = NULL;
        OSSL_CMP_ITAV *itav;

        switch (nid) {
        case NID_id_it_caCerts:
            /* RFC 9483 4.3.1: the CA certificates the device should know:
             * the label's issuing CA and its chain up to the root */
            if ((val = cert_seq(lb->ca_certs)) == NULL)
                goto nomem;
            break;
        case NID_id_it_rootCaKeyUpdate:
            /* RFC 9483 4.3.2: infoValue absent = no root update pending
             * (fleetpki roots are not rolled over by CMP) */
        case NID_id_it_certReqTemplate:
            /* RFC 9483 4.3.3: infoValue absent = no template required */
            break;
        default:
            continue; /* RFC 4210 5.3.19: unknown types may be ignored */
        }
        itav = OSSL_CMP_ITAV_create(OBJ_nid2obj(nid), val);
        if (itav == NULL || !sk_OSSL_CMP_ITAV_push(res, itav)) {
            OSSL_CMP_ITAV_free(itav);
            if (itav == NULL)
                ASN1_TYPE_free(val);
            goto nomem;
        }
    }
    *out = res;
    return FP_ERR_OK;
nomem:
    sk_OSSL_CMP_ITAV_pop_free(res, OSSL_CMP_ITAV_free);
    return fp_err_set(err, FP_ERR_NOMEM, "genm answer");
}
