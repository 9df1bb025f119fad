/*
 * p11.c - PKCS#11 keys: module loading, sessions, signing, key generation.
 * See p11.h for the contract.
 *
 * Threads: one session per key, used under the key's mutex.  A PKCS#11
 * session runs one operation at a time (PKCS#11 v2.40 5.6), so signatures
 * with one key are serialised; CAs with different keys sign in parallel.
 *
 * fork(): PKCS#11 v2.40 6.7.7 leaves a module's state undefined in a
 * child; the separate signer (signer process) therefore opens its tokens
 * after it is forked, never before.
 */
#define _GNU_SOURCE
#include "p11.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>

#include "../common/util.h"
#include "p11uri.h"
#include "rkey.h"

#define PIN_MAX 256
#define SIG_MAX 1024 /* RSA 8192 is 1024 bytes; P-521 r||s is 132 */

/* ---- modules: loaded once, kept for the life of the process ---- */

typedef struct p11_module {
    char path[1024];
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    /* Readers: every call into the module.  Writer: re-initialisation,
     * after a token went missing (many modules, SoftHSM2 among them, scan
     * for tokens only in C_Initialize, so a token that comes back is seen
     * only after C_Finalize + C_Initialize).  gen counts those; a key
     * whose session predates the current gen opens a new one. */
    pthread_rwlock_t lock;
    unsigned gen;
} p11_module;

#define MAX_MODULES 8
static p11_module modules[MAX_MODULES];
static int n_modules;
static pthread_mutex_t modules_mu = PTHREAD_MUTEX_INITIALIZER;
static char default_module[1024];
static char default_pin_file[1024];

void fp_p11_set_defaults(const char *module_path, const char *pin_file)
{
    pthread_mutex_lock(&modules_mu);
    snprintf(default_module, sizeof(default_module), "%s", module_path ? module_path : "");
    snprintf(default_pin_file, sizeof(default_pin_file), "%s", pin_file ? pin_file : "");
    pthread_mutex_unlock(&modules_mu);
}

static const char *ckr_name(CK_RV rv)
{
    switch (rv) {
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_PIN_EXPIRED: return "CKR_PIN_EXPIRED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_NOT_RECOGNIZED: return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_TEMPLATE_INCOMPLETE: return "CKR_TEMPLATE_INCOMPLETE";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_BUFFER_TOO_SMALL: return "CKR_BUFFER_TOO_SMALL";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_CRYPTOKI_NOT_INITIALIZED: return "CKR_CRYPTOKI_NOT_INITIALIZED";
    default: return "CKR_?";
    }
}

/* Return codes after which a fresh session may succeed. */
static bool session_lost(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID ||
           rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_ERROR ||
           rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

static int module_get(const char *path, p11_module **out, fp_error *err)
{
    CK_C_GetFunctionList get = NULL;
    CK_C_INITIALIZE_ARGS args;
    p11_module *m = NULL;
    CK_RV rv;
    int rc = FP_ERR_OK;

    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return fp_err_set(err, FP_ERR_CONFIG,
                          "no PKCS#11 module: add module-path=... to the pkcs11: URI or set "
                          "[ca] pkcs11_module");
    if (strlen(path) >= sizeof(m->path))
        return fp_err_set(err, FP_ERR_CONFIG, "PKCS#11 module path too long");
    pthread_mutex_lock(&modules_mu);
    for (int i = 0; i < n_modules; i++)
        if (!strcmp(modules[i].path, path)) {
            *out = &modules[i];
            goto out;
        }
    if (n_modules == MAX_MODULES) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "too many PKCS#11 modules");
        goto out;
    }
    m = &modules[n_modules];
    m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (m->dl == NULL) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "PKCS#11 module %s: %s", path, dlerror());
        goto out;
    }
    *(void **)&get = dlsym(m->dl, "C_GetFunctionList");
    if (get == NULL || get(&m->f) != CKR_OK || m->f == NULL) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "PKCS#11 module %s: no C_GetFunctionList", path);
        dlclose(m->dl);
        goto out;
    }
    /* PKCS#11 v2.40 5.4: CKF_OS_LOCKING_OK, we call it from several threads */
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    rv = m->f->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "PKCS#11 module %s: C_Initialize: %s (0x%lx)", path,
                        ckr_name(rv), (unsigned long)rv);
        dlclose(m->dl);
        goto out;
    }
    snprintf(m->path, sizeof(m->path), "%s", path);
    pthread_rwlock_init(&m->lock, NULL);
    n_modules++;
    *out = m;
