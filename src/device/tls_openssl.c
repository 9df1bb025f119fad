/*
 * tls_openssl.c - the OpenSSL 3 backend of libfleetpki-device
 * (tls_backend.h): TLS client connections over a socket, keys, CSRs,
 * certificates, certs-only PKCS#7, CsrAttrs and the RFC 7030 4.4.2
 * encrypted key (CMS).  Everything ASN.1 or crypto is OpenSSL's.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls_backend.h"

struct fpd_key {
    EVP_PKEY *pk;
};

struct fpd_conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

const char *fpd_backend_name(void)
{
    return "openssl";
}

/* Sets e to "what: <OpenSSL's last error>" and drains the error queue. */
static int ossl_err(fpd_errbuf *e, int code, const char *what)
{
    unsigned long l = ERR_peek_last_error();
    char buf[160] = "";

    if (l != 0)
        ERR_error_string_n(l, buf, sizeof(buf));
    ERR_clear_error();
    return l ? fpd_err(e, code, "%s: %s", what, buf) : fpd_err(e, code, "%s", what);
}

static X509 *der_to_x509(const fpd_der *d)
{
    const unsigned char *p = d->der;
    X509 *x = d2i_X509(NULL, &p, (long)d->len);
    if (x != NULL && p != d->der + d->len) {
        X509_free(x); /* trailing bytes: not one certificate */
        return NULL;
    }
    return x;
}

static int add_x509(fpd_certs *out, X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der), rc = -1;
    if (n > 0)
        rc = fpd_certs_add(out, der, (size_t)n);
    OPENSSL_free(der);
    return rc;
}

static STACK_OF(X509) *to_stack(const fpd_certs *c)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    for (size_t i = 0; sk != NULL && c != NULL && i < c->n; i++) {
        X509 *x = der_to_x509(&c->v[i]);
        if (x == NULL || !sk_X509_push(sk, x)) {
            X509_free(x);
            sk_X509_pop_free(sk, X509_free);
            return NULL;
        }
    }
    return sk;
}

static X509_STORE *to_store(const fpd_certs *anchors)
{
    X509_STORE *st = X509_STORE_new();
    for (size_t i = 0; st != NULL && i < anchors->n; i++) {
        X509 *x = der_to_x509(&anchors->v[i]);
        if (x == NULL || !X509_STORE_add_cert(st, x)) {
            X509_free(x);
            X509_STORE_free(st);
            return NULL;
        }
        X509_free(x);
    }
    /* an explicit anchor need not be a self-signed root (RFC 7030 3.6.1) */
    if (st != NULL)
        X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
    return st;
}

/* ---- TLS ---- */

