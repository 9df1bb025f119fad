/*
 * lg_device.c - device identities for loadgen's device-newconn mode: n
 * fresh P-256 keys with certificates (CN bench-dev-<run>-<i>, clientAuth)
 * signed by a CA given as PEM files (a bring-your-own root uploaded to a
 * project with `fleetpki root add`), made before timing starts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "loadgen.h"

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    return x;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    return k;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *e;
    int ok;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    ok = e != NULL && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

int lg_devices_make(const char *ca_cert, const char *ca_key, size_t n, lg_identity **out)
{
    X509 *ca = read_cert(ca_cert);
    EVP_PKEY *cakey = read_key(ca_key);
    lg_identity *ids = calloc(n, sizeof(*ids));
    unsigned run = (unsigned)time(NULL) ^ (unsigned)getpid();
    int rc = -1;

    *out = NULL;
    if (ca == NULL || cakey == NULL || ids == NULL) {
        fprintf(stderr, "loadgen: cannot read --device-ca %s / --device-ca-key %s\n", ca_cert,
                ca_key);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        X509 *x = X509_new();
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509_NAME *nm = X509_NAME_new();
        char cn[64];
        snprintf(cn, sizeof(cn), "bench-dev-%08x-%zu", run, i);
        if (x == NULL || k == NULL || nm == NULL ||
            !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
                                        -1, 0) ||
            !X509_set_version(x, 2) ||
            !ASN1_INTEGER_set_int64(X509_get_serialNumber(x), (int64_t)i + 1 + ((int64_t)run << 24)) ||
            !X509_set_subject_name(x, nm) ||
            !X509_set_issuer_name(x, X509_get_subject_name(ca)) ||
            !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, k) ||
            add_ext(x, ca, NID_basic_constraints, "CA:FALSE") != 0 ||
            add_ext(x, ca, NID_key_usage, "critical,digitalSignature") != 0 ||
            add_ext(x, ca, NID_ext_key_usage, "clientAuth") != 0 ||
            X509_sign(x, cakey, EVP_sha256()) <= 0) {
            X509_free(x);
            EVP_PKEY_free(k);
            X509_NAME_free(nm);
            fprintf(stderr, "loadgen: device certificate %zu\n", i);
            goto out;
        }
        X509_NAME_free(nm);
        ids[i].cert = x;
        ids[i].key = k;
    }
    *out = ids;
    ids = NULL;
    rc = 0;
out:
    lg_devices_free(ids, n);
    X509_free(ca);
    EVP_PKEY_free(cakey);
    return rc;
}

void lg_devices_free(lg_identity *ids, size_t n)
{
    if (ids == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        X509_free(ids[i].cert);
        EVP_PKEY_free(ids[i].key);
    }
    free(ids);
}
