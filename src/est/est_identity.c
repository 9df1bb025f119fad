/*
 * est_identity.c - which name an authenticated caller may request
 * (issue 8, defect 4).
 *
 * RFC 7030 3.3.2 leaves it to the server to decide whether the identity in
 * a CSR is one the authenticated client may ask for; without a rule any
 * device holding a certificate could obtain another device's name.
 *
 * Tokens: the token's --cn pattern (token.h, docs/policy.md) limits the CN.
 * Certificates (simpleenroll, serverkeygen; simplereenroll has its own
 * RFC 7030 4.2.2 rule in est_enroll.c), per the label's cert_identity:
 *   same          the CSR's subject and subjectAltNames equal the
 *                 authenticating certificate's, or the certificate being
 *                 issued (after the profile's subject rules) has the same
 *                 subject and SANs as it (a certificate we issued already
 *                 went through those rules);
 *   cn            the CSR's CN equals the certificate's CN;
 *   serialnumber  the CSR's CN equals the certificate's subject
 *                 serialNumber (X.520), the usual IDevID case (IEEE 802.1AR);
 *   pattern       the CSR's CN matches cert_identity_pattern (the token CN
 *                 pattern language, token.h), in
 *                 which {cn} and {serialnumber} stand for the certificate's
 *                 attributes (inserted literally, never as wildcards).
 * In the last three modes SANs are bounded by the profile only.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "est.h"
#include "token.h"

#define NAME_MAX_UTF8 256

/* The first nid attribute of n as UTF-8 into buf; false when absent, too
 * long, or holding a NUL (which could not be compared as a string). */
static bool name_attr(const X509_NAME *n, int nid, char *buf, size_t size)
{
    int i = X509_NAME_get_index_by_NID((X509_NAME *)n, nid, -1);
    unsigned char *u = NULL;
    int len;
    bool ok = false;

    buf[0] = '\0';
    if (i < 0)
        return false;
    len = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)));
    if (len >= 0 && (size_t)len < size && memchr(u, 0, (size_t)len) == NULL) {
        memcpy(buf, u, (size_t)len);
        buf[len] = '\0';
        ok = true;
    }
    OPENSSL_free(u);
    return ok;
}

static GENERAL_NAMES *req_sans(X509_REQ *csr)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *gens = NULL;
    int i = exts ? X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1) : -1;

    if (i >= 0)
        gens = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, i));
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return gens;
}

/* Same set of names (order aside); NULL is the empty set. */
static bool sans_equal(GENERAL_NAMES *a, GENERAL_NAMES *b)
{
    int na = a ? sk_GENERAL_NAME_num(a) : 0, nb = b ? sk_GENERAL_NAME_num(b) : 0;

    if (na != nb)
        return false;
    for (int pass = 0; pass < 2; pass++) {
        GENERAL_NAMES *x = pass ? b : a, *y = pass ? a : b;
        for (int i = 0; i < na; i++) {
            bool found = false;
            for (int k = 0; k < nb && !found; k++)
                found = GENERAL_NAME_cmp(sk_GENERAL_NAME_value(x, i), sk_GENERAL_NAME_value(y, k)) == 0;
            if (!found)
                return false;
        }
    }
    return true;
}

/* One attribute value as UTF-8 (owned by *u); -1 when it does not convert. */
static int value_utf8(const X509_NAME_ENTRY *e, unsigned char **u)
{
    int n = ASN1_STRING_to_UTF8(u, X509_NAME_ENTRY_get_data(e));
    if (n < 0) {
        *u = NULL;
        ERR_clear_error();
    }
    return n;
}

/* The same names, exactly: the same RDN structure, attribute types in the
 * same order and values equal as UTF-8 text, octet for octet.  Only the
 * string type may differ (a PrintableString "a" is the UTF8String "a").
 * Not X509_NAME_cmp: it compares OpenSSL's canonical form (RFC 4518-like:
 * ASCII case folded, leading/trailing spaces dropped, inner runs of
 * spaces collapsed), so "CN=sensor-1" would stand for "CN=SENSOR-1" or
 * "CN= sensor  1 "-like variants, names a relying party comparing
 * certificates' subjects octet for octet takes for another device. */
static bool names_equal(const X509_NAME *a, const X509_NAME *b)
{
    int n = X509_NAME_entry_count(a);

    if (n != X509_NAME_entry_count(b))
        return false;
    for (int i = 0; i < n; i++) {
        const X509_NAME_ENTRY *ea = X509_NAME_get_entry(a, i), *eb = X509_NAME_get_entry(b, i);
        unsigned char *ua = NULL, *ub = NULL;
        int la, lb;
        bool same;

        if (X509_NAME_ENTRY_set(ea) != X509_NAME_ENTRY_set(eb) ||
            OBJ_cmp(X509_NAME_ENTRY_get_object(ea), X509_NAME_ENTRY_get_object(eb)) != 0)
            return false;
        la = value_utf8(ea, &ua);
        lb = value_utf8(eb, &ub);
        if (la < 0 || lb < 0) /* not text: the same type and octets */
            same = ASN1_STRING_cmp(X509_NAME_ENTRY_get_data(ea), X509_NAME_ENTRY_get_data(eb)) == 0;
        else
            same = la == lb && memcmp(ua, ub, (size_t)la) == 0;
        OPENSSL_free(ua);
        OPENSSL_free(ub);
        if (!same)
            return false;
    }
    return true;
}