out:
    pthread_mutex_unlock(&modules_mu);
    return rc;
}

/* Re-initialise m so it scans its tokens again.  Callers that saw the
 * same generation coalesce into one re-initialisation. */
static void module_reinit(p11_module *m, unsigned seen_gen)
{
    CK_C_INITIALIZE_ARGS args;

    pthread_rwlock_wrlock(&m->lock);
    if (m->gen == seen_gen) {
        m->f->C_Finalize(NULL);
        memset(&args, 0, sizeof(args));
        args.flags = CKF_OS_LOCKING_OK;
        m->f->C_Initialize(&args);
        m->gen++;
    }
    pthread_rwlock_unlock(&m->lock);
}

/* ---- PIN ---- */

static int read_pin(const fp_p11_uri *u, char *pin, size_t *pinlen, fp_error *err)
{
    char file[1024] = "";
    const char *env;
    unsigned char *text = NULL;
    size_t len = 0;
    int rc;

    if (u->pin_source[0]) {
        /* RFC 7512 2.4: pin-source is a URI; a bare path is taken as a file */
        const char *p = !strncmp(u->pin_source, "file:", 5) ? u->pin_source + 5 : u->pin_source;
        if (!strncmp(p, "//", 2))
            p += 2; /* file:///path */
        snprintf(file, sizeof(file), "%s", p);
    } else if ((env = getenv("FP_PKCS11_PIN")) != NULL && env[0]) {
        if (strlen(env) >= PIN_MAX)
            return fp_err_set(err, FP_ERR_CONFIG, "FP_PKCS11_PIN is too long");
        *pinlen = strlen(env);
        memcpy(pin, env, *pinlen);
        return FP_ERR_OK;
    } else {
        pthread_mutex_lock(&modules_mu);
        snprintf(file, sizeof(file), "%s", default_pin_file);
        pthread_mutex_unlock(&modules_mu);
    }
    if (!file[0])
        return fp_err_set(err, FP_ERR_PASSPHRASE,
                          "no PKCS#11 PIN: set FP_PKCS11_PIN, pin-source=file:PATH in the URI, "
                          "or [ca] pkcs11_pin_file");
    if ((rc = fp_file_read(file, PIN_MAX, &text, &len, err)) != FP_ERR_OK) {
        fp_err_prefix(err, "PKCS#11 PIN file: ");
        return rc;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len == 0 || len >= PIN_MAX) {
        OPENSSL_cleanse(text, len);
        free(text);
        return fp_err_set(err, FP_ERR_PASSPHRASE, "PKCS#11 PIN file %s is empty or too long",
                          file);
    }
    memcpy(pin, text, len);
    *pinlen = len;
    OPENSSL_cleanse(text, len);
    free(text);
    return FP_ERR_OK;
}

/* ---- a key in a token ---- */

typedef struct p11_key {
    pthread_mutex_t mu;
    p11_module *mod;
    fp_p11_uri uri;
    char pin[PIN_MAX];
    size_t pinlen;
    CK_SESSION_HANDLE sess;
    bool have_sess;
    unsigned gen;        /* module generation the session belongs to */
    bool token_missing;  /* the last find_slot found no token */
    CK_OBJECT_HANDLE obj;
    CK_KEY_TYPE ktype;
} p11_key;

static void session_drop(p11_key *k);

static void key_free(void *arg)
{
    p11_key *k = arg;
    if (k == NULL)
        return;
    if (k->mod != NULL) {
        pthread_rwlock_rdlock(&k->mod->lock);
        session_drop(k);
        pthread_rwlock_unlock(&k->mod->lock);
    }
    pthread_mutex_destroy(&k->mu);
    OPENSSL_cleanse(k->pin, sizeof(k->pin));
    free(k);
}

