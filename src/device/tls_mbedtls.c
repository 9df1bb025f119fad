/*
 * tls_mbedtls.c - the mbedTLS 2.28 backend of libfleetpki-device
 * (tls_backend.h), the stack MCU SDKs ship.  Everything crypto or X.509 is
 * mbedTLS's; the two structures 2.28 has no parser for (certs-only
 * PKCS#7 and CsrAttrs) are walked with its bounded ASN.1 getters.
 *
 * Not available on this backend (answers UNSUPPORTED): Ed25519 keys,
 * CSR attributes (challengePassword, hence RFC 7030 3.5 PoP linking; the
 * 2.28 CSR writer has no attribute support and no tls-unique), and the
 * encrypted serverkeygen key (no CMS).  TLS 1.2 only (2.28's TLS 1.3 is
 * experimental and off in Debian).
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "tls_backend.h"

struct fpd_key {
    mbedtls_pk_context pk;
};

/* A seeded DRBG: each object that needs randomness owns one (no global
 * state). */
typedef struct {
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
} rng;

struct fpd_conn {
    int fd;
    rng r;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt anchors, own;
};

const char *fpd_backend_name(void)
{
    return "mbedtls";
}

static int mb_err(fpd_errbuf *e, int code, const char *what, int ret)
{
    char buf[128];
    mbedtls_strerror(ret, buf, sizeof(buf));
    return fpd_err(e, code, "%s: %s (-0x%04x)", what, buf, (unsigned)-ret);
}

/* The entropy context is large (tens of KiB with Debian's configuration):
 * it lives on the heap, never on an MCU's small stack. */
static int rng_init(rng *r, fpd_errbuf *e)
{
    static const unsigned char pers[] = "fleetpki-device";
    int ret;
    mbedtls_entropy_init(&r->ent);
    mbedtls_ctr_drbg_init(&r->drbg);
    if ((ret = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->ent, pers, sizeof(pers) - 1)) != 0)
        return mb_err(e, FP_DEVICE_ERR_CRYPTO, "seeding the DRBG", ret);
    return FP_DEVICE_OK;
}

static void rng_free(rng *r)
{
    mbedtls_ctr_drbg_free(&r->drbg);
    mbedtls_entropy_free(&r->ent);
}

static rng *rng_new(fpd_errbuf *e)
{
    rng *r = malloc(sizeof(*r));
    if (r == NULL) {
        fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        return NULL;
    }
    if (rng_init(r, e) != FP_DEVICE_OK) {
        rng_free(r);
        free(r);
        return NULL;
    }
    return r;
}

static void rng_del(rng *r)
{
    if (r != NULL) {
        rng_free(r);
        free(r);
    }
}

/* DER list -> mbedTLS chain (all must parse). */
static int to_crt(mbedtls_x509_crt *out, const fpd_certs *c)
{
    for (size_t i = 0; c != NULL && i < c->n; i++)
        if (mbedtls_x509_crt_parse_der(out, c->v[i].der, c->v[i].len) != 0)
            return -1;
    return 0;
}

/* ---- TLS ---- */

static int net_send(void *ctx, const unsigned char *buf, size_t len)
{
    ssize_t n = send(*(int *)ctx, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    if (errno == EINTR)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    return errno == EAGAIN || errno == EWOULDBLOCK ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int net_recv(void *ctx, unsigned char *buf, size_t len)
{
    ssize_t n = recv(*(int *)ctx, buf, len, 0);
    if (n >= 0)
        return (int)n; /* 0: TCP end, mbedTLS reports CONN_EOF */
    if (errno == EINTR)
        return MBEDTLS_ERR_SSL_WANT_READ;
    /* the socket's SO_RCVTIMEO expired (fpd_tcp_connect) */
    return errno == EAGAIN || errno == EWOULDBLOCK ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_RECV_FAILED;
}

/* 2.28 checks dNSName/CN only: an address is matched against the
 * iPAddress entries of subjectAltName here (RFC 6125 / RFC 5280 4.2.1.6). */
static int ip_matches(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t iplen)
{
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s != NULL; s = s->next)
        if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && s->buf.len == iplen &&
            memcmp(s->buf.p, ip, iplen) == 0)
            return 1;
    return 0;
}

