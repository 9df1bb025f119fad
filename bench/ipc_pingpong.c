/*
 * ipc_pingpong.c - the floor under the separate signer (issue 16): the cost
 * of one request/answer between two processes over a socketpair, with
 * frames of a SIGN request's and a signature answer's size, sent and read
 * the way src/signer/privsep.c does (one sendmsg, one read each way).
 * Nothing is signed: what is left is the kernel's round trip (two
 * syscalls each side, two wakeups, two context switches), which no
 * signer protocol over a socket can beat.
 *
 *   ipc_pingpong [seconds] [request bytes] [answer bytes]
 * prints: RESULT rt_per_s=.. us_per_rt=.. cpu_us_per_rt=.. (both processes)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int send_all(int fd, const unsigned char *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    while (iov.iov_len > 0) {
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        iov.iov_base = (unsigned char *)iov.iov_base + w;
        iov.iov_len -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t r = read(fd, buf, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    size_t qlen = argc > 2 ? (size_t)atol(argv[2]) : 48; /* SIGN, SHA-256 digest */
    size_t alen = argc > 3 ? (size_t)atol(argv[3]) : 77; /* P-256 DER signature */
    unsigned char q[4096], a[4096];
    int sv[2], status;
    long n = 0;
    double t0, t1;
    pid_t pid;
    struct rusage self, kid;

    if (secs <= 0 || qlen < 1 || qlen > sizeof(q) || alen < 1 || alen > sizeof(a)) {
        fprintf(stderr, "usage: ipc_pingpong [seconds] [request bytes] [answer bytes]\n");
        return 2;
    }
    memset(q, 0x5a, sizeof(q));
    memset(a, 0xa5, sizeof(a));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        return 1;
    }
    if ((pid = fork()) < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        /* the "signer": read a request, answer it */
        close(sv[0]);
        while (read_all(sv[1], q, qlen) == 0)
            if (send_all(sv[1], a, alen) != 0)
                break;
        _exit(0);
    }
    close(sv[1]);
    t0 = now();
    do {
        for (int i = 0; i < 1000; i++)
            if (send_all(sv[0], q, qlen) != 0 || read_all(sv[0], a, alen) != 0) {
                fprintf(stderr, "ipc_pingpong: peer gone\n");
                return 1;
            }
        n += 1000;
        t1 = now();
    } while (t1 - t0 < secs);
    close(sv[0]);
    waitpid(pid, &status, 0);
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kid);
    {
        double cpu = tv(self.ru_utime) + tv(self.ru_stime) + tv(kid.ru_utime) + tv(kid.ru_stime);
        printf("RESULT rt_per_s=%.0f us_per_rt=%.2f cpu_us_per_rt=%.2f req_bytes=%zu "
               "ans_bytes=%zu\n",
               (double)n / (t1 - t0), (t1 - t0) * 1e6 / (double)n, cpu * 1e6 / (double)n, qlen,
               alen);
    }
    return 0;
}
