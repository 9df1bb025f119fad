/* fuzz_suit.c - the device's SUIT/COSE/CBOR parser (src/device/suit.c,
 * cbor_rd.c) on arbitrary bytes.
 *
 * Each input is read three ways: as an envelope (and, when that frame
 * parses, its manifest, which the device reads only after the signature
 * and digest check: here it is parsed regardless, so the manifest parser
 * sees mutated content), as a bare manifest, and item by item with the
 * skipper.  Every slice handed out must lie inside the input: checked,
 * abort() otherwise. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fleetpki/firmware.h"
#include "suit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *data, size_t size, const cbr_slice *s)
{
    if (s->p == NULL)
        return;
    if (s->p < data || s->len > size || (size_t)(s->p - data) > size - s->len)
        abort();
}

static void manifest(const uint8_t *data, size_t size, const cbr_slice *s)
{
    fpd_suit_manifest m;

    if (fpd_suit_parse_manifest(s, &m) != FP_FW_ERR_OK)
        return;
    inside(data, size, &m.vendor_id);
    inside(data, size, &m.class_id);
    inside(data, size, &m.image_sha256);
    inside(data, size, &m.version);
    if (m.vendor_id.len != 16 || m.class_id.len != 16 || m.image_sha256.len != 32)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fpd_suit_env e;
    cbr_slice whole = {data, size};
    cbr c;
    int rc = fpd_suit_parse_envelope(data, size, &e);

    if (rc < 0 || rc >= FP_FW_ERR__COUNT)
        abort();
    if (rc == FP_FW_ERR_OK) {
        inside(data, size, &e.manifest_item);
        inside(data, size, &e.manifest);
        inside(data, size, &e.digest_item);
        inside(data, size, &e.protected_hdr);
        inside(data, size, &e.signature);
        if (e.n_x5chain == 0 || e.n_x5chain > FPD_SUIT_MAX_CHAIN || e.signature.len != 64 ||
            e.manifest_sha256.len != 32)
            abort();
        for (size_t i = 0; i < e.n_x5chain; i++)
            inside(data, size, &e.x5chain[i]);
        manifest(data, size, &e.manifest);
    }
    if (size > 0)
        manifest(data, size, &whole);
    cbr_init(&c, data, size);
    while (!cbr_done(&c) && cbr_skip(&c, FPD_SUIT_MAX_ITEMS) == FP_FW_ERR_OK)
        if (c.off > size)
            abort();
    return 0;
}