int fpd_conn_open(const fpd_conn_opts *o, fpd_conn **out, fpd_errbuf *e)
{
    fpd_conn *c;
    unsigned char ip[16];
    size_t iplen = 0;
    int ret, rc;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    c->fd = -1;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_ssl_init(&c->ssl);
    mbedtls_x509_crt_init(&c->anchors);
    mbedtls_x509_crt_init(&c->own);
    if (inet_pton(AF_INET, o->host, ip) == 1)
        iplen = 4;
    else if (inet_pton(AF_INET6, o->host, ip) == 1)
        iplen = 16;
    if ((rc = rng_init(&c->r, e)) != FP_DEVICE_OK)
        goto out;
    if ((ret = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
        rc = mb_err(e, FP_DEVICE_ERR_TLS, "TLS configuration", ret);
        goto out;
    }
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->r.drbg);
    if (o->anchors != NULL) {
        if (to_crt(&c->anchors, o->anchors) != 0) {
            rc = fpd_err(e, FP_DEVICE_ERR_ARG, "trust anchors do not parse");
            goto out;
        }
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->anchors, NULL);
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    } else {
        /* bootstrap (RFC 7030 4.1.1): the caller checks what it got */
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    if (o->client_key != NULL && o->client_chain != NULL && o->client_chain->n > 0) {
        if (to_crt(&c->own, o->client_chain) != 0 ||
            (ret = mbedtls_ssl_conf_own_cert(&c->conf, &c->own, (mbedtls_pk_context *)&o->client_key->pk)) != 0) {
            rc = fpd_err(e, FP_DEVICE_ERR_ARG, "TLS client certificate");
            goto out;
        }
    }
    if ((ret = mbedtls_ssl_setup(&c->ssl, &c->conf)) != 0 ||
        (iplen == 0 && (ret = mbedtls_ssl_set_hostname(&c->ssl, o->host)) != 0)) {
        rc = mb_err(e, FP_DEVICE_ERR_TLS, "TLS setup", ret);
        goto out;
    }
    if ((c->fd = fpd_tcp_connect(o->host, o->port, o->timeout_ms, e)) < 0) {
        rc = FP_DEVICE_ERR_IO;
        goto out;
    }
    mbedtls_ssl_set_bio(&c->ssl, &c->fd, net_send, net_recv, NULL);
    while ((ret = mbedtls_ssl_handshake(&c->ssl)) != 0) {
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
            char info[160];
            mbedtls_x509_crt_verify_info(info, sizeof(info), "", mbedtls_ssl_get_verify_result(&c->ssl));
            info[strcspn(info, "\n")] = '\0';
            rc = fpd_err(e, FP_DEVICE_ERR_TRUST, "server certificate not trusted: %s", info);
        } else {
            rc = mb_err(e, FP_DEVICE_ERR_TLS, "TLS handshake", ret);
        }
        goto out;
    }
    if (o->anchors != NULL && iplen > 0) {
        const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
        if (peer == NULL || !ip_matches(peer, ip, iplen)) {
            rc = fpd_err(e, FP_DEVICE_ERR_TRUST, "server certificate does not name %s", o->host);
            goto out;
        }
    }
    *out = c;
    c = NULL;
    rc = FP_DEVICE_OK;
out:
    fpd_conn_close(c);
    return rc;
}

int fpd_conn_write(fpd_conn *c, const void *p, size_t n, fpd_errbuf *e)
{
    const unsigned char *q = p;
    while (n > 0) {
        int ret = mbedtls_ssl_write(&c->ssl, q, n);
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (ret <= 0)
            return mb_err(e, FP_DEVICE_ERR_IO, "TLS write", ret);
        q += ret;
        n -= (size_t)ret;
    }
    return FP_DEVICE_OK;
}

int fpd_conn_read(fpd_conn *c, void *p, size_t n, size_t *got, fpd_errbuf *e)
{
    int ret;

    *got = 0;
    do
        ret = mbedtls_ssl_read(&c->ssl, p, n);
    while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
    if (ret > 0) {
        *got = (size_t)ret;
        return FP_DEVICE_OK;
    }
    if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return FP_DEVICE_OK; /* a clean end */
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF)
        return fpd_err(e, FP_DEVICE_ERR_TRUNCATED, "connection closed without TLS close_notify");
    if (ret == MBEDTLS_ERR_SSL_TIMEOUT)
        return fpd_err(e, FP_DEVICE_ERR_IO, "timeout waiting for the server");
    return mb_err(e, FP_DEVICE_ERR_IO, "TLS read", ret);
}

int fpd_conn_peer_chain(fpd_conn *c, fpd_certs *out, fpd_errbuf *e)
{
    const mbedtls_x509_crt *p = mbedtls_ssl_get_peer_cert(&c->ssl); /* leaf, then the rest */
    if (p == NULL)
        return fpd_err(e, FP_DEVICE_ERR_TRUST, "server sent no certificate");
    for (; p != NULL && p->raw.p != NULL; p = p->next)
        if (fpd_certs_add(out, p->raw.p, p->raw.len) != 0)
            return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    return FP_DEVICE_OK;
}

