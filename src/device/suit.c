/*
 * suit.c - SUIT envelope, authentication wrapper and manifest parsing
 * (suit.h).  CDDL from draft-ietf-suit-manifest:
 *
 *   SUIT_Envelope_Tagged = #6.107(SUIT_Envelope)
 *   SUIT_Envelope = { 2 => bstr .cbor SUIT_Authentication,
 *                     3 => bstr .cbor SUIT_Manifest, * severable members }
 *   SUIT_Authentication = [ bstr .cbor SUIT_Digest,
 *                           * bstr .cbor SUIT_Authentication_Block ]
 *   SUIT_Digest = [ algorithm-id: int, digest-bytes: bstr ]
 *   COSE_Sign1_Tagged = #6.18([ protected: bstr, unprotected: map,
 *                               payload: bstr / nil, signature: bstr ])
 *
 * Only the first authentication block is used (one signer per envelope,
 * the form `fleetpki firmware sign` writes).  Unknown map members are
 * skipped within FPD_SUIT_MAX_ITEMS items; a repeated key is MALFORMED
 * (RFC 8949 5.6: a map with duplicate keys is not valid).
 */
#include <string.h>

#include "fleetpki/firmware.h"
#include "suit.h"

#define TRY(x)                                 \
    do {                                       \
        int rc_ = (x);                         \
        if (rc_ != FP_FW_ERR_OK)               \
            return rc_;                        \
    } while (0)

/* Keys of a map seen so far (small non-negative ints only). */
static int seen_once(uint64_t *seen, int64_t key)
{
    if (key < 0 || key > 63)
        return FP_FW_ERR_OK;
    if (*seen & ((uint64_t)1 << key))
        return FP_FW_ERR_MALFORMED;
    *seen |= (uint64_t)1 << key;
    return FP_FW_ERR_OK;
}

/* A map key: an int (returned) or anything else (skipped, *is_int 0). */
static int map_key(cbr *c, int64_t *key, int *is_int)
{
    int m = cbr_peek(c);

    if (m == CBR_UINT || m == CBR_NINT) {
        *is_int = 1;
        return cbr_int(c, key);
    }
    *is_int = 0;
    return cbr_skip(c, FPD_SUIT_MAX_ITEMS);
}

/* The whole of s is exactly one item: a reader over it that must end
 * where the item ends (checked by the caller with cbr_done). */
static int sub(const cbr_slice *s, cbr *c)
{
    cbr_init(c, s->p, s->len);
    return s->len == 0 ? FP_FW_ERR_TRUNCATED : FP_FW_ERR_OK;
}

static int end_of(const cbr *c)
{
    return cbr_done(c) ? FP_FW_ERR_OK : FP_FW_ERR_MALFORMED;
}

/* SUIT_Digest: SHA-256 only (draft-ietf-suit-mti). */
static int parse_digest(const cbr_slice *item, cbr_slice *bytes)
{
    cbr c;
    uint64_t n;
    int64_t alg;

    TRY(sub(item, &c));
    TRY(cbr_array(&c, &n));
    if (n != 2)
        return FP_FW_ERR_MALFORMED;
    TRY(cbr_int(&c, &alg));
    TRY(cbr_bstr(&c, bytes));
    if (alg != FPD_COSE_ALG_SHA256)
        return FP_FW_ERR_UNSUPPORTED;
    if (bytes->len != 32)
        return FP_FW_ERR_MALFORMED;
    return end_of(&c);
}

