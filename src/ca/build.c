/*
 * build.c - certificate assembly per profile (RFC 5280 4.1, 4.2).
 *
 * The subject is rebuilt, never copied wholesale: forced RDNs first, then
 * the CSR's attributes whose types the profile copies.  Extensions come
 * from the profile; only subjectAltName is taken from the request (after
 * policy checks), made critical when the subject is empty (4.2.1.6).
 */
#include "build.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "../x509/x509util.h"

static int add_conf_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value,
                        fp_error *err)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;
    if (ext == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "building %s extension", OBJ_nid2sn(nid));
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ok)
        return fp_err_set(err, FP_ERR_CRYPTO, "adding %s extension", OBJ_nid2sn(nid));
    return FP_ERR_OK;
}

static int build_subject(const fp_profile *p, X509_REQ *req, X509_NAME **out, fp_error *err)
{
    const X509_NAME *in = X509_REQ_get_subject_name(req);
    X509_NAME *name = X509_NAME_new();

    *out = NULL;
    if (name == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int i = 0; i < p->n_force; i++) {
        if (!X509_NAME_add_entry_by_NID(name, p->force[i].nid, MBSTRING_UTF8,
                                        (const unsigned char *)p->force[i].value, -1, -1, 0)) {
            X509_NAME_free(name);
            return fp_err_set(err, FP_ERR_CRYPTO, "forced subject attribute");
        }
    }
    for (int i = 0; i < X509_NAME_entry_count(in); i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(in, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)), copy = 0, forced = 0;
        for (int k = 0; k < p->n_copy; k++)
            copy |= p->copy_nids[k] == nid;
        for (int k = 0; k < p->n_force; k++)
            forced |= p->force[k].nid == nid;
        if (copy && !forced && !X509_NAME_add_entry(name, e, -1, 0)) {
            X509_NAME_free(name);
            return fp_err_set(err, FP_ERR_CRYPTO, "copying subject attribute");
        }
    }
    *out = name;
    return FP_ERR_OK;
}

struct fp_build_fixed {
    /* the extensions every certificate of one profile and issuer shares,
     * in the order fp_cert_build adds them; NULL when absent */
    X509_EXTENSION *bc, *ku, *eku, *aki, *nocheck, *cdp, *aia;
    int64_t issuer_nb, issuer_na; /* the issuer's validity, Unix seconds */
};

static int set_validity(const fp_build_params *bp, X509 *cert, fp_error *err)
{
    const fp_profile *p = bp->profile;
    int days = bp->days > 0 ? bp->days : p->validity_days;
    time_t nb = (time_t)(bp->now - p->backdate_seconds);
    time_t na = (time_t)(bp->now + (int64_t)days * 86400);

    if (days > p->max_validity_days)
        return fp_err_set(err, FP_ERR_VALIDITY, "%d days exceeds profile %s maximum of %d",
                          days, p->name, p->max_validity_days);
    if (bp->issuer != NULL) {
        /* RFC 5280 6.1: a certificate outliving its issuer would fail path
         * validation; clamp notAfter and keep notBefore inside the issuer's */
        const ASN1_TIME *inb = X509_get0_notBefore(bp->issuer);
        const ASN1_TIME *ina = X509_get0_notAfter(bp->issuer);
        int64_t i_nb = bp->fixed ? bp->fixed->issuer_nb : fp_asn1_time_unix(inb);
        int64_t i_na = bp->fixed ? bp->fixed->issuer_na : fp_asn1_time_unix(ina);
        if (i_na <= bp->now || i_nb >= bp->now)
            return fp_err_set(err, FP_ERR_ISSUER_EXPIRED, "issuing CA is not valid now");
        if (i_na < (int64_t)na) {
            if (!X509_set1_notAfter(cert, ina))
                return fp_err_set(err, FP_ERR_CRYPTO, "notAfter");
            na = 0;
        }
        if (i_nb > (int64_t)nb) {
            if (!X509_set1_notBefore(cert, inb))
                return fp_err_set(err, FP_ERR_CRYPTO, "notBefore");
            nb = 0;
        }
    }
    if ((nb && !X509_time_adj_ex(X509_getm_notBefore(cert), 0, 0, &nb)) ||
        (na && !X509_time_adj_ex(X509_getm_notAfter(cert), 0, 0, &na)))
        return fp_err_set(err, FP_ERR_CRYPTO, "setting validity");
    return FP_ERR_OK;
}