int fpd_conn_channel_binding(fpd_conn *c, char *out, size_t size, fpd_errbuf *e)
{
    (void)c;
    (void)out;
    (void)size;
    /* 2.28 keeps the Finished messages (tls-unique) to itself */
    return fpd_err(e, FP_DEVICE_ERR_UNSUPPORTED, "TLS channel binding (RFC 7030 3.5) on mbedTLS");
}

void fpd_conn_close(fpd_conn *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0) {
        mbedtls_ssl_close_notify(&c->ssl);
        close(c->fd);
    }
    mbedtls_ssl_free(&c->ssl);
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->anchors);
    mbedtls_x509_crt_free(&c->own);
    rng_free(&c->r);
    free(c);
}

/* ---- keys ---- */

int fpd_key_generate(fp_device_key_type t, fpd_key **out, fpd_errbuf *e)
{
    fpd_key *k;
    rng *r = NULL;
    int ret, rc;
    mbedtls_ecp_group_id grp = MBEDTLS_ECP_DP_NONE;
    unsigned bits = 0;

    *out = NULL;
    switch (t) {
    case FP_DEVICE_KEY_AUTO:
    case FP_DEVICE_KEY_P256: grp = MBEDTLS_ECP_DP_SECP256R1; break;
    case FP_DEVICE_KEY_P384: grp = MBEDTLS_ECP_DP_SECP384R1; break;
    case FP_DEVICE_KEY_P521: grp = MBEDTLS_ECP_DP_SECP521R1; break;
    case FP_DEVICE_KEY_RSA2048: bits = 2048; break;
    case FP_DEVICE_KEY_RSA3072: bits = 3072; break;
    default: return fpd_err(e, FP_DEVICE_ERR_UNSUPPORTED, "key type %d on mbedTLS 2.28", (int)t);
    }
    if ((k = calloc(1, sizeof(*k))) == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    mbedtls_pk_init(&k->pk);
    if ((r = rng_new(e)) == NULL) {
        rc = FP_DEVICE_ERR_CRYPTO;
        goto out;
    }
    if (bits == 0)
        ret = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) ||
              mbedtls_ecp_gen_key(grp, mbedtls_pk_ec(k->pk), mbedtls_ctr_drbg_random, &r->drbg);
    else
        ret = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) ||
              mbedtls_rsa_gen_key(mbedtls_pk_rsa(k->pk), mbedtls_ctr_drbg_random, &r->drbg, bits, 65537);
    rc = ret ? fpd_err(e, FP_DEVICE_ERR_CRYPTO, "key generation") : FP_DEVICE_OK;
out:
    rng_del(r);
    if (rc != FP_DEVICE_OK)
        fpd_key_free(k);
    else
        *out = k;
    return rc;
}

int fpd_key_parse(const unsigned char *p, size_t len, fpd_key **out, fpd_errbuf *e)
{
    fpd_key *k;
    unsigned char *z;
    int ret;

    *out = NULL;
    if (len < 5 || memcmp(p, "-----", 5) != 0) {
        /* DER must be PKCS#8 (RFC 7030 4.4.2 application/pkcs8): after
         * the version comes an AlgorithmIdentifier SEQUENCE, where SEC1
         * and PKCS#1 have an OCTET STRING or INTEGER */
        unsigned char *q = (unsigned char *)p, *end = q + len;
        size_t l;
        int v;
        if (mbedtls_asn1_get_tag(&q, end, &l, MBEDTLS_ASN1_SEQUENCE | MBEDTLS_ASN1_CONSTRUCTED) != 0 ||
            q + l != end || mbedtls_asn1_get_int(&q, end, &v) != 0 || q >= end ||
            *q != (MBEDTLS_ASN1_SEQUENCE | MBEDTLS_ASN1_CONSTRUCTED))
            return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "not a private key: not PKCS#8");
    }
    /* PEM must be NUL-terminated, the NUL counted in the length */
    if ((z = malloc(len + 1)) == NULL || (k = calloc(1, sizeof(*k))) == NULL) {
        free(z);
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    }
    memcpy(z, p, len);
    z[len] = '\0';
    mbedtls_pk_init(&k->pk);
    ret = mbedtls_pk_parse_key(&k->pk, z, len > 5 && memcmp(p, "-----", 5) == 0 ? len + 1 : len, NULL, 0);
    mbedtls_platform_zeroize(z, len + 1);
    free(z);
    if (ret != 0) {
        fpd_key_free(k);
        return mb_err(e, FP_DEVICE_ERR_MALFORMED, "not a private key", ret);
    }
    *out = k;
    return FP_DEVICE_OK;
}

