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

#include "../registry/device_json.h"
#include "../registry/registry.h"
#include "api_int.h"

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

/* A page is written as text as the store hands devices over
 * (fp_device_json_text): {"items":[...],"next_cursor":...}. */
typedef struct dpage {
    fp_jbuf out;
    int n, limit;
    bool more;
    char last[FP_DEVICE_NAME_MAX];
} dpage;

static int dpage_add(void *arg, const fp_device_rec *r)
{
    dpage *pg = arg;

    /* the store was asked for one more than the page: its presence says
     * there is a next page, and it is not sent */
    if (pg->n == pg->limit) {
        pg->more = true;
        return 1;
    }
    if (pg->n > 0)
        fp_jbuf_put(&pg->out, ",", 1);
    fp_device_json_text(&pg->out, r);
    pg->n++;
    memcpy(pg->last, r->name, strnlen(r->name, sizeof(pg->last) - 1));
    pg->last[strnlen(r->name, sizeof(pg->last) - 1)] = '\0';
    return pg->out.oom ? FP_ERR_NOMEM : FP_ERR_OK;
}

static void page_free(const void *body, size_t len, void *arg)
{
    (void)len, (void)arg;
    free((void *)body);
}

int api_devices_list(fp_http_req *req)
{
    static const char *const allowed[] = {"state", "tag", "name_prefix", "limit", "cursor", NULL};
    char cur[FP_DEVICE_NAME_MAX], *state = NULL, *tag = NULL, *prefix = NULL, *eq, *next = NULL;
    fp_device_filter f;
    dpage pg;
    fp_error e = {0};
    int rc, limit;

    memset(&f, 0, sizeof(f));
    memset(&pg, 0, sizeof(pg));
    /* the project's existence is asked only when the page is empty: a
     * device listed proves it (devices reference their project) */
    if ((f.project = api_project_scope(req)) == NULL || !api_query_allowed(req, allowed) ||
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
    pg.limit = limit;
    fp_jbuf_puts(&pg.out, "{\"items\":[");
    if ((rc = fp_registry_device_list(API_STORE(req), &f, dpage_add, &pg, &e)) != FP_ERR_OK ||
        pg.out.oom) {
        if (e.code == FP_ERR_OK)
            fp_err_set(&e, pg.out.oom ? FP_ERR_NOMEM : rc, "listing devices");
        api_fail(req, &e);
        goto out;
    }
    if (pg.n == 0 && !api_project_exists(req, f.project))
        goto out;
    /* a full page of the maximum size: there may be more */
    if (pg.more || (limit == 1000 && pg.n == 1000))
        next = api_cursor_encode(pg.last);
    fp_jbuf_puts(&pg.out, "],\"next_cursor\":");
    if (next != NULL)
        fp_jbuf_str(&pg.out, next);
    else
        fp_jbuf_puts(&pg.out, "null");
    fp_jbuf_put(&pg.out, "}", 1);
    if (pg.out.oom) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
    } else {
        /* handed over, not copied into the reply (a page is ~13 KB) */
        fp_http_reply_ref(req, 200, "application/json", pg.out.p, pg.out.n, page_free, NULL);
        pg.out.p = NULL;
    }
out:
    free(pg.out.p);
    free(next);
    free(state);
    free(tag);
    free(prefix);
    return FP_HTTP_DONE;
}

int api_device_get(fp_http_req *req)
{
    /* the parameter first: api_project may answer, and req is gone then */
    const char *name = fp_http_param(req, "device"), *p = api_project_scope(req);
    fp_device_rec r;
    fp_jbuf out = {0};
    fp_error e = {0};

    if (p == NULL)
        return FP_HTTP_DONE;
    memset(&r, 0, sizeof(r));
    /* a device found proves its project exists; only a miss asks, to say
     * which of the two is absent */
    if (fp_registry_device_get(API_STORE(req), p, name, &r, &e) != FP_ERR_OK) {
        fp_device_rec_clear(&r);
        if (e.code != FP_ERR_NOT_FOUND || api_project_exists(req, p))
            api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    fp_device_json_text(&out, &r);
    if (out.oom)
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
    else
        fp_http_reply(req, 200, "application/json", out.p, out.n);
    free(out.p);
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
