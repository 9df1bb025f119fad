/*
 * scep_msg.c - the SCEP pkiMessage codec (RFC 8894 3): requests parsed
 * and answers built with OpenSSL's CMS and PKCS7 APIs; nothing here walks
 * ASN.1 by hand.  The SCEP attribute OIDs are registered with OBJ_create
 * (OpenSSL knows none of them) and read and written with the CMS signed
 * attribute calls.
 */
#define _POSIX_C_SOURCE 200809L
#include "scep.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "../x509/x509util.h"

/* RFC 8894 3.2.1: id-VeriSign 2.16.840.1.113733, pki-attributes .1.9.x;
 * failInfoText from RFC 8894 3.2.1.4 (id-aa-failInfoText is under
 * id-pkix 1.3.6.1.5.5.7.24.1). */
static const struct {
    const char *oid, *sn, *ln;
} scep_oid_table[] = {
    {"2.16.840.1.113733.1.9.2", "scepMessageType", "SCEP messageType"},
    {"2.16.840.1.113733.1.9.3", "scepPkiStatus", "SCEP pkiStatus"},
    {"2.16.840.1.113733.1.9.4", "scepFailInfo", "SCEP failInfo"},
    {"2.16.840.1.113733.1.9.5", "scepSenderNonce", "SCEP senderNonce"},
    {"2.16.840.1.113733.1.9.6", "scepRecipientNonce", "SCEP recipientNonce"},
    {"2.16.840.1.113733.1.9.7", "scepTransactionID", "SCEP transactionID"},
    {"1.3.6.1.5.5.7.24.1", "scepFailInfoText", "SCEP failInfoText"},
};
enum { O_MSGTYPE, O_STATUS, O_FAILINFO, O_SNONCE, O_RNONCE, O_TXID, O_FAILTEXT, O_COUNT };
static int scep_nid[O_COUNT];

int scep_oids_init(fp_error *err)
{
    for (int i = 0; i < O_COUNT; i++) {
        int nid = OBJ_txt2nid(scep_oid_table[i].oid);
        if (nid == NID_undef)
            nid = OBJ_create(scep_oid_table[i].oid, scep_oid_table[i].sn, scep_oid_table[i].ln);
        if (nid == NID_undef)
            return fp_err_set(err, FP_ERR_CRYPTO, "registering SCEP OID %s", scep_oid_table[i].oid);
        scep_nid[i] = nid;
    }
    return FP_ERR_OK;
}

/* IssuerAndSubject (RFC 8894 3.3.3): SEQUENCE { issuer Name, subject Name },
 * declared with OpenSSL's ASN.1 templates. */
typedef struct scep_ias {
    X509_NAME *issuer;
    X509_NAME *subject;
} SCEP_IAS;
ASN1_SEQUENCE(SCEP_IAS) = {
    ASN1_SIMPLE(SCEP_IAS, issuer, X509_NAME),
    ASN1_SIMPLE(SCEP_IAS, subject, X509_NAME),
} ASN1_SEQUENCE_END(SCEP_IAS)
IMPLEMENT_ASN1_FUNCTIONS(SCEP_IAS)

void scep_msg_clear(scep_msg *m)
{
    if (m == NULL)
        return;
    X509_free(m->signer);
    X509_REQ_free(m->csr);
    OPENSSL_free(m->csr_der);
    X509_NAME_free(m->issuer);
    X509_NAME_free(m->subject);
    ASN1_INTEGER_free(m->serial);
    memset(m, 0, sizeof(*m));
}

