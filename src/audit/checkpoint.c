/*
 * checkpoint.c - signed audit checkpoints; see checkpoint.h.
 *
 * The checkpointer is one thread with its own store handle: it wakes every
 * interval (or when told to stop), reads the chain head in one read
 * transaction, signs it through the signer interface (a key file, a token,
 * or the signer process: the audit key is a CA-grade key) and appends the
 * line.  A failure (token away) is logged and retried at the next tick.
 */
#define _GNU_SOURCE
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../common/util.h"
#include "../ca/config.h"
#include "../x509/x509util.h"

#define PREFIX "fleetpki-audit-checkpoint v1 "
#define SIG_B64_MAX 700 /* RSA 4096: 512 bytes, 684 base64 characters */

/* ---- one checkpoint ---- */

static int sign_bytes(fp_signer *key, const char *msg, size_t len, unsigned char **sig,
                      size_t *siglen, fp_error *err)
{
    fp_sign_stream *st = NULL;
    int rc;
    if ((rc = fp_signer_stream_new(key, &st, err)) == FP_ERR_OK &&
        (rc = fp_signer_stream_update(st, msg, len, err)) == FP_ERR_OK)
        rc = fp_signer_stream_final(st, sig, siglen, err);
    fp_signer_stream_free(st);
    return rc;
}

int fp_checkpoint_make(fp_store *store, fp_signer *key, int64_t now, char *line, size_t size,
                       fp_error *err)
{
    char hash[65], b64[1024];
    unsigned char *sig = NULL;
    size_t siglen = 0;
    int64_t seq = 0;
    int n, rc;

    if ((rc = fp_store_audit_head(store, &seq, hash, err)) != FP_ERR_OK)
        return rc;
    n = snprintf(line, size, PREFIX "seq=%" PRId64 " hash=%s time=%" PRId64, seq, hash, now);
    if (n < 0 || (size_t)n >= size)
        return fp_err_set(err, FP_ERR_TOO_LARGE, "checkpoint line");
    if ((rc = sign_bytes(key, line, (size_t)n, &sig, &siglen, err)) != FP_ERR_OK)
        return rc;
    if (siglen > 3 * (sizeof(b64) / 4) - 3) {
        OPENSSL_free(sig);
        return fp_err_set(err, FP_ERR_TOO_LARGE, "checkpoint signature");
    }
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
    OPENSSL_free(sig);
    if (snprintf(line + n, size - (size_t)n, " sig=%s\n", b64) >= (int)(size - (size_t)n))
        return fp_err_set(err, FP_ERR_TOO_LARGE, "checkpoint line");
    return FP_ERR_OK;
}

int fp_checkpoint_append(const char *path, const char *line, bool use_syslog, fp_error *err)
{
    size_t len = strlen(line);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    ssize_t w;

    if (fd < 0)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", path, strerror(errno));
    /* one write of one line: O_APPEND keeps concurrent writers' lines whole */
    w = write(fd, line, len);
    if (w != (ssize_t)len || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return fp_err_set(err, FP_ERR_IO, "%s: %s", path, strerror(e));
    }
    close(fd);
    if (use_syslog)
        syslog(LOG_AUTHPRIV | LOG_NOTICE, "%.*s", (int)(len > 0 ? len - 1 : 0), line);
    return FP_ERR_OK;
}

/* ---- verification ---- */

typedef struct cp {
    int lineno;
    int64_t seq, time;
    char hash[65];
    bool found; /* the chain reached seq */
    char chain_hash[65];
} cp;