/* CK_TOKEN_INFO strings are blank-padded, not terminated. */
static bool padded_eq(const CK_UTF8CHAR *field, size_t size, const char *want)
{
    size_t n = size;
    while (n > 0 && field[n - 1] == ' ')
        n--;
    return strlen(want) == n && memcmp(field, want, n) == 0;
}

static int find_slot(p11_key *k, CK_SLOT_ID *slot, fp_error *err)
{
    CK_FUNCTION_LIST_PTR f = k->mod->f;
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    CK_RV rv;
    int found = 0, rc = FP_ERR_OK;

    if ((rv = f->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK)
        return fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "PKCS#11 C_GetSlotList: %s",
                          ckr_name(rv));
    if (n > 0 && (slots = calloc(n, sizeof(*slots))) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (n > 0 && (rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
        rc = fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "PKCS#11 C_GetSlotList: %s", ckr_name(rv));
        goto out;
    }
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        if ((k->uri.token[0] && !padded_eq(ti.label, sizeof(ti.label), k->uri.token)) ||
            (k->uri.manufacturer[0] &&
             !padded_eq(ti.manufacturerID, sizeof(ti.manufacturerID), k->uri.manufacturer)) ||
            (k->uri.serial[0] &&
             !padded_eq(ti.serialNumber, sizeof(ti.serialNumber), k->uri.serial)) ||
            (k->uri.model[0] && !padded_eq(ti.model, sizeof(ti.model), k->uri.model)))
            continue;
        if (!(ti.flags & CKF_TOKEN_INITIALIZED))
            continue;
        if (found++ == 0)
            *slot = slots[i];
    }
    if (found == 0)
        rc = fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "no PKCS#11 token '%s' in module %s",
                        k->uri.token[0] ? k->uri.token : "(any)", k->mod->path);
    else if (found > 1)
        rc = fp_err_set(err, FP_ERR_CONFIG,
                        "%d PKCS#11 tokens match the URI; name one with token= or serial=",
                        found);
out:
    free(slots);
    return rc;
}

/* Find one object of class cls with the URI's label and id. */
static int find_object(p11_key *k, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *obj, fp_error *err)
{
    CK_FUNCTION_LIST_PTR f = k->mod->f;
    CK_ATTRIBUTE t[3];
    CK_ULONG nt = 0, n = 0;
    CK_OBJECT_HANDLE h[2];
    CK_RV rv;

    t[nt++] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
    if (k->uri.object[0])
        t[nt++] = (CK_ATTRIBUTE){CKA_LABEL, k->uri.object, strlen(k->uri.object)};
    if (k->uri.id_len)
        t[nt++] = (CK_ATTRIBUTE){CKA_ID, k->uri.id, k->uri.id_len};
    if ((rv = f->C_FindObjectsInit(k->sess, t, nt)) != CKR_OK)
        return fp_err_set(err, session_lost(rv) ? FP_ERR_KEY_UNAVAILABLE : FP_ERR_CRYPTO,
                          "PKCS#11 C_FindObjectsInit: %s", ckr_name(rv));
    rv = f->C_FindObjects(k->sess, h, 2, &n);
    f->C_FindObjectsFinal(k->sess);
    if (rv != CKR_OK)
        return fp_err_set(err, session_lost(rv) ? FP_ERR_KEY_UNAVAILABLE : FP_ERR_CRYPTO,
                          "PKCS#11 C_FindObjects: %s", ckr_name(rv));
    if (n == 0)
        return fp_err_set(err, FP_ERR_NOT_FOUND, "no %s key '%s' in PKCS#11 token '%s'",
                          cls == CKO_PRIVATE_KEY ? "private" : "public", k->uri.object,
                          k->uri.token);
    if (n > 1)
        return fp_err_set(err, FP_ERR_CONFIG,
                          "several keys match '%s' in token '%s'; add id= to the URI",
                          k->uri.object, k->uri.token);
    *obj = h[0];
    return FP_ERR_OK;
}

static void session_drop(p11_key *k)
{
    if (k->have_sess && k->gen == k->mod->gen)
        k->mod->f->C_CloseSession(k->sess);
    k->have_sess = false;
}

