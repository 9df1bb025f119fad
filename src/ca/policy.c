/*
 * policy.c - CSR checks; see policy.h.
 *
 * Order matters for the error a client sees, and for cost: first "is this
 * a request at all", then the signature algorithm and the key (cheap, read
 * from the encoding: a refused key or digest costs no verification), then
 * proof of possession, then extensions, SANs, subject.  Every front end
 * (CLI, EST fast reader, EST general reader) reaches this one function, so
 * they give the same verdict for the same bytes (tests/unit/test_x509.c
 * checks it differentially).
 */
#define _GNU_SOURCE
#include "policy.h"

#include "../x509/x509util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

/* The request's key: first the rules every key must meet
 * (fp_x509_spki_check: RSA exponent and modulus, named curve, point
 * encoding), then the profile's own choice of algorithms and sizes.
 * Read from the SubjectPublicKeyInfo as encoded: no key is decoded here,
 * and it runs before the signature is verified. */
static int check_key(const fp_profile *p, X509_REQ *req, fp_error *err)
{
    fp_spki_info ki;
    unsigned alg = 0;
    int rc = fp_x509_spki_check(X509_REQ_get_X509_PUBKEY(req), &ki, err);

    if (rc != FP_ERR_OK)
        return rc;
    switch (ki.key_nid) {
    case NID_rsaEncryption:
        if (!(p->algs & FP_ALG_RSA))
            return fp_err_set(err, FP_ERR_CSR_KEY_ALG, "RSA keys are not allowed by profile %s",
                              p->name);
        if (ki.bits < p->rsa_min_bits || ki.bits > p->rsa_max_bits)
            return fp_err_set(err, FP_ERR_CSR_KEY_SIZE,
                              "RSA key of %d bits is outside profile %s range [%d, %d]",
                              ki.bits, p->name, p->rsa_min_bits, p->rsa_max_bits);
        return FP_ERR_OK;
    case NID_X9_62_id_ecPublicKey:
        alg = ki.curve_nid == NID_X9_62_prime256v1 ? FP_ALG_P256
              : ki.curve_nid == NID_secp384r1      ? FP_ALG_P384
                                                   : FP_ALG_P521;
        if (!(p->algs & alg))
            return fp_err_set(err, FP_ERR_CSR_KEY_SIZE, "EC curve %s is not allowed by profile %s",
                              OBJ_nid2sn(ki.curve_nid), p->name);
        return FP_ERR_OK;
    case NID_ED25519:
        if (!(p->algs & FP_ALG_ED25519))
            return fp_err_set(err, FP_ERR_CSR_KEY_ALG, "Ed25519 keys are not allowed by profile %s",
                              p->name);
        return FP_ERR_OK;
    default: /* fp_x509_spki_check refuses every other algorithm */
        return fp_err_set(err, FP_ERR_INTERNAL, "unexpected key algorithm");
    }
}

static bool weak_md(int md_nid)
{
    return md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_md4 || md_nid == NID_md2 ||
           md_nid == NID_mdc2 || md_nid == NID_sha224;
}

/* RSASSA-PSS carries its message digest in the parameters (RFC 4055 3.1),
 * and absent parameters or an absent hashAlgorithm mean SHA-1: the OID
 * alone (OBJ_find_sigid_algs gives no digest for it) says nothing.  The
 * digest OpenSSL will verify with, NID_undef when the parameters do not
 * decode (X509_REQ_verify refuses those itself). */
static int pss_md_nid(X509_REQ *req)
{
    const X509_ALGOR *alg = NULL;
    const ASN1_OBJECT *obj = NULL;
    const void *pval = NULL;
    const unsigned char *p;
    RSA_PSS_PARAMS *pss;
    int ptype = V_ASN1_UNDEF, md_nid;

    X509_REQ_get0_signature(req, NULL, &alg);
    if (alg == NULL)
        return NID_undef;
    X509_ALGOR_get0(&obj, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE || pval == NULL)
        return NID_sha1;
    p = ASN1_STRING_get0_data(pval);
    pss = d2i_RSA_PSS_PARAMS(NULL, &p, ASN1_STRING_length(pval));
    if (pss == NULL) {
        ERR_clear_error();
        return NID_undef;
    }
    md_nid = pss->hashAlgorithm == NULL ? NID_sha1 : OBJ_obj2nid(pss->hashAlgorithm->algorithm);
    RSA_PSS_PARAMS_free(pss);
    return md_nid;
}