/* x5chain (RFC 9360 section 2): one bstr, or an array of them, signer first. */
static int parse_x5chain(cbr *c, fpd_suit_env *e)
{
    uint64_t n;

    if (e->n_x5chain != 0)
        return FP_FW_ERR_MALFORMED; /* in both header buckets */
    if (cbr_peek(c) == CBR_BSTR) {
        TRY(cbr_bstr(c, &e->x5chain[0]));
        e->n_x5chain = 1;
        return FP_FW_ERR_OK;
    }
    TRY(cbr_array(c, &n));
    if (n == 0)
        return FP_FW_ERR_MALFORMED;
    if (n > FPD_SUIT_MAX_CHAIN)
        return FP_FW_ERR_TOO_BIG;
    for (uint64_t i = 0; i < n; i++)
        TRY(cbr_bstr(c, &e->x5chain[i]));
    e->n_x5chain = (size_t)n;
    return FP_FW_ERR_OK;
}

/* A COSE header map; protected: alg must be there and be ES256. */
static int parse_headers(cbr *c, int protected_bucket, fpd_suit_env *e)
{
    uint64_t n, seen = 0;
    int have_alg = 0;

    TRY(cbr_map(c, &n));
    for (uint64_t i = 0; i < n; i++) {
        int64_t key, v;
        int is_int;

        TRY(map_key(c, &key, &is_int));
        if (is_int)
            TRY(seen_once(&seen, key));
        if (is_int && key == FPD_COSE_HDR_ALG) {
            TRY(cbr_int(c, &v));
            if (!protected_bucket)
                return FP_FW_ERR_MALFORMED; /* RFC 9052 3.1: alg is protected */
            if (v != FPD_COSE_ALG_ES256)
                return FP_FW_ERR_UNSUPPORTED;
            have_alg = 1;
        } else if (is_int && key == FPD_COSE_HDR_CRIT) {
            /* RFC 9052 3.1: labels we would have to understand */
            return FP_FW_ERR_UNSUPPORTED;
        } else if (is_int && key == FPD_COSE_HDR_X5CHAIN) {
            TRY(parse_x5chain(c, e));
        } else {
            TRY(cbr_skip(c, FPD_SUIT_MAX_ITEMS));
        }
    }
    if (protected_bucket && !have_alg)
        return FP_FW_ERR_UNSUPPORTED;
    return FP_FW_ERR_OK;
}

static int parse_sign1(const cbr_slice *item, fpd_suit_env *e)
{
    cbr c, h;
    uint64_t n, tag;

    TRY(sub(item, &c));
    if (cbr_peek(&c) == CBR_TAG) {
        TRY(cbr_tag(&c, &tag));
        if (tag != FPD_COSE_TAG_SIGN1)
            return FP_FW_ERR_UNSUPPORTED; /* COSE_Sign, COSE_Mac0 ... */
    }
    TRY(cbr_array(&c, &n));
    if (n != 4)
        return FP_FW_ERR_MALFORMED;
    TRY(cbr_bstr(&c, &e->protected_hdr));
    /* an empty protected bucket is a zero-length bstr (RFC 9052 3) but
     * ES256 must be named in it, so it cannot be empty here */
    TRY(sub(&e->protected_hdr, &h));
    TRY(parse_headers(&h, 1, e));
    TRY(end_of(&h));
    TRY(parse_headers(&c, 0, e));
    /* SUIT detaches the payload: it is the SUIT_Digest.  An attached one
     * must be that very digest. */
    if (cbr_peek(&c) == CBR_BSTR) {
        cbr_slice pl;
        TRY(cbr_bstr(&c, &pl));
        if (pl.len != e->digest_item.len || memcmp(pl.p, e->digest_item.p, pl.len) != 0)
            return FP_FW_ERR_MALFORMED;
    } else {
        TRY(cbr_null(&c));
    }
    TRY(cbr_bstr(&c, &e->signature));
    if (e->signature.len != 64) /* RFC 9053 2.1: r || s, 32 bytes each */
        return FP_FW_ERR_MALFORMED;
    if (e->n_x5chain == 0)
        return FP_FW_ERR_UNTRUSTED; /* no certificate: nothing to chain */
    return end_of(&c);
}

