/*
 * der.c - the bounded DER cursor; see der.h.
 *
 * ASN1_get_object decodes the identifier and length octets and bounds the
 * length by the octets left; it accepts BER's indefinite length and
 * non-minimal lengths (it skips leading zero octets).  The DER rules are
 * checked after it by comparing the header's size with the size DER
 * gives for that tag and length (ASN1_object_size): any longer encoding
 * of the same tag or length is refused.
 */
#include "der.h"

#include <assert.h>
#include <limits.h>

#include <openssl/asn1.h>
#include <openssl/err.h>

void fp_der_init(fp_der *d, const unsigned char *p, size_t len)
{
    d->p = p;
    d->end = p + len;
    d->depth = 0;
}

int fp_der_peek(const fp_der *d, fp_der_tlv *t, fp_error *err)
{
    const unsigned char *q = d->p;
    size_t left = fp_der_left(d);
    long len = 0;
    int tag = 0, cls = 0, r, size;

    if (left < 2)
        return fp_err_set(err, FP_ERR_ARG, "DER: truncated header (%zu octets left)", left);
    r = ASN1_get_object(&q, &len, &tag, &cls, left > LONG_MAX ? LONG_MAX : (long)left);
    if ((r & 0x80) && q == d->p) /* header unreadable: cut short, or a length beyond a long */
        return fp_err_set(err, FP_ERR_ARG, "DER: truncated or unreadable header");
    if (r & 1) /* X.690 10.1 */
        return fp_err_set(err, FP_ERR_ARG, "DER: indefinite length");
    if (len < 0 || (unsigned long)len > INT_MAX)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "DER: length %ld is 2^31 or more", len);
    if (r & 0x80) /* the header was read, but its length runs past the end */
        return fp_err_set(err, FP_ERR_ARG, "DER: length %ld past the end (%zu octets left)", len,
                          (size_t)(d->end - q));
    size = ASN1_object_size((r & V_ASN1_CONSTRUCTED) != 0, (int)len, tag);
    if (size < 0)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "DER: length %ld is 2^31 or more", len);
    if ((size_t)size != (size_t)(q - d->p) + (size_t)len) /* X.690 10.1, 8.1.2.4 */
        return fp_err_set(err, FP_ERR_ARG, "DER: tag or length not in minimal form");
    t->start = d->p;
    t->content = q;
    t->len = (size_t)len;
    t->tag = tag;
    t->cls = cls;
    t->constructed = (r & V_ASN1_CONSTRUCTED) != 0;
    return FP_ERR_OK;
}

int fp_der_read(fp_der *d, fp_der_tlv *t, fp_error *err)
{
    int rc = fp_der_peek(d, t, err);

    if (rc == FP_ERR_OK)
        d->p = t->content + t->len;
    return rc;
}

int fp_der_expect(fp_der *d, int tag, int cls, bool constructed, fp_der_tlv *t, fp_error *err)
{
    fp_der_tlv got;
    int rc = fp_der_peek(d, &got, err);

    if (rc != FP_ERR_OK)
        return rc;
    if (got.tag != tag || got.cls != cls || got.constructed != constructed)
        return fp_err_set(err, FP_ERR_ARG, "DER: tag %d class %d%s where tag %d class %d%s was expected",
                          got.tag, got.cls >> 6, got.constructed ? " constructed" : "", tag,
                          cls >> 6, constructed ? " constructed" : "");
    d->p = got.content + got.len;
    *t = got;
    return FP_ERR_OK;
}

int fp_der_enter(const fp_der *outer, const fp_der_tlv *t, fp_der *inner, fp_error *err)
{
    if (!t->constructed)
        return fp_err_set(err, FP_ERR_ARG, "DER: entering a primitive element");
    if (outer->depth >= FP_DER_MAX_DEPTH)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "DER: nested deeper than %d", FP_DER_MAX_DEPTH);
    /* t came from a cursor: its content lies within that cursor's span */
    fp_der_init(inner, t->content, t->len);
    inner->depth = outer->depth + 1;
    return FP_ERR_OK;
}

int fp_der_finish(const fp_der *d, fp_error *err)
{
    if (d->p != d->end)
        return fp_err_set(err, FP_ERR_ARG, "DER: %zu trailing octets", fp_der_left(d));
    return FP_ERR_OK;
}

size_t fp_der_hdr_size(uint64_t len)
{
    size_t n = 2; /* identifier, first length octet */

    for (uint64_t rest = len; len >= 0x80 && rest > 0; rest >>= 8)
        n++;
    return n;
}

size_t fp_der_put_hdr(unsigned char out[FP_DER_HDR_MAX], unsigned tag, uint64_t len)
{
    size_t n = fp_der_hdr_size(len), i = n;

    assert((tag & 0x1f) != 0x1f); /* high-tag form: not written here */
    out[0] = (unsigned char)tag;
    if (len < 0x80) {
        out[1] = (unsigned char)len;
        return n;
    }
    out[1] = (unsigned char)(0x80 | (n - 2)); /* X.690 8.1.3.5: long form */
    for (uint64_t rest = len; i > 2; rest >>= 8)
        out[--i] = (unsigned char)rest;
    return n;
}
