/*
 * est_auth.c - who may enroll (RFC 7030 3.2.3, 3.3) and PoP linking (3.5).
 *
 * Certificates: the TLS handshake accepts any client certificate (it
 * proves possession of the key); here it is checked.  One we issued is
 * compared with our durable record of it (see ours_check); any other is
 * verified against the label's anchors (trust_anchors, e.g. a
 * manufacturer's IDevID CA, plus our root and issuing CA), with the
 * verdict cached on the SSL object per label for keep-alive requests;
 * every certificate of that chain our issuing CA signed (a sub-CA) is
 * then checked against the store on every request (ca/chain_check.h).
 * Nothing here reads the request body.
 *
 * Tokens: HTTP Basic, user = token id, password = the secret printed once
 * by `fleetpki token create`.  The store has SHA-256(secret) only (the
 * secret is 256 random bits, so a plain hash suffices); compared with
 * CRYPTO_memcmp.  A use is spent only when a certificate is issued.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "../ca/chain_check.h"
#include "../common/util.h"
#include "../registry/registry.h"
#include "../x509/x509util.h"
#include "est.h"
#include "token.h"

#define WWW_AUTH "Basic realm=\"fleetpki EST\", charset=\"UTF-8\""

/* Cached per-connection chain verdicts, per label: 0 unknown, 1 ok, 2
 * failed.  With a verdict of 1 the serials of the chain's certificates
 * our issuing CA signed are kept, and re-checked against the store on
 * every request (fp_chain_check_serials): the signature work is done once
 * per connection, a revocation still counts from the next request. */
typedef struct {
    unsigned char verdict[FP_MAX_EST_LABELS];
    int64_t valid_until[FP_MAX_EST_LABELS]; /* earliest notAfter of the chain */
    int n_ours[FP_MAX_EST_LABELS];
    char (*ours[FP_MAX_EST_LABELS])[FP_CHAIN_SERIAL_LEN];
} peer_cache;

static void unauthorized(fp_http_req *req, const char *why)
{
    fp_http_add_header(req, "WWW-Authenticate", WWW_AUTH);
    fp_http_error(req, 401, "%s", why);
}

int est_chain_verify(X509_STORE *anchors, X509 *leaf, STACK_OF(X509) *untrusted, X509 *issuer,
                     char (**ours)[FP_CHAIN_SERIAL_LEN], int *n_ours, int64_t *valid_until,
                     fp_error *err)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *chain = NULL;
    int rc;

    *ours = NULL;
    *n_ours = 0;
    if (ctx == NULL || X509_STORE_CTX_init(ctx, anchors, leaf, untrusted) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "chain verification set-up");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        rc = fp_err_set(err, FP_ERR_STATE, "%s",
                        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    /* every key of the chain meets the key rules, not only the leaf's and
     * the anchors' (checked at start): an intermediate with e = 1 would
     * let anyone "sign" leaves under it (x509util.h) */
    chain = X509_STORE_CTX_get0_chain(ctx);
    if (valid_until != NULL) {
        *valid_until = INT64_MAX;
        for (int i = 0; i < sk_X509_num(chain); i++) {
            int64_t na = fp_asn1_time_unix(X509_get0_notAfter(sk_X509_value(chain, i)));
            if (na < *valid_until)
                *valid_until = na;
        }
    }
    for (int i = 1; i < sk_X509_num(chain); i++) {
        fp_error kerr = {0};
        if (fp_x509_cert_key_check(sk_X509_value(chain, i), &kerr) != FP_ERR_OK) {
            rc = fp_err_set(err, FP_ERR_STATE, "chain certificate at depth %d: %s", i, kerr.msg);
            goto out;
        }
    }
    /* the chain as built, leaf first, anchor last: every depth */
    rc = fp_chain_issued_serials(issuer, chain, ours, n_ours, err);
out:
    X509_STORE_CTX_free(ctx);
    return rc;
}

