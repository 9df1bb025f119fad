/*
 * lg_payload.c - request bodies made before the clock starts, and cheap
 * validators for the answers.  See loadgen.h.
 */
#define _GNU_SOURCE
#include "loadgen.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define CSR_FILE_MAX (64 * 1024)
#define SERIAL_LINE_MAX 256

char *lg_base64(const unsigned char *in, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

void lg_blobs_free(lg_blob *b, size_t n)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(b[i].data);
    free(b);
}

/* base64 of the DER of req into blob. */
static int req_to_blob(X509_REQ *req, lg_blob *blob)
{
    unsigned char *der = NULL;
    int len = i2d_X509_REQ(req, &der);
    if (len <= 0)
        return -1;
    blob->data = (unsigned char *)lg_base64(der, (size_t)len);
    OPENSSL_free(der);
    if (blob->data == NULL)
        return -1;
    blob->len = strlen((char *)blob->data);
    blob->expect = -1;
    return 0;
}

/* One P-256 CSR: subject and SANs from tmpl if given, else CN=cn. */
static int make_csr(const char *cn, X509 *tmpl, lg_blob *blob)
{
    EVP_PKEY *key = NULL;
    X509_REQ *req = NULL;
    X509_NAME *name = NULL;
    GENERAL_NAMES *sans = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    int rc = -1;

    key = EVP_EC_gen("P-256");
    req = X509_REQ_new();
    if (key == NULL || req == NULL || X509_REQ_set_version(req, 0) != 1 ||
        X509_REQ_set_pubkey(req, key) != 1)
        goto out;
    if (tmpl != NULL) {
        if (X509_REQ_set_subject_name(req, X509_get_subject_name(tmpl)) != 1)
            goto out;
        sans = X509_get_ext_d2i(tmpl, NID_subject_alt_name, NULL, NULL);
        if (sans != NULL) {
            if (X509V3_add1_i2d(&exts, NID_subject_alt_name, sans, 0, 0) != 1 ||
                X509_REQ_add_extensions(req, exts) != 1)
                goto out;
        }
    } else {
        name = X509_NAME_new();
        if (name == NULL ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
                                       -1, -1, 0) != 1 ||
            X509_REQ_set_subject_name(req, name) != 1)
            goto out;
    }
    if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
        goto out;
    rc = req_to_blob(req, blob);
out:
    if (rc != 0)
        ERR_print_errors_fp(stderr);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(sans);
    X509_NAME_free(name);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return rc;
}

int lg_csr_generate(size_t n, const char *prefix, X509 *subject_from, lg_blob **out)
{
    lg_blob *b = calloc(n, sizeof(*b));
    unsigned char rnd[4];
    char cn[128];

    *out = NULL;
    if (b == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1) {
        free(b);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(cn, sizeof(cn), "%s-%02x%02x%02x%02x-%zu", prefix, rnd[0], rnd[1], rnd[2],
                 rnd[3], i);
        if (make_csr(cn, subject_from, &b[i]) != 0) {
            lg_blobs_free(b, n);
            return -1;
        }
    }
    *out = b;
    return 0;
}