static int parse_auth(const cbr_slice *wrapper, fpd_suit_env *e)
{
    cbr c;
    uint64_t n;
    cbr_slice block;

    TRY(sub(wrapper, &c));
    TRY(cbr_array(&c, &n));
    if (n < 2)
        return FP_FW_ERR_MALFORMED; /* digest and at least one signature */
    TRY(cbr_bstr(&c, &e->digest_item));
    TRY(parse_digest(&e->digest_item, &e->manifest_sha256));
    TRY(cbr_bstr(&c, &block));
    TRY(parse_sign1(&block, e));
    for (uint64_t i = 2; i < n; i++)
        TRY(cbr_bstr(&c, &block)); /* further signers: not used */
    return end_of(&c);
}

int fpd_suit_parse_envelope(const uint8_t *p, size_t len, fpd_suit_env *out)
{
    cbr c;
    uint64_t n, tag, seen = 0;
    cbr_slice auth = {0};

    memset(out, 0, sizeof(*out));
    if (p == NULL || len == 0)
        return FP_FW_ERR_TRUNCATED;
    if (len > FPD_SUIT_MAX_ENVELOPE)
        return FP_FW_ERR_TOO_BIG;
    cbr_init(&c, p, len);
    if (cbr_peek(&c) == CBR_TAG) {
        TRY(cbr_tag(&c, &tag));
        if (tag != FPD_SUIT_TAG_ENVELOPE)
            return FP_FW_ERR_MALFORMED;
    }
    TRY(cbr_map(&c, &n));
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        int is_int;

        TRY(map_key(&c, &key, &is_int));
        if (is_int)
            TRY(seen_once(&seen, key));
        if (is_int && key == 2) { /* suit-authentication-wrapper */
            TRY(cbr_bstr(&c, &auth));
        } else if (is_int && key == 3) { /* suit-manifest */
            size_t start = c.off;
            TRY(cbr_bstr(&c, &out->manifest));
            out->manifest_item.p = p + start;
            out->manifest_item.len = c.off - start;
        } else {
            TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS));
        }
    }
    TRY(end_of(&c));
    if (auth.p == NULL || out->manifest.p == NULL)
        return FP_FW_ERR_MALFORMED;
    return parse_auth(&auth, out);
}

/* ---- the manifest (after its digest was checked) ---- */

static int parse_params(cbr *c, fpd_suit_manifest *m)
{
    uint64_t n, seen = 0;

    TRY(cbr_map(c, &n));
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        int is_int;
        cbr_slice s;

        TRY(map_key(c, &key, &is_int));
        if (is_int)
            TRY(seen_once(&seen, key));
        if (is_int && (key == 1 || key == 2)) { /* vendor-, class-identifier */
            TRY(cbr_bstr(c, &s));
            if (s.len != 16) /* RFC 4122 UUID */
                return FP_FW_ERR_MALFORMED;
            *(key == 1 ? &m->vendor_id : &m->class_id) = s;
        } else if (is_int && key == 3) { /* image-digest */
            TRY(cbr_bstr(c, &s));
            TRY(parse_digest(&s, &m->image_sha256));
        } else if (is_int && key == 14) { /* image-size */
            TRY(cbr_uint(c, &m->image_size));
            m->has_size = 1;
        } else {
            TRY(cbr_skip(c, FPD_SUIT_MAX_ITEMS));
        }
    }
    return FP_FW_ERR_OK;
}

/* SUIT_Command_Sequence: pairs of command and argument. */
static int parse_commands(const cbr_slice *seq, fpd_suit_manifest *m)
{
    cbr c;
    uint64_t n;

    TRY(sub(seq, &c));
    TRY(cbr_array(&c, &n));
    if (n % 2 != 0)
        return FP_FW_ERR_MALFORMED;
    for (uint64_t i = 0; i < n; i += 2) {
        int64_t cmd;
        TRY(cbr_int(&c, &cmd));
        if (cmd == 20) /* suit-directive-override-parameters */
            TRY(parse_params(&c, m));
        else if (cmd == 19) /* set-parameters: unsupported on this device */
            return FP_FW_ERR_UNSUPPORTED;
        else
            TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS));
    }
    return end_of(&c);
}

