/*
 * fp_fw_cli.c - command-line driver of fp_dev_firmware_verify for the
 * firmware tests (tests/integration/test_firmware.sh), one binary per
 * device backend: fp-fw-cli-openssl, fp-fw-cli-mbedtls.  Public API only.
 *
 *   fp-fw-cli --envelope F --image F --anchors PEM --vendor UUID --class UUID
 *             [--crl PEM] [--now EPOCH | --no-clock] [--store DIR]
 *             [--min-seq N] [--max-image N] [--accept]
 *
 * Prints "ok sequence=N version=V sha256=HEX" and exits 0 when accepted
 * (with --accept the sequence is then stored in DIR); otherwise prints
 * "refused <fw-error-name>: <message>" on stderr and exits 10 + code.
 * The image is read in chunks through the callback (never whole).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleetpki/firmware.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

static int uuid_parse(const char *s, unsigned char out[16])
{
    int n = 0;
    for (; *s != '\0' && n < 32; s++) {
        unsigned v;
        if (*s == '-')
            continue;
        if (sscanf(s, "%1x", &v) != 1)
            return -1;
        out[n / 2] = (unsigned char)(n % 2 ? out[n / 2] | v : v << 4);
        n++;
    }
    return n == 32 && *s == '\0' ? 0 : -1;
}

static int read_file(void *arg, void *buf, size_t len, size_t *got)
{
    *got = fread(buf, 1, len, (FILE *)arg);
    return ferror((FILE *)arg) ? -1 : 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: fp-fw-cli --envelope F --image F --anchors PEM --vendor UUID "
                    "--class UUID [--crl PEM] [--now EPOCH|--no-clock] [--store DIR] "
                    "[--min-seq N] [--max-image N] [--accept]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *envf = NULL, *imgf = NULL, *anchf = NULL, *crlf = NULL, *dir = NULL;
    char *env = NULL, *anchors = NULL, *crl = NULL, msg[512] = "";
    size_t envlen = 0, anchlen = 0, crllen = 0;
    int accept = 0, have_vendor = 0, have_class = 0, rc;
    fp_fw_policy p;
    fp_fw_info info;
    fp_storage st;
    FILE *img;

    memset(&p, 0, sizeof(p));
    p.now = (int64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--accept")) {
            accept = 1;
            continue;
        }
        if (!strcmp(a, "--no-clock")) {
            p.no_clock = 1;
            continue;
        }
        if (v == NULL)
            return usage();
        i++;
        if (!strcmp(a, "--envelope"))
            envf = v;
        else if (!strcmp(a, "--image"))
            imgf = v;
        else if (!strcmp(a, "--anchors"))
            anchf = v;
        else if (!strcmp(a, "--crl"))
            crlf = v;
        else if (!strcmp(a, "--store"))
            dir = v;
        else if (!strcmp(a, "--now"))
            p.now = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--min-seq"))
            p.min_sequence = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--max-image"))
            p.max_image = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--vendor") && uuid_parse(v, p.vendor_id) == 0)
            have_vendor = 1;
        else if (!strcmp(a, "--class") && uuid_parse(v, p.class_id) == 0)
            have_class = 1;
        else
            return usage();
    }
    if (envf == NULL || imgf == NULL || anchf == NULL || !have_vendor || !have_class ||
        (accept && dir == NULL))
        return usage();
    if ((env = slurp(envf, &envlen)) == NULL || (anchors = slurp(anchf, &anchlen)) == NULL ||
        (crlf != NULL && (crl = slurp(crlf, &crllen)) == NULL) || (img = fopen(imgf, "rb")) == NULL) {
        fprintf(stderr, "cannot read an input file\n");
        return 1;
    }
    p.anchors_pem = anchors;
    p.anchors_len = anchlen;
    p.crl_pem = crl;
    p.crl_len = crllen;
    if (dir != NULL) {
        if (fp_storage_posix_open(dir, &st) != 0) {
            fprintf(stderr, "cannot open store %s\n", dir);
            return 1;
        }
        p.store = &st;
    }
    rc = fp_dev_firmware_verify(&p, (const unsigned char *)env, envlen, read_file, img, &info, msg,
                                sizeof(msg));
    fclose(img);
    if (rc == FP_FW_ERR_OK && accept)
        rc = fp_dev_firmware_accept(&st, &info);
    if (rc != FP_FW_ERR_OK) {
        fprintf(stderr, "refused %s: %s\n", fp_fw_err_name(rc), msg[0] ? msg : fp_fw_err_message(rc));
    } else {
        printf("ok sequence=%" PRIu64 " version=%s sha256=", info.sequence, info.version);
        for (int i = 0; i < 32; i++)
            printf("%02x", info.image_sha256[i]);
        printf("\n");
    }
    if (dir != NULL)
        fp_storage_posix_close(&st);
    free(env);
    free(anchors);
    free(crl);
    return rc == FP_FW_ERR_OK ? 0 : 10 + rc;
}
