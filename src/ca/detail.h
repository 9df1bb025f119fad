/*
 * detail.h - audit row details, built one way: a flat JSON object of
 * string values, keys sorted, so every detail is parseable and escaping is
 * jansson's business, never a format string's.
 */
#ifndef FP_DETAIL_H
#define FP_DETAIL_H

/* fp_audit_detail("profile", p, "via", v, NULL): pairs of key and value,
 * ended by a NULL key; a pair whose value is NULL is left out.  Returns a
 * malloc'd string (free()) or NULL when out of memory. */
char *fp_audit_detail(const char *key, ...);

#endif
