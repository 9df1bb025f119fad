/*
 * config.c - the agent's configuration file: "key = value" lines, '#'
 * comment lines, nothing else.  Parsed once, strictly, from a table of
 * options (type, bounds, default); every error names the file, the line
 * and the key, so a device fleet's config template fails loudly at
 * `fleetpki-agent --check-config` rather than at 3 a.m. in the field.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

typedef enum { T_STR, T_PATH, T_SERVER, T_FPR, T_BOOL, T_FRACTION, T_DURATION, T_SECONDS, T_KEYTYPE } opt_type;

typedef struct {
    const char *key;
    opt_type type;
    size_t off;  /* field in fpa_config */
    size_t size; /* strings: buffer size */
    double min, max;
    const char *help;
} opt;

#define OFF(f) offsetof(fpa_config, f)
#define SZ(f) sizeof(((fpa_config *)0)->f)
static const opt OPTS[] = {
    {"server", T_SERVER, 0, 0, 0, 0, "https://HOST[:PORT] of the EST server"},
    {"label", T_STR, OFF(label), SZ(label), 0, 0, "EST label (RFC 7030 3.2.2)"},
    {"trust_anchor", T_PATH, OFF(trust_anchor), SZ(trust_anchor), 0, 0, "PEM file of the trust anchor"},
    {"bootstrap_fingerprint", T_FPR, 0, 0, 0, 0, "SHA-256 of the root (RFC 7030 4.1.1)"},
    {"cred_dir", T_PATH, OFF(cred_dir), SZ(cred_dir), 0, 0, "credential directory"},
    {"bootstrap_cert", T_PATH, OFF(bootstrap_cert), SZ(bootstrap_cert), 0, 0, "manufacturer certificate"},
    {"bootstrap_key", T_PATH, OFF(bootstrap_key), SZ(bootstrap_key), 0, 0, "manufacturer key"},
    {"bootstrap_token_file", T_PATH, OFF(bootstrap_token_file), SZ(bootstrap_token_file), 0, 0,
     "file holding ID:SECRET"},
    {"common_name", T_STR, OFF(common_name), SZ(common_name), 0, 0, "subject CN"},
    {"dns_name", T_STR, OFF(dns_name), SZ(dns_name), 0, 0, "subjectAltName dNSName"},
    {"serial_number", T_STR, OFF(serial_number), SZ(serial_number), 0, 0, "subject serialNumber"},
    {"key_type", T_KEYTYPE, OFF(key_type), 0, 0, 0, "auto|p256|p384|p521|ed25519|rsa2048|rsa3072"},
    {"use_csrattrs", T_BOOL, OFF(use_csrattrs), 0, 0, 0, "honour /csrattrs"},
    {"renew_at", T_FRACTION, OFF(renew_at), 0, 0, 1, "fraction of the lifetime"},
    {"rekey", T_BOOL, OFF(rekey), 0, 0, 0, "new key on renewal"},
    {"backoff_base", T_DURATION, OFF(backoff_base_ms), 0, 1, 86400000, "first retry ceiling"},
    {"backoff_cap", T_DURATION, OFF(backoff_cap_ms), 0, 1, 86400000, "largest retry ceiling"},
    {"check_interval", T_SECONDS, OFF(check_interval), 0, 1, 604800, "seconds between checks"},
    {"retry_after_max", T_SECONDS, OFF(retry_after_max), 0, 1, 604800, "largest Retry-After obeyed"},
    {"timeout", T_SECONDS, OFF(timeout), 0, 1, 3600, "network timeout, seconds"},
};
#define N_OPTS (sizeof(OPTS) / sizeof(OPTS[0]))

static int errf(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -1;
}

static void defaults(fpa_config *c)
{
    memset(c, 0, sizeof(*c));
    c->renew_at = 2.0 / 3.0;
    c->rekey = 1;
    c->use_csrattrs = 1;
    c->backoff_base_ms = 30 * 1000;
    c->backoff_cap_ms = 3600 * 1000;
    c->check_interval = 3600;
    c->retry_after_max = 86400;
    c->timeout = 30;
}