static peer_cache *peer_cache_of(est_state *st, fp_http_req *req)
{
    peer_cache *pc;

    if (req->ssl == NULL)
        return NULL;
    pc = SSL_get_ex_data(req->ssl, st->ssl_idx);
    if (pc == NULL && (pc = calloc(1, sizeof(*pc))) != NULL &&
        !SSL_set_ex_data(req->ssl, st->ssl_idx, pc)) {
        free(pc);
        pc = NULL;
    }
    return pc;
}

/* Anchor path: the client chain verified against the label's trust store
 * (cached per connection), then every certificate of it that we issued
 * checked against our record (per request).  FP_ERR_STATE with the reason
 * in err when the chain is not acceptable. */
static int verify_peer(est_state *st, const est_label *lb, fp_http_req *req, fp_error *err)
{
    int li = (int)(lb - st->labels);
    peer_cache *pc = peer_cache_of(st, req);
    char (*ours)[FP_CHAIN_SERIAL_LEN] = NULL;
    int n_ours = 0, rc;
    int64_t until = 0, now = fp_now();

    if (pc != NULL && pc->verdict[li] == 2)
        return fp_err_set(err, FP_ERR_STATE, "chain verification failed earlier on this connection");
    /* a verdict cached on a long keep-alive connection lasts only while
     * every certificate of the chain is inside its validity */
    if (pc != NULL && pc->verdict[li] == 1 && now > pc->valid_until[li])
        return fp_err_set(err, FP_ERR_STATE, "a certificate of the chain has expired");
    if (pc == NULL || pc->verdict[li] == 0) {
        rc = est_chain_verify(lb->anchors, req->peer_cert, req->peer_chain,
                              fp_ca_get0_cert(lb->ca), &ours, &n_ours, &until, err);
        if (rc != FP_ERR_OK && rc != FP_ERR_STATE)
            return rc; /* not a verdict: try again next time */
        if (pc != NULL) {
            pc->verdict[li] = rc == FP_ERR_OK ? 1 : 2;
            pc->valid_until[li] = until;
            pc->ours[li] = ours; /* owned by the cache from here */
            pc->n_ours[li] = n_ours;
            ours = NULL;
        }
        if (rc != FP_ERR_OK) {
            free(ours);
            return rc;
        }
    }
    rc = fp_chain_check_serials(req->worker_state, fp_ca_id(lb->ca),
                                (const char (*)[FP_CHAIN_SERIAL_LEN])(pc ? pc->ours[li] : ours),
                                pc ? pc->n_ours[li] : n_ours, now, err);
    free(ours);
    return rc;
}

void est_peer_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    peer_cache *pc = ptr;
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (pc == NULL)
        return;
    for (int i = 0; i < FP_MAX_EST_LABELS; i++)
        free(pc->ours[i]);
    free(pc);
}

/* Anchor path: chain verification against the label's trust store. */
static void anchor_identity(fp_http_req *req, est_identity *id)
{
    char *subj = fp_name_string(X509_get_subject_name(req->peer_cert));
    id->by_cert = true;
    id->cert = req->peer_cert;
    if (fp_serial_hex(X509_get0_serialNumber(req->peer_cert), id->serial) != 0)
        snprintf(id->serial, sizeof(id->serial), "?");
    snprintf(id->actor, sizeof(id->actor), "est:anchor-cert:%.120s", subj ? subj : "?");
    free(subj);
}

/* A certificate naming our issuing CA as issuer is authentic iff it is
 * byte for byte one we issued: the store is the durable record of every
 * certificate this CA signed, so equality with it proves what a
 * signature check would, and saves two ECDSA verifications per new
 * connection.  It must also be inside its validity and not revoked.
 * FP_ERR_STATE when any of that fails. */
