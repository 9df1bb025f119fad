/*
 * credstore.c - the power-cut-safe credential store (docs/device.md).
 *
 * Two slots, 0 and 1, each a pair of files:
 *   credN.key   "fleetpki-cred 1 gen=G\n" + the key as PKCS#8 PEM
 *   credN.crt   "fleetpki-cred 1 gen=G\n" + the chain as PEM, leaf first
 * A slot is valid when both files parse, carry the same generation G, the
 * key matches the leaf and the chain verifies against the anchors.  The
 * current pair is the valid slot with the highest generation; the other
 * valid slot, if any, is the previous pair, kept as the fallback until
 * the current one is confirmed.
 *
 * Rotation writes into the slot that does not hold the confirmed pair:
 *   write credT.key.new, sync, close; write credT.crt.new, sync, close;
 *   rename both over credT.key / credT.crt; sync the directory.
 * Until the directory sync, any subset of those renames may or may not
 * survive a power cut: a slot with one new and one old file has two
 * generations and is invalid, so the untouched confirmed slot is picked.
 * Only the directory sync makes the new pair current for certain; the
 * old slot is touched only by confirm (unlink, then directory sync),
 * which runs after the new pair is durable.  So at every instant the disk
 * holds at least one valid pair, old or new.
 *
 * Provisioning (fleetpki factory mint) writes a first pair into an empty
 * store with the same writer (write_pair), slot 0, generation 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_backend.h"

#define MAX_FILE (64 * 1024)
#define MAGIC "fleetpki-cred 1 gen="

typedef struct {
    fp_device_cred *cred;
    unsigned long long gen;
} slot;

struct fp_credstore {
    const fp_storage *st;
    fpd_errbuf err;
    fpd_certs anchors;
    slot s[2];
    int cur;                   /* -1: none */
    int dirty;                 /* a rotation's directory sync failed */
    unsigned long long maxgen; /* highest generation seen on disk */
};

static void name_of(char *out, size_t size, int n, const char *ext, int tmp)
{
    snprintf(out, size, "cred%d.%s%s", n, ext, tmp ? ".new" : "");
}

/* Whole file into buf (secret-safe), at most MAX_FILE bytes.
 * 1: missing; 0: read; -1: error. */
static int read_file(fp_credstore *s, const char *name, fpd_buf *buf)
{
    fp_storage_file *f = NULL;
    unsigned char chunk[1024];
    int missing = 0, rc = 0;

    if (s->st->open(s->st->ctx, name, 0, &f, &missing) != 0)
        return missing ? 1 : -1;
    for (;;) {
        size_t got = 0;
        if (s->st->read(s->st->ctx, f, chunk, sizeof(chunk), &got) != 0) {
            rc = -1;
            break;
        }
        if (got == 0)
            break;
        if (buf->len + got > MAX_FILE || fpd_buf_add(buf, chunk, got) != 0) {
            rc = -1;
            break;
        }
    }
    memset(chunk, 0, sizeof(chunk));
    s->st->close(s->st->ctx, f);
    return rc;
}

/* Splits "MAGIC G\n" off; returns the payload start or NULL. */
static const char *parse_header(const fpd_buf *b, unsigned long long *gen)
{
    const char *p = (const char *)b->p, *nl;
    char *end;

    if (b->len < sizeof(MAGIC) || memcmp(p, MAGIC, sizeof(MAGIC) - 1) != 0)
        return NULL;
    p += sizeof(MAGIC) - 1;
    if ((nl = memchr(p, '\n', b->len - (size_t)(p - (const char *)b->p))) == NULL ||
        *p < '0' || *p > '9')
        return NULL;
    *gen = strtoull(p, &end, 10);
    return end == nl ? nl + 1 : NULL;
}

