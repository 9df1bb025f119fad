/*
 * loadgen.h - pieces shared by the load generator's files.
 *
 * lg_conn.c     one client connection (TCP or TLS) and an HTTP/1.1
 *               request/response exchange over it, keep-alive aware;
 * lg_payload.c  request bodies built before the clock starts (PKCS#10
 *               CSRs, OCSP requests) and cheap validators for answers;
 * loadgen.c     options, worker threads, timing and the report.
 *
 * Everything here is benchmark tooling: it talks to loopback only and
 * never runs unbounded (see loadgen.c).
 */
#ifndef FP_LOADGEN_H
#define FP_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/* ---- connection + HTTP/1.1 (lg_conn.c) ---- */

typedef struct lg_conn {
    int fd;          /* -1 when closed */
    /* client identity for the next open, overriding the SSL_CTX's (NULL:
     * the context's); borrowed (device-newconn: one per connection) */
    X509 *cert;
    EVP_PKEY *key;
    SSL *ssl;        /* NULL for plain HTTP */
    bool reusable;   /* server allowed keep-alive on the last answer */
    unsigned char *buf; /* receive buffer */
    size_t cap, len;    /* capacity, bytes held */
} lg_conn;

typedef struct lg_resp {
    int status;            /* HTTP status code */
    const unsigned char *body; /* into conn->buf, valid until next call */
    size_t body_len;
    char ctype[96];        /* Content-Type, truncated */
} lg_resp;

/* Where and how to connect.  ctx is NULL for plain HTTP. */
typedef struct lg_target {
    struct sockaddr_storage *addr;
    unsigned addrlen;
    SSL_CTX *ctx;
    int io_timeout_ms;
} lg_target;

/* Maximum answer we accept (a PKCS#7 with a chain is a few KiB). */
#define LG_MAX_RESPONSE (1024 * 1024)

void lg_conn_init(lg_conn *c);
/* Connect (and, with TLS, complete a full handshake).  0 or -1. */
int lg_conn_open(lg_conn *c, const lg_target *t);
/* Close the socket and SSL; keeps the buffer for the next open. */
void lg_conn_close(lg_conn *c);
void lg_conn_free(lg_conn *c);

/* Send req (complete HTTP request bytes) and read one full response.
 * 0 on success (any status); -1 on I/O or framing error (the connection
 * is then closed).  HEAD-less: every response is assumed to have a body
 * framed by Content-Length, chunked encoding or connection close. */
int lg_http_exchange(lg_conn *c, const unsigned char *req, size_t req_len,
                     lg_resp *resp);

/* ---- payloads (lg_payload.c) ---- */

typedef struct lg_blob {
    unsigned char *data;
    size_t len;
    int expect; /* OCSP: expected V_OCSP_CERTSTATUS_*, -1 if not checked */
} lg_blob;

/* n fresh P-256 CSRs as base64 DER (no line breaks).  With subject_from
 * (a certificate), each CSR copies its subject and subjectAltName (for
 * simplereenroll, RFC 7030 4.2.2); else CN=prefix-<random>-<i>. */
int lg_csr_generate(size_t n, const char *prefix, X509 *subject_from,
                    lg_blob **out);
/* Every *.csr / *.pem / *.der file of dir, converted to base64 DER. */
int lg_csr_load_dir(const char *dir, lg_blob **out, size_t *n);

/* OCSP requests (DER, SHA-1 CertID, no nonce as RFC 5019 2.1.1 advises)
 * for up to max serials sampled from serials_path ("HEX good|revoked" per
 * line), plus unknown_pct percent random serials the CA never issued.
 * expect is set from the file's status column. */
int lg_ocsp_build(const char *issuer_path, const char *serials_path, size_t max,
                  int unknown_pct, lg_blob **out, size_t *n);

/* Check a base64 certs-only PKCS#7 (EST simpleenroll answer): 0 if it
 * decodes and holds at least one certificate, found by a DER walk; with
 * deep, also through d2i_PKCS7, which on OpenSSL 3.0 decodes each
 * certificate's key through its slow provider decoders. */
int lg_check_pkcs7_b64(const unsigned char *b64, size_t len, bool deep);
/* Check an OCSP answer: successful, first SingleResponse's status is
 * expect (when expect >= 0), found by a DER walk that decodes no
 * certificate; with deep, also through d2i_OCSP_RESPONSE and
 * OCSP_response_get1_basic (costly on OpenSSL 3.0).  0 ok, -1 malformed,
 * -2 wrong status. */
int lg_check_ocsp(const unsigned char *der, size_t len, int expect, bool deep);

/* Standard base64 (no newlines) of in; malloc'd, NUL-terminated. */
char *lg_base64(const unsigned char *in, size_t len);

void lg_blobs_free(lg_blob *b, size_t n);

/* ---- device identities (lg_device.c) ---- */

typedef struct lg_identity {
    X509 *cert;
    EVP_PKEY *key;
} lg_identity;

/* n fresh P-256 device keys and certificates (distinct CNs, clientAuth)
 * signed by the CA in ca_cert / ca_key (PEM).  0 or -1. */
int lg_devices_make(const char *ca_cert, const char *ca_key, size_t n, lg_identity **out);
void lg_devices_free(lg_identity *ids, size_t n);

#endif