/* Open a session, log in, find the private key.  Caller holds k->mu. */
static int session_open(p11_key *k, bool find_key, fp_error *err)
{
    CK_FUNCTION_LIST_PTR f = k->mod->f;
    CK_SLOT_ID slot = 0;
    CK_RV rv;
    int rc;

    session_drop(k);
    k->token_missing = false;
    if ((rc = find_slot(k, &slot, err)) != FP_ERR_OK) {
        k->token_missing = rc == FP_ERR_KEY_UNAVAILABLE;
        return rc;
    }
    k->gen = k->mod->gen;
    rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &k->sess);
    if (rv != CKR_OK)
        return fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "PKCS#11 C_OpenSession: %s",
                          ckr_name(rv));
    k->have_sess = true;
    rv = f->C_Login(k->sess, CKU_USER, (CK_UTF8CHAR_PTR)k->pin, k->pinlen);
    if (rv == CKR_PIN_INCORRECT) {
        session_drop(k);
        return fp_err_set(err, FP_ERR_PASSPHRASE, "wrong PIN for PKCS#11 token '%s'",
                          k->uri.token);
    }
    if (rv == CKR_PIN_LOCKED) {
        session_drop(k);
        return fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "PIN of PKCS#11 token '%s' is locked",
                          k->uri.token);
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        session_drop(k);
        return fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "PKCS#11 C_Login: %s", ckr_name(rv));
    }
    if (find_key) {
        CK_ATTRIBUTE a = {CKA_KEY_TYPE, &k->ktype, sizeof(k->ktype)};
        if ((rc = find_object(k, CKO_PRIVATE_KEY, &k->obj, err)) != FP_ERR_OK) {
            session_drop(k);
            return rc;
        }
        if ((rv = f->C_GetAttributeValue(k->sess, k->obj, &a, 1)) != CKR_OK) {
            session_drop(k);
            return fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "PKCS#11 key type: %s",
                              ckr_name(rv));
        }
    }
    return FP_ERR_OK;
}

/* One attribute's value, malloc'd. */
static int get_attr(p11_key *k, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, unsigned char **val,
                    CK_ULONG *len, fp_error *err)
{
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv = k->mod->f->C_GetAttributeValue(k->sess, o, &a, 1);
    *val = NULL;
    if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > 65536)
        return fp_err_set(err, FP_ERR_CRYPTO, "PKCS#11 attribute 0x%lx: %s",
                          (unsigned long)type, ckr_name(rv));
    if ((a.pValue = *val = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if ((rv = k->mod->f->C_GetAttributeValue(k->sess, o, &a, 1)) != CKR_OK) {
        free(*val);
        *val = NULL;
        return fp_err_set(err, FP_ERR_CRYPTO, "PKCS#11 attribute 0x%lx: %s",
                          (unsigned long)type, ckr_name(rv));
    }
    *len = a.ulValueLen;
    return FP_ERR_OK;
}

/* The public key object beside the private one, as an OpenSSL key. */
static int public_key(p11_key *k, EVP_PKEY **out, fp_error *err)
{
    CK_OBJECT_HANDLE o;
    unsigned char *a = NULL, *b = NULL;
    CK_ULONG alen = 0, blen = 0;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    ASN1_OBJECT *oid = NULL;
    ASN1_OCTET_STRING *os = NULL;
    BIGNUM *n = NULL, *e = NULL;
    const unsigned char *p;
    int rc;

    *out = NULL;
    if ((rc = find_object(k, CKO_PUBLIC_KEY, &o, err)) != FP_ERR_OK)
        return rc;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (k->ktype == CKK_EC) {
        const char *group;
        if ((rc = get_attr(k, o, CKA_EC_PARAMS, &a, &alen, err)) != FP_ERR_OK ||
            (rc = get_attr(k, o, CKA_EC_POINT, &b, &blen, err)) != FP_ERR_OK)
            goto out;
        /* CKA_EC_PARAMS: DER of the curve's OID (namedCurve, RFC 5480 2.1.1.1);
         * CKA_EC_POINT: DER OCTET STRING around the point (PKCS#11 v2.40 2.3.3) */
        p = a;
        if ((oid = d2i_ASN1_OBJECT(NULL, &p, (long)alen)) == NULL ||
            (group = OBJ_nid2sn(OBJ_obj2nid(oid))) == NULL) {
            rc = fp_err_set(err, FP_ERR_CRYPTO, "token key: unknown EC curve");
            goto out;
        }
        p = b;
        os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)blen);
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
            !OSSL_PARAM_BLD_push_octet_string(
                bld, OSSL_PKEY_PARAM_PUB_KEY, os ? ASN1_STRING_get0_data(os) : b,
                os ? (size_t)ASN1_STRING_length(os) : blen)) {
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
            goto out;
        }
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    } else if (k->ktype == CKK_RSA) {
        if ((rc = get_attr(k, o, CKA_MODULUS, &a, &alen, err)) != FP_ERR_OK ||
            (rc = get_attr(k, o, CKA_PUBLIC_EXPONENT, &b, &blen, err)) != FP_ERR_OK)
            goto out;
        if ((n = BN_bin2bn(a, (int)alen, NULL)) == NULL ||
            (e = BN_bin2bn(b, (int)blen, NULL)) == NULL ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
            goto out;
        }
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else {
        rc = fp_err_set(err, FP_ERR_CONFIG, "token key '%s': only EC and RSA keys are supported",
                        k->uri.object);
        goto out;
    }
    if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL || ctx == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "token key '%s': public key", k->uri.object);
        goto out;
    }
    rc = FP_ERR_OK;