static int failf(scep_fail *f, int info, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(scep_fail *f, int info, int code, const char *fmt, ...)
{
    va_list ap;
    f->info = info;
    f->err.code = code;
    va_start(ap, fmt);
    vsnprintf(f->err.msg, sizeof(f->err.msg), fmt, ap);
    va_end(ap);
    /* the OpenSSL queue is not needed by the caller: the reason is ours */
    ERR_clear_error();
    return code;
}

/* A PrintableString signed attribute (RFC 8894 3.2.1: messageType,
 * transactionID), copied into buf.  false when absent, of another type,
 * empty, too long or not printable. */
static bool attr_printable(CMS_SignerInfo *si, int idx, char *buf, size_t size)
{
    ASN1_STRING *s = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(scep_nid[idx]), -3,
                                                 V_ASN1_PRINTABLESTRING);
    const unsigned char *d;
    int n;

    if (s == NULL)
        return false;
    d = ASN1_STRING_get0_data(s);
    n = ASN1_STRING_length(s);
    if (n <= 0 || (size_t)n >= size)
        return false;
    for (int i = 0; i < n; i++)
        if (d[i] < 0x20 || d[i] > 0x7e)
            return false;
    memcpy(buf, d, (size_t)n);
    buf[n] = '\0';
    return true;
}

/* Digests we accept for a request's signature: SHA-2 (GetCACaps
 * advertises SHA-256 and SHA-512); with legacy (a label's
 * scep_legacy_crypto) also SHA-1, which RFC 8894 3.5.2 still lets a
 * client fall back to and Debian's scepclient (micromdm 2.1) uses for
 * every request whatever the caps say.  MD5 never (badAlg).  Answers are
 * always signed with SHA-256 or the request's stronger digest. */
static const EVP_MD *accepted_md(int nid, bool legacy)
{
    switch (nid) {
    case NID_sha1:
        return legacy ? EVP_sha1() : NULL;
    case NID_sha256:
        return EVP_sha256();
    case NID_sha384:
        return EVP_sha384();
    case NID_sha512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

/* Content ciphers accepted in a request's envelope, also used for the
 * answer (RFC 8894 3.5.2: the same algorithm as the request).  Three-key
 * 3DES is still RFC 8894's baseline.  Single DES only with legacy (see
 * scep_legacy_ctx_new), and the answer to it is AES-256-CBC. */
static bool accepted_cipher(int nid)
{
    return nid == NID_aes_128_cbc || nid == NID_aes_192_cbc || nid == NID_aes_256_cbc ||
           nid == NID_des_ede3_cbc;
}

/* The content cipher of an EnvelopedData, read through the (public)
 * PKCS7 structures: CMS has no getter for it. */
static int envelope_cipher(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
    int nid = NID_undef;

    if (p7 != NULL && PKCS7_type_is_enveloped(p7) && p7->d.enveloped != NULL &&
        p7->d.enveloped->enc_data != NULL && p7->d.enveloped->enc_data->algorithm != NULL)
        nid = OBJ_obj2nid(p7->d.enveloped->enc_data->algorithm->algorithm);
    PKCS7_free(p7);
    return nid;
}

/* The inner content of the message type (RFC 8894 3.3). */
static int parse_inner(scep_msg *m, const unsigned char *d, size_t n, scep_fail *f)
{
    const unsigned char *p = d;

    switch (m->type) {
    case SCEP_PKCSREQ:
    case SCEP_RENEWALREQ:
        m->csr = d2i_X509_REQ(NULL, &p, (long)n);
        if (m->csr == NULL || p != d + n)
            break;
        if ((m->csr_der = OPENSSL_memdup(d, n)) == NULL)
            return failf(f, SCEP_BAD_REQUEST, FP_ERR_NOMEM, "%s", "out of memory");
        m->csr_der_len = n;
        return FP_ERR_OK;
    case SCEP_CERTPOLL: {
        SCEP_IAS *ias = d2i_SCEP_IAS(NULL, &p, (long)n);
        if (ias == NULL || p != d + n) {
            SCEP_IAS_free(ias);
            break;
        }
        m->issuer = ias->issuer;
        m->subject = ias->subject;
        ias->issuer = ias->subject = NULL;
        SCEP_IAS_free(ias);
        return FP_ERR_OK;
    }
    case SCEP_GETCERT:
    case SCEP_GETCRL: {
        PKCS7_ISSUER_AND_SERIAL *is = d2i_PKCS7_ISSUER_AND_SERIAL(NULL, &p, (long)n);
        if (is == NULL || p != d + n) {
            PKCS7_ISSUER_AND_SERIAL_free(is);
            break;
        }
        m->issuer = is->issuer;
        m->serial = is->serial;
        is->issuer = NULL;
        is->serial = NULL;
        PKCS7_ISSUER_AND_SERIAL_free(is);
        return FP_ERR_OK;
    }
    default:
        break;
    }
    /* the same answer as a failed decryption (see scep.h) */
    return failf(f, SCEP_BAD_MESSAGE_CHECK, FP_ERR_ARG, "%s",
                 "pkcsPKIEnvelope does not decrypt to the message type's content");
}

/* The signer's certificate among those the message carries. */
static X509 *find_signer(CMS_ContentInfo *cms, CMS_SignerInfo *si)
{
    STACK_OF(X509) *certs = CMS_get1_certs(cms);
    X509 *found = NULL;

    for (int i = 0; i < sk_X509_num(certs) && found == NULL; i++)
        if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, i)) == 0 &&
            X509_up_ref(sk_X509_value(certs, i)))
            found = sk_X509_value(certs, i);
    sk_X509_pop_free(certs, X509_free);
    return found;
}

