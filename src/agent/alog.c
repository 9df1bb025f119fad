/*
 * alog.c - the agent's log: one line per decision on stderr (journald
 * stores it under systemd), "TIME LEVEL EVENT details".  Text that came
 * from elsewhere (server messages, names in certificates, config keys)
 * is quoted and escaped with fpa_esc so it cannot forge a line.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "agent.h"

const char *fpa_esc(const char *s, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (size < 3) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[n++] = '"';
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;
        /* room for the worst case (4) plus closing quote and NUL */
        if (n + 6 > size) {
            buf[n++] = '.';
            break;
        }
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 15];
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

void fpa_log(fpa_level lvl, const char *event, const char *fmt, ...)
{
    static const char *const names[] = {"info", "warn", "error"};
    char ts[32], line[2048];
    struct timespec now;
    struct tm tm;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* the details are built from escaped parts; a stray control byte from
     * a bug here still must not split the line */
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '?';
    fprintf(stderr, "%s.%03ldZ %s %s %s\n", ts, now.tv_nsec / 1000000, names[lvl], event, line);
    fflush(stderr);
}