static int add_key_usage(X509 *cert, X509V3_CTX *ctx, const fp_profile *p, fp_error *err)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {KU_DIGITAL_SIGNATURE, "digitalSignature"}, {KU_NON_REPUDIATION, "nonRepudiation"},
        {KU_KEY_ENCIPHERMENT, "keyEncipherment"},   {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
        {KU_KEY_AGREEMENT, "keyAgreement"},         {KU_KEY_CERT_SIGN, "keyCertSign"},
        {KU_CRL_SIGN, "cRLSign"},
    };
    char buf[256] = "critical";
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        if (p->key_usage & names[i].bit) {
            strcat(buf, ",");
            strcat(buf, names[i].name);
        }
    }
    return add_conf_ext(cert, ctx, NID_key_usage, buf, err);
}

static int add_eku(X509 *cert, const fp_profile *p, fp_error *err)
{
    EXTENDED_KEY_USAGE *eku;
    int ok = 1;

    if (p->n_eku == 0)
        return FP_ERR_OK;
    eku = sk_ASN1_OBJECT_new_null();
    if (eku == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int i = 0; i < p->n_eku && ok; i++) {
        ASN1_OBJECT *o = OBJ_nid2obj(p->eku_nids[i]);
        ok = o != NULL && sk_ASN1_OBJECT_push(eku, o) > 0;
    }
    ok = ok && X509_add1_ext_i2d(cert, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1;
    sk_ASN1_OBJECT_free(eku); /* objects from OBJ_nid2obj are static */
    return ok ? FP_ERR_OK : fp_err_set(err, FP_ERR_CRYPTO, "extendedKeyUsage");
}

static int add_sans(X509 *cert, X509_REQ *req, int critical, fp_error *err)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    int rc = FP_ERR_OK;
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        GENERAL_NAMES *gens;
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name)
            continue;
        gens = X509V3_EXT_d2i(ext);
        if (gens != NULL && sk_GENERAL_NAME_num(gens) > 0 &&
            X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, critical, X509V3_ADD_DEFAULT) != 1)
            rc = fp_err_set(err, FP_ERR_CRYPTO, "subjectAltName");
        GENERAL_NAMES_free(gens);
        break;
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

/* Copy the request's SubjectPublicKeyInfo into cert as it is encoded.
 * X509_set_pubkey would re-encode the key through OpenSSL 3's encoder and
 * decoder machinery, which costs more than signing the certificate. */
static int copy_spki(X509 *cert, X509_REQ *req)
{
    X509_PUBKEY *src = X509_REQ_get_X509_PUBKEY(req);
    ASN1_OBJECT *alg = NULL, *aobj = NULL;
    const ASN1_OBJECT *palg_obj = NULL;
    const unsigned char *pk = NULL;
    const void *pval = NULL;
    X509_ALGOR *palg = NULL;
    void *val = NULL;
    unsigned char *enc = NULL;
    int pklen = 0, ptype = V_ASN1_UNDEF;

    if (src == NULL || !X509_PUBKEY_get0_param(&alg, &pk, &pklen, &palg, src) || pklen <= 0)
        return 0;
    X509_ALGOR_get0(&palg_obj, &ptype, &pval, palg);
    aobj = OBJ_dup(palg_obj);
    if (ptype == V_ASN1_OBJECT)
        val = OBJ_dup(pval);
    else if (ptype == V_ASN1_SEQUENCE || ptype == V_ASN1_OCTET_STRING)
        val = ASN1_STRING_dup(pval);
    enc = OPENSSL_memdup(pk, (size_t)pklen);
    if (aobj == NULL || enc == NULL || (pval != NULL && ptype != V_ASN1_NULL && val == NULL) ||
        !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert), aobj, ptype, val, enc, pklen)) {
        ASN1_OBJECT_free(aobj);
        if (ptype == V_ASN1_OBJECT)
            ASN1_OBJECT_free(val);
        else
            ASN1_STRING_free(val);
        OPENSSL_free(enc);
        return 0;
    }
    return 1;
}

