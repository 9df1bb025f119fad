/* fuzz_http_server.c - raw bytes through the real HTTP request path: a
 * fleetpki server (fresh CA in a temporary directory, the real route
 * table, plain listener on 127.0.0.1, one worker) runs in this process;
 * each input is written to a new connection, the client half-closes and
 * reads until the server closes.  Checks: the server closes every such
 * connection (no hang), every answer is an HTTP/1.1 status line, and no
 * libevent HTML error page ever reaches the client.  Sanitizers see the
 * server thread too.  The TLS listener is off (raw bytes there would only
 * exercise OpenSSL's record layer).  The client rides through signals
 * (libFuzzer's SIGALRM) and blames a hang on the server only if the
 * server accept()ed the connection: fuzz/README.md. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ca/ca.h"
#include "ca/config.h"
#include "common/util.h"
#include "est/est_module.h"
#include "http/http.h"
#include "serve/app.h"
#include "rev/rev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fp_fuzz_http.XXXXXX";
static fp_config cfg;
static fp_app app;
static fp_http_server *srv;
static pthread_t thread;
static struct sockaddr_in addr;
static volatile sig_atomic_t interrupts; /* FP_FUZZ_INTERRUPT_US, below */
static bool interrupting;

/* how long the server may stay silent on a connection before it counts as
 * a hang: the harness sets idle_timeout_seconds 5; the header, body and
 * linger deadlines are shorter */
#define WAIT_MS 15000

/* TcpExt counters of /proc/net/netstat (a "TcpExt:" line of names, then
 * one of values); -1 if unreadable. */
static long tcpext(const char *name)
{
    char names[8192], vals[8192];
    FILE *f = fopen("/proc/net/netstat", "r");
    long v = -1;

    if (f == NULL)
        return -1;
    while (v < 0 && fgets(names, sizeof(names), f) && fgets(vals, sizeof(vals), f)) {
        char *sn, *sv, *n, *x;
        if (strncmp(names, "TcpExt:", 7) != 0)
            continue;
        n = strtok_r(names + 7, " \n", &sn);
        x = strtok_r(vals + 7, " \n", &sv);
        while (n != NULL && x != NULL) {
            if (strcmp(n, name) == 0)
                v = atol(x);
            n = strtok_r(NULL, " \n", &sn);
            x = strtok_r(NULL, " \n", &sv);
        }
    }
    fclose(f);
    return v;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the deadline (CLOCK_MONOTONIC ms).  A signal
 * (libFuzzer's SIGALRM among them) ends poll() early with EINTR, and
 * poll() is never restarted after a handler ran, whatever SA_RESTART says
 * (signal(7)): taken as a timeout, that was the harness's intermittent
 * "server kept the connection open" (fuzz/README.md).  Returns revents, 0
 * at the deadline. */
static short wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int64_t left = deadline - now_ms();
        int rc;
        if (left <= 0)
            return 0;
        rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rc == 1)
            return p.revents;
        if (rc < 0 && errno != EINTR) {
            perror("fuzz client: poll");
            abort();
        }
    }
}

/* No answer and no close within the deadline.  A hang is the server's
 * only if its accept() saw the connection: when the kernel's accept queue
 * overflows it completes the handshake from the client's side (SYN
 * cookies, tcp_abort_on_overflow=0) while the server never learns of the
 * connection.  This client is sequential, so that needs another program
 * flooding the port; it is reported and the input skipped (the counter
 * is the network namespace's, so it is compared with its value at
 * setup).  A connection the server accepted, or one it did not accept
 * with no overflow counted, is a server bug (hang, or a listener that
 * stopped accepting). */
static long overflows0 = -1; /* ListenOverflows at setup */

static bool hang_is_servers(int fd, unsigned long accepted0, size_t got)
{
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    unsigned long accepted = fp_http_server_accepted(srv) - accepted0;
    long overflows = tcpext("ListenOverflows") - overflows0;

    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0)
        ti.tcpi_state = 0;
    fprintf(stderr,
            "no close after %d s (%zu bytes answered): client TCP state %u, server "
            "accept()ed %lu connections since connect (holds %ld open), "
            "ListenOverflows +%ld since setup\n",
            WAIT_MS / 1000, got, ti.tcpi_state, accepted, fp_http_server_open_conns(srv),
            overflows);
    if (accepted == 0 && overflows > 0 && overflows0 >= 0) {
        fprintf(stderr, "the kernel's accept queue overflowed: connection never reached "
                        "the server; input skipped\n");
        return false;
    }
    if (accepted == 0)
        fprintf(stderr, "server stopped accepting connections\n");
    else
        fprintf(stderr, "server kept the connection open\n");
    return true;
}

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
    if (interrupting) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGRTMIN);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        fprintf(stderr, "client thread interrupted %d times\n", (int)interrupts);
        if (interrupts == 0)
            abort(); /* the interrupted run tested nothing */
    }
    fp_http_server_stop(srv);
    pthread_join(thread, NULL);
    fp_http_server_free(srv);
    fp_issuer_free(app.issuer);
    fp_caset_free(app.cas);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* FP_FUZZ_INTERRUPT_US=N: a signal with a handler (no SA_RESTART, which
 * poll() ignores anyway) hits the client thread every N microseconds, as
 * libFuzzer's own SIGALRM does every -timeout/2+1 s (its unit-timeout
 * check).  The client must ride through interrupted calls; ctest runs the
 * corpus this way (fuzz_replay_http_server_interrupted). */
static void on_interrupt(int sig)
{
    (void)sig;
    if (interrupts < 1000000)
        interrupts++;
}

