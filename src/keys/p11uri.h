/*
 * p11uri.h - RFC 7512 "pkcs11:" URIs, the names of keys in a token.
 *
 *   pkcs11:token=fleet;object=issuing?module-path=/usr/lib/softhsm/libsofthsm2.so
 *         &pin-source=file:/etc/fleetpki/pin
 *
 * Path attributes select the token and the object (RFC 7512 2.3); query
 * attributes say how to reach it (module-path, 2.4) and where the PIN is
 * (pin-source).  pin-value is refused: a PIN never sits in a config file.
 */
#ifndef FP_P11URI_H
#define FP_P11URI_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/err.h"

#define FP_P11_ATTR_MAX 256

typedef struct fp_p11_uri {
    char token[33];        /* CK_TOKEN_INFO label is 32 bytes */
    char manufacturer[33];
    char serial[17];
    char model[17];
    char object[FP_P11_ATTR_MAX]; /* CKA_LABEL */
    unsigned char id[FP_P11_ATTR_MAX]; /* CKA_ID */
    size_t id_len;
    char type[16];         /* "private", "public", "cert", ... ("" any) */
    char module_path[1024];
    char pin_source[1024];
} fp_p11_uri;

/* Parse text; unknown path attributes are an error (RFC 7512 2.3 lets a
 * consumer refuse what it cannot honour, and a typo must not widen the
 * match), unknown query attributes are ignored. */
int fp_p11_uri_parse(const char *text, fp_p11_uri *u, fp_error *err);

/* true if text starts with "pkcs11:" (case-insensitive scheme, RFC 3986 3.1). */
bool fp_p11_uri_is(const char *text);

/* base with its object (and id) attributes replaced by object=name: the
 * URI of one key in base's token, module and PIN source kept.  name is
 * [A-Za-z0-9._-] (what fleetpki generates). */
int fp_p11_uri_with_object(const char *base, const char *name, char *buf, size_t size,
                           fp_error *err);

#endif
