/* chain_check.c - see chain_check.h. */
#define _POSIX_C_SOURCE 200809L
#include "chain_check.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "../x509/x509util.h"

int fp_chain_issued_serials(X509 *issuer, STACK_OF(X509) *chain,
                            char (**out)[FP_CHAIN_SERIAL_LEN], int *n, fp_error *err)
{
    int total = sk_X509_num(chain), k = 0;
    char (*serials)[FP_CHAIN_SERIAL_LEN] = NULL;

    *out = NULL;
    *n = 0;
    if (total <= 0)
        return FP_ERR_OK;
    serials = calloc((size_t)total, sizeof(*serials));
    if (serials == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int i = 0; i < total; i++) {
        X509 *x = sk_X509_value(chain, i);
        /* the issuing CA itself (signed by the root) is not in the
         * certificates table; anything it signed must be */
        if (X509_cmp(x, issuer) == 0 || X509_check_issued(issuer, x) != X509_V_OK)
            continue;
        if (fp_serial_hex(X509_get0_serialNumber(x), serials[k]) != 0) {
            free(serials);
            return fp_err_set(err, FP_ERR_STATE, "chain certificate %d: unusable serial number", i);
        }
        k++;
    }
    if (k == 0) {
        free(serials);
        return FP_ERR_OK;
    }
    *out = serials;
    *n = k;
    return FP_ERR_OK;
}

int fp_chain_check_serials(fp_store *s, const char *ca_id,
                           const char (*serials)[FP_CHAIN_SERIAL_LEN], int n, int64_t now,
                           fp_error *err)
{
    for (int i = 0; i < n; i++) {
        fp_cert_status_rec st;
        int rc = fp_store_cert_status(s, serials[i], &st, err);
        if (rc == FP_ERR_NOT_FOUND)
            return fp_err_set(err, FP_ERR_STATE, "certificate %s of the chain is not in our store",
                              serials[i]);
        if (rc != FP_ERR_OK)
            return rc;
        if (strcmp(st.ca_id, ca_id) != 0)
            return fp_err_set(err, FP_ERR_STATE, "certificate %s of the chain is recorded under "
                                                 "another CA", serials[i]);
        if (st.status != FP_CERT_VALID)
            return fp_err_set(err, FP_ERR_STATE, "certificate %s of the chain is %s (%s)",
                              serials[i], st.reason == FP_REASON_HOLD ? "on hold" : "revoked",
                              fp_reason_name(st.reason) ? fp_reason_name(st.reason) : "?");
        if (now > st.not_after)
            return fp_err_set(err, FP_ERR_STATE, "certificate %s of the chain has expired",
                              serials[i]);
        if (now < st.not_before)
            return fp_err_set(err, FP_ERR_STATE, "certificate %s of the chain is not valid yet",
                              serials[i]);
    }
    return FP_ERR_OK;
}

int fp_chain_check_store(fp_store *s, X509 *issuer, const char *ca_id, STACK_OF(X509) *chain,
                         int64_t now, fp_error *err)
{
    char (*serials)[FP_CHAIN_SERIAL_LEN] = NULL;
    int n = 0;
    int rc = fp_chain_issued_serials(issuer, chain, &serials, &n, err);

    if (rc == FP_ERR_OK)
        rc = fp_chain_check_serials(s, ca_id, (const char (*)[FP_CHAIN_SERIAL_LEN])serials, n, now,
                                    err);
    free(serials);
    return rc;
}