static int ours_check(const est_label *lb, fp_http_req *req, est_identity *id)
{
    unsigned char *der = NULL;
    int der_len, rc;
    int64_t now = fp_now();
    fp_cert_rec rec;
    fp_error err = {0};

    id->by_cert = true;
    id->ours = true;
    id->cert = req->peer_cert;
    if (fp_serial_hex(X509_get0_serialNumber(req->peer_cert), id->serial) != 0)
        return FP_ERR_STATE;
    snprintf(id->actor, sizeof(id->actor), "est:cert:%s", id->serial);
    /* only certificates meant for TLS client authentication: not our own
     * TLS server or OCSP signer certificates, for instance */
    if (X509_check_purpose(req->peer_cert, X509_PURPOSE_SSL_CLIENT, 0) != 1)
        return FP_ERR_STATE;
    rc = fp_store_cert_get(req->worker_state, id->serial, &rec, &err);
    if (rc != FP_ERR_OK)
        return rc == FP_ERR_NOT_FOUND ? FP_ERR_STATE : rc;
    der_len = i2d_X509(req->peer_cert, &der);
    if (der_len <= 0 || (size_t)der_len != rec.der_len ||
        CRYPTO_memcmp(der, rec.der, rec.der_len) != 0 || rec.status != FP_CERT_VALID ||
        now < rec.not_before || now > rec.not_after ||
        /* recorded under this label's project (its CA says so too) */
        strcmp(rec.project, lb->cfg->project) != 0)
        rc = FP_ERR_STATE;
    OPENSSL_free(der);
    fp_cert_rec_clear(&rec);
    return rc;
}

/* Issued by one of the issuing CAs of the label's project? */
static bool issued_by_project(const est_label *lb, X509 *cert)
{
    for (int i = 0; i < lb->n_cas; i++)
        if (X509_check_issued(fp_ca_get0_cert(lb->cas[i]), cert) == X509_V_OK)
            return true;
    return false;
}

/* Token check without the request body: id, secret, label, uses, expiry.
 * Returns FP_ERR_OK, or answered the request (401). */
static int token_auth(const est_label *lb, fp_http_req *req, est_identity *id)
{
    const char *hdr = fp_http_header(req, "Authorization");
    char *user = NULL, *pass = NULL;
    size_t passlen = 0;
    fp_token_rec t;
    fp_error err = {0};
    int rc = FP_ERR_PASSPHRASE;

    if (hdr == NULL) {
        unauthorized(req, "authentication required: TLS client certificate or enrollment token");
        return FP_ERR_PASSPHRASE;
    }
    if (fp_http_basic_parse(hdr, &user, &pass, &passlen, &err) != FP_ERR_OK) {
        unauthorized(req, "malformed Authorization header");
        return FP_ERR_PASSPHRASE;
    }
    /* scoped by the label's project: a token of another project is as
     * unknown here as one never created */
    rc = fp_store_token_get(req->worker_state, lb->cfg->project, user, &t, &err);
    if (rc != FP_ERR_OK && rc != FP_ERR_NOT_FOUND) {
        /* a store failure is ours, not a bad token: 500 (503 + Retry-After
         * while the database is unavailable), so a device does not throw
         * away a valid token over a transient error */
        est_answer_error(req, &err);
        goto out;
    }
    /* the same answer for unknown id and wrong secret */
    if (rc != FP_ERR_OK || !fp_token_matches(&t, pass, passlen) ||
        strcmp(t.label, lb->cfg->name) != 0) {
        unauthorized(req, "invalid enrollment token");
        rc = FP_ERR_PASSPHRASE;
        goto out;
    }
    if (t.uses_left <= 0 || (t.expires_at != 0 && fp_now() >= t.expires_at)) {
        unauthorized(req, t.uses_left <= 0 ? "enrollment token is used up"
                                           : "enrollment token has expired");
        rc = FP_ERR_STATE;
        goto out;
    }
    snprintf(id->token_id, sizeof(id->token_id), "%s", t.id);
    snprintf(id->cn_pattern, sizeof(id->cn_pattern), "%s", t.cn_pattern);
    snprintf(id->actor, sizeof(id->actor), "est:token:%s", t.id);
    rc = FP_ERR_OK;
out:
    fp_http_basic_free(user, pass, passlen);
    return rc;
}

