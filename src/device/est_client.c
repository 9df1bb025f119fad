/*
 * est_client.c - the RFC 7030 client state and operations: cacerts (with
 * the 4.1.1 bootstrap), csrattrs, simpleenroll, simplereenroll and
 * serverkeygen.  Protocol only: bytes go through tls_backend.h, framing
 * through http.c and multipart.c.
 *
 * Rule for everything received: nothing is handed to the caller unless
 * it parsed strictly, the certificate holds the key it should, and it
 * chains to the explicit trust anchor.  The client never writes
 * credentials anywhere itself, so a refused answer cannot touch the
 * stored ones (the caller stores what it gets, e.g. fp_credstore_rotate).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "multipart.h"
#include "tls_backend.h"

#define CT_PKCS7 "application/pkcs7-mime"
#define CT_PKCS8 "application/pkcs8"
#define CT_CSRATTRS "application/csrattrs"
#define CT_PKCS10 "application/pkcs10"

struct fp_device {
    fpd_errbuf err;
    char *host, *label;
    unsigned port;
    fpd_certs anchors; /* explicit TA (RFC 7030 3.6.1) */
    fpd_certs cacerts; /* last /cacerts, each verified to the anchors */
    char *basic_b64;   /* base64("user:password"): a secret */
    fp_device_cred *client;
    size_t max_body;
    int timeout_ms;
    int http_status;
    long retry_after;
    /* RFC 7030 4.2.3: after a 202/503 the same request is repeated, so the
     * key and CSR of a simpleenroll/simplereenroll answered that way are
     * kept (pending_op = enroll_op + 1, 0 when none) */
    int pending_op;
    struct fpd_key *pending_key;
    char *pending_b64; /* base64 CSR */
    size_t pending_b64_len;
};

fp_device *fp_device_new(void)
{
    fp_device *d = calloc(1, sizeof(*d));
    if (d != NULL) {
        d->max_body = 64 * 1024;
        d->timeout_ms = 30000;
        d->retry_after = -1;
    }
    return d;
}

static void free_secret_str(char **s)
{
    if (*s != NULL)
        fp_device_secret_free(*s, strlen(*s));
    *s = NULL;
}

void fp_device_drop_pending(fp_device *d)
{
    if (d == NULL)
        return;
    fpd_key_free(d->pending_key);
    fp_device_secret_free(d->pending_b64, d->pending_b64_len);
    d->pending_key = NULL;
    d->pending_b64 = NULL;
    d->pending_b64_len = 0;
    d->pending_op = 0;
}

int fp_device_has_pending(const fp_device *d)
{
    return d != NULL && d->pending_op != 0;
}

void fp_device_free(fp_device *d)
{
    if (d == NULL)
        return;
    fp_device_drop_pending(d);
    free(d->host);
    free(d->label);
    fpd_certs_clear(&d->anchors);
    fpd_certs_clear(&d->cacerts);
    free_secret_str(&d->basic_b64);
    fp_device_cred_free(d->client);
    free(d);
}

const char *fp_device_errmsg(const fp_device *d)
{
    return d ? d->err.msg : "no client";
}

int fp_device_http_status(const fp_device *d)
{
    return d ? d->http_status : 0;
}

long fp_device_retry_after(const fp_device *d)
{
    return d ? d->retry_after : -1;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

int fp_device_set_server(fp_device *d, const char *host, unsigned port, const char *label)
{
    char *h, *l = NULL;

    if (d == NULL || host == NULL || host[0] == '\0' || port == 0 || port > 65535)
        return FP_DEVICE_ERR_ARG;
    d->err.msg[0] = '\0';
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-:", *p))
            return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "bad host name");
    if (strlen(host) > 253 || (label != NULL && strlen(label) > 64))
        return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "host name or label too long");
    if (label != NULL && label[0] != '\0') {
        /* RFC 7030 3.2.2: the label is one path segment; keep to the
         * unreserved characters (RFC 3986 2.3) */
        for (const char *p = label; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("-._~", *p))
                return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "bad label");
        if ((l = dupstr(label)) == NULL)
            return fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
    }
    if ((h = dupstr(host)) == NULL) {
        free(l);
        return fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
    }
    free(d->host);
    free(d->label);
    d->host = h;
    d->label = l;
    d->port = port;
    fp_device_drop_pending(d); /* was meant for the previous server */
    return FP_DEVICE_OK;
}