int fpd_key_to_pem(const fpd_key *k, char **out, size_t *len, fpd_errbuf *e)
{
    /* 2.28 writes the algorithm-specific PEM (SEC1, PKCS#1), not PKCS#8;
     * both backends read either */
    size_t size = 8192;
    unsigned char *buf = malloc(size);
    int ret;

    *out = NULL;
    if (buf == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    if ((ret = mbedtls_pk_write_key_pem((mbedtls_pk_context *)&k->pk, buf, size)) != 0) {
        mbedtls_platform_zeroize(buf, size);
        free(buf);
        return mb_err(e, FP_DEVICE_ERR_CRYPTO, "key to PEM", ret);
    }
    *out = (char *)buf;
    *len = strlen(*out);
    return FP_DEVICE_OK;
}

void fpd_key_free(fpd_key *k)
{
    if (k == NULL)
        return;
    mbedtls_pk_free(&k->pk); /* zeroizes the key */
    free(k);
}

/* ---- certificates ---- */

int fpd_certs_from_pem(const char *pem, size_t len, fpd_certs *out, fpd_errbuf *e)
{
    mbedtls_x509_crt crt;
    unsigned char *z = malloc(len + 1);
    int ret, rc = FP_DEVICE_OK;

    if (z == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    memcpy(z, pem, len);
    z[len] = '\0';
    mbedtls_x509_crt_init(&crt);
    /* > 0: that many blocks did not parse: refused as a whole */
    if ((ret = mbedtls_x509_crt_parse(&crt, z, len + 1)) != 0 || crt.raw.p == NULL)
        rc = ret < 0 ? mb_err(e, FP_DEVICE_ERR_MALFORMED, "PEM certificates", ret)
                     : fpd_err(e, FP_DEVICE_ERR_MALFORMED, "PEM certificates: %d did not parse", ret);
    for (const mbedtls_x509_crt *c = &crt; rc == FP_DEVICE_OK && c != NULL; c = c->next)
        if (fpd_certs_add(out, c->raw.p, c->raw.len) != 0)
            rc = fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    mbedtls_x509_crt_free(&crt);
    free(z);
    return rc;
}

int fpd_certs_to_pem(const fpd_certs *c, char **out, size_t *len, fpd_errbuf *e)
{
    fpd_buf b = {0};
    const size_t tsize = 8192;
    unsigned char *tmp = malloc(tsize);

    *out = NULL;
    if (tmp == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    for (size_t i = 0; i < c->n; i++) {
        size_t olen = 0;
        int ret = mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                                           c->v[i].der, c->v[i].len, tmp, tsize, &olen);
        if (ret != 0) {
            fpd_buf_free(&b, 0);
            free(tmp);
            return mb_err(e, FP_DEVICE_ERR_CRYPTO, "certificate to PEM", ret);
        }
        if (fpd_buf_add(&b, tmp, olen - 1) != 0) { /* olen counts the NUL */
            fpd_buf_free(&b, 0);
            free(tmp);
            return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        }
    }
    free(tmp);
    if (b.p == NULL && fpd_buf_add(&b, "", 0) != 0)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    *out = (char *)b.p;
    *len = b.len;
    return FP_DEVICE_OK;
}

/* RFC 5652 5.1 / RFC 7030 4.1.3: ContentInfo { signedData, [0] SignedData
 * { version, digestAlgorithms SET, encapContentInfo, [0] certificates,
 * [1] crls OPTIONAL, signerInfos SET (empty: certs-only) } } */
int fpd_p7_certs_parse(const unsigned char *der, size_t len, fpd_certs *out, fpd_errbuf *e)
{
    static const unsigned char oid_signed[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02};
    unsigned char *p = (unsigned char *)der, *end = p + len, *sd_end, *c_end;
    size_t l;
    int v, n = 0;
    const int SEQ = MBEDTLS_ASN1_SEQUENCE | MBEDTLS_ASN1_CONSTRUCTED;
    const int SET = MBEDTLS_ASN1_SET | MBEDTLS_ASN1_CONSTRUCTED;
    const int CTX0 = MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED;

    if (mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0 || p + l != end ||
        mbedtls_asn1_get_tag(&p, end, &l, MBEDTLS_ASN1_OID) != 0 || l != sizeof(oid_signed) ||
        memcmp(p, oid_signed, l) != 0)
        goto bad;
    p += l;
    if (mbedtls_asn1_get_tag(&p, end, &l, CTX0) != 0 || p + l != end ||
        mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0 || p + l != end)
        goto bad;
    sd_end = p + l;
    if (mbedtls_asn1_get_int(&p, sd_end, &v) != 0 || mbedtls_asn1_get_tag(&p, sd_end, &l, SET) != 0)
        goto bad;
    p += l;
    if (mbedtls_asn1_get_tag(&p, sd_end, &l, SEQ) != 0)
        goto bad;
    p += l;
    if (mbedtls_asn1_get_tag(&p, sd_end, &l, CTX0) != 0)
        goto bad;
    for (c_end = p + l; p < c_end; n++) {
        unsigned char *start = p;
        mbedtls_x509_crt crt;
        int ok;
        if (mbedtls_asn1_get_tag(&p, c_end, &l, SEQ) != 0)
            goto bad;
        p += l;
        mbedtls_x509_crt_init(&crt);
        ok = mbedtls_x509_crt_parse_der(&crt, start, (size_t)(p - start)) == 0;
        mbedtls_x509_crt_free(&crt);
        if (!ok)
            goto bad;
        if (fpd_certs_add(out, start, (size_t)(p - start)) != 0)
            return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    }
    if (n == 0)
        goto bad;
    if (p < sd_end && *p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 1)) {
        if (mbedtls_asn1_get_tag(&p, sd_end, &l, *p) != 0)
            goto bad;
        p += l; /* crls: not used */
    }
    if (mbedtls_asn1_get_tag(&p, sd_end, &l, SET) != 0 || l != 0 || p != sd_end)
        goto bad;
    return FP_DEVICE_OK;
bad:
    return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "answer is not a certs-only PKCS#7");
}