OSSL_LIB_CTX *scep_legacy_ctx_new(fp_error *err)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    if (ctx == NULL || OSSL_PROVIDER_load(ctx, "default") == NULL ||
        OSSL_PROVIDER_load(ctx, "legacy") == NULL) {
        scep_legacy_ctx_free(ctx);
        fp_err_set(err, FP_ERR_CRYPTO, "loading OpenSSL's legacy provider (for single DES)");
        return NULL;
    }
    return ctx;
}

/* OSSL_LIB_CTX_free leaves the providers loaded into it: unload them
 * first (collected, then unloaded: not from inside the iteration). */
typedef struct prov_list {
    OSSL_PROVIDER *p[4];
    int n;
} prov_list;

static int collect_provider(OSSL_PROVIDER *p, void *arg)
{
    prov_list *l = arg;
    if (l->n < 4)
        l->p[l->n++] = p;
    return 1;
}

void scep_legacy_ctx_free(OSSL_LIB_CTX *ctx)
{
    prov_list l = {{NULL}, 0};
    if (ctx == NULL)
        return;
    OSSL_PROVIDER_do_all(ctx, collect_provider, &l);
    for (int i = 0; i < l.n; i++)
        OSSL_PROVIDER_unload(l.p[i]);
    OSSL_LIB_CTX_free(ctx);
}

