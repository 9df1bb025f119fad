/*
 * device_api.h - the device API (issue 10): GET /api/v1/device over mutual
 * TLS returns the registry view of the calling device, registering it on
 * first contact.  Mounted by `fleetpki serve` after EST and revocation.
 */
#ifndef FP_DEVICE_API_H
#define FP_DEVICE_API_H

#include "../http/http.h"
#include "../serve/app.h"

typedef struct fp_device_api_args {
    const fp_app *app; /* borrowed; outlives the server */
} fp_device_api_args;

extern const fp_http_module fp_device_api_module;

#endif
