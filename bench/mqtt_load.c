/*
 * mqtt_load.c - an MQTT-over-TLS load generator for bench/run-mqtt.sh
 * (the Mosquitto plugin, issue 11).  A client only: OpenSSL and raw MQTT
 * 3.1.1 packets (section 3: CONNECT, CONNACK, PUBLISH QoS 1, PUBACK,
 * DISCONNECT), no fleetpki or libmosquitto code.
 *
 *   mqtt_load conn --port P --cafile F --certs DIR --devices N
 *                  [--threads T] [--seconds S]
 *       each thread loops: new TCP connection, full TLS handshake with the
 *       client certificate DIR/dev-<i>/cred0.crt and its key cred0.key (the
 *       layout of `fleetpki factory mint --name dev-%d --start 0`), CONNECT as
 *       dev-<i>, PUBLISH QoS 1 to devices/dev-<i>/bench, wait for the
 *       PUBACK, DISCONNECT, close (with --each: every device once, in
 *       order, then stop; a warm-up).  Prints
 *       "RESULT conns=.. seconds=.. rate=.. failures=..".
 *   mqtt_load hold --port P --cafile F --certs DIR --devices N
 *                  [--seconds S]
 *       opens N connections (dev-0 .. dev-N-1), prints "ready", then one
 *       line "gone dev-<i> <unix time in ns>" as each is closed by the
 *       broker; exits when all are gone or after S seconds.
 * No TLS session resumption: every handshake is a full one (a device that
 * reconnects after a revocation check does one too).
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

static int port, n_devices = 1000, n_threads = 4, seconds = 10;
static bool each; /* --each: every device once (a warm-up), then stop */
static const char *cafile, *certdir;
static SSL_CTX *ctx;
static X509 **certs;
static EVP_PKEY **keys;
static atomic_long conns, failures;
static atomic_bool stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int tcp_connect(void)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* MQTT remaining length (section 2.2.3). */
static size_t put_len(unsigned char *p, size_t n)
{
    size_t i = 0;
    do {
        unsigned char b = n % 128;
        n /= 128;
        p[i++] = (unsigned char)(b | (n > 0 ? 0x80 : 0));
    } while (n > 0);
    return i;
}