int fp_device_set1_trust_anchors(fp_device *d, const char *pem, size_t len)
{
    fpd_certs c = {0};
    int rc;

    if (d == NULL || pem == NULL)
        return FP_DEVICE_ERR_ARG;
    if ((rc = fpd_certs_from_pem(pem, len, &c, &d->err)) != FP_DEVICE_OK)
        return rc;
    fpd_certs_clear(&d->anchors);
    fpd_certs_clear(&d->cacerts); /* were verified against the old anchors */
    d->anchors = c;
    d->err.msg[0] = '\0';
    return FP_DEVICE_OK;
}

int fp_device_set_basic_auth(fp_device *d, const char *user, const char *password)
{
    fpd_buf up = {0};
    size_t n;
    int rc;

    if (d == NULL)
        return FP_DEVICE_ERR_ARG;
    free_secret_str(&d->basic_b64);
    if (user == NULL)
        return FP_DEVICE_OK;
    /* RFC 7617 2: the user-id cannot contain a colon */
    if (strchr(user, ':') != NULL || password == NULL)
        return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "bad Basic credentials");
    if (fpd_buf_add(&up, user, strlen(user)) != 0 || fpd_buf_add(&up, ":", 1) != 0 ||
        fpd_buf_add(&up, password, strlen(password)) != 0) {
        fpd_buf_free(&up, 1);
        return fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
    }
    rc = fpd_b64_encode(up.p, up.len, &d->basic_b64, &n, &d->err);
    fpd_buf_free(&up, 1);
    return rc;
}

int fp_device_set1_client_cred(fp_device *d, fp_device_cred *c)
{
    if (d == NULL)
        return FP_DEVICE_ERR_ARG;
    if (c != NULL)
        c->refs++;
    fp_device_cred_free(d->client);
    d->client = c;
    return FP_DEVICE_OK;
}

int fp_device_set_limits(fp_device *d, size_t max_body, int timeout_ms)
{
    if (d == NULL || max_body < 1024 || max_body > 64 * 1024 * 1024 || timeout_ms < 1)
        return FP_DEVICE_ERR_ARG;
    d->max_body = max_body;
    d->timeout_ms = timeout_ms;
    return FP_DEVICE_OK;
}

/* ---- one request on one connection ---- */

static int conn_read(void *ctx, void *buf, size_t n, size_t *got, fpd_errbuf *e)
{
    return fpd_conn_read(ctx, buf, n, got, e);
}

/* verify = 0 only for the bootstrap cacerts: then neither the password
 * nor the client certificate is offered (RFC 7030 4.1.1). */
static int open_conn(fp_device *d, int verify, fpd_conn **c)
{
    fpd_conn_opts o = {0};

    if (d->host == NULL)
        return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "no server set");
    if (verify && d->anchors.n == 0)
        return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "no trust anchor set (bootstrap first)");
    o.host = d->host;
    o.port = d->port;
    o.timeout_ms = d->timeout_ms;
    o.anchors = verify ? &d->anchors : NULL;
    if (verify && d->client != NULL) {
        o.client_key = d->client->key;
        o.client_chain = &d->client->chain;
    }
    return fpd_conn_open(&o, c, &d->err);
}

/* The first line of an error body, printable ASCII only, for messages. */
static void body_excerpt(const fpd_buf *b, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; b->p != NULL && i < b->len && n + 1 < size; i++) {
        unsigned char ch = b->p[i];
        if (ch == '\r' || ch == '\n')
            break;
        out[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    out[n] = '\0';
}

static int request(fp_device *d, fpd_conn *c, int verified, const char *method, const char *op,
                   const char *body, size_t body_len, fpd_http_resp *resp)
{
    fpd_buf req = {0}, path = {0};
    fpd_reader rd = {conn_read, c};
    char excerpt[128];
    int rc;

    d->http_status = 0;
    d->retry_after = -1;
    if (fpd_buf_addf(&path, "/.well-known/est%s%s/%s", d->label ? "/" : "",
                     d->label ? d->label : "", op) != 0 ||
        fpd_http_request(&req, method, d->host, d->port, (const char *)path.p,
                         verified ? d->basic_b64 : NULL, CT_PKCS10, body, body_len) != 0) {
        rc = fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = fpd_conn_write(c, req.p, req.len, &d->err)) != FP_DEVICE_OK ||
        (rc = fpd_http_read_response(&rd, d->max_body, resp, &d->err)) != FP_DEVICE_OK)
        goto out;
    d->http_status = resp->status;
    d->retry_after = resp->retry_after;
    body_excerpt(&resp->body, excerpt, sizeof(excerpt));
    switch (resp->status) {
    case 200:
    case 204: rc = FP_DEVICE_OK; break;
    case 202: /* RFC 7030 4.2.3: held for approval */
    case 503:
        rc = fpd_err(&d->err, FP_DEVICE_ERR_RETRY_LATER, "%s: HTTP %d, retry after %ld s: %s", op,
                     resp->status, resp->retry_after, excerpt);
        break;
    case 401:
    case 403:
        rc = fpd_err(&d->err, FP_DEVICE_ERR_AUTH, "%s: HTTP %d: %s", op, resp->status, excerpt);
        break;
    default:
        rc = fpd_err(&d->err, FP_DEVICE_ERR_HTTP, "%s: HTTP %d: %s", op, resp->status, excerpt);
    }
out:
    fpd_buf_free(&req, 1); /* held the Authorization header */
    fpd_buf_free(&path, 0);
    return rc;
}

