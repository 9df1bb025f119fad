/*
 * listen.c - the listening sockets (bound by the main thread before any
 * worker starts, shared by every worker) and the TLS server context.
 */
#define _GNU_SOURCE
#include "http_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../x509/x509util.h"

#define LISTEN_BACKLOG 1024

/* ---- listening sockets ---- */

/* Split "host:port" or "[v6]:port". */
static int split_addr(const char *spec, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon;
    size_t hl;

    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        hl = (size_t)(end - spec - 1);
        if (hl >= hsize)
            return -1;
        memcpy(host, spec + 1, hl);
        host[hl] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - spec);
        if (hl >= hsize)
            return -1;
        memcpy(host, spec, hl);
        host[hl] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= psize)
        return -1;
    strcpy(port, colon + 1);
    return 0;
}

int fp_http_listen_on(const char *spec, int *fd_out, char *bound, size_t bsize, fp_error *err)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[64], port[16], hbuf[64], pbuf[16];
    int fd = -1, one = 1, rc;

    *fd_out = -1;
    if (split_addr(spec, host, sizeof(host), port, sizeof(port)) != 0)
        return fp_err_set(err, FP_ERR_CONFIG, "listen address '%s': expected HOST:PORT", spec);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0)
        return fp_err_set(err, FP_ERR_CONFIG, "listen address '%s': %s", spec, gai_strerror(rc));
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* TCP_NODELAY is set on the listener: Linux copies it to every accepted
     * socket.  evhttp writes headers and body separately (and TLS adds
     * records): without it, Nagle plus the client's delayed ACK stalls
     * keep-alive answers by tens of ms. */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "listen on %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return rc;
    }
    freeaddrinfo(res);
    if (getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf, sizeof(pbuf),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        close(fd);
        return fp_err_set(err, FP_ERR_IO, "getnameinfo failed for %s", spec);
    }
    snprintf(bound, bsize, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", hbuf, pbuf);
    *fd_out = fd;
    return FP_ERR_OK;
}

/* ---- TLS ---- */

/* Client certificates are requested but checked per route/label by the
 * handler (trust anchors depend on the EST label, known only after the
 * request line is read), so the handshake accepts any: the handshake
 * still proves the client holds the certificate's key.  Replacing the
 * whole verification (not just a verify callback that forgives errors)
 * also spares the signature checks libssl would run for nothing. */
static int skip_chain_verify(X509_STORE_CTX *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 1;
}

int fp_http_tls_ctx_new(fp_http_server *srv, fp_error *err)
{
    const fp_http_opts *o = &srv->opts;
    EVP_PKEY *key = NULL;
    SSL_CTX *ctx = NULL;
    int rc;

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "SSL_CTX_new");
    /* TLS 1.2 and 1.3 only (issue 3; RFC 8996 deprecates 1.0/1.1) */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "TLS minimum version");
        goto out;
    }
    /* No session tickets: with OpenSSL 3.0 issuing one copies the session
     * (peer certificate included) through d2i/i2d, which cost more than
     * the rest of an enrollment handshake; devices rarely resume anyway.
     * TLS 1.2 session-id resumption from the server cache still works. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    if (o->tls_cert_file == NULL || o->tls_key_file == NULL) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "https needs a TLS certificate and key");
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert_file) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "TLS certificate %s", o->tls_cert_file);
        goto out;
    }
    if ((rc = fp_key_read(o->tls_key_file, o->tls_pass, o->tls_passlen, &key, err)) != FP_ERR_OK)
        goto out;
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "TLS key %s does not match its certificate",
                        o->tls_key_file);
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, skip_chain_verify, NULL);
    /* needed for session resumption when client certificates are requested */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"fleetpki", 8);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    srv->ssl_ctx = ctx;
    ctx = NULL;
    rc = FP_ERR_OK;
out:
    EVP_PKEY_free(key);
    SSL_CTX_free(ctx);
    return rc;
}