int fpd_conn_open(const fpd_conn_opts *o, fpd_conn **out, fpd_errbuf *e)
{
    fpd_conn *c = NULL;
    X509_STORE *st = NULL;
    STACK_OF(X509) *chain = NULL;
    int rc;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    c->fd = -1;
    if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
        !SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION)) {
        rc = ossl_err(e, FP_DEVICE_ERR_TLS, "TLS context");
        goto out;
    }
    if (o->anchors != NULL) {
        if ((st = to_store(o->anchors)) == NULL) {
            rc = ossl_err(e, FP_DEVICE_ERR_ARG, "trust anchors");
            goto out;
        }
        SSL_CTX_set_cert_store(c->ctx, st); /* takes st */
        st = NULL;
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        /* bootstrap (RFC 7030 4.1.1): the caller checks what it got */
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->client_key != NULL && o->client_chain != NULL && o->client_chain->n > 0) {
        X509 *leaf = NULL;
        if ((chain = to_stack(o->client_chain)) == NULL ||
            (leaf = sk_X509_shift(chain)) == NULL || !SSL_CTX_use_certificate(c->ctx, leaf) ||
            !SSL_CTX_use_PrivateKey(c->ctx, o->client_key->pk) ||
            !SSL_CTX_set1_chain(c->ctx, chain)) {
            X509_free(leaf);
            rc = ossl_err(e, FP_DEVICE_ERR_ARG, "TLS client certificate");
            goto out;
        }
        X509_free(leaf);
    }
    if ((c->ssl = SSL_new(c->ctx)) == NULL) {
        rc = ossl_err(e, FP_DEVICE_ERR_TLS, "TLS connection");
        goto out;
    }
    if (o->anchors != NULL) {
        /* RFC 7030 3.6.1 / RFC 6125: the certificate must name the host
         * (an address: iPAddress SAN) */
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if (X509_VERIFY_PARAM_set1_ip_asc(vp, o->host) != 1 && !SSL_set1_host(c->ssl, o->host)) {
            rc = ossl_err(e, FP_DEVICE_ERR_ARG, "server name");
            goto out;
        }
    }
    if (!strchr(o->host, ':') && !SSL_set_tlsext_host_name(c->ssl, o->host))
        ERR_clear_error(); /* SNI is a courtesy (not allowed for addresses) */
    if ((c->fd = fpd_tcp_connect(o->host, o->port, o->timeout_ms, e)) < 0) {
        rc = FP_DEVICE_ERR_IO;
        goto out;
    }
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) {
        long vr = SSL_get_verify_result(c->ssl);
        if (o->anchors != NULL && vr != X509_V_OK) {
            ERR_clear_error();
            rc = fpd_err(e, FP_DEVICE_ERR_TRUST, "server certificate not trusted: %s",
                         X509_verify_cert_error_string(vr));
        } else {
            rc = ossl_err(e, FP_DEVICE_ERR_TLS, "TLS handshake");
        }
        goto out;
    }
    *out = c;
    c = NULL;
    rc = FP_DEVICE_OK;
out:
    X509_STORE_free(st);
    sk_X509_pop_free(chain, X509_free);
    fpd_conn_close(c);
    return rc;
}

int fpd_conn_write(fpd_conn *c, const void *p, size_t n, fpd_errbuf *e)
{
    size_t w = 0;
    if (n == 0)
        return FP_DEVICE_OK;
    if (SSL_write_ex(c->ssl, p, n, &w) != 1 || w != n)
        return ossl_err(e, FP_DEVICE_ERR_IO, "TLS write");
    return FP_DEVICE_OK;
}

int fpd_conn_read(fpd_conn *c, void *p, size_t n, size_t *got, fpd_errbuf *e)
{
    int r, err;

    *got = 0;
    if ((r = SSL_read_ex(c->ssl, p, n, got)) == 1)
        return FP_DEVICE_OK;
    err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_ZERO_RETURN) {
        *got = 0; /* close_notify: a clean end */
        return FP_DEVICE_OK;
    }
    if (err == SSL_ERROR_SSL &&
        ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return fpd_err(e, FP_DEVICE_ERR_TRUNCATED, "connection closed without TLS close_notify");
    }
    if (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        ERR_clear_error();
        return fpd_err(e, FP_DEVICE_ERR_IO, "timeout waiting for the server");
    }
    return ossl_err(e, FP_DEVICE_ERR_IO, "TLS read");
}

int fpd_conn_peer_chain(fpd_conn *c, fpd_certs *out, fpd_errbuf *e)
{
    STACK_OF(X509) *sk = SSL_get_peer_cert_chain(c->ssl); /* client side: leaf included */
    for (int i = 0; sk != NULL && i < sk_X509_num(sk); i++)
        if (add_x509(out, sk_X509_value(sk, i)) != 0)
            return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    return sk != NULL && sk_X509_num(sk) > 0
               ? FP_DEVICE_OK
               : fpd_err(e, FP_DEVICE_ERR_TRUST, "server sent no certificate");
}

