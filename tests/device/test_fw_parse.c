/* test_fw_parse.c - the device's bounded CBOR reader and SUIT/COSE parser
 * (src/device/cbor_rd.c, suit.c) on hand-made bytes: every refusal has
 * its code, nothing reads past the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fleetpki/firmware.h"
#include "suit.h"

#define RD(bytes) cbr_init(&c, (const uint8_t *)(bytes), sizeof(bytes) - 1)

static void test_cbor_reader(void **state)
{
    cbr c;
    uint64_t n;
    int64_t v;
    cbr_slice s;
    (void)state;

    RD("\x19\x01\x02");
    assert_int_equal(cbr_uint(&c, &n), FP_FW_ERR_OK);
    assert_int_equal(n, 0x102);
    assert_true(cbr_done(&c));
    RD("\x19\x01"); /* head cut short */
    assert_int_equal(cbr_uint(&c, &n), FP_FW_ERR_TRUNCATED);
    RD("\x1c"); /* reserved additional information 28 */
    assert_int_equal(cbr_uint(&c, &n), FP_FW_ERR_MALFORMED);
    RD("\x5f\x41\x00\xff"); /* indefinite-length bstr: not deterministic */
    assert_int_equal(cbr_bstr(&c, &s), FP_FW_ERR_MALFORMED);
    RD("\x45\x00\x00"); /* bstr longer than the input */
    assert_int_equal(cbr_bstr(&c, &s), FP_FW_ERR_TRUNCATED);
    RD("\x9a\xff\xff\xff\xff\x00"); /* 4 G items announced, 1 byte left */
    assert_int_equal(cbr_array(&c, &n), FP_FW_ERR_TRUNCATED);
    RD("\xbb\x80\x00\x00\x00\x00\x00\x00\x00"); /* a map count that doubles past 2^64 */
    assert_int_equal(cbr_skip(&c, 100), FP_FW_ERR_TRUNCATED);
    RD("\x3b\xff\xff\xff\xff\xff\xff\xff\xff"); /* -2^64: outside int64 */
    assert_int_equal(cbr_int(&c, &v), FP_FW_ERR_MALFORMED);
    RD("\x38\x63");
    assert_int_equal(cbr_int(&c, &v), FP_FW_ERR_OK);
    assert_int_equal(v, -100);
    RD("\x41\x00"); /* wrong type asked for */
    assert_int_equal(cbr_uint(&c, &n), FP_FW_ERR_MALFORMED);
    /* deep nesting is skipped iteratively, bounded by the item budget */
    {
        uint8_t deep[5001];
        memset(deep, 0x81, 5000);
        deep[5000] = 0x00;
        cbr_init(&c, deep, sizeof(deep));
        assert_int_equal(cbr_skip(&c, 10000), FP_FW_ERR_OK);
        assert_true(cbr_done(&c));
        cbr_init(&c, deep, sizeof(deep));
        assert_int_equal(cbr_skip(&c, 100), FP_FW_ERR_TOO_BIG);
        cbr_init(&c, deep, sizeof(deep) - 1);
        assert_int_equal(cbr_skip(&c, 10000), FP_FW_ERR_TRUNCATED);
    }
}

/* An envelope around one COSE_Sign1 whose protected header is prot (a
 * serialized map), with a 64-byte signature unless siglen says otherwise. */
static size_t envelope(uint8_t *out, const uint8_t *prot, size_t prot_len, size_t siglen,
                       int tag)
{
    uint8_t sign1[512], auth[600];
    size_t n = 0, a = 0, e = 0;
    static const uint8_t digest[] = {0x82, 0x2f, 0x58, 0x20}; /* [-16, bstr(32)] */

    sign1[n++] = 0xd2; /* 18(...) */
    sign1[n++] = 0x84;
    sign1[n++] = (uint8_t)(0x40 | prot_len);
    memcpy(sign1 + n, prot, prot_len);
    n += prot_len;
    sign1[n++] = 0xa0; /* {} */
    sign1[n++] = 0xf6; /* nil */
    sign1[n++] = 0x58;
    sign1[n++] = (uint8_t)siglen;
    memset(sign1 + n, 0x11, siglen);
    n += siglen;
    auth[a++] = 0x82;
    auth[a++] = 0x58;
    auth[a++] = 36;
    memcpy(auth + a, digest, 4);
    a += 4;
    memset(auth + a, 0x22, 32);
    a += 32;
    auth[a++] = 0x59;
    auth[a++] = (uint8_t)(n >> 8);
    auth[a++] = (uint8_t)n;
    memcpy(auth + a, sign1, n);
    a += n;
    if (tag) {
        out[e++] = 0xd8;
        out[e++] = (uint8_t)tag;
    }
    out[e++] = 0xa2;
    out[e++] = 0x02;
    out[e++] = 0x59;
    out[e++] = (uint8_t)(a >> 8);
    out[e++] = (uint8_t)a;
    memcpy(out + e, auth, a);
    e += a;
    out[e++] = 0x03;
    out[e++] = 0x41; /* a one-byte "manifest" */
    out[e++] = 0xa0;
    return e;
}