/* A certs-only answer body (base64 DER PKCS#7) -> certificates. */
static int certs_body(fp_device *d, const char *ct, const unsigned char *body, size_t len,
                      fpd_certs *out)
{
    unsigned char *der = NULL;
    size_t dlen;
    int rc;

    if (!fpd_http_ct_is(ct, CT_PKCS7))
        return fpd_err(&d->err, FP_DEVICE_ERR_MALFORMED, "answer Content-Type is not %s", CT_PKCS7);
    if ((rc = fpd_b64_decode_body((const char *)body, len, d->max_body, &der, &dlen, &d->err)) !=
        FP_DEVICE_OK)
        return rc;
    rc = fpd_p7_certs_parse(der, dlen, out, &d->err);
    free(der);
    return rc;
}

/* Every certificate of c must chain to anchors (the others help). */
static int verify_all(fp_device *d, const fpd_certs *anchors, const fpd_certs *c)
{
    for (size_t i = 0; i < c->n; i++) {
        int rc = fpd_cert_verify(anchors, &c->v[i], c, 1, &d->err);
        if (rc != FP_DEVICE_OK)
            return rc;
    }
    return FP_DEVICE_OK;
}

static int out_pem(fp_device *d, const fpd_certs *c, char **pem, size_t *len)
{
    if (pem == NULL)
        return FP_DEVICE_OK;
    return fpd_certs_to_pem(c, pem, len, &d->err);
}

/* /cacerts over a verified connection; verify: every certificate must
 * chain to the anchors and the set is kept in d. */
static int cacerts(fp_device *d, int verify, char **pem_out, size_t *pem_len)
{
    fpd_conn *c = NULL;
    fpd_http_resp resp = {0};
    fpd_certs certs = {0};
    int rc;

    if (d == NULL)
        return FP_DEVICE_ERR_ARG;
    if ((rc = open_conn(d, 1, &c)) != FP_DEVICE_OK ||
        (rc = request(d, c, 1, "GET", "cacerts", NULL, 0, &resp)) != FP_DEVICE_OK ||
        (rc = certs_body(d, resp.content_type, resp.body.p, resp.body.len, &certs)) != FP_DEVICE_OK ||
        (verify && (rc = verify_all(d, &d->anchors, &certs)) != FP_DEVICE_OK) ||
        (rc = out_pem(d, &certs, pem_out, pem_len)) != FP_DEVICE_OK)
        goto out;
    if (verify) {
        fpd_certs_clear(&d->cacerts);
        d->cacerts = certs;
        certs.v = NULL;
        certs.n = 0;
    }
    d->err.msg[0] = '\0';
out:
    fpd_certs_clear(&certs);
    fpd_http_resp_free(&resp);
    fpd_conn_close(c);
    return rc;
}

int fp_device_cacerts(fp_device *d, char **pem_out, size_t *pem_len)
{
    return cacerts(d, 1, pem_out, pem_len);
}

int fp_device_cacerts_unverified(fp_device *d, char **pem_out, size_t *pem_len)
{
    if (pem_out == NULL || pem_len == NULL)
        return FP_DEVICE_ERR_ARG;
    return cacerts(d, 0, pem_out, pem_len);
}