int fpd_conn_channel_binding(fpd_conn *c, char *out, size_t size, fpd_errbuf *e)
{
    unsigned char cb[64];
    size_t n;

    if (size < 90)
        return fpd_err(e, FP_DEVICE_ERR_ARG, NULL);
    if (SSL_version(c->ssl) >= TLS1_3_VERSION) {
        /* RFC 9266 tls-exporter: TLS 1.3 has no tls-unique (RFC 8446 C.5) */
        static const char label[] = "EXPORTER-Channel-Binding";
        if (SSL_export_keying_material(c->ssl, cb, 32, label, sizeof(label) - 1, NULL, 0, 0) != 1)
            return ossl_err(e, FP_DEVICE_ERR_TLS, "channel binding");
        n = 32;
    } else {
        /* RFC 5929 3.1 tls-unique: the first Finished of the handshake,
         * ours on a full handshake, the server's on resumption */
        n = SSL_session_reused(c->ssl) ? SSL_get_peer_finished(c->ssl, cb, sizeof(cb))
                                       : SSL_get_finished(c->ssl, cb, sizeof(cb));
        if (n == 0 || n > sizeof(cb))
            return fpd_err(e, FP_DEVICE_ERR_TLS, "no tls-unique");
    }
    EVP_EncodeBlock((unsigned char *)out, cb, (int)n);
    OPENSSL_cleanse(cb, sizeof(cb));
    return FP_DEVICE_OK;
}

void fpd_conn_close(fpd_conn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl); /* our close_notify; no wait for theirs */
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    ERR_clear_error();
    free(c);
}

/* ---- keys ---- */

static int wrap_key(EVP_PKEY *pk, fpd_key **out, fpd_errbuf *e)
{
    if ((*out = malloc(sizeof(**out))) == NULL) {
        EVP_PKEY_free(pk);
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    }
    (*out)->pk = pk;
    return FP_DEVICE_OK;
}

int fpd_key_generate(fp_device_key_type t, fpd_key **out, fpd_errbuf *e)
{
    EVP_PKEY *pk = NULL;

    *out = NULL;
    switch (t) {
    case FP_DEVICE_KEY_AUTO:
    case FP_DEVICE_KEY_P256: pk = EVP_EC_gen("P-256"); break;
    case FP_DEVICE_KEY_P384: pk = EVP_EC_gen("P-384"); break;
    case FP_DEVICE_KEY_P521: pk = EVP_EC_gen("P-521"); break;
    case FP_DEVICE_KEY_ED25519: pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); break;
    case FP_DEVICE_KEY_RSA2048: pk = EVP_RSA_gen(2048); break;
    case FP_DEVICE_KEY_RSA3072: pk = EVP_RSA_gen(3072); break;
    default: return fpd_err(e, FP_DEVICE_ERR_ARG, "unknown key type %d", (int)t);
    }
    if (pk == NULL)
        return ossl_err(e, FP_DEVICE_ERR_CRYPTO, "key generation");
    return wrap_key(pk, out, e);
}

int fpd_key_parse(const unsigned char *p, size_t len, fpd_key **out, fpd_errbuf *e)
{
    EVP_PKEY *pk = NULL;
    BIO *b;
    const unsigned char *q = p;

    *out = NULL;
    if (len > 6 && memcmp(p, "-----", 5) == 0) {
        if ((b = BIO_new_mem_buf(p, (int)len)) == NULL)
            return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        BIO_free(b);
    } else {
        PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)len);
        if (p8 != NULL && q == p + len)
            pk = EVP_PKCS82PKEY(p8);
        PKCS8_PRIV_KEY_INFO_free(p8);
    }
    if (pk == NULL)
        return ossl_err(e, FP_DEVICE_ERR_MALFORMED, "not a private key");
    return wrap_key(pk, out, e);
}

static int bio_out(BIO *b, char **out, size_t *len, fpd_errbuf *e)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    if (n <= 0 || (*out = malloc((size_t)n + 1)) == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    *len = (size_t)n;
    return FP_DEVICE_OK;
}

