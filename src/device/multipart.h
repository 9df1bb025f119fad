/*
 * multipart.h - RFC 2046 5.1 multipart body parsing for the serverkeygen
 * answer (RFC 7030 4.4.2).  Parts point into the body (borrowed).
 */
#ifndef FPD_MULTIPART_H
#define FPD_MULTIPART_H

#include "http.h"

typedef struct {
    char content_type[FPD_HTTP_CT_MAX + 1];
    const unsigned char *data;
    size_t len;
} fpd_part;

/* ct: the answer's Content-Type (multipart/...; boundary=...).  Fills up
 * to max parts; MALFORMED on bad framing or more parts than max,
 * TRUNCATED when the close-delimiter is missing. */
int fpd_multipart_parse(const char *ct, const unsigned char *body, size_t len, fpd_part *parts,
                        size_t max, size_t *n, fpd_errbuf *e);

#endif