static size_t put_str(unsigned char *p, const char *s)
{
    size_t n = strlen(s);
    p[0] = (unsigned char)(n >> 8);
    p[1] = (unsigned char)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

static int write_all(SSL *ssl, const unsigned char *p, size_t n)
{
    return SSL_write(ssl, p, (int)n) == (int)n ? 0 : -1;
}

static int read_n(SSL *ssl, unsigned char *p, int n)
{
    int got = 0;
    while (got < n) {
        int r = SSL_read(ssl, p + got, n - got);
        if (r <= 0)
            return -1;
        got += r;
    }
    return 0;
}

static int mqtt_connect(SSL *ssl, const char *id, uint16_t keepalive)
{
    unsigned char body[512], pkt[520], ack[4];
    size_t b = 0, o = 0;

    b += put_str(body + b, "MQTT");
    body[b++] = 4;    /* protocol level: 3.1.1 */
    body[b++] = 0x02; /* clean session */
    body[b++] = (unsigned char)(keepalive >> 8);
    body[b++] = (unsigned char)keepalive;
    b += put_str(body + b, id);
    pkt[o++] = 0x10;
    o += put_len(pkt + o, b);
    memcpy(pkt + o, body, b);
    o += b;
    if (write_all(ssl, pkt, o) != 0 || read_n(ssl, ack, 4) != 0)
        return -1;
    return ack[0] == 0x20 && ack[1] == 2 && ack[3] == 0 ? 0 : -1;
}

static int mqtt_publish_disconnect(SSL *ssl, const char *topic)
{
    static const unsigned char disc[2] = {0xe0, 0x00};
    unsigned char body[512], pkt[520], ack[4];
    size_t b = 0, o = 0;

    b += put_str(body + b, topic);
    body[b++] = 0;
    body[b++] = 1; /* packet identifier 1 */
    memcpy(body + b, "21.5", 4);
    b += 4;
    pkt[o++] = 0x32; /* PUBLISH, QoS 1 */
    o += put_len(pkt + o, b);
    memcpy(pkt + o, body, b);
    o += b;
    if (write_all(ssl, pkt, o) != 0 || read_n(ssl, ack, 4) != 0 || ack[0] != 0x40 ||
        ack[3] != 1)
        return -1;
    return write_all(ssl, disc, sizeof(disc));
}

/* A TLS connection as device i: fd and ssl, or -1. */
static int open_device(int i, SSL **out, int *fdout)
{
    SSL *ssl = NULL;
    int fd = tcp_connect();

    if (fd < 0 || (ssl = SSL_new(ctx)) == NULL || SSL_use_certificate(ssl, certs[i]) != 1 ||
        SSL_use_PrivateKey(ssl, keys[i]) != 1 || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        if (fd >= 0)
            close(fd);
        ERR_clear_error();
        return -1;
    }
    *out = ssl;
    *fdout = fd;
    return 0;
}

static void *conn_thread(void *arg)
{
    int t = (int)(uintptr_t)arg - 1, per = n_devices / n_threads;
    unsigned seed = (unsigned)(t + 1) * 2654435761u;

    for (int k = 0; !atomic_load(&stop); k++) {
        char id[64], topic[96];
        /* each thread its own devices: two connections with one client
         * id would make the broker close the older one */
        int i = each ? t + n_threads * k
                     : t + n_threads * (int)(rand_r(&seed) % (unsigned)(per > 0 ? per : 1));
        int fd = -1, ok = -1;
        SSL *ssl = NULL;
        if (i >= n_devices)
            break;
        snprintf(id, sizeof(id), "dev-%d", i);
        snprintf(topic, sizeof(topic), "devices/dev-%d/bench", i);
        if (open_device(i, &ssl, &fd) == 0) {
            ok = mqtt_connect(ssl, id, 60);
            if (ok == 0)
                ok = mqtt_publish_disconnect(ssl, topic);
            SSL_shutdown(ssl);
            SSL_free(ssl);
            close(fd);
        }
        if (atomic_load(&stop))
            break;
        if (ok == 0)
            atomic_fetch_add(&conns, 1);
        else
            atomic_fetch_add(&failures, 1);
    }
    return NULL;
}

static int run_conn(void)
{
    pthread_t *t = calloc((size_t)n_threads, sizeof(*t));
    double t0;

    if (t == NULL)
        return 1;
    t0 = now_s();
    for (int i = 0; i < n_threads; i++)
        pthread_create(&t[i], NULL, conn_thread, (void *)(uintptr_t)(i + 1));
    while (!each && now_s() - t0 < seconds)
        usleep(50000);
    if (!each)
        atomic_store(&stop, true);
    for (int i = 0; i < n_threads; i++)
        pthread_join(t[i], NULL);
    {
        double el = now_s() - t0;
        long c = atomic_load(&conns);
        printf("RESULT conns=%ld seconds=%.2f rate=%.0f failures=%ld\n", c, el, (double)c / el,
               atomic_load(&failures));
    }
    free(t);
    return 0;
}

static int run_hold(void)
{
    struct pollfd *pf = calloc((size_t)n_devices, sizeof(*pf));
    SSL **ssl = calloc((size_t)n_devices, sizeof(*ssl));
    int left = n_devices;
    double t0;

    if (pf == NULL || ssl == NULL)
        return 1;
    for (int i = 0; i < n_devices; i++) {
        char id[64];
        int fd = -1;
        snprintf(id, sizeof(id), "dev-%d", i);
        if (open_device(i, &ssl[i], &fd) != 0 || mqtt_connect(ssl[i], id, 0) != 0) {
            fprintf(stderr, "mqtt_load: dev-%d could not connect\n", i);
            return 1;
        }
        pf[i].fd = fd;
        pf[i].events = POLLIN;
    }
    printf("ready\n");
    fflush(stdout);
    t0 = now_s();
    while (left > 0 && now_s() - t0 < seconds) {
        if (poll(pf, (nfds_t)n_devices, 200) <= 0)
            continue;
        for (int i = 0; i < n_devices; i++) {
            unsigned char buf[256];
            struct timespec ts;
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            /* anything but EOF would be a packet: mosquitto sends none to
             * an idle 3.1.1 client, and a kick is a plain close */
            if (SSL_read(ssl[i], buf, sizeof(buf)) > 0)
                continue;
            clock_gettime(CLOCK_REALTIME, &ts);
            printf("gone dev-%d %lld%09ld\n", i, (long long)ts.tv_sec, ts.tv_nsec);
            fflush(stdout);
            close(pf[i].fd);
            pf[i].fd = -1;
            left--;
        }
    }
    return 0;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

int main(int argc, char **argv)
{
    FILE *f;
    const char *mode = argc > 1 ? argv[1] : "";

    signal(SIGPIPE, SIG_IGN); /* a broker that closes first is counted, not fatal */
    port = atoi(arg(argc, argv, "--port", "0"));
    cafile = arg(argc, argv, "--cafile", NULL);
    certdir = arg(argc, argv, "--certs", NULL);
    n_devices = atoi(arg(argc, argv, "--devices", "1000"));
    n_threads = atoi(arg(argc, argv, "--threads", "4"));
    seconds = atoi(arg(argc, argv, "--seconds", "10"));
    for (int i = 2; i < argc; i++)
        each = each || !strcmp(argv[i], "--each");
    if ((strcmp(mode, "conn") && strcmp(mode, "hold")) || port <= 0 || !cafile || !certdir || n_devices <= 0 || n_threads <= 0 || n_threads > n_devices || seconds <= 0) {
        fprintf(stderr, "usage: mqtt_load conn|hold --port P --cafile F --certs DIR "
                        "[--devices N] [--threads T] [--seconds S]\n");
        return 2;
    }
    if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
        SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
        return fprintf(stderr, "mqtt_load: cannot load %s\n", cafile), 1;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if ((certs = calloc((size_t)n_devices, sizeof(*certs))) == NULL ||
        (keys = calloc((size_t)n_devices, sizeof(*keys))) == NULL)
        return 1;
    for (int i = 0; i < n_devices; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/dev-%d/cred0.crt", certdir, i);
        if ((f = fopen(path, "r")) == NULL || (certs[i] = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
            return fprintf(stderr, "mqtt_load: cannot read %s\n", path), 1;
        fclose(f);
        snprintf(path, sizeof(path), "%s/dev-%d/cred0.key", certdir, i);
        if ((f = fopen(path, "r")) == NULL ||
            (keys[i] = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL)
            return fprintf(stderr, "mqtt_load: cannot read %s\n", path), 1;
        fclose(f);
    }
    return !strcmp(mode, "conn") ? run_conn() : run_hold();
}
