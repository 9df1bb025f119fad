/*
 * fuzz_device_answer.c - libFuzzer harness for everything the device
 * library reads from an EST server: the HTTP/1.1 response (fed in chunks
 * whose size the first input byte picks), then, as the client would, the
 * multipart body or the base64 body, and the backend's parsers on what
 * that decodes to (certs-only PKCS#7, CsrAttrs, PKCS#8 key).
 * Replayed over tests/device/corpus/answer in every build (ctest label fuzz).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "multipart.h"
#include "tls_backend.h"

typedef struct {
    const uint8_t *p;
    size_t len, pos, step;
} src;

static int src_read(void *ctx, void *buf, size_t n, size_t *got, fpd_errbuf *e)
{
    src *s = ctx;
    size_t k = s->len - s->pos;
    (void)e;
    if (k > n)
        k = n;
    if (k > s->step)
        k = s->step;
    memcpy(buf, s->p + s->pos, k);
    s->pos += k;
    *got = k;
    return FP_DEVICE_OK;
}

static void decoded(const unsigned char *text, size_t len)
{
    unsigned char *der = NULL;
    size_t dlen = 0;
    fpd_errbuf e;
    fpd_certs c = {0};
    fp_device_csrattrs a = {0};
    fpd_key *k = NULL;

    if (fpd_b64_decode_body((const char *)text, len, 65536, &der, &dlen, &e) != FP_DEVICE_OK)
        return;
    fpd_p7_certs_parse(der, dlen, &c, &e);
    fpd_certs_clear(&c);
    fpd_csrattrs_parse(der, dlen, &a, &e);
    if (fpd_key_parse(der, dlen, &k, &e) == FP_DEVICE_OK)
        fpd_key_free(k);
    free(der);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src s;
    fpd_reader r = {src_read, &s};
    fpd_http_resp resp;
    fpd_errbuf e;

    if (size < 1)
        return 0;
    s.p = data + 1;
    s.len = size - 1;
    s.pos = 0;
    s.step = data[0] < 16 ? (size_t)data[0] + 1 : (size_t)1 << 20;
    if (fpd_http_read_response(&r, 65536, &resp, &e) == FP_DEVICE_OK) {
        fpd_part parts[2];
        size_t n = 0;
        if (fpd_http_ct_is(resp.content_type, "multipart/mixed")) {
            if (fpd_multipart_parse(resp.content_type, resp.body.p, resp.body.len, parts, 2, &n, &e) ==
                FP_DEVICE_OK)
                for (size_t i = 0; i < n; i++)
                    decoded(parts[i].data, parts[i].len);
        } else if (resp.body.len > 0) {
            decoded(resp.body.p, resp.body.len);
        }
    }
    fpd_http_resp_free(&resp);
    return 0;
}