int lg_csr_load_dir(const char *dir, lg_blob **out, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    lg_blob *b = NULL;
    size_t cnt = 0, cap = 0;
    int rc = -1;

    *out = NULL;
    *n = 0;
    if (d == NULL) {
        perror(dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        const char *dot = strrchr(e->d_name, '.');
        char path[4096];
        X509_REQ *req = NULL;
        BIO *bio;
        if (dot == NULL || (strcmp(dot, ".csr") && strcmp(dot, ".pem") && strcmp(dot, ".der")))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        bio = BIO_new_file(path, "rb");
        if (bio == NULL)
            goto out;
        req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
        if (req == NULL) {
            ERR_clear_error();
            (void)BIO_reset(bio);
            req = d2i_X509_REQ_bio(bio, NULL);
        }
        BIO_free(bio);
        if (req == NULL) {
            fprintf(stderr, "%s: not a PKCS#10 request\n", path);
            goto out;
        }
        if (cnt == cap) {
            lg_blob *nb;
            cap = cap ? cap * 2 : 64;
            nb = realloc(b, cap * sizeof(*b));
            if (nb == NULL) {
                X509_REQ_free(req);
                goto out;
            }
            b = nb;
        }
        if (req_to_blob(req, &b[cnt]) != 0) {
            X509_REQ_free(req);
            goto out;
        }
        X509_REQ_free(req);
        cnt++;
    }
    if (cnt == 0) {
        fprintf(stderr, "%s: no *.csr, *.pem or *.der requests\n", dir);
        goto out;
    }
    *out = b;
    *n = cnt;
    b = NULL;
    rc = 0;
out:
    closedir(d);
    if (b != NULL)
        lg_blobs_free(b, cnt);
    return rc;
}

/* One OCSP request for serial (hex) against issuer. */
static int make_ocsp(X509 *issuer, const char *hex, int expect, lg_blob *blob)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = NULL;
    ASN1_INTEGER *serial = NULL;
    BIGNUM *bn = NULL;
    unsigned char *der = NULL;
    int len, rc = -1;

    if (req == NULL || BN_hex2bn(&bn, hex) == 0 || (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL)
        goto out;
    /* RFC 6960 4.1.1 CertID: hashes of the issuer's name and key */
    id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(issuer),
                          X509_get0_pubkey_bitstr(issuer), serial);
    if (id == NULL || OCSP_request_add0_id(req, id) == NULL)
        goto out;
    id = NULL;
    len = i2d_OCSP_REQUEST(req, &der);
    if (len <= 0)
        goto out;
    blob->data = malloc((size_t)len);
    if (blob->data == NULL)
        goto out;
    memcpy(blob->data, der, (size_t)len);
    blob->len = (size_t)len;
    blob->expect = expect;
    rc = 0;
out:
    OPENSSL_free(der);
    OCSP_CERTID_free(id);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    OCSP_REQUEST_free(req);
    return rc;
}

typedef struct {
    char hex[48];
    int expect;
} sample;

