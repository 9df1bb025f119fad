/* ini.h - a bounded tokenizer for fleetpki.conf.
 *
 * Format: '#' or ';' comments, "[section]" or "[section argument]" headers,
 * "key = value" lines.  Values are trimmed; no quoting or escapes, so a
 * value is exactly what follows '=' on its line.  Lines are limited to
 * FP_INI_LINE_MAX bytes and the tokenizer never allocates.
 */
#ifndef FP_INI_H
#define FP_INI_H

#include <stddef.h>

#include "err.h"

#define FP_INI_LINE_MAX 1024

/* Called once per key; section/arg are "" outside a section or without an
 * argument.  Return FP_ERR_OK to continue or an error (with err filled) to
 * stop parsing. */
typedef int (*fp_ini_cb)(void *ctx, const char *section, const char *arg,
                         const char *key, const char *value, int line,
                         fp_error *err);
/* Called on every section header (so empty sections are seen too). */
typedef int (*fp_ini_section_cb)(void *ctx, const char *section,
                                 const char *arg, int line, fp_error *err);

int fp_ini_parse(const char *text, size_t len, fp_ini_section_cb on_section,
                 fp_ini_cb on_key, void *ctx, fp_error *err);

#endif