/* The one place where an authenticated caller is known and nothing costly
 * has been done with the request body yet: the per-identity request rate
 * ([server] rate_per_identity) is counted here, so a device or token over
 * its rate costs no CSR work.  id->key is "cert:SERIAL" for ours,
 * "anchor:ISSUERHASH:SERIAL" for a certificate under a trust anchor (two
 * manufacturers may use the same serial), "token:ID" for a token.
 * FP_ERR_STATE when the request was answered (429). */
static int authenticated(fp_http_req *req, est_identity *id)
{
    if (id->by_cert && id->ours)
        snprintf(id->key, sizeof(id->key), "cert:%s", id->serial);
    else if (id->by_cert)
        snprintf(id->key, sizeof(id->key), "anchor:%08lx:%.60s",
                 X509_issuer_name_hash(req->peer_cert), id->serial);
    else
        snprintf(id->key, sizeof(id->key), "token:%s", id->token_id);
    snprintf(req->identity, sizeof(req->identity), "%s", id->actor);
    if (fp_http_limit_identity(req, id->key))
        return FP_ERR_STATE;
    return FP_ERR_OK;
}

/* Device registry (issue 10): an authenticated client certificate is a
 * device of the label's project, registered on first contact; a suspended
 * or decommissioned one is refused here, on every request (kept-alive
 * connections too), before any CSR work.  FP_ERR_OK, or answered. */
static int registry_contact(est_state *st, const est_label *lb, fp_http_req *req)
{
    fp_error err = {0};
    int rc;

    if (st->app->registry == NULL)
        return FP_ERR_OK;
    rc = fp_registry_contact(st->app->registry, req->worker_state, lb->cfg->project,
                             req->peer_cert, NULL, &err);
    if (rc == FP_ERR_OK)
        return rc;
    if (rc == FP_ERR_STATE || rc == FP_ERR_ARG || rc == FP_ERR_DUPLICATE) {
        /* err.msg names the device (escaped) and its state, or why the
         * certificate cannot name a device */
        fp_http_error(req, 403, "%s: device refused: %s", fp_err_name(rc), err.msg);
        return rc;
    }
    fp_log(FP_LOG_ERROR, "id=%s device registry: %s", req->id, err.msg);
    fp_http_error(req, 500, "internal error (request %s)", req->id);
    return rc;
}

int est_authenticate(est_state *st, const est_label *lb, fp_http_req *req, est_identity *id)
{
    int mode = lb->cfg->auth;
    bool has_basic = fp_http_header(req, "Authorization") != NULL;
    fp_error err = {0};
    int rc;

    memset(id, 0, sizeof(*id));
    if (req->peer_cert != NULL && mode != FP_EST_AUTH_TOKEN) {
        /* the key rules every certified key meets (x509util.h): e.g. an
         * RSA exponent of 1 makes the certificate a bearer password */
        fp_error kerr = {0};
        if (fp_x509_cert_key_check(req->peer_cert, &kerr) != FP_ERR_OK) {
            fp_http_error(req, 403, "%s: client certificate key: %s", fp_err_name(kerr.code),
                          kerr.msg);
            return kerr.code;
        }
        if (issued_by_project(lb, req->peer_cert)) {
            rc = ours_check(lb, req, id);
            if (rc == FP_ERR_OK && (rc = registry_contact(st, lb, req)) != FP_ERR_OK)
                return rc;
            if (rc == FP_ERR_OK)
                return authenticated(req, id);
            unauthorized(req, rc == FP_ERR_STATE
                                  ? "client certificate is revoked, expired or not issued here"
                                  : "client certificate check failed");
            return rc;
        }
        rc = verify_peer(st, lb, req, &err);
        if (rc == FP_ERR_OK) {
            anchor_identity(req, id);
            if ((rc = registry_contact(st, lb, req)) != FP_ERR_OK)
                return rc;
            return authenticated(req, id);
        }
        fp_log(FP_LOG_DEBUG, "id=%s client certificate rejected: %s", req->id, err.msg);
        if (rc != FP_ERR_STATE) {
            fp_log(FP_LOG_ERROR, "id=%s client chain check: %s", req->id, err.msg);
            fp_http_error(req, 500, "internal error (request %s)", req->id);
            return rc;
        }
        memset(id, 0, sizeof(*id));
        if (mode == FP_EST_AUTH_CERT || !has_basic) {
            unauthorized(req, "client certificate does not chain to a trust anchor of this label, "
                              "or a certificate of its chain is revoked, on hold or expired");
            return FP_ERR_PASSPHRASE;
        }
    }
    if (mode == FP_EST_AUTH_CERT) {
        unauthorized(req, "this label requires a TLS client certificate");
        return FP_ERR_PASSPHRASE;
    }
    if (token_auth(lb, req, id) != FP_ERR_OK)
        return FP_ERR_PASSPHRASE;
    return authenticated(req, id);
}

