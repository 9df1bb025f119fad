/*
 * rkey.c - a provider for keys whose private half lives elsewhere; see rkey.h.
 *
 * Why a provider in a library context of its own: OpenSSL 3 picks the
 * signature implementation by the key's algorithm name.  Our key
 * management is registered as "EC", "RSA" and "ED25519" in a private
 * OSSL_LIB_CTX, so EVP_PKEY_eq() (X509_check_private_key, which
 * OCSP_basic_sign calls) sees the same key type as a certificate's public
 * key and compares them through our match function, while the default
 * provider can never take our key over: our export refuses the private
 * half, so EVP_DigestSignInit falls back to the signature implementation of
 * the provider that made the key (ours).  No engine, no deprecated
 * EC_KEY_METHOD.
 */
#include "rkey.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/async.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#define RK_PARAM "fp-rkey"
#define RK_PROPS "provider=fpkey"

/* What each signature would otherwise look up again (about a quarter of
 * the provider's own cost per signature, perf on a certificate loop): the
 * fetched digest and the AlgorithmIdentifier DER for it, made once per
 * key and digest. */
#define RK_PREP_MAX 4
typedef struct rk_prep {
    char mdname[32];
    EVP_MD *md;
    unsigned char aid[128];
    size_t aid_len; /* 0: not known yet */
} rk_prep;

/* The backend, shared by the key and every copy OpenSSL makes of it. */
typedef struct rk_shared {
    atomic_int refs;
    fp_rkey_backend be;
    pthread_mutex_t mu; /* guards prep */
    rk_prep prep[RK_PREP_MAX];
    int nprep;
} rk_shared;

typedef struct rk_key {
    const char *type; /* "EC", "RSA", "ED25519" (static) */
    EVP_PKEY *pub;    /* public half, in the default library context */
    rk_shared *sh;    /* NULL for a public key imported to be compared */
} rk_key;

/* What fp_rkey_new hands to the import function. */
typedef struct rk_seed {
    EVP_PKEY *pub;
    rk_shared *sh;
} rk_seed;

static _Thread_local fp_error tl_err;

const fp_error *fp_rkey_last_error(void)
{
    return &tl_err;
}

void fp_rkey_clear_error(void)
{
    tl_err.code = FP_ERR_OK;
    tl_err.msg[0] = '\0';
}

static void shared_unref(rk_shared *sh)
{
    if (sh == NULL || atomic_fetch_sub(&sh->refs, 1) != 1)
        return;
    if (sh->be.free)
        sh->be.free(sh->be.arg);
    for (int i = 0; i < sh->nprep; i++)
        EVP_MD_free(sh->prep[i].md);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

/* ---- key management ---- */

static rk_key *key_new(const char *type)
{
    rk_key *k = calloc(1, sizeof(*k));
    if (k != NULL)
        k->type = type;
    return k;
}

static void *km_new_ec(void *provctx)
{
    (void)provctx;
    return key_new("EC");
}
static void *km_new_rsa(void *provctx)
{
    (void)provctx;
    return key_new("RSA");
}
static void *km_new_ed(void *provctx)
{
    (void)provctx;
    return key_new("ED25519");
}

static void km_free(void *kd)
{
    rk_key *k = kd;
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pub);
    shared_unref(k->sh);
    free(k);
}

static int km_has(const void *kd, int selection)
{
    const rk_key *k = kd;
    if (k == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && k->sh == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) && k->pub == NULL)
        return 0;
    return 1;
}

/* Import either our seed (fp_rkey_new) or a public key exported by the
 * default provider so that match() can compare the two. */
static int km_import(void *kd, int selection, const OSSL_PARAM params[])
{
    rk_key *k = kd;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, RK_PARAM);
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pub = NULL;

    if (k == NULL || k->pub != NULL)
        return 0;
    if (p != NULL) {
        const rk_seed *seed = NULL;
        if (!OSSL_PARAM_get_octet_ptr(p, (const void **)&seed, &(size_t){0}) || seed == NULL ||
            !EVP_PKEY_up_ref(seed->pub))
            return 0;
        k->pub = seed->pub;
        k->sh = seed->sh;
        atomic_fetch_add(&k->sh->refs, 1);
        return 1;
    }
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        return 0;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, k->type, NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return 0;
    }
    EVP_PKEY_CTX_free(ctx);
    k->pub = pub;
    return 1;
}

