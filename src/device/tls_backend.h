/*
 * tls_backend.h - what the device library needs from a TLS/crypto stack.
 *
 * Exactly one implementation is linked, chosen at build time
 * (FP_DEVICE_BACKEND): tls_openssl.c or tls_mbedtls.c.  The shared core
 * (HTTP framing, multipart, EST state, credential store) calls only these
 * functions and sees certificates as DER blobs (fpd_der) and keys as the
 * opaque fpd_key, so a backend is one file and nothing else changes.
 *
 * Conventions: return an fp_device_err code and fill e->msg on failure
 * (with the stack's own error text); out parameters are owned by the
 * caller (free with the matching function or free()); secrets handed out
 * are wiped by the caller (fp_device_secret_free).
 */
#ifndef FPD_TLS_BACKEND_H
#define FPD_TLS_BACKEND_H

#include "dev_int.h"

typedef struct fpd_key fpd_key;   /* a private key */
typedef struct fpd_conn fpd_conn; /* one TLS connection */

const char *fpd_backend_name(void);

/* ---- TLS connection ---- */
typedef struct {
    const char *host;
    unsigned port;
    int timeout_ms;              /* per connect/read/write */
    const fpd_certs *anchors;    /* NULL: no server verification (bootstrap
                                    only, RFC 7030 4.1.1); else the server's
                                    chain must end at one of them and its
                                    certificate must name host */
    const fpd_key *client_key;   /* optional TLS client certificate auth */
    const fpd_certs *client_chain;
} fpd_conn_opts;

/* Connects and completes the handshake.  TLS on failure, TRUST when the
 * server's certificate does not verify. */
int fpd_conn_open(const fpd_conn_opts *o, fpd_conn **out, fpd_errbuf *e);
int fpd_conn_write(fpd_conn *c, const void *p, size_t n, fpd_errbuf *e);
/* Reads up to n bytes; *got = 0 only on a clean end (close_notify or, for
 * stacks that cannot tell, TCP FIN); an end without close_notify is
 * TRUNCATED. */
int fpd_conn_read(fpd_conn *c, void *p, size_t n, size_t *got, fpd_errbuf *e);
/* The chain the server presented (leaf first), appended to out. */
int fpd_conn_peer_chain(fpd_conn *c, fpd_certs *out, fpd_errbuf *e);
/* RFC 7030 3.5 channel binding as base64 (tls-unique, or tls-exporter
 * on TLS 1.3, RFC 9266) into out (>= 90 bytes). */
int fpd_conn_channel_binding(fpd_conn *c, char *out, size_t size, fpd_errbuf *e);
void fpd_conn_close(fpd_conn *c);

/* ---- keys ---- */
int fpd_key_generate(fp_device_key_type t, fpd_key **out, fpd_errbuf *e);
/* PEM (PKCS#8 or traditional) or DER PKCS#8 PrivateKeyInfo. */
int fpd_key_parse(const unsigned char *p, size_t len, fpd_key **out, fpd_errbuf *e);
/* PKCS#8 PEM, NUL-terminated; *out is a secret. */
int fpd_key_to_pem(const fpd_key *k, char **out, size_t *len, fpd_errbuf *e);
void fpd_key_free(fpd_key *k);

/* ---- certificates ---- */
int fpd_certs_from_pem(const char *pem, size_t len, fpd_certs *out, fpd_errbuf *e);
int fpd_certs_to_pem(const fpd_certs *c, char **out, size_t *len, fpd_errbuf *e);
/* Certs-only PKCS#7 / CMS SignedData (RFC 7030 4.1.3): its certificates,
 * in order, appended to out; MALFORMED when it is anything else. */
int fpd_p7_certs_parse(const unsigned char *der, size_t len, fpd_certs *out, fpd_errbuf *e);
/* KEY_MISMATCH unless cert's public key is k's. */
int fpd_cert_matches_key(const fpd_der *cert, const fpd_key *k, fpd_errbuf *e);
/* TRUST unless leaf chains to one of anchors through untrusted (may be
 * NULL); check_time = 0 ignores validity dates. */
int fpd_cert_verify(const fpd_certs *anchors, const fpd_der *leaf, const fpd_certs *untrusted,
                    int check_time, fpd_errbuf *e);
/* 1 when cert is a CA certificate signed by its own key. */
int fpd_cert_is_self_signed_ca(const fpd_der *cert);
int fpd_cert_validity(const fpd_der *cert, int64_t *not_before, int64_t *not_after);
int fpd_sha256(const void *p, size_t n, unsigned char out[32]);

/* ---- base64 ---- */
/* One line, NUL-terminated, *out malloc'd. */
int fpd_b64_encode(const void *p, size_t n, char **out, size_t *len, fpd_errbuf *e);
/* Clean input only (alphabet and final padding, len % 4 == 0). */
int fpd_b64_decode(const char *p, size_t n, unsigned char *out, size_t *outlen, fpd_errbuf *e);

/* ---- CSR (RFC 2986) ---- */
typedef struct {
    const char *common_name;
    const char *serial_number;
    const char *dns_name;
    const fpd_der *names_from; /* reenroll: copy Subject and SAN from it */
    int digest_bits;           /* 0: the key type's default */
    const char *challenge;     /* challengePassword, optional */
    int asymm_decrypt_key_id;  /* add AsymmetricDecryptKeyIdentifier (4.4.1.2) */
} fpd_csr_req;

int fpd_csr_build(const fpd_key *k, const fpd_csr_req *r, unsigned char **der, size_t *len,
                  fpd_errbuf *e);
/* CsrAttrs (RFC 7030 4.5.2): DER -> what it asks for.  MALFORMED on bad DER. */
int fpd_csrattrs_parse(const unsigned char *der, size_t len, fp_device_csrattrs *out,
                       fpd_errbuf *e);
/* RFC 7030 4.4.2 encrypted key: CMS SignedData whose signer chains to
 * anchors (untrusted helps), wrapping EnvelopedData for our key/cert,
 * wrapping a PKCS#8 key.  UNSUPPORTED when the backend has no CMS. */
int fpd_cms_decrypt_key(const unsigned char *der, size_t len, const fpd_certs *anchors,
                        const fpd_certs *untrusted, const fpd_key *my_key, const fpd_der *my_cert,
                        fpd_key **out, fpd_errbuf *e);

#endif
