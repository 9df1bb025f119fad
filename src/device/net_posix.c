/*
 * net_posix.c - TCP connect with a timeout over BSD sockets, shared by the
 * TLS backends (an MCU port replaces this file with its network stack's).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "dev_int.h"

int fpd_tcp_connect(const char *host, unsigned port, int timeout_ms, fpd_errbuf *e)
{
    struct addrinfo hints = {0}, *res = NULL, *ai;
    char svc[8];
    int fd = -1, rc;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

    hints.ai_socktype = SOCK_STREAM;
    snprintf(svc, sizeof(svc), "%u", port);
    if ((rc = getaddrinfo(host, svc, &hints, &res)) != 0) {
        fpd_err(e, FP_DEVICE_ERR_IO, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        struct pollfd pfd;
        int soerr = 0, fl;
        socklen_t sl = sizeof(soerr);

        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0)
            continue;
        /* non-blocking connect so the timeout applies to it too */
        fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            rc = poll(&pfd, 1, timeout_ms) == 1 &&
                         getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0
                     ? 0
                     : -1;
            if (soerr)
                errno = soerr;
            else if (rc != 0)
                errno = ETIMEDOUT;
        }
        if (rc == 0) {
            fcntl(fd, F_SETFL, fl);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            break;
        }
        rc = errno;
        close(fd);
        fd = -1;
        errno = rc;
    }
    if (fd < 0)
        fpd_err(e, FP_DEVICE_ERR_IO, "cannot connect to %s:%u: %s", host, port, strerror(errno));
    freeaddrinfo(res);
    return fd;
}