static int parse1(mbedtls_x509_crt *crt, const fpd_der *d)
{
    mbedtls_x509_crt_init(crt);
    return mbedtls_x509_crt_parse_der(crt, d->der, d->len);
}

int fpd_cert_matches_key(const fpd_der *cert, const fpd_key *k, fpd_errbuf *e)
{
    mbedtls_x509_crt crt;
    int ok = parse1(&crt, cert) == 0 &&
             mbedtls_pk_check_pair(&crt.pk, (mbedtls_pk_context *)&k->pk) == 0;
    mbedtls_x509_crt_free(&crt);
    return ok ? FP_DEVICE_OK
              : fpd_err(e, FP_DEVICE_ERR_KEY_MISMATCH, "the certificate does not hold our key");
}

int fpd_cert_verify(const fpd_certs *anchors, const fpd_der *leaf, const fpd_certs *untrusted,
                    int check_time, fpd_errbuf *e)
{
    mbedtls_x509_crt chain, ta;
    uint32_t flags = 0;
    int rc;

    mbedtls_x509_crt_init(&ta);
    if (parse1(&chain, leaf) != 0) {
        rc = fpd_err(e, FP_DEVICE_ERR_MALFORMED, "certificate");
        goto out;
    }
    /* the helpers follow the leaf; mbedTLS looks for parents among them */
    for (size_t i = 0; untrusted != NULL && i < untrusted->n; i++)
        mbedtls_x509_crt_parse_der(&chain, untrusted->v[i].der, untrusted->v[i].len);
    if (to_crt(&ta, anchors) != 0) {
        rc = fpd_err(e, FP_DEVICE_ERR_ARG, "trust anchors do not parse");
        goto out;
    }
    mbedtls_x509_crt_verify(&chain, &ta, NULL, NULL, &flags, NULL, NULL);
    if (!check_time)
        flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
    if (flags != 0) {
        char info[160];
        mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
        info[strcspn(info, "\n")] = '\0';
        rc = fpd_err(e, FP_DEVICE_ERR_TRUST, "certificate does not chain to the trust anchor: %s", info);
        goto out;
    }
    rc = FP_DEVICE_OK;
out:
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&ta);
    return rc;
}

int fpd_cert_is_self_signed_ca(const fpd_der *cert)
{
    mbedtls_x509_crt crt, self;
    uint32_t flags = 0;
    int r = 0;

    if (parse1(&crt, cert) == 0 && crt.ca_istrue && crt.subject_raw.len == crt.issuer_raw.len &&
        memcmp(crt.subject_raw.p, crt.issuer_raw.p, crt.issuer_raw.len) == 0 &&
        parse1(&self, cert) == 0) {
        /* signed by its own key: it verifies with itself as the anchor */
        mbedtls_x509_crt_verify(&crt, &self, NULL, NULL, &flags, NULL, NULL);
        r = (flags & ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE)) == 0;
        mbedtls_x509_crt_free(&self);
    }
    mbedtls_x509_crt_free(&crt);
    return r;
}