/* ---- RFC 7030 3.5 proof-of-possession linking ---- */

int est_channel_binding_b64(SSL *ssl, char *out, size_t size)
{
    unsigned char cb[64];
    size_t n = 0;

    if (ssl == NULL || size < 90)
        return -1;
    if (SSL_version(ssl) >= TLS1_3_VERSION) {
        /* TLS 1.3 has no tls-unique (RFC 8446 C.5); use tls-exporter
         * (RFC 9266): 32 bytes, label "EXPORTER-Channel-Binding", no context */
        static const char label[] = "EXPORTER-Channel-Binding";
        if (SSL_export_keying_material(ssl, cb, 32, label, sizeof(label) - 1, NULL, 0, 0) != 1)
            return -1;
        n = 32;
    } else {
        /* tls-unique (RFC 5929 3.1): the first Finished of the latest
         * handshake: the client's on a full handshake, ours on resumption */
        n = SSL_session_reused(ssl) ? SSL_get_finished(ssl, cb, sizeof(cb))
                                    : SSL_get_peer_finished(ssl, cb, sizeof(cb));
        if (n == 0 || n > sizeof(cb))
            return -1;
    }
    EVP_EncodeBlock((unsigned char *)out, cb, (int)n);
    OPENSSL_cleanse(cb, sizeof(cb));
    return 0;
}

int est_check_pop_linking(fp_http_req *req, X509_REQ *csr)
{
    char want[96];
    int i = X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1);
    X509_ATTRIBUTE *a = i >= 0 ? X509_REQ_get_attr(csr, i) : NULL;
    ASN1_TYPE *t = a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
    const unsigned char *got = NULL;
    int got_len = 0;

    if (t != NULL && (t->type == V_ASN1_PRINTABLESTRING || t->type == V_ASN1_UTF8STRING ||
                      t->type == V_ASN1_IA5STRING)) {
        got = ASN1_STRING_get0_data(t->value.asn1_string);
        got_len = ASN1_STRING_length(t->value.asn1_string);
    }
    if (got == NULL) {
        fp_http_error(req, 403, "%s: this label requires the TLS channel binding in the CSR "
                                "challengePassword (RFC 7030 3.5)", fp_err_name(FP_ERR_CSR_POP));
        return FP_ERR_CSR_POP;
    }
    if (est_channel_binding_b64(req->ssl, want, sizeof(want)) != 0 ||
        (size_t)got_len != strlen(want) || CRYPTO_memcmp(got, want, strlen(want)) != 0) {
        fp_http_error(req, 403, "%s: challengePassword does not match this TLS connection's "
                                "channel binding (RFC 7030 3.5)", fp_err_name(FP_ERR_CSR_POP));
        return FP_ERR_CSR_POP;
    }
    return FP_ERR_OK;
}
