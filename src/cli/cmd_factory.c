/*
 * cmd_factory.c - `fleetpki factory mint|floor` (docs/factory.md).
 *
 * mint: the bulk engine is src/ca/factory.c (keys, batches on the one
 * issuance path); this file checks the request up front, writes each
 * committed device's bundle and the manifests, and makes the output
 * durable at the end.
 *
 * Bundle of a device: DIR/<name>/ is a credential store of
 * libfleetpki-device holding its first pair (cred0.key, cred0.crt), written
 * by the library itself (fp_credstore_provision over its POSIX storage),
 * so the format is the one fp_credstore_open reads back.  The storage's
 * sync calls are deferred: instead of ~5 fsyncs per device (two files,
 * directory), the whole output is synced once at the end (syncfs of its
 * file system, then the manifests and DIR).  Nothing is reported done
 * before that sync; see docs/factory.md for what a crash leaves.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>

#include "../ca/caset.h"
#include "../ca/factory.h"
#include "../common/util.h"
#include "../x509/x509util.h"
#include "cli.h"
#include "fleetpki/device.h"

static const char factory_help[] =
    "usage: fleetpki factory mint --project P --count N --name PATTERN --out DIR\n"
    "                             [--profile NAME] [--algo ALG] [--start K] [--p12]\n"
    "                             [--threads N] [--dir DIR] [--passphrase-file F] [--json]\n"
    "       fleetpki factory floor --mode keys|sign --count N [--algo ALG]\n"
    "                             [--profile NAME] [--threads N] [--dir DIR]\n"
    "\nmint: N device identities (keys and certificates) without a network,\n"
    "device numbers K..K+N-1 (K defaults to 1) named by PATTERN, one %d with\n"
    "an optional 0 flag and width ('sensor-%06d').  Each certificate is signed\n"
    "by the project's active issuing CA under the profile (default 'device')\n"
    "and recorded in the store with its audit row before its bundle is\n"
    "written.  DIR (new or empty) receives DIR/<name>/ (cred0.key, cred0.crt:\n"
    "the credential store of libfleetpki-device; with --p12 also identity.p12\n"
    "and its random password identity.p12.pass), DIR/anchor.pem (the trust\n"
    "anchor), DIR/manifest.csv and DIR/manifest.json (name, serial, sha256,\n"
    "not_after).  Names that already have a valid certificate in the\n"
    "project are skipped, so the same command re-run after a crash mints\n"
    "only the rest (give it a new --out).  ALG: p256 (default), p384, p521,\n"
    "ed25519, rsa2048, rsa3072.\n"
    "\nfloor: the machine's limit for the benchmark: keys only, or keys and\n"
    "certificates signed by a throwaway CA; nothing stored, nothing written.\n";

/* ---- output ---- */

typedef struct pending_chunk {
    uint64_t seq;
    char *csv, *json;
    size_t csv_len, json_len, rows;
    struct pending_chunk *next;
} pending_chunk;

typedef struct out_ctx {
    const char *dir;
    int dirfd;
    bool p12;
    char *chain_pem; /* issuing CA and intermediates, below the leaf */
    size_t chain_len;
    STACK_OF(X509) *p12_cas;
    FILE *csv, *json;
    pthread_mutex_t lock; /* the manifests and everything below */
    uint64_t next_seq;
    uint64_t json_rows;
    pending_chunk *pending; /* sorted by seq */
    int io_failed;
} out_ctx;

/* The library's sync calls are deferred to the end of the run (see the
 * top of this file): the store's contract is only kept once
 * finish_output has synced the file system. */
static int deferred_sync(void *ctx, fp_storage_file *f)
{
    (void)ctx;
    (void)f;
    return 0;
}

