/*
 * api_module.c - the admin REST API module: its route table (the one list
 * of what is mounted under /api/v1; tests/integration/test_api_openapi.sh
 * reads it to check every route is documented, so keep one route a line),
 * the "bearer" API-key scheme, the per-worker store handles.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/util.h"
#include "api.h"
#include "api_int.h"
#include "apikey.h"

/* docs/openapi.json, embedded at build time (CMakeLists.txt) */
extern const unsigned char fp_openapi_doc[];
extern const unsigned long fp_openapi_doc_len;

#define JSON_T "application/json"
#define B FP_API_AUTH_BEARER
#define KB(n) ((size_t)(n) * 1024)

/* clang-format off */
static const fp_http_route api_routes[] = {
    {FP_HTTP_GET, "/openapi.json", FP_HTTP_TLS, NULL, FP_HTTP_AUTH_NONE, 0, api_openapi},
    {FP_HTTP_GET, "/projects", FP_HTTP_TLS, NULL, B, 0, api_projects_list},
    {FP_HTTP_POST, "/projects", FP_HTTP_TLS, JSON_T, B, KB(4), api_projects_create},
    {FP_HTTP_GET, "/projects/{project}", FP_HTTP_TLS, NULL, B, 0, api_project_get},
    {FP_HTTP_GET, "/projects/{project}/roots", FP_HTTP_TLS, NULL, B, 0, api_roots_list},
    {FP_HTTP_POST, "/projects/{project}/roots", FP_HTTP_TLS, JSON_T, B, KB(256), api_roots_add},
    {FP_HTTP_GET, "/projects/{project}/cas", FP_HTTP_TLS, NULL, B, 0, api_cas_list},
    {FP_HTTP_POST, "/projects/{project}/cas", FP_HTTP_TLS, JSON_T, B, KB(4), api_cas_create},
    {FP_HTTP_POST, "/projects/{project}/cas/{ca}/activate", FP_HTTP_TLS, NULL, B, KB(4), api_ca_activate},
    {FP_HTTP_GET, "/projects/{project}/certificates", FP_HTTP_TLS, NULL, B, 0, api_certs_list},
    {FP_HTTP_GET, "/projects/{project}/certificates/{serial}", FP_HTTP_TLS, NULL, B, 0, api_cert_get},
    {FP_HTTP_POST, "/projects/{project}/certificates/{serial}/revoke", FP_HTTP_TLS, JSON_T, B, KB(4), api_cert_revoke},
    {FP_HTTP_GET, "/projects/{project}/tokens", FP_HTTP_TLS, NULL, B, 0, api_tokens_list},
    {FP_HTTP_POST, "/projects/{project}/tokens", FP_HTTP_TLS, JSON_T, B, KB(4), api_tokens_create},
    {FP_HTTP_DELETE, "/projects/{project}/tokens/{token}", FP_HTTP_TLS, NULL, B, 0, api_token_delete},
    {FP_HTTP_GET, "/projects/{project}/audit", FP_HTTP_TLS, NULL, B, 0, api_audit_list},
    {FP_HTTP_GET, "/projects/{project}/devices", FP_HTTP_TLS, NULL, B, 0, api_devices_list},
    {FP_HTTP_GET, "/projects/{project}/devices/{device}", FP_HTTP_TLS, NULL, B, 0, api_device_get},
    {FP_HTTP_POST, "/projects/{project}/devices/{device}/suspend", FP_HTTP_TLS, NULL, B, KB(4), api_device_suspend},
    {FP_HTTP_POST, "/projects/{project}/devices/{device}/resume", FP_HTTP_TLS, NULL, B, KB(4), api_device_resume},
    {FP_HTTP_POST, "/projects/{project}/devices/{device}/decommission", FP_HTTP_TLS, NULL, B, KB(4), api_device_decommission},
    {FP_HTTP_PUT, "/projects/{project}/devices/{device}/tags/{key}", FP_HTTP_TLS, JSON_T, B, KB(4), api_device_tag_put},
    {FP_HTTP_DELETE, "/projects/{project}/devices/{device}/tags/{key}", FP_HTTP_TLS, NULL, B, 0, api_device_tag_delete},
    {FP_HTTP_GET, "/projects/{project}/devices/{device}/certificates", FP_HTTP_TLS, NULL, B, 0, api_device_certs},
    {0},
};
/* clang-format on */

