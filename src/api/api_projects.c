/*
 * api_projects.c - /projects, their roots and CAs.  Every change goes
 * through src/ca/admin.h, the same calls `fleetpki project|ca|root` make,
 * audited with the API key as actor.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/util.h"
#include "api_int.h"

static int add_project(void *arg, const fp_project_rec *p)
{
    json_t *o = json_pack("{s:s, s:I}", "name", p->name, "created_at", (json_int_t)p->created_at);
    return o != NULL && json_array_append_new(arg, o) == 0 ? FP_ERR_OK : FP_ERR_NOMEM;
}

int api_projects_list(fp_http_req *req)
{
    const api_principal *who = API_WHO(req);
    json_t *arr = json_array();
    fp_error e = {0};
    int rc;

    if (arr == NULL) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        return FP_HTTP_DONE;
    }
    if (who->project[0] != '\0') {
        /* a project key sees its own project only */
        fp_project_rec p;
        rc = fp_store_project_get(API_STORE(req), who->project, &p, &e);
        if (rc == FP_ERR_OK)
            rc = add_project(arr, &p);
        else if (rc == FP_ERR_NOT_FOUND)
            rc = FP_ERR_OK;
    } else {
        rc = fp_store_project_list(API_STORE(req), add_project, arr, &e);
    }
    api_items(req, arr, rc, &e, "listing projects");
    return FP_HTTP_DONE;
}

int api_project_get(fp_http_req *req)
{
    const char *p = api_project(req);
    fp_project_rec rec;
    fp_error e = {0};

    if (p == NULL)
        return FP_HTTP_DONE;
    if (fp_store_project_get(API_STORE(req), p, &rec, &e) != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    api_json(req, 200, json_pack("{s:s, s:I}", "name", rec.name, "created_at",
                                 (json_int_t)rec.created_at));
    return FP_HTTP_DONE;
}

int api_projects_create(fp_http_req *req)
{
    static const api_field fields[] = {
        {"name", JSON_STRING, true}, {"algo", JSON_STRING, false}, {NULL, 0, false}};
    fp_admin a;
    json_t *j;
    char ca_id[64];
    const char *algo;
    fp_error e = {0};

    if (!api_admin_only(req) || (j = api_body(req, fields)) == NULL)
        return FP_HTTP_DONE;
    a = api_admin(req);
    algo = json_string_value(json_object_get(j, "algo"));
    if (fp_admin_project_create(&a, json_string_value(json_object_get(j, "name")), algo, ca_id,
                                &e) != FP_ERR_OK) {
        json_decref(j);
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    api_json(req, 201, json_pack("{s:O, s:s}", "name", json_object_get(j, "name"), "ca_id", ca_id));
    json_decref(j);
    return FP_HTTP_DONE;
}

static const char *kind_name(int kind)
{
    return kind == FP_CA_ROOT ? "root" : kind == FP_CA_ISSUING ? "issuing" : "trust-root";
}

static int add_ca(void *arg, const fp_ca_rec *r)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I}", "id", r->id, "kind",
                          kind_name(r->kind), "parent_id", r->parent_id, "subject",
                          r->subject ? r->subject : "", "active", r->active, "not_before",
                          (json_int_t)r->not_before, "not_after", (json_int_t)r->not_after,
                          "created_at", (json_int_t)r->created_at);
    return o != NULL && json_array_append_new(arg, o) == 0 ? FP_ERR_OK : FP_ERR_NOMEM;
}

static int list_cas(fp_http_req *req, int kind)
{
    const char *p = api_project(req);
    json_t *arr;
    fp_error e = {0};
    int rc;

    if (p == NULL)
        return FP_HTTP_DONE;
    if ((arr = json_array()) == NULL) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        return FP_HTTP_DONE;
    }
    rc = fp_store_ca_list(API_STORE(req), p, kind, add_ca, arr, &e);
    api_items(req, arr, rc, &e, "listing CAs");
    return FP_HTTP_DONE;
}

int api_roots_list(fp_http_req *req)
{
    return list_cas(req, FP_CA_TRUST_ROOT);
}

int api_cas_list(fp_http_req *req)
{
    return list_cas(req, FP_CA_ISSUING);
}

/* POST {"pem": "..."}: fp_admin_root_add reads a file, so the PEM goes to
 * a private temporary file (0600, O_EXCL via mkstemp) for the call. */
int api_roots_add(fp_http_req *req)
{
    static const api_field fields[] = {{"pem", JSON_STRING, true}, {NULL, 0, false}};
    const char *p, *pem;
    char path[] = "/tmp/fleetpki-root-XXXXXX", root_id[64];
    fp_admin a;
    json_t *j;
    fp_error e = {0};
    int fd, rc;
    size_t len;

    if ((p = api_project(req)) == NULL || !api_may_write(req) || (j = api_body(req, fields)) == NULL)
        return FP_HTTP_DONE;
    pem = json_string_value(json_object_get(j, "pem"));
    len = strlen(pem);
    if ((fd = mkstemp(path)) < 0) {
        json_decref(j);
        api_fail_code(req, FP_ERR_IO, "temporary file: cannot create");
        return FP_HTTP_DONE;
    }
    rc = write(fd, pem, len) == (ssize_t)len ? FP_ERR_OK : FP_ERR_IO;
    close(fd);
    json_decref(j);
    if (rc != FP_ERR_OK) {
        unlink(path);
        api_fail_code(req, FP_ERR_IO, "temporary file: cannot write");
        return FP_HTTP_DONE;
    }
    a = api_admin(req);
    rc = fp_admin_root_add(&a, p, path, root_id, &e);
    unlink(path);
    if (rc != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    api_json(req, 201, json_pack("{s:s, s:s}", "id", root_id, "project", p));
    return FP_HTTP_DONE;
}

int api_cas_create(fp_http_req *req)
{
    static const api_field fields[] = {{"algo", JSON_STRING, false}, {NULL, 0, false}};
    const char *p;
    char ca_id[64];
    fp_admin a;
    json_t *j;
    fp_error e = {0};
    int rc;

    if ((p = api_project(req)) == NULL || !api_may_write(req) || (j = api_body(req, fields)) == NULL)
        return FP_HTTP_DONE;
    a = api_admin(req);
    rc = fp_admin_ca_create(&a, p, json_string_value(json_object_get(j, "algo")), ca_id, &e);
    json_decref(j);
    if (rc != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    api_json(req, 201, json_pack("{s:s, s:s}", "id", ca_id, "project", p));
    return FP_HTTP_DONE;
}

int api_ca_activate(fp_http_req *req)
{
    const char *p, *id = fp_http_param(req, "ca");
    fp_ca_rec r;
    fp_admin a;
    fp_error e = {0};
    int rc;

    if ((p = api_project(req)) == NULL || !api_may_write(req))
        return FP_HTTP_DONE;
    memset(&r, 0, sizeof(r));
    /* a CA of another project is not found, as an absent one */
    rc = fp_store_ca_get(API_STORE(req), id, &r, &e);
    if (rc == FP_ERR_OK && strcmp(r.project, p) != 0)
        rc = fp_err_set(&e, FP_ERR_NOT_FOUND, "no CA %s in project %s", id, p);
    fp_ca_rec_clear(&r);
    if (rc == FP_ERR_OK) {
        a = api_admin(req);
        rc = fp_admin_ca_activate(&a, id, &e);
    }
    if (rc != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    api_json(req, 200, json_pack("{s:s, s:s, s:b}", "id", id, "project", p, "active", 1));
    return FP_HTTP_DONE;
}