static int parse_common(const cbr_slice *common, fpd_suit_manifest *m)
{
    cbr c;
    uint64_t n, seen = 0, ncomp;
    int have_seq = 0;

    TRY(sub(common, &c));
    TRY(cbr_map(&c, &n));
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        int is_int;
        cbr_slice s;

        TRY(map_key(&c, &key, &is_int));
        if (is_int)
            TRY(seen_once(&seen, key));
        if (is_int && key == 2) { /* suit-components */
            TRY(cbr_array(&c, &ncomp));
            if (ncomp != 1) /* one image per device class */
                return ncomp == 0 ? FP_FW_ERR_MALFORMED : FP_FW_ERR_UNSUPPORTED;
            if (cbr_peek(&c) != CBR_ARRAY)
                return FP_FW_ERR_MALFORMED;
            TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS));
        } else if (is_int && key == 4) { /* suit-shared-sequence */
            TRY(cbr_bstr(&c, &s));
            TRY(parse_commands(&s, m));
            have_seq = 1;
        } else {
            TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS));
        }
    }
    TRY(end_of(&c));
    return have_seq ? FP_FW_ERR_OK : FP_FW_ERR_MALFORMED;
}

/* suit-text: { component-id => { 6 (component-version) => tstr } } */
static int parse_text(const cbr_slice *text, fpd_suit_manifest *m)
{
    cbr c;
    uint64_t n;

    TRY(sub(text, &c));
    TRY(cbr_map(&c, &n));
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k;
        if (cbr_peek(&c) != CBR_ARRAY || m->version.p != NULL) {
            TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS)); /* manifest-wide text */
            TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS));
            continue;
        }
        TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS));
        TRY(cbr_map(&c, &k));
        for (uint64_t j = 0; j < k; j++) {
            int64_t key;
            int is_int;
            TRY(map_key(&c, &key, &is_int));
            if (is_int && key == 6)
                TRY(cbr_tstr(&c, &m->version));
            else
                TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS));
        }
    }
    return end_of(&c);
}

int fpd_suit_parse_manifest(const cbr_slice *manifest, fpd_suit_manifest *m)
{
    cbr c;
    uint64_t n, seen = 0, version = 0;

    memset(m, 0, sizeof(*m));
    TRY(sub(manifest, &c));
    TRY(cbr_map(&c, &n));
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        int is_int;
        cbr_slice s;

        TRY(map_key(&c, &key, &is_int));
        if (is_int)
            TRY(seen_once(&seen, key));
        if (is_int && key == 1) { /* suit-manifest-version */
            TRY(cbr_uint(&c, &version));
            if (version != 1)
                return FP_FW_ERR_UNSUPPORTED;
        } else if (is_int && key == 2) { /* suit-manifest-sequence-number */
            TRY(cbr_uint(&c, &m->sequence));
        } else if (is_int && key == 3) { /* suit-common */
            TRY(cbr_bstr(&c, &s));
            TRY(parse_common(&s, m));
        } else if (is_int && key == 7) { /* suit-validate */
            TRY(cbr_bstr(&c, &s));
            TRY(parse_commands(&s, m));
        } else if (is_int && key == 23 && cbr_peek(&c) == CBR_BSTR) { /* suit-text */
            TRY(cbr_bstr(&c, &s));
            TRY(parse_text(&s, m));
        } else {
            TRY(cbr_skip(&c, FPD_SUIT_MAX_ITEMS));
        }
    }
    TRY(end_of(&c));
    if (version != 1 || !(seen & (1u << 2)) || m->vendor_id.p == NULL || m->class_id.p == NULL ||
        m->image_sha256.p == NULL || !m->has_size)
        return FP_FW_ERR_MALFORMED;
    return FP_FW_ERR_OK;
}