/* Only the public half ever leaves: with the private half selected the
 * export fails, which is what keeps the default provider from signing. */
static int km_export(void *kd, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    rk_key *k = kd;
    OSSL_PARAM *params = NULL;
    int ok;

    if (k == NULL || k->pub == NULL || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY))
        return 0;
    if (EVP_PKEY_todata(k->pub, EVP_PKEY_PUBLIC_KEY, &params) != 1)
        return 0;
    ok = cb(params, cbarg);
    OSSL_PARAM_free(params);
    return ok;
}

static const OSSL_PARAM *km_types(int selection)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    (void)selection;
    return none;
}

static int km_match(const void *a, const void *b, int selection)
{
    const rk_key *x = a, *y = b;
    (void)selection;
    return x != NULL && y != NULL && x->pub != NULL && y->pub != NULL &&
           EVP_PKEY_eq(x->pub, y->pub) == 1;
}

/* Everything about the key the public half knows (bits, security bits,
 * maximum signature size, default digest, which CMS_sign asks for, curve
 * name...), answered by the public key's own provider; plus our handle. */
static int km_get_params(void *kd, OSSL_PARAM params[])
{
    rk_key *k = kd;
    OSSL_PARAM *p;

    if (k == NULL || k->pub == NULL)
        return 0;
    /* our own handle, for fp_rkey_sign_raw (private library context only) */
    if ((p = OSSL_PARAM_locate(params, RK_PARAM)) != NULL &&
        !OSSL_PARAM_set_octet_ptr(p, k->sh, sizeof(*k->sh)))
        return 0;
    return EVP_PKEY_get_params(k->pub, params) == 1;
}

static const OSSL_PARAM *km_gettable(void *provctx)
{
    static const OSSL_PARAM t[] = {
        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
        OSSL_PARAM_END,
    };
    (void)provctx;
    return t;
}

static const char *km_opname_ec(int op)
{
    return op == OSSL_OP_SIGNATURE ? "ECDSA" : NULL;
}
static const char *km_opname_rsa(int op)
{
    return op == OSSL_OP_SIGNATURE ? "RSA" : NULL;
}
static const char *km_opname_ed(int op)
{
    return op == OSSL_OP_SIGNATURE ? "ED25519" : NULL;
}

#define KM_COMMON                                                                  \
    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free},                             \
    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has},                               \
    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))km_import},                         \
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))km_types},                    \
    {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export},                         \
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))km_types},                    \
    {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match},                           \
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params},                 \
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))km_gettable}

static const OSSL_DISPATCH km_ec[] = {
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new_ec},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))km_opname_ec},
    KM_COMMON, {0, NULL}};
static const OSSL_DISPATCH km_rsa[] = {
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new_rsa},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))km_opname_rsa},
    KM_COMMON, {0, NULL}};
static const OSSL_DISPATCH km_ed[] = {
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new_ed},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))km_opname_ed},
    KM_COMMON, {0, NULL}};

/* ---- signature ---- */

typedef struct rk_sig {
    rk_key *key;       /* borrowed from the EVP_PKEY, which outlives us */
    EVP_MD_CTX *md;    /* NULL for Ed25519 (one pass, no prehash) */
    char mdname[32];
    unsigned char *msg; /* Ed25519: the message so far */
    size_t len, cap;
} rk_sig;

static void *sig_newctx(void *provctx, const char *propq)
{
    (void)provctx;
    (void)propq;
    return calloc(1, sizeof(rk_sig));
}

static void sig_freectx(void *c)
{
    rk_sig *s = c;
    if (s == NULL)
        return;
    EVP_MD_CTX_free(s->md);
    OPENSSL_clear_free(s->msg, s->cap);
    free(s);
}

static void *sig_dupctx(void *c)
{
    rk_sig *s = c, *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    *d = *s;
    d->md = NULL;
    d->msg = NULL;
    d->cap = d->len = 0;
    if (s->md != NULL &&
        ((d->md = EVP_MD_CTX_new()) == NULL || !EVP_MD_CTX_copy_ex(d->md, s->md))) {
        sig_freectx(d);
        return NULL;
    }
    if (s->len > 0) {
        if ((d->msg = OPENSSL_malloc(s->len)) == NULL) {
            sig_freectx(d);
            return NULL;
        }
        memcpy(d->msg, s->msg, s->len);
        d->len = d->cap = s->len;
    }
    return d;
}