int fpd_key_to_pem(const fpd_key *k, char **out, size_t *len, fpd_errbuf *e)
{
    BIO *b = BIO_new(BIO_s_secmem()); /* wiped when freed */
    int rc;

    *out = NULL;
    if (b == NULL || !PEM_write_bio_PrivateKey(b, k->pk, NULL, NULL, 0, NULL, NULL))
        rc = ossl_err(e, FP_DEVICE_ERR_CRYPTO, "key to PEM");
    else
        rc = bio_out(b, out, len, e);
    BIO_free(b);
    return rc;
}

void fpd_key_free(fpd_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pk); /* OpenSSL wipes key material */
    free(k);
}

/* ---- certificates ---- */

int fpd_certs_from_pem(const char *pem, size_t len, fpd_certs *out, fpd_errbuf *e)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *x;
    size_t before = out->n;

    if (b == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        int r = add_x509(out, x);
        X509_free(x);
        if (r != 0) {
            BIO_free(b);
            return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        }
    }
    BIO_free(b);
    /* the loop ends at the first block that is not a certificate: only
     * "no more PEM blocks" is a clean end */
    if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE || out->n == before)
        return ossl_err(e, FP_DEVICE_ERR_MALFORMED, "PEM certificates");
    ERR_clear_error();
    return FP_DEVICE_OK;
}

int fpd_certs_to_pem(const fpd_certs *c, char **out, size_t *len, fpd_errbuf *e)
{
    BIO *b = BIO_new(BIO_s_mem());
    int rc = FP_DEVICE_OK;

    *out = NULL;
    if (b == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    for (size_t i = 0; i < c->n && rc == FP_DEVICE_OK; i++) {
        X509 *x = der_to_x509(&c->v[i]);
        if (x == NULL || !PEM_write_bio_X509(b, x))
            rc = ossl_err(e, FP_DEVICE_ERR_CRYPTO, "certificate to PEM");
        X509_free(x);
    }
    if (rc == FP_DEVICE_OK)
        rc = bio_out(b, out, len, e);
    BIO_free(b);
    return rc;
}

int fpd_p7_certs_parse(const unsigned char *der, size_t len, fpd_certs *out, fpd_errbuf *e)
{
    const unsigned char *p = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
    STACK_OF(X509) *certs;
    int rc = FP_DEVICE_OK;

    /* RFC 7030 4.1.3 / RFC 5751 3.2.2: a degenerate SignedData: no
     * signers, at least one certificate, nothing after it */
    if (p7 == NULL || p != der + len || !PKCS7_type_is_signed(p7) || p7->d.sign == NULL ||
        sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info) > 0 ||
        (certs = p7->d.sign->cert) == NULL || sk_X509_num(certs) == 0) {
        PKCS7_free(p7);
        return ossl_err(e, FP_DEVICE_ERR_MALFORMED, "answer is not a certs-only PKCS#7");
    }
    for (int i = 0; i < sk_X509_num(certs) && rc == FP_DEVICE_OK; i++)
        if (add_x509(out, sk_X509_value(certs, i)) != 0)
            rc = fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    PKCS7_free(p7);
    return rc;
}

int fpd_cert_matches_key(const fpd_der *cert, const fpd_key *k, fpd_errbuf *e)
{
    X509 *x = der_to_x509(cert);
    int ok = x != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), k->pk) == 1;
    X509_free(x);
    ERR_clear_error();
    return ok ? FP_DEVICE_OK
              : fpd_err(e, FP_DEVICE_ERR_KEY_MISMATCH, "the certificate does not hold our key");
}

