/*
 * caset.h - every CA this data directory holds, by project.
 *
 * The store's ca table lists them (fp_store_ca_list): the shared root,
 * each project's issuing CAs (created here, or imported: made elsewhere,
 * key handed to us) and each project's trust roots (bring-your-own roots
 * whose keys we never see: they only authenticate devices).  A CA set is
 * loaded once at start (serve) or per command (CLI), is immutable after
 * that, and is safe to read from every thread.
 *
 * Files of a CA created or imported after init live in DIR/ca/<id>/:
 * ca.crt, ca.key (0600, encrypted when the data directory's keys are) and
 * its delegated OCSP responder ocsp.crt / ocsp.key.  The CA that `init`
 * made keeps the [ca] / [server] paths of fleetpki.conf.
 */
#ifndef FP_CASET_H
#define FP_CASET_H

#include <openssl/x509.h>

#include "ca.h"

typedef struct fp_caset fp_caset;

/* Load every issuing CA (with its key; one that cannot be opened is an
 * error naming it, so a server never starts with a project it cannot
 * serve) and every project's trust roots.  The root's own key is not
 * needed (it may be kept offline). */
int fp_caset_load(const fp_config *cfg, fp_store *store, const char *pass, size_t passlen,
                  fp_caset **out, fp_error *err);
void fp_caset_free(fp_caset *cs);

/* The project's active issuing CA, or NULL if it has none (or no such
 * project). */
fp_ca *fp_caset_active(const fp_caset *cs, const char *project);
/* The issuing CA with that id, or NULL. */
fp_ca *fp_caset_find(const fp_caset *cs, const char *ca_id);
int fp_caset_count(const fp_caset *cs);
fp_ca *fp_caset_at(const fp_caset *cs, int i);

/* The project's bring-your-own roots (possibly empty, never NULL). */
STACK_OF(X509) *fp_caset_trust_roots(const fp_caset *cs, const char *project);

/* DIR/ca/<id>/<file> for a CA made after init. */
int fp_caset_file(const fp_config *cfg, const char *ca_id, const char *file, char *buf,
                  size_t size, fp_error *err);

#endif
