/*
 * routes.c - the modules that contribute routes to the HTTP server, in
 * matching order.  See http.h ("HOW TO ADD ROUTES FROM A MODULE").
 */
#include "http.h"

/* src/est/est.c */
extern const fp_http_route fp_est_routes[];
int fp_est_init(fp_http_server *srv, void **state, fp_error *err);
void fp_est_stop(void *state);
void fp_est_free(void *state);

/* revocation (CRL, OCSP): placeholder in routes_rev.c until src/rev/ lands */
extern const fp_http_route fp_rev_routes[];

const fp_http_module fp_http_modules[] = {
    {"est", fp_est_routes, fp_est_init, fp_est_stop, fp_est_free},
    {"rev", fp_rev_routes, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
