/*
 * cred.c - fp_device_cred: a private key and its certificate chain, the
 * unit the EST client hands out and the credential store keeps.
 */
#include <stdlib.h>

#include "tls_backend.h"

int fpd_cred_new(fpd_key *key, fpd_certs *chain, fp_device_cred **out, fpd_errbuf *e)
{
    fp_device_cred *c;
    int rc;

    *out = NULL;
    if (chain->n == 0) {
        fpd_key_free(key);
        return fpd_err(e, FP_DEVICE_ERR_ARG, "no certificate");
    }
    if ((rc = fpd_cert_matches_key(&chain->v[0], key, e)) != FP_DEVICE_OK) {
        fpd_key_free(key);
        return rc;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        fpd_key_free(key);
        return fpd_err(e, FP_DEVICE_ERR_NOMEM, NULL);
    }
    c->refs = 1;
    c->key = key;
    c->chain = *chain;
    chain->v = NULL;
    chain->n = 0;
    *out = c;
    return FP_DEVICE_OK;
}

int fp_device_cred_from_pem(const char *key_pem, size_t key_len, const char *chain_pem,
                            size_t chain_len, fp_device_cred **out)
{
    fpd_key *k = NULL;
    fpd_certs chain = {0};
    int rc;

    if (out == NULL || key_pem == NULL || chain_pem == NULL)
        return FP_DEVICE_ERR_ARG;
    *out = NULL;
    if ((rc = fpd_key_parse((const unsigned char *)key_pem, key_len, &k, NULL)) != FP_DEVICE_OK)
        return rc;
    if ((rc = fpd_certs_from_pem(chain_pem, chain_len, &chain, NULL)) != FP_DEVICE_OK) {
        fpd_key_free(k);
        return rc;
    }
    rc = fpd_cred_new(k, &chain, out, NULL);
    fpd_certs_clear(&chain);
    return rc;
}

void fp_device_cred_free(fp_device_cred *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    fpd_key_free(c->key);
    fpd_certs_clear(&c->chain);
    free(c);
}

int fp_device_cred_key_pem(const fp_device_cred *c, char **out, size_t *len)
{
    if (c == NULL || out == NULL || len == NULL)
        return FP_DEVICE_ERR_ARG;
    return fpd_key_to_pem(c->key, out, len, NULL);
}

int fp_device_cred_chain_pem(const fp_device_cred *c, char **out, size_t *len)
{
    if (c == NULL || out == NULL || len == NULL)
        return FP_DEVICE_ERR_ARG;
    return fpd_certs_to_pem(&c->chain, out, len, NULL);
}

int fp_device_cred_validity(const fp_device_cred *c, int64_t *not_before, int64_t *not_after)
{
    if (c == NULL || not_before == NULL || not_after == NULL)
        return FP_DEVICE_ERR_ARG;
    return fpd_cert_validity(&c->chain.v[0], not_before, not_after);
}
