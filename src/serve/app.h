/*
 * app.h - what the composition root (`fleetpki serve`) hands every module
 * it mounts: the configuration, every CA by project and the one issuance
 * path over them.  Built before the modules, freed after them.
 */
#ifndef FP_APP_H
#define FP_APP_H

#include <stddef.h>

#include "../ca/config.h"
#include "../ca/issue.h"
#include "../registry/registry.h"

typedef struct fp_app {
    const fp_config *cfg;
    fp_caset *cas;
    fp_issuer *issuer; /* its committer is set by the EST module (fp_issuer_set_committer) */
    fp_registry *registry; /* devices: first contact, refusal, batched last-seen (issue 10) */
    const char *pass;  /* key passphrase, borrowed, or NULL */
    size_t passlen;
} fp_app;

#endif
