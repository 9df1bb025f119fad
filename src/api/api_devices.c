/*
 * api_devices.c - /projects/{project}/devices: the device registry
 * (src/registry/registry.h, the same calls `fleetpki device ...` makes):
 * list with keyset pages and filters, get, suspend, resume, decommission,
 * tags, a device's certificates.
 *
 * Pages are in name order; the cursor is base64url of the last name.  A
 * name holding '/' cannot be addressed in a path (RFC 3986: %2F inside a
 * segment is refused by the router); such devices are listed only.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../registry/registry.h"
#include "api_int.h"

static json_t *device_json(const fp_device_rec *r)
{
    const char *sn = fp_dev_state_name(r->state);
    json_t *tags = json_loads(r->tags ? r->tags : "{}", 0, NULL), *o;

    if (tags == NULL || !json_is_object(tags)) {
        json_decref(tags);
        tags = json_object();
    }
    o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "project", r->project, "name", r->name,
                  "state", sn ? sn : "unknown", "first_seen", (json_int_t)r->first_seen,
                  "last_seen", (json_int_t)r->last_seen, "tags", tags);
    return o;
}

/* A cursor is a name we returned: 1..255 bytes, no control byte. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= FP_DEVICE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

typedef struct dpage {
    json_t *items;
    int n;
    char last[FP_DEVICE_NAME_MAX];
} dpage;

static int dpage_add(void *arg, const fp_device_rec *r)
{
    dpage *pg = arg;
    json_t *o = device_json(r);

    if (o == NULL || json_array_append_new(pg->items, o) != 0)
        return FP_ERR_NOMEM;
    pg->n++;
    snprintf(pg->last, sizeof(pg->last), "%s", r->name);
    return FP_ERR_OK;
}

int api_devices_list(fp_http_req *req)
{
    static const char *const allowed[] = {"state", "tag", "name_prefix", "limit", "cursor", NULL};
    char cur[FP_DEVICE_NAME_MAX], *state = NULL, *tag = NULL, *prefix = NULL, *eq;
    fp_device_filter f;
    dpage pg;
    fp_error e = {0};
    int rc, limit;

    memset(&f, 0, sizeof(f));
    memset(&pg, 0, sizeof(pg));
    if ((f.project = api_project(req)) == NULL || !api_query_allowed(req, allowed) ||
        !api_limit(req, &limit) || !api_cursor(req, cur, sizeof(cur), name_ok))
        return FP_HTTP_DONE;
    f.state = -1;
    f.after = cur[0] ? cur : NULL;
    if ((state = api_query(req, "state")) != NULL &&
        (f.state = fp_dev_state_from_name(state)) < 0) {
        api_fail_code(req, FP_ERR_ARG, "state must be active, suspended or decommissioned");
        goto out;
    }
    /* tag=KEY (any value) or tag=KEY=VALUE */
    if ((tag = api_query(req, "tag")) != NULL) {
        if (tag[0] == '\0' || tag[0] == '=') {
            api_fail_code(req, FP_ERR_ARG, "tag must be KEY or KEY=VALUE");
            goto out;
        }
        f.tag_key = tag;
        if ((eq = strchr(tag, '=')) != NULL) {
            *eq = '\0';
            f.tag_value = eq + 1;
        }
    }
    if ((prefix = api_query(req, "name_prefix")) != NULL)
        f.name_prefix = prefix;
    /* one more than the page, to know whether there is a next one */
    f.limit = limit < 1000 ? limit + 1 : 1000;
    if ((pg.items = json_array()) == NULL) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = fp_registry_device_list(API_STORE(req), &f, dpage_add, &pg, &e)) != FP_ERR_OK) {
        json_decref(pg.items);
        if (e.code == FP_ERR_OK)
            fp_err_set(&e, rc, "listing devices");
        api_fail(req, &e);
        goto out;
    }
    {
        bool more = pg.n > limit;
        json_t *out;
        char *next = NULL;
        if (more) {
            json_array_remove(pg.items, (size_t)limit);
            snprintf(pg.last, sizeof(pg.last), "%s",
                     json_string_value(json_object_get(json_array_get(pg.items, (size_t)limit - 1),
                                                       "name")));
            next = api_cursor_encode(pg.last);
        } else if (limit == 1000 && pg.n == 1000) {
            /* a full page of the maximum size: there may be more */
            next = api_cursor_encode(pg.last);
        }
        out = json_pack("{s:o}", "items", pg.items);
        json_object_set_new(out, "next_cursor", next ? json_string(next) : json_null());
        free(next);
        api_json(req, 200, out);
    }