int scep_msg_parse(const unsigned char *der, size_t len, X509 *ra_cert, EVP_PKEY *ra_key,
                   OSSL_LIB_CTX *legacy, scep_msg *m, scep_fail *f)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = NULL, *env = NULL;
    CMS_SignerInfo *si;
    STACK_OF(CMS_SignerInfo) *sis;
    X509_ALGOR *dig = NULL;
    BIO *content = NULL, *plain = NULL;
    ASN1_STRING *nonce;
    char type[8];
    char *endp = NULL;
    const unsigned char *cd = NULL;
    long cl, tl;
    int rc = FP_ERR_OK;
    fp_error kerr = {0};

    (void)ra_cert;
    memset(m, 0, sizeof(*m));
    memset(f, 0, sizeof(*f));
    if (len == 0 || len > INT_MAX)
        return failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "%s", "empty or oversized pkiMessage");
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (cms == NULL || p != der + len) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "%s", "not a DER CMS ContentInfo");
        goto out;
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
        OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "%s", "not SignedData over data (RFC 8894 3.1)");
        goto out;
    }
    sis = CMS_get0_SignerInfos(cms);
    if (sk_CMS_SignerInfo_num(sis) != 1) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "%s", "SignedData must have exactly one signer");
        goto out;
    }
    si = sk_CMS_SignerInfo_value(sis, 0);
    /* what the failure answer needs first (RFC 8894 3.3.2: transactionID
     * and the nonce echoed), though not yet authenticated */
    if (!attr_printable(si, O_TXID, m->txid, sizeof(m->txid)))
        m->txid[0] = '\0';
    nonce = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(scep_nid[O_SNONCE]), -3,
                                        V_ASN1_OCTET_STRING);
    if (nonce != NULL && ASN1_STRING_length(nonce) == SCEP_NONCE_LEN) {
        memcpy(m->nonce, ASN1_STRING_get0_data(nonce), SCEP_NONCE_LEN);
        m->has_nonce = true;
    }
    if ((m->signer = find_signer(cms, si)) == NULL) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "%s",
                   "the signer's certificate is not in the message (RFC 8894 3.1)");
        goto out;
    }
    if (m->txid[0] == '\0' || !m->has_nonce ||
        !attr_printable(si, O_MSGTYPE, type, sizeof(type))) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "%s",
                   "missing or malformed transactionID, senderNonce or messageType "
                   "(RFC 8894 3.2.1)");
        goto out;
    }
    tl = strtol(type, &endp, 10);
    m->type = (endp != type && *endp == '\0' && tl > 0 && tl < 100) ? (int)tl : 0;
    if (m->type != SCEP_PKCSREQ && m->type != SCEP_RENEWALREQ && m->type != SCEP_CERTPOLL &&
        m->type != SCEP_GETCERT && m->type != SCEP_GETCRL) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "messageType '%s' is not a request",
                   type);
        goto out;
    }
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
    if (dig == NULL || (m->md = accepted_md(OBJ_obj2nid(dig->algorithm), legacy != NULL)) == NULL) {
        rc = failf(f, SCEP_BAD_ALG, FP_ERR_CSR_SIG_ALG,
                   "digest algorithm %s not accepted (SHA-1 or SHA-2, RFC 8894 3.5.2)",
                   dig != NULL ? OBJ_nid2sn(OBJ_obj2nid(dig->algorithm)) : "(none)");
        goto out;
    }
    /* every key a client hands in meets the key rules (x509util.h) */
    if (fp_x509_cert_key_check(m->signer, &kerr) != FP_ERR_OK) {
        rc = failf(f, SCEP_BAD_ALG, kerr.code, "signer key: %s", kerr.msg);
        goto out;
    }
    /* signature over the authenticated attributes and the content; the
     * signer's chain is judged by the operation (self-signed for PKCSReq) */
    content = BIO_new(BIO_s_mem());
    if (content == NULL ||
        CMS_verify(cms, NULL, NULL, NULL, content, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
        rc = failf(f, SCEP_BAD_MESSAGE_CHECK, FP_ERR_CSR_POP, "%s",
                   "the message signature does not verify");
        goto out;
    }
    cl = BIO_get_mem_data(content, (char **)&cd);
    if (cl <= 0) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "%s", "no pkcsPKIEnvelope");
        goto out;
    }
    m->cipher_nid = envelope_cipher(cd, (size_t)cl);
    p = cd;
    /* single DES lives in the legacy provider: only that envelope is
     * decoded in the library context that has it */
    if (legacy != NULL && m->cipher_nid == NID_des_cbc &&
        (env = CMS_ContentInfo_new_ex(legacy, NULL)) == NULL) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_NOMEM, "%s", "out of memory");
        goto out;
    }
    if (d2i_CMS_ContentInfo(&env, &p, cl) == NULL) {
        CMS_ContentInfo_free(env);
        env = NULL;
    }
    if (env == NULL || p != cd + cl || OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped) {
        rc = failf(f, SCEP_BAD_REQUEST, FP_ERR_ARG, "%s",
                   "pkcsPKIEnvelope is not a DER EnvelopedData");
        goto out;
    }
    if (!accepted_cipher(m->cipher_nid) && !(legacy != NULL && m->cipher_nid == NID_des_cbc)) {
        rc = failf(f, SCEP_BAD_ALG, FP_ERR_ARG, "content cipher %s not accepted (AES-CBC or 3DES; single DES only with scep_legacy_crypto)",
                   OBJ_nid2sn(m->cipher_nid));
        goto out;
    }
    /* no certificate named: OpenSSL then tries every recipient and, when
     * none decrypts, goes on with a random key (its countermeasure to
     * Bleichenbacher's attack); failures from here on look alike */
    plain = BIO_new(BIO_s_mem());
    if (plain == NULL || CMS_decrypt(env, ra_key, NULL, NULL, plain, CMS_BINARY) != 1) {
        rc = failf(f, SCEP_BAD_MESSAGE_CHECK, FP_ERR_ARG, "%s",
                   "pkcsPKIEnvelope does not decrypt to the message type's content");
        goto out;
    }
    cl = BIO_get_mem_data(plain, (char **)&cd);
    if (cl <= 0) {
        rc = failf(f, SCEP_BAD_MESSAGE_CHECK, FP_ERR_ARG, "%s",
                   "pkcsPKIEnvelope does not decrypt to the message type's content");
        goto out;
    }
    rc = parse_inner(m, cd, (size_t)cl, f);