/* "https://HOST[:PORT]" with no path; HOST a name, IPv4, or [IPv6]. */
static const char *parse_server(const char *v, fpa_config *c)
{
    const char *h, *end, *colon = NULL;
    size_t hl;

    if (strncmp(v, "https://", 8) != 0)
        return "must start with https://";
    h = v + 8;
    if (*h == '[') {
        if ((end = strchr(h, ']')) == NULL)
            return "unterminated [IPv6] address";
        h++;
        hl = (size_t)(end - h);
        end++;
        if (*end == ':')
            colon = end;
        else if (*end != '\0')
            return "unexpected text after the address (no path allowed; use label)";
    } else {
        end = h + strcspn(h, ":/");
        hl = (size_t)(end - h);
        if (*end == ':')
            colon = end;
        else if (*end == '/')
            return "no path allowed (the EST path is fixed; use label for RFC 7030 3.2.2)";
    }
    if (hl == 0 || hl >= sizeof(c->host))
        return "empty or too long host";
    for (size_t i = 0; i < hl; i++)
        if (!isalnum((unsigned char)h[i]) && !strchr(".-:", h[i]))
            return "bad character in the host";
    memcpy(c->host, h, hl);
    c->host[hl] = '\0';
    c->port = 443;
    if (colon != NULL) {
        char *e;
        unsigned long p;
        errno = 0;
        p = strtoul(colon + 1, &e, 10);
        if (colon[1] == '\0' || !isdigit((unsigned char)colon[1]) || *e != '\0' || errno || p == 0 ||
            p > 65535)
            return "bad port (1-65535, no path allowed)";
        c->port = (unsigned)p;
    }
    return NULL;
}

static const char *parse_fpr(const char *v, fpa_config *c)
{
    size_t n = 0;
    for (const char *p = v; *p; p++) {
        int x;
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)*p))
            return "not hex (64 hex digits, colons allowed)";
        if (n == 64)
            return "longer than 32 bytes (SHA-256)";
        x = isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10);
        c->fingerprint[n / 2] = (unsigned char)(n % 2 ? c->fingerprint[n / 2] | x : x << 4);
        n++;
    }
    if (n != 64)
        return "shorter than 32 bytes (SHA-256)";
    c->has_fingerprint = 1;
    return NULL;
}

/* A duration: digits with an optional unit ms, s (default), m, h. */
static const char *parse_duration(const char *v, double *ms)
{
    char *e;
    double mul = 1000;
    unsigned long long n;

    if (!isdigit((unsigned char)v[0]))
        return "not a duration (e.g. 500ms, 30, 30s, 5m, 1h)";
    errno = 0;
    n = strtoull(v, &e, 10);
    if (errno)
        return "out of range";
    if (!strcmp(e, "ms"))
        mul = 1;
    else if (!strcmp(e, "m"))
        mul = 60000;
    else if (!strcmp(e, "h"))
        mul = 3600000;
    else if (*e != '\0' && strcmp(e, "s") != 0)
        return "unknown unit (ms, s, m, h)";
    *ms = (double)n * mul;
    return NULL;
}

static const char *parse_fraction(const char *v, double *out)
{
    char *e;
    double x;

    errno = 0;
    if (strchr(v, '/') != NULL) { /* "2/3" */
        unsigned long a, b;
        if (!isdigit((unsigned char)v[0]))
            return "not a fraction";
        a = strtoul(v, &e, 10);
        if (*e != '/' || !isdigit((unsigned char)e[1]))
            return "not a fraction (e.g. 2/3 or 0.75)";
        b = strtoul(e + 1, &e, 10);
        if (*e != '\0' || errno || b == 0)
            return "not a fraction (e.g. 2/3 or 0.75)";
        x = (double)a / (double)b;
    } else {
        if (!isdigit((unsigned char)v[0]) && v[0] != '.')
            return "not a number";
        x = strtod(v, &e);
        if (*e != '\0' || errno)
            return "not a number";
    }
    if (!(x > 0.0 && x < 1.0))
        return "must be above 0 and below 1 (a fraction of the lifetime)";
    *out = x;
    return NULL;
}