int fp_device_bootstrap(fp_device *d, const unsigned char expected_sha256[32], char **pem_out,
                        size_t *pem_len)
{
    fpd_conn *c = NULL;
    fpd_http_resp resp = {0};
    fpd_certs certs = {0}, anchor = {0}, peer = {0};
    size_t found = (size_t)-1;
    int rc;

    if (d == NULL || expected_sha256 == NULL)
        return FP_DEVICE_ERR_ARG;
    if ((rc = open_conn(d, 0, &c)) != FP_DEVICE_OK ||
        (rc = request(d, c, 0, "GET", "cacerts", NULL, 0, &resp)) != FP_DEVICE_OK ||
        (rc = certs_body(d, resp.content_type, resp.body.p, resp.body.len, &certs)) != FP_DEVICE_OK ||
        (rc = fpd_conn_peer_chain(c, &peer, &d->err)) != FP_DEVICE_OK)
        goto out;
    /* RFC 7030 4.1.1: the out-of-band fingerprint names the root */
    for (size_t i = 0; i < certs.n; i++) {
        unsigned char fp[32];
        if (fpd_sha256(certs.v[i].der, certs.v[i].len, fp) != FP_DEVICE_OK) {
            rc = fpd_err(&d->err, FP_DEVICE_ERR_CRYPTO, "SHA-256");
            goto out;
        }
        if (fpd_ct_memcmp(fp, expected_sha256, 32) == 0 && fpd_cert_is_self_signed_ca(&certs.v[i]))
            found = i;
    }
    if (found == (size_t)-1) {
        rc = fpd_err(&d->err, FP_DEVICE_ERR_FINGERPRINT,
                     "no self-signed CA in /cacerts has the expected SHA-256 fingerprint");
        goto out;
    }
    if (fpd_certs_add(&anchor, certs.v[found].der, certs.v[found].len) != 0) {
        rc = fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
        goto out;
    }
    /* the rest of /cacerts and the server we talked to must chain to it */
    if ((rc = verify_all(d, &anchor, &certs)) != FP_DEVICE_OK ||
        (rc = fpd_certs_append(&peer, &certs)) != 0 ||
        (rc = fpd_cert_verify(&anchor, &peer.v[0], &peer, 1, &d->err)) != FP_DEVICE_OK) {
        if (rc == -1)
            rc = fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
        else if (rc == FP_DEVICE_ERR_TRUST)
            fpd_err(&d->err, rc, "bootstrap: the server or a CA certificate does not chain to "
                                 "the fingerprinted root");
        goto out;
    }
    if ((rc = out_pem(d, &anchor, pem_out, pem_len)) != FP_DEVICE_OK)
        goto out;
    fpd_certs_clear(&d->anchors);
    fpd_certs_clear(&d->cacerts);
    d->anchors = anchor;
    d->cacerts = certs;
    anchor = (fpd_certs){0};
    certs = (fpd_certs){0};
    d->err.msg[0] = '\0';
out:
    fpd_certs_clear(&certs);
    fpd_certs_clear(&anchor);
    fpd_certs_clear(&peer);
    fpd_http_resp_free(&resp);
    fpd_conn_close(c);
    return rc;
}

int fp_device_get_csrattrs(fp_device *d, fp_device_csrattrs *out)
{
    fpd_conn *c = NULL;
    fpd_http_resp resp = {0};
    unsigned char *der = NULL;
    size_t dlen;
    int rc;

    if (d == NULL || out == NULL)
        return FP_DEVICE_ERR_ARG;
    memset(out, 0, sizeof(*out));
    if ((rc = open_conn(d, 1, &c)) != FP_DEVICE_OK)
        goto out;
    rc = request(d, c, 1, "GET", "csrattrs", NULL, 0, &resp);
    /* RFC 7030 4.5.2: 204 or 404 mean "nothing asked for" */
    if ((rc == FP_DEVICE_ERR_HTTP && resp.status == 404) ||
        (rc == FP_DEVICE_OK && resp.status == 204)) {
        rc = FP_DEVICE_OK;
        goto out;
    }
    if (rc != FP_DEVICE_OK)
        goto out;
    if (!fpd_http_ct_is(resp.content_type, CT_CSRATTRS)) {
        rc = fpd_err(&d->err, FP_DEVICE_ERR_MALFORMED, "csrattrs answer is not %s", CT_CSRATTRS);
        goto out;
    }
    if ((rc = fpd_b64_decode_body((const char *)resp.body.p, resp.body.len, d->max_body, &der,
                                  &dlen, &d->err)) != FP_DEVICE_OK ||
        (rc = fpd_csrattrs_parse(der, dlen, out, &d->err)) != FP_DEVICE_OK)
        goto out;
    d->err.msg[0] = '\0';
out:
    free(der);
    fpd_http_resp_free(&resp);
    fpd_conn_close(c);
    return rc;
}