out:
    if (plain != NULL) {
        char *d = NULL;
        long n = BIO_get_mem_data(plain, &d);
        if (d != NULL && n > 0)
            OPENSSL_cleanse(d, (size_t)n); /* may hold a challenge password */
    }
    BIO_free(plain);
    BIO_free(content);
    CMS_ContentInfo_free(env);
    CMS_ContentInfo_free(cms);
    return rc;
}

/* ---- answers ---- */

/* Degenerate SignedData (no signers, no content) with certs and/or a CRL.
 * Built with the CMS API, whose encoder sorts the certificates' SET OF
 * as DER requires (X.690 11.6; the PKCS7 API keeps insertion order). */
static int degenerate(STACK_OF(X509) *certs, X509_CRL *crl, unsigned char **out, size_t *outlen,
                      fp_error *err)
{
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_DETACHED);
    int len, rc = FP_ERR_OK;

    *out = NULL;
    if (cms == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, "certs-only SignedData");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(certs); i++)
        if (!CMS_add1_cert(cms, sk_X509_value(certs, i))) {
            rc = fp_err_set(err, FP_ERR_NOMEM, "certs-only SignedData");
            goto out;
        }
    if (crl != NULL && !CMS_add1_crl(cms, crl)) {
        rc = fp_err_set(err, FP_ERR_NOMEM, "CRL-only SignedData");
        goto out;
    }
    if ((len = i2d_CMS_ContentInfo(cms, out)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "certs-only SignedData");
        goto out;
    }
    *outlen = (size_t)len;
out:
    CMS_ContentInfo_free(cms);
    return rc;
}

int scep_certs_only(STACK_OF(X509) *certs, unsigned char **out, size_t *outlen, fp_error *err)
{
    return degenerate(certs, NULL, out, outlen, err);
}

static bool add_printable(CMS_SignerInfo *si, int idx, const char *s)
{
    return CMS_signed_add1_attr_by_OBJ(si, OBJ_nid2obj(scep_nid[idx]), V_ASN1_PRINTABLESTRING,
                                       s, (int)strlen(s)) == 1;
}

static bool add_octets(CMS_SignerInfo *si, int idx, const unsigned char *d, int n)
{
    return CMS_signed_add1_attr_by_OBJ(si, OBJ_nid2obj(scep_nid[idx]), V_ASN1_OCTET_STRING, d,
                                       n) == 1;
}

/* The degenerate SignedData carrying the certificate or CRL, enveloped to
 * the requester's signing certificate (RFC 8894 3.3.2). */