/* The digest for mdname (a reference the caller frees), fetched once per
 * key; its canonical name goes to canon (32 bytes). */
static EVP_MD *prep_md(rk_shared *sh, const char *mdname, char *canon)
{
    EVP_MD *md = NULL;

    pthread_mutex_lock(&sh->mu);
    for (int i = 0; i < sh->nprep; i++)
        if (!strcmp(sh->prep[i].mdname, mdname) ||
            !strcmp(EVP_MD_get0_name(sh->prep[i].md), mdname)) {
            md = sh->prep[i].md;
            break;
        }
    pthread_mutex_unlock(&sh->mu);
    if (md == NULL) {
        if ((md = EVP_MD_fetch(NULL, mdname, NULL)) == NULL)
            return NULL;
        pthread_mutex_lock(&sh->mu);
        if (sh->nprep < RK_PREP_MAX && EVP_MD_up_ref(md)) {
            rk_prep *p = &sh->prep[sh->nprep];
            snprintf(p->mdname, sizeof(p->mdname), "%s", mdname);
            p->md = md;
            p->aid_len = 0;
            sh->nprep++;
        }
        pthread_mutex_unlock(&sh->mu);
    } else if (!EVP_MD_up_ref(md)) {
        return NULL;
    }
    snprintf(canon, 32, "%s", EVP_MD_get0_name(md));
    return md;
}

static int sig_init(void *c, const char *mdname, void *kd, const OSSL_PARAM params[])
{
    rk_sig *s = c;
    rk_key *k = kd;
    EVP_MD *md = NULL;
    int ok;

    (void)params;
    if (k == NULL || k->sh == NULL)
        return 0;
    s->key = k;
    s->len = 0;
    if (!strcmp(k->type, "ED25519")) {
        /* RFC 8032 PureEdDSA: no digest */
        if (mdname != NULL && mdname[0] != '\0')
            return 0;
        return 1;
    }
    if (mdname == NULL || mdname[0] == '\0')
        mdname = "SHA256";
    if (strlen(mdname) >= sizeof(s->mdname))
        return 0;
    if ((md = prep_md(k->sh, mdname, s->mdname)) == NULL)
        return 0;
    if (s->md == NULL)
        s->md = EVP_MD_CTX_new();
    ok = s->md != NULL && EVP_DigestInit_ex2(s->md, md, NULL) == 1;
    EVP_MD_free(md);
    return ok;
}

static int sig_update(void *c, const unsigned char *data, size_t len)
{
    rk_sig *s = c;
    if (s->md != NULL)
        return EVP_DigestUpdate(s->md, data, len) == 1;
    if (len > s->cap - s->len) {
        size_t cap = s->cap ? s->cap : 1024;
        unsigned char *nb;
        while (cap - s->len < len) {
            if (cap > ((size_t)1 << 30))
                return 0;
            cap *= 2;
        }
        if ((nb = OPENSSL_clear_realloc(s->msg, s->cap, cap)) == NULL)
            return 0;
        s->msg = nb;
        s->cap = cap;
    }
    memcpy(s->msg + s->len, data, len);
    s->len += len;
    return 1;
}

/* The job's wait context key for our descriptor (its address). */
static const char rk_wait_key;

/*
 * Inside an ASYNC job: send the request, pause until the answer is
 * readable, collect it.  The worker thread serves other connections in
 * the meantime (signer/async.h).  Every failure to wait (no wait context)
 * falls back to reading the answer at once, which blocks as sign does.
 */