int fpd_cert_verify(const fpd_certs *anchors, const fpd_der *leaf, const fpd_certs *untrusted,
                    int check_time, fpd_errbuf *e)
{
    X509_STORE *st = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *sk = NULL;
    X509 *x = NULL;
    int rc;

    if ((x = der_to_x509(leaf)) == NULL) {
        rc = ossl_err(e, FP_DEVICE_ERR_MALFORMED, "certificate");
        goto out;
    }
    if ((st = to_store(anchors)) == NULL || (sk = to_stack(untrusted)) == NULL ||
        (ctx = X509_STORE_CTX_new()) == NULL || !X509_STORE_CTX_init(ctx, st, x, sk)) {
        rc = ossl_err(e, FP_DEVICE_ERR_NOMEM, "verification context");
        goto out;
    }
    if (!check_time)
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
    if (X509_verify_cert(ctx) != 1) {
        ERR_clear_error();
        rc = fpd_err(e, FP_DEVICE_ERR_TRUST, "certificate does not chain to the trust anchor: %s",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    rc = FP_DEVICE_OK;
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    sk_X509_pop_free(sk, X509_free);
    X509_free(x);
    return rc;
}

int fpd_cert_is_self_signed_ca(const fpd_der *cert)
{
    X509 *x = der_to_x509(cert);
    int r = x != NULL && X509_check_ca(x) > 0 && X509_self_signed(x, 1) == 1;
    X509_free(x);
    ERR_clear_error();
    return r;
}

static int64_t asn1_epoch(const ASN1_TIME *t)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;
    int ok = epoch != NULL && ASN1_TIME_diff(&days, &secs, epoch, t);
    ASN1_TIME_free(epoch);
    return ok ? (int64_t)days * 86400 + secs : 0;
}

int fpd_cert_validity(const fpd_der *cert, int64_t *not_before, int64_t *not_after)
{
    X509 *x = der_to_x509(cert);
    if (x == NULL)
        return FP_DEVICE_ERR_MALFORMED;
    *not_before = asn1_epoch(X509_get0_notBefore(x));
    *not_after = asn1_epoch(X509_get0_notAfter(x));
    X509_free(x);
    return FP_DEVICE_OK;
}

int fpd_sha256(const void *p, size_t n, unsigned char out[32])
{
    return EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL) == 1 ? FP_DEVICE_OK
                                                               : FP_DEVICE_ERR_CRYPTO;
}

/* ---- base64 (RFC 4648 4) ---- */

int fpd_b64_encode(const void *p, size_t n, char **out, size_t *len, fpd_errbuf *e)
{
    size_t cap = (n + 2) / 3 * 4 + 1;
    if (n > (size_t)INT32_MAX / 2 || (*out = malloc(cap)) == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    *len = (size_t)EVP_EncodeBlock((unsigned char *)*out, p, (int)n);
    return FP_DEVICE_OK;
}

int fpd_b64_decode(const char *p, size_t n, unsigned char *out, size_t *outlen, fpd_errbuf *e)
{
    int r;
    size_t pad = 0;

    if (n % 4 != 0 || n > (size_t)INT32_MAX / 2)
        return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bad base64 length");
    /* EVP_DecodeBlock counts padding as zero bytes */
    while (pad < 2 && pad < n && p[n - 1 - pad] == '=')
        pad++;
    if ((r = EVP_DecodeBlock(out, (const unsigned char *)p, (int)n)) < 0 || (size_t)r < pad)
        return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bad base64");
    *outlen = (size_t)r - pad;
    return FP_DEVICE_OK;
}

/* ---- CSR (RFC 2986) ---- */

static const EVP_MD *pick_md(EVP_PKEY *pk, int bits)
{
    if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519)
        return NULL; /* pure EdDSA: no separate digest (RFC 8410) */
    if (bits == 0 && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
        /* the curve's own strength (RFC 5480 4) */
        int b = EVP_PKEY_get_bits(pk);
        bits = b > 384 ? 512 : b > 256 ? 384 : 256;
    }
    return bits == 512 ? EVP_sha512() : bits == 384 ? EVP_sha384() : EVP_sha256();
}

static int add_dns_san(STACK_OF(X509_EXTENSION) *exts, const char *dns)
{
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    X509_EXTENSION *ext = NULL;
    int ok = 0;

    if (gens != NULL && gn != NULL && ia5 != NULL && ASN1_STRING_set(ia5, dns, -1)) {
        GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
        ia5 = NULL;
        if (sk_GENERAL_NAME_push(gens, gn)) {
            gn = NULL;
            ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
            ok = ext != NULL && sk_X509_EXTENSION_push(exts, ext);
            if (ok)
                ext = NULL;
        }
    }
    X509_EXTENSION_free(ext);
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(gens);
    return ok;
}