/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
static int add_ski(X509 *cert, fp_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    ASN1_OCTET_STRING *ski = NULL;
    int ok;

    ok = X509_pubkey_digest(cert, EVP_sha1(), md, &mdlen) == 1 &&
         (ski = ASN1_OCTET_STRING_new()) != NULL && ASN1_OCTET_STRING_set(ski, md, (int)mdlen) &&
         X509_add1_ext_i2d(cert, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) == 1;
    ASN1_OCTET_STRING_free(ski);
    return ok ? FP_ERR_OK : fp_err_set(err, FP_ERR_CRYPTO, "subjectKeyIdentifier");
}

/* basicConstraints, keyUsage, extendedKeyUsage. */
static int add_head(const fp_build_params *bp, X509 *cert, X509V3_CTX *ctx, fp_error *err)
{
    const fp_profile *p = bp->profile;
    char buf[64];
    int rc;

    if (p->is_ca && p->path_len >= 0)
        snprintf(buf, sizeof(buf), "critical,CA:TRUE,pathlen:%d", p->path_len);
    else
        snprintf(buf, sizeof(buf), p->is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    if ((rc = add_conf_ext(cert, ctx, NID_basic_constraints, buf, err)) != FP_ERR_OK ||
        (rc = add_key_usage(cert, ctx, p, err)) != FP_ERR_OK)
        return rc;
    return add_eku(cert, p, err);
}

/* OCSP no-check, CRL distribution point, authority information access. */
static int add_tail(const fp_build_params *bp, X509 *cert, X509V3_CTX *ctx, fp_error *err)
{
    char buf[600];
    int rc;

    if (bp->profile->ocsp_nocheck &&
        (rc = add_conf_ext(cert, ctx, NID_id_pkix_OCSP_noCheck, "ignored", err)) != FP_ERR_OK)
        return rc;
    if (bp->crl_url != NULL && bp->crl_url[0]) {
        snprintf(buf, sizeof(buf), "URI:%s", bp->crl_url);
        if ((rc = add_conf_ext(cert, ctx, NID_crl_distribution_points, buf, err)) != FP_ERR_OK)
            return rc;
    }
    if ((bp->ocsp_url && bp->ocsp_url[0]) || (bp->ca_issuers_url && bp->ca_issuers_url[0])) {
        buf[0] = '\0';
        if (bp->ocsp_url && bp->ocsp_url[0])
            snprintf(buf, sizeof(buf), "OCSP;URI:%s", bp->ocsp_url);
        if (bp->ca_issuers_url && bp->ca_issuers_url[0])
            snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%scaIssuers;URI:%s",
                     buf[0] ? "," : "", bp->ca_issuers_url);
        if ((rc = add_conf_ext(cert, ctx, NID_info_access, buf, err)) != FP_ERR_OK)
            return rc;
    }
    return FP_ERR_OK;
}

/* Add a copy of ext (if any). */
static int add_copy(X509 *cert, const X509_EXTENSION *ext, fp_error *err)
{
    if (ext != NULL && !X509_add_ext(cert, (X509_EXTENSION *)ext, -1))
        return fp_err_set(err, FP_ERR_CRYPTO, "adding %s extension",
                          OBJ_nid2sn(OBJ_obj2nid(X509_EXTENSION_get_object((X509_EXTENSION *)ext))));
    return FP_ERR_OK;
}

