/* factory.c - bulk minting on the issuance path; see factory.h. */
#define _POSIX_C_SOURCE 200809L
#include "factory.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "build.h"
#include "mint.h"

/* ---- name patterns ---- */

static bool literal_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

int fp_name_pattern_parse(const char *pat, fp_name_pattern *out, fp_error *err)
{
    const char *pct = NULL, *p, *conv_end = NULL;
    size_t plen, slen;

    memset(out, 0, sizeof(*out));
    if (pat == NULL || !pat[0])
        return fp_err_set(err, FP_ERR_ARG, "--name: empty pattern");
    for (p = pat; *p; p++) {
        if (*p == '%') {
            const char *q = p + 1;
            if (pct != NULL)
                return fp_err_set(err, FP_ERR_ARG,
                                  "--name '%s': exactly one %%d conversion allowed", pat);
            pct = p;
            if (*q == '0') {
                out->zero = true;
                q++;
            }
            while (*q >= '0' && *q <= '9') {
                out->width = out->width * 10 + (*q - '0');
                if (out->width > 20)
                    return fp_err_set(err, FP_ERR_ARG, "--name '%s': width over 20", pat);
                q++;
            }
            if (*q != 'd')
                return fp_err_set(err, FP_ERR_ARG,
                                  "--name '%s': only %%d (with an optional 0 flag and width) "
                                  "is allowed",
                                  pat);
            /* "%5d" pads with spaces: not a valid name character */
            if (out->width > 0 && !out->zero)
                return fp_err_set(err, FP_ERR_ARG,
                                  "--name '%s': a width pads with spaces; use %%0%dd", pat,
                                  out->width);
            conv_end = q + 1;
            p = q;
            continue;
        }
        if (*p == '/')
            return fp_err_set(err, FP_ERR_ARG, "--name '%s': '/' is not allowed", pat);
        if (!literal_ok(*p))
            return fp_err_set(err, FP_ERR_ARG,
                              "--name '%s': character 0x%02x not allowed (A-Z a-z 0-9 . _ -)",
                              pat, (unsigned char)*p);
    }
    if (pct == NULL)
        return fp_err_set(err, FP_ERR_ARG, "--name '%s': needs one %%d conversion", pat);
    if (strstr(pat, "..") != NULL)
        return fp_err_set(err, FP_ERR_ARG, "--name '%s': '..' is not allowed", pat);
    if (pat[0] == '.' || pat[0] == '-')
        return fp_err_set(err, FP_ERR_ARG, "--name '%s': must not start with '.' or '-'", pat);
    plen = (size_t)(pct - pat);
    slen = strlen(conv_end);
    if (plen + slen + 1 > FP_FACTORY_NAME_MAX)
        return fp_err_set(err, FP_ERR_ARG, "--name '%s': names would exceed %d characters", pat,
                          FP_FACTORY_NAME_MAX);
    memcpy(out->prefix, pat, plen);
    memcpy(out->suffix, conv_end, slen);
    return FP_ERR_OK;
}

int fp_name_pattern_format(const fp_name_pattern *p, uint64_t index,
                           char buf[FP_FACTORY_NAME_MAX + 1], fp_error *err)
{
    int n = snprintf(buf, FP_FACTORY_NAME_MAX + 1, "%s%0*" PRIu64 "%s", p->prefix, p->width,
                     index, p->suffix);
    if (n < 0 || n > FP_FACTORY_NAME_MAX)
        return fp_err_set(err, FP_ERR_ARG, "device name for number %" PRIu64 " exceeds %d characters",
                          index, FP_FACTORY_NAME_MAX);
    return FP_ERR_OK;
}

