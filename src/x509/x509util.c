/* x509util.c - see x509util.h. */
#define _GNU_SOURCE
#include "x509util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "../common/util.h"

int fp_key_generate(const char *algo, EVP_PKEY **out, fp_error *err)
{
    EVP_PKEY *key = NULL;

    *out = NULL;
    if (!strcmp(algo, "p256"))
        key = EVP_EC_gen("P-256");
    else if (!strcmp(algo, "p384"))
        key = EVP_EC_gen("P-384");
    else if (!strcmp(algo, "p521"))
        key = EVP_EC_gen("P-521");
    else if (!strcmp(algo, "ed25519"))
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else if (!strcmp(algo, "rsa2048"))
        key = EVP_RSA_gen(2048);
    else if (!strcmp(algo, "rsa3072"))
        key = EVP_RSA_gen(3072);
    else if (!strcmp(algo, "rsa4096"))
        key = EVP_RSA_gen(4096);
    else
        return fp_err_set(err, FP_ERR_ARG,
                          "unknown algorithm '%s' (p256, p384, ed25519, rsa3072)", algo);
    if (key == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "key generation (%s) failed", algo);
    *out = key;
    return FP_ERR_OK;
}

const EVP_MD *fp_key_sig_md(const EVP_PKEY *key)
{
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_ED25519:
    case EVP_PKEY_ED448:
        return NULL;
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_bits(key) > 384)
            return EVP_sha512();
        if (EVP_PKEY_get_bits(key) > 256)
            return EVP_sha384();
        return EVP_sha256();
    default:
        return EVP_sha256();
    }
}

void fp_key_describe(const EVP_PKEY *key, char *buf, size_t size)
{
    char group[64] = "";
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
        snprintf(buf, size, "RSA %d", EVP_PKEY_get_bits(key));
        break;
    case EVP_PKEY_EC:
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                       sizeof(group), NULL);
        snprintf(buf, size, "EC %s", group[0] ? group : "?");
        break;
    case EVP_PKEY_ED25519:
        snprintf(buf, size, "Ed25519");
        break;
    default:
        snprintf(buf, size, "%s", OBJ_nid2sn(EVP_PKEY_get_base_id(key)));
    }
}

/* Encrypt a private key as PKCS#8 with PBES2/scrypt/AES-256-CBC.  scrypt
 * N=2^14, r=8, p=1 (16 MiB per guess, as `openssl pkcs8 -scrypt`) stays
 * under OpenSSL's default 32 MiB decode limit, so any OpenSSL reads it. */
static X509_SIG *encrypt_pkcs8(EVP_PKEY *key, const char *pass, size_t passlen,
                               fp_error *err)
{
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    X509_ALGOR *pbe = NULL;
    X509_SIG *sig = NULL;

    p8 = EVP_PKEY2PKCS8(key);
    if (p8 == NULL) {
        fp_err_set(err, FP_ERR_CRYPTO, "PKCS#8 conversion failed");
        goto out;
    }
    pbe = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), NULL, 0, NULL, 1u << 14, 8, 1);
    if (pbe == NULL) {
        fp_err_set(err, FP_ERR_CRYPTO, "scrypt parameters failed");
        goto out;
    }
    sig = PKCS8_set0_pbe(pass, (int)passlen, p8, pbe);
    if (sig == NULL) {
        fp_err_set(err, FP_ERR_CRYPTO, "PKCS#8 encryption failed");
        goto out;
    }
    pbe = NULL; /* owned by sig now */
out:
    X509_ALGOR_free(pbe);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return sig;
}

int fp_key_write(const char *path, EVP_PKEY *key, const char *pass,
                 size_t passlen, fp_error *err)
{
    int rc = FP_ERR_OK;
    BIO *mem = NULL;
    X509_SIG *enc = NULL;
    char *data = NULL;
    long len;

    mem = BIO_new(BIO_s_secmem());
    if (mem == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if (pass != NULL && passlen > 0) {
        enc = encrypt_pkcs8(key, pass, passlen, err);
        if (enc == NULL) {
            rc = err ? err->code : FP_ERR_CRYPTO;
            goto out;
        }
        if (!PEM_write_bio_PKCS8(mem, enc)) {
            rc = fp_err_set(err, FP_ERR_CRYPTO, "PEM encoding failed");
            goto out;
        }
    } else if (!PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "PEM encoding failed");
        goto out;
    }
    len = BIO_get_mem_data(mem, &data);
    rc = fp_file_create(path, data, (size_t)len, 0600, err);
out:
    X509_SIG_free(enc);
    BIO_free(mem); /* secure-heap BIO: wiped on free */
    return rc;
}

typedef struct {
    const char *pass;
    size_t len;
    int asked;
} pass_cb_arg;

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    pass_cb_arg *a = u;
    (void)rwflag;
    a->asked = 1;
    if (a->pass == NULL || a->len == 0 || a->len > (size_t)size)
        return -1;
    memcpy(buf, a->pass, a->len);
    return (int)a->len;
}

