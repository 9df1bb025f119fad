/* util.c - files, time, hex, logging. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fp_file_read(const char *path, size_t max, unsigned char **out,
                 size_t *len, fp_error *err)
{
    int rc = FP_ERR_OK;
    int fd = -1;
    unsigned char *buf = NULL;
    struct stat st;
    size_t got = 0;

    *out = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = fp_err_set(err, errno == ENOENT ? FP_ERR_NOT_FOUND : FP_ERR_IO,
                        "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISREG(st.st_mode) && (size_t)st.st_size > max) {
        rc = fp_err_set(err, FP_ERR_TOO_LARGE, "%s: larger than %zu bytes",
                        path, max);
        goto out;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, max + 1 - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = fp_err_set(err, FP_ERR_IO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > max) {
            rc = fp_err_set(err, FP_ERR_TOO_LARGE,
                            "%s: larger than %zu bytes", path, max);
            goto out;
        }
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
out:
    if (buf != NULL) {
        memset(buf, 0, got);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    int fd, rc = -1;

    if (copy == NULL)
        return -1;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(copy);
    return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fp_file_create(const char *path, const void *data, size_t len,
                   unsigned mode, fp_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return fp_err_set(err, errno == EEXIST ? FP_ERR_EXISTS : FP_ERR_IO,
                          "%s: %s", path, strerror(errno));
    /* The umask may have narrowed the mode; never widen, but make sure a
     * permissive umask cannot loosen a key file either. */
    if (fchmod(fd, (mode_t)mode) != 0 || write_all(fd, data, len) != 0 ||
        fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return fp_err_set(err, FP_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (close(fd) != 0 || fsync_dir_of(path) != 0)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", path, strerror(errno));
    return FP_ERR_OK;
}

int fp_file_replace(const char *path, const void *data, size_t len,
                    unsigned mode, fp_error *err)
{
    char tmp[4096];
    int rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
        (int)sizeof(tmp))
        return fp_err_set(err, FP_ERR_TOO_LARGE, "path too long");
    unlink(tmp);
    rc = fp_file_create(tmp, data, len, mode, err);
    if (rc != FP_ERR_OK)
        return rc;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return fp_err_set(err, FP_ERR_IO, "rename %s: %s", path, strerror(e));
    }
    if (fsync_dir_of(path) != 0)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", path, strerror(errno));
    return FP_ERR_OK;
}

bool fp_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int fp_path_join(char *buf, size_t size, const char *dir, const char *name,
                 fp_error *err)
{
    int n;
    if (name[0] == '/' || dir == NULL || dir[0] == '\0')
        n = snprintf(buf, size, "%s", name);
    else
        n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "path too long: %s/%s",
                          dir ? dir : "", name);
    return FP_ERR_OK;
}

int64_t fp_now(void)
{
    return (int64_t)time(NULL);
}

void fp_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

void fp_test_crash_point(const char *point)
{
    const char *want = getenv("FLEETPKI_TEST_CRASH");
    if (want != NULL && strcmp(want, point) == 0)
        raise(SIGKILL);
}

static int log_level = FP_LOG_INFO;

void fp_log_set_level(int level)
{
    log_level = level;
}

void fp_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[2048];
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    if (level < log_level)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof(line), "%s.%03ldZ %s ", ts,
                 now.tv_nsec / 1000000L, names[level & 3]);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* one write per line so concurrent threads never interleave */
    fprintf(stderr, "%s\n", line);
}
