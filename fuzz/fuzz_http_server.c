/* fuzz_http_server.c - raw bytes through the real HTTP request path: a
 * fleetpki server (fresh CA in a temporary directory, the real route
 * table, plain listener on 127.0.0.1, one worker) runs in this process;
 * each input is written to a new connection, the client half-closes and
 * reads until the server closes.  Checks: the server closes every such
 * connection (no hang), every answer is an HTTP/1.1 status line, and no
 * libevent HTML error page ever reaches the client.  Sanitizers see the
 * server thread too.  The TLS listener is off (raw bytes there would only
 * exercise OpenSSL's record layer). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ca/ca.h"
#include "ca/config.h"
#include "common/util.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fp_fuzz_http.XXXXXX";
static fp_config cfg;
static fp_ca *ca;
static fp_http_server *srv;
static pthread_t thread;
static struct sockaddr_in addr;

static void *run(void *arg)
{
    fp_error err = {0};
    (void)arg;
    if (fp_http_server_run(srv, false, &err) != FP_ERR_OK)
        fprintf(stderr, "server: %s\n", fp_err_str(&err));
    return NULL;
}

static void teardown(void)
{
    char cmd[64];
    fp_http_server_stop(srv);
    pthread_join(thread, NULL);
    fp_http_server_free(srv);
    fp_ca_free(ca);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void setup(void)
{
    fp_init_opts io = {0};
    fp_http_opts ho = {0};
    fp_error err = {0};
    const char *bound, *colon;

    fp_log_set_level(FP_LOG_ERROR);
    if (mkdtemp(dir) == NULL)
        abort();
    io.dir = dir;
    io.org = "fuzz";
    if (fp_ca_init(&io, &err) != FP_ERR_OK || fp_config_load(&cfg, dir, &err) != FP_ERR_OK) {
        fprintf(stderr, "setup: %s\n", fp_err_str(&err));
        abort();
    }
    cfg.threads = 1;
    cfg.max_header_bytes = 4096;
    cfg.max_body_bytes = 8192;
    cfg.idle_timeout_seconds = 5;
    if (fp_ca_open(&cfg, NULL, 0, &ca, &err) != FP_ERR_OK) {
        fprintf(stderr, "setup: %s\n", fp_err_str(&err));
        abort();
    }
    ho.cfg = &cfg;
    ho.ca = ca;
    ho.https_listen = "";
    ho.http_listen = "127.0.0.1:0";
    ho.quiet = true;
    if (fp_http_server_new(&ho, &srv, &err) != FP_ERR_OK) {
        fprintf(stderr, "setup: %s\n", fp_err_str(&err));
        abort();
    }
    bound = fp_http_server_addr(srv, FP_HTTP_PLAIN);
    colon = strrchr(bound, ':');
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (pthread_create(&thread, NULL, run, NULL) != 0)
        abort();
    atexit(teardown);
}

/* Everything the server sends on one connection, until it closes. */
static size_t exchange(const uint8_t *data, size_t size, char *resp, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t off = 0, got = 0;
    struct sockaddr_in src;
    static uint32_t seq;

    /* thousands of connections a second: spread them over source
     * addresses in 127/8 so no 4-tuple comes back while the server side
     * of its last use is still in TIME_WAIT (a SYN landing there can
     * leave the client "connected" to nothing) */
    seq++;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000000u | ((seq % 0xfffdu + 1u) << 8) | (seq % 253u + 1u));
    if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        perror("fuzz client");
        abort();
    }
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close early (framing error): fine */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        char sink[4096];
        ssize_t n;
        /* the server must close: a request cut short by our EOF is
         * dropped, a complete one answered; 15 s is a hang, not a slow
         * machine */
        if (poll(&p, 1, 15000) != 1) {
            fprintf(stderr, "server kept the connection open (%zu bytes answered)\n", got);
            abort();
        }
        if (got < cap)
            n = recv(fd, resp + got, cap - got, 0);
        else
            n = recv(fd, sink, sizeof(sink), 0);
        if (n <= 0)
            break;
        if (got < cap)
            got += (size_t)n;
    }
    close(fd);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char resp[1 << 16];
    size_t n;

    if (srv == NULL)
        setup();
    if (size > 64 * 1024)
        return 0;
    n = exchange(data, size, resp, sizeof(resp) - 1);
    resp[n] = '\0';
    if (n > 0 && strncmp(resp, "HTTP/1.1 ", 9) != 0 && strncmp(resp, "HTTP/1.0 ", 9) != 0) {
        fprintf(stderr, "answer without a status line: %.40s\n", resp);
        abort();
    }
    if (memmem(resp, n, "<HTML>", 6) != NULL) {
        fprintf(stderr, "libevent's HTML error page reached the client:\n%s\n", resp);
        abort();
    }
    return 0;
}
