/*
 * storage_posix.c - the credential store's storage interface over a POSIX
 * directory: open/read/write/fsync/close, rename(2), unlink(2), and fsync
 * of the directory to make names durable.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetpki/device.h"

struct fp_storage_file {
    int fd;
};

typedef struct {
    int dirfd;
} posix_ctx;

static int valid(const char *name)
{
    /* one relative name in the directory, nothing else */
    return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

static int p_open(void *ctx, const char *name, int write, fp_storage_file **f, int *missing)
{
    posix_ctx *c = ctx;
    int fd;

    *f = NULL;
    if (missing)
        *missing = 0;
    if (!valid(name))
        return -1;
    fd = openat(c->dirfd, name,
                write ? O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC : O_RDONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == ENOENT && missing)
            *missing = 1;
        return -1;
    }
    if ((*f = malloc(sizeof(**f))) == NULL) {
        close(fd);
        return -1;
    }
    (*f)->fd = fd;
    return 0;
}

static int p_read(void *ctx, fp_storage_file *f, void *buf, size_t len, size_t *got)
{
    ssize_t n;
    do
        n = read(f->fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    *got = (size_t)n;
    return 0;
}

static int p_write(void *ctx, fp_storage_file *f, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(f->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int p_sync(void *ctx, fp_storage_file *f)
{
    posix_ctx *c = ctx;
    return fsync(f ? f->fd : c->dirfd) == 0 ? 0 : -1;
}

static int p_close(void *ctx, fp_storage_file *f)
{
    int r = close(f->fd);
    free(f);
    return r == 0 ? 0 : -1;
}

static int p_rename(void *ctx, const char *from, const char *to)
{
    posix_ctx *c = ctx;
    if (!valid(from) || !valid(to))
        return -1;
    return renameat(c->dirfd, from, c->dirfd, to) == 0 ? 0 : -1;
}

static int p_unlink(void *ctx, const char *name)
{
    posix_ctx *c = ctx;
    if (!valid(name))
        return -1;
    return unlinkat(c->dirfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
}

int fp_storage_posix_open(const char *dir, fp_storage *out)
{
    posix_ctx *c;

    if (dir == NULL || out == NULL)
        return FP_DEVICE_ERR_ARG;
    memset(out, 0, sizeof(*out));
    if ((c = malloc(sizeof(*c))) == NULL)
        return FP_DEVICE_ERR_NOMEM;
    if ((c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        free(c);
        return FP_DEVICE_ERR_IO;
    }
    out->ctx = c;
    out->open = p_open;
    out->read = p_read;
    out->write = p_write;
    out->sync = p_sync;
    out->close = p_close;
    out->rename = p_rename;
    out->unlink = p_unlink;
    return FP_DEVICE_OK;
}

void fp_storage_posix_close(fp_storage *s)
{
    posix_ctx *c;
    if (s == NULL || (c = s->ctx) == NULL)
        return;
    close(c->dirfd);
    free(c);
    s->ctx = NULL;
}