static const char *set_value(const opt *o, const char *v, fpa_config *c)
{
    char *base = (char *)c;

    switch (o->type) {
    case T_STR:
    case T_PATH:
        if (strlen(v) >= o->size)
            return "too long";
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return "control character";
        memcpy(base + o->off, v, strlen(v) + 1);
        return NULL;
    case T_SERVER:
        return parse_server(v, c);
    case T_FPR:
        return parse_fpr(v, c);
    case T_BOOL:
        if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on"))
            *(int *)(base + o->off) = 1;
        else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off"))
            *(int *)(base + o->off) = 0;
        else
            return "expected yes or no";
        return NULL;
    case T_FRACTION:
        return parse_fraction(v, (double *)(base + o->off));
    case T_DURATION: {
        double ms = 0;
        const char *m = parse_duration(v, &ms);
        if (m != NULL)
            return m;
        if (ms < o->min || ms > o->max)
            return "out of range (1ms to 24h)";
        *(unsigned *)(base + o->off) = (unsigned)ms;
        return NULL;
    }
    case T_SECONDS: {
        char *e;
        unsigned long n;
        errno = 0;
        n = strtoul(v, &e, 10);
        if (!isdigit((unsigned char)v[0]) || *e != '\0' || errno || n < o->min || n > o->max)
            return "expected whole seconds in range";
        *(unsigned *)(base + o->off) = (unsigned)n;
        return NULL;
    }
    case T_KEYTYPE: {
        static const char *const names[] = {"auto", "p256", "p384", "p521", "ed25519", "rsa2048", "rsa3072"};
        for (int i = 0; i < 7; i++)
            if (!strcmp(v, names[i])) {
                *(fp_device_key_type *)(base + o->off) = (fp_device_key_type)i;
                return NULL;
            }
        return "unknown key type (auto, p256, p384, p521, ed25519, rsa2048, rsa3072)";
    }
    }
    return "internal";
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* Whole-file rules: what must be there and what cannot go together. */
static int check(const char *name, const fpa_config *c, const int *seen, char *err, size_t errsz)
{
    int has_token = c->bootstrap_token_file[0] != '\0';
    int has_cert = c->bootstrap_cert[0] != '\0', has_key = c->bootstrap_key[0] != '\0';

    if (!seen[0])
        return errf(err, errsz, "%s: key 'server' is required", name);
    if (!seen[4])
        return errf(err, errsz, "%s: key 'cred_dir' is required", name);
    if (c->trust_anchor[0] == '\0' && !c->has_fingerprint)
        return errf(err, errsz, "%s: one of 'trust_anchor' or 'bootstrap_fingerprint' is required "
                                "(the server is never trusted blindly)", name);
    if (c->trust_anchor[0] != '\0' && c->has_fingerprint)
        return errf(err, errsz, "%s: 'trust_anchor' and 'bootstrap_fingerprint' exclude each other",
                    name);
    if (has_cert != has_key)
        return errf(err, errsz, "%s: 'bootstrap_cert' and 'bootstrap_key' go together", name);
    if (has_cert == has_token)
        return errf(err, errsz, "%s: exactly one bootstrap credential: 'bootstrap_cert' + "
                                "'bootstrap_key', or 'bootstrap_token_file'", name);
    if (c->common_name[0] == '\0')
        return errf(err, errsz, "%s: key 'common_name' is required (subject of the first enrollment)",
                    name);
    if (c->backoff_base_ms > c->backoff_cap_ms)
        return errf(err, errsz, "%s: 'backoff_base' (%u ms) exceeds 'backoff_cap' (%u ms)", name,
                    c->backoff_base_ms, c->backoff_cap_ms);
    return 0;
}

int fpa_config_parse(const char *name, const char *text, fpa_config *cfg, char *err, size_t errsz)
{
    int seen[N_OPTS] = {0};
    const char *p = text;
    unsigned line = 0;
    fpa_config c;

    defaults(&c);
    while (*p != '\0') {
        char buf[4096], *l, *eq, *k, *v;
        size_t n = strcspn(p, "\n");
        const opt *o = NULL;
        const char *m;

        line++;
        if (n >= sizeof(buf))
            return errf(err, errsz, "%s:%u: line too long", name, line);
        memcpy(buf, p, n);
        buf[n] = '\0';
        p += n + (p[n] == '\n');
        l = trim(buf);
        if (*l == '\0' || *l == '#')
            continue;
        if ((eq = strchr(l, '=')) == NULL)
            return errf(err, errsz, "%s:%u: expected 'key = value'", name, line);
        *eq = '\0';
        k = trim(l);
        v = trim(eq + 1);
        for (size_t i = 0; i < N_OPTS; i++)
            if (!strcmp(OPTS[i].key, k))
                o = &OPTS[i];
        if (o == NULL) {
            char esc[96];
            return errf(err, errsz, "%s:%u: unknown key %s", name, line, fpa_esc(k, esc, sizeof(esc)));
        }
        if (seen[o - OPTS])
            return errf(err, errsz, "%s:%u: key '%s' given twice (first on line %d)", name, line, o->key,
                        seen[o - OPTS]);
        seen[o - OPTS] = (int)line;
        if (*v == '\0')
            return errf(err, errsz, "%s:%u: key '%s': empty value", name, line, o->key);
        if ((m = set_value(o, v, &c)) != NULL)
            return errf(err, errsz, "%s:%u: key '%s': %s", name, line, o->key, m);
    }
    if (check(name, &c, seen, err, errsz) != 0)
        return -1;
    *cfg = c;
    return 0;
}

int fpa_config_load(const char *path, fpa_config *cfg, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    int rc = -1;

    if (f == NULL)
        return errf(err, errsz, "%s: %s", path, strerror(errno));
    text = malloc(65537);
    if (text == NULL) {
        fclose(f);
        return errf(err, errsz, "%s: out of memory", path);
    }
    len = fread(text, 1, 65537, f);
    if (ferror(f))
        errf(err, errsz, "%s: read error", path);
    else if (len > 65536)
        errf(err, errsz, "%s: larger than 64 KiB", path);
    else if (memchr(text, '\0', len) != NULL)
        errf(err, errsz, "%s: NUL byte in the file", path);
    else {
        text[len] = '\0';
        rc = fpa_config_parse(path, text, cfg, err, errsz);
    }
    fclose(f);
    free(text);
    return rc;
}
