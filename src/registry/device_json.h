/* device_json.h - JSON views of registry records. */
#ifndef FP_DEVICE_JSON_H
#define FP_DEVICE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "registry.h"

/* New reference, or NULL when out of memory. */
json_t *fp_device_json(const fp_device_rec *r);
/* A certificate of a device: {"serial","ca","profile","subject",
 * "issued_by_us","not_before","not_after","status"}. */
json_t *fp_device_cert_json(const fp_cert_rec *c);

/* The same device view written as text into a growing buffer: what the
 * admin API's device pages send (building and dumping a jansson tree per
 * device, and parsing the store's tags text into it, was half of a page's
 * CPU at 1,000,000 devices).  A buffer starts zeroed; oom is set (and
 * nothing more is written) when an allocation fails; free p. */
typedef struct fp_jbuf {
    char *p;
    size_t n, cap;
    bool oom;
} fp_jbuf;
void fp_jbuf_put(fp_jbuf *b, const char *s, size_t n);
void fp_jbuf_puts(fp_jbuf *b, const char *s);
/* s as a JSON string (RFC 8259 7): quote, backslash and control bytes
 * escaped, valid UTF-8 as it is, a byte that is not part of valid UTF-8
 * as U+FFFD (RFC 8259 8.1: the text must be UTF-8). */
void fp_jbuf_str(fp_jbuf *b, const char *s);
/* {"project","name","state","first_seen","last_seen","tags"}, the members
 * of fp_device_json in the same order; r->tags is the store's JSON object
 * text, copied as it is. */
void fp_device_json_text(fp_jbuf *b, const fp_device_rec *r);

#endif
