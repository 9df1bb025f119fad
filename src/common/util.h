/* util.h - small helpers shared by every layer: files, time, hex. */
#ifndef FP_UTIL_H
#define FP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Read all of path into a fresh NUL-terminated buffer (*out, *len excludes
 * the NUL).  Refuses files larger than max with FP_ERR_TOO_LARGE.  The
 * caller frees *out with free() (or OPENSSL_clear_free for secrets). */
int fp_file_read(const char *path, size_t max, unsigned char **out,
                 size_t *len, fp_error *err);

/* Create path exclusively (O_EXCL) with the given mode and write data,
 * fsync the file and its directory.  Fails with FP_ERR_EXISTS if present. */
int fp_file_create(const char *path, const void *data, size_t len,
                   unsigned mode, fp_error *err);

/* Replace path atomically: write path.tmp (mode), fsync, rename, fsync dir. */
int fp_file_replace(const char *path, const void *data, size_t len,
                    unsigned mode, fp_error *err);

bool fp_file_exists(const char *path);

/* Join dir and name into buf; FP_ERR_TOO_LARGE if it does not fit. */
int fp_path_join(char *buf, size_t size, const char *dir, const char *name,
                 fp_error *err);

/* Seconds since the epoch (UTC). */
int64_t fp_now(void);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void fp_hex(const unsigned char *in, size_t len, char *out);

/* Crash-injection hook for consistency tests: when the environment variable
 * FLEETPKI_TEST_CRASH equals point, the process dies at once with SIGKILL,
 * as a power cut or OOM kill would.  A no-op otherwise. */
void fp_test_crash_point(const char *point);

/* Logging: one line per event to stderr, "ts level msg".
 *
 * Log injection (issue 8): a line is written with every byte below 0x20
 * and 0x7f replaced by "\xNN", so no argument can end a line early or
 * drive a terminal.  That alone still lets a client-supplied value carry
 * " status=200 identity=..." into a key=value line: pass every field that
 * comes from a client (path, header, subject, token id) through
 * fp_log_escape first, which also escapes space, '"', '\\', '=' and every
 * byte >= 0x80. */
enum { FP_LOG_DEBUG, FP_LOG_INFO, FP_LOG_WARN, FP_LOG_ERROR };
void fp_log_set_level(int level);
void fp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Escape src for a log field into dst (size > 0, always NUL-terminated):
 * printable ASCII other than space, '"', '\\' and '=' is copied; every
 * other byte becomes "\xNN".  Output that does not fit is cut at a whole
 * escape and ends in "..." so a cut is visible.  NULL src gives "-".
 * Returns dst, so it can be used inline as a printf argument. */
char *fp_log_escape(char *dst, size_t size, const char *src);
/* The same for len bytes that may hold NULs. */
char *fp_log_escape_n(char *dst, size_t size, const char *src, size_t len);
/* Size of a dst that holds any escaping of n input bytes without a cut. */
#define FP_LOG_ESCAPED_MAX(n) ((n) * 4 + 1)

#endif
