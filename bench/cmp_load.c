/*
 * cmp_load.c - CMP ir enrollments per second against `fleetpki serve`,
 * with OpenSSL's own CMP client (OSSL_CMP_CTX, OSSL_CMP_exec_IR_ses):
 * every enrollment is a MAC-protected ir (RFC 9483 4.1.5) with a token
 * of many uses, answered by a MAC-protected ip; with --confirm the client
 * also sends certConf (two round trips), otherwise it asks for
 * implicitConfirm (one).  OpenSSL 3.0's CMP client opens a new TCP
 * connection for every message (plain HTTP, RFC 6712).
 *
 *   cmp_load --port P --ref ID --secret S [--path /.well-known/cmp]
 *            [--concurrency 8] [--duration 10] [--warmup 1] [--confirm]
 *
 * Prints one line "RESULT mode=cmp-ir conc=.. rps=.. p50=.. p90=.. p99=..
 * max=.. ok=.. err=.." (latencies in ms) like loadgen, for bench/lib.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

static int port, conc = 8, duration = 10, warmup = 1, confirm;
static const char *path = "/.well-known/cmp", *ref, *secret;
static EVP_PKEY *key;
static double t_start, t_measure, t_end;

typedef struct {
    double *lat;
    size_t n, cap;
    long ok, err;
} worker;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int quiet_log(const char *func, const char *file, int line, OSSL_CMP_severity level,
                     const char *msg)
{
    (void)func;
    (void)file;
    (void)line;
    (void)level;
    (void)msg;
    return 1;
}

static int one_ir(int i)
{
    OSSL_CMP_CTX *ctx = OSSL_CMP_CTX_new(NULL, NULL);
    X509_NAME *subj = X509_NAME_new();
    char cn[64];
    X509 *cert = NULL;
    int ok = 0;

    snprintf(cn, sizeof(cn), "cmp-bench-%d", i);
    if (ctx == NULL || subj == NULL ||
        !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) ||
        !OSSL_CMP_CTX_set_log_cb(ctx, quiet_log) || !OSSL_CMP_CTX_set1_server(ctx, "127.0.0.1") ||
        !OSSL_CMP_CTX_set_serverPort(ctx, port) || !OSSL_CMP_CTX_set1_serverPath(ctx, path) ||
        !OSSL_CMP_CTX_set1_referenceValue(ctx, (const unsigned char *)ref, (int)strlen(ref)) ||
        !OSSL_CMP_CTX_set1_secretValue(ctx, (const unsigned char *)secret, (int)strlen(secret)) ||
        !EVP_PKEY_up_ref(key))
        goto out;
    if (!OSSL_CMP_CTX_set0_newPkey(ctx, 1, key)) {
        EVP_PKEY_free(key);
        goto out;
    }
    if (!OSSL_CMP_CTX_set1_subjectName(ctx, subj) ||
        !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_IMPLICIT_CONFIRM, confirm ? 0 : 1) ||
        !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_MSG_TIMEOUT, 30))
        goto out;
    cert = OSSL_CMP_exec_IR_ses(ctx);
    ok = cert != NULL;
out:
    ERR_clear_error();
    X509_NAME_free(subj);
    OSSL_CMP_CTX_free(ctx);
    return ok;
}

static long all_done; /* enrollments answered, warm-up included (for CPU per enrollment) */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *run(void *arg)
{
    worker *w = arg;
    static int counter;
    for (;;) {
        double t0 = now(), t1;
        int ok;
        if (t0 >= t_end)
            break;
        ok = one_ir(__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
        t1 = now();
        if (ok)
            __atomic_fetch_add(&all_done, 1, __ATOMIC_RELAXED);
        if (t0 < t_measure || t1 > t_end)
            continue;
        if (!ok) {
            w->err++;
            continue;
        }
        w->ok++;
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 1024;
            w->lat = realloc(w->lat, w->cap * sizeof(double));
            if (w->lat == NULL)
                abort();
        }
        w->lat[w->n++] = (t1 - t0) * 1e3;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t th[256];
    worker ws[256];
    double *all;
    size_t n = 0;
    long ok = 0, err = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--path"))
            path = argv[i + 1];
        else if (!strcmp(argv[i], "--ref"))
            ref = argv[i + 1];
        else if (!strcmp(argv[i], "--secret"))
            secret = argv[i + 1];
        else if (!strcmp(argv[i], "--concurrency"))
            conc = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration"))
            duration = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup"))
            warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--confirm"))
            confirm = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "cmp_load: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port <= 0 || ref == NULL || secret == NULL || conc < 1 || conc > 256 || duration < 1) {
        fprintf(stderr, "usage: cmp_load --port P --ref ID --secret S [--concurrency N] "
                        "[--duration S] [--warmup S] [--confirm 0|1]\n");
        return 2;
    }
    /* one key for every request: the client's key generation is not
     * what is measured */
    if ((key = EVP_EC_gen("P-256")) == NULL)
        return 1;
    t_start = now();
    t_measure = t_start + warmup;
    t_end = t_measure + duration;
    memset(ws, 0, sizeof(ws));
    for (int i = 0; i < conc; i++)
        if (pthread_create(&th[i], NULL, run, &ws[i]) != 0)
            return 1;
    for (int i = 0; i < conc; i++) {
        pthread_join(th[i], NULL);
        ok += ws[i].ok;
        err += ws[i].err;
        n += ws[i].n;
    }
    all = malloc((n ? n : 1) * sizeof(double));
    if (all == NULL)
        return 1;
    n = 0;
    for (int i = 0; i < conc; i++) {
        memcpy(all + n, ws[i].lat, ws[i].n * sizeof(double));
        n += ws[i].n;
        free(ws[i].lat);
    }
    qsort(all, n, sizeof(double), cmp_double);
#define PCT(p) (n ? all[(size_t)((double)(n - 1) * (p))] : 0.0)
    {
        struct rusage ru;
        double cpu_us = 0;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            cpu_us = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
        printf("RESULT mode=cmp-ir%s conc=%d rps=%.0f p50=%.1f p90=%.1f p99=%.1f max=%.1f ok=%ld "
               "err=%ld all=%ld cli_us=%.0f\n",
               confirm ? "-confirm" : "", conc, (double)ok / duration, PCT(0.5), PCT(0.9),
               PCT(0.99), PCT(1.0), ok, err, all_done, all_done ? cpu_us / (double)all_done : 0.0);
    }
    free(all);
    EVP_PKEY_free(key);
    return ok > 0 ? 0 : 1;
}