/* days since 1970-01-01 of a civil date (proleptic Gregorian) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t x509_epoch(const mbedtls_x509_time *t)
{
    return days_from_civil(t->year, (unsigned)t->mon, (unsigned)t->day) * 86400 + t->hour * 3600 +
           t->min * 60 + t->sec;
}

int fpd_cert_validity(const fpd_der *cert, int64_t *not_before, int64_t *not_after)
{
    mbedtls_x509_crt crt;
    int rc = FP_DEVICE_ERR_MALFORMED;
    if (parse1(&crt, cert) == 0) {
        *not_before = x509_epoch(&crt.valid_from);
        *not_after = x509_epoch(&crt.valid_to);
        rc = FP_DEVICE_OK;
    }
    mbedtls_x509_crt_free(&crt);
    return rc;
}

int fpd_sha256(const void *p, size_t n, unsigned char out[32])
{
    return mbedtls_sha256_ret(p, n, out, 0) == 0 ? FP_DEVICE_OK : FP_DEVICE_ERR_CRYPTO;
}

/* ---- base64 ---- */

int fpd_b64_encode(const void *p, size_t n, char **out, size_t *len, fpd_errbuf *e)
{
    size_t cap = (n + 2) / 3 * 4 + 1;
    if ((*out = malloc(cap)) == NULL)
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    if (mbedtls_base64_encode((unsigned char *)*out, cap, len, p, n) != 0) {
        free(*out);
        *out = NULL;
        return fpd_err(e, FP_DEVICE_ERR_CRYPTO, "base64");
    }
    return FP_DEVICE_OK;
}

int fpd_b64_decode(const char *p, size_t n, unsigned char *out, size_t *outlen, fpd_errbuf *e)
{
    if (n % 4 != 0 || mbedtls_base64_decode(out, n / 4 * 3, outlen, (const unsigned char *)p, n) != 0)
        return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "bad base64");
    return FP_DEVICE_OK;
}

/* ---- CSR ---- */

/* One RDN entry, prepended (the 2.28 name writer emits the list's head
 * last, so prepending in DER order keeps the order). */
static int name_prepend(mbedtls_asn1_named_data **head, const unsigned char *oid, size_t oid_len,
                        int tag, const unsigned char *val, size_t val_len)
{
    mbedtls_asn1_named_data *n = calloc(1, sizeof(*n));
    if (n == NULL || (n->oid.p = malloc(oid_len)) == NULL || (n->val.p = malloc(val_len ? val_len : 1)) == NULL) {
        if (n)
            free(n->oid.p);
        free(n);
        return -1;
    }
    n->oid.tag = MBEDTLS_ASN1_OID;
    memcpy(n->oid.p, oid, oid_len);
    n->oid.len = oid_len;
    n->val.tag = tag;
    memcpy(n->val.p, val, val_len);
    n->val.len = val_len;
    n->next = *head;
    *head = n;
    return 0;
}

static void names_free(mbedtls_asn1_named_data *n)
{
    while (n != NULL) {
        mbedtls_asn1_named_data *next = n->next;
        free(n->oid.p);
        free(n->val.p);
        free(n);
        n = next;
    }
}

/* GeneralNames from (tag, raw value) entries, in order */
typedef struct {
    int tag;
    const unsigned char *p;
    size_t len;
} gname;