static int envelope(const scep_msg *req, const scep_rep *rep, unsigned char **out, int *outlen,
                    fp_error *err)
{
    STACK_OF(X509) *certs = sk_X509_new_null(), *rcpt = sk_X509_new_null();
    X509 *cert = NULL;
    X509_CRL *crl = NULL;
    unsigned char *inner = NULL;
    size_t inner_len = 0;
    BIO *in = NULL;
    CMS_ContentInfo *env = NULL;
    const unsigned char *p;
    int rc = FP_ERR_OK;
    int cipher = accepted_cipher(req->cipher_nid) ? req->cipher_nid : NID_aes_256_cbc;

    *out = NULL;
    if (certs == NULL || rcpt == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if (rep->crl_der != NULL) {
        p = rep->crl_der;
        if ((crl = d2i_X509_CRL(NULL, &p, (long)rep->crl_der_len)) == NULL) {
            rc = fp_err_set(err, FP_ERR_CRYPTO, "CRL does not decode");
            goto out;
        }
    } else {
        p = rep->cert_der;
        if (p == NULL || (cert = d2i_X509(NULL, &p, (long)rep->cert_der_len)) == NULL ||
            !sk_X509_push(certs, cert)) {
            X509_free(cert);
            rc = fp_err_set(err, FP_ERR_CRYPTO, "certificate does not decode");
            goto out;
        }
    }
    if ((rc = degenerate(certs, crl, &inner, &inner_len, err)) != FP_ERR_OK)
        goto out;
    if (req->signer == NULL || !sk_X509_push(rcpt, req->signer) ||
        (in = BIO_new_mem_buf(inner, (int)inner_len)) == NULL ||
        (env = CMS_encrypt(rcpt, in, EVP_get_cipherbynid(cipher), CMS_BINARY)) == NULL ||
        (*outlen = i2d_CMS_ContentInfo(env, out)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "enveloping the answer to the requester");
        goto out;
    }
out:
    CMS_ContentInfo_free(env);
    BIO_free(in);
    OPENSSL_free(inner);
    X509_CRL_free(crl);
    sk_X509_pop_free(certs, X509_free);
    sk_X509_free(rcpt);
    return rc;
}

/* SHA-256, or the request's digest when stronger. */
static const EVP_MD *answer_md(const EVP_MD *req_md)
{
    return req_md != NULL && EVP_MD_get_size(req_md) > 32 ? req_md : EVP_sha256();
}

int scep_certrep(const scep_msg *req, const scep_rep *rep, X509 *ra_cert, EVP_PKEY *ra_key,
                 unsigned char **out, size_t *outlen, fp_error *err)
{
    CMS_ContentInfo *sd = NULL;
    CMS_SignerInfo *si;
    BIO *data = NULL;
    unsigned char *env = NULL, nonce[SCEP_NONCE_LEN];
    int env_len = 0, len, rc = FP_ERR_OK;
    char num[8];

    *out = NULL;
    if (rep->status == SCEP_SUCCESS &&
        (rc = envelope(req, rep, &env, &env_len, err)) != FP_ERR_OK)
        return rc;
    /* FAILURE and PENDING carry no pkcsPKIEnvelope: empty data content */
    data = env != NULL ? BIO_new_mem_buf(env, env_len) : BIO_new_mem_buf("", 0);
    sd = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    if (data == NULL || sd == NULL || RAND_bytes(nonce, sizeof(nonce)) != 1 ||
        (si = CMS_add1_signer(sd, ra_cert, ra_key, answer_md(req->md),
                              CMS_BINARY | CMS_NOSMIMECAP)) == NULL) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CertRep signer");
        goto out;
    }
    snprintf(num, sizeof(num), "%d", SCEP_CERTREP);
    if (!add_printable(si, O_MSGTYPE, num) ||
        (req->txid[0] && !add_printable(si, O_TXID, req->txid)) ||
        !add_octets(si, O_SNONCE, nonce, (int)sizeof(nonce)) ||
        (req->has_nonce && !add_octets(si, O_RNONCE, req->nonce, SCEP_NONCE_LEN))) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CertRep attributes");
        goto out;
    }
    snprintf(num, sizeof(num), "%d", rep->status);
    if (!add_printable(si, O_STATUS, num)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CertRep attributes");
        goto out;
    }
    if (rep->status == SCEP_FAILURE) {
        snprintf(num, sizeof(num), "%d", rep->fail_info);
        if (!add_printable(si, O_FAILINFO, num) ||
            (rep->text != NULL &&
             CMS_signed_add1_attr_by_OBJ(si, OBJ_nid2obj(scep_nid[O_FAILTEXT]), V_ASN1_UTF8STRING,
                                         rep->text, (int)strlen(rep->text)) != 1)) {
            rc = fp_err_set(err, FP_ERR_CRYPTO, "CertRep attributes");
            goto out;
        }
    }
    if (CMS_final(sd, data, NULL, CMS_BINARY) != 1 || (len = i2d_CMS_ContentInfo(sd, out)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "signing the CertRep");
        goto out;
    }
    *outlen = (size_t)len;
out:
    BIO_free(data);
    CMS_ContentInfo_free(sd);
    OPENSSL_free(env);
    return rc;
}
