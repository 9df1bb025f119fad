/*
 * device_json.c - the one JSON view of a device (CLI --json, the device
 * API; the admin API may use it too):
 *   {"project", "name", "state", "first_seen", "last_seen", "tags": {...}}
 * Times are Unix seconds; last_seen may lag by the flush interval.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_json.h"

json_t *fp_device_json(const fp_device_rec *r)
{
    json_t *tags = json_loads(r->tags ? r->tags : "{}", 0, NULL);

    if (tags == NULL || !json_is_object(tags)) {
        json_decref(tags);
        tags = json_object();
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "project", r->project, "name", r->name,
                     "state", fp_dev_state_name(r->state) ? fp_dev_state_name(r->state) : "?",
                     "first_seen", (json_int_t)r->first_seen, "last_seen",
                     (json_int_t)r->last_seen, "tags", tags);
}

json_t *fp_device_cert_json(const fp_cert_rec *c)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:s}", "serial", c->serial, "ca",
                     c->ca_id, "profile", c->profile, "subject", c->subject ? c->subject : "",
                     "issued_by_us", c->ca_id[0] != '\0', "not_before", (json_int_t)c->not_before,
                     "not_after", (json_int_t)c->not_after, "status",
                     c->status == FP_CERT_REVOKED ? "revoked" : "valid");
}

void fp_jbuf_put(fp_jbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *q;
        while (cap < b->n + n + 1)
            cap *= 2;
        if ((q = realloc(b->p, cap)) == NULL) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void fp_jbuf_puts(fp_jbuf *b, const char *s)
{
    fp_jbuf_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (RFC 3629 4: no overlong forms,
 * no surrogates, nothing above U+10FFFF), 0 if there is none. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min, cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void fp_jbuf_str(fp_jbuf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str, *run = s;

    fp_jbuf_put(b, "\"", 1);
    while (*s) {
        char esc[8];
        size_t n;
        if (*s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\') {
            s++;
            continue;
        }
        if (*s >= 0x80 && (n = utf8_len(s)) > 0) {
            s += n;
            continue;
        }
        fp_jbuf_put(b, (const char *)run, (size_t)(s - run));
        if (*s >= 0x80) {
            fp_jbuf_puts(b, "\\ufffd");
        } else if (*s < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *s);
            fp_jbuf_puts(b, esc);
        } else {
            esc[0] = '\\', esc[1] = (char)*s;
            fp_jbuf_put(b, esc, 2);
        }
        run = ++s;
    }
    fp_jbuf_put(b, (const char *)run, (size_t)(s - run));
    fp_jbuf_put(b, "\"", 1);
}

/* n in decimal (snprintf was a fifth of a page's CPU). */
static void put_int(fp_jbuf *b, int64_t n)
{
    char d[24];
    size_t i = sizeof(d);
    uint64_t u = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;

    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (n < 0)
        d[--i] = '-';
    fp_jbuf_put(b, d + i, sizeof(d) - i);
}

void fp_device_json_text(fp_jbuf *b, const fp_device_rec *r)
{
    const char *sn = fp_dev_state_name(r->state);

    fp_jbuf_puts(b, "{\"project\":");
    fp_jbuf_str(b, r->project);
    fp_jbuf_puts(b, ",\"name\":");
    fp_jbuf_str(b, r->name);
    fp_jbuf_puts(b, ",\"state\":");
    fp_jbuf_str(b, sn ? sn : "?");
    fp_jbuf_puts(b, ",\"first_seen\":");
    put_int(b, r->first_seen);
    fp_jbuf_puts(b, ",\"last_seen\":");
    put_int(b, r->last_seen);
    fp_jbuf_puts(b, ",\"tags\":");
    fp_jbuf_puts(b, r->tags && r->tags[0] ? r->tags : "{}");
    fp_jbuf_put(b, "}", 1);
}