static int write_gnames(const gname *g, size_t n, unsigned char *buf, size_t size, unsigned char **start,
                        size_t *len)
{
    unsigned char *c = buf + size;
    size_t l = 0;
    int ret;
    for (size_t i = n; i-- > 0;) {
        MBEDTLS_ASN1_CHK_ADD(l, mbedtls_asn1_write_raw_buffer(&c, buf, g[i].p, g[i].len));
        MBEDTLS_ASN1_CHK_ADD(l, mbedtls_asn1_write_len(&c, buf, g[i].len));
        MBEDTLS_ASN1_CHK_ADD(l, mbedtls_asn1_write_tag(&c, buf, (unsigned char)g[i].tag));
    }
    MBEDTLS_ASN1_CHK_ADD(l, mbedtls_asn1_write_len(&c, buf, l));
    MBEDTLS_ASN1_CHK_ADD(l, mbedtls_asn1_write_tag(&c, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    *start = c;
    *len = l;
    return 0;
}

int fpd_csr_build(const fpd_key *k, const fpd_csr_req *r, unsigned char **der, size_t *len,
                  fpd_errbuf *e)
{
    mbedtls_x509write_csr w;
    mbedtls_x509_crt from;
    mbedtls_asn1_named_data *subject = NULL;
    gname g[16];
    size_t ng = 0, san_len = 0;
    unsigned char san[1024], *san_p = NULL, *buf = NULL;
    mbedtls_md_type_t md;
    rng *rn = NULL;
    int ret, rc;

    *der = NULL;
    mbedtls_x509write_csr_init(&w);
    mbedtls_x509_crt_init(&from);
    if (r->challenge != NULL || r->asymm_decrypt_key_id) {
        rc = fpd_err(e, FP_DEVICE_ERR_UNSUPPORTED, "CSR attributes (challengePassword, "
                                                   "AsymmetricDecryptKeyIdentifier) on mbedTLS 2.28");
        goto out;
    }
    if (r->names_from != NULL) {
        /* RFC 7030 4.2.2: Subject and subjectAltName of the current
         * certificate, each entry with its own string type */
        if (mbedtls_x509_crt_parse_der(&from, r->names_from->der, r->names_from->len) != 0) {
            rc = fpd_err(e, FP_DEVICE_ERR_ARG, "current certificate");
            goto out;
        }
        for (const mbedtls_x509_name *n = &from.subject; n != NULL && n->oid.p != NULL; n = n->next)
            if (name_prepend(&subject, n->oid.p, n->oid.len, n->val.tag, n->val.p, n->val.len) != 0) {
                rc = fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
                goto out;
            }
        for (const mbedtls_x509_sequence *s = &from.subject_alt_names; s != NULL && s->buf.p != NULL;
             s = s->next) {
            if (ng == sizeof(g) / sizeof(g[0])) {
                rc = fpd_err(e, FP_DEVICE_ERR_UNSUPPORTED, "more than %zu subjectAltNames", ng);
                goto out;
            }
            g[ng].tag = s->buf.tag;
            g[ng].p = s->buf.p;
            g[ng].len = s->buf.len;
            ng++;
        }
    } else {
        if ((r->common_name != NULL &&
             name_prepend(&subject, (const unsigned char *)MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN),
                          MBEDTLS_ASN1_UTF8_STRING, (const unsigned char *)r->common_name,
                          strlen(r->common_name)) != 0) ||
            (r->serial_number != NULL &&
             name_prepend(&subject, (const unsigned char *)MBEDTLS_OID_AT_SERIAL_NUMBER,
                          MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_SERIAL_NUMBER), MBEDTLS_ASN1_PRINTABLE_STRING,
                          (const unsigned char *)r->serial_number, strlen(r->serial_number)) != 0)) {
            rc = fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
            goto out;
        }
        if (r->dns_name != NULL) {
            g[0].tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2; /* dNSName */
            g[0].p = (const unsigned char *)r->dns_name;
            g[0].len = strlen(r->dns_name);
            ng = 1;
        }
    }
    if (ng > 0 && ((ret = write_gnames(g, ng, san, sizeof(san), &san_p, &san_len)) != 0 ||
                   (ret = mbedtls_x509write_csr_set_extension(&w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                              MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
                                                              san_p, san_len)) != 0)) {
        rc = mb_err(e, FP_DEVICE_ERR_ARG, "CSR subjectAltName", ret);
        goto out;
    }
    w.subject = subject; /* borrowed: detached before mbedtls_x509write_csr_free */
    mbedtls_x509write_csr_set_key(&w, (mbedtls_pk_context *)&k->pk);
    if (mbedtls_pk_get_type(&k->pk) == MBEDTLS_PK_ECKEY || mbedtls_pk_get_type(&k->pk) == MBEDTLS_PK_ECDSA) {
        size_t bits = mbedtls_pk_get_bitlen(&k->pk);
        int want = r->digest_bits ? r->digest_bits : bits > 384 ? 512 : bits > 256 ? 384 : 256;
        md = want == 512 ? MBEDTLS_MD_SHA512 : want == 384 ? MBEDTLS_MD_SHA384 : MBEDTLS_MD_SHA256;
    } else {
        md = r->digest_bits == 512 ? MBEDTLS_MD_SHA512 : r->digest_bits == 384 ? MBEDTLS_MD_SHA384 : MBEDTLS_MD_SHA256;
    }
    mbedtls_x509write_csr_set_md_alg(&w, md);
    if ((rn = rng_new(e)) == NULL) {
        rc = FP_DEVICE_ERR_CRYPTO;
        goto out;
    }
    if ((buf = malloc(4096)) == NULL) {
        rc = fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
        goto out;
    }
    /* written at the end of buf */
    if ((ret = mbedtls_x509write_csr_der(&w, buf, 4096, mbedtls_ctr_drbg_random, &rn->drbg)) <= 0) {
        rc = mb_err(e, FP_DEVICE_ERR_CRYPTO, "signing the CSR", ret);
        goto out;
    }
    memmove(buf, buf + 4096 - ret, (size_t)ret);
    *der = buf;
    *len = (size_t)ret;
    buf = NULL;
    rc = FP_DEVICE_OK;
out:
    w.subject = NULL;
    mbedtls_x509write_csr_free(&w);
    names_free(subject);
    mbedtls_x509_crt_free(&from);
    rng_del(rn);
    free(buf);
    return rc;
}

/* ---- CsrAttrs (RFC 7030 4.5.2) ---- */