static void fmt_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* BIO contents as a NUL-terminated heap string. */
static char *bio_string(BIO *b, size_t *len)
{
    char *p = NULL, *s;
    long n = BIO_get_mem_data(b, &p);

    if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
        return NULL;
    if (n > 0) /* an empty memory BIO has no buffer at all */
        memcpy(s, p, (size_t)n);
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

static int write_secret_file(int dirfd, const char *name, const void *p, size_t len)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    const char *c = p;
    int ok = fd >= 0;

    while (ok && len > 0) {
        ssize_t n = write(fd, c, len);
        if (n < 0 && errno == EINTR)
            continue;
        ok = n > 0;
        if (ok) {
            c += n;
            len -= (size_t)n;
        }
    }
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

/* identity.p12 (key, certificate, CA chain) under a random password in
 * identity.p12.pass.  PBES2 AES-256-CBC with PBKDF2 and an HMAC-SHA256
 * MAC (OpenSSL 3's defaults), 2048 iterations each. */
static int write_p12(out_ctx *oc, const fp_factory_dev *d, int devfd, fp_error *e)
{
    unsigned char rnd[16], *der = NULL;
    char pass[sizeof(rnd) * 2 + 2];
    const unsigned char *p;
    X509 *full = NULL;
    PKCS12 *p12 = NULL;
    int len, rc = FP_ERR_OK;

    /* PKCS12_create checks the key against the certificate: it needs the
     * decoded public key, which fp_ca_sign does not give (ca.h) */
    if ((len = i2d_X509(d->cert, &der)) <= 0 || (p = der, full = d2i_X509(NULL, &p, len)) == NULL ||
        RAND_bytes(rnd, sizeof(rnd)) != 1) {
        rc = fp_err_set(e, FP_ERR_CRYPTO, "%s: PKCS#12", d->name);
        goto out;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(pass + 2 * i, 3, "%02x", rnd[i]);
    p12 = PKCS12_create(pass, d->name, d->key, full, oc->p12_cas, 0, 0, PKCS12_DEFAULT_ITER,
                        PKCS12_DEFAULT_ITER, 0);
    OPENSSL_free(der);
    der = NULL;
    if (p12 == NULL || (len = i2d_PKCS12(p12, &der)) <= 0) {
        rc = fp_err_set(e, FP_ERR_CRYPTO, "%s: PKCS#12", d->name);
        goto out;
    }
    strcat(pass, "\n");
    if (write_secret_file(devfd, "identity.p12", der, (size_t)len) != 0 ||
        write_secret_file(devfd, "identity.p12.pass", pass, strlen(pass)) != 0)
        rc = fp_err_set(e, FP_ERR_IO, "%s/%s: %s", oc->dir, d->name, strerror(errno));
out:
    OPENSSL_cleanse(pass, sizeof(pass));
    OPENSSL_cleanse(rnd, sizeof(rnd));
    OPENSSL_free(der);
    PKCS12_free(p12);
    X509_free(full);
    return rc;
}

/* DIR/<name>/ with the device's credential store; its manifest rows. */
static int write_bundle(out_ctx *oc, const fp_factory_dev *d, BIO *kb, BIO *cb, BIO *csv,
                        BIO *json, fp_error *e)
{
    char path[PATH_MAX], serial[FP_SERIAL_HEX_MAX], fpr[EVP_MAX_MD_SIZE * 2 + 1], na[32];
    unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned int mdlen = 0;
    char *kp = NULL, *cp = NULL, *js = NULL;
    long klen = 0, clen = 0;
    int derlen, devfd = -1, rc = FP_ERR_OK, drc;
    fp_storage st;
    json_t *j = NULL;

    BIO_reset(kb);
    BIO_reset(cb);
    if (!fp_factory_key_pem(kb, d->key) ||
        !PEM_write_bio_X509(cb, d->cert) ||
        BIO_write(cb, oc->chain_pem, (int)oc->chain_len) != (int)oc->chain_len ||
        (derlen = i2d_X509(d->cert, &der)) <= 0 ||
        !EVP_Digest(der, (size_t)derlen, md, &mdlen, EVP_sha256(), NULL)) {
        rc = fp_err_set(e, FP_ERR_CRYPTO, "%s: encoding the bundle", d->name);
        goto out;
    }
    klen = BIO_get_mem_data(kb, &kp);
    clen = BIO_get_mem_data(cb, &cp);
    snprintf(path, sizeof(path), "%s/%s", oc->dir, d->name);
    if (mkdirat(oc->dirfd, d->name, 0700) != 0) {
        rc = fp_err_set(e, FP_ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if ((drc = fp_storage_posix_open(path, &st)) != FP_DEVICE_OK) {
        rc = fp_err_set(e, FP_ERR_IO, "%s: %s", path, fp_device_err_message(drc));
        goto out;
    }
    st.sync = deferred_sync;
    drc = fp_credstore_provision(&st, kp, (size_t)klen, cp, (size_t)clen);
    fp_storage_posix_close(&st);
    if (drc != FP_DEVICE_OK) {
        rc = fp_err_set(e, FP_ERR_IO, "%s: credential store: %s", path, fp_device_err_message(drc));
        goto out;
    }
    if (oc->p12) {
        if ((devfd = openat(oc->dirfd, d->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            rc = fp_err_set(e, FP_ERR_IO, "%s: %s", path, strerror(errno));
        else
            rc = write_p12(oc, d, devfd, e);
        if (rc != FP_ERR_OK)
            goto out;
    }
    /* manifest rows: the name is pattern-checked, the rest hex and dates,
     * so nothing in a CSV field needs quoting */
    fp_serial_hex(X509_get0_serialNumber(d->cert), serial);
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(fpr + 2 * i, 3, "%02x", md[i]);
    fmt_time(fp_asn1_time_unix(X509_get0_notAfter(d->cert)), na, sizeof(na));
    BIO_printf(csv, "%s,%s,%s,%s\n", d->name, serial, fpr, na);
    j = json_pack("{s:s, s:s, s:s, s:s}", "name", d->name, "serial", serial, "sha256", fpr,
                  "not_after", na);
    if (j == NULL || (js = json_dumps(j, JSON_COMPACT)) == NULL) {
        rc = fp_err_set(e, FP_ERR_NOMEM, NULL);
        goto out;
    }
    BIO_printf(json, "%s%s", BIO_pending(json) ? ",\n" : "", js);
out:
    if (kp != NULL)
        OPENSSL_cleanse(kp, (size_t)klen);
    BIO_reset(kb);
    if (devfd >= 0)
        close(devfd);
    OPENSSL_free(der);
    json_decref(j);
    free(js);
    return rc;
}

static int write_all(FILE *f, const char *p, size_t len)
{
    return len == 0 || fwrite(p, 1, len, f) == len ? 0 : -1;
}

/* Append a finished chunk's rows; chunks reach the manifests in device
 * order (a later chunk waits in the list for the earlier ones).
 * Called with oc->lock held. */
static void flush_chunks(out_ctx *oc, bool all)
{
    while (oc->pending != NULL && (all || oc->pending->seq == oc->next_seq)) {
        pending_chunk *c = oc->pending;
        oc->pending = c->next;
        if (c->rows > 0 &&
            (write_all(oc->csv, c->csv, c->csv_len) != 0 ||
             (oc->json_rows > 0 && fputs(",\n", oc->json) == EOF) ||
             write_all(oc->json, c->json, c->json_len) != 0))
            oc->io_failed = 1;
        oc->json_rows += c->rows;
        oc->next_seq = c->seq + 1;
        free(c->csv);
        free(c->json);
        free(c);
    }
}

static int bundle_chunk(void *arg, uint64_t seq, const fp_factory_dev *devs, size_t n,
                        fp_error *e)
{
    out_ctx *oc = arg;
    BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
    BIO *csv = BIO_new(BIO_s_mem()), *json = BIO_new(BIO_s_mem());
    pending_chunk *c = calloc(1, sizeof(*c)), **pp;
    int rc = FP_ERR_OK;

    if (kb == NULL || cb == NULL || csv == NULL || json == NULL || c == NULL)
        rc = fp_err_set(e, FP_ERR_NOMEM, NULL);
    for (size_t i = 0; i < n && rc == FP_ERR_OK; i++)
        rc = write_bundle(oc, &devs[i], kb, cb, csv, json, e);
    if (rc == FP_ERR_OK) {
        c->seq = seq;
        c->rows = n;
        if ((c->csv = bio_string(csv, &c->csv_len)) == NULL ||
            (c->json = bio_string(json, &c->json_len)) == NULL)
            rc = fp_err_set(e, FP_ERR_NOMEM, NULL);
    }
    if (rc == FP_ERR_OK) {
        pthread_mutex_lock(&oc->lock);
        for (pp = &oc->pending; *pp != NULL && (*pp)->seq < seq; pp = &(*pp)->next)
            ;
        c->next = *pp;
        *pp = c;
        c = NULL;
        flush_chunks(oc, false);
        if (oc->io_failed)
            rc = fp_err_set(e, FP_ERR_IO, "%s: writing the manifests: %s", oc->dir, strerror(errno));
        pthread_mutex_unlock(&oc->lock);
    }
    if (c != NULL) {
        free(c->csv);
        free(c->json);
        free(c);
    }
    BIO_free(kb);
    BIO_free(cb);
    BIO_free(csv);
    BIO_free(json);
    return rc;
}

/* ---- setting up ---- */

/* DIR must be new (created here, 0700) or an empty directory. */
static int prepare_out_dir(const char *dir, int *fd, fp_error *err)
{
    DIR *d;
    struct dirent *ent;

    *fd = -1;
    if (mkdir(dir, 0700) != 0) {
        if (errno != EEXIST)
            return fp_err_set(err, FP_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
        if ((d = opendir(dir)) == NULL)
            return fp_err_set(err, FP_ERR_IO, "%s: %s", dir, strerror(errno));
        while ((ent = readdir(d)) != NULL) {
            if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0) {
                /* the entry lives in d: the message before closedir */
                int rc = fp_err_set(err, FP_ERR_EXISTS,
                                    "output directory %s is not empty (found '%s'): bundles "
                                    "are never written over; give a new or empty --out",
                                    dir, ent->d_name);
                closedir(d);
                return rc;
            }
        }
        closedir(d);
    }
    if ((*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", dir, strerror(errno));
    return FP_ERR_OK;
}

/* The chain below the leaf (issuing CA, intermediates; not the root) as
 * PEM, the CA certificates for PKCS#12, and DIR/anchor.pem (the root). */
static int prepare_chain(out_ctx *oc, fp_ca *ca, fp_error *err)
{
    STACK_OF(X509) *above = fp_ca_get0_chain(ca);
    BIO *b = BIO_new(BIO_s_mem()), *a = BIO_new(BIO_s_mem());
    char *anchor = NULL;
    size_t alen = 0;
    int rc = FP_ERR_OK, n = sk_X509_num(above);

    oc->p12_cas = sk_X509_new_null();
    if (b == NULL || a == NULL || oc->p12_cas == NULL || !PEM_write_bio_X509(b, fp_ca_get0_cert(ca)) ||
        !sk_X509_push(oc->p12_cas, fp_ca_get0_cert(ca)))
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    for (int i = 0; i + 1 < n && rc == FP_ERR_OK; i++)
        if (!PEM_write_bio_X509(b, sk_X509_value(above, i)) ||
            !sk_X509_push(oc->p12_cas, sk_X509_value(above, i)))
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (rc == FP_ERR_OK && (!PEM_write_bio_X509(a, fp_ca_get0_root(ca)) ||
                            (oc->chain_pem = bio_string(b, &oc->chain_len)) == NULL ||
                            (anchor = bio_string(a, &alen)) == NULL))
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (rc == FP_ERR_OK) {
        int fd = openat(oc->dirfd, "anchor.pem", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, anchor, alen) != (ssize_t)alen || close(fd) != 0)
            rc = fp_err_set(err, FP_ERR_IO, "%s/anchor.pem: %s", oc->dir, strerror(errno));
    }
    free(anchor);
    BIO_free(a);
    BIO_free(b);
    return rc;
}

static FILE *create_in(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL && fd >= 0)
        close(fd);
    return f;
}

/* Manifests closed, then the whole output durable: syncfs(2) writes every
 * dirty file and directory of DIR's file system at once (the deferred
 * syncs of every bundle), then DIR itself. */
static int finish_output(out_ctx *oc, fp_error *err)
{
    int rc = FP_ERR_OK;

    pthread_mutex_lock(&oc->lock);
    flush_chunks(oc, true);
    pthread_mutex_unlock(&oc->lock);
    if (oc->json != NULL && fputs(oc->json_rows ? "\n]\n" : "]\n", oc->json) == EOF)
        oc->io_failed = 1;
    for (int i = 0; i < 2; i++) {
        FILE **f = i == 0 ? &oc->csv : &oc->json;
        if (*f != NULL && (fflush(*f) != 0 || fsync(fileno(*f)) != 0))
            oc->io_failed = 1;
        if (*f != NULL && fclose(*f) != 0)
            oc->io_failed = 1;
        *f = NULL;
    }
    if (oc->dirfd >= 0 && (syncfs(oc->dirfd) != 0 || fsync(oc->dirfd) != 0))
        oc->io_failed = 1;
    if (oc->io_failed)
        rc = fp_err_set(err, FP_ERR_IO, "%s: writing or syncing the output: %s", oc->dir,
                        strerror(errno));
    return rc;
}

/* ---- names already minted ---- */

typedef struct skip_scan {
    const fp_name_pattern *pat;
    uint64_t start, count, found;
    uint8_t *bits;
} skip_scan;

/* The commonName values of an RFC 2253 subject string: components are
 * split at unescaped ',' and '+'; a value with an escape can never match
 * a pattern-checked name, so it is passed over. */
static int skip_row(void *arg, const fp_cert_rec *r)
{
    skip_scan *s = arg;
    const char *p = r->subject;

    while (p != NULL && *p) {
        const char *end = p;
        bool esc = false;
        while (*end && *end != ',' && *end != '+') {
            if (*end == '\\') {
                esc = true;
                if (end[1])
                    end++;
            }
            end++;
        }
        if (!esc && end - p > 3 && strncmp(p, "CN=", 3) == 0 && end - p - 3 <= FP_FACTORY_NAME_MAX) {
            char cn[FP_FACTORY_NAME_MAX + 1];
            int64_t idx;
            memcpy(cn, p + 3, (size_t)(end - p - 3));
            cn[end - p - 3] = '\0';
            idx = fp_name_pattern_index(s->pat, cn);
            if (idx >= 0 && (uint64_t)idx >= s->start && (uint64_t)idx - s->start < s->count) {
                uint64_t off = (uint64_t)idx - s->start;
                if (!((s->bits[off / 8] >> (off % 8)) & 1))
                    s->found++;
                s->bits[off / 8] |= (uint8_t)(1u << (off % 8));
            }
        }
        p = *end ? end + 1 : end;
    }
    return FP_ERR_OK;
}

/* ---- mint ---- */

typedef struct mint_args {
    const char *project, *name, *profile, *out, *algo;
    long long count, start;
    bool p12;
    int threads;
} mint_args;

/* The first and the last name of the run, signed requests checked by the
 * issuance path (profile, key algorithm, name rules; refusals audited),
 * before anything is made. */
static int precheck(cli_env *env, const mint_args *a, const fp_name_pattern *pat, fp_error *err)
{
    uint64_t idx[2] = {(uint64_t)a->start, (uint64_t)(a->start + a->count - 1)};
    int rc = FP_ERR_OK;

    for (int i = 0; i < 2 && rc == FP_ERR_OK; i++) {
        char name[FP_FACTORY_NAME_MAX + 1];
        EVP_PKEY *key = NULL;
        X509_REQ *req = NULL;
        const EVP_MD *md = a->algo != NULL && !strcmp(a->algo, "ed25519") ? NULL : EVP_sha256();

        if ((rc = fp_name_pattern_format(pat, idx[i], name, err)) != FP_ERR_OK ||
            (rc = fp_factory_keygen(a->algo, &key, err)) != FP_ERR_OK ||
            (rc = fp_factory_request(key, name, &req, err)) != FP_ERR_OK) {
            EVP_PKEY_free(key);
            break;
        }
        if (X509_REQ_sign(req, key, md) <= 0)
            rc = fp_err_set(err, FP_ERR_CRYPTO, "signing the check request");
        else {
            fp_issue_req ir = {.csr = req, .profile = a->profile, .actor = cli_actor(),
                               .project = a->project, .via = "factory"};
            rc = fp_issue_precheck(env->issuer, env->store, &ir, err);
        }
        X509_REQ_free(req);
        EVP_PKEY_free(key);
    }
    return rc;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int do_mint(cli_env *env, const mint_args *a)
{
    fp_error err = {0};
    fp_name_pattern pat;
    out_ctx oc = {.dirfd = -1};
    skip_scan sk = {0};
    fp_ca *ca = NULL;
    char store_path[FP_PATH_MAX], first[FP_FACTORY_NAME_MAX + 1], last[FP_FACTORY_NAME_MAX + 1];
    uint64_t minted = 0;
    double t0 = now_s(), elapsed;
    int rc, frc;

    pthread_mutex_init(&oc.lock, NULL);
    oc.dir = a->out;
    oc.p12 = a->p12;
    if ((rc = fp_name_pattern_parse(a->name, &pat, &err)) != FP_ERR_OK ||
        (rc = fp_name_pattern_format(&pat, (uint64_t)a->start, first, &err)) != FP_ERR_OK ||
        (rc = fp_name_pattern_format(&pat, (uint64_t)(a->start + a->count - 1), last, &err)) !=
            FP_ERR_OK) {
        rc = cli_usage_error("factory", "%s", err.msg);
        goto done;
    }
    /* the project and its CA, the request as the issuance path sees it,
     * the output directory: all checked before anything is made */
    if ((rc = cli_open_ca(env, &err)) != FP_ERR_OK ||
        (rc = fp_config_path(&env->cfg, env->cfg.store_path, store_path, sizeof(store_path),
                             &err)) != FP_ERR_OK ||
        (rc = fp_issuer_pick(env->issuer, &(fp_issue_req){.project = a->project}, &ca, &err)) !=
            FP_ERR_OK ||
        (rc = precheck(env, a, &pat, &err)) != FP_ERR_OK)
        goto fail;
    /* names already minted (a valid certificate of the project) are
     * skipped: the same command re-run after a crash mints the rest */
    sk.pat = &pat;
    sk.start = (uint64_t)a->start;
    sk.count = (uint64_t)a->count;
    if ((sk.bits = calloc(((size_t)a->count + 7) / 8, 1)) == NULL) {
        rc = fp_err_set(&err, FP_ERR_NOMEM, NULL);
        goto fail;
    }
    {
        fp_cert_filter f = {.status = FP_CERT_VALID, .unexpired_only = true, .project = a->project,
                            .now = fp_now(), .name_contains = pat.prefix[0] ? pat.prefix : NULL};
        if ((rc = fp_store_cert_list(env->store, &f, skip_row, &sk, &err)) != FP_ERR_OK)
            goto fail;
    }
    if ((rc = prepare_out_dir(a->out, &oc.dirfd, &err)) != FP_ERR_OK ||
        (rc = prepare_chain(&oc, ca, &err)) != FP_ERR_OK)
        goto fail;
    if ((oc.csv = create_in(oc.dirfd, "manifest.csv")) == NULL ||
        (oc.json = create_in(oc.dirfd, "manifest.json")) == NULL ||
        fputs("name,serial,sha256,not_after\n", oc.csv) == EOF || fputs("[\n", oc.json) == EOF) {
        rc = fp_err_set(&err, FP_ERR_IO, "%s: manifests: %s", a->out, strerror(errno));
        goto fail;
    }
    {
        fp_factory_opts o = {.issuer = env->issuer, .store_path = store_path,
                             .project = a->project, .profile = a->profile, .actor = cli_actor(),
                             .algo = a->algo, .pattern = pat, .start = (uint64_t)a->start,
                             .count = (uint64_t)a->count, .skip = sk.found ? sk.bits : NULL,
                             .threads = a->threads, .out = bundle_chunk, .out_arg = &oc};
        rc = fp_factory_mint(&o, &minted, &err);
    }
fail:
    /* whatever was minted is in the store: its output is synced too */
    frc = oc.dirfd >= 0 ? finish_output(&oc, rc == FP_ERR_OK ? &err : &(fp_error){0}) : FP_ERR_OK;
    if (rc == FP_ERR_OK)
        rc = frc;
    elapsed = now_s() - t0;
    if (rc != FP_ERR_OK) {
        int code = cli_fail(&err);
        if (minted > 0)
            fprintf(stderr, "fleetpki factory: %" PRIu64 " identities were minted and recorded "
                            "before the failure; re-run the same command with a new --out to "
                            "mint the rest (names already minted are skipped)\n", minted);
        rc = code;
        goto done;
    }
    if (env->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:f, s:I}", "project",
                              a->project, "ca", fp_ca_id(ca), "profile", a->profile, "first",
                              first, "last", last, "minted", (json_int_t)minted, "skipped",
                              (json_int_t)sk.found, "out", a->out, "seconds", elapsed,
                              "peak_rss_kb", (json_int_t)peak_rss_kb());
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("minted %" PRIu64 " identities %s..%s (project %s, CA %s, profile %s), skipped %" PRIu64
               " already minted, into %s\n",
               minted, first, last, a->project, fp_ca_id(ca), a->profile, sk.found, a->out);
        printf("elapsed %.2f s, %.0f identities/s, peak RSS %ld KB\n", elapsed,
               elapsed > 0 ? (double)minted / elapsed : 0.0, peak_rss_kb());
    }
    rc = EXIT_OK;
done:
    if (oc.dirfd >= 0)
        close(oc.dirfd);
    if (oc.csv != NULL)
        fclose(oc.csv);
    if (oc.json != NULL)
        fclose(oc.json);
    free(oc.chain_pem);
    sk_X509_free(oc.p12_cas);
    free(sk.bits);
    pthread_mutex_destroy(&oc.lock);
    return rc;
}

static int parse_ll(const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end || errno != 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cmd_factory(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"project", required_argument, NULL, 'J'},
        {"count", required_argument, NULL, 'n'},
        {"name", required_argument, NULL, 'N'},
        {"profile", required_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},
        {"algo", required_argument, NULL, 'a'},
        {"start", required_argument, NULL, 's'},
        {"p12", no_argument, NULL, '1'},
        {"threads", required_argument, NULL, 't'},
        {"mode", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    mint_args a = {.profile = "device", .start = 1, .count = -1};
    const char *sub, *mode = NULL;
    long long v;
    int c, rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(factory_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    sub = argv[1];
    if (strcmp(sub, "mint") != 0 && strcmp(sub, "floor") != 0)
        return cli_usage_error("factory", "unknown subcommand '%s' (mint, floor)", sub);
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "d:P:J:n:N:p:o:a:s:1t:m:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'J':
            a.project = optarg;
            break;
        case 'n':
            if (parse_ll(optarg, 1, FP_FACTORY_MAX_COUNT, &a.count) != 0)
                return cli_usage_error("factory", "--count must be 1..%d", FP_FACTORY_MAX_COUNT);
            break;
        case 'N':
            a.name = optarg;
            break;
        case 'p':
            a.profile = optarg;
            break;
        case 'o':
            a.out = optarg;
            break;
        case 'a':
            a.algo = optarg;
            break;
        case 's':
            if (parse_ll(optarg, 0, (long long)FP_FACTORY_MAX_INDEX, &a.start) != 0)
                return cli_usage_error("factory", "--start must be 0..%llu",
                                       (unsigned long long)FP_FACTORY_MAX_INDEX);
            break;
        case '1':
            a.p12 = true;
            break;
        case 't':
            if (parse_ll(optarg, 1, 64, &v) != 0)
                return cli_usage_error("factory", "--threads must be 1..64");
            a.threads = (int)v;
            break;
        case 'm':
            mode = optarg;
            break;
        case 'h':
            fputs(factory_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("factory", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("factory", "unexpected argument '%s'", argv[optind]);
    if (a.count < 0)
        return cli_usage_error("factory", "--count is required");
    if (!strcmp(sub, "floor")) {
        fp_error err = {0};
        double secs = 0;
        if (mode == NULL)
            return cli_usage_error("factory", "floor needs --mode keys|sign");
        rc = cli_load_config(&env, &err);
        if (rc == FP_ERR_OK)
            rc = fp_factory_floor(&env.cfg, a.profile, a.algo, mode, (uint64_t)a.count, a.threads,
                                  &secs, &err);
        if (rc != FP_ERR_OK)
            rc = cli_fail(&err);
        else
            printf("floor %s (%s): %lld in %.2f s, %.0f/s\n", mode, a.algo ? a.algo : "p256",
                   a.count, secs, secs > 0 ? (double)a.count / secs : 0.0);
        cli_env_close(&env);
        return rc;
    }
    if (a.project == NULL || a.name == NULL || a.out == NULL)
        return cli_usage_error("factory", "mint needs --project, --count, --name and --out");
    if ((unsigned long long)a.start + (unsigned long long)a.count - 1 > FP_FACTORY_MAX_INDEX)
        return cli_usage_error("factory", "--start + --count - 1 exceeds %llu",
                               (unsigned long long)FP_FACTORY_MAX_INDEX);
    rc = do_mint(&env, &a);
    cli_env_close(&env);
    return rc;
}