out:
    free(a);
    free(b);
    BN_free(n);
    BN_free(e);
    ASN1_OBJECT_free(oid);
    ASN1_OCTET_STRING_free(os);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

/* RSASSA-PKCS1-v1_5 signs a DigestInfo (RFC 8017 9.2); CKM_RSA_PKCS adds
 * only the padding, so the DigestInfo is encoded here, by OpenSSL. */
static int digest_info(const char *mdname, const unsigned char *dg, size_t dlen,
                       unsigned char **der, int *derlen)
{
    X509_SIG *s = X509_SIG_new();
    X509_ALGOR *alg = NULL;
    ASN1_OCTET_STRING *d = NULL;
    int nid = OBJ_sn2nid(mdname), ok = 0;

    if (nid == NID_undef)
        nid = OBJ_ln2nid(mdname);
    if (s != NULL && nid != NID_undef) {
        X509_SIG_getm(s, &alg, &d);
        ok = X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_NULL, NULL) &&
             ASN1_OCTET_STRING_set(d, dg, (int)dlen) && (*derlen = i2d_X509_SIG(s, der)) > 0;
    }
    X509_SIG_free(s);
    return ok;
}

/* PKCS#11 ECDSA gives r||s (v2.40 2.3.1); X.509 wants ECDSA-Sig-Value
 * (RFC 5480 2.2.3). */
static int ecdsa_der(const unsigned char *raw, size_t len, unsigned char **sig, size_t *siglen)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL), *ss = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
    int n = 0;
    if (s == NULL || r == NULL || ss == NULL || len % 2 || !ECDSA_SIG_set0(s, r, ss)) {
        BN_free(r);
        BN_free(ss);
        ECDSA_SIG_free(s);
        return 0;
    }
    *sig = NULL;
    n = i2d_ECDSA_SIG(s, sig);
    ECDSA_SIG_free(s);
    if (n <= 0)
        return 0;
    *siglen = (size_t)n;
    return 1;
}

static CK_RV sign_once(p11_key *k, CK_MECHANISM *mech, const unsigned char *in, size_t inlen,
                       unsigned char *out, CK_ULONG *outlen)
{
    CK_FUNCTION_LIST_PTR f = k->mod->f;
    CK_RV rv = f->C_SignInit(k->sess, mech, k->obj);
    if (rv != CKR_OK)
        return rv;
    return f->C_Sign(k->sess, (CK_BYTE_PTR)in, inlen, out, outlen);
}

