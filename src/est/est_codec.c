/* est_codec.c - EST wire formats: certs-only PKCS#7, CSR bodies, CsrAttrs,
 * multipart/mixed.  See est.h. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "est.h"

#define CERT_DER_MAX (64 * 1024) /* per certificate; ours are ~0.5-2 KiB */

/* X.690 11.6 (DER): the elements of a SET OF appear in ascending order of
 * their encodings, compared as octet strings, the shorter padded with
 * trailing zero octets.  qsort over indices into the caller's arrays. */
typedef struct {
    const unsigned char *der;
    size_t len;
} der_elem;

static int der_set_order(const void *a, const void *b)
{
    const der_elem *x = a, *y = b;
    size_t common = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->der, y->der, common);
    if (c != 0)
        return c;
    /* equal prefix: the rest of the longer one is compared against zeros */
    const der_elem *lng = x->len > y->len ? x : y;
    for (size_t i = common; i < lng->len; i++)
        if (lng->der[i] != 0)
            return lng == x ? 1 : -1;
    return 0;
}

int est_certs_only_der_b64(const unsigned char *const *ders, const size_t *lens, size_t n,
                           char **out, size_t *len, fp_error *err)
{
    der_elem *order = NULL;
    unsigned char *oid_sd = NULL, *oid_data = NULL, *ver = NULL, *buf = NULL, *p;
    ASN1_INTEGER *one = NULL;
    int l_sd, l_data, l_ver, certs = 0, certs_tlv, encap, sd_content, sd, expl, ci_content, total;
    int rc;

    *out = NULL;
    /* RFC 7030 4.1.3: a certs-only CMC Simple PKI Response is a SignedData
     * with no signers and no encapsulated content (RFC 5272 4.1):
     *   ContentInfo { signedData, [0] EXPLICIT SignedData {
     *     version 1, digestAlgorithms {}, encapContentInfo { id-data },
     *     certificates [0] IMPLICIT (the DER given, in order), signerInfos {} } }
     * The certificates are copied as they were encoded; OpenSSL encodes
     * every other element and writes the headers (ASN1_put_object). */
    if (n == 0)
        return fp_err_set(err, FP_ERR_ARG, "no certificates to send");
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0 || lens[i] > CERT_DER_MAX || (size_t)certs + lens[i] > INT_MAX / 2)
            return fp_err_set(err, FP_ERR_ARG, "certificate %zu: bad encoded length", i);
        certs += (int)lens[i];
    }
    one = ASN1_INTEGER_new();
    if (one == NULL || !ASN1_INTEGER_set(one, 1) || (l_ver = i2d_ASN1_INTEGER(one, &ver)) <= 0 ||
        (l_sd = i2d_ASN1_OBJECT(OBJ_nid2obj(NID_pkcs7_signed), &oid_sd)) <= 0 ||
        (l_data = i2d_ASN1_OBJECT(OBJ_nid2obj(NID_pkcs7_data), &oid_data)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "PKCS7 encode");
        goto out;
    }
    /* certificates is a SET OF (RFC 5652 5.1): DER order, which strict
     * parsers check; the PKCS7 API kept insertion order */
    if ((order = calloc(n, sizeof(*order))) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (der_elem){ders[i], lens[i]};
    qsort(order, n, sizeof(*order), der_set_order);
    certs_tlv = ASN1_object_size(1, certs, 0);
    encap = ASN1_object_size(1, l_data, V_ASN1_SEQUENCE);
    sd_content = l_ver + 2 + encap + certs_tlv + 2; /* the two empty SETs: 31 00 */
    sd = ASN1_object_size(1, sd_content, V_ASN1_SEQUENCE);
    expl = ASN1_object_size(1, sd, 0);
    ci_content = l_sd + expl;
    total = ASN1_object_size(1, ci_content, V_ASN1_SEQUENCE);
    if (certs_tlv < 0 || encap < 0 || sd < 0 || expl < 0 || total < 0 ||
        (buf = OPENSSL_malloc((size_t)total)) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    p = buf;
    ASN1_put_object(&p, 1, ci_content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(p, oid_sd, (size_t)l_sd), p += l_sd;
    ASN1_put_object(&p, 1, sd, 0, V_ASN1_CONTEXT_SPECIFIC);
    ASN1_put_object(&p, 1, sd_content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(p, ver, (size_t)l_ver), p += l_ver;
    ASN1_put_object(&p, 1, 0, V_ASN1_SET, V_ASN1_UNIVERSAL);
    ASN1_put_object(&p, 1, l_data, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(p, oid_data, (size_t)l_data), p += l_data;
    ASN1_put_object(&p, 1, certs, 0, V_ASN1_CONTEXT_SPECIFIC);
    for (size_t i = 0; i < n; i++)
        memcpy(p, order[i].der, order[i].len), p += order[i].len;
    ASN1_put_object(&p, 1, 0, V_ASN1_SET, V_ASN1_UNIVERSAL);
    if (p != buf + total) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "PKCS7 length mismatch");
        goto out;
    }
    rc = fp_b64_encode_lines(buf, (size_t)total, out, len, err);
out:
    free(order);
    OPENSSL_free(buf);
    OPENSSL_free(oid_sd);
    OPENSSL_free(oid_data);
    OPENSSL_free(ver);
    ASN1_INTEGER_free(one);
    return rc;
}

int est_certs_only_b64(STACK_OF(X509) *certs, char **out, size_t *len, fp_error *err)
{
    int n = sk_X509_num(certs), rc = FP_ERR_OK;
    unsigned char **ders = calloc((size_t)(n > 0 ? n : 1), sizeof(*ders));
    size_t *lens = calloc((size_t)(n > 0 ? n : 1), sizeof(*lens));

    *out = NULL;
    if (ders == NULL || lens == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    for (int i = 0; i < n && rc == FP_ERR_OK; i++) {
        int l = i2d_X509(sk_X509_value(certs, i), &ders[i]);
        if (l <= 0)
            rc = fp_err_set(err, FP_ERR_CRYPTO, "certificate encode");
        lens[i] = l > 0 ? (size_t)l : 0;
    }
    if (rc == FP_ERR_OK)
        rc = est_certs_only_der_b64((const unsigned char *const *)ders, lens, (size_t)n, out, len,
                                    err);
out:
    for (int i = 0; ders != NULL && i < n; i++)
        OPENSSL_free(ders[i]);
    free(ders);
    free(lens);
    return rc;
}

int est_decode_csr(const fp_http_req *req, X509_REQ **out, unsigned char **der,
                   size_t *der_len, fp_error *err)
{
    const char *cte = fp_http_header(req, "Content-Transfer-Encoding");
    const unsigned char *p;
    unsigned char *bin = NULL;
    size_t blen = 0;
    X509_REQ *csr = NULL;
    int rc;

    *out = NULL;
    *der = NULL;
    *der_len = 0;
    /* RFC 8951 3.2: the body is base64 regardless; a CTE header, if sent,
     * may only say base64 */
    if (cte != NULL) {
        while (*cte == ' ')
            cte++;
        if (strncasecmp(cte, "base64", 6) != 0 || (cte[6] && cte[6] != ' ' && cte[6] != ';')) {
            /* the value is the client's: escaped, like any in a log */
            char esc[FP_LOG_ESCAPED_MAX(32)];
            return fp_err_set(err, FP_ERR_ARG, "Content-Transfer-Encoding '%s' not supported",
                              fp_log_escape(esc, sizeof(esc), cte));
        }
    }
    if (req->body_len == 0)
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "empty request body");
    if ((rc = fp_b64_decode_lenient((const char *)req->body, req->body_len, FP_CSR_MAX_BYTES,
                                    &bin, &blen, err)) != FP_ERR_OK)
        return rc == FP_ERR_TOO_LARGE ? rc
                                      : fp_err_set(err, FP_ERR_CSR_MALFORMED,
                                                   "body is not base64-encoded PKCS#10");
    p = bin;
    csr = est_csr_fast_parse(bin, blen);
    if (csr == NULL)
        csr = d2i_X509_REQ(NULL, &p, (long)blen);
    else
        p = bin + blen;
    if (csr == NULL || p != bin + blen) {
        X509_REQ_free(csr);
        free(bin);
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "body is not a DER PKCS#10 request");
    }
    *out = csr;
    *der = bin;
    *der_len = blen;
    return FP_ERR_OK;
}

/* ---- CsrAttrs (RFC 7030 4.5.2, RFC 9908) ---- */

typedef struct {
    unsigned char *buf;
    size_t len, cap;
} dbuf;

static int dbuf_add(dbuf *b, const unsigned char *p, size_t n)
{
    if (n == 0)
        return 0; /* memcpy with a NULL pointer is undefined even for 0 bytes */
    if (b->len + n > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256) + n;
        unsigned char *nb = realloc(b->buf, cap);
        if (nb == NULL)
            return -1;
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return 0;
}

/* AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute } */
static int add_oid(dbuf *b, int nid)
{
    ASN1_OBJECT *o = OBJ_nid2obj(nid);
    unsigned char *der = NULL;
    int n = o ? i2d_ASN1_OBJECT(o, &der) : -1, rc;
    if (n <= 0)
        return -1;
    rc = dbuf_add(b, der, (size_t)n);
    OPENSSL_free(der);
    return rc;
}

static int add_attr_oid_value(dbuf *b, int type_nid, int value_nid)
{
    X509_ATTRIBUTE *a = NULL;
    unsigned char *der = NULL;
    int n, rc = -1;

    a = X509_ATTRIBUTE_create(type_nid, V_ASN1_OBJECT, OBJ_nid2obj(value_nid));
    if (a == NULL)
        return -1;
    n = i2d_X509_ATTRIBUTE(a, &der);
    if (n > 0)
        rc = dbuf_add(b, der, (size_t)n);
    OPENSSL_free(der);
    /* X509_ATTRIBUTE_create took the (static) object by reference */
    X509_ATTRIBUTE_free(a);
    return rc;
}

static int add_key_attr(dbuf *b, const fp_profile *p)
{
    /* RFC 7030 4.5.2 example: id-ecPublicKey attribute valued with the curve */
    if (p->algs & FP_ALG_P256)
        return add_attr_oid_value(b, NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1);
    if (p->algs & FP_ALG_P384)
        return add_attr_oid_value(b, NID_X9_62_id_ecPublicKey, NID_secp384r1);
    if (p->algs & FP_ALG_P521)
        return add_attr_oid_value(b, NID_X9_62_id_ecPublicKey, NID_secp521r1);
    if (p->algs & FP_ALG_ED25519)
        return add_oid(b, NID_ED25519);
    if (p->algs & FP_ALG_RSA)
        return add_oid(b, NID_rsaEncryption);
    return 0;
}

static int add_sigalg(dbuf *b, const fp_profile *p)
{
    if (p->algs & FP_ALG_P384)
        return add_oid(b, (p->algs & FP_ALG_P256) ? NID_ecdsa_with_SHA256 : NID_ecdsa_with_SHA384);
    if (p->algs & (FP_ALG_P256 | FP_ALG_P521))
        return add_oid(b, NID_ecdsa_with_SHA256);
    if (p->algs & FP_ALG_ED25519)
        return add_oid(b, NID_ED25519);
    if (p->algs & FP_ALG_RSA)
        return add_oid(b, NID_sha256WithRSAEncryption);
    return 0;
}

int est_csrattrs_build(const fp_est_label *l, const fp_profile *p, unsigned char **out,
                       size_t *len, fp_error *err)
{
    dbuf body = {0}, all = {0};
    char list[256], *save = NULL, *tok;
    int rc = FP_ERR_OK, hl;
    unsigned char hdr[8], *hp = hdr;

    *out = NULL;
    *len = 0;
    if (!strcasecmp(l->csrattrs, "none") || l->csrattrs[0] == '\0')
        return FP_ERR_OK;
    snprintf(list, sizeof(list), "%s",
             !strcasecmp(l->csrattrs, "auto") ? (l->require_pop_linking ? "key, sigalg, challenge"
                                                                       : "key, sigalg")
                                              : l->csrattrs);
    for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        int r;
        if (!strcmp(tok, "key"))
            r = add_key_attr(&body, p);
        else if (!strcmp(tok, "sigalg"))
            r = add_sigalg(&body, p);
        else if (!strcmp(tok, "challenge"))
            r = add_oid(&body, NID_pkcs9_challengePassword);
        else {
            int nid = OBJ_txt2nid(tok);
            if (nid == NID_undef) {
                rc = fp_err_set(err, FP_ERR_CONFIG, "[est %s] csrattrs: unknown item '%s'",
                                l->name, tok);
                goto out;
            }
            r = add_oid(&body, nid);
        }
        if (r != 0) {
            rc = fp_err_set(err, FP_ERR_NOMEM, "csrattrs");
            goto out;
        }
    }
    if (body.len == 0)
        goto out; /* nothing to ask for: 204 */
    /* CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID */
    ASN1_put_object(&hp, 1, (int)body.len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    hl = (int)(hp - hdr);
    if (dbuf_add(&all, hdr, (size_t)hl) != 0 || dbuf_add(&all, body.buf, body.len) != 0) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    rc = fp_b64_encode_lines(all.buf, all.len, (char **)out, len, err);
out:
    free(body.buf);
    free(all.buf);
    return rc;
}

/* Bytes of base64 text b64 as MIME body lines: CRLF line ends (RFC 2045
 * 6.8, RFC 2046 5.1.1), no trailing line break (the CRLF before the next
 * delimiter belongs to the delimiter).  Writes to out when non-NULL;
 * returns the length either way. */
static size_t crlf_body(const char *b64, char *out)
{
    size_t n = 0, len = strlen(b64);

    while (len > 0 && (b64[len - 1] == '\n' || b64[len - 1] == '\r'))
        len--;
    for (size_t i = 0; i < len; i++) {
        if (b64[i] == '\r')
            continue;
        if (b64[i] == '\n') {
            if (out)
                out[n] = '\r', out[n + 1] = '\n';
            n += 2;
        } else {
            if (out)
                out[n] = b64[i];
            n++;
        }
    }
    return n;
}

/* Append the NUL-terminated s at *pos. */
static void put_str(char *buf, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    memcpy(buf + *pos, s, n);
    *pos += n;
}

int est_multipart(const char *ct1, const char *b64_1, const char *ct2, const char *b64_2,
                  char boundary[48], char **out, size_t *len, fp_error *err)
{
    unsigned char rnd[12];
    const char *cts[2] = {ct1, ct2}, *bodies[2] = {b64_1, b64_2};
    char *buf = NULL;
    size_t total = 0, pos = 0;

    *out = NULL;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return fp_err_set(err, FP_ERR_CRYPTO, "RAND_bytes");
    /* RFC 2046 5.1.1: "--" + boundary never starts a line of base64 text,
     * so any boundary is safe; this one is letters, digits and '-' only,
     * a token (RFC 2045 5.1: no tspecial such as '='), so the parameter
     * needs no quoting and naive clients read it too */
    memcpy(boundary, "fleetpki-", 9);
    fp_hex(rnd, sizeof(rnd), boundary + 9);
    /* multipart-body := dash-boundary CRLF body-part *(CRLF dash-boundary
     * CRLF body-part) CRLF dash-boundary "--" (RFC 2046 5.1.1) */
    for (int i = 0; i < 2; i++)
        total += (i ? 2 : 0) + 2 + strlen(boundary) + 2 + strlen("Content-Type: ") +
                 strlen(cts[i]) + 2 + strlen("Content-Transfer-Encoding: base64") + 4 +
                 crlf_body(bodies[i], NULL);
    total += 2 + 2 + strlen(boundary) + 4;
    /* one exact-size OPENSSL_malloc'd buffer (the body may hold a key and
     * is wiped by whoever frees it; no stdio buffers in between) */
    if ((buf = OPENSSL_malloc(total + 1)) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int i = 0; i < 2; i++) {
        put_str(buf, &pos, i ? "\r\n--" : "--");
        put_str(buf, &pos, boundary);
        put_str(buf, &pos, "\r\nContent-Type: ");
        put_str(buf, &pos, cts[i]);
        put_str(buf, &pos, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        pos += crlf_body(bodies[i], buf + pos);
    }
    put_str(buf, &pos, "\r\n--");
    put_str(buf, &pos, boundary);
    put_str(buf, &pos, "--\r\n");
    if (pos != total) {
        OPENSSL_clear_free(buf, total + 1);
        return fp_err_set(err, FP_ERR_INTERNAL, "multipart length mismatch");
    }
    buf[pos] = '\0';
    *out = buf;
    *len = pos;
    return FP_ERR_OK;
}

/* ---- PKCS#8 for server-generated EC keys ---- */

/* Append tag/length/content at *pos (buffer sized by the caller). */
static void put_tlv(unsigned char *buf, size_t *pos, int constructed, int tag, int cls,
                    const unsigned char *content, size_t len)
{
    unsigned char *p = buf + *pos;
    ASN1_put_object(&p, constructed, (int)len, tag, cls);
    if (content != NULL && len > 0)
        memcpy(p, content, len);
    *pos = (size_t)(p - buf) + (content != NULL ? len : 0);
}

int est_ec_pkcs8(EVP_PKEY *key, unsigned char **out, size_t *outlen, fp_error *err)
{
    static const unsigned char v1[] = {0x01}, v0[] = {0x00};
    unsigned char pub[160], d[66], bits[161], *inner = NULL, *alg = NULL, *p8 = NULL;
    unsigned char *curve_der = NULL, *ecpk_der = NULL;
    size_t publen = 0, dlen, pos, inner_len, inner_alloc = 0, alg_len, p8_len, bits_len, a1_len;
    int curve_len, ecpk_len, nid, rc = FP_ERR_OK;
    char group[64];
    BIGNUM *priv = NULL;

    *out = NULL;
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) ||
        (nid = OBJ_txt2nid(group)) == NID_undef ||
        !EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub),
                                         &publen) ||
        !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &priv) ||
        (dlen = (size_t)(EVP_PKEY_get_bits(key) + 7) / 8) > sizeof(d) ||
        BN_bn2binpad(priv, d, (int)dlen) != (int)dlen ||
        (curve_len = i2d_ASN1_OBJECT(OBJ_nid2obj(nid), &curve_der)) <= 0 ||
        (ecpk_len = i2d_ASN1_OBJECT(OBJ_nid2obj(NID_X9_62_id_ecPublicKey), &ecpk_der)) <= 0 ||
        publen + 1 > sizeof(bits)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "reading the generated key");
        goto out;
    }
    /* RFC 5915 ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING,
     * [1] publicKey BIT STRING } (parameters live in the PKCS#8 algorithm) */
    bits[0] = 0; /* no unused bits */
    memcpy(bits + 1, pub, publen);
    bits_len = (size_t)ASN1_object_size(0, (int)publen + 1, V_ASN1_BIT_STRING);
    a1_len = (size_t)ASN1_object_size(1, (int)bits_len, 1);
    inner_len = (size_t)ASN1_object_size(0, 1, V_ASN1_INTEGER) +
                (size_t)ASN1_object_size(0, (int)dlen, V_ASN1_OCTET_STRING) + a1_len;
    inner_alloc = (size_t)ASN1_object_size(1, (int)inner_len, V_ASN1_SEQUENCE);
    inner = OPENSSL_malloc(inner_alloc);
    alg_len = (size_t)ecpk_len + (size_t)curve_len;
    alg = OPENSSL_malloc((size_t)ASN1_object_size(1, (int)alg_len, V_ASN1_SEQUENCE));
    if (inner == NULL || alg == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    pos = 0;
    put_tlv(inner, &pos, 1, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, inner_len);
    put_tlv(inner, &pos, 0, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, v1, 1);
    put_tlv(inner, &pos, 0, V_ASN1_OCTET_STRING, V_ASN1_UNIVERSAL, d, dlen);
    put_tlv(inner, &pos, 1, 1, V_ASN1_CONTEXT_SPECIFIC, NULL, bits_len);
    put_tlv(inner, &pos, 0, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL, bits, publen + 1);
    inner_len = pos;
    pos = 0;
    put_tlv(alg, &pos, 1, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, alg_len);
    memcpy(alg + pos, ecpk_der, (size_t)ecpk_len);
    memcpy(alg + pos + ecpk_len, curve_der, (size_t)curve_len);
    alg_len = pos + alg_len;
    /* RFC 5958 OneAsymmetricKey ::= SEQUENCE { version 0, algorithm, privateKey } */
    p8_len = (size_t)ASN1_object_size(0, 1, V_ASN1_INTEGER) + alg_len +
             (size_t)ASN1_object_size(0, (int)inner_len, V_ASN1_OCTET_STRING);
    p8 = OPENSSL_malloc((size_t)ASN1_object_size(1, (int)p8_len, V_ASN1_SEQUENCE));
    if (p8 == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    pos = 0;
    put_tlv(p8, &pos, 1, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, p8_len);
    put_tlv(p8, &pos, 0, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, v0, 1);
    memcpy(p8 + pos, alg, alg_len);
    pos += alg_len;
    put_tlv(p8, &pos, 0, V_ASN1_OCTET_STRING, V_ASN1_UNIVERSAL, inner, inner_len);
    *out = p8;
    *outlen = pos;
    p8 = NULL;
out:
    OPENSSL_cleanse(d, sizeof(d));
    OPENSSL_clear_free(inner, inner_alloc);
    OPENSSL_free(alg);
    OPENSSL_free(p8);
    OPENSSL_free(curve_der);
    OPENSSL_free(ecpk_der);
    BN_clear_free(priv);
    return rc;
}