static void interrupt_setup(void)
{
    const char *us = getenv("FP_FUZZ_INTERRUPT_US");
    struct sigaction sa;
    struct sigevent sev;
    struct itimerspec its;
    timer_t t;
    long n;

    if (us == NULL || (n = atol(us)) <= 0)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGRTMIN;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid); /* this (the client) thread only */
    its.it_value.tv_sec = its.it_interval.tv_sec = n / 1000000;
    its.it_value.tv_nsec = its.it_interval.tv_nsec = n % 1000000 * 1000;
    if (sigaction(SIGRTMIN, &sa, NULL) != 0 || timer_create(CLOCK_MONOTONIC, &sev, &t) != 0 ||
        timer_settime(t, 0, &its, NULL) != 0) {
        perror("FP_FUZZ_INTERRUPT_US");
        abort();
    }
    interrupting = true;
}

static void setup(void)
{
    fp_init_opts io = {0};
    fp_http_opts ho = {0};
    fp_est_args ea;
    fp_rev_args ra;
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
    {
        char path[FP_PATH_MAX];
        fp_store *store = NULL;
        if (fp_config_path(&cfg, cfg.store_path, path, sizeof(path), &err) != FP_ERR_OK ||
            fp_store_open(path, &store, &err) != FP_ERR_OK ||
            fp_caset_load(&cfg, store, NULL, 0, &app.cas, &err) != FP_ERR_OK ||
            fp_issuer_new(app.cas, NULL, &app.issuer, &err) != FP_ERR_OK) {
            fprintf(stderr, "setup: %s\n", fp_err_str(&err));
            abort();
        }
        fp_store_close(store);
        app.cfg = &cfg;
    }
    /* the server as `fleetpki serve` composes it (src/cli/cmd_serve.c) */
    ho.https_listen = "";
    ho.http_listen = "127.0.0.1:0";
    ho.quiet = true;
    ho.threads = cfg.threads;
    ho.max_body_bytes = cfg.max_body_bytes;
    ho.max_header_bytes = cfg.max_header_bytes;
    ho.idle_timeout_seconds = cfg.idle_timeout_seconds;
    ho.max_connections = cfg.max_connections;
    ho.max_connections_per_address = cfg.max_connections_per_address;
    ho.max_requests_per_connection = cfg.max_requests_per_connection;
    ho.handshake_timeout_seconds = cfg.handshake_timeout_seconds;
    ho.header_timeout_seconds = cfg.header_timeout_seconds;
    ho.body_timeout_seconds = cfg.body_timeout_seconds;
    ho.min_body_rate = cfg.min_body_rate;
    ho.rate_per_address = cfg.rate_per_address;
    ho.rate_burst_per_address = cfg.rate_burst_per_address;
    ho.rate_per_identity = cfg.rate_per_identity;
    ho.rate_burst_per_identity = cfg.rate_burst_per_identity;
    ho.rate_limit_keys = cfg.rate_limit_keys;
    ea = (fp_est_args){&cfg, &app};
    ra = (fp_rev_args){&cfg, &app, NULL, 0};
    if (fp_http_server_new(&ho, &srv, &err) != FP_ERR_OK ||
        fp_http_mount(srv, &fp_est_module, NULL, &ea, &err) != FP_ERR_OK ||
        fp_http_mount(srv, &fp_rev_module, NULL, &ra, &err) != FP_ERR_OK) {
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
    overflows0 = tcpext("ListenOverflows");
    atexit(teardown);
    interrupt_setup(); /* after the server thread started: it never sees the signal */
}

/* Everything the server sends on one connection, until it closes; -1 if
 * the connection never reached the server (see hang_is_servers). */
static ssize_t exchange(const uint8_t *data, size_t size, char *resp, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t off = 0, got = 0;
    struct sockaddr_in src;
    static uint32_t seq;
    unsigned long accepted0 = fp_http_server_accepted(srv);
    int64_t deadline;

    /* thousands of connections a second: spread them over source
     * addresses in 127/8 so no 4-tuple comes back while the server side
     * of its last use is still in TIME_WAIT (a SYN landing there can
     * leave the client "connected" to nothing) */
    seq++;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000000u | ((seq % 0xfffdu + 1u) << 8) | (seq % 253u + 1u));
    if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
        perror("fuzz client");
        abort();
    }
    deadline = now_ms() + WAIT_MS;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        /* interrupted: the handshake goes on; its result is SO_ERROR once
         * the socket is writable (connect(2)) */
        int e = 0;
        socklen_t el = sizeof(e);
        if (errno != EINTR || wait_fd(fd, POLLOUT, deadline) == 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) {
            if (e != 0)
                errno = e;
            perror("fuzz client: connect");
            abort();
        }
    }
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the server may close early (framing error): fine */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    /* the server must close: a request cut short by our EOF is dropped, a
     * complete one answered; WAIT_MS without either is a hang, not a slow
     * machine.  The deadline is per read: an answer still arriving is not
     * a hang. */
    for (;;) {
        char sink[4096];
        ssize_t n;
        if (wait_fd(fd, POLLIN, now_ms() + WAIT_MS) == 0) {
            if (hang_is_servers(fd, accepted0, got))
                abort();
            close(fd);
            return -1;
        }
        if (got < cap)
            n = recv(fd, resp + got, cap - got, 0);
        else
            n = recv(fd, sink, sizeof(sink), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (got < cap)
            got += (size_t)n;
    }
    close(fd);
    return (ssize_t)got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char resp[1 << 16];
    ssize_t got;
    size_t n;

    if (srv == NULL)
        setup();
    if (size > 64 * 1024)
        return 0;
    got = exchange(data, size, resp, sizeof(resp) - 1);
    if (got < 0)
        return 0;
    n = (size_t)got;
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