/* Loads slot n: 0 valid (out filled), else why not (in s->err). */
static int load_slot(fp_credstore *s, int n, slot *out)
{
    fpd_buf kb = {0}, cb = {0};
    const char *kp, *cp;
    unsigned long long kg = 0, cg = 0;
    char name[32];
    fpd_key *key = NULL;
    fpd_certs chain = {0};
    int rc = FP_DEVICE_ERR_NOT_FOUND, r1, r2;

    memset(out, 0, sizeof(*out));
    name_of(name, sizeof(name), n, "key", 0);
    r1 = read_file(s, name, &kb);
    name_of(name, sizeof(name), n, "crt", 0);
    r2 = read_file(s, name, &cb);
    if (r1 != 0 || r2 != 0) {
        rc = fpd_err(&s->err, r1 < 0 || r2 < 0 ? FP_DEVICE_ERR_STORE : FP_DEVICE_ERR_NOT_FOUND,
                     "slot %d: %s", n, r1 < 0 || r2 < 0 ? "unreadable" : "empty");
        goto out;
    }
    kp = parse_header(&kb, &kg);
    cp = parse_header(&cb, &cg);
    if (kp != NULL && kg > s->maxgen)
        s->maxgen = kg;
    if (cp != NULL && cg > s->maxgen)
        s->maxgen = cg;
    if (kp == NULL || cp == NULL || kg != cg) {
        rc = fpd_err(&s->err, FP_DEVICE_ERR_STORE, "slot %d: key and certificate files do not belong together", n);
        goto out;
    }
    if ((rc = fpd_key_parse((const unsigned char *)kp, kb.len - (size_t)(kp - (char *)kb.p), &key,
                            &s->err)) != FP_DEVICE_OK ||
        (rc = fpd_certs_from_pem(cp, cb.len - (size_t)(cp - (char *)cb.p), &chain, &s->err)) !=
            FP_DEVICE_OK ||
        (rc = fpd_cert_verify(&s->anchors, &chain.v[0], &chain, 0, &s->err)) != FP_DEVICE_OK) {
        fpd_key_free(key);
        goto out;
    }
    if ((rc = fpd_cred_new(key, &chain, &out->cred, &s->err)) != FP_DEVICE_OK)
        goto out;
    out->gen = kg;
out:
    fpd_certs_clear(&chain);
    fpd_buf_free(&kb, 1);
    fpd_buf_free(&cb, 0);
    return rc;
}

static void pick(fp_credstore *s)
{
    s->cur = -1;
    for (int i = 0; i < 2; i++)
        if (s->s[i].cred != NULL && (s->cur < 0 || s->s[i].gen > s->s[s->cur].gen))
            s->cur = i;
}

int fp_credstore_open(const fp_storage *st, const char *anchors_pem, size_t anchors_len,
                      fp_credstore **out)
{
    fp_credstore *s;
    int rc;

    if (st == NULL || anchors_pem == NULL || out == NULL)
        return FP_DEVICE_ERR_ARG;
    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return FP_DEVICE_ERR_NOMEM;
    s->st = st;
    if ((rc = fpd_certs_from_pem(anchors_pem, anchors_len, &s->anchors, &s->err)) != FP_DEVICE_OK) {
        fp_credstore_free(s);
        return rc;
    }
    for (int i = 0; i < 2; i++)
        load_slot(s, i, &s->s[i]);
    pick(s);
    s->err.msg[0] = '\0';
    *out = s;
    return FP_DEVICE_OK;
}

void fp_credstore_free(fp_credstore *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < 2; i++)
        fp_device_cred_free(s->s[i].cred);
    fpd_certs_clear(&s->anchors);
    free(s);
}

const char *fp_credstore_errmsg(const fp_credstore *s)
{
    return s ? s->err.msg : "no store";
}

int fp_credstore_get1_current(fp_credstore *s, fp_device_cred **out)
{
    if (s == NULL || out == NULL)
        return FP_DEVICE_ERR_ARG;
    *out = NULL;
    if (s->cur < 0)
        return fpd_err(&s->err, FP_DEVICE_ERR_NOT_FOUND, "no valid credentials in the store");
    *out = s->s[s->cur].cred;
    (*out)->refs++;
    return FP_DEVICE_OK;
}