/* ---- enrollment ---- */

typedef enum { OP_ENROLL, OP_REENROLL, OP_KEYGEN } enroll_op;

static int valid_name(const char *s)
{
    if (s == NULL)
        return 1;
    if (s[0] == '\0' || strlen(s) > 253)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* The issued certificate among certs: the one holding key (enroll) or
 * the first (keygen, where the key came with it).  Verified to the
 * anchors with the answer's and /cacerts' certificates as helpers; the
 * chain out is leaf first, then the non-root CA certificates. */
static int accept_cert(fp_device *d, fpd_key *key, fpd_certs *certs, fpd_certs *chain)
{
    fpd_certs helpers = {0};
    size_t leaf = (size_t)-1;
    int rc;

    for (size_t i = 0; i < certs->n && leaf == (size_t)-1; i++)
        if (fpd_cert_matches_key(&certs->v[i], key, NULL) == FP_DEVICE_OK)
            leaf = i;
    if (leaf == (size_t)-1)
        return fpd_err(&d->err, FP_DEVICE_ERR_KEY_MISMATCH,
                       "no certificate in the answer holds our key");
    if (fpd_certs_append(&helpers, certs) != 0 || fpd_certs_append(&helpers, &d->cacerts) != 0) {
        rc = fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = fpd_cert_verify(&d->anchors, &certs->v[leaf], &helpers, 1, &d->err)) != FP_DEVICE_OK)
        goto out;
    if (fpd_certs_add(chain, certs->v[leaf].der, certs->v[leaf].len) != 0) {
        rc = fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
        goto out;
    }
    for (size_t i = 0; i < helpers.n; i++) {
        int dup = 0;
        if (i == leaf || fpd_cert_is_self_signed_ca(&helpers.v[i]))
            continue;
        for (size_t j = 0; j < chain->n && !dup; j++)
            dup = chain->v[j].len == helpers.v[i].len &&
                  memcmp(chain->v[j].der, helpers.v[i].der, helpers.v[i].len) == 0;
        if (!dup && fpd_certs_add(chain, helpers.v[i].der, helpers.v[i].len) != 0) {
            rc = fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
            goto out;
        }
    }
    rc = FP_DEVICE_OK;
out:
    fpd_certs_clear(&helpers);
    return rc;
}

/* RFC 7030 4.4.2: key part + certificate part, in either order. */
static int keygen_answer(fp_device *d, const fpd_http_resp *resp, int want_encrypted,
                         fpd_key **key, fpd_certs *certs)
{
    fpd_part parts[2];
    size_t n = 0;
    const fpd_part *kp = NULL, *cp = NULL;
    unsigned char *der = NULL;
    size_t dlen = 0;
    char st[40];
    int rc, encrypted = 0;

    if ((rc = fpd_multipart_parse(resp->content_type, resp->body.p, resp->body.len, parts, 2, &n,
                                  &d->err)) != FP_DEVICE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const char *ct = parts[i].content_type;
        if (fpd_http_ct_is(ct, CT_PKCS8) && kp == NULL) {
            kp = &parts[i];
        } else if (fpd_http_ct_is(ct, CT_PKCS7) && fpd_http_ct_param(ct, "smime-type", st, sizeof(st)) == 0) {
            if (!strcmp(st, "server-generated-key") && kp == NULL) {
                kp = &parts[i];
                encrypted = 1;
            } else if (!strcmp(st, "certs-only") && cp == NULL) {
                cp = &parts[i];
            }
        }
    }
    if (n != 2 || kp == NULL || cp == NULL)
        return fpd_err(&d->err, FP_DEVICE_ERR_MALFORMED,
                       "serverkeygen answer needs one key part and one certs-only part");
    if (encrypted != want_encrypted)
        return fpd_err(&d->err, FP_DEVICE_ERR_MALFORMED, "serverkeygen: key arrived %s, asked %s",
                       encrypted ? "encrypted" : "in clear", want_encrypted ? "encrypted" : "in clear");
    if ((rc = certs_body(d, cp->content_type, cp->data, cp->len, certs)) != FP_DEVICE_OK ||
        (rc = fpd_b64_decode_body((const char *)kp->data, kp->len, d->max_body, &der, &dlen,
                                  &d->err)) != FP_DEVICE_OK)
        goto out;
    if (encrypted) {
        fpd_certs helpers = {0};
        if (fpd_certs_append(&helpers, certs) != 0 || fpd_certs_append(&helpers, &d->cacerts) != 0)
            rc = fpd_err(&d->err, FP_DEVICE_ERR_NOMEM, NULL);
        else
            rc = fpd_cms_decrypt_key(der, dlen, &d->anchors, &helpers, d->client->key,
                                     &d->client->chain.v[0], key, &d->err);
        fpd_certs_clear(&helpers);
    } else {
        rc = fpd_key_parse(der, dlen, key, &d->err);
    }
out:
    fp_device_secret_free(der, dlen);
    return rc;
}