int fpd_csr_build(const fpd_key *k, const fpd_csr_req *r, unsigned char **der, size_t *len,
                  fpd_errbuf *e)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = NULL;
    X509 *from = NULL;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    unsigned char *out = NULL;
    int n, rc;

    *der = NULL;
    if (req == NULL || exts == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
        !X509_REQ_set_pubkey(req, k->pk)) {
        rc = ossl_err(e, FP_DEVICE_ERR_NOMEM, "CSR");
        goto out;
    }
    if (r->names_from != NULL) {
        /* RFC 7030 4.2.2: Subject and subjectAltName of the current
         * certificate, unchanged */
        int i;
        if ((from = der_to_x509(r->names_from)) == NULL ||
            !X509_REQ_set_subject_name(req, X509_get_subject_name(from))) {
            rc = ossl_err(e, FP_DEVICE_ERR_ARG, "current certificate");
            goto out;
        }
        if ((i = X509_get_ext_by_NID(from, NID_subject_alt_name, -1)) >= 0) {
            X509_EXTENSION *ext = X509_EXTENSION_dup(X509_get_ext(from, i));
            if (ext == NULL || !sk_X509_EXTENSION_push(exts, ext)) {
                X509_EXTENSION_free(ext);
                rc = ossl_err(e, FP_DEVICE_ERR_NOMEM, "CSR");
                goto out;
            }
        }
    } else {
        if ((name = X509_NAME_new()) == NULL ||
            (r->common_name != NULL &&
             !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                         (const unsigned char *)r->common_name, -1, -1, 0)) ||
            (r->serial_number != NULL &&
             !X509_NAME_add_entry_by_NID(name, NID_serialNumber, MBSTRING_ASC,
                                         (const unsigned char *)r->serial_number, -1, -1, 0)) ||
            !X509_REQ_set_subject_name(req, name)) {
            rc = ossl_err(e, FP_DEVICE_ERR_ARG, "CSR subject");
            goto out;
        }
        if (r->dns_name != NULL && !add_dns_san(exts, r->dns_name)) {
            rc = ossl_err(e, FP_DEVICE_ERR_ARG, "CSR subjectAltName");
            goto out;
        }
    }
    if (sk_X509_EXTENSION_num(exts) > 0 && !X509_REQ_add_extensions(req, exts)) {
        rc = ossl_err(e, FP_DEVICE_ERR_NOMEM, "CSR extensions");
        goto out;
    }
    if (r->challenge != NULL &&
        !X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_UTF8,
                                   (const unsigned char *)r->challenge, -1)) {
        rc = ossl_err(e, FP_DEVICE_ERR_ARG, "CSR challengePassword");
        goto out;
    }
    if (r->asymm_decrypt_key_id) {
        /* RFC 7030 4.4.1.2: AsymmetricDecryptKeyIdentifier (an OCTET
         * STRING naming our key): encrypt the returned key to our TLS
         * client certificate */
        static const unsigned char kid[] = "tls-client-key";
        ASN1_OBJECT *o = OBJ_txt2obj("1.2.840.113549.1.9.16.2.54", 1);
        int ok = o != NULL && X509_REQ_add1_attr_by_OBJ(req, o, V_ASN1_OCTET_STRING, kid,
                                                         (int)sizeof(kid) - 1);
        ASN1_OBJECT_free(o);
        if (!ok) {
            rc = ossl_err(e, FP_DEVICE_ERR_CRYPTO, "CSR AsymmetricDecryptKeyIdentifier");
            goto out;
        }
    }
    if (X509_REQ_sign(req, k->pk, pick_md(k->pk, r->digest_bits)) <= 0 ||
        (n = i2d_X509_REQ(req, &out)) <= 0) {
        rc = ossl_err(e, FP_DEVICE_ERR_CRYPTO, "signing the CSR");
        goto out;
    }
    *der = out;
    *len = (size_t)n;
    out = NULL;
    rc = FP_DEVICE_OK;
