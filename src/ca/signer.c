/* signer.c - the CA key interface: key files, PKCS#11 tokens and the
 * separate signer process behind one EVP_PKEY; see signer.h. */
#include "signer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "../common/util.h"
#include "../keys/p11.h"
#include "../keys/p11uri.h"
#include "../keys/rkey.h"
#include "../x509/x509util.h"

struct fp_signer {
    EVP_PKEY *key;
    bool async; /* remote with a backend that answers later (rkey.h) */
};

/* A key file of a token key holds its pkcs11: URI (ca create --pkcs11
 * writes one, so tools that find a CA's key by file reach the token). */
static int uri_in_file(const char *path, char *uri, size_t size)
{
    unsigned char *text = NULL;
    size_t len = 0;
    int rc = FP_ERR_NOT_FOUND;

    if (fp_file_read(path, 4096, &text, &len, NULL) != FP_ERR_OK)
        return FP_ERR_NOT_FOUND;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len > 7 && len < size && !memchr(text, '\n', len) &&
        fp_p11_uri_is((const char *)text)) {
        memcpy(uri, text, len);
        uri[len] = '\0';
        rc = FP_ERR_OK;
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

static fp_signer_opener opener;
static void *opener_arg;

void fp_signer_set_opener(fp_signer_opener open, void *arg)
{
    opener = open;
    opener_arg = arg;
}

int fp_signer_open_file(const char *path, const char *pass, size_t passlen,
                        fp_signer **out, fp_error *err)
{
    EVP_PKEY *key = NULL;
    int rc;

    if (opener == NULL)
        return fp_signer_open_direct(path, pass, passlen, out, err);
    *out = NULL;
    if ((rc = opener(opener_arg, path, pass, passlen, &key, err)) != FP_ERR_OK)
        return rc;
    rc = fp_signer_from_key(key, out, err);
    EVP_PKEY_free(key);
    return rc;
}

static fp_signer_generator generator;
static void *generator_arg;

void fp_signer_set_generator(fp_signer_generator gen, void *arg)
{
    generator = gen;
    generator_arg = arg;
}

int fp_signer_generate_direct(const char *ref, const char *algo, const char *pass,
                              size_t passlen, EVP_PKEY **out, fp_error *err)
{
    char tmp[4096 + 8];
    int rc;

    *out = NULL;
    if (fp_p11_uri_is(ref) || (size_t)snprintf(tmp, sizeof(tmp), "%s.new", ref) >= sizeof(tmp))
        return fp_err_set(err, FP_ERR_ARG, "a new key is made only for a key file");
    unlink(tmp); /* a leftover of an interrupted renewal */
    if ((rc = fp_key_generate(algo, out, err)) != FP_ERR_OK)
        return rc;
    if ((rc = fp_key_write(tmp, *out, pass, passlen, err)) != FP_ERR_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    return rc;
}

int fp_signer_generate_file(const char *ref, const char *algo, const char *pass, size_t passlen,
                            fp_signer **out, fp_error *err)
{
    EVP_PKEY *key = NULL;
    int rc;

    *out = NULL;
    rc = generator != NULL ? generator(generator_arg, ref, algo, pass, passlen, &key, err)
                           : fp_signer_generate_direct(ref, algo, pass, passlen, &key, err);
    if (rc != FP_ERR_OK)
        return rc;
    rc = fp_signer_from_key(key, out, err);
    EVP_PKEY_free(key);
    return rc;
}

int fp_signer_open_direct(const char *path, const char *pass, size_t passlen, fp_signer **out,
                          fp_error *err)
{
    char uri[4096];
    EVP_PKEY *key = NULL;
    int rc;

    *out = NULL;
    if (fp_p11_uri_is(path))
        rc = fp_p11_open_key(path, &key, err);
    else if ((rc = uri_in_file(path, uri, sizeof(uri))) == FP_ERR_OK)
        rc = fp_p11_open_key(uri, &key, err);
    else
        rc = fp_key_read(path, pass, passlen, &key, err);
    if (rc != FP_ERR_OK)
        return rc;
    rc = fp_signer_from_key(key, out, err);
    EVP_PKEY_free(key);
    return rc;
}

int fp_signer_from_key(EVP_PKEY *key, fp_signer **out, fp_error *err)
{
    fp_signer *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (!EVP_PKEY_up_ref(key)) {
        free(s);
        return fp_err_set(err, FP_ERR_CRYPTO, "key reference");
    }
    s->key = key;
    s->async = fp_rkey_can_async(key) != 0;
    *out = s;
    return FP_ERR_OK;
}

void fp_signer_free(fp_signer *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key); /* OpenSSL wipes private key material on free */
    free(s);
}

/* A signing call failed: if the key is remote, its backend said why
 * (wrong PIN, token gone: FP_ERR_KEY_UNAVAILABLE), else OpenSSL did. */
static int sign_failed(fp_signer *s, fp_error *err, const char *what)
{
    const fp_error *re = fp_rkey_last_error();
    if (fp_rkey_is_remote(s->key) && re->code != FP_ERR_OK)
        return fp_err_set(err, re->code, "%s: %s", what, re->msg);
    return fp_err_set(err, FP_ERR_CRYPTO, "%s", what);
}

EVP_PKEY *fp_signer_get0_pkey(fp_signer *s)
{
    return s->key;
}

int fp_signer_check_cert(fp_signer *s, X509 *cert, fp_error *err)
{
    if (X509_check_private_key(cert, s->key) != 1)
        return fp_err_set(err, FP_ERR_CRYPTO, "certificate does not match the signing key");
    return FP_ERR_OK;
}

int fp_signer_sign_cert(fp_signer *s, X509 *cert, fp_error *err)
{
    fp_rkey_clear_error();
    if (X509_sign(cert, s->key, fp_key_sig_md(s->key)) <= 0)
        return sign_failed(s, err, "certificate signing failed");
    return FP_ERR_OK;
}

int fp_signer_sign_crl(fp_signer *s, X509_CRL *crl, fp_error *err)
{
    fp_rkey_clear_error();
    if (X509_CRL_sign(crl, s->key, fp_key_sig_md(s->key)) <= 0)
        return sign_failed(s, err, "CRL signing failed");
    return FP_ERR_OK;
}

int fp_signer_sign_cms(fp_signer *s, X509 *signer_cert, STACK_OF(X509) *certs, BIO *data,
                       unsigned int flags, CMS_ContentInfo **out, fp_error *err)
{
    if ((*out = CMS_sign(signer_cert, s->key, certs, data, flags)) == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "CMS signing failed");
    return FP_ERR_OK;
}

int fp_signer_sign_req(fp_signer *s, X509_REQ *req, fp_error *err)
{
    fp_rkey_clear_error();
    if (X509_REQ_sign(req, s->key, fp_key_sig_md(s->key)) <= 0)
        return sign_failed(s, err, "request signing failed");
    return FP_ERR_OK;
}

int fp_signer_sign_ocsp(fp_signer *s, OCSP_BASICRESP *resp, X509 *signer_cert,
                        STACK_OF(X509) *certs, unsigned long flags, fp_error *err)
{
    fp_rkey_clear_error();
    if (!OCSP_basic_sign(resp, signer_cert, s->key, fp_key_sig_md(s->key), certs, flags))
        return sign_failed(s, err, "OCSP response signing failed");
    return FP_ERR_OK;
}

/* ---- without waiting ---- */

static _Thread_local fp_sign_runner tl_run;
static _Thread_local void *tl_run_arg;

void fp_signer_set_thread_runner(fp_sign_runner run, void *rarg)
{
    tl_run = run;
    tl_run_arg = rarg;
}

static _Thread_local fp_sign_fd_hook tl_fd_hook;

void fp_signer_set_thread_fd_hook(fp_sign_fd_hook hook)
{
    tl_fd_hook = hook;
}

void fp_signer_thread_keep_fd(int fd)
{
    if (tl_fd_hook != NULL)
        tl_fd_hook(tl_run_arg, fd, true);
}

void fp_signer_thread_forget_fd(int fd)
{
    if (tl_fd_hook != NULL)
        tl_fd_hook(tl_run_arg, fd, false);
}

static _Thread_local fp_sign_defer_hook tl_defer_hook;

void fp_signer_set_thread_defer_hook(fp_sign_defer_hook hook)
{
    tl_defer_hook = hook;
}

bool fp_signer_thread_defer(fp_sign_defer_fn fn, void *arg)
{
    return tl_defer_hook != NULL && tl_defer_hook(tl_run_arg, fn, arg);
}

/* One signing call and its continuation, kept while the job is paused. */
typedef struct sign_op {
    fp_signer *s;
    X509 *cert;           /* a certificate, or: */
    OCSP_BASICRESP *resp; /* an OCSP response */
    X509 *signer_cert;
    STACK_OF(X509) *certs;
    unsigned long flags;
    fp_sign_done done;
    void *arg;
} sign_op;

/* Inside the job: the whole signing call, so that its error (from the
 * remote key's per-thread last error) is read before any other job runs
 * on this thread. */
static int op_call(void *carg, fp_error *err)
{
    sign_op *o = carg;
    return o->resp != NULL
               ? fp_signer_sign_ocsp(o->s, o->resp, o->signer_cert, o->certs, o->flags, err)
               : fp_signer_sign_cert(o->s, o->cert, err);
}

static void op_done(void *darg, int rc, const fp_error *err)
{
    sign_op *o = darg;
    fp_sign_done done = o->done;
    void *arg = o->arg;
    free(o);
    done(arg, rc, err);
}

static void sign_async(const sign_op *tmpl)
{
    sign_op *o = NULL;
    fp_error e = {0};
    int rc;

    if (tmpl->s->async && tl_run != NULL && (o = malloc(sizeof(*o))) != NULL) {
        *o = *tmpl;
        if (tl_run(tl_run_arg, op_call, o, op_done, o))
            return;
        free(o);
    }
    rc = op_call((void *)tmpl, &e);
    tmpl->done(tmpl->arg, rc, &e);
}

void fp_signer_sign_cert_async(fp_signer *s, X509 *cert, fp_sign_done done, void *arg)
{
    sign_op o = {.s = s, .cert = cert, .done = done, .arg = arg};
    sign_async(&o);
}

void fp_signer_sign_ocsp_async(fp_signer *s, OCSP_BASICRESP *resp, X509 *signer_cert,
                               STACK_OF(X509) *certs, unsigned long flags, fp_sign_done done,
                               void *arg)
{
    sign_op o = {.s = s, .resp = resp, .signer_cert = signer_cert, .certs = certs,
                 .flags = flags, .done = done, .arg = arg};
    sign_async(&o);
}

/* ---- incremental signing ---- */

#define ALG_DER_MAX 128

struct fp_sign_stream {
    fp_signer *signer;
    EVP_MD_CTX *ctx;
    unsigned char alg[ALG_DER_MAX];
    size_t alg_len;
    bool oneshot;       /* EdDSA: buffer, sign at the end */
    unsigned char *buf; /* oneshot buffer */
    size_t len, cap;
};

int fp_signer_stream_new(fp_signer *s, fp_sign_stream **out, fp_error *err)
{
    fp_sign_stream *st = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = fp_key_sig_md(s->key);
    OSSL_PARAM params[2];
    int rc;

    *out = NULL;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    st->ctx = EVP_MD_CTX_new();
    if (st->ctx == NULL ||
        EVP_DigestSignInit_ex(st->ctx, &pctx, md ? EVP_MD_get0_name(md) : NULL, NULL, NULL,
                              s->key, NULL) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "signature context");
        goto fail;
    }
    /* the provider knows the AlgorithmIdentifier of what it signs with
     * (RFC 5758 3.2 ECDSA, RFC 4055 RSA, RFC 8410 Ed25519) */
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, st->alg,
                                                  sizeof(st->alg));
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_PKEY_CTX_get_params(pctx, params) != 1 || !OSSL_PARAM_modified(&params[0]) ||
        params[0].return_size == 0 || params[0].return_size > sizeof(st->alg)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "signature algorithm identifier");
        goto fail;
    }
    st->alg_len = params[0].return_size;
    st->signer = s;
    st->oneshot = md == NULL;
    *out = st;
    return FP_ERR_OK;