static int check_sig_alg(X509_REQ *req, fp_error *err)
{
    int sig_nid = X509_REQ_get_signature_nid(req), md_nid = NID_undef, pk_nid = NID_undef;

    if (sig_nid == NID_undef) { /* X509_REQ_new: no algorithm, no signature */
        const ASN1_BIT_STRING *sig = NULL;
        X509_REQ_get0_signature(req, &sig, NULL);
        if (sig == NULL || sig->length == 0)
            return fp_err_set(err, FP_ERR_CSR_POP, "CSR is not signed: no proof of possession");
    }
    if (!OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid))
        return fp_err_set(err, FP_ERR_CSR_SIG_ALG, "unknown signature algorithm %s",
                          OBJ_nid2sn(sig_nid));
    if (weak_md(md_nid))
        return fp_err_set(err, FP_ERR_CSR_SIG_ALG,
                          "signature algorithm %s is too weak", OBJ_nid2sn(sig_nid));
    if (sig_nid == NID_rsassaPss && weak_md(md_nid = pss_md_nid(req)))
        return fp_err_set(err, FP_ERR_CSR_SIG_ALG, "signature algorithm %s with %s is too weak",
                          OBJ_nid2sn(sig_nid), OBJ_nid2sn(md_nid));
    return FP_ERR_OK;
}

/* Unicode explicit directional formatting characters (Unicode UAX #9,
 * 2.1-2.7): LRM, RLM, ALM, LRE..RLO, LRI..PDI.  In a name they make one
 * string display as another ("sensor-\u202egnp.exe"). */
static bool is_bidi_control(unsigned long c)
{
    return c == 0x200E || c == 0x200F || c == 0x061C || (c >= 0x202A && c <= 0x202E) ||
           (c >= 0x2066 && c <= 0x2069);
}

/* Why a subject value is refused ("" when it is not): C0 and C1 control
 * characters, DEL, U+2028/U+2029 (line and paragraph separators),
 * invalid UTF-8 (overlong forms, surrogates), non-ASCII octets in the
 * ASCII string types, and bidi controls unless allowed.  The value, as
 * UTF-8, goes to out (NUL-terminated) when its length is 1..max. */
static const char *text_problem(const ASN1_STRING *s, int max, bool allow_bidi, char *out,
                                size_t outsz)
{
    unsigned char *utf8 = NULL;
    const unsigned char *raw = ASN1_STRING_get0_data(s);
    const char *why = "";
    int type = ASN1_STRING_type(s), rawlen = ASN1_STRING_length(s), n;

    /* PrintableString, IA5String, VisibleString, NumericString are 7-bit
     * (X.680 41); ASN1_STRING_to_UTF8 would read their high octets as
     * Latin-1 and let C1 controls through as two-octet UTF-8 */
    if (type == V_ASN1_PRINTABLESTRING || type == V_ASN1_IA5STRING ||
        type == V_ASN1_VISIBLESTRING || type == V_ASN1_NUMERICSTRING)
        for (int i = 0; i < rawlen; i++)
            if (raw[i] >= 0x80)
                return "non-ASCII octet in an ASCII string type";
    n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) {
        ERR_clear_error();
        return "invalid UTF-8 or an unsupported string type";
    }
    if (n == 0 || n > max || (size_t)n >= outsz) {
        OPENSSL_free(utf8);
        return "empty or too long";
    }
    for (int i = 0; i < n && *why == '\0';) {
        unsigned long c = 0;
        int k = UTF8_getc(utf8 + i, n - i, &c);
        if (k <= 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            why = "invalid UTF-8";
        else if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029)
            why = "control character";
        else if (is_bidi_control(c) && !allow_bidi)
            why = "Unicode bidirectional control character (profile option allow_bidi)";
        i += k > 0 ? k : 1;
    }
    memcpy(out, utf8, (size_t)n);
    out[n] = '\0';
    OPENSSL_free(utf8);
    ERR_clear_error();
    return why;
}

static int nid_in(int nid, const int *list, int n)
{
    for (int i = 0; i < n; i++)
        if (list[i] == nid)
            return 1;
    return 0;
}