out:
    free(state);
    free(tag);
    free(prefix);
    return FP_HTTP_DONE;
}

int api_device_get(fp_http_req *req)
{
    /* the parameter first: api_project may answer, and req is gone then */
    const char *name = fp_http_param(req, "device"), *p = api_project(req);
    fp_device_rec r;
    fp_error e = {0};

    if (p == NULL)
        return FP_HTTP_DONE;
    memset(&r, 0, sizeof(r));
    if (fp_registry_device_get(API_STORE(req), p, name, &r, &e) != FP_ERR_OK) {
        fp_device_rec_clear(&r);
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    api_json(req, 200, device_json(&r));
    fp_device_rec_clear(&r);
    return FP_HTTP_DONE;
}

typedef int (*lifecycle_fn)(fp_store *, const char *, const char *, const char *, fp_error *);

static int lifecycle(fp_http_req *req, lifecycle_fn fn)
{
    const char *p, *name = fp_http_param(req, "device");
    fp_error e = {0};

    if ((p = api_project(req)) == NULL || !api_may_write(req))
        return FP_HTTP_DONE;
    if (fn(API_STORE(req), p, name, API_WHO(req)->actor, &e) != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    return api_device_get(req);
}

int api_device_suspend(fp_http_req *req)
{
    return lifecycle(req, fp_registry_suspend);
}

int api_device_resume(fp_http_req *req)
{
    return lifecycle(req, fp_registry_resume);
}

int api_device_decommission(fp_http_req *req)
{
    return lifecycle(req, fp_registry_decommission);
}

int api_device_tag_put(fp_http_req *req)
{
    static const api_field fields[] = {{"value", JSON_STRING, true}, {NULL, 0, false}};
    const char *p, *name = fp_http_param(req, "device"), *key = fp_http_param(req, "key");
    json_t *j;
    fp_error e = {0};
    int rc;

    if ((p = api_project(req)) == NULL || !api_may_write(req) || (j = api_body(req, fields)) == NULL)
        return FP_HTTP_DONE;
    rc = fp_registry_tag(API_STORE(req), p, name, key,
                         json_string_value(json_object_get(j, "value")), API_WHO(req)->actor, &e);
    json_decref(j);
    if (rc != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    return api_device_get(req);
}

int api_device_tag_delete(fp_http_req *req)
{
    const char *p, *name = fp_http_param(req, "device"), *key = fp_http_param(req, "key");
    fp_error e = {0};

    if ((p = api_project(req)) == NULL || !api_may_write(req))
        return FP_HTTP_DONE;
    if (fp_registry_tag(API_STORE(req), p, name, key, NULL, API_WHO(req)->actor, &e) != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    return api_device_get(req);
}

static int add_cert(void *arg, const fp_cert_rec *r)
{
    json_t *o = api_cert_json(r);
    return o != NULL && json_array_append_new(arg, o) == 0 ? FP_ERR_OK : FP_ERR_NOMEM;
}

int api_device_certs(fp_http_req *req)
{
    const char *name = fp_http_param(req, "device"), *p = api_project(req);
    json_t *arr;
    fp_error e = {0};
    int rc;

    if (p == NULL)
        return FP_HTTP_DONE;
    if ((arr = json_array()) == NULL) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        return FP_HTTP_DONE;
    }
    rc = fp_registry_device_certs(API_STORE(req), p, name, add_cert, arr, &e);
    api_items(req, arr, rc, &e, "listing the device's certificates");
    return FP_HTTP_DONE;
}
