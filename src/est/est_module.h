/*
 * est_module.h - the EST server (RFC 7030) as an HTTP module, for the
 * composition root that mounts it (src/cli/cmd_serve.c):
 *     fp_est_args ea = {cfg, app};
 *     fp_http_mount(srv, &fp_est_module, NULL, &ea, &err);
 * Its routes: /.well-known/est/OP and /.well-known/est/{label}/OP on the
 * https listener.
 */
#ifndef FP_EST_MODULE_H
#define FP_EST_MODULE_H

#include "../ca/ca.h"
#include "../ca/config.h"
#include "../http/http.h"
#include "../serve/app.h"

/* What EST's init hook takes (borrowed for the server's lifetime). */
typedef struct fp_est_args {
    const fp_config *cfg; /* [est LABEL] sections, profiles, store path */
    const fp_app *app;    /* every CA by project, the issuance path */
} fp_est_args;

extern const fp_http_module fp_est_module;

#endif