/* Parse one line strictly; the signed part is line[0..*signed_len). */
static bool parse_line(const char *line, cp *c, size_t *signed_len, unsigned char *sig,
                       size_t *siglen)
{
    const char *p = line, *s;
    char *end = NULL;
    size_t b64len;
    int n;

    if (strncmp(p, PREFIX "seq=", strlen(PREFIX "seq=")) != 0)
        return false;
    p += strlen(PREFIX "seq=");
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    c->seq = strtoll(p, &end, 10);
    if (errno || strncmp(end, " hash=", 6) != 0)
        return false;
    p = end + 6;
    for (int i = 0; i < 64; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    memcpy(c->hash, p, 64);
    c->hash[64] = '\0';
    p += 64;
    if (strncmp(p, " time=", 6) != 0 || p[6] < '0' || p[6] > '9')
        return false;
    c->time = strtoll(p + 6, &end, 10);
    if (errno || strncmp(end, " sig=", 5) != 0)
        return false;
    *signed_len = (size_t)(end - line);
    s = end + 5;
    b64len = strlen(s);
    if (b64len == 0 || b64len % 4 != 0 || b64len > SIG_B64_MAX * 2)
        return false;
    n = EVP_DecodeBlock(sig, (const unsigned char *)s, (int)b64len);
    if (n < 0)
        return false;
    /* EVP_DecodeBlock counts the padding as zero bytes */
    if (s[b64len - 1] == '=')
        n--;
    if (s[b64len - 2] == '=')
        n--;
    *siglen = (size_t)n;
    return true;
}

static int verify_sig(EVP_PKEY *pub, const char *msg, size_t len, const unsigned char *sig,
                      size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = fp_key_sig_md(pub);
    int ok = ctx != NULL &&
             EVP_DigestVerifyInit_ex(ctx, NULL, md ? EVP_MD_get0_name(md) : NULL, NULL, NULL, pub,
                                     NULL) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

typedef struct walk {
    cp *cps;
    int n;
    int next; /* cps sorted by seq: the next one to meet */
    int64_t rows;
} walk;

static int walk_row(void *arg, const fp_audit_row *r)
{
    walk *w = arg;
    w->rows = r->id;
    /* every checkpoint at this seq (several lines may share one) */
    for (int i = 0; i < w->n; i++)
        if (w->cps[i].seq == r->id) {
            w->cps[i].found = true;
            snprintf(w->cps[i].chain_hash, sizeof(w->cps[i].chain_hash), "%s", r->hash);
        }
    return FP_ERR_OK;
}

int fp_checkpoint_verify(fp_store *store, const char *path, EVP_PKEY *pub,
                         fp_checkpoint_report *rep, fp_error *err)
{
    FILE *f = fopen(path, "re");
    char line[FP_CHECKPOINT_LINE_MAX + 2];
    unsigned char sig[SIG_B64_MAX * 2];
    walk w = {NULL, 0, 0, 0};
    int lineno = 0, cap = 0, rc = FP_ERR_OK;

    memset(rep, 0, sizeof(*rep));
    if (f == NULL)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line), signed_len = 0, siglen = 0;
        cp c;
        lineno++;
        if (len == 0 || line[len - 1] != '\n') {
            rc = fp_err_set(err, FP_ERR_AUDIT, "%s line %d: truncated or too long", path, lineno);
            goto out;
        }
        line[--len] = '\0';
        memset(&c, 0, sizeof(c));
        c.lineno = lineno;
        if (!parse_line(line, &c, &signed_len, sig, &siglen)) {
            rc = fp_err_set(err, FP_ERR_AUDIT, "%s line %d: not a checkpoint", path, lineno);
            goto out;
        }
        if (!verify_sig(pub, line, signed_len, sig, siglen)) {
            rc = fp_err_set(err, FP_ERR_AUDIT,
                            "checkpoint at %s line %d (seq %" PRId64 "): signature does not "
                            "verify with the audit key", path, lineno, c.seq);
            goto out;
        }
        if (w.n == cap) {
            cp *nc = realloc(w.cps, (size_t)(cap ? cap * 2 : 64) * sizeof(*nc));
            if (nc == NULL) {
                rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
                goto out;
            }
            w.cps = nc;
            cap = cap ? cap * 2 : 64;
        }
        w.cps[w.n++] = c;
    }
    if (ferror(f)) {
        rc = fp_err_set(err, FP_ERR_IO, "%s: read error", path);
        goto out;
    }
    /* the chain as the database has it now */
    if ((rc = fp_store_audit_iter(store, walk_row, &w, err)) != FP_ERR_OK)
        goto out;
    /* the first checkpoint, in file order, the database no longer matches */
    for (int i = 0; i < w.n; i++) {
        cp *c = &w.cps[i];
        if (c->seq == 0 && !strcmp(c->hash, FP_AUDIT_GENESIS))
            continue; /* taken on an empty log */
        if (!c->found) {
            rc = fp_err_set(err, FP_ERR_AUDIT,
                            "checkpoint at %s line %d (seq %" PRId64 "): the audit log no "
                            "longer has row %" PRId64 " (it ends at %" PRId64 ")",
                            path, c->lineno, c->seq, c->seq, w.rows);
            goto out;
        }
        if (strcmp(c->hash, c->chain_hash) != 0) {
            rc = fp_err_set(err, FP_ERR_AUDIT,
                            "checkpoint at %s line %d (seq %" PRId64 ") no longer matches: "
                            "the audit log up to row %" PRId64 " was rewritten",
                            path, c->lineno, c->seq, c->seq);
            goto out;
        }
        rep->checked++;
        rep->last_seq = c->seq;
    }
out:
    free(w.cps);
    fclose(f);
    return rc;
}