int64_t fp_name_pattern_index(const fp_name_pattern *p, const char *name)
{
    size_t plen = strlen(p->prefix), slen = strlen(p->suffix), len = strlen(name), dl;
    char buf[FP_FACTORY_NAME_MAX + 1];
    uint64_t v = 0;

    if (len < plen + slen + 1 || len > FP_FACTORY_NAME_MAX || strncmp(name, p->prefix, plen) != 0 ||
        strcmp(name + len - slen, p->suffix) != 0)
        return -1;
    dl = len - plen - slen;
    if (dl > 12)
        return -1;
    for (size_t i = 0; i < dl; i++) {
        char c = name[plen + i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (uint64_t)(c - '0');
    }
    /* the canonical spelling only ("sensor-7" is not "sensor-000007") */
    if (fp_name_pattern_format(p, v, buf, NULL) != FP_ERR_OK || strcmp(buf, name) != 0)
        return -1;
    return (int64_t)v;
}

/* ---- keys and requests ---- */

typedef struct keygen {
    EVP_PKEY_CTX *ctx;
} keygen;

static int keygen_init(keygen *kg, const char *algo, fp_error *err)
{
    const char *type = "EC", *group = NULL;
    unsigned bits = 0;

    memset(kg, 0, sizeof(*kg));
    if (algo == NULL || !strcmp(algo, "p256"))
        group = "P-256";
    else if (!strcmp(algo, "p384"))
        group = "P-384";
    else if (!strcmp(algo, "p521"))
        group = "P-521";
    else if (!strcmp(algo, "ed25519"))
        type = "ED25519";
    else if (!strcmp(algo, "rsa2048") || !strcmp(algo, "rsa3072")) {
        type = "RSA";
        bits = !strcmp(algo, "rsa2048") ? 2048 : 3072;
    } else
        return fp_err_set(err, FP_ERR_ARG,
                          "unknown key algorithm '%s' (p256, p384, p521, ed25519, rsa2048, rsa3072)",
                          algo);
    kg->ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (kg->ctx == NULL || EVP_PKEY_keygen_init(kg->ctx) <= 0 ||
        (group != NULL && EVP_PKEY_CTX_set_group_name(kg->ctx, group) <= 0) ||
        (bits && EVP_PKEY_CTX_set_rsa_keygen_bits(kg->ctx, (int)bits) <= 0)) {
        EVP_PKEY_CTX_free(kg->ctx);
        kg->ctx = NULL;
        return fp_err_set(err, FP_ERR_CRYPTO, "key generation setup (%s)", algo ? algo : "p256");
    }
    return FP_ERR_OK;
}

static int keygen_one(keygen *kg, EVP_PKEY **out, fp_error *err)
{
    *out = NULL;
    if (EVP_PKEY_generate(kg->ctx, out) <= 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "key generation");
    return FP_ERR_OK;
}

int fp_factory_keygen(const char *algo, EVP_PKEY **out, fp_error *err)
{
    keygen kg;
    int rc;

    *out = NULL;
    if ((rc = keygen_init(&kg, algo, err)) != FP_ERR_OK)
        return rc;
    rc = keygen_one(&kg, out, err);
    EVP_PKEY_CTX_free(kg.ctx);
    return rc;
}

/* The request's SubjectPublicKeyInfo.  For EC keys it is set from the
 * encoded point and the named curve through X509_PUBKEY_set0_param:
 * X509_REQ_set_pubkey would run OpenSSL 3's encoder for every key, which
 * costs about as much as generating it. */
static int set_pubkey(X509_REQ *req, EVP_PKEY *key)
{
    unsigned char pub[160], *copy;
    char group[32];
    size_t publen = 0, glen = 0;
    int curve;

    if (!EVP_PKEY_is_a(key, "EC"))
        return X509_REQ_set_pubkey(req, key);
    if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        &glen) ||
        ((curve = OBJ_sn2nid(group)) == NID_undef &&
         (curve = EC_curve_nist2nid(group)) == NID_undef) ||
        !EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub),
                                         &publen) ||
        (copy = OPENSSL_memdup(pub, publen)) == NULL)
        return 0;
    if (!X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req),
                                OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                                OBJ_nid2obj(curve), copy, (int)publen)) {
        OPENSSL_free(copy);
        return 0;
    }
    return 1;
}

int fp_factory_request(EVP_PKEY *key, const char *name, X509_REQ **out, fp_error *err)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *subj = NULL;

    *out = NULL;
    if (req == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
        (subj = X509_REQ_get_subject_name(req)) == NULL ||
        !X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)name, -1, -1, 0) ||
        !set_pubkey(req, key)) {
        X509_REQ_free(req);
        return fp_err_set(err, FP_ERR_CRYPTO, "request for %s", name);
    }
    *out = req;
    return FP_ERR_OK;
}

