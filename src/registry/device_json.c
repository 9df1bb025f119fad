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

/* Room for n more bytes and the terminating NUL; false (and oom set,
 * nothing written from then on) when the buffer cannot grow. */
static bool jbuf_room(fp_jbuf *b, size_t n)
{
    size_t cap;
    char *q;

    if (b->oom)
        return false;
    if (b->n + n + 1 <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1)
        cap *= 2;
    if ((q = realloc(b->p, cap)) == NULL) {
        b->oom = true;
        return false;
    }
    b->p = q;
    b->cap = cap;
    return true;
}

void fp_jbuf_put(fp_jbuf *b, const char *s, size_t n)
{
    if (!jbuf_room(b, n))
        return;
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

/* The most a string of n bytes takes as JSON: each byte escaped as \u00XX
 * or replaced by \ufffd (6 bytes), and the quotes. */
#define JSON_STR_MAX(n) (6 * (n) + 2)

/* s (n bytes) as a JSON string at o, which has room for JSON_STR_MAX(n);
 * the end of what was written.  A run of bytes that need nothing (the
 * common case: names are printable ASCII) is copied in one go. */
static char *str_at(char *o, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str, *end = s + n, *run = s;
    size_t u;

    *o++ = '"';
    while (s < end) {
        if (*s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\') {
            s++;
            continue;
        }
        if (*s >= 0x80 && (u = utf8_len(s)) > 0) {
            s += u;
            continue;
        }
        memcpy(o, run, (size_t)(s - run));
        o += s - run;
        if (*s >= 0x80) {
            memcpy(o, "\\ufffd", 6);
            o += 6;
        } else if (*s < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[*s >> 4];
            o[5] = hex[*s & 0xf];
            o += 6;
        } else {
            *o++ = '\\';
            *o++ = (char)*s;
        }
        run = ++s;
    }
    memcpy(o, run, (size_t)(s - run));
    o += s - run;
    *o++ = '"';
    return o;
}

void fp_jbuf_str(fp_jbuf *b, const char *str)
{
    size_t n = strlen(str);

    if (!jbuf_room(b, JSON_STR_MAX(n)))
        return;
    b->n = (size_t)(str_at(b->p + b->n, str, n) - b->p);
    b->p[b->n] = '\0';
}

/* The most a decimal int64_t takes: "-9223372036854775808". */
#define JSON_INT_MAX 20

/* n in decimal at o (room for JSON_INT_MAX); the end of what was written
 * (snprintf was a fifth of a page's CPU).  Two digits a division: a page
 * holds 200 ten-digit times. */
static char *int_at(char *o, int64_t n)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    char d[JSON_INT_MAX];
    size_t i = sizeof(d);
    uint64_t u = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;

    while (u >= 100) {
        size_t r = (size_t)(u % 100) * 2;
        u /= 100;
        d[--i] = pairs[r + 1];
        d[--i] = pairs[r];
    }
    if (u >= 10) {
        d[--i] = pairs[u * 2 + 1];
        d[--i] = pairs[u * 2];
    } else {
        d[--i] = (char)('0' + u);
    }
    if (n < 0)
        d[--i] = '-';
    memcpy(o, d + i, sizeof(d) - i);
    return o + (sizeof(d) - i);
}

/* A literal's bytes at o; the end of what was written. */
#define LIT_AT(o, lit) (memcpy((o), (lit), sizeof(lit) - 1), (o) + sizeof(lit) - 1)

/* One reservation for the whole device, then plain stores: the member
 * names and punctuation went through fp_jbuf_put one piece at a time,
 * each checking the room and terminating the text (fifteen calls a device,
 * the most of a device's share of a page's CPU after SQLite). */
void fp_device_json_text(fp_jbuf *b, const fp_device_rec *r)
{
    const char *sn = fp_dev_state_name(r->state);
    const char *tags = r->tags && r->tags[0] ? r->tags : "{}";
    size_t pl = strlen(r->project), nl = strlen(r->name);
    size_t sl, tl = strlen(tags);
    char *o;

    sn = sn ? sn : "?";
    sl = strlen(sn);
    if (!jbuf_room(b, sizeof("{\"project\":,\"name\":,\"state\":,\"first_seen\":,"
                             "\"last_seen\":,\"tags\":}") +
                          JSON_STR_MAX(pl) + JSON_STR_MAX(nl) + JSON_STR_MAX(sl) +
                          2 * JSON_INT_MAX + tl))
        return;
    o = b->p + b->n;
    o = LIT_AT(o, "{\"project\":");
    o = str_at(o, r->project, pl);
    o = LIT_AT(o, ",\"name\":");
    o = str_at(o, r->name, nl);
    o = LIT_AT(o, ",\"state\":");
    o = str_at(o, sn, sl);
    o = LIT_AT(o, ",\"first_seen\":");
    o = int_at(o, r->first_seen);
    o = LIT_AT(o, ",\"last_seen\":");
    o = int_at(o, r->last_seen);
    o = LIT_AT(o, ",\"tags\":");
    memcpy(o, tags, tl);
    o += tl;
    *o++ = '}';
    b->n = (size_t)(o - b->p);
    b->p[b->n] = '\0';
}