int fp_cert_build(const fp_build_params *bp, X509 **out, fp_error *err)
{
    const fp_profile *p = bp->profile;
    const fp_build_fixed *f = bp->issuer ? bp->fixed : NULL;
    X509 *cert = NULL;
    X509_NAME *subject = NULL;
    X509V3_CTX ctx;
    int rc = FP_ERR_OK;

    *out = NULL;
    cert = X509_new();
    if (cert == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = build_subject(p, bp->req, &subject, err)) != FP_ERR_OK)
        goto out;
    if (!X509_set_version(cert, X509_VERSION_3) ||
        !X509_set_serialNumber(cert, (ASN1_INTEGER *)bp->serial) ||
        !X509_set_subject_name(cert, subject) ||
        !X509_set_issuer_name(cert, bp->issuer ? X509_get_subject_name(bp->issuer) : subject) ||
        !copy_spki(cert, bp->req)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "setting certificate fields");
        goto out;
    }
    if ((rc = set_validity(bp, cert, err)) != FP_ERR_OK)
        goto out;

    /* order: basicConstraints, keyUsage, extendedKeyUsage, SKI, AKI,
     * subjectAltName, OCSP no-check, CRL DP, AIA */
    X509V3_set_ctx(&ctx, bp->issuer ? bp->issuer : cert, cert, NULL, NULL, 0);
    if (f != NULL) {
        if ((rc = add_copy(cert, f->bc, err)) != FP_ERR_OK ||
            (rc = add_copy(cert, f->ku, err)) != FP_ERR_OK ||
            (rc = add_copy(cert, f->eku, err)) != FP_ERR_OK ||
            (rc = add_ski(cert, err)) != FP_ERR_OK || (rc = add_copy(cert, f->aki, err)) != FP_ERR_OK)
            goto out;
    } else if ((rc = add_head(bp, cert, &ctx, err)) != FP_ERR_OK ||
               (rc = add_ski(cert, err)) != FP_ERR_OK ||
               (rc = add_conf_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always", err)) !=
                   FP_ERR_OK) {
        goto out;
    }
    if ((rc = add_sans(cert, bp->req, X509_NAME_entry_count(subject) == 0, err)) != FP_ERR_OK)
        goto out;
    if (f != NULL) {
        if ((rc = add_copy(cert, f->nocheck, err)) != FP_ERR_OK ||
            (rc = add_copy(cert, f->cdp, err)) != FP_ERR_OK ||
            (rc = add_copy(cert, f->aia, err)) != FP_ERR_OK)
            goto out;
    } else if ((rc = add_tail(bp, cert, &ctx, err)) != FP_ERR_OK) {
        goto out;
    }
    *out = cert;
    cert = NULL;
out:
    X509_NAME_free(subject);
    X509_free(cert);
    return rc;
}

/* A copy of cert's extension nid, or NULL when it has none. */
static X509_EXTENSION *take_ext(X509 *cert, int nid)
{
    int i = X509_get_ext_by_NID(cert, nid, -1);
    return i >= 0 ? X509_EXTENSION_dup(X509_get_ext(cert, i)) : NULL;
}

int fp_build_fixed_new(const fp_build_params *bp, fp_build_fixed **out, fp_error *err)
{
    fp_build_fixed *f = NULL;
    X509 *scratch = NULL;
    X509V3_CTX ctx;
    int rc;

    *out = NULL;
    if (bp->issuer == NULL)
        return fp_err_set(err, FP_ERR_ARG, "fixed extensions need an issuer");
    if ((f = calloc(1, sizeof(*f))) == NULL || (scratch = X509_new()) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    /* the same builders fp_cert_build uses, on a scratch certificate */
    X509V3_set_ctx(&ctx, bp->issuer, scratch, NULL, NULL, 0);
    if ((rc = add_head(bp, scratch, &ctx, err)) != FP_ERR_OK ||
        (rc = add_conf_ext(scratch, &ctx, NID_authority_key_identifier, "keyid:always", err)) !=
            FP_ERR_OK ||
        (rc = add_tail(bp, scratch, &ctx, err)) != FP_ERR_OK)
        goto out;
    f->bc = take_ext(scratch, NID_basic_constraints);
    f->ku = take_ext(scratch, NID_key_usage);
    f->eku = take_ext(scratch, NID_ext_key_usage);
    f->aki = take_ext(scratch, NID_authority_key_identifier);
    f->nocheck = take_ext(scratch, NID_id_pkix_OCSP_noCheck);
    f->cdp = take_ext(scratch, NID_crl_distribution_points);
    f->aia = take_ext(scratch, NID_info_access);
    if (X509_get_ext_count(scratch) !=
        (f->bc != NULL) + (f->ku != NULL) + (f->eku != NULL) + (f->aki != NULL) +
            (f->nocheck != NULL) + (f->cdp != NULL) + (f->aia != NULL)) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL); /* a copy failed */
        goto out;
    }
    f->issuer_nb = fp_asn1_time_unix(X509_get0_notBefore(bp->issuer));
    f->issuer_na = fp_asn1_time_unix(X509_get0_notAfter(bp->issuer));
    *out = f;
    f = NULL;
out:
    fp_build_fixed_free(f);
    X509_free(scratch);
    return rc;
}

void fp_build_fixed_free(fp_build_fixed *f)
{
    if (f == NULL)
        return;
    X509_EXTENSION_free(f->bc);
    X509_EXTENSION_free(f->ku);
    X509_EXTENSION_free(f->eku);
    X509_EXTENSION_free(f->aki);
    X509_EXTENSION_free(f->nocheck);
    X509_EXTENSION_free(f->cdp);
    X509_EXTENSION_free(f->aia);
    free(f);
}