/* ---- private keys as PKCS#8 PEM ---- */

/* RFC 5915 ECPrivateKey, without the optional [0] parameters (they are in
 * the PKCS#8 AlgorithmIdentifier, as OpenSSL writes it too), through
 * OpenSSL's ASN.1 templates. */
typedef struct fp_ec_privkey {
    ASN1_INTEGER *version;
    ASN1_OCTET_STRING *private_key;
    ASN1_OBJECT *parameters;
    ASN1_BIT_STRING *public_key;
} FP_EC_PRIVKEY;

ASN1_SEQUENCE(FP_EC_PRIVKEY) = {
    ASN1_SIMPLE(FP_EC_PRIVKEY, version, ASN1_INTEGER),
    ASN1_SIMPLE(FP_EC_PRIVKEY, private_key, ASN1_OCTET_STRING),
    ASN1_EXP_OPT(FP_EC_PRIVKEY, parameters, ASN1_OBJECT, 0),
    ASN1_EXP_OPT(FP_EC_PRIVKEY, public_key, ASN1_BIT_STRING, 1),
} static_ASN1_SEQUENCE_END(FP_EC_PRIVKEY)

IMPLEMENT_STATIC_ASN1_ALLOC_FUNCTIONS(FP_EC_PRIVKEY)

static int i2d_FP_EC_PRIVKEY(const FP_EC_PRIVKEY *a, unsigned char **out)
{
    return ASN1_item_i2d((const ASN1_VALUE *)a, out, ASN1_ITEM_rptr(FP_EC_PRIVKEY));
}

/* PKCS#8 (RFC 5208) PrivateKeyInfo of an EC key, built from the key's
 * parameters.  PEM_write_bio_PrivateKey gives the same bytes but runs
 * OpenSSL 3's encoder machinery, ~75 us a key here (five times the
 * key generation itself); tests/unit/test_factory.c checks that both
 * agree byte for byte. */
static int ec_pkcs8_pem(BIO *out, EVP_PKEY *key)
{
    unsigned char priv[66], pub[160], *der = NULL;
    char group[32];
    size_t publen = 0, glen = 0;
    int curve, privlen = (EVP_PKEY_get_bits(key) + 7) / 8, derlen, ok = 0;
    BIGNUM *d = NULL;
    FP_EC_PRIVKEY *ec = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;

    if (privlen <= 0 || privlen > (int)sizeof(priv) ||
        !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        &glen) ||
        ((curve = OBJ_sn2nid(group)) == NID_undef &&
         (curve = EC_curve_nist2nid(group)) == NID_undef) ||
        !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
        BN_bn2binpad(d, priv, privlen) != privlen ||
        !EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub),
                                         &publen) ||
        /* _new allocates the required fields (version, privateKey) */
        (ec = FP_EC_PRIVKEY_new()) == NULL || ec->version == NULL || ec->private_key == NULL ||
        !ASN1_INTEGER_set(ec->version, 1) ||
        !ASN1_OCTET_STRING_set(ec->private_key, priv, privlen) ||
        (ec->public_key = ASN1_BIT_STRING_new()) == NULL ||
        !ASN1_BIT_STRING_set(ec->public_key, pub, (int)publen))
        goto out;
    /* a whole number of octets: no unused bits (RFC 5480 2.2) */
    ec->public_key->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    ec->public_key->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    if ((derlen = i2d_FP_EC_PRIVKEY(ec, &der)) <= 0 || (p8 = PKCS8_PRIV_KEY_INFO_new()) == NULL ||
        !PKCS8_pkey_set0(p8, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), 0, V_ASN1_OBJECT,
                         OBJ_nid2obj(curve), der, derlen))
        goto out;
    der = NULL; /* p8 owns it */
    ok = PEM_write_bio_PKCS8_PRIV_KEY_INFO(out, p8);