static int p11_sign(void *arg, const char *mdname, const unsigned char *data, size_t len,
                    unsigned char **sig, size_t *siglen, fp_error *err)
{
    p11_key *k = arg;
    CK_MECHANISM mech = {0, NULL, 0};
    unsigned char raw[SIG_MAX], *in = NULL, *di = NULL;
    CK_ULONG rawlen = sizeof(raw);
    int dilen = 0, rc = FP_ERR_OK;
    size_t inlen = 0;
    CK_RV rv = CKR_OK;

    *sig = NULL;
    if (mdname == NULL)
        return fp_err_set(err, FP_ERR_CONFIG, "Ed25519 keys in a PKCS#11 token are not supported");
    if (k->ktype == CKK_EC) {
        mech.mechanism = CKM_ECDSA;
        in = (unsigned char *)data;
        inlen = len;
    } else {
        mech.mechanism = CKM_RSA_PKCS;
        if (!digest_info(mdname, data, len, &di, &dilen))
            return fp_err_set(err, FP_ERR_CRYPTO, "DigestInfo for %s", mdname);
        in = di;
        inlen = (size_t)dilen;
    }
    /* two attempts: the second after a fresh session, or after the module
     * was re-initialised because the token was missing */
    for (int attempt = 0; attempt < 2; attempt++) {
        unsigned gen;
        bool reinit;
        rv = CKR_OK;
        pthread_rwlock_rdlock(&k->mod->lock);
        pthread_mutex_lock(&k->mu);
        gen = k->mod->gen;
        if (k->have_sess && k->gen != gen)
            k->have_sess = false; /* the module was re-initialised */
        rc = FP_ERR_OK;
        if (!k->have_sess)
            rc = session_open(k, true, err);
        if (rc == FP_ERR_OK) {
            rawlen = sizeof(raw);
            rv = sign_once(k, &mech, in, inlen, raw, &rawlen);
            if (rv != CKR_OK) {
                if (session_lost(rv))
                    session_drop(k);
                rc = fp_err_set(err, FP_ERR_KEY_UNAVAILABLE,
                                "PKCS#11 C_Sign with '%s': %s (0x%lx)", k->uri.object,
                                ckr_name(rv), (unsigned long)rv);
            }
        } else if (rc != FP_ERR_PASSPHRASE && rc != FP_ERR_NOMEM) {
            /* the key was there when the CA started: whatever is wrong
             * now (token gone, key gone, PIN locked) is an outage */
            rc = FP_ERR_KEY_UNAVAILABLE;
            if (err != NULL)
                err->code = rc;
        }
        reinit = k->token_missing;
        pthread_mutex_unlock(&k->mu);
        pthread_rwlock_unlock(&k->mod->lock);
        if (rc == FP_ERR_OK || rc == FP_ERR_PASSPHRASE || (rv != CKR_OK && !session_lost(rv)))
            break;
        if (reinit)
            module_reinit(k->mod, gen);
    }
    if (rc != FP_ERR_OK)
        goto out;
    if (k->ktype == CKK_EC) {
        if (!ecdsa_der(raw, rawlen, sig, siglen))
            rc = fp_err_set(err, FP_ERR_CRYPTO, "ECDSA signature from the token");
    } else if ((*sig = OPENSSL_malloc(rawlen)) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    } else {
        memcpy(*sig, raw, rawlen);
        *siglen = rawlen;
    }
out:
    OPENSSL_free(di);
    return rc;
}

