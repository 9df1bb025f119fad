/*
 * scep_module.h - the SCEP server (RFC 8894) as an HTTP module, for the
 * composition root that mounts it (src/cli/cmd_serve.c):
 *     fp_scep_args sa = {app, pass, passlen};
 *     fp_http_mount(srv, &fp_scep_module, NULL, &sa, &err);
 * Its routes: GET and POST /scep and /scep/{label} on both listeners (SCEP
 * protects its messages itself; RFC 8894 4.1 runs it over plain HTTP).
 * A label is an [est LABEL] section: same project, profile and approval
 * rules (docs/scep.md).  Mount it after EST: certificates are committed by
 * the group committer EST's init sets on the issuer.
 */
#ifndef FP_SCEP_MODULE_H
#define FP_SCEP_MODULE_H

#include <stddef.h>

#include "../http/http.h"
#include "../serve/app.h"

/* What SCEP's init hook takes (borrowed during fp_http_mount only). */
typedef struct fp_scep_args {
    const fp_app *app;  /* configuration, every CA by project, the issuance path */
    const char *pass;   /* passphrase for the RA keys (as for the CA keys), or NULL */
    size_t passlen;
} fp_scep_args;

extern const fp_http_module fp_scep_module;

#endif
