/*
 * supervisor.c - restart the signer process when it dies; see supervisor.h.
 */
#define _GNU_SOURCE
#include "supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "../common/util.h"
#include "privsep.h"

/* Backoff between restarts: a signer that dies again within STABLE_MS of
 * its start waits twice as long as the last one, up to MAX_MS (a key that
 * crashes it at every start must not make the supervisor spin). */
#define FIRST_DELAY_MS 100
#define MAX_DELAY_MS 10000
#define STABLE_MS 10000
/* secure heap for the journal's passphrases: 64 KiB, a power of two */
#define SECURE_HEAP 65536

static void put16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

int fp_sj_send(int fd, uint8_t kind, uint32_t id, const char *ref, const void *pass,
               size_t passlen, const unsigned char *spki, size_t spki_len)
{
    size_t reflen = ref ? strlen(ref) : 0, len = 1 + 4 + 2 + reflen + 2 + passlen + 2 + spki_len;
    unsigned char *m, *p;
    ssize_t w;

    if (fd < 0)
        return 0; /* no supervisor (tests drive the signer alone) */
    if (reflen >= FP_SJ_REF_MAX || passlen > 65535 || spki_len > FP_SJ_SPKI_MAX)
        return -1;
    if ((m = malloc(len)) == NULL)
        return -1;
    p = m;
    *p++ = kind;
    put32(p, id);
    p += 4;
    put16(p, reflen);
    memcpy(p + 2, ref ? ref : "", reflen);
    p += 2 + reflen;
    put16(p, passlen);
    if (passlen)
        memcpy(p + 2, pass, passlen);
    p += 2 + passlen;
    put16(p, spki_len);
    if (spki_len)
        memcpy(p + 2, spki, spki_len);
    do
        w = send(fd, m, len, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    OPENSSL_clear_free(m, len);
    return w == (ssize_t)len ? 0 : -1;
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* One record from the signer into j; a malformed one is dropped (the
 * signer wrote it, but nothing unchecked is used). */
static void journal_add(fp_sigjournal *j, const unsigned char *m, size_t len)
{
    size_t off = 5, reflen, passlen, spkilen;
    uint32_t id;
    fp_sj_entry *e;

    if (len == 5 + 6 && m[0] == FP_SJ_SEAL) {
        j->sealed = true;
        return;
    }
    if (len < 5 + 6 || (m[0] != FP_SJ_OPEN && m[0] != FP_SJ_GEN))
        return;
    id = (uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4];
    reflen = get16(m + off);
    if (reflen == 0 || reflen >= FP_SJ_REF_MAX || off + 2 + reflen + 2 > len)
        return;
    passlen = get16(m + off + 2 + reflen);
    if (off + 2 + reflen + 2 + passlen + 2 > len)
        return;
    spkilen = get16(m + off + 2 + reflen + 2 + passlen);
    if (off + 2 + reflen + 2 + passlen + 2 + spkilen != len || id >= 65536)
        return;
    if (id >= j->cap) {
        uint32_t cap = j->cap ? j->cap : 16;
        fp_sj_entry *ne;
        while (cap <= id)
            cap *= 2;
        if ((ne = realloc(j->e, cap * sizeof(*ne))) == NULL)
            return;
        memset(ne + j->cap, 0, (cap - j->cap) * sizeof(*ne));
        j->e = ne;
        j->cap = cap;
    }
    e = &j->e[id];
    if (e->kind != 0)
        return; /* ids are never reused */
    e->ref = calloc(1, reflen + 1);
    /* OpenSSL's secure heap (fp_sigsup_main): locked in memory, kept out
     * of core dumps; plain heap if it could not be set up */
    e->pass = OPENSSL_secure_malloc(passlen ? passlen : 1);
    e->spki = malloc(spkilen ? spkilen : 1);
    if (e->ref == NULL || e->pass == NULL || e->spki == NULL) {
        free(e->ref);
        OPENSSL_secure_free(e->pass);
        free(e->spki);
        memset(e, 0, sizeof(*e));
        return;
    }
    memcpy(e->ref, m + off + 2, reflen);
    memcpy(e->pass, m + off + 2 + reflen + 2, passlen);
    e->passlen = passlen;
    memcpy(e->spki, m + off + 2 + reflen + 2 + passlen + 2, spkilen);
    e->spki_len = spkilen;
    e->kind = m[0];
    if (id >= j->n)
        j->n = id + 1;
}

static void journal_drain(fp_sigjournal *j, int jfd)
{
    static unsigned char m[FP_SJ_MSG_MAX];
    for (;;) {
        ssize_t r = recv(jfd, m, sizeof(m), MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        journal_add(j, m, (size_t)r);
        OPENSSL_cleanse(m, (size_t)r); /* may hold a passphrase */
    }
}

static void journal_free(fp_sigjournal *j)
{
    for (uint32_t i = 0; i < j->n; i++) {
        if (j->e[i].pass != NULL)
            OPENSSL_secure_clear_free(j->e[i].pass, j->e[i].passlen ? j->e[i].passlen : 1);
        free(j->e[i].ref);
        free(j->e[i].spki);
    }
    free(j->e);
    memset(j, 0, sizeof(*j));
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Fork a signer on fds with the journal; every other descriptor of ours
 * that it must not hold is closed in it: above all the network ends of
 * its channels (peer, NULL for the first signer), or it would never see
 * them close. */
static pid_t spawn(int *fds, const int *peer, int n, fp_sigjournal *j, int ctl, int jrd)
{
    pid_t pid;
    fflush(NULL);
    if ((pid = fork()) != 0)
        return pid;
    close(ctl);
    close(jrd);
    for (int i = 0; peer != NULL && i < n; i++)
        close(peer[i]);
    fp_privsep_child_run(fds, n, j); /* does not return */
    _exit(1);
}

/* Hand the network ends of the new channels over, FP_SUP_FDS_PER_MSG at a
 * time; 0 when all went. */
static int send_channels(int ctl, uint32_t restarts, pid_t pid, const int *fds, int n)
{
    int first = 0;
    do {
        int count = n - first > FP_SUP_FDS_PER_MSG ? FP_SUP_FDS_PER_MSG : n - first;
        unsigned char hdr[FP_SUP_HDR];
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int) * FP_SUP_FDS_PER_MSG)];
        } cm;
        struct iovec iov = {hdr, sizeof(hdr)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t w;

        put32(hdr, restarts);
        put32(hdr + 4, (uint32_t)pid);
        put16(hdr + 8, (size_t)first);
        put16(hdr + 10, (size_t)count);
        if (count > 0) {
            memset(&cm, 0, sizeof(cm));
            mh.msg_control = cm.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
            cm.h.cmsg_level = SOL_SOCKET;
            cm.h.cmsg_type = SCM_RIGHTS;
            cm.h.cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
            memcpy(CMSG_DATA(&cm.h), fds + first, sizeof(int) * (size_t)count);
        }
        do
            w = sendmsg(ctl, &mh, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (w != (ssize_t)sizeof(hdr))
            return -1;
        first += count;
    } while (first < n);
    return 0;
}

static void describe(int st, char *buf, size_t len)
{
    if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
    else
        snprintf(buf, len, "status %d", st);
}

/* Sleep ms, or less if the network side closes the control socket:
 * true when it did. */
static bool wait_or_stop(int ctl, int ms)
{
    long long end = now_ms() + ms;
    for (;;) {
        long long left = end - now_ms();
        struct pollfd pf = {ctl, POLLIN, 0};
        int k;
        if (left <= 0)
            return false;
        k = poll(&pf, 1, (int)left);
        if (k > 0)
            return true;
        if (k < 0 && errno != EINTR)
            return true;
    }
}

void fp_sigsup_main(int ctl, int *fds, int n)
{
    fp_sigjournal j = {0};
    int jp[2], pidfd, delay = FIRST_DELAY_MS, st = 0;
    uint32_t restarts = 0;
    long long started;
    pid_t pid;
    int *nfd = calloc((size_t)n, sizeof(*nfd) * 2);

    /* dies with the network process; the signer dies with it in turn */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_DUMPABLE, 0);
    prctl(PR_SET_NAME, "fleetpki-sigsup");
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (nfd == NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, jp) != 0)
        _exit(1);
    /* the passphrases it keeps for restarts live in OpenSSL's secure heap
     * (mlock'd, MADV_DONTDUMP); if RLIMIT_MEMLOCK forbids it they are in
     * the plain heap, still wiped when freed, and this process is not
     * dumpable either way */
    if (CRYPTO_secure_malloc_init(SECURE_HEAP, 32) != 1)
        fp_log(FP_LOG_WARN, "signer supervisor: no secure heap (RLIMIT_MEMLOCK?): key "
                            "passphrases are kept in ordinary memory");
    j.fd = jp[1]; /* every signer inherits it */
    started = now_ms();
    if ((pid = spawn(fds, NULL, n, &j, ctl, jp[0])) < 0)
        _exit(1);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    if (send_channels(ctl, 0, pid, NULL, 0) != 0)
        goto stop;
    for (;;) {
        struct pollfd pf[3];
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        for (;;) {
            int k;
            pf[0] = (struct pollfd){ctl, POLLIN, 0};
            pf[1] = (struct pollfd){jp[0], POLLIN, 0};
            pf[2] = (struct pollfd){pidfd, POLLIN, 0};
            /* without pidfd (older kernels), look for the child twice a second */
            k = poll(pf, pidfd >= 0 ? 3 : 2, pidfd >= 0 ? -1 : 500);
            if (k < 0 && errno != EINTR)
                goto stop;
            if (k > 0 && pf[0].revents)
                goto stop; /* the network side is stopping (or gone) */
            if (k > 0 && pf[1].revents)
                journal_drain(&j, jp[0]);
            if ((pidfd >= 0 && k > 0 && pf[2].revents) ||
                (pidfd < 0 && waitpid(pid, &st, WNOHANG) == pid)) {
                if (pidfd >= 0)
                    waitpid(pid, &st, 0);
                break;
            }
        }
        if (pidfd >= 0)
            close(pidfd);
        /* every record the dead signer wrote is in the socket: take them
         * before the new one is made from the journal */
        journal_drain(&j, jp[0]);
        {
            char why[64];
            long long lived = now_ms() - started;
            if (restarts == 0 || lived >= STABLE_MS)
                delay = FIRST_DELAY_MS;
            else if ((delay *= 2) > MAX_DELAY_MS)
                delay = MAX_DELAY_MS;
            describe(st, why, sizeof(why));
            fp_log(FP_LOG_ERROR,
                   "signer process %d died (%s) after %.1f s; signatures answer 503 until "
                   "a new one runs, in %d ms (restart %u)",
                   (int)pid, why, lived / 1000.0, delay, restarts + 1);
        }
        if (wait_or_stop(ctl, delay))
            goto stop_nochild;
        for (int i = 0; i < n; i++) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
                for (int k = 0; k < i; k++) {
                    close(nfd[k]);
                    close(nfd[n + k]);
                }
                fp_log(FP_LOG_ERROR, "signer restart: socketpair: %s", strerror(errno));
                goto stop_nochild;
            }
            nfd[i] = sv[0];     /* network side */
            nfd[n + i] = sv[1]; /* signer side */
        }
        restarts++;
        started = now_ms();
        pid = spawn(nfd + n, nfd, n, &j, ctl, jp[0]);
        for (int i = 0; i < n; i++)
            close(nfd[n + i]);
        if (pid < 0) {
            fp_log(FP_LOG_ERROR, "signer restart: fork: %s", strerror(errno));
            for (int i = 0; i < n; i++)
                close(nfd[i]);
            goto stop_nochild;
        }
        if (send_channels(ctl, restarts, pid, nfd, n) != 0) {
            for (int i = 0; i < n; i++)
                close(nfd[i]);
            goto stop; /* the network side is gone */
        }
        for (int i = 0; i < n; i++)
            close(nfd[i]);
    }
stop:
    /* the network side closes its channels when it stops; the signer then
     * exits by itself (it outlives the drain) */
    close(ctl);
    waitpid(pid, NULL, 0);
stop_nochild:
    journal_free(&j);
    _exit(0);
}