static int copy_key(fp_device *d, const fpd_key *k, fpd_key **out)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = fpd_key_to_pem(k, &pem, &len, &d->err);
    if (rc == FP_DEVICE_OK)
        rc = fpd_key_parse((const unsigned char *)pem, len, out, &d->err);
    fp_device_secret_free(pem, len);
    return rc;
}

static int enroll(fp_device *d, enroll_op op, const fp_device_enroll_opts *opts,
                  fp_device_cred **out)
{
    static const fp_device_enroll_opts dflt = {.rekey = 1};
    const fp_device_enroll_opts *o = opts ? opts : &dflt;
    static const char *const names[] = {"simpleenroll", "simplereenroll", "serverkeygen"};
    fp_device_csrattrs attrs = {0};
    fpd_conn *c = NULL;
    fpd_http_resp resp = {0};
    fpd_key *key = NULL, *got_key = NULL;
    fpd_certs certs = {0}, chain = {0};
    fpd_csr_req cr = {0};
    unsigned char *csr = NULL;
    char *b64 = NULL, cb[96];
    size_t csr_len = 0, b64_len = 0;
    fp_device_key_type kt;
    int rc, binding = 0;

    if (d == NULL || out == NULL)
        return FP_DEVICE_ERR_ARG;
    *out = NULL;
    if (op != OP_REENROLL && o->common_name == NULL)
        return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "a common name is required");
    if (!valid_name(o->common_name) || !valid_name(o->serial_number) || !valid_name(o->dns_name))
        return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "bad subject name");
    if ((op == OP_REENROLL || (op == OP_KEYGEN && o->encrypt_key)) && d->client == NULL)
        return fpd_err(&d->err, FP_DEVICE_ERR_ARG, "%s needs a client credential", names[op]);
    /* the issuing CA certificates help verify what we get */
    if (d->cacerts.n == 0 && (rc = fp_device_cacerts(d, NULL, NULL)) != FP_DEVICE_OK)
        return rc;
    if (d->pending_op != 0 && d->pending_op != (int)op + 1)
        fp_device_drop_pending(d); /* another operation: start afresh */
    if (d->pending_op != 0) {
        /* RFC 7030 4.2.3: repeat the request answered 202/503, same CSR */
        key = d->pending_key;
        b64 = d->pending_b64;
        b64_len = d->pending_b64_len;
        d->pending_key = NULL;
        d->pending_b64 = NULL;
        d->pending_b64_len = 0;
        d->pending_op = 0;
        if ((rc = open_conn(d, 1, &c)) != FP_DEVICE_OK)
            goto keep;
        if ((rc = request(d, c, 1, "POST", names[op], b64, b64_len, &resp)) != FP_DEVICE_OK)
            goto keep;
        goto answer;
    }
    if (o->use_csrattrs && (rc = fp_device_get_csrattrs(d, &attrs)) != FP_DEVICE_OK)
        return rc;

    /* the key: ours to make, kept (reenroll without rekey), or a
     * throwaway that only signs the serverkeygen CSR (4.4.1) */
    kt = o->key_type != FP_DEVICE_KEY_AUTO ? o->key_type : attrs.key_type;
    if (op == OP_REENROLL && !o->rekey)
        rc = copy_key(d, d->client->key, &key);
    else
        rc = fpd_key_generate(op == OP_KEYGEN ? FP_DEVICE_KEY_P256 : kt, &key, &d->err);
    if (rc != FP_DEVICE_OK)
        goto out;

    cr.common_name = o->common_name;
    cr.serial_number = o->serial_number;
    cr.dns_name = o->dns_name;
    cr.names_from = op == OP_REENROLL ? &d->client->chain.v[0] : NULL;
    cr.digest_bits = attrs.digest_bits;
    cr.challenge = o->challenge_password;
    cr.asymm_decrypt_key_id = op == OP_KEYGEN && o->encrypt_key;
    /* the CSR is built before connecting (the TLS stack's buffers and the
     * signing need not be in memory together), unless it must carry this
     * connection's channel binding: RFC 7030 3.5, challengePassword asked
     * for and none given */
    binding = cr.challenge == NULL && attrs.challenge_password;
    if (!binding && ((rc = fpd_csr_build(key, &cr, &csr, &csr_len, &d->err)) != FP_DEVICE_OK ||
                     (rc = fpd_b64_encode(csr, csr_len, &b64, &b64_len, &d->err)) != FP_DEVICE_OK))
        goto out;
    if ((rc = open_conn(d, 1, &c)) != FP_DEVICE_OK)
        goto out;
    if (binding) {
        if ((rc = fpd_conn_channel_binding(c, cb, sizeof(cb), &d->err)) != FP_DEVICE_OK)
            goto out;
        cr.challenge = cb;
        if ((rc = fpd_csr_build(key, &cr, &csr, &csr_len, &d->err)) != FP_DEVICE_OK ||
            (rc = fpd_b64_encode(csr, csr_len, &b64, &b64_len, &d->err)) != FP_DEVICE_OK)
            goto out;
    }
    if ((rc = request(d, c, 1, "POST", names[op], b64, b64_len, &resp)) != FP_DEVICE_OK) {
        /* a CSR carrying this connection's channel binding cannot be
         * repeated on another one, and serverkeygen's key is the server's */
        if (!binding && op != OP_KEYGEN)
            goto keep;
        goto out;
    }
