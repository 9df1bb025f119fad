/*
 * api_audit.c - /projects/{project}/audit: the audit rows of a project,
 * oldest first, keyset pages (cursor: base64url of the last row id);
 * ?device=NAME: the device.* rows about that device.
 * The store walks the log in id order; rows before the cursor are
 * skipped (the log has no per-project index yet: O(log size) a page).
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

typedef struct apage {
    const char *project;
    const char *object; /* ?device=: rows about that device only, or NULL */
    int64_t after;
    int limit, n;
    json_t *items;
    int64_t last;
    bool more;
} apage;

static int add_row(void *arg, const fp_audit_row *r)
{
    apage *pg = arg;
    json_t *o;

    if (r->id <= pg->after || strcmp(r->project, pg->project) != 0 ||
        (pg->object != NULL && (strcmp(r->object, pg->object) != 0 || strncmp(r->action, "device.", 7) != 0)))
        return FP_ERR_OK;
    if (pg->n == pg->limit) {
        pg->more = true;
        return FP_ERR_STATE; /* stop: the page is full and there is more */
    }
    o = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)r->id, "ts",
                  (json_int_t)r->ts, "actor", r->actor, "action", r->action, "object", r->object,
                  "detail", r->detail, "project", r->project, "hash", r->hash);
    if (o == NULL || json_array_append_new(pg->items, o) != 0)
        return FP_ERR_NOMEM;
    pg->n++;
    pg->last = r->id;
    return FP_ERR_OK;
}

static bool id_ok(const char *c)
{
    size_t n = strlen(c);
    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)c[i]))
            return false;
    return true;
}

int api_audit_list(fp_http_req *req)
{
    static const char *const allowed[] = {"limit", "cursor", "device", NULL};
    char cur[32], *device = NULL;
    apage pg;
    fp_error e = {0};
    int rc;

    memset(&pg, 0, sizeof(pg));
    if ((pg.project = api_project(req)) == NULL || !api_query_allowed(req, allowed) ||
        !api_limit(req, &pg.limit) || !api_cursor(req, cur, sizeof(cur), id_ok))
        return FP_HTTP_DONE;
    pg.after = cur[0] ? strtoll(cur, NULL, 10) : 0;
    device = api_query(req, "device");
    pg.object = device;
    if ((pg.items = json_array()) == NULL) {
        free(device);
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        return FP_HTTP_DONE;
    }
    rc = fp_store_audit_iter(API_STORE(req), add_row, &pg, &e);
    free(device);
    if (rc != FP_ERR_OK && !(rc == FP_ERR_STATE && pg.more)) {
        json_decref(pg.items);
        if (e.code == FP_ERR_OK)
            fp_err_set(&e, rc, "reading the audit log");
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    {
        json_t *out = json_pack("{s:o}", "items", pg.items);
        char num[24], *next = NULL;
        snprintf(num, sizeof(num), "%" PRId64, pg.last);
        if (pg.more)
            next = api_cursor_encode(num);
        json_object_set_new(out, "next_cursor", next ? json_string(next) : json_null());
        free(next);
        api_json(req, 200, out);
    }
    return FP_HTTP_DONE;
}
