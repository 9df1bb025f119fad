/*
 * naming.c - a device's name from its certificate, by the project's rule
 * (store_devices.h fp_devname_rule): the subject commonName (default), the
 * first URI or DNS subjectAltName (RFC 5280 4.2.1.6), or the subject
 * serialNumber attribute (X.520 2.5.4.5, as IEEE 802.1AR suggests for an
 * IDevID).  Names are UTF-8, checked by the store for length and control
 * bytes.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "registry.h"

static int copy_name(const ASN1_STRING *s, bool utf8, char name[FP_DEVICE_NAME_MAX],
                     const char *what, fp_error *err)
{
    unsigned char *u = NULL;
    int n;

    if (utf8) {
        n = ASN1_STRING_to_UTF8(&u, s);
    } else {
        n = ASN1_STRING_length(s);
        u = (unsigned char *)ASN1_STRING_get0_data(s);
    }
    if (n <= 0 || n >= FP_DEVICE_NAME_MAX || memchr(u, '\0', (size_t)n) != NULL) {
        if (utf8)
            OPENSSL_free(u);
        return fp_err_set(err, FP_ERR_ARG, "certificate %s is empty, too long or malformed",
                          what);
    }
    for (int i = 0; i < n; i++)
        if (u[i] < 0x20 || u[i] == 0x7f) {
            if (utf8)
                OPENSSL_free(u);
            return fp_err_set(err, FP_ERR_ARG, "certificate %s contains a control byte", what);
        }
    memcpy(name, u, (size_t)n);
    name[n] = '\0';
    if (utf8)
        OPENSSL_free(u);
    return FP_ERR_OK;
}

static int from_subject(X509 *x, int nid, char name[FP_DEVICE_NAME_MAX], const char *what,
                        fp_error *err)
{
    const X509_NAME *sn = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(sn, nid, -1);

    if (i < 0)
        return fp_err_set(err, FP_ERR_ARG, "certificate has no subject %s to name the device",
                          what);
    /* two of them would make the name ambiguous */
    if (X509_NAME_get_index_by_NID(sn, nid, i) >= 0)
        return fp_err_set(err, FP_ERR_ARG, "certificate has more than one subject %s", what);
    return copy_name(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(sn, i)), true, name, what,
                     err);
}

static int from_san(X509 *x, int type, char name[FP_DEVICE_NAME_MAX], const char *what,
                    fp_error *err)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = FP_ERR_ARG;

    fp_err_set(err, FP_ERR_ARG, "certificate has no %s subjectAltName to name the device", what);
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == type) {
            /* IA5String: ASCII, copied as is */
            rc = copy_name(type == GEN_URI ? g->d.uniformResourceIdentifier : g->d.dNSName,
                           false, name, what, err);
            break;
        }
    }
    GENERAL_NAMES_free(gens);
    return rc;
}

int fp_registry_name_of(X509 *x, int rule, char name[FP_DEVICE_NAME_MAX], fp_error *err)
{
    name[0] = '\0';
    switch (rule) {
    case FP_DEVNAME_CN:
        return from_subject(x, NID_commonName, name, "commonName", err);
    case FP_DEVNAME_SAN_URI:
        return from_san(x, GEN_URI, name, "URI", err);
    case FP_DEVNAME_SAN_DNS:
        return from_san(x, GEN_DNS, name, "DNS", err);
    case FP_DEVNAME_SERIALNUMBER:
        return from_subject(x, NID_serialNumber, name, "serialNumber", err);
    default:
        return fp_err_set(err, FP_ERR_ARG, "unknown device naming rule %d", rule);
    }
}