static int sign_in_job(ASYNC_JOB *job, const fp_rkey_backend *be, const char *mdname,
                       const unsigned char *data, size_t len, unsigned char **sig,
                       size_t *siglen, fp_error *e)
{
    ASYNC_WAIT_CTX *wc = ASYNC_get_wait_ctx(job);
    void *ticket = NULL;
    int fd = FP_RKEY_WAIT, rc;

    for (;;) {
        if ((rc = be->start(be->arg, mdname, data, len, &fd, &ticket, e)) != FP_ERR_OK)
            return rc;
        if (fd >= 0)
            break;
        /* FP_RKEY_BLOCK, or a wait we cannot make: the blocking way */
        if (fd != FP_RKEY_WAIT || wc == NULL || !ASYNC_pause_job())
            return be->sign(be->arg, mdname, data, len, sig, siglen, e);
        /* resumed: a channel may be free now */
    }
    for (;;) {
        if (wc != NULL && ASYNC_WAIT_CTX_set_wait_fd(wc, &rk_wait_key, fd, NULL, NULL)) {
            ASYNC_pause_job();
            ASYNC_WAIT_CTX_clear_fd(wc, &rk_wait_key);
        } else {
            /* cannot wait in the loop: here, as sign would */
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            while (poll(&pf, 1, -1) < 0 && errno == EINTR)
                ;
        }
        if ((rc = be->finish(be->arg, ticket, sig, siglen, e)) != FP_RKEY_AGAIN)
            return rc;
    }
}

/* Ask the backend; copy into the caller's buffer.  The backend's error
 * goes to a local first and to the thread's tl_err only after the answer:
 * another job on this thread may have written tl_err while this one was
 * paused. */
static int do_sign(rk_sig *s, unsigned char *out, size_t *outlen, size_t outsize)
{
    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    const fp_rkey_backend *be = &s->key->sh->be;
    const char *mdname = NULL;
    const unsigned char *data = s->msg;
    size_t len = s->len;
    ASYNC_JOB *job = be->start != NULL ? ASYNC_get_current_job() : NULL;
    fp_error e = {0};
    int rc;

    fp_rkey_clear_error();
    if (s->md != NULL) {
        if (EVP_DigestFinal_ex(s->md, dg, &dlen) != 1)
            return 0;
        mdname = s->mdname;
        data = dg;
        len = dlen;
    }
    rc = job != NULL ? sign_in_job(job, be, mdname, data, len, &sig, &siglen, &e)
                     : be->sign(be->arg, mdname, data, len, &sig, &siglen, &e);
    tl_err = e;
    if (rc != FP_ERR_OK) {
        OPENSSL_free(sig);
        if (tl_err.code == FP_ERR_OK)
            fp_err_set(&tl_err, rc, "remote signing failed");
        return 0;
    }
    if (siglen > outsize) {
        OPENSSL_free(sig);
        fp_err_set(&tl_err, FP_ERR_CRYPTO, "signature longer than the key allows");
        return 0;
    }
    memcpy(out, sig, siglen);
    *outlen = siglen;
    OPENSSL_free(sig);
    return 1;
}

static int sig_final(void *c, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    rk_sig *s = c;
    if (sig == NULL) {
        *siglen = (size_t)EVP_PKEY_get_size(s->key->pub);
        return 1;
    }
    return do_sign(s, sig, siglen, sigsize);
}

static int sig_oneshot(void *c, unsigned char *sig, size_t *siglen, size_t sigsize,
                       const unsigned char *tbs, size_t tbslen)
{
    rk_sig *s = c;
    if (sig == NULL) {
        *siglen = (size_t)EVP_PKEY_get_size(s->key->pub);
        return 1;
    }
    return sig_update(s, tbs, tbslen) && do_sign(s, sig, siglen, sigsize);
}

/* The AlgorithmIdentifier is the public key's own: ask the default
 * provider for it through a verification context (RFC 5758 3.2, RFC 4055,
 * RFC 8410), so no DER is written here. */