int lg_ocsp_build(const char *issuer_path, const char *serials_path, size_t max,
                  int unknown_pct, lg_blob **out, size_t *n)
{
    FILE *f = NULL;
    BIO *bio = NULL;
    X509 *issuer = NULL;
    sample *s = NULL;
    lg_blob *b = NULL;
    char line[SERIAL_LINE_MAX];
    size_t seen = 0, kept = 0, n_unknown, total = 0;
    int rc = -1;

    *out = NULL;
    *n = 0;
    bio = BIO_new_file(issuer_path, "r");
    if (bio == NULL || (issuer = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
        fprintf(stderr, "%s: cannot read issuer certificate\n", issuer_path);
        goto out;
    }
    s = calloc(max, sizeof(*s));
    if (s == NULL)
        goto out;
    if (serials_path != NULL) {
        f = fopen(serials_path, "r");
        if (f == NULL) {
            perror(serials_path);
            goto out;
        }
        /* reservoir sampling keeps memory at max entries for any file size */
        while (fgets(line, sizeof(line), f) != NULL) {
            char hex[48], st[32] = "good";
            size_t slot;
            if (sscanf(line, "%47s %31s", hex, st) < 1 || hex[0] == '#')
                continue;
            seen++;
            if (kept < max) {
                slot = kept++;
            } else {
                uint64_t r;
                RAND_bytes((unsigned char *)&r, sizeof(r));
                slot = (size_t)(r % seen);
                if (slot >= max)
                    continue;
            }
            snprintf(s[slot].hex, sizeof(s[slot].hex), "%s", hex);
            s[slot].expect = !strcmp(st, "revoked") ? V_OCSP_CERTSTATUS_REVOKED
                             : !strcmp(st, "good")  ? V_OCSP_CERTSTATUS_GOOD
                                                    : -1;
        }
    }
    n_unknown = kept == 0 ? max : (kept * (size_t)unknown_pct) / (size_t)(100 - unknown_pct);
    b = calloc(kept + n_unknown, sizeof(*b));
    if (b == NULL)
        goto out;
    for (size_t i = 0; i < kept; i++, total++)
        if (make_ocsp(issuer, s[i].hex, s[i].expect, &b[total]) != 0)
            goto out;
    for (size_t i = 0; i < n_unknown; i++, total++) {
        unsigned char r[16];
        char hex[33];
        RAND_bytes(r, sizeof(r));
        r[0] = (unsigned char)((r[0] & 0x7f) | 0x40); /* same shape as fp_serial_random */
        for (int k = 0; k < 16; k++)
            snprintf(hex + 2 * k, 3, "%02X", r[k]);
        if (make_ocsp(issuer, hex, V_OCSP_CERTSTATUS_UNKNOWN, &b[total]) != 0)
            goto out;
    }
    /* shuffle so every client sees the good/revoked/unknown mix */
    for (size_t i = total; i > 1; i--) {
        uint64_t r;
        lg_blob t;
        RAND_bytes((unsigned char *)&r, sizeof(r));
        size_t j = (size_t)(r % i);
        t = b[i - 1];
        b[i - 1] = b[j];
        b[j] = t;
    }
    *out = b;
    *n = total;
    b = NULL;
    rc = 0;
out:
    if (rc != 0)
        ERR_print_errors_fp(stderr);
    lg_blobs_free(b, total);
    free(s);
    if (f != NULL)
        fclose(f);
    X509_free(issuer);
    BIO_free(bio);
    return rc;
}

/* Enter (descend into) or skip the next DER element at *p; its tag and
 * class must match (-1: any).  Optionally returns its content and length. */
static int der_next(const unsigned char **p, long *avail, int want_tag, int want_class,
                    bool enter, const unsigned char **content, long *clen)
{
    const unsigned char *q = *p;
    long len;
    int tag, cls, r = ASN1_get_object(&q, &len, &tag, &cls, *avail);
    if ((r & 0x80) || (want_tag >= 0 && tag != want_tag) || (want_class >= 0 && cls != want_class))
        return -1;
    if (content != NULL) {
        *content = q;
        *clen = len;
    }
    if (enter) {
        *avail -= (long)(q - *p);
        *p = q;
    } else {
        *avail -= (long)(q - *p) + len;
        *p = q + len;
    }
    return 0;
}

/* A certs-only SignedData by a DER walk: ContentInfo { signedData,
 * [0] { SEQUENCE { version, digestAlgorithms, encapContentInfo,
 * certificates [0] { at least one SEQUENCE } ... } } } (RFC 5652 5.1). */
static int pkcs7_walk(const unsigned char *der, long len)
{
    static const unsigned char signed_data[] = {0x2a, 0x86, 0x48, 0x86, 0xf7,
                                                0x0d, 0x01, 0x07, 0x02};
    const unsigned char *p = der, *c;
    long avail = len, clen;

    if (der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, false, &c, &clen) ||
        clen != (long)sizeof(signed_data) || memcmp(c, signed_data, sizeof(signed_data)) != 0 ||
        der_next(&p, &avail, 0, V_ASN1_CONTEXT_SPECIFIC, true, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, false, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_SET, V_ASN1_UNIVERSAL, false, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, false, NULL, NULL) ||
        der_next(&p, &avail, 0, V_ASN1_CONTEXT_SPECIFIC, true, NULL, &clen) || clen <= 0 ||
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, false, NULL, NULL))
        return -1;
    return 0;
}

