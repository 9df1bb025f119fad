/* detail.c - audit details as JSON; see detail.h. */
#include "detail.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>

#include <jansson.h>

char *fp_audit_detail(const char *key, ...)
{
    json_t *o = json_object();
    char *s = NULL;
    va_list ap;
    bool ok = o != NULL;

    va_start(ap, key);
    for (const char *k = key; k != NULL && ok; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        /* json_string refuses invalid UTF-8: keep the row, mark the value */
        json_t *js = v != NULL ? json_string(v) : NULL;
        if (v != NULL && js == NULL)
            js = json_string("(invalid UTF-8)");
        if (v != NULL)
            ok = json_object_set_new(o, k, js) == 0;
    }
    va_end(ap);
    if (ok)
        s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}