int fp_credstore_has_previous(const fp_credstore *s)
{
    return s != NULL && s->cur >= 0 && s->s[1 - s->cur].cred != NULL;
}

/* Writes header + payload to name, synced and closed. */
static int write_file(fp_credstore *s, const char *name, unsigned long long gen, const char *p,
                      size_t len)
{
    fp_storage_file *f = NULL;
    char hdr[64];
    int n = snprintf(hdr, sizeof(hdr), MAGIC "%llu\n", gen), ok;

    if (s->st->open(s->st->ctx, name, 1, &f, NULL) != 0)
        return fpd_err(&s->err, FP_DEVICE_ERR_IO, "cannot create %s", name);
    ok = s->st->write(s->st->ctx, f, hdr, (size_t)n) == 0 &&
         s->st->write(s->st->ctx, f, p, len) == 0 && s->st->sync(s->st->ctx, f) == 0;
    if (s->st->close(s->st->ctx, f) != 0)
        ok = 0;
    return ok ? FP_DEVICE_OK : fpd_err(&s->err, FP_DEVICE_ERR_IO, "cannot write %s", name);
}

static int unlink_slot(fp_credstore *s, int n)
{
    char name[32];
    name_of(name, sizeof(name), n, "key", 0);
    if (s->st->unlink(s->st->ctx, name) != 0)
        return fpd_err(&s->err, FP_DEVICE_ERR_IO, "cannot remove %s", name);
    name_of(name, sizeof(name), n, "crt", 0);
    if (s->st->unlink(s->st->ctx, name) != 0)
        return fpd_err(&s->err, FP_DEVICE_ERR_IO, "cannot remove %s", name);
    if (s->st->sync(s->st->ctx, NULL) != 0)
        return fpd_err(&s->err, FP_DEVICE_ERR_IO, "cannot sync the directory");
    return FP_DEVICE_OK;
}

/* Writes a pair into slot t at generation gen as a rotation does: both
 * files as .new, each synced and closed, then renamed into place.  The
 * directory sync is the caller's. */
static int write_pair(fp_credstore *s, int t, unsigned long long gen, const char *kpem,
                      size_t klen, const char *cpem, size_t clen)
{
    char from[32], to[32];
    int rc;

    name_of(from, sizeof(from), t, "key", 1);
    if ((rc = write_file(s, from, gen, kpem, klen)) != FP_DEVICE_OK)
        return rc;
    name_of(from, sizeof(from), t, "crt", 1);
    if ((rc = write_file(s, from, gen, cpem, clen)) != FP_DEVICE_OK)
        return rc;
    for (int i = 0; i < 2; i++) {
        const char *ext = i == 0 ? "key" : "crt";
        name_of(from, sizeof(from), t, ext, 1);
        name_of(to, sizeof(to), t, ext, 0);
        if (s->st->rename(s->st->ctx, from, to) != 0)
            return fpd_err(&s->err, FP_DEVICE_ERR_IO, "cannot rename %s", from);
    }
    return FP_DEVICE_OK;
}