out:
    OPENSSL_cleanse(priv, sizeof(priv));
    BN_clear_free(d);
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)derlen);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (ec != NULL)
        ASN1_STRING_clear_free(ec->private_key);
    if (ec != NULL)
        ec->private_key = NULL;
    FP_EC_PRIVKEY_free(ec);
    return ok;
}

int fp_factory_key_pem(BIO *out, EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "EC"))
        return ec_pkcs8_pem(out, key);
    return PEM_write_bio_PrivateKey(out, key, NULL, NULL, 0, NULL, NULL);
}

/* ---- the run ---- */

typedef struct run {
    const fp_factory_opts *o;
    size_t batch;
    atomic_uint_fast64_t next;  /* next offset to claim */
    atomic_uint_fast64_t minted;
    atomic_int stop;
    pthread_mutex_t commit_lock; /* one commit at a time */
    pthread_mutex_t err_lock;
    int rc;
    fp_error err;
} run;

static void run_fail(run *r, int rc, const fp_error *e)
{
    pthread_mutex_lock(&r->err_lock);
    if (r->rc == FP_ERR_OK) {
        r->rc = rc;
        r->err = *e;
    }
    pthread_mutex_unlock(&r->err_lock);
    atomic_store(&r->stop, 1);
}

static bool skipped(const fp_factory_opts *o, uint64_t off)
{
    return o->skip != NULL && (o->skip[off / 8] >> (off % 8)) & 1;
}

/* One chunk: keys and requests, sign (in parallel), commit (one at a
 * time), then the output. */
static int do_chunk(run *r, fp_store *store, keygen *kg, uint64_t off, size_t n,
                    fp_factory_dev *devs, X509_REQ **csrs, fp_issue_req *reqs, X509 **certs,
                    fp_error *e)
{
    const fp_factory_opts *o = r->o;
    fp_signed_batch *b = NULL;
    size_t m = 0;
    int rc = FP_ERR_OK;

    for (size_t i = 0; i < n && rc == FP_ERR_OK; i++) {
        fp_factory_dev *d = &devs[m];
        if (skipped(o, off + i))
            continue;
        d->index = o->start + off + i;
        if ((rc = fp_name_pattern_format(&o->pattern, d->index, d->name, e)) != FP_ERR_OK ||
            (rc = keygen_one(kg, &d->key, e)) != FP_ERR_OK)
            break;
        if ((rc = fp_factory_request(d->key, d->name, &csrs[m], e)) != FP_ERR_OK) {
            EVP_PKEY_free(d->key);
            d->key = NULL;
            break;
        }
        reqs[m] = (fp_issue_req){.csr = csrs[m], .profile = o->profile, .actor = o->actor,
                                 .own_key = true, .project = o->project, .via = "factory"};
        m++;
    }
    if (rc == FP_ERR_OK && m > 0)
        rc = fp_issue_batch_sign(o->issuer, store, reqs, m, &b, e);
    if (rc == FP_ERR_OK && m > 0) {
        pthread_mutex_lock(&r->commit_lock);
        rc = atomic_load(&r->stop) ? fp_err_set(e, FP_ERR_STATE, "stopped")
                                   : fp_issue_batch_commit(b, store, certs, e);
        pthread_mutex_unlock(&r->commit_lock);
    }
    fp_signed_batch_free(b);
    if (rc == FP_ERR_OK) {
        atomic_fetch_add(&r->minted, m);
        for (size_t i = 0; i < m; i++)
            devs[i].cert = certs[i];
        rc = o->out != NULL ? o->out(o->out_arg, off / r->batch, devs, m, e) : FP_ERR_OK;
    }
    for (size_t i = 0; i < m; i++) {
        EVP_PKEY_free(devs[i].key);
        X509_REQ_free(csrs[i]);
        X509_free(certs[i]);
        memset(&devs[i], 0, sizeof(devs[i]));
        csrs[i] = NULL;
        certs[i] = NULL;
    }
    return rc;
}

