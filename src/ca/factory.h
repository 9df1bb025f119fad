/*
 * factory.h - identities minted in bulk, without a network (`fleetpki
 * factory mint`, docs/factory.md).
 *
 * Worker threads (one per core by default) each take a chunk of device
 * numbers at a time, generate a key per device, wrap its public key in an
 * unsigned request (own_key: the key was made here, as for EST
 * serverkeygen, so there is no proof of possession to check) and hand the
 * chunk to the one issuance path as a batch: fp_issue_batch_sign on the
 * worker (policy, build, sign, in parallel), then fp_issue_batch_commit
 * (ONE durable transaction per chunk with every audit row), one worker at
 * a time.  Only after the commit returns does the worker call the output
 * callback that writes the chunk's bundles: every certificate is in the
 * store before any file of it exists.
 */
#ifndef FP_FACTORY_H
#define FP_FACTORY_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "issue.h"

#define FP_FACTORY_NAME_MAX 64        /* RFC 5280 ub-common-name */
#define FP_FACTORY_MAX_COUNT 10000000 /* one run */
#define FP_FACTORY_MAX_INDEX 999999999999ULL
#define FP_FACTORY_BATCH 2048         /* devices per chunk (one transaction) */

/* A device name pattern: literal text around exactly one %d conversion
 * (optional 0 flag and width), e.g. "sensor-%06d". */
typedef struct fp_name_pattern {
    char prefix[FP_FACTORY_NAME_MAX + 1];
    char suffix[FP_FACTORY_NAME_MAX + 1];
    int width; /* 0: none */
    bool zero; /* pad with zeros (else spaces: refused, see .c) */
} fp_name_pattern;

/* Parse and validate pat: one %d with an optional 0 flag and width 1..20,
 * no other '%' (not even "%%"), literal characters from [A-Za-z0-9._-]
 * only (so no '/', no spaces, nothing a CN, a file name or a CSV field
 * would need to escape), no "..", not starting with '.' or '-'.
 * FP_ERR_ARG naming the rule otherwise. */
int fp_name_pattern_parse(const char *pat, fp_name_pattern *out, fp_error *err);

/* The name of device number index under p; FP_ERR_ARG when it would be
 * longer than FP_FACTORY_NAME_MAX. */
int fp_name_pattern_format(const fp_name_pattern *p, uint64_t index,
                           char buf[FP_FACTORY_NAME_MAX + 1], fp_error *err);

/* The device number that p formats as name, or -1 when no number does. */
int64_t fp_name_pattern_index(const fp_name_pattern *p, const char *name);

/* One device of a committed chunk, as the output callback sees it. */
typedef struct fp_factory_dev {
    uint64_t index;
    char name[FP_FACTORY_NAME_MAX + 1];
    EVP_PKEY *key; /* borrowed */
    X509 *cert;    /* borrowed; durable in the store.  Its public key is
                      not decoded (fp_ca_sign): use key */
} fp_factory_dev;

/* Called on a worker thread once per chunk after its commit (n may be 0
 * when every device of the chunk was skipped), devices in increasing
 * index order; chunk numbers count from 0 in device order, and several
 * chunks may be in the callback at once (one per worker), in any order.
 * Anything else than FP_ERR_OK stops the run. */
typedef int (*fp_factory_out_fn)(void *arg, uint64_t chunk, const fp_factory_dev *devs, size_t n,
                                 fp_error *err);

typedef struct fp_factory_opts {
    fp_issuer *issuer;
    const char *store_path; /* each worker opens its own handle */
    const char *project;
    const char *profile;
    const char *actor;
    const char *algo;       /* p256 (NULL), p384, p521, ed25519, rsa2048, rsa3072 */
    fp_name_pattern pattern;
    uint64_t start, count;  /* device numbers start .. start+count-1 */
    const uint8_t *skip;    /* NULL, or a bitmap of count bits: 1 = skip */
    int threads;            /* 0: one per online CPU */
    size_t batch;           /* 0: FP_FACTORY_BATCH */
    fp_factory_out_fn out;
    void *out_arg;
} fp_factory_opts;

/* Mint everything o asks for.  *minted receives how many certificates
 * were committed (also on failure: those are in the store and were handed
 * to out, or were being handed when the run stopped). */
int fp_factory_mint(const fp_factory_opts *o, uint64_t *minted, fp_error *err);

/* A key of algo (see fp_factory_opts); *out caller frees. */
int fp_factory_keygen(const char *algo, EVP_PKEY **out, fp_error *err);

/* key as unencrypted PKCS#8 PEM ("PRIVATE KEY"), the bytes
 * PEM_write_bio_PrivateKey writes, faster for EC keys.  1 on success. */
int fp_factory_key_pem(BIO *out, EVP_PKEY *key);

/* The unsigned request fp_factory_mint wraps each key in (subject
 * CN=name); sign it (X509_REQ_sign) to use it where proof of possession
 * is checked, e.g. fp_issue_precheck. */
int fp_factory_request(EVP_PKEY *key, const char *name, X509_REQ **out, fp_error *err);

/* The machine's limit for the benchmark (bench/run-factory.sh): with the
 * same threads, keys only (mode "keys": generate + PKCS#8 PEM) or keys
 * and certificates (mode "sign": + request, build under profile of cfg
 * and an ECDSA P-256 signature by a throwaway CA made for the run, never
 * the project's: nothing is stored, nothing written, every certificate
 * freed at once).  *seconds: wall time of the loop. */
int fp_factory_floor(const fp_config *cfg, const char *profile, const char *algo,
                     const char *mode, uint64_t count, int threads, double *seconds,
                     fp_error *err);

#endif