int fp_credstore_rotate(fp_credstore *s, fp_device_cred *c)
{
    char *kpem = NULL, *cpem = NULL;
    size_t klen = 0, clen = 0;
    unsigned long long gen;
    int t, rc;

    if (s == NULL || c == NULL)
        return FP_DEVICE_ERR_ARG;
    /* what goes in must be what load_slot accepts */
    if ((rc = fpd_cert_matches_key(&c->chain.v[0], c->key, &s->err)) != FP_DEVICE_OK ||
        (rc = fpd_cert_verify(&s->anchors, &c->chain.v[0], &c->chain, 0, &s->err)) != FP_DEVICE_OK)
        return rc;
    /* the target: never the slot of the confirmed pair (the one pair
     * when there is one; the previous one when two) */
    if (s->cur < 0)
        t = 0;
    else if (fp_credstore_has_previous(s))
        t = s->cur;
    else
        t = 1 - s->cur;
    gen = s->maxgen + 1;
    if ((rc = fpd_key_to_pem(c->key, &kpem, &klen, &s->err)) != FP_DEVICE_OK ||
        (rc = fpd_certs_to_pem(&c->chain, &cpem, &clen, &s->err)) != FP_DEVICE_OK)
        goto out;
    if ((rc = write_pair(s, t, gen, kpem, klen, cpem, clen)) != FP_DEVICE_OK)
        goto out;
    /* from here on the new pair is in place; the slot in memory follows
     * even if the directory sync fails (the disk then holds old or new) */
    s->maxgen = gen;
    fp_device_cred_free(s->s[t].cred);
    c->refs++;
    s->s[t].cred = c;
    s->s[t].gen = gen;
    pick(s);
    if (s->st->sync(s->st->ctx, NULL) != 0) {
        s->dirty = 1; /* confirm must not drop the old pair before this */
        rc = fpd_err(&s->err, FP_DEVICE_ERR_IO, "cannot sync the directory");
        goto out;
    }
    s->dirty = 0;
    rc = FP_DEVICE_OK;
out:
    fp_device_secret_free(kpem, klen);
    free(cpem);
    return rc;
}

int fp_credstore_confirm(fp_credstore *s)
{
    int p, rc;

    if (s == NULL)
        return FP_DEVICE_ERR_ARG;
    if (!fp_credstore_has_previous(s))
        return FP_DEVICE_OK;
    /* the new pair's renames must be durable before the old pair goes */
    if (s->dirty && s->st->sync(s->st->ctx, NULL) != 0)
        return fpd_err(&s->err, FP_DEVICE_ERR_IO, "cannot sync the directory");
    s->dirty = 0;
    p = 1 - s->cur;
    if ((rc = unlink_slot(s, p)) != FP_DEVICE_OK)
        return rc;
    fp_device_cred_free(s->s[p].cred);
    s->s[p].cred = NULL;
    return FP_DEVICE_OK;
}

int fp_credstore_rollback(fp_credstore *s)
{
    int c, rc;

    if (s == NULL)
        return FP_DEVICE_ERR_ARG;
    if (!fp_credstore_has_previous(s))
        return fpd_err(&s->err, FP_DEVICE_ERR_NOT_FOUND, "no previous pair to go back to");
    c = s->cur;
    if ((rc = unlink_slot(s, c)) != FP_DEVICE_OK)
        return rc;
    fp_device_cred_free(s->s[c].cred);
    s->s[c].cred = NULL;
    pick(s);
    return FP_DEVICE_OK;
}

int fp_credstore_provision(const fp_storage *st, const char *key_pem, size_t key_len,
                           const char *chain_pem, size_t chain_len)
{
    fp_credstore tmp;
    char name[32];

    if (st == NULL || key_pem == NULL || chain_pem == NULL || key_len == 0 || chain_len == 0)
        return FP_DEVICE_ERR_ARG;
    memset(&tmp, 0, sizeof(tmp));
    tmp.st = st;
    tmp.cur = -1;
    /* a first pair only: never over credentials a store already holds */
    for (int n = 0; n < 4; n++) {
        fp_storage_file *f = NULL;
        int missing = 0;

        name_of(name, sizeof(name), n / 2, n % 2 ? "crt" : "key", 0);
        if (st->open(st->ctx, name, 0, &f, &missing) == 0) {
            st->close(st->ctx, f);
            return FP_DEVICE_ERR_STORE;
        }
        if (!missing)
            return FP_DEVICE_ERR_IO;
    }
    if (write_pair(&tmp, 0, 1, key_pem, key_len, chain_pem, chain_len) != FP_DEVICE_OK)
        return FP_DEVICE_ERR_IO;
    return st->sync(st->ctx, NULL) == 0 ? FP_DEVICE_OK : FP_DEVICE_ERR_IO;
}