static int check_subject(const fp_profile *p, X509_REQ *req, int n_sans, fp_error *err)
{
    const X509_NAME *name = X509_REQ_get_subject_name(req);
    int count = X509_NAME_entry_count(name), n_cn = 0, kept = 0;
    char value[FP_POLICY_MAX_RDN_VALUE + 1], cn[FP_POLICY_MAX_RDN_VALUE + 1] = "";
    unsigned char *der = NULL;
    int der_len = i2d_X509_NAME(name, &der);

    OPENSSL_free(der);
    if (der_len <= 0 || der_len > FP_POLICY_MAX_SUBJECT_DER)
        return fp_err_set(err, FP_ERR_CSR_SUBJECT, "subject is %d bytes, limit %d", der_len,
                          FP_POLICY_MAX_SUBJECT_DER);
    if (count > FP_POLICY_MAX_RDNS)
        return fp_err_set(err, FP_ERR_CSR_SUBJECT, "subject has %d attributes, limit %d",
                          count, FP_POLICY_MAX_RDNS);
    for (int i = 0; i < count; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        int max = nid == NID_commonName ? FP_POLICY_MAX_CN : FP_POLICY_MAX_RDN_VALUE;
        const char *why = text_problem(X509_NAME_ENTRY_get_data(e), max, p->allow_bidi, value,
                                       sizeof(value));
        if (*why != '\0')
            return fp_err_set(err, FP_ERR_CSR_SUBJECT, "subject attribute %s is refused: %s (1..%d bytes)",
                              nid == NID_undef ? "(unknown)" : OBJ_nid2sn(nid), why, max);
        if (nid == NID_commonName) {
            n_cn++;
            memcpy(cn, value, sizeof(cn));
        }
        if (nid_in(nid, p->copy_nids, p->n_copy))
            kept++;
    }
    if (n_cn > 1)
        return fp_err_set(err, FP_ERR_CSR_SUBJECT, "subject has %d common names", n_cn);
    if (n_cn == 0 && p->cn_required)
        return fp_err_set(err, FP_ERR_CSR_CN, "profile %s requires a common name", p->name);
    if (n_cn == 1 && fnmatch(p->cn_pattern, cn, 0) != 0)
        return fp_err_set(err, FP_ERR_CSR_CN, "common name '%s' does not match pattern '%s'",
                          cn, p->cn_pattern);
    if (kept == 0 && p->n_force == 0 && n_sans == 0)
        return fp_err_set(err, FP_ERR_CSR_SUBJECT,
                          "certificate would have an empty subject and no subjectAltName");
    return FP_ERR_OK;
}

static int valid_dns(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum(c) && !(c == '-' && label > 0))
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0 && s[n - 1] != '-';
}

static int ia5_ok(const ASN1_IA5STRING *s, size_t max, char *out, size_t outsz)
{
    int n = ASN1_STRING_length(s);
    const unsigned char *d = ASN1_STRING_get0_data(s);
    if (n <= 0 || (size_t)n > max || (size_t)n >= outsz)
        return 0;
    for (int i = 0; i < n; i++)
        if (d[i] <= 0x20 || d[i] >= 0x7f)
            return 0;
    memcpy(out, d, (size_t)n);
    out[n] = '\0';
    return 1;
}

