/* api_int.h - shared by the files of the admin REST API (private). */
#ifndef FP_API_INT_H
#define FP_API_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../ca/admin.h"
#include "../http/http.h"
#include "../serve/app.h"
#include "../store/store.h"

typedef struct api_state {
    const fp_app *app;
} api_state;

/* The caller, as the bearer scheme authenticated it (req->principal). */
typedef struct api_principal {
    char id[FP_APIKEY_ID_MAX];
    char project[FP_PROJECT_MAX]; /* "" admin */
    bool read_only;
    char actor[FP_APIKEY_ID_MAX + 8]; /* "api:<id>" */
} api_principal;

/* The worker's store handle. */
#define API_STORE(req) ((fp_store *)(req)->worker_state)
#define API_STATE(req) ((api_state *)(req)->mod_state)
#define API_WHO(req) ((const api_principal *)(req)->principal)

/* ---- answers (api_util.c) ---- */

/* RFC 9457 problem details: type https://fleetpki.dev/problems/<name>,
 * title the default message, status, detail.  name is fp_err_name of a
 * code, or one of the API's own "unauthorized" / "forbidden". */
void api_problem(fp_http_req *req, int status, const char *name, const char *title,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The problem for err (status from the one class table, api_status_of). */
void api_fail(fp_http_req *req, const fp_error *err);
void api_fail_code(fp_http_req *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int api_status_of(int code);
/* The answer of a list: {"items": arr} (arr taken) when rc is FP_ERR_OK,
 * else the problem for e, or for rc with "what failed" when e is empty. */
void api_items(fp_http_req *req, json_t *arr, int rc, fp_error *e, const char *what);
/* Send j (stolen) as application/json with status. */
void api_json(fp_http_req *req, int status, json_t *j);

/* ---- requests (api_util.c) ---- */

/* The {project} of the path, if the caller may see it: an admin key, or a
 * key of exactly that project, and the project exists.  Otherwise answers
 * 404 (never 403: a key cannot probe names of other projects) and
 * returns NULL. */
const char *api_project(fp_http_req *req);
/* The two halves of api_project, for reads that can tell an absent project
 * from their own answer and so spare the lookup (a store read transaction)
 * when they find something: the key's scope only, and then whether the
 * project exists (false: answered 404). */
const char *api_project_scope(fp_http_req *req);
bool api_project_exists(fp_http_req *req, const char *p);
/* A mutation: refuses a read-only key with 403 (after api_project). */
bool api_may_write(fp_http_req *req);
/* An admin key only (403 otherwise). */
bool api_admin_only(fp_http_req *req);

/* One accepted field of a JSON body. */
typedef struct api_field {
    const char *name;
    int type; /* JSON_STRING, JSON_INTEGER, JSON_TRUE (a boolean) */
    bool required;
} api_field;
/* Parse the body as one JSON object with only fields (types checked,
 * required present, no duplicates).  NULL: answered 400. */
json_t *api_body(fp_http_req *req, const api_field *fields);

/* Query parameter name of req (decoded, malloc'd) or NULL.  *bad set when
 * the query string does not parse. */
char *api_query(const fp_http_req *req, const char *name);
/* Check every query parameter is one of allowed (NULL ended); 400 else. */
bool api_query_allowed(fp_http_req *req, const char *const *allowed);
/* ?limit= (default 100, 1..1000) into *limit; false: answered 400. */
bool api_limit(fp_http_req *req, int *limit);
/* ?cursor= decoded (base64url of the last key of the previous page) into
 * buf; "" when absent; valid(buf) must accept it.  false: answered 400. */
bool api_cursor(fp_http_req *req, char *buf, size_t size, bool (*valid)(const char *));
/* base64url (no padding) of text, malloc'd. */
char *api_cursor_encode(const char *text);
/* "30d", "12h", "15m", "90s" -> seconds; -1 if malformed. */
long long api_duration(const char *s);

/* A certificate as the API shows it (api_certs.c). */
json_t *api_cert_json(const fp_cert_rec *r);

/* fp_admin acting for the caller. */
fp_admin api_admin(fp_http_req *req);

/* ---- handlers ---- */
int api_projects_list(fp_http_req *req);
int api_projects_create(fp_http_req *req);
int api_project_get(fp_http_req *req);
int api_roots_list(fp_http_req *req);
int api_roots_add(fp_http_req *req);
int api_cas_list(fp_http_req *req);
int api_cas_create(fp_http_req *req);
int api_ca_activate(fp_http_req *req);
int api_certs_list(fp_http_req *req);
int api_cert_get(fp_http_req *req);
int api_cert_revoke(fp_http_req *req);
int api_tokens_list(fp_http_req *req);
int api_tokens_create(fp_http_req *req);
int api_token_delete(fp_http_req *req);
int api_audit_list(fp_http_req *req);
int api_devices_list(fp_http_req *req);
int api_device_get(fp_http_req *req);
int api_device_suspend(fp_http_req *req);
int api_device_resume(fp_http_req *req);
int api_device_decommission(fp_http_req *req);
int api_device_tag_put(fp_http_req *req);
int api_device_tag_delete(fp_http_req *req);
int api_device_certs(fp_http_req *req);
int api_openapi(fp_http_req *req);

#endif
