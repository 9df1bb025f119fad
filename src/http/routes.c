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

/* src/rev/rev_http.c: OCSP, CRL, CA certificates on plain http */
extern const fp_http_route fp_rev_routes[];
int fp_rev_init(fp_http_server *srv, void **state, fp_error *err);
void fp_rev_stop(void *state);
void fp_rev_free(void *state);

const fp_http_module fp_http_modules[] = {
    {"est", fp_est_routes, fp_est_init, fp_est_stop, fp_est_free},
    {"rev", fp_rev_routes, fp_rev_init, fp_rev_stop, fp_rev_free},
    {NULL, NULL, NULL, NULL, NULL},
};
