/* fuzz_http.c - HTTP-layer parsers on arbitrary text: Basic credentials
 * (RFC 7617), media types, route patterns, and the base64 encoder/decoder
 * round trip.  The input is split at the first NUL into two strings. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "http/http.h"
#include "http/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 2), *second;
    char *user = NULL, *pass = NULL, *enc = NULL;
    unsigned char *dec = NULL, *back = NULL;
    size_t plen = 0, dlen = 0, elen = 0, blen = 0;
    fp_http_pattern pat;
    fp_http_path path;

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    s[size + 1] = '\0';
    second = s + strlen(s) + (strlen(s) < size ? 1 : 0);

    if (fp_http_basic_parse(s, &user, &pass, &plen, NULL) == FP_ERR_OK) {
        if (user == NULL || pass == NULL || strlen(pass) != plen || strchr(user, ':') != NULL)
            abort();
        fp_http_basic_free(user, pass, plen);
    }
    (void)fp_http_media_type_is(s, second);
    /* s as a route pattern, second as a request path: a parameter is a
     * non-empty decoded segment without '/', inside the decoded path's
     * copy; the rest a suffix of the decoded path */
    if (fp_http_pattern_compile(&pat, NULL, s, NULL) == FP_ERR_OK) {
        if (fp_http_path_parse(&path, second, NULL) == FP_ERR_OK) {
            const char *v[FP_HTTP_MAX_PARAMS], *r = NULL;
            size_t dl = strlen(path.decoded);
            if (fp_http_pattern_match(&pat, &path, v, &r) == FP_HTTP_MATCH_YES) {
                for (int i = 0; i < pat.nparams; i++)
                    if (v[i] < path.cut || v[i] >= path.cut + dl || v[i][0] == '\0' ||
                        strchr(v[i], '/') != NULL || strlen(v[i]) > FP_HTTP_PARAM_MAX)
                        abort();
                if ((r != NULL) != pat.rest || (r != NULL && (r < path.decoded ||
                                                              r > path.decoded + dl)))
                    abort();
            }
        }
        fp_http_path_free(&path);
        fp_http_pattern_free(&pat);
    }
    if (fp_b64_decode_lenient(s, strlen(s), 1 << 20, &dec, &dlen, NULL) == FP_ERR_OK) {
        if (fp_b64_encode_lines(dec, dlen, &enc, &elen, NULL) != FP_ERR_OK ||
            fp_b64_decode_lenient(enc, elen, 1 << 20, &back, &blen, NULL) != FP_ERR_OK ||
            blen != dlen || memcmp(back, dec, dlen) != 0)
            abort(); /* decode(encode(x)) must give x back */
        free(enc);
        free(back);
        free(dec);
    }
    free(s);
    return 0;
}