bool est_same_identity(X509 *a, X509 *b)
{
    GENERAL_NAMES *sa = X509_get_ext_d2i(a, NID_subject_alt_name, NULL, NULL);
    GENERAL_NAMES *sb = X509_get_ext_d2i(b, NID_subject_alt_name, NULL, NULL);
    bool same = names_equal(X509_get_subject_name(a), X509_get_subject_name(b)) &&
                sans_equal(sa, sb);
    GENERAL_NAMES_free(sa);
    GENERAL_NAMES_free(sb);
    return same;
}

static bool csr_same_as(X509_REQ *csr, X509 *cert)
{
    GENERAL_NAMES *sr, *sc;
    bool same;

    if (!names_equal(X509_REQ_get_subject_name(csr), X509_get_subject_name(cert)))
        return false;
    sr = req_sans(csr);
    sc = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    same = sans_equal(sr, sc);
    GENERAL_NAMES_free(sr);
    GENERAL_NAMES_free(sc);
    return same;
}

bool est_csr_same_identity(X509_REQ *csr, X509 *cert)
{
    return csr_same_as(csr, cert);
}

/* Append s to out, marking its positions literal. */
static bool append_literal(char *out, bool *lit, size_t size, size_t *pos, const char *s,
                           bool literal)
{
    for (; *s; s++) {
        if (*pos + 1 >= size)
            return false;
        lit[*pos] = literal;
        out[(*pos)++] = *s;
    }
    out[*pos] = '\0';
    return true;
}

/* cert_identity_pattern with {cn} and {serialnumber} replaced by the
 * certificate's values, which lit marks as literal text (a '?' in a
 * serial number is no wildcard). */
static bool expand_pattern(const char *pat, const char *cn, const char *sn, char *out, bool *lit,
                           size_t size)
{
    size_t pos = 0;
    char one[2] = {0, 0};

    out[0] = '\0';
    while (*pat) {
        if (!strncasecmp(pat, "{cn}", 4)) {
            if (!cn[0] || !append_literal(out, lit, size, &pos, cn, true))
                return false;
            pat += 4;
        } else if (!strncasecmp(pat, "{serialnumber}", 14)) {
            if (!sn[0] || !append_literal(out, lit, size, &pos, sn, true))
                return false;
            pat += 14;
        } else {
            one[0] = *pat++;
            if (!append_literal(out, lit, size, &pos, one, false))
                return false;
        }
    }
    return true;
}

static int refuse(fp_error *err, const est_label *lb, const char *why)
{
    return fp_err_set(err, FP_ERR_CSR_SUBJECT, "%s (label cert_identity = %s)", why,
                      lb->cfg->cert_identity);
}

int est_check_requested_name(const est_label *lb, const est_identity *id, X509_REQ *csr,
                             X509 *issued, fp_error *err)
{
    const char *mode = lb->cfg->cert_identity;
    X509_NAME *subj = X509_REQ_get_subject_name(csr);
    char want[NAME_MAX_UTF8], cn[NAME_MAX_UTF8], cert_cn[NAME_MAX_UTF8], sn[NAME_MAX_UTF8];
    char pat[FP_TOKEN_TEMPLATE_MAX];
    bool lit[FP_TOKEN_TEMPLATE_MAX];
    bool have_cn = name_attr(subj, NID_commonName, cn, sizeof(cn));

    if (!id->by_cert) {
        char esc[4 * NAME_MAX_UTF8];
        if (id->cn_pattern[0] && !fp_token_cn_match(id->cn_pattern, cn))
            return fp_err_set(err, FP_ERR_CSR_CN, "CN '%s' does not match the token's pattern '%s'",
                              fp_log_escape(esc, sizeof(esc), cn), id->cn_pattern);
        return FP_ERR_OK;
    }
    if (id->cert == NULL)
        return fp_err_set(err, FP_ERR_INTERNAL, "certificate identity without a certificate");
    if (!strcasecmp(mode, "same")) {
        if (csr_same_as(csr, id->cert) || (issued != NULL && est_same_identity(issued, id->cert)))
            return FP_ERR_OK;
        return refuse(err, lb, "the requested subject and subjectAltNames must be those of the "
                               "authenticating client certificate");
    }
    (void)name_attr(X509_get_subject_name(id->cert), NID_commonName, cert_cn, sizeof(cert_cn));
    (void)name_attr(X509_get_subject_name(id->cert), NID_serialNumber, sn, sizeof(sn));
    if (!strcasecmp(mode, "cn")) {
        if (have_cn && cert_cn[0] && !strcmp(cn, cert_cn))
            return FP_ERR_OK;
        return refuse(err, lb, "the requested CN must be the client certificate's CN");
    }
    if (!strcasecmp(mode, "serialnumber")) {
        if (have_cn && sn[0] && !strcmp(cn, sn))
            return FP_ERR_OK;
        return refuse(err, lb, sn[0] ? "the requested CN must be the client certificate's "
                                       "subject serialNumber"
                                     : "the client certificate's subject has no serialNumber");
    }
    snprintf(want, sizeof(want), "%s", lb->cfg->cert_identity_pattern);
    if (!expand_pattern(want, cert_cn, sn, pat, lit, sizeof(pat)))
        return refuse(err, lb, "the client certificate lacks an attribute the pattern names");
    if (have_cn && fp_token_cn_match_lit(pat, lit, cn))
        return FP_ERR_OK;
    return refuse(err, lb, "the requested CN does not match cert_identity_pattern");
}
