/*
 * der.h - the one bounded DER cursor (STYLE.md: all wire parsing through
 * one cursor, never another hand-written TLV walker).
 *
 * Headers are read by OpenSSL's ASN1_get_object; on top of it the cursor
 * refuses what ASN1_get_object lets through but DER forbids (X.690 10.1):
 * the indefinite length (8.1.3.6), a length in long form that fits the
 * short form or carries leading zero octets (10.1: "the definite form of
 * length encoding shall be used, encoded in the minimum number of
 * octets"), and a tag number in high-tag form that fits the low one
 * (8.1.2.4).  Lengths of 2^31 and more are refused outright, and elements
 * may be nested at most FP_DER_MAX_DEPTH deep.  Nothing is read outside
 * the span given to fp_der_init.
 *
 * What the content of an element means is left to OpenSSL's d2i
 * functions: the cursor only finds the spans to hand them.
 *
 * Errors: FP_ERR_ARG for a malformed or truncated header, a length past
 * the end, trailing octets or a tag other than the one expected;
 * FP_ERR_TOO_LARGE for a length of 2^31 or more and for nesting deeper
 * than the bound.  The OpenSSL error queue is left empty on failure.
 */
#ifndef FP_DER_H
#define FP_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

/* Deeper than any structure fleetpki walks (a PKCS#10 request needs 3). */
#define FP_DER_MAX_DEPTH 8
/* Identifier octet, 0x88 and eight length octets: fp_der_put_hdr's most. */
#define FP_DER_HDR_MAX 10

typedef struct fp_der {
    const unsigned char *p;   /* next octet to read */
    const unsigned char *end; /* one past the last readable octet */
    unsigned depth;           /* elements entered to reach this span */
} fp_der;

/* One element as read: its header decoded and where its octets lie. */
typedef struct fp_der_tlv {
    const unsigned char *start;   /* identifier octet */
    const unsigned char *content; /* first content octet */
    size_t len;                   /* content octets */
    int tag;                      /* tag number (V_ASN1_SEQUENCE, 0 for [0], ...) */
    int cls;                      /* V_ASN1_UNIVERSAL, V_ASN1_CONTEXT_SPECIFIC, ... */
    bool constructed;
} fp_der_tlv;

/* A cursor over len octets at p (borrowed: they must outlive it). */
void fp_der_init(fp_der *d, const unsigned char *p, size_t len);

/* Read the header of the element at the cursor into *t without moving. */
int fp_der_peek(const fp_der *d, fp_der_tlv *t, fp_error *err);

/* Read the element at the cursor into *t and move past it (skip it). */
int fp_der_read(fp_der *d, fp_der_tlv *t, fp_error *err);

/* fp_der_read, and the element must have this tag, class and form. */
int fp_der_expect(fp_der *d, int tag, int cls, bool constructed, fp_der_tlv *t,
                  fp_error *err);

/* A cursor over the content of t, a constructed element read from outer
 * (one level deeper: FP_ERR_TOO_LARGE past FP_DER_MAX_DEPTH). */
int fp_der_enter(const fp_der *outer, const fp_der_tlv *t, fp_der *inner, fp_error *err);

/* Octets of t from its identifier to the end of its content. */
static inline size_t fp_der_tlv_size(const fp_der_tlv *t)
{
    return (size_t)(t->content - t->start) + t->len;
}

/* Octets not yet read. */
static inline size_t fp_der_left(const fp_der *d)
{
    return (size_t)(d->end - d->p);
}

/* FP_ERR_OK when every octet has been read, FP_ERR_ARG (trailing octets)
 * otherwise. */
int fp_der_finish(const fp_der *d, fp_error *err);

/* Write the identifier octet tag (low-tag form: tag number < 31, class
 * and constructed bits included, e.g. 0x30) and the definite length len
 * in minimal form (X.690 8.1.3, 10.1) into out; returns the octets
 * written.  A CRL may reach 4 GiB and ASN1_put_object takes an int
 * length, so this one writer is ours. */
size_t fp_der_put_hdr(unsigned char out[FP_DER_HDR_MAX], unsigned tag, uint64_t len);

/* What fp_der_put_hdr would write for len, without writing it. */
size_t fp_der_hdr_size(uint64_t len);

#endif