static int alg_id(rk_sig *s, OSSL_PARAM *p)
{
    EVP_MD_CTX *vctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char aid[128];
    OSSL_PARAM q[2];
    rk_shared *sh = s->key->sh;
    rk_prep *pr = NULL;
    int ok = 0;

    /* known for this key and digest: the same bytes as last time */
    if (s->md != NULL && sh != NULL) {
        pthread_mutex_lock(&sh->mu);
        for (int i = 0; i < sh->nprep; i++)
            if (!strcmp(EVP_MD_get0_name(sh->prep[i].md), s->mdname)) {
                pr = &sh->prep[i];
                break;
            }
        if (pr != NULL && pr->aid_len > 0) {
            ok = OSSL_PARAM_set_octet_string(p, pr->aid, pr->aid_len);
            pthread_mutex_unlock(&sh->mu);
            return ok;
        }
        pthread_mutex_unlock(&sh->mu);
    }
    if ((vctx = EVP_MD_CTX_new()) == NULL)
        return 0;
    if (EVP_DigestVerifyInit_ex(vctx, &pctx, s->md ? s->mdname : NULL, NULL, NULL,
                                s->key->pub, NULL) == 1) {
        q[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, aid,
                                                 sizeof(aid));
        q[1] = OSSL_PARAM_construct_end();
        ok = EVP_PKEY_CTX_get_params(pctx, q) == 1 && OSSL_PARAM_modified(&q[0]) &&
             OSSL_PARAM_set_octet_string(p, aid, q[0].return_size);
    }
    EVP_MD_CTX_free(vctx);
    if (ok && pr != NULL && q[0].return_size <= sizeof(pr->aid)) {
        pthread_mutex_lock(&sh->mu); /* entries are never removed */
        memcpy(pr->aid, aid, q[0].return_size);
        pr->aid_len = q[0].return_size;
        pthread_mutex_unlock(&sh->mu);
    }
    return ok;
}

static int sig_get_ctx_params(void *c, OSSL_PARAM params[])
{
    rk_sig *s = c;
    OSSL_PARAM *p;

    if (s->key == NULL)
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) != NULL &&
        !alg_id(s, p))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL &&
        !OSSL_PARAM_set_utf8_string(p, s->mdname))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL) {
        /* we sign RSASSA-PKCS1-v1_5 only (RFC 8017 8.2) */
        if (p->data_type == OSSL_PARAM_UTF8_STRING ? !OSSL_PARAM_set_utf8_string(p, "pkcs1")
                                                   : !OSSL_PARAM_set_int(p, 1))
            return 0;
    }
    return 1;
}

static const OSSL_PARAM *sig_gettable_ctx_params(void *c, void *provctx)
{
    static const OSSL_PARAM t[] = {
        OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
        OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL),
        OSSL_PARAM_END,
    };
    (void)c;
    (void)provctx;
    return t;
}

/* Accept what asks for the only behaviour we have; refuse the rest (PSS). */
static int sig_set_ctx_params(void *c, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    int mode = 0;
    (void)c;
    if (p == NULL)
        return 1;
    if (p->data_type == OSSL_PARAM_UTF8_STRING)
        return !strcmp((const char *)p->data, "pkcs1");
    return OSSL_PARAM_get_int(p, &mode) && mode == 1;
}

static const OSSL_PARAM *sig_settable_ctx_params(void *c, void *provctx)
{
    static const OSSL_PARAM t[] = {
        OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL),
        OSSL_PARAM_END,
    };
    (void)c;
    (void)provctx;
    return t;
}

static const OSSL_DISPATCH sig_fns[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))sig_newctx},
    {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx},
    {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))sig_init},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))sig_update},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))sig_final},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))sig_oneshot},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))sig_get_ctx_params},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))sig_gettable_ctx_params},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))sig_set_ctx_params},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))sig_settable_ctx_params},
    {0, NULL}};

/* ---- the provider ---- */