#define OID_IS(buf, len, oid) ((len) == MBEDTLS_OID_SIZE(oid) && memcmp((buf), (oid), (len)) == 0)

static void note_oid(const unsigned char *o, size_t l, fp_device_csrattrs *a)
{
    if (OID_IS(o, l, MBEDTLS_OID_EC_ALG_UNRESTRICTED)) {
        if (a->key_type == FP_DEVICE_KEY_AUTO)
            a->key_type = FP_DEVICE_KEY_P256;
    } else if (OID_IS(o, l, MBEDTLS_OID_PKCS1_RSA)) {
        a->key_type = FP_DEVICE_KEY_RSA2048;
    } else if (OID_IS(o, l, "\x2b\x65\x70")) { /* id-Ed25519 */
        a->key_type = FP_DEVICE_KEY_ED25519;
    } else if (OID_IS(o, l, MBEDTLS_OID_ECDSA_SHA256) || OID_IS(o, l, MBEDTLS_OID_PKCS1_SHA256)) {
        a->digest_bits = 256;
    } else if (OID_IS(o, l, MBEDTLS_OID_ECDSA_SHA384) || OID_IS(o, l, MBEDTLS_OID_PKCS1_SHA384)) {
        a->digest_bits = 384;
    } else if (OID_IS(o, l, MBEDTLS_OID_ECDSA_SHA512) || OID_IS(o, l, MBEDTLS_OID_PKCS1_SHA512)) {
        a->digest_bits = 512;
    } else if (OID_IS(o, l, MBEDTLS_OID_PKCS9 "\x07")) { /* challengePassword */
        a->challenge_password = 1;
    }
    /* RFC 7030 4.5.2: anything else is ignored */
}

int fpd_csrattrs_parse(const unsigned char *der, size_t len, fp_device_csrattrs *a, fpd_errbuf *e)
{
    unsigned char *p = (unsigned char *)der, *end = p + len;
    size_t l;
    const int SEQ = MBEDTLS_ASN1_SEQUENCE | MBEDTLS_ASN1_CONSTRUCTED;

    if (mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0 || p + l != end)
        goto bad;
    while (p < end) {
        a->n_items++;
        if (*p == MBEDTLS_ASN1_OID) {
            if (mbedtls_asn1_get_tag(&p, end, &l, MBEDTLS_ASN1_OID) != 0)
                goto bad;
            note_oid(p, l, a);
            p += l;
        } else if (*p == SEQ) {
            /* Attribute ::= SEQUENCE { type OID, values SET OF ANY } */
            unsigned char *aend, *type, *vend;
            size_t tl;
            if (mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0)
                goto bad;
            aend = p + l;
            if (mbedtls_asn1_get_tag(&p, aend, &tl, MBEDTLS_ASN1_OID) != 0)
                goto bad;
            type = p;
            p += tl;
            if (mbedtls_asn1_get_tag(&p, aend, &l, MBEDTLS_ASN1_SET | MBEDTLS_ASN1_CONSTRUCTED) != 0 ||
                p + l != aend)
                goto bad;
            vend = p + l;
            if (OID_IS(type, tl, MBEDTLS_OID_EC_ALG_UNRESTRICTED) && p < vend && *p == MBEDTLS_ASN1_OID) {
                /* RFC 7030 4.5.2 example: id-ecPublicKey valued with the curve */
                if (mbedtls_asn1_get_tag(&p, vend, &l, MBEDTLS_ASN1_OID) != 0)
                    goto bad;
                a->key_type = OID_IS(p, l, MBEDTLS_OID_EC_GRP_SECP384R1)   ? FP_DEVICE_KEY_P384
                              : OID_IS(p, l, MBEDTLS_OID_EC_GRP_SECP521R1) ? FP_DEVICE_KEY_P521
                                                                           : FP_DEVICE_KEY_P256;
            } else {
                note_oid(type, tl, a);
            }
            p = aend;
        } else {
            goto bad;
        }
    }
    return FP_DEVICE_OK;
bad:
    return fpd_err(e, FP_DEVICE_ERR_MALFORMED, "csrattrs is not a DER CsrAttrs");
}

int fpd_cms_decrypt_key(const unsigned char *der, size_t len, const fpd_certs *anchors,
                        const fpd_certs *untrusted, const fpd_key *my_key, const fpd_der *my_cert,
                        fpd_key **out, fpd_errbuf *e)
{
    (void)der;
    (void)len;
    (void)anchors;
    (void)untrusted;
    (void)my_key;
    (void)my_cert;
    *out = NULL;
    return fpd_err(e, FP_DEVICE_ERR_UNSUPPORTED, "encrypted server-generated keys (CMS) on mbedTLS");
}