static void test_envelope(void **state)
{
    uint8_t buf[1024];
    fpd_suit_env env;
    size_t n;
    /* {1: -7, 33: h'3000'} : ES256 and a (fake) one-certificate x5chain */
    static const uint8_t es256[] = {0xa2, 0x01, 0x26, 0x18, 0x21, 0x42, 0x30, 0x00};
    static const uint8_t es384[] = {0xa2, 0x01, 0x38, 0x22, 0x18, 0x21, 0x42, 0x30, 0x00};
    static const uint8_t crit[] = {0xa3, 0x01, 0x26, 0x02, 0x81, 0x01, 0x18, 0x21, 0x42, 0x30, 0x00};
    static const uint8_t no_x5[] = {0xa1, 0x01, 0x26};
    static const uint8_t dup[] = {0xa3, 0x01, 0x26, 0x01, 0x26, 0x18, 0x21, 0x42, 0x30, 0x00};
    (void)state;

    n = envelope(buf, es256, sizeof(es256), 64, 107);
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_OK);
    assert_int_equal(env.n_x5chain, 1);
    assert_int_equal(env.x5chain[0].len, 2);
    assert_int_equal(env.signature.len, 64);
    assert_int_equal(env.manifest_item.len, 2); /* the bstr head is covered */
    assert_ptr_equal(env.manifest_item.p + 1, env.manifest.p);
    /* every proper prefix is refused, never read past */
    for (size_t cut = 0; cut < n; cut++)
        assert_int_not_equal(fpd_suit_parse_envelope(buf, cut, &env), FP_FW_ERR_OK);
    n = envelope(buf, es256, sizeof(es256), 64, 0); /* untagged is accepted */
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_OK);
    n = envelope(buf, es256, sizeof(es256), 64, 108);
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_MALFORMED);
    n = envelope(buf, es384, sizeof(es384), 64, 107);
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_UNSUPPORTED);
    n = envelope(buf, crit, sizeof(crit), 64, 107);
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_UNSUPPORTED);
    n = envelope(buf, no_x5, sizeof(no_x5), 64, 107);
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_UNTRUSTED);
    n = envelope(buf, dup, sizeof(dup), 64, 107);
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_MALFORMED);
    n = envelope(buf, es256, sizeof(es256), 63, 107);
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_MALFORMED);
    n = envelope(buf, es256, sizeof(es256), 64, 107);
    buf[n++] = 0x00; /* a trailing byte after the envelope */
    assert_int_equal(fpd_suit_parse_envelope(buf, n, &env), FP_FW_ERR_MALFORMED);
}

static void test_manifest(void **state)
{
    fpd_suit_manifest m;
    cbr_slice s;
    /* {1: 2} : manifest version 2 */
    static const uint8_t v2[] = {0xa1, 0x01, 0x02};
    /* {1: 1, 2: 7, 3: << {2: [[h'00'], [h'01']]} >>} : two components */
    static const uint8_t two[] = {0xa3, 0x01, 0x01, 0x02, 0x07, 0x03, 0x49, 0xa1, 0x02, 0x82,
                                  0x81, 0x41, 0x00, 0x81, 0x41, 0x01};
    /* {1: 1, 2: 7} : no common section, nothing to check the image by */
    static const uint8_t bare[] = {0xa2, 0x01, 0x01, 0x02, 0x07};
    (void)state;

    s = (cbr_slice){v2, sizeof(v2)};
    assert_int_equal(fpd_suit_parse_manifest(&s, &m), FP_FW_ERR_UNSUPPORTED);
    s = (cbr_slice){two, sizeof(two)};
    assert_int_equal(fpd_suit_parse_manifest(&s, &m), FP_FW_ERR_UNSUPPORTED);
    s = (cbr_slice){bare, sizeof(bare)};
    assert_int_equal(fpd_suit_parse_manifest(&s, &m), FP_FW_ERR_MALFORMED);
    s = (cbr_slice){bare, 0};
    assert_int_equal(fpd_suit_parse_manifest(&s, &m), FP_FW_ERR_TRUNCATED);
}

static void test_error_names(void **state)
{
    (void)state;
    /* names are distinct: each refusal is told apart by the caller */
    for (int i = 0; i < FP_FW_ERR__COUNT; i++)
        for (int j = i + 1; j < FP_FW_ERR__COUNT; j++)
            assert_string_not_equal(fp_fw_err_name(i), fp_fw_err_name(j));
    assert_string_equal(fp_fw_err_name(FP_FW_ERR__COUNT), "fw-unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cbor_reader),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