static const OSSL_ALGORITHM keymgmt_algs[] = {
    {"EC:id-ecPublicKey", RK_PROPS, km_ec, "fleetpki remote EC key"},
    {"RSA:rsaEncryption", RK_PROPS, km_rsa, "fleetpki remote RSA key"},
    {"ED25519", RK_PROPS, km_ed, "fleetpki remote Ed25519 key"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM sig_algs[] = {
    {"ECDSA", RK_PROPS, sig_fns, "ECDSA in a token or the signer process"},
    {"RSA:rsaEncryption", RK_PROPS, sig_fns, "RSASSA-PKCS1-v1_5 remote"},
    {"ED25519", RK_PROPS, sig_fns, "Ed25519 remote"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM *prov_query(void *provctx, int op, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    if (op == OSSL_OP_KEYMGMT)
        return keymgmt_algs;
    if (op == OSSL_OP_SIGNATURE)
        return sig_algs;
    return NULL;
}

static const OSSL_DISPATCH prov_fns[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))prov_query},
    {0, NULL}};

static int prov_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    *out = prov_fns;
    *provctx = NULL;
    return 1;
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static OSSL_LIB_CTX *lib_ctx;

static void lib_init(void)
{
    OSSL_LIB_CTX *l = OSSL_LIB_CTX_new();
    if (l == NULL)
        return;
    /* default too: encoders (SubjectPublicKeyInfo for X509_REQ_set_pubkey)
     * are looked up in the key's library context; they take our public
     * half through km_export, never more */
    if (!OSSL_PROVIDER_add_builtin(l, "fpkey", prov_init) ||
        OSSL_PROVIDER_load(l, "fpkey") == NULL || OSSL_PROVIDER_load(l, "default") == NULL) {
        OSSL_LIB_CTX_free(l);
        return;
    }
    lib_ctx = l; /* lives as long as the process */
}

static const char *type_of(const EVP_PKEY *pub)
{
    if (EVP_PKEY_is_a(pub, "EC"))
        return "EC";
    if (EVP_PKEY_is_a(pub, "RSA"))
        return "RSA";
    if (EVP_PKEY_is_a(pub, "ED25519"))
        return "ED25519";
    return NULL;
}

int fp_rkey_new(EVP_PKEY *pub, const fp_rkey_backend *be, EVP_PKEY **out, fp_error *err)
{
    rk_shared *sh = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    rk_seed seed;
    const char *type = type_of(pub);
    int rc = FP_ERR_OK;

    *out = NULL;
    pthread_once(&lib_once, lib_init);
    if (type == NULL) {
        rc = fp_err_set(err, FP_ERR_ARG, "key type not supported for a token or signer key "
                                         "(EC, RSA or Ed25519)");
        goto fail;
    }
    if (lib_ctx == NULL) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "cannot load the remote-key provider");
        goto fail;
    }
    if ((sh = calloc(1, sizeof(*sh))) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto fail;
    }
    atomic_init(&sh->refs, 1);
    pthread_mutex_init(&sh->mu, NULL);
    sh->be = *be;
    be = NULL; /* sh owns it now */
    seed.pub = pub;
    seed.sh = sh;
    params[0] = OSSL_PARAM_construct_octet_ptr(RK_PARAM, (void **)&(void *){&seed},
                                               sizeof(seed));
    params[1] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(lib_ctx, type, RK_PROPS);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "remote key object");
        goto fail;
    }
    EVP_PKEY_CTX_free(ctx);
    shared_unref(sh); /* the key holds its own reference */
    return FP_ERR_OK;
fail:
    EVP_PKEY_CTX_free(ctx);
    if (sh != NULL)
        shared_unref(sh);
    else if (be != NULL && be->free != NULL)
        be->free(be->arg);
    return rc;
}

int fp_rkey_is_remote(const EVP_PKEY *key)
{
    const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(key);
    return p != NULL && !strcmp(OSSL_PROVIDER_get0_name(p), "fpkey");
}

static rk_shared *shared_of(EVP_PKEY *key)
{
    rk_shared *sh = NULL;
    OSSL_PARAM params[2];

    if (!fp_rkey_is_remote(key))
        return NULL;
    params[0] = OSSL_PARAM_construct_octet_ptr(RK_PARAM, (void **)&sh, sizeof(*sh));
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_PKEY_get_params(key, params) != 1)
        return NULL;
    return sh;
}

int fp_rkey_can_async(EVP_PKEY *key)
{
    rk_shared *sh = shared_of(key);
    return sh != NULL && sh->be.start != NULL && sh->be.finish != NULL;
}

int fp_rkey_sign_raw(EVP_PKEY *key, const char *mdname, const unsigned char *data, size_t len,
                     unsigned char **sig, size_t *siglen, fp_error *err)
{
    rk_shared *sh = NULL;
    OSSL_PARAM params[2];

    *sig = NULL;
    if (!fp_rkey_is_remote(key))
        return fp_err_set(err, FP_ERR_ARG, "not a remote key");
    params[0] = OSSL_PARAM_construct_octet_ptr(RK_PARAM, (void **)&sh, sizeof(*sh));
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_PKEY_get_params(key, params) != 1 || sh == NULL)
        return fp_err_set(err, FP_ERR_INTERNAL, "remote key handle");
    return sh->be.sign(sh->be.arg, mdname, data, len, sig, siglen, err);
}