answer:
    if (resp.status != 200) {
        rc = fpd_err(&d->err, FP_DEVICE_ERR_HTTP, "%s: HTTP %d", names[op], resp.status);
        goto out;
    }
    if (op == OP_KEYGEN) {
        if ((rc = keygen_answer(d, &resp, o->encrypt_key, &got_key, &certs)) != FP_DEVICE_OK)
            goto out;
        fpd_key_free(key);
        key = got_key;
        got_key = NULL;
    } else if ((rc = certs_body(d, resp.content_type, resp.body.p, resp.body.len, &certs)) !=
               FP_DEVICE_OK) {
        goto out;
    }
    if ((rc = accept_cert(d, key, &certs, &chain)) != FP_DEVICE_OK)
        goto out;
    rc = fpd_cred_new(key, &chain, out, &d->err);
    key = NULL;
    if (rc == FP_DEVICE_OK)
        d->err.msg[0] = '\0';
    goto out;
keep:
    /* kept for the repetition after a 202/503 or a transport failure (the
     * server may hold it); a refusal or any other answer drops it */
    if (rc == FP_DEVICE_ERR_RETRY_LATER || rc == FP_DEVICE_ERR_IO || rc == FP_DEVICE_ERR_TLS ||
        rc == FP_DEVICE_ERR_TRUNCATED) {
        d->pending_op = (int)op + 1;
        d->pending_key = key;
        d->pending_b64 = b64;
        d->pending_b64_len = b64_len;
        key = NULL;
        b64 = NULL;
        b64_len = 0;
    }
out:
    fp_device_secret_free(b64, b64_len); /* may hold a challengePassword */
    fp_device_secret_free(csr, csr_len);
    fpd_key_free(key);
    fpd_key_free(got_key);
    fpd_certs_clear(&certs);
    fpd_certs_clear(&chain);
    fpd_http_resp_free(&resp);
    fpd_conn_close(c);
    return rc;
}

int fp_device_enroll(fp_device *d, const fp_device_enroll_opts *o, fp_device_cred **out)
{
    return enroll(d, OP_ENROLL, o, out);
}

int fp_device_reenroll(fp_device *d, const fp_device_enroll_opts *o, fp_device_cred **out)
{
    return enroll(d, OP_REENROLL, o, out);
}

int fp_device_serverkeygen(fp_device *d, const fp_device_enroll_opts *o, fp_device_cred **out)
{
    return enroll(d, OP_KEYGEN, o, out);
}
