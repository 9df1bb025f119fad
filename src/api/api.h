/*
 * api.h - the admin REST API module (docs/api.md, docs/openapi.json),
 * mounted by the composition root under /api/v1:
 *     fp_api_args aa = {app};
 *     fp_http_mount(srv, &fp_api_module, "/api/v1", &aa, &err);
 * Its init registers the "bearer" authentication scheme (API keys).
 */
#ifndef FP_API_H
#define FP_API_H

#include "../http/http.h"
#include "../serve/app.h"

typedef struct fp_api_args {
    const fp_app *app;
} fp_api_args;

extern const fp_http_module fp_api_module;

/* The scheme name routes give for API-key authentication. */
#define FP_API_AUTH_BEARER "bearer"

#endif