out:
    OPENSSL_free(out);
    X509_free(from);
    X509_NAME_free(name);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return rc;
}

/* ---- CsrAttrs (RFC 7030 4.5.2) ---- */

static void note_oid(int nid, fp_device_csrattrs *o)
{
    switch (nid) {
    case NID_X9_62_id_ecPublicKey:
        if (o->key_type == FP_DEVICE_KEY_AUTO)
            o->key_type = FP_DEVICE_KEY_P256;
        break;
    case NID_rsaEncryption: o->key_type = FP_DEVICE_KEY_RSA2048; break;
    case NID_ED25519: o->key_type = FP_DEVICE_KEY_ED25519; break;
    case NID_ecdsa_with_SHA256:
    case NID_sha256WithRSAEncryption: o->digest_bits = 256; break;
    case NID_ecdsa_with_SHA384:
    case NID_sha384WithRSAEncryption: o->digest_bits = 384; break;
    case NID_ecdsa_with_SHA512:
    case NID_sha512WithRSAEncryption: o->digest_bits = 512; break;
    case NID_pkcs9_challengePassword: o->challenge_password = 1; break;
    default: break; /* RFC 7030 4.5.2: what we do not know is ignored */
    }
}

int fpd_csrattrs_parse(const unsigned char *der, size_t len, fp_device_csrattrs *o,
                       fpd_errbuf *e)
{
    const unsigned char *p = der;
    ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len);
    int rc = FP_DEVICE_OK;

    /* CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
     * AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute } */
    if (seq == NULL || p != der + len) {
        sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
        return ossl_err(e, FP_DEVICE_ERR_MALFORMED, "csrattrs is not a DER SEQUENCE");
    }
    for (int i = 0; i < sk_ASN1_TYPE_num(seq) && rc == FP_DEVICE_OK; i++) {
        ASN1_TYPE *t = sk_ASN1_TYPE_value(seq, i);
        o->n_items++;
        if (t->type == V_ASN1_OBJECT) {
            note_oid(OBJ_obj2nid(t->value.object), o);
        } else if (t->type == V_ASN1_SEQUENCE) {
            const unsigned char *q = t->value.sequence->data;
            X509_ATTRIBUTE *a = d2i_X509_ATTRIBUTE(NULL, &q, t->value.sequence->length);
            ASN1_TYPE *v = a && X509_ATTRIBUTE_count(a) > 0 ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
            if (a == NULL) {
                rc = ossl_err(e, FP_DEVICE_ERR_MALFORMED, "csrattrs attribute");
            } else if (OBJ_obj2nid(X509_ATTRIBUTE_get0_object(a)) == NID_X9_62_id_ecPublicKey &&
                       v != NULL && v->type == V_ASN1_OBJECT) {
                /* RFC 7030 4.5.2 example: id-ecPublicKey valued with the curve */
                int c = OBJ_obj2nid(v->value.object);
                o->key_type = c == NID_secp384r1 ? FP_DEVICE_KEY_P384
                              : c == NID_secp521r1 ? FP_DEVICE_KEY_P521
                                                   : FP_DEVICE_KEY_P256;
            } else {
                note_oid(OBJ_obj2nid(X509_ATTRIBUTE_get0_object(a)), o);
            }
            X509_ATTRIBUTE_free(a);
        } else {
            rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "csrattrs item %d is neither OID nor attribute", i);
        }
    }
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return rc;
}

/* ---- RFC 7030 4.4.2 encrypted key ---- */

