/*
 * routes_rev.c - PLACEHOLDER for the revocation module's routes (issue 4).
 * The OCSP/CRL module replaces this file with its own fp_rev_routes[]
 * (and init/stop/free hooks in routes.c if it needs shared state).
 */
#include "http.h"

const fp_http_route fp_rev_routes[] = {
    {0, NULL, 0, NULL, FP_HTTP_AUTH_NONE, 0, NULL},
};