/* ---- the background checkpointer ---- */

struct fp_checkpointer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stop;
    fp_store *store;
    fp_signer *key;
    char file[FP_PATH_MAX];
    int interval;
    bool syslog;
};

static void checkpoint_once(fp_checkpointer *c, const char *why)
{
    char line[FP_CHECKPOINT_LINE_MAX + 2];
    fp_error err = {0};
    if (fp_checkpoint_make(c->store, c->key, fp_now(), line, sizeof(line), &err) != FP_ERR_OK ||
        fp_checkpoint_append(c->file, line, c->syslog, &err) != FP_ERR_OK) {
        fp_log(FP_LOG_WARN, "audit checkpoint (%s): %s", why, fp_err_str(&err));
        return;
    }
    fp_log(FP_LOG_DEBUG, "audit checkpoint (%s) appended to %s", why, c->file);
}

static void *run(void *arg)
{
    fp_checkpointer *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += c->interval;
        while (!c->stop && pthread_cond_timedwait(&c->wake, &c->mu, &until) != ETIMEDOUT)
            ;
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->mu);
        checkpoint_once(c, "interval");
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int fp_checkpointer_start(const char *store_path, fp_signer *key, const char *file,
                          int interval, bool syslog, fp_checkpointer **out, fp_error *err)
{
    fp_checkpointer *c = calloc(1, sizeof(*c));
    int rc;

    *out = NULL;
    if (c == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (strlen(file) >= sizeof(c->file) || interval < 1) {
        free(c);
        return fp_err_set(err, FP_ERR_CONFIG, "audit checkpoint file or interval");
    }
    snprintf(c->file, sizeof(c->file), "%s", file);
    c->key = key;
    c->interval = interval;
    c->syslog = syslog;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->wake, NULL);
    if ((rc = fp_store_open(store_path, &c->store, err)) != FP_ERR_OK) {
        free(c);
        return rc;
    }
    if (syslog)
        openlog("fleetpki", LOG_PID, LOG_AUTHPRIV);
    /* the first one now: a start is a point worth anchoring, and a key or
     * file that does not work stops the start instead of failing later */
    {
        char line[FP_CHECKPOINT_LINE_MAX + 2];
        if ((rc = fp_checkpoint_make(c->store, key, fp_now(), line, sizeof(line), err)) !=
                FP_ERR_OK ||
            (rc = fp_checkpoint_append(c->file, line, syslog, err)) != FP_ERR_OK) {
            fp_err_prefix(err, "audit checkpoint: ");
            fp_store_close(c->store);
            free(c);
            return rc;
        }
    }
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        fp_store_close(c->store);
        free(c);
        return fp_err_set(err, FP_ERR_INTERNAL, "checkpoint thread");
    }
    *out = c;
    return FP_ERR_OK;
}

void fp_checkpointer_stop(fp_checkpointer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    checkpoint_once(c, "shutdown");
    fp_store_close(c->store);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->wake);
    free(c);
}