int fp_key_read(const char *path, const char *pass, size_t passlen,
                EVP_PKEY **out, fp_error *err)
{
    int rc = FP_ERR_OK;
    unsigned char *data = NULL;
    size_t len = 0;
    BIO *mem = NULL;
    pass_cb_arg arg = {pass, passlen, 0};

    *out = NULL;
    rc = fp_file_read(path, 64 * 1024, &data, &len, err);
    if (rc != FP_ERR_OK)
        goto out;
    mem = BIO_new_mem_buf(data, (int)len);
    if (mem == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    *out = PEM_read_bio_PrivateKey(mem, NULL, pass_cb, &arg);
    if (*out == NULL) {
        if (arg.asked)
            rc = fp_err_set(err, FP_ERR_PASSPHRASE,
                            "%s: key is encrypted and the passphrase is %s", path,
                            pass ? "wrong" : "missing (use --passphrase-file or FLEETPKI_PASSPHRASE)");
        else
            rc = fp_err_set(err, FP_ERR_CRYPTO, "%s: not a PEM private key", path);
    }
out:
    BIO_free(mem);
    if (data != NULL)
        OPENSSL_clear_free(data, len);
    return rc;
}

int fp_passphrase_load(const char *file, char **out, size_t *len, fp_error *err)
{
    unsigned char *data = NULL;
    size_t n = 0, keep;
    int rc;

    *out = NULL;
    *len = 0;
    if (file == NULL) {
        const char *env = getenv("FLEETPKI_PASSPHRASE");
        if (env == NULL || *env == '\0')
            return FP_ERR_OK;
        n = strlen(env);
        if (n > FP_PASSPHRASE_MAX)
            return fp_err_set(err, FP_ERR_TOO_LARGE, "passphrase too long");
        *out = OPENSSL_strndup(env, n);
        if (*out == NULL)
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        *len = n;
        return FP_ERR_OK;
    }
    rc = fp_file_read(file, FP_PASSPHRASE_MAX, &data, &n, err);
    if (rc != FP_ERR_OK)
        return rc;
    keep = strcspn((char *)data, "\r\n");
    if (keep == 0) {
        OPENSSL_clear_free(data, n);
        return fp_err_set(err, FP_ERR_PASSPHRASE, "%s: empty passphrase", file);
    }
    OPENSSL_cleanse(data + keep, n - keep);
    data[keep] = '\0';
    *out = (char *)data;
    *len = keep;
    return FP_ERR_OK;
}

void fp_passphrase_free(char *pass, size_t len)
{
    if (pass != NULL)
        OPENSSL_clear_free(pass, len + 1);
}

int fp_cert_read(const char *path, X509 **out, fp_error *err)
{
    unsigned char *data = NULL;
    size_t len = 0;
    BIO *mem = NULL;
    int rc;

    *out = NULL;
    rc = fp_file_read(path, 1024 * 1024, &data, &len, err);
    if (rc != FP_ERR_OK)
        return rc;
    mem = BIO_new_mem_buf(data, (int)len);
    if (mem != NULL)
        *out = PEM_read_bio_X509(mem, NULL, NULL, NULL);
    if (*out == NULL)
        rc = fp_err_set(err, FP_ERR_CRYPTO, "%s: not a PEM certificate", path);
    BIO_free(mem);
    free(data);
    return rc;
}

int fp_cert_to_pem(X509 *cert, char **out, size_t *len, fp_error *err)
{
    BIO *mem = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;
    int rc = FP_ERR_OK;

    *out = NULL;
    if (mem == NULL || !PEM_write_bio_X509(mem, cert)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "PEM encoding failed");
        goto out;
    }
    n = BIO_get_mem_data(mem, &data);
    *out = malloc((size_t)n + 1);
    if (*out == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    if (len)
        *len = (size_t)n;
out:
    BIO_free(mem);
    return rc;
}

int fp_cert_write_pem(const char *path, X509 *cert, fp_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = fp_cert_to_pem(cert, &pem, &len, err);

    if (rc == FP_ERR_OK)
        rc = fp_file_create(path, pem, len, 0644, err);
    free(pem);
    return rc;
}

int fp_cert_to_der(X509 *cert, unsigned char **out, size_t *len, fp_error *err)
{
    int n;
    *out = NULL;
    n = i2d_X509(cert, out);
    if (n <= 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "DER encoding failed");
    *len = (size_t)n;
    return FP_ERR_OK;
}

X509 *fp_cert_from_der(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x;
    if (len > 1024 * 1024)
        return NULL;
    x = d2i_X509(NULL, &p, (long)len);
    if (x != NULL && p != der + len) { /* trailing garbage */
        X509_free(x);
        return NULL;
    }
    return x;
}

int fp_csr_parse(const unsigned char *data, size_t len, X509_REQ **out,
                 fp_error *err)
{
    BIO *mem = NULL;
    int rc = FP_ERR_OK;

    *out = NULL;
    if (len == 0)
        return fp_err_set(err, FP_ERR_CSR_MALFORMED, "empty CSR");
    if (len > FP_CSR_MAX_BYTES)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "CSR larger than %d bytes",
                          FP_CSR_MAX_BYTES);
    if (len > 10 && memmem(data, len, "-----BEGIN", 10) != NULL) {
        mem = BIO_new_mem_buf(data, (int)len);
        if (mem != NULL)
            *out = PEM_read_bio_X509_REQ(mem, NULL, NULL, NULL);
    } else {
        const unsigned char *p = data;
        *out = d2i_X509_REQ(NULL, &p, (long)len);
        if (*out != NULL && p != data + len) {
            X509_REQ_free(*out);
            *out = NULL;
            rc = fp_err_set(err, FP_ERR_CSR_MALFORMED, "trailing data after CSR");
            goto out;
        }
    }
    if (*out == NULL)
        rc = fp_err_set(err, FP_ERR_CSR_MALFORMED,
                        "not a PKCS#10 certificate request (PEM or DER)");
out:
    BIO_free(mem);
    return rc;
}