static int check_sans(const fp_profile *p, GENERAL_NAMES *gens, fp_error *err)
{
    int n = gens ? sk_GENERAL_NAME_num(gens) : 0;
    char buf[FP_POLICY_MAX_URI + 1];

    if (n == 0 && p->san_required)
        return fp_err_set(err, FP_ERR_CSR_SAN, "profile %s requires a subjectAltName", p->name);
    if (n > p->max_sans)
        return fp_err_set(err, FP_ERR_CSR_SAN, "%d subjectAltName entries, profile %s allows %d",
                          n, p->name, p->max_sans);
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        switch (g->type) {
        case GEN_DNS:
            if (!(p->san_types & FP_SAN_DNS))
                return fp_err_set(err, FP_ERR_CSR_SAN, "DNS names not allowed by profile %s", p->name);
            if (!ia5_ok(g->d.dNSName, 253, buf, sizeof(buf)) || !valid_dns(buf))
                return fp_err_set(err, FP_ERR_CSR_SAN,
                                  "DNS name '%s' is not a valid host name (wildcards are refused)",
                                  ia5_ok(g->d.dNSName, 253, buf, sizeof(buf)) ? buf : "?");
            if (fnmatch(p->dns_pattern, buf, FNM_CASEFOLD) != 0)
                return fp_err_set(err, FP_ERR_CSR_SAN, "DNS name '%s' does not match pattern '%s'",
                                  buf, p->dns_pattern);
            break;
        case GEN_IPADD:
            if (!(p->san_types & FP_SAN_IP))
                return fp_err_set(err, FP_ERR_CSR_SAN, "IP addresses not allowed by profile %s", p->name);
            if (g->d.iPAddress->length != 4 && g->d.iPAddress->length != 16)
                return fp_err_set(err, FP_ERR_CSR_SAN, "IP address of %d bytes",
                                  g->d.iPAddress->length);
            break;
        case GEN_URI:
            if (!(p->san_types & FP_SAN_URI))
                return fp_err_set(err, FP_ERR_CSR_SAN, "URIs not allowed by profile %s", p->name);
            if (!ia5_ok(g->d.uniformResourceIdentifier, FP_POLICY_MAX_URI, buf, sizeof(buf)) ||
                strchr(buf, ':') == NULL || !isalpha((unsigned char)buf[0]))
                return fp_err_set(err, FP_ERR_CSR_SAN, "URI SAN is not an absolute URI");
            break;
        case GEN_EMAIL: {
            const char *at;
            if (!(p->san_types & FP_SAN_EMAIL))
                return fp_err_set(err, FP_ERR_CSR_SAN, "email addresses not allowed by profile %s",
                                  p->name);
            if (!ia5_ok(g->d.rfc822Name, 254, buf, sizeof(buf)) ||
                (at = strchr(buf, '@')) == NULL || at == buf || at[1] == '\0' ||
                strchr(at + 1, '@') != NULL)
                return fp_err_set(err, FP_ERR_CSR_SAN, "malformed email address SAN");
            break;
        }
        default:
            return fp_err_set(err, FP_ERR_CSR_SAN,
                              "subjectAltName type %d is not supported", g->type);
        }
    }
    return FP_ERR_OK;
}

/* Check requested extensions; *gens receives the requested SANs (owned). */
static int check_extensions(const fp_profile *p, STACK_OF(X509_EXTENSION) *exts,
                            GENERAL_NAMES **gens, fp_error *err)
{
    int n = sk_X509_EXTENSION_num(exts);
    int seen[FP_POLICY_MAX_EXTENSIONS] = {0};

    *gens = NULL;
    if (n > FP_POLICY_MAX_EXTENSIONS)
        return fp_err_set(err, FP_ERR_CSR_EXT, "%d requested extensions, limit %d", n,
                          FP_POLICY_MAX_EXTENSIONS);
    for (int i = 0; i < n; i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
        void *dec;

        for (int j = 0; j < i; j++)
            if (seen[j] == nid && nid != NID_undef)
                return fp_err_set(err, FP_ERR_CSR_MALFORMED, "extension %s requested twice",
                                  OBJ_nid2sn(nid));
        seen[i] = nid;
        switch (nid) {
        case NID_subject_alt_name:
            dec = X509V3_EXT_d2i(ext);
            if (dec == NULL)
                return fp_err_set(err, FP_ERR_CSR_MALFORMED, "undecodable subjectAltName");
            *gens = dec;
            break;
        case NID_basic_constraints: {
            BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(ext);
            int ca;
            if (bc == NULL)
                return fp_err_set(err, FP_ERR_CSR_MALFORMED, "undecodable basicConstraints");
            ca = bc->ca;
            BASIC_CONSTRAINTS_free(bc);
            if (ca && !p->is_ca)
                return fp_err_set(err, FP_ERR_CSR_CA,
                                  "CSR requests CA:TRUE but profile %s issues leaf certificates",
                                  p->name);
            break;
        }
        case NID_key_usage: {
            ASN1_BIT_STRING *ku = X509V3_EXT_d2i(ext);
            unsigned bits = 0;
            if (ku == NULL)
                return fp_err_set(err, FP_ERR_CSR_MALFORMED, "undecodable keyUsage");
            for (int b = 0; b < 9; b++)
                if (ASN1_BIT_STRING_get_bit(ku, b))
                    bits |= b < 8 ? (0x80u >> b) : 0x8000u;
            ASN1_BIT_STRING_free(ku);
            if (!p->is_ca && (bits & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
                return fp_err_set(err, FP_ERR_CSR_KEY_USAGE,
                                  "CSR requests keyCertSign/cRLSign on leaf profile %s", p->name);
            if (p->requested_extensions == FP_REQEXT_HONOUR && (bits & ~p->key_usage))
                return fp_err_set(err, FP_ERR_CSR_KEY_USAGE,
                                  "CSR requests key usages beyond profile %s", p->name);
            break;
        }
        case NID_ext_key_usage: {
            EXTENDED_KEY_USAGE *eku = X509V3_EXT_d2i(ext);
            int bad = 0;
            if (eku == NULL)
                return fp_err_set(err, FP_ERR_CSR_MALFORMED, "undecodable extendedKeyUsage");
            for (int k = 0; k < sk_ASN1_OBJECT_num(eku); k++) {
                int e = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, k));
                if (e == NID_anyExtendedKeyUsage ||
                    (p->requested_extensions == FP_REQEXT_HONOUR &&
                     !nid_in(e, p->eku_nids, p->n_eku)))
                    bad = 1;
            }
            sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
            if (bad)
                return fp_err_set(err, FP_ERR_CSR_KEY_USAGE,
                                  "CSR requests extended key usages beyond profile %s", p->name);
            break;
        }
        default:
            if (p->requested_extensions == FP_REQEXT_REJECT)
                return fp_err_set(err, FP_ERR_CSR_EXT,
                                  "extension %s is not accepted by profile %s",
                                  nid == NID_undef ? "(unknown)" : OBJ_nid2sn(nid), p->name);
            break;
        }
    }
    return FP_ERR_OK;
}

