/*
 * fw_bench.c - device-side firmware verification throughput for
 * bench/run-firmware.sh, one binary per backend (fw-bench-openssl,
 * fw-bench-mbedtls).  Public API only.
 *
 *   fw-bench --anchors PEM --vendor UUID --class UUID
 *            --big ENVELOPE --big-size BYTES [--rounds N]
 *            --small ENVELOPE --small-size BYTES [--checks N]
 *
 * The images are all-zero (the script signs zero files of those sizes):
 * the reader hands out zeros without touching a disk, so the figure is
 * the verifier's, not the storage's.  Prints, on one line:
 *   backend=B hash_MBps=X verify_per_s=Y
 * hash_MBps: the big envelope verified `rounds` times (parse, chain,
 * signature, then the image streamed through SHA-256 in the library's own
 * chunks), bytes per second of image; verify_per_s: whole verifications of
 * the small envelope per second (dominated by the chain check and ES256).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleetpki/firmware.h"

typedef struct {
    uint64_t left;
} zeros;

static int read_zeros(void *arg, void *buf, size_t len, size_t *got)
{
    zeros *z = arg;
    size_t n = z->left < len ? (size_t)z->left : len;
    memset(buf, 0, n);
    z->left -= n;
    *got = n;
    return 0;
}

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

static int uuid(const char *s, unsigned char out[16])
{
    int n = 0;
    for (; *s && n < 32; s++) {
        unsigned v;
        if (*s == '-')
            continue;
        if (sscanf(s, "%1x", &v) != 1)
            return -1;
        out[n / 2] = (unsigned char)(n % 2 ? out[n / 2] | v : v << 4);
        n++;
    }
    return n == 32 ? 0 : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int verify(const fp_fw_policy *p, const char *env, size_t len, uint64_t size)
{
    zeros z = {size};
    fp_fw_info info;
    char msg[256];
    int rc = fp_dev_firmware_verify(p, (const unsigned char *)env, len, read_zeros, &z, &info, msg,
                                    sizeof(msg));
    if (rc != FP_FW_ERR_OK)
        fprintf(stderr, "fw-bench: refused: %s\n", msg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *anch = NULL, *bigf = NULL, *smallf = NULL;
    uint64_t big_size = 0, small_size = 0;
    long rounds = 3, checks = 200;
    fp_fw_policy p;
    char *anchors, *big, *small;
    size_t alen = 0, blen = 0, slen = 0;
    double t0, hash_s, ver_s;

    memset(&p, 0, sizeof(p));
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--anchors")) anch = v;
        else if (!strcmp(a, "--vendor")) uuid(v, p.vendor_id);
        else if (!strcmp(a, "--class")) uuid(v, p.class_id);
        else if (!strcmp(a, "--big")) bigf = v;
        else if (!strcmp(a, "--big-size")) big_size = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--small")) smallf = v;
        else if (!strcmp(a, "--small-size")) small_size = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--rounds")) rounds = strtol(v, NULL, 10);
        else if (!strcmp(a, "--checks")) checks = strtol(v, NULL, 10);
    }
    if (anch == NULL || bigf == NULL || smallf == NULL || rounds < 1 || checks < 1 ||
        (anchors = slurp(anch, &alen)) == NULL || (big = slurp(bigf, &blen)) == NULL ||
        (small = slurp(smallf, &slen)) == NULL) {
        fprintf(stderr, "usage: fw-bench --anchors PEM --vendor U --class U --big F --big-size N "
                        "--small F --small-size N [--rounds N] [--checks N]\n");
        return 2;
    }
    p.anchors_pem = anchors;
    p.anchors_len = alen;
    p.no_clock = 1;
    if (verify(&p, big, blen, big_size) != 0 || verify(&p, small, slen, small_size) != 0)
        return 1;
    t0 = now_s();
    for (long i = 0; i < rounds; i++)
        if (verify(&p, big, blen, big_size) != 0)
            return 1;
    hash_s = now_s() - t0;
    t0 = now_s();
    for (long i = 0; i < checks; i++)
        if (verify(&p, small, slen, small_size) != 0)
            return 1;
    ver_s = now_s() - t0;
    printf("backend=%s hash_MBps=%.1f verify_per_s=%.0f\n", fp_device_backend(),
           (double)big_size * (double)rounds / hash_s / 1e6, (double)checks / ver_s);
    free(anchors);
    free(big);
    free(small);
    return 0;
}