int lg_check_pkcs7_b64(const unsigned char *b64, size_t len, bool deep)
{
    unsigned char *clean = NULL, *der = NULL;
    const unsigned char *p;
    PKCS7 *p7 = NULL;
    size_t n = 0, pad = 0;
    int dlen, rc = -1;

    clean = malloc(len + 1);
    if (clean == NULL)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!isspace(b64[i]))
            clean[n++] = b64[i];
    if (n == 0 || n % 4 != 0)
        goto out;
    while (pad < 2 && clean[n - 1 - pad] == '=')
        pad++;
    der = malloc(n / 4 * 3 + 1);
    if (der == NULL)
        goto out;
    dlen = EVP_DecodeBlock(der, clean, (int)n);
    if (dlen < 0 || pkcs7_walk(der, dlen - (long)pad) != 0)
        goto out;
    if (deep) {
        p = der;
        p7 = d2i_PKCS7(NULL, &p, dlen - (int)pad);
        if (p7 == NULL || !PKCS7_type_is_signed(p7) || p7->d.sign == NULL ||
            sk_X509_num(p7->d.sign->cert) < 1)
            goto out;
    }
    rc = 0;
out:
    ERR_clear_error();
    PKCS7_free(p7);
    free(der);
    free(clean);
    return rc;
}

/* Status of the first SingleResponse, walking the DER without decoding
 * any certificate or key (OpenSSL 3.0 decodes the signer certificate's
 * key through its slow provider decoders in OCSP_response_get1_basic,
 * which would make the client the bottleneck).  RFC 6960 4.2.1. */
static int ocsp_walk_status(const unsigned char *der, long len)
{
    const unsigned char *p = der, *c;
    long avail = len, clen;
    int tag, cls;

    if (der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_ENUMERATED, V_ASN1_UNIVERSAL, false, &c, &clen) ||
        clen != 1 || c[0] != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
        der_next(&p, &avail, 0, V_ASN1_CONTEXT_SPECIFIC, true, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, false, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_OCTET_STRING, V_ASN1_UNIVERSAL, true, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, NULL, NULL) || /* Basic */
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, NULL, NULL))   /* tbs */
        return -1;
    {
        /* optional version [0], then responderID [1] or [2] */
        const unsigned char *q = p;
        long l;
        if (ASN1_get_object(&q, &l, &tag, &cls, avail) & 0x80)
            return -1;
        if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0 &&
            der_next(&p, &avail, 0, V_ASN1_CONTEXT_SPECIFIC, false, NULL, NULL))
            return -1;
    }
    if (der_next(&p, &avail, -1, V_ASN1_CONTEXT_SPECIFIC, false, NULL, NULL) || /* responderID */
        der_next(&p, &avail, V_ASN1_GENERALIZEDTIME, V_ASN1_UNIVERSAL, false, NULL, NULL) ||
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, NULL, NULL) || /* responses */
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true, NULL, NULL) || /* Single */
        der_next(&p, &avail, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, false, NULL, NULL))  /* certID */
        return -1;
    {
        /* certStatus: good [0], revoked [1], unknown [2] (context tags) */
        const unsigned char *q = p;
        long l;
        if ((ASN1_get_object(&q, &l, &tag, &cls, avail) & 0x80) ||
            cls != V_ASN1_CONTEXT_SPECIFIC || tag > 2)
            return -1;
        return tag == 0 ? V_OCSP_CERTSTATUS_GOOD
               : tag == 1 ? V_OCSP_CERTSTATUS_REVOKED
                          : V_OCSP_CERTSTATUS_UNKNOWN;
    }
}

int lg_check_ocsp(const unsigned char *der, size_t len, int expect, bool deep)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *bs = NULL;
    int rc = -1, status, reason;

    status = ocsp_walk_status(der, (long)len);
    if (status < 0)
        return -1;
    if (expect >= 0 && status != expect)
        return -2;
    if (!deep)
        return 0;
    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (resp == NULL || OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
        (bs = OCSP_response_get1_basic(resp)) == NULL || OCSP_resp_count(bs) < 1)
        goto out;
    status = OCSP_single_get0_status(OCSP_resp_get0(bs, 0), &reason, NULL, NULL, NULL);
    rc = (expect < 0 || status == expect) ? 0 : -2;
out:
    ERR_clear_error();
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    return rc;
}