static int key_new(const char *uri, p11_key **out, fp_error *err)
{
    p11_key *k = calloc(1, sizeof(*k));
    const char *mpath;
    char defmod[1024];
    int rc;

    *out = NULL;
    if (k == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    pthread_mutex_init(&k->mu, NULL);
    if ((rc = fp_p11_uri_parse(uri, &k->uri, err)) != FP_ERR_OK)
        goto fail;
    pthread_mutex_lock(&modules_mu);
    snprintf(defmod, sizeof(defmod), "%s", default_module);
    pthread_mutex_unlock(&modules_mu);
    mpath = k->uri.module_path[0] ? k->uri.module_path : defmod;
    if (!mpath[0])
        mpath = getenv("FP_PKCS11_MODULE");
    if ((rc = module_get(mpath, &k->mod, err)) != FP_ERR_OK ||
        (rc = read_pin(&k->uri, k->pin, &k->pinlen, err)) != FP_ERR_OK)
        goto fail;
    *out = k;
    return FP_ERR_OK;
fail:
    key_free(k);
    return rc;
}

static int wrap(p11_key *k, EVP_PKEY **pub_out, EVP_PKEY **out, fp_error *err)
{
    EVP_PKEY *pub = NULL;
    fp_rkey_backend be = {.sign = p11_sign, .free = key_free, .arg = k};
    int rc;

    pthread_rwlock_rdlock(&k->mod->lock);
    pthread_mutex_lock(&k->mu);
    rc = public_key(k, &pub, err);
    pthread_mutex_unlock(&k->mu);
    pthread_rwlock_unlock(&k->mod->lock);
    if (rc != FP_ERR_OK) {
        key_free(k);
        return rc;
    }
    if (out != NULL && (rc = fp_rkey_new(pub, &be, out, err)) != FP_ERR_OK) {
        EVP_PKEY_free(pub);
        return rc; /* be (k) freed by fp_rkey_new */
    }
    if (out == NULL)
        key_free(k);
    if (pub_out != NULL)
        *pub_out = pub;
    else
        EVP_PKEY_free(pub);
    return FP_ERR_OK;
}

int fp_p11_open_key(const char *uri, EVP_PKEY **out, fp_error *err)
{
    p11_key *k = NULL;
    int rc;

    *out = NULL;
    if ((rc = key_new(uri, &k, err)) != FP_ERR_OK)
        return rc;
    if (!k->uri.object[0] && !k->uri.id_len) {
        key_free(k);
        return fp_err_set(err, FP_ERR_CONFIG, "pkcs11 URI names no key: add object= or id=");
    }
    pthread_rwlock_rdlock(&k->mod->lock);
    pthread_mutex_lock(&k->mu);
    rc = session_open(k, true, err);
    pthread_mutex_unlock(&k->mu);
    pthread_rwlock_unlock(&k->mod->lock);
    if (rc != FP_ERR_OK) {
        key_free(k);
        return rc;
    }
    return wrap(k, NULL, out, err);
}

int fp_p11_generate(const char *uri, const char *algo, EVP_PKEY **pub, EVP_PKEY **out,
                    fp_error *err)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM mech = {0, NULL, 0};
    CK_OBJECT_HANDLE hpub, hpriv, other;
    CK_ULONG bits = 3072;
    CK_BYTE exp[] = {0x01, 0x00, 0x01};
    unsigned char *ecparams = NULL;
    int eclen = 0, rc;
    p11_key *k = NULL;
    CK_RV rv;

    if (pub)
        *pub = NULL;
    if (out)
        *out = NULL;
    if ((rc = key_new(uri, &k, err)) != FP_ERR_OK)
        return rc;
    if (!k->uri.object[0]) {
        key_free(k);
        return fp_err_set(err, FP_ERR_ARG, "pkcs11 URI: object= names the key to generate");
    }
    if (!k->uri.id_len) {
        /* CKA_ID pairs the public and private objects (PKCS#11 v2.40 4.4) */
        k->uri.id_len = 16;
        if (RAND_bytes(k->uri.id, 16) != 1) {
            key_free(k);
            return fp_err_set(err, FP_ERR_CRYPTO, "random key id");
        }
    }
    if (!strcmp(algo, "p256") || !strcmp(algo, "p384")) {
        ASN1_OBJECT *o = OBJ_nid2obj(!strcmp(algo, "p256") ? NID_X9_62_prime256v1 : NID_secp384r1);
        mech.mechanism = CKM_EC_KEY_PAIR_GEN;
        if ((eclen = i2d_ASN1_OBJECT(o, &ecparams)) <= 0) {
            key_free(k);
            return fp_err_set(err, FP_ERR_CRYPTO, "EC parameters");
        }
        k->ktype = CKK_EC;
    } else if (!strcmp(algo, "rsa3072")) {
        mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        k->ktype = CKK_RSA;
    } else {
        key_free(k);
        return fp_err_set(err, FP_ERR_ARG,
                          "algorithm '%s' cannot be generated in a token (p256, p384, rsa3072)",
                          algo);
    }
    pthread_rwlock_rdlock(&k->mod->lock);
    pthread_mutex_lock(&k->mu);
    if ((rc = session_open(k, false, err)) != FP_ERR_OK)
        goto out;
    {
        /* never two keys under one name: a CA must not silently change key */
        fp_error e2 = {0};
        unsigned char saved[FP_P11_ATTR_MAX];
        size_t saved_len = k->uri.id_len;
        memcpy(saved, k->uri.id, saved_len);
        k->uri.id_len = 0;
        rc = find_object(k, CKO_PRIVATE_KEY, &other, &e2);
        memcpy(k->uri.id, saved, saved_len);
        k->uri.id_len = saved_len;
        if (rc != FP_ERR_NOT_FOUND) {
            rc = rc == FP_ERR_OK || rc == FP_ERR_CONFIG
                     ? fp_err_set(err, FP_ERR_EXISTS, "token '%s' already holds a key '%s'",
                                  k->uri.token, k->uri.object)
                     : fp_err_set(err, rc, "%s", e2.msg);
            goto out;
        }
    }
    {
        CK_ATTRIBUTE pubt[10], privt[12];
        CK_ULONG np = 0, nv = 0;
        CK_ULONG lablen = strlen(k->uri.object);
        pubt[np++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
        pubt[np++] = (CK_ATTRIBUTE){CKA_VERIFY, &yes, sizeof(yes)};
        /* a CA key signs and does nothing else (RFC 5280 4.2.1.3 spirit) */
        pubt[np++] = (CK_ATTRIBUTE){CKA_ENCRYPT, &no, sizeof(no)};
        pubt[np++] = (CK_ATTRIBUTE){CKA_WRAP, &no, sizeof(no)};
        pubt[np++] = (CK_ATTRIBUTE){CKA_LABEL, k->uri.object, lablen};
        pubt[np++] = (CK_ATTRIBUTE){CKA_ID, k->uri.id, k->uri.id_len};
        if (k->ktype == CKK_EC) {
            pubt[np++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, ecparams, (CK_ULONG)eclen};
        } else {
            pubt[np++] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
            pubt[np++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, exp, sizeof(exp)};
        }
        privt[nv++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
        privt[nv++] = (CK_ATTRIBUTE){CKA_PRIVATE, &yes, sizeof(yes)};
        /* non-exportable: PKCS#11 v2.40 4.9 */
        privt[nv++] = (CK_ATTRIBUTE){CKA_SENSITIVE, &yes, sizeof(yes)};
        privt[nv++] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &no, sizeof(no)};
        privt[nv++] = (CK_ATTRIBUTE){CKA_SIGN, &yes, sizeof(yes)};
        privt[nv++] = (CK_ATTRIBUTE){CKA_DECRYPT, &no, sizeof(no)};
        privt[nv++] = (CK_ATTRIBUTE){CKA_UNWRAP, &no, sizeof(no)};
        privt[nv++] = (CK_ATTRIBUTE){CKA_DERIVE, &no, sizeof(no)};
        privt[nv++] = (CK_ATTRIBUTE){CKA_LABEL, k->uri.object, lablen};
        privt[nv++] = (CK_ATTRIBUTE){CKA_ID, k->uri.id, k->uri.id_len};
        rv = k->mod->f->C_GenerateKeyPair(k->sess, &mech, pubt, np, privt, nv, &hpub, &hpriv);
        if (rv != CKR_OK) {
            rc = fp_err_set(err, FP_ERR_CRYPTO, "PKCS#11 C_GenerateKeyPair (%s): %s", algo,
                            ckr_name(rv));
            goto out;
        }
    }
    k->obj = hpriv;
    rc = FP_ERR_OK;
out:
    pthread_mutex_unlock(&k->mu);
    pthread_rwlock_unlock(&k->mod->lock);
    OPENSSL_free(ecparams);
    if (rc != FP_ERR_OK) {
        key_free(k);
        return rc;
    }
    return wrap(k, pub, out, err);
}