fail:
    fp_signer_stream_free(st);
    return rc;
}

void fp_signer_stream_get0_alg(const fp_sign_stream *st, const unsigned char **der,
                               size_t *len)
{
    *der = st->alg;
    *len = st->alg_len;
}

int fp_signer_stream_update(fp_sign_stream *st, const void *data, size_t len,
                            fp_error *err)
{
    if (len == 0)
        return FP_ERR_OK;
    if (!st->oneshot) {
        if (EVP_DigestSignUpdate(st->ctx, data, len) != 1)
            return fp_err_set(err, FP_ERR_CRYPTO, "signature update");
        return FP_ERR_OK;
    }
    if (len > SIZE_MAX / 2 - st->len)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "document too large to sign");
    if (st->len + len > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        unsigned char *nb;
        while (cap < st->len + len)
            cap *= 2;
        nb = realloc(st->buf, cap);
        if (nb == NULL)
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        st->buf = nb;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, data, len);
    st->len += len;
    return FP_ERR_OK;
}

int fp_signer_stream_final(fp_sign_stream *st, unsigned char **sig, size_t *siglen,
                           fp_error *err)
{
    unsigned char *out = NULL;
    size_t n = 0;
    int ok;

    *sig = NULL;
    *siglen = 0;
    ok = st->oneshot ? EVP_DigestSign(st->ctx, NULL, &n, st->buf, st->len)
                     : EVP_DigestSignFinal(st->ctx, NULL, &n);
    if (ok != 1 || n == 0 || (out = OPENSSL_malloc(n)) == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "signature length");
    fp_rkey_clear_error();
    ok = st->oneshot ? EVP_DigestSign(st->ctx, out, &n, st->buf, st->len)
                     : EVP_DigestSignFinal(st->ctx, out, &n);
    if (ok != 1) {
        OPENSSL_free(out);
        return sign_failed(st->signer, err, "signing failed");
    }
    *sig = out;
    *siglen = n;
    return FP_ERR_OK;
}

void fp_signer_stream_free(fp_sign_stream *st)
{
    if (st == NULL)
        return;
    EVP_MD_CTX_free(st->ctx);
    free(st->buf);
    free(st);
}