int fpd_cms_decrypt_key(const unsigned char *der, size_t len, const fpd_certs *anchors,
                        const fpd_certs *untrusted, const fpd_key *my_key, const fpd_der *my_cert,
                        fpd_key **out, fpd_errbuf *e)
{
    const unsigned char *p = der;
    CMS_ContentInfo *sd = d2i_CMS_ContentInfo(NULL, &p, (long)len), *env = NULL;
    X509_STORE *st = NULL;
    STACK_OF(X509) *sk = NULL;
    X509 *me = NULL;
    STACK_OF(X509) *signers = NULL;
    BIO *inner = BIO_new(BIO_s_mem()), *plain = BIO_new(BIO_s_secmem());
    char *data = NULL;
    long n;
    int rc;

    *out = NULL;
    if (sd == NULL || p != der + len || OBJ_obj2nid(CMS_get0_type(sd)) != NID_pkcs7_signed ||
        OBJ_obj2nid(CMS_get0_eContentType(sd)) != NID_pkcs7_enveloped) {
        rc = ossl_err(e, FP_DEVICE_ERR_MALFORMED, "encrypted key is not SignedData(EnvelopedData)");
        goto out;
    }
    if (inner == NULL || plain == NULL || (st = to_store(anchors)) == NULL ||
        (sk = to_stack(untrusted)) == NULL || (me = der_to_x509(my_cert)) == NULL) {
        rc = ossl_err(e, FP_DEVICE_ERR_NOMEM, "CMS");
        goto out;
    }
    /* the signature here; the signer's chain below, with every helper
     * certificate as untrusted (CMS_verify itself would build it only from
     * the certificates inside the message) */
    if (CMS_verify(sd, sk, st, NULL, inner, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1 ||
        (signers = CMS_get0_signers(sd)) == NULL || sk_X509_num(signers) != 1) {
        rc = ossl_err(e, FP_DEVICE_ERR_TRUST, "encrypted key: signature does not verify");
        goto out;
    }
    {
        /* the signer is the EST server (RFC 7030 4.4.2): any purpose, but
         * it must chain to our anchors */
        unsigned char *sder = NULL;
        int sl = i2d_X509(sk_X509_value(signers, 0), &sder);
        fpd_der sd_der = {sder, sl > 0 ? (size_t)sl : 0};
        fpd_certs all = {0};
        STACK_OF(X509) *in_msg = CMS_get1_certs(sd);
        int ok = sl > 0 && fpd_certs_append(&all, untrusted) == 0;
        for (int i = 0; ok && in_msg != NULL && i < sk_X509_num(in_msg); i++)
            ok = add_x509(&all, sk_X509_value(in_msg, i)) == 0;
        rc = ok ? fpd_cert_verify(anchors, &sd_der, &all, 1, e) : fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        sk_X509_pop_free(in_msg, X509_free);
        fpd_certs_clear(&all);
        OPENSSL_free(sder);
        if (rc != FP_DEVICE_OK) {
            fpd_err(e, rc, "encrypted key: the signer does not chain to the trust anchor");
            goto out;
        }
    }
    n = BIO_get_mem_data(inner, &data);
    p = (const unsigned char *)data;
    if (n <= 0 || (env = d2i_CMS_ContentInfo(NULL, &p, n)) == NULL ||
        p != (const unsigned char *)data + n ||
        CMS_decrypt(env, my_key->pk, me, NULL, plain, CMS_BINARY) != 1) {
        rc = ossl_err(e, FP_DEVICE_ERR_CRYPTO, "encrypted key: cannot decrypt");
        goto out;
    }
    n = BIO_get_mem_data(plain, &data);
    rc = n > 0 ? fpd_key_parse((const unsigned char *)data, (size_t)n, out, e)
               : fpd_err(e, FP_DEVICE_ERR_MALFORMED, "encrypted key: empty");
out:
    CMS_ContentInfo_free(sd);
    CMS_ContentInfo_free(env);
    X509_STORE_free(st);
    sk_X509_pop_free(sk, X509_free);
    X509_free(me);
    sk_X509_free(signers); /* the stack only: the certificates are borrowed */
    BIO_free(inner);
    BIO_free(plain);
    return rc;
}
