/* fuzz_cmp.c - the CMP server (src/cmp/) on arbitrary request bytes.
 *
 * A real data directory is made once per process (fleetpki init in a
 * fresh temporary directory, /dev/shm when there is one), with a fixed
 * CMP MAC key and one enrollment token whose id, hash and uses match the
 * seeds of corpus/cmp (made by gen_cmp_seeds.sh with the same values), so
 * MAC-protected seeds verify and mutations reach the callbacks: CRMF and
 * PKCS#10 parsing, policy, issuance, genm, certConf, rr refusals.  Every
 * input runs through cmp_handle exactly as a POST body would; the
 * messageTime window is opened wide so old seeds are not all "badTime",
 * and the certConf wait is one second so open transactions do not pile
 * up.  The answer must be a PKIMessage OpenSSL can decode again. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ca/caset.h"
#include "ca/config.h"
#include "ca/issue.h"
#include "cmp/cmp.h"
#include "common/util.h"
#include "serve/app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TOKEN_ID "f0220000000c0001"
#define FUZZ_TOKEN_SECRET "fuzz" /* its SHA-256 is the stored hash */

static cmp_state *st;
static cmp_worker *wk;
static fp_config cfg;
static fp_app app;
static char dir[256];

static void cleanup(void)
{
    char cmd[300];
    cmp_worker_free(wk);
    cmp_state_free(st);
    fp_issuer_free(app.issuer);
    fp_caset_free(app.cas);
    wk = NULL;
    st = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "fuzz_cmp: could not remove %s\n", dir);
}

static void die(const char *what, const fp_error *e)
{
    fprintf(stderr, "fuzz_cmp setup: %s: %s\n", what, e ? e->msg : "");
    abort();
}

static void setup(void)
{
    fp_error err = {0};
    fp_init_opts io;
    fp_store *store = NULL;
    fp_caset *cas = NULL;
    fp_issuer *iss = NULL;
    fp_token_rec t;
    unsigned char key[32];
    char path[512];

    snprintf(dir, sizeof(dir), "%s/fuzzcmp.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(dir) == NULL)
        die("mkdtemp", NULL);
    atexit(cleanup);
    snprintf(path, sizeof(path), "%s/ca", dir);
    memset(&io, 0, sizeof(io));
    io.dir = path;
    io.org = "Fuzz Org";
    if (fp_ca_init(&io, &err) != FP_ERR_OK)
        die("init", &err);
    /* the seeds' MAC key: 32 octets of 0x42 (gen_cmp_seeds.sh) */
    memset(key, 0x42, sizeof(key));
    snprintf(path, sizeof(path), "%s/ca/%s", dir, CMP_MAC_KEY_FILE);
    if (fp_file_create(path, key, sizeof(key), 0600, &err) != FP_ERR_OK)
        die("mac key", &err);
    snprintf(path, sizeof(path), "%s/ca", dir);
    if (fp_config_load(&cfg, path, &err) != FP_ERR_OK)
        die("config", &err);
    cfg.cmp_confirm_wait_seconds = 1;
    if (fp_config_store_open(&cfg, &store, &err) != FP_ERR_OK ||
        fp_caset_load(&cfg, store, NULL, 0, &cas, &err) != FP_ERR_OK ||
        fp_issuer_new(cas, NULL, &iss, &err) != FP_ERR_OK)
        die("CA", &err);
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", FUZZ_TOKEN_ID);
    snprintf(t.project, sizeof(t.project), "%s", FP_PROJECT_DEFAULT);
    EVP_Digest(FUZZ_TOKEN_SECRET, strlen(FUZZ_TOKEN_SECRET), t.hash, NULL, EVP_sha256(), NULL);
    t.uses_left = 1000000000;
    t.created_at = fp_now();
    {
        fp_audit_event ev = {.actor = "fuzz", .action = "token.create", .object = t.id,
                             .detail = "", .project = t.project};
        if (fp_store_token_put(store, &t, &ev, &err) != FP_ERR_OK)
            die("token", &err);
    }
    fp_store_close(store);
    app = (fp_app){.cfg = &cfg, .cas = cas, .issuer = iss};
    if (cmp_state_new(&cfg, &app, &st, &err) != FP_ERR_OK || cmp_worker_new(st, &wk, &err) != FP_ERR_OK)
        die("cmp", &err);
    st->msgtime_skew = (int64_t)1 << 40;
    /* FP_FUZZ_VERBOSE=1: every answer logged (to check the seeds reach issuance) */
    fp_log_set_level(getenv("FP_FUZZ_VERBOSE") ? FP_LOG_DEBUG : FP_LOG_ERROR + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *out = NULL;
    size_t outlen = 0;
    fp_error err = {0};
    char id[24];
    static unsigned long n;

    if (st == NULL)
        setup();
    snprintf(id, sizeof(id), "fuzz%lu", n++);
    if (cmp_handle(st, wk, &st->labels[0], (n & 15) == 0 ? "no-such-label" : NULL, id, data, size,
                   &out, &outlen, NULL, 0, NULL, &err) == FP_ERR_OK) {
        const unsigned char *p = out;
        OSSL_CMP_MSG *m = d2i_OSSL_CMP_MSG(NULL, &p, (long)outlen);
        if (m == NULL || p != out + outlen)
            abort(); /* our answer must be one PKIMessage */
        OSSL_CMP_MSG_free(m);
    }
    OPENSSL_free(out);
    return 0;
}