static void *worker(void *arg)
{
    run *r = arg;
    const fp_factory_opts *o = r->o;
    size_t B = r->batch;
    fp_factory_dev *devs = calloc(B, sizeof(*devs));
    X509_REQ **csrs = calloc(B, sizeof(*csrs));
    fp_issue_req *reqs = calloc(B, sizeof(*reqs));
    X509 **certs = calloc(B, sizeof(*certs));
    fp_store *store = NULL;
    keygen kg = {0};
    fp_error e = {0};
    int rc;

    if (devs == NULL || csrs == NULL || reqs == NULL || certs == NULL)
        rc = fp_err_set(&e, FP_ERR_NOMEM, NULL);
    else if ((rc = keygen_init(&kg, o->algo, &e)) == FP_ERR_OK)
        rc = fp_store_open(o->store_path, &store, &e);
    while (rc == FP_ERR_OK && !atomic_load(&r->stop)) {
        uint64_t off = atomic_fetch_add(&r->next, B);
        if (off >= o->count)
            break;
        rc = do_chunk(r, store, &kg, off, (size_t)(o->count - off < B ? o->count - off : B), devs,
                      csrs, reqs, certs, &e);
    }
    if (rc != FP_ERR_OK)
        run_fail(r, rc, &e);
    fp_store_close(store);
    EVP_PKEY_CTX_free(kg.ctx);
    free(devs);
    free(csrs);
    free(reqs);
    free(certs);
    return NULL;
}

