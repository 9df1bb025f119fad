/*
 * dev_int.h - internals shared by the device library's files: the error
 * buffer, growable byte buffers, DER certificate lists and the credential
 * object.  Nothing here depends on a TLS/crypto backend; the backend's
 * interface is tls_backend.h.
 */
#ifndef FPD_INT_H
#define FPD_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetpki/device.h"

#define FPD_ERRMSG_MAX 256

/* The message half of an error; the code is the return value. */
typedef struct {
    char msg[FPD_ERRMSG_MAX];
} fpd_errbuf;

/* Sets e->msg (printf-style; NULL fmt: the code's default message) and
 * returns code, so callers write `return fpd_err(e, CODE, "...")`. */
int fpd_err(fpd_errbuf *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Growable byte buffer; p is NUL-terminated whenever len < cap. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
} fpd_buf;

int fpd_buf_add(fpd_buf *b, const void *p, size_t n);
int fpd_buf_addf(fpd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* free; wipe first when the buffer held a secret */
void fpd_buf_free(fpd_buf *b, int secret);

/* A DER blob and a list of them (certificates, leaf first where it matters). */
typedef struct {
    unsigned char *der;
    size_t len;
} fpd_der;

typedef struct {
    fpd_der *v;
    size_t n;
} fpd_certs;

int fpd_certs_add(fpd_certs *c, const unsigned char *der, size_t len);
int fpd_certs_append(fpd_certs *to, const fpd_certs *from);
void fpd_certs_clear(fpd_certs *c);

/* Strict base64 body (RFC 4648 4 alphabet; CR, LF, space and tab between
 * quads allowed as in RFC 2045 line breaks, RFC 8951): stripped of
 * whitespace and checked here, decoded by the backend.  *out malloc'd. */
int fpd_b64_decode_body(const char *text, size_t len, size_t max_out, unsigned char **out,
                        size_t *outlen, fpd_errbuf *e);

struct fpd_key;

/* The credential behind fp_device_cred (cred.c). */
struct fp_device_cred {
    int refs;
    struct fpd_key *key;
    fpd_certs chain; /* leaf first */
};

/* Takes key and the chain's blobs (chain is emptied); checks the leaf holds
 * the key.  On failure frees key. */
int fpd_cred_new(struct fpd_key *key, fpd_certs *chain, fp_device_cred **out, fpd_errbuf *e);

/* A connected TCP socket to host:port (every address tried in turn),
 * connect, send and receive bounded by timeout_ms; -1 with e set. */
int fpd_tcp_connect(const char *host, unsigned port, int timeout_ms, fpd_errbuf *e);

/* Constant-time compare of n bytes: 0 when equal. */
int fpd_ct_memcmp(const void *a, const void *b, size_t n);

#endif
