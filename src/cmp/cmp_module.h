/*
 * cmp_module.h - the CMP server (RFC 9483 over RFC 6712) as an HTTP
 * module, for the composition root that mounts it (src/cli/cmd_serve.c):
 *     fp_cmp_args ca = {cfg, app};
 *     fp_http_mount(srv, &fp_cmp_module, NULL, &ca, &err);
 * Its routes: POST /.well-known/cmp (the default label) and
 * /.well-known/cmp/p/{label} on both listeners (CMP messages carry their
 * own protection; RFC 6712 3.6).
 */
#ifndef FP_CMP_MODULE_H
#define FP_CMP_MODULE_H

#include "../ca/config.h"
#include "../http/http.h"
#include "../serve/app.h"

/* What CMP's init hook takes (borrowed for the server's lifetime). */
typedef struct fp_cmp_args {
    const fp_config *cfg; /* [est LABEL] sections (shared with EST), [server] cmp_* */
    const fp_app *app;
} fp_cmp_args;

extern const fp_http_module fp_cmp_module;

#endif
