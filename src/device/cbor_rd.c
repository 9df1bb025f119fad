/*
 * cbor_rd.c - the bounded CBOR reader of cbor_rd.h (RFC 8949 section 3).
 */
#include "cbor_rd.h"

#include "fleetpki/firmware.h"

void cbr_init(cbr *c, const uint8_t *p, size_t len)
{
    c->p = p;
    c->len = p != NULL ? len : 0;
    c->off = 0;
}

int cbr_done(const cbr *c)
{
    return c->off == c->len;
}

int cbr_peek(const cbr *c)
{
    return c->off < c->len ? c->p[c->off] >> 5 : -1;
}

/* One head (RFC 8949 3.1): major type and argument.  Additional
 * information 28-30 is reserved and 31 (indefinite length / break) is
 * refused: deterministic encoding only. */
static int head(cbr *c, int *major, uint64_t *arg)
{
    uint8_t ib, ai;
    size_t n;

    if (c->off >= c->len)
        return FP_FW_ERR_TRUNCATED;
    ib = c->p[c->off++];
    *major = ib >> 5;
    ai = ib & 0x1f;
    if (ai < 24) {
        *arg = ai;
        return FP_FW_ERR_OK;
    }
    if (ai > 27)
        return FP_FW_ERR_MALFORMED;
    n = (size_t)1 << (ai - 24);
    if (c->len - c->off < n)
        return FP_FW_ERR_TRUNCATED;
    *arg = 0;
    for (size_t i = 0; i < n; i++)
        *arg = (*arg << 8) | c->p[c->off++];
    return FP_FW_ERR_OK;
}

static int expect(cbr *c, int want, uint64_t *arg)
{
    int major, rc;

    if ((rc = head(c, &major, arg)) != FP_FW_ERR_OK)
        return rc;
    return major == want ? FP_FW_ERR_OK : FP_FW_ERR_MALFORMED;
}

int cbr_uint(cbr *c, uint64_t *v)
{
    return expect(c, CBR_UINT, v);
}

int cbr_int(cbr *c, int64_t *v)
{
    int major, rc;
    uint64_t a;

    if ((rc = head(c, &major, &a)) != FP_FW_ERR_OK)
        return rc;
    if ((major != CBR_UINT && major != CBR_NINT) || a > (uint64_t)INT64_MAX)
        return FP_FW_ERR_MALFORMED;
    /* RFC 8949 3.1: major 1 encodes -1 - argument */
    *v = major == CBR_UINT ? (int64_t)a : -1 - (int64_t)a;
    return FP_FW_ERR_OK;
}

static int string(cbr *c, int want, cbr_slice *s)
{
    uint64_t n;
    int rc;

    if ((rc = expect(c, want, &n)) != FP_FW_ERR_OK)
        return rc;
    if (n > c->len - c->off)
        return FP_FW_ERR_TRUNCATED;
    s->p = c->p + c->off;
    s->len = (size_t)n;
    c->off += (size_t)n;
    return FP_FW_ERR_OK;
}

int cbr_bstr(cbr *c, cbr_slice *s)
{
    return string(c, CBR_BSTR, s);
}

int cbr_tstr(cbr *c, cbr_slice *s)
{
    return string(c, CBR_TSTR, s);
}

static int container(cbr *c, int want, uint64_t per, uint64_t *n)
{
    int rc;

    if ((rc = expect(c, want, n)) != FP_FW_ERR_OK)
        return rc;
    /* every item takes at least one byte: a count beyond what is left
     * cannot be honest, and refusing it here bounds every loop */
    if (*n > (c->len - c->off) / per)
        return FP_FW_ERR_TRUNCATED;
    return FP_FW_ERR_OK;
}

int cbr_array(cbr *c, uint64_t *n)
{
    return container(c, CBR_ARRAY, 1, n);
}

int cbr_map(cbr *c, uint64_t *n)
{
    return container(c, CBR_MAP, 2, n);
}

int cbr_tag(cbr *c, uint64_t *tag)
{
    return expect(c, CBR_TAG, tag);
}

int cbr_null(cbr *c)
{
    if (c->off >= c->len)
        return FP_FW_ERR_TRUNCATED;
    if (c->p[c->off] != 0xf6)
        return FP_FW_ERR_MALFORMED;
    c->off++;
    return FP_FW_ERR_OK;
}

int cbr_skip(cbr *c, size_t max_items)
{
    /* items still to read; each array adds its n, each map 2n, each tag
     * its one content item (RFC 8949 3.4) */
    uint64_t pending = 1;
    size_t seen = 0;

    while (pending > 0) {
        int major, rc;
        uint64_t a;

        if (++seen > max_items)
            return FP_FW_ERR_TOO_BIG;
        if ((rc = head(c, &major, &a)) != FP_FW_ERR_OK)
            return rc;
        pending--;
        switch (major) {
        case CBR_UINT:
        case CBR_NINT:
            break;
        case CBR_BSTR:
        case CBR_TSTR:
            if (a > c->len - c->off)
                return FP_FW_ERR_TRUNCATED;
            c->off += (size_t)a;
            break;
        case CBR_ARRAY:
        case CBR_MAP:
            if (major == CBR_MAP && a > UINT64_MAX / 2)
                return FP_FW_ERR_TRUNCATED;
            if (major == CBR_MAP)
                a *= 2;
            if (a > c->len - c->off)
                return FP_FW_ERR_TRUNCATED;
            pending += a;
            break;
        case CBR_TAG:
            pending++;
            break;
        default: /* simple values and floats: the head is the whole item */
            break;
        }
        /* bytes left bound the items that can still follow */
        if (pending > c->len - c->off)
            return FP_FW_ERR_TRUNCATED;
    }
    return FP_FW_ERR_OK;
}

int cbr_raw(cbr *c, size_t max_items, cbr_slice *s)
{
    size_t start = c->off;
    int rc;

    if ((rc = cbr_skip(c, max_items)) != FP_FW_ERR_OK)
        return rc;
    s->p = c->p + start;
    s->len = c->off - start;
    return FP_FW_ERR_OK;
}