int api_openapi(fp_http_req *req)
{
    fp_http_reply(req, 200, "application/json", fp_openapi_doc, fp_openapi_doc_len);
    return FP_HTTP_DONE;
}

/* 401 with the challenge of RFC 6750 3 (error="invalid_token" when a key
 * was presented and refused). */
static void unauthorized(fp_http_req *req, bool presented, const char *why)
{
    fp_http_add_header(req, "WWW-Authenticate",
                       presented ? "Bearer realm=\"fleetpki\", error=\"invalid_token\""
                                 : "Bearer realm=\"fleetpki\"");
    api_problem(req, 401, "unauthorized", "unauthorized", "%s", why);
}

/* Runs before the body is read: a caller without a valid key costs one
 * lookup by id and one hash. */
static bool bearer_check(fp_http_req *req, void *arg)
{
    const char *h = fp_http_header(req, "Authorization"), *secret = NULL;
    char id[FP_APIKEY_ID_MAX], key[FP_APIKEY_ID_MAX + 8];
    fp_apikey_rec k;
    api_principal *who;
    fp_error e = {0};
    int rc;

    (void)arg;
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(req, false, "an API key is required: Authorization: Bearer <id>.<secret>");
        return false;
    }
    h += 7;
    while (*h == ' ')
        h++;
    if (!fp_apikey_parse(h, id, &secret)) {
        unauthorized(req, true, "malformed API key");
        return false;
    }
    rc = fp_store_apikey_get(API_STORE(req), id, &k, &e);
    if (rc != FP_ERR_OK && rc != FP_ERR_NOT_FOUND) {
        api_fail(req, &e);
        return false;
    }
    /* unknown, revoked and wrong secret all answer alike */
    if (rc == FP_ERR_NOT_FOUND || !fp_apikey_matches(&k, secret) || k.revoked_at != 0) {
        unauthorized(req, true, "unknown, revoked or wrong API key");
        return false;
    }
    snprintf(key, sizeof(key), "api:%s", k.id);
    if (fp_http_limit_identity(req, key))
        return false; /* answered 429 */
    if ((who = calloc(1, sizeof(*who))) == NULL) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        return false;
    }
    snprintf(who->id, sizeof(who->id), "%s", k.id);
    snprintf(who->project, sizeof(who->project), "%s", k.project);
    who->read_only = k.read_only;
    snprintf(who->actor, sizeof(who->actor), "api:%s", k.id);
    req->principal = who;
    snprintf(req->identity, sizeof(req->identity), "api:%s", k.id);
    return true;
}

static void bearer_release(void *principal, void *arg)
{
    (void)arg;
    free(principal);
}

static int api_init(fp_http_server *srv, void *arg, void **state, fp_error *err)
{
    const fp_api_args *args = arg;
    const fp_http_auth_scheme bearer = {FP_API_AUTH_BEARER, 0, bearer_check, bearer_release,
                                        NULL};
    api_state *st;
    int rc;

    if ((st = calloc(1, sizeof(*st))) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    st->app = args->app;
    if ((rc = fp_http_auth_register(srv, &bearer, err)) != FP_ERR_OK) {
        free(st);
        return rc;
    }
    *state = st;
    return FP_ERR_OK;
}

/* Each worker's own store handle (a handle is one thread's). */
static int api_worker_init(void *state, fp_http_worker *w, void **out, fp_error *err)
{
    api_state *st = state;
    fp_store *store = NULL;
    int rc;

    (void)w;
    rc = fp_config_store_open(st->app->cfg, &store, err);
    *out = store;
    return rc;
}

static void api_worker_free(void *state, void *wstate)
{
    (void)state;
    fp_store_close(wstate);
}

static void api_free(void *state)
{
    free(state);
}

const fp_http_module fp_api_module = {
    "api", api_routes, api_init, api_worker_init, api_worker_free, NULL, api_free,
};
