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

static bool log_byte_plain(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

char *fp_log_escape_n(char *dst, size_t size, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, total = 0, limit;

    if (size == 0)
        return dst;
    if (src == NULL) {
        snprintf(dst, size, "-");
        return dst;
    }
    for (size_t i = 0; i < len; i++)
        total += log_byte_plain((unsigned char)src[i]) ? 1 : 4;
    /* everything fits, or the output keeps room for "..." after a cut */
    limit = total < size ? size - 1 : (size > 3 ? size - 4 : 0);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        size_t need = log_byte_plain(c) ? 1 : 4;
        if (o + need > limit) {
            if (o + 3 < size) {
                memcpy(dst + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (need == 1) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return dst;
}

char *fp_log_escape(char *dst, size_t size, const char *src)
{
    return fp_log_escape_n(dst, size, src, src ? strlen(src) : 0);
}

void fp_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const char hex[] = "0123456789abcdef";
    char line[2048], out[2048 + 64];
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    size_t o = 0;
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
    /* Backstop against log injection: no control byte of any argument
     * reaches the log (a CR/LF would start a forged line, ESC drives
     * terminals).  Lines longer than out are cut. */
    for (const unsigned char *p = (const unsigned char *)line; *p && o + 5 < sizeof(out); p++) {
        if (*p < 0x20 || *p == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o++] = '\n';
    /* one write per line so concurrent threads never interleave */
    (void)!write(STDERR_FILENO, out, o);
}