static int thread_count(int want)
{
    long n = want > 0 ? want : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

typedef void *(*thread_fn)(void *);

/* Run fn on nthreads threads over arg; the first failure to start one
 * stops the run (the threads started are joined). */
static int run_threads(int nthreads, thread_fn fn, void *arg, atomic_int *stop, fp_error *err)
{
    pthread_t tids[64];
    int started = 0, rc = FP_ERR_OK;

    for (; started < nthreads; started++) {
        if (pthread_create(&tids[started], NULL, fn, arg) != 0) {
            atomic_store(stop, 1);
            rc = fp_err_set(err, FP_ERR_NOMEM, "cannot start a worker thread");
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    return rc;
}

int fp_factory_mint(const fp_factory_opts *o, uint64_t *minted, fp_error *err)
{
    run r;
    int rc;

    *minted = 0;
    if (o->count == 0 || o->count > FP_FACTORY_MAX_COUNT)
        return fp_err_set(err, FP_ERR_ARG, "count must be 1..%d", FP_FACTORY_MAX_COUNT);
    memset(&r, 0, sizeof(r));
    r.o = o;
    r.batch = o->batch > 0 ? o->batch : FP_FACTORY_BATCH;
    atomic_init(&r.next, 0);
    atomic_init(&r.minted, 0);
    atomic_init(&r.stop, 0);
    pthread_mutex_init(&r.commit_lock, NULL);
    pthread_mutex_init(&r.err_lock, NULL);
    rc = run_threads(thread_count(o->threads), worker, &r, &r.stop, err);
    if (rc == FP_ERR_OK && r.rc != FP_ERR_OK) {
        rc = r.rc;
        if (err != NULL)
            *err = r.err;
    }
    *minted = atomic_load(&r.minted);
    pthread_mutex_destroy(&r.commit_lock);
    pthread_mutex_destroy(&r.err_lock);
    return rc;
}

/* ---- the machine's limit (benchmark floor) ---- */

typedef struct floor_run {
    const char *algo;
    bool sign;
    const fp_profile *profile;
    fp_signer *signer;
    X509 *ca_cert;
    const fp_build_fixed *fixed;
    uint64_t count;
    atomic_uint_fast64_t next;
    atomic_int stop;
    pthread_mutex_t err_lock;
    int rc;
    fp_error err;
} floor_run;

static int floor_one(floor_run *f, keygen *kg, fp_error *e)
{
    EVP_PKEY *key = NULL;
    X509_REQ *req = NULL;
    ASN1_INTEGER *serial = NULL;
    X509 *x = NULL;
    BIO *mem = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    int rc;

    if ((rc = keygen_one(kg, &key, e)) != FP_ERR_OK)
        return rc;
    /* the PKCS#8 PEM a bundle holds: part of the cost of a key */
    mem = BIO_new(BIO_s_mem());
    if (mem == NULL || !fp_factory_key_pem(mem, key)) {
        rc = fp_err_set(e, FP_ERR_CRYPTO, "key PEM");
        goto out;
    }
    if (f->sign) {
        fp_build_params bp = {.profile = f->profile, .issuer = f->ca_cert, .fixed = f->fixed,
                              .now = fp_now()};
        if ((rc = fp_factory_request(key, "floor-000000", &req, e)) != FP_ERR_OK ||
            (rc = fp_serial_random(&serial, e)) != FP_ERR_OK)
            goto out;
        bp.req = req;
        bp.serial = serial;
        if ((rc = fp_cert_build(&bp, &x, e)) != FP_ERR_OK ||
            (rc = fp_signer_sign_cert(f->signer, x, e)) != FP_ERR_OK ||
            (rc = fp_cert_to_der(x, &der, &derlen, e)) != FP_ERR_OK)
            goto out;
    }
out:
    OPENSSL_free(der);
    X509_free(x);
    ASN1_INTEGER_free(serial);
    X509_REQ_free(req);
    BIO_free(mem);
    EVP_PKEY_free(key);
    return rc;
}

static void *floor_worker(void *arg)
{
    floor_run *f = arg;
    keygen kg = {0};
    fp_error e = {0};
    int rc = keygen_init(&kg, f->algo, &e);

    while (rc == FP_ERR_OK && !atomic_load(&f->stop) && atomic_fetch_add(&f->next, 1) < f->count)
        rc = floor_one(f, &kg, &e);
    if (rc != FP_ERR_OK) {
        pthread_mutex_lock(&f->err_lock);
        if (f->rc == FP_ERR_OK) {
            f->rc = rc;
            f->err = e;
        }
        pthread_mutex_unlock(&f->err_lock);
        atomic_store(&f->stop, 1);
    }
    EVP_PKEY_CTX_free(kg.ctx);
    return NULL;
}

int fp_factory_floor(const fp_config *cfg, const char *profile, const char *algo,
                     const char *mode, uint64_t count, int threads, double *seconds,
                     fp_error *err)
{
    floor_run f;
    EVP_PKEY *ca_key = NULL;
    fp_build_fixed *fixed = NULL;
    struct timespec t0, t1;
    int rc = FP_ERR_OK;

    memset(&f, 0, sizeof(f));
    *seconds = 0;
    if (strcmp(mode, "keys") != 0 && strcmp(mode, "sign") != 0)
        return fp_err_set(err, FP_ERR_ARG, "floor mode is keys or sign");
    f.algo = algo;
    f.sign = !strcmp(mode, "sign");
    f.count = count;
    atomic_init(&f.next, 0);
    atomic_init(&f.stop, 0);
    pthread_mutex_init(&f.err_lock, NULL);
    if (f.sign) {
        fp_build_params bp = {0};
        if ((f.profile = fp_config_profile(cfg, profile)) == NULL) {
            rc = fp_err_set(err, FP_ERR_PROFILE, "no profile named '%s'", profile);
            goto out;
        }
        /* a throwaway CA: the benchmark never signs with a real one */
        if ((rc = fp_factory_keygen("p256", &ca_key, err)) != FP_ERR_OK ||
            (rc = fp_signer_from_key(ca_key, &f.signer, err)) != FP_ERR_OK ||
            (rc = fp_mint_ca_cert("fleetpki floor", ca_key, "throwaway floor CA", 2, 0, NULL,
                                  f.signer, &f.ca_cert, err)) != FP_ERR_OK)
            goto out;
        bp.profile = f.profile;
        bp.issuer = f.ca_cert;
        if ((rc = fp_build_fixed_new(&bp, &fixed, err)) != FP_ERR_OK)
            goto out;
        f.fixed = fixed;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = run_threads(thread_count(threads), floor_worker, &f, &f.stop, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (rc == FP_ERR_OK && f.rc != FP_ERR_OK) {
        rc = f.rc;
        if (err != NULL)
            *err = f.err;
    }
out:
    fp_build_fixed_free(fixed);
    X509_free(f.ca_cert);
    fp_signer_free(f.signer);
    EVP_PKEY_free(ca_key);
    pthread_mutex_destroy(&f.err_lock);
    return rc;
}