int fp_serial_random(ASN1_INTEGER **out, fp_error *err)
{
    unsigned char buf[FP_SERIAL_BYTES];
    BIGNUM *bn = NULL;
    int rc = FP_ERR_OK;

    *out = NULL;
    if (RAND_bytes(buf, sizeof(buf)) != 1)
        return fp_err_set(err, FP_ERR_CRYPTO, "CSPRNG failed");
    /* positive (top bit clear) and top octet nonzero (bit 6 set): 126
     * random bits, a constant 16-octet DER INTEGER. */
    buf[0] = (unsigned char)((buf[0] & 0x7f) | 0x40);
    bn = BN_bin2bn(buf, sizeof(buf), NULL);
    if (bn == NULL || (*out = BN_to_ASN1_INTEGER(bn, NULL)) == NULL)
        rc = fp_err_set(err, FP_ERR_CRYPTO, "serial conversion failed");
    BN_free(bn);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

int fp_serial_hex(const ASN1_INTEGER *serial, char out[FP_SERIAL_HEX_MAX])
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    char *hex = NULL;
    int rc = -1;

    out[0] = '\0';
    if (bn != NULL && (hex = BN_bn2hex(bn)) != NULL &&
        strlen(hex) < FP_SERIAL_HEX_MAX) {
        strcpy(out, hex);
        rc = 0;
    }
    OPENSSL_free(hex);
    BN_free(bn);
    return rc;
}

int fp_serial_normalize(const char *in, char out[FP_SERIAL_HEX_MAX], fp_error *err)
{
    size_t n = 0;
    const char *p = in;

    if (!strncmp(p, "serial=", 7))
        p += 7;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    while (*p == '0' && p[1] != '\0' && p[1] != ':')
        p++; /* BN_bn2hex has no leading zero nibbles beyond a byte */
    for (; *p; p++) {
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)*p) || n + 1 >= FP_SERIAL_HEX_MAX)
            return fp_err_set(err, FP_ERR_ARG, "bad serial '%s': expected hex, at most 20 octets", in);
        out[n++] = (char)toupper((unsigned char)*p);
    }
    out[n] = '\0';
    if (n == 0)
        return fp_err_set(err, FP_ERR_ARG, "empty serial");
    /* BN_bn2hex prints an even number of digits */
    if (n % 2) {
        memmove(out + 1, out, n + 1);
        out[0] = '0';
    }
    return FP_ERR_OK;
}

char *fp_name_string(const X509_NAME *name)
{
    BIO *mem = BIO_new(BIO_s_mem());
    char *data = NULL, *s = NULL;
    long n;
    if (mem == NULL)
        return NULL;
    if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        n = BIO_get_mem_data(mem, &data);
        s = malloc((size_t)n + 1);
        if (s != NULL) {
            memcpy(s, data, (size_t)n);
            s[n] = '\0';
        }
    }
    BIO_free(mem);
    return s;
}

char *fp_cert_sans_string(X509 *cert)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    BIO *mem = BIO_new(BIO_s_mem());
    char *data = NULL, *s = NULL;
    long n;

    if (mem == NULL) {
        GENERAL_NAMES_free(gens);
        return NULL;
    }
    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        if (i)
            BIO_puts(mem, ", ");
        GENERAL_NAME_print(mem, sk_GENERAL_NAME_value(gens, i));
    }
    n = BIO_get_mem_data(mem, &data);
    s = malloc((size_t)n + 1);
    if (s != NULL) {
        if (n > 0)
            memcpy(s, data, (size_t)n);
        s[n] = '\0';
    }
    BIO_free(mem);
    GENERAL_NAMES_free(gens);
    return s;
}

int64_t fp_asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return (int64_t)timegm(&tm);
}