/* X509_REQ_get_extensions cannot tell "none" from "malformed": count the
 * extension request attributes ourselves.  Both kinds: it returns the
 * PKCS#9 extensionRequest (RFC 2985 5.4.2) or, when there is none,
 * Microsoft's msExtReq, and the CA copies the SANs it returns (build.c),
 * so whichever it reads is the one checked here; a request with more than
 * one leaves which counts to the reader, and is refused. */
static int get_extensions(X509_REQ *req, STACK_OF(X509_EXTENSION) **out, fp_error *err)
{
    int idx = X509_REQ_get_attr_by_NID(req, NID_ext_req, -1);
    int ms = X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1);
    *out = NULL;
    if (idx < 0 && ms < 0)
        return FP_ERR_OK;
    if ((idx >= 0 && ms >= 0) || (idx >= 0 && X509_REQ_get_attr_by_NID(req, NID_ext_req, idx) >= 0) ||
        (ms >= 0 && X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, ms) >= 0))
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "more than one extension request attribute "
                                                     "(extensionRequest, msExtReq)");
    *out = X509_REQ_get_extensions(req);
    if (*out == NULL)
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "undecodable extensionRequest");
    return FP_ERR_OK;
}

static int check(const fp_profile *p, X509_REQ *req, bool own_key, fp_error *err)
{
    STACK_OF(X509_EXTENSION) *exts = NULL;
    GENERAL_NAMES *gens = NULL;
    int rc, pop;

    if ((!own_key && (rc = check_sig_alg(req, err)) != FP_ERR_OK) ||
        (rc = check_key(p, req, err)) != FP_ERR_OK)
        goto out;
    pop = own_key ? 1 : fp_csr_verify(req);
    if (pop < 0) {
        rc = fp_err_set(err, FP_ERR_CSR_MALFORMED, "CSR public key is missing or undecodable");
        goto out;
    }
    if (pop != 1) {
        rc = fp_err_set(err, FP_ERR_CSR_POP,
                        "CSR signature does not verify: no proof of possession of the key");
        goto out;
    }
    if ((rc = get_extensions(req, &exts, err)) != FP_ERR_OK ||
        (rc = check_extensions(p, exts, &gens, err)) != FP_ERR_OK ||
        (rc = check_sans(p, gens, err)) != FP_ERR_OK ||
        (rc = check_subject(p, req, gens ? sk_GENERAL_NAME_num(gens) : 0, err)) != FP_ERR_OK)
        goto out;
out:
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

int fp_policy_check(const fp_profile *p, X509_REQ *req, fp_error *err)
{
    return check(p, req, false, err);
}

int fp_policy_check_own_key(const fp_profile *p, X509_REQ *req, fp_error *err)
{
    return check(p, req, true, err);
}

int fp_policy_check_pop(X509_REQ *req, fp_error *err)
{
    int rc, pop;

    if ((rc = check_sig_alg(req, err)) != FP_ERR_OK ||
        (rc = fp_x509_spki_check(X509_REQ_get_X509_PUBKEY(req), NULL, err)) != FP_ERR_OK)
        return rc;
    pop = fp_csr_verify(req);
    if (pop < 0)
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "CSR public key is missing or undecodable");
    if (pop != 1)
        return fp_err_set(err, FP_ERR_CSR_POP,
                          "CSR signature does not verify: no proof of possession of the key");
    return FP_ERR_OK;
}
