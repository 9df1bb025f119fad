/*
 * cbor_rd.h - a bounded, allocation-free CBOR reader (RFC 8949) for the
 * device's SUIT/COSE parser.  A cursor over a borrowed buffer: every
 * read checks the bytes left first and never moves past the end; items
 * are handed out as slices into the buffer.  Definite lengths only
 * (COSE and SUIT require deterministic encoding, RFC 9052 section 9,
 * RFC 8949 section 4.2.1): an indefinite length is MALFORMED.
 *
 * Errors are fp_fw_err codes: TRUNCATED when the input ends inside an
 * item, MALFORMED for an item of the wrong type or a reserved encoding.
 */
#ifndef FPD_CBOR_RD_H
#define FPD_CBOR_RD_H

#include <stddef.h>
#include <stdint.h>

enum {
    CBR_UINT = 0,
    CBR_NINT = 1,
    CBR_BSTR = 2,
    CBR_TSTR = 3,
    CBR_ARRAY = 4,
    CBR_MAP = 5,
    CBR_TAG = 6,
    CBR_SIMPLE = 7,
};

typedef struct {
    const uint8_t *p;
    size_t len, off;
} cbr;

/* A slice of the input. */
typedef struct {
    const uint8_t *p;
    size_t len;
} cbr_slice;

void cbr_init(cbr *c, const uint8_t *p, size_t len);
/* 1 when every byte was consumed. */
int cbr_done(const cbr *c);
/* Major type of the next item without consuming it; -1 at the end. */
int cbr_peek(const cbr *c);

/* Each reads one item of its type or fails without a defined position. */
int cbr_uint(cbr *c, uint64_t *v);
/* major 0 or 1 within int64_t */
int cbr_int(cbr *c, int64_t *v);
int cbr_bstr(cbr *c, cbr_slice *s);
int cbr_tstr(cbr *c, cbr_slice *s);
/* array / map header: *n items (pairs for a map); n is checked against the
 * bytes left (each item takes at least one byte) */
int cbr_array(cbr *c, uint64_t *n);
int cbr_map(cbr *c, uint64_t *n);
int cbr_tag(cbr *c, uint64_t *tag);
/* simple value null (0xf6) */
int cbr_null(cbr *c);
/* Skips one whole item, nested ones included, iteratively (no recursion):
 * at most max_items items in all, else TOO_BIG. */
int cbr_skip(cbr *c, size_t max_items);
/* The encoded bytes of the next item (head included), consumed. */
int cbr_raw(cbr *c, size_t max_items, cbr_slice *s);

#endif
