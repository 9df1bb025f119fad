/*
 * test_device_powercut.c - the credential store survives a power cut at
 * every single storage call of a rotation, confirm and rollback (issue 12).
 *
 * The "disk" model (fault storage below):
 *  - a file's bytes are durable once sync(file) returned; unsynced writes
 *    (and truncation by open-for-write) are lost at a crash;
 *  - creates, renames and unlinks are durable once sync(NULL) (the
 *    directory) returned.  Before that, at a crash, each name they touched
 *    independently has its old or its new binding (any subset of the
 *    changes, in any order, reached the disk): the test reboots once for
 *    every combination;
 *  - fault point k: the k-th call of open-for-write, write, sync, rename
 *    or unlink fails and does not happen, and every later call (any kind)
 *    fails too (the power is gone).
 * After each crash the test "reboots": a new store over what the disk
 * kept must yield exactly one valid pair, old or new, with its own key,
 * never none and never a mixed pair; and a new rotation from there works.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fleetpki/device.h"

/* ---- the fault-injecting in-memory disk ---- */

#define MAXF 32
#define MAXOPS 64

typedef struct {
    unsigned char *vol, *dur; /* volatile and durable contents */
    size_t vlen, dlen;
    int used;
} inode;

typedef struct {
    char name[32];
    int ino; /* -1: free entry */
} dent;

typedef struct {
    int kind; /* 'r' rename, 'u' unlink, 'c' create */
    char a[32], b[32];
    int ino;
} nsop;

typedef struct {
    inode ino[MAXF * 2];
    dent vol[MAXF], dur[MAXF];
    nsop pending[MAXOPS];
    int npending;
    long calls, fail_at; /* fail_at < 0: never */
    int dead;
} disk;

struct fp_storage_file {
    int ino;
    size_t pos; /* read position */
};

static int lookup(dent *ns, const char *name)
{
    for (int i = 0; i < MAXF; i++)
        if (ns[i].ino >= 0 && !strcmp(ns[i].name, name))
            return i;
    return -1;
}

static void ns_set(dent *ns, const char *name, int ino)
{
    int i = lookup(ns, name);
    if (i < 0)
        for (i = 0; i < MAXF && ns[i].ino >= 0; i++)
            ;
    assert_true(i < MAXF);
    snprintf(ns[i].name, sizeof(ns[i].name), "%s", name);
    ns[i].ino = ino;
}

static void ns_del(dent *ns, const char *name)
{
    int i = lookup(ns, name);
    if (i >= 0)
        ns[i].ino = -1;
}

static void apply(dent *ns, const nsop *op)
{
    if (op->kind == 'c') {
        ns_set(ns, op->a, op->ino);
    } else if (op->kind == 'u') {
        ns_del(ns, op->a);
    } else {
        int i = lookup(ns, op->a);
        /* (only applied to the running namespace, where the source exists;
         * f_rename checked) */
        if (i >= 0) {
            int ino = ns[i].ino;
            ns[i].ino = -1;
            ns_set(ns, op->b, ino);
        }
    }
}

/* Counts a mutating call; 0 when it may proceed. */
static int tick(disk *d)
{
    if (d->dead)
        return -1;
    if (d->fail_at >= 0 && d->calls++ == d->fail_at) {
        d->dead = 1;
        return -1;
    }
    return 0;
}

static void record(disk *d, int kind, const char *a, const char *b, int ino)
{
    assert_true(d->npending < MAXOPS);
    nsop *op = &d->pending[d->npending++];
    op->kind = kind;
    snprintf(op->a, sizeof(op->a), "%s", a);
    snprintf(op->b, sizeof(op->b), "%s", b ? b : "");
    op->ino = ino;
}

static int f_open(void *ctx, const char *name, int write, fp_storage_file **f, int *missing)
{
    disk *d = ctx;
    int i = lookup(d->vol, name), ino;

    if (missing)
        *missing = 0;
    if (!write) {
        if (d->dead)
            return -1;
        if (i < 0) {
            if (missing)
                *missing = 1;
            return -1;
        }
        ino = d->vol[i].ino;
    } else {
        if (tick(d) != 0)
            return -1;
        if (i >= 0) {
            ino = d->vol[i].ino;
            d->ino[ino].vlen = 0; /* O_TRUNC: durable at the next fsync */
        } else {
            for (ino = 0; ino < MAXF * 2 && d->ino[ino].used; ino++)
                ;
            assert_true(ino < MAXF * 2);
            memset(&d->ino[ino], 0, sizeof(d->ino[ino]));
            d->ino[ino].used = 1;
            ns_set(d->vol, name, ino);
            record(d, 'c', name, NULL, ino);
        }
    }
    *f = malloc(sizeof(**f));
    assert_non_null(*f);
    (*f)->ino = ino;
    (*f)->pos = 0;
    return 0;
}

static int f_read(void *ctx, fp_storage_file *f, void *buf, size_t len, size_t *got)
{
    disk *d = ctx;
    inode *in = &d->ino[f->ino];
    size_t n;

    if (d->dead)
        return -1;
    n = in->vlen - f->pos < len ? in->vlen - f->pos : len;
    if (n)
        memcpy(buf, in->vol + f->pos, n);
    f->pos += n;
    *got = n;
    return 0;
}

static int f_write(void *ctx, fp_storage_file *f, const void *buf, size_t len)
{
    disk *d = ctx;
    inode *in = &d->ino[f->ino];
    if (tick(d) != 0)
        return -1;
    in->vol = realloc(in->vol, in->vlen + len);
    assert_non_null(in->vol);
    memcpy(in->vol + in->vlen, buf, len);
    in->vlen += len;
    return 0;
}

static int f_sync(void *ctx, fp_storage_file *f)
{
    disk *d = ctx;
    if (tick(d) != 0)
        return -1;
    if (f == NULL) {
        memcpy(d->dur, d->vol, sizeof(d->vol));
        d->npending = 0;
    } else {
        inode *in = &d->ino[f->ino];
        free(in->dur);
        in->dur = in->vlen ? malloc(in->vlen) : NULL;
        if (in->vlen)
            memcpy(in->dur, in->vol, in->vlen);
        in->dlen = in->vlen;
    }
    return 0;
}

static int f_close(void *ctx, fp_storage_file *f)
{
    (void)ctx;
    free(f);
    return 0;
}

static int f_rename(void *ctx, const char *from, const char *to)
{
    disk *d = ctx;
    int i;
    if (tick(d) != 0)
        return -1;
    if ((i = lookup(d->vol, from)) < 0)
        return -1;
    record(d, 'r', from, to, -1);
    apply(d->vol, &d->pending[d->npending - 1]);
    return 0;
}

static int f_unlink(void *ctx, const char *name)
{
    disk *d = ctx;
    if (tick(d) != 0)
        return -1;
    record(d, 'u', name, NULL, -1);
    ns_del(d->vol, name);
    return 0;
}

static void disk_init(disk *d)
{
    memset(d, 0, sizeof(*d));
    for (int i = 0; i < MAXF; i++)
        d->vol[i].ino = d->dur[i].ino = -1;
    d->fail_at = -1;
}

static void disk_free(disk *d)
{
    for (int i = 0; i < MAXF * 2; i++) {
        free(d->ino[i].vol);
        free(d->ino[i].dur);
    }
}

/* The names the unsynced directory operations touched. */
static int touched(const disk *d, char names[][32], int max)
{
    int n = 0;
    for (int i = 0; i < d->npending; i++)
        for (int j = 0; j < 2; j++) {
            const char *nm = j ? d->pending[i].b : d->pending[i].a;
            int seen = nm[0] == '\0';
            for (int k = 0; k < n && !seen; k++)
                seen = !strcmp(names[k], nm);
            if (!seen) {
                assert_true(n < max);
                snprintf(names[n++], 32, "%s", nm);
            }
        }
    return n;
}

/* The disk after a power cut: file contents as last synced; each name an
 * unsynced directory operation touched has its new binding (present or
 * gone) when its bit in mask is set, its durable one otherwise: any
 * subset of the directory changes, in any order, reached the disk. */
static void crash(const disk *d, unsigned mask, disk *out)
{
    char names[16][32];
    int n = touched(d, names, 16);

    disk_init(out);
    memcpy(out->vol, d->dur, sizeof(d->dur));
    for (int i = 0; i < n; i++) {
        int v;
        if (!(mask & (1u << i)))
            continue;
        if ((v = lookup((dent *)d->vol, names[i])) >= 0)
            ns_set(out->vol, names[i], d->vol[v].ino);
        else
            ns_del(out->vol, names[i]);
    }
    memcpy(out->dur, out->vol, sizeof(out->vol));
    for (int i = 0; i < MAXF * 2; i++) {
        const inode *in = &d->ino[i];
        if (!in->used)
            continue;
        out->ino[i].used = 1;
        if (in->dlen) {
            out->ino[i].vol = malloc(in->dlen);
            out->ino[i].dur = malloc(in->dlen);
            memcpy(out->ino[i].vol, in->dur, in->dlen);
            memcpy(out->ino[i].dur, in->dur, in->dlen);
        }
        out->ino[i].vlen = out->ino[i].dlen = in->dlen;
    }
}

static fp_storage storage_of(disk *d)
{
    fp_storage s = {d, f_open, f_read, f_write, f_sync, f_close, f_rename, f_unlink};
    return s;
}

/* ---- credentials made for the test ---- */

static char anchor_pem[4096];
static EVP_PKEY *ca_key;
static X509 *ca_cert;

typedef struct {
    char key[1024], cert[2048];
    fp_device_cred *cred;
} pair;

static void to_pem(BIO *b, char *out, size_t size)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    assert_true(n > 0 && (size_t)n < size);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, int ca, long serial)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, ca ? n : X509_get_subject_name(ca_cert));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, ca ? x : ca_cert, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ca) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, ca ? key : ca_key, EVP_sha256()) > 0);
    X509_NAME_free(n);
    return x;
}

static void make_pair(pair *p, const char *cn, long serial)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = make_cert(k, cn, 0, serial);
    BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());

    assert_true(PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL));
    assert_true(PEM_write_bio_X509(cb, x));
    to_pem(kb, p->key, sizeof(p->key));
    to_pem(cb, p->cert, sizeof(p->cert));
    assert_int_equal(fp_device_cred_from_pem(p->key, strlen(p->key), p->cert, strlen(p->cert), &p->cred), 0);
    BIO_free(kb);
    BIO_free(cb);
    X509_free(x);
    EVP_PKEY_free(k);
}

static pair P[4];

static int setup(void **state)
{
    BIO *b = BIO_new(BIO_s_mem());
    (void)state;
    ca_key = EVP_EC_gen("P-256");
    ca_cert = make_cert(ca_key, "Test Root", 1, 1);
    PEM_write_bio_X509(b, ca_cert);
    to_pem(b, anchor_pem, sizeof(anchor_pem));
    BIO_free(b);
    for (int i = 0; i < 4; i++) {
        char cn[16];
        snprintf(cn, sizeof(cn), "dev-%d", i);
        make_pair(&P[i], cn, 10 + i);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++)
        fp_device_cred_free(P[i].cred);
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    return 0;
}

/* Which of P the store's current pair is (-1: none); fails on a pair
 * that is none of them or whose key is not its certificate's. */
static int current_of(disk *d)
{
    fp_storage st = storage_of(d);
    fp_credstore *s = NULL;
    fp_device_cred *c = NULL;
    char *k = NULL, *ch = NULL;
    size_t kl = 0, cl = 0;
    int which = -1;

    assert_int_equal(fp_credstore_open(&st, anchor_pem, strlen(anchor_pem), &s), 0);
    if (fp_credstore_get1_current(s, &c) == 0) {
        assert_int_equal(fp_device_cred_key_pem(c, &k, &kl), 0);
        assert_int_equal(fp_device_cred_chain_pem(c, &ch, &cl), 0);
        for (int i = 0; i < 4; i++)
            if (!strcmp(ch, P[i].cert)) {
                /* the key stored with it is its own (as the backend
                 * writes it: PKCS#8 or SEC1) */
                char *pk = NULL;
                size_t pkl = 0;
                assert_int_equal(fp_device_cred_key_pem(P[i].cred, &pk, &pkl), 0);
                assert_string_equal(k, pk);
                fp_device_secret_free(pk, pkl);
                which = i;
            }
        assert_true(which >= 0);
    }
    fp_device_secret_free(k, kl);
    fp_device_buf_free(ch);
    fp_device_cred_free(c);
    fp_credstore_free(s);
    return which;
}

/* Runs op on a store over d (fresh open, as after a boot). */
typedef int (*store_op)(fp_credstore *s);

static int op_rotate2_confirm(fp_credstore *s)
{
    int rc = fp_credstore_rotate(s, P[2].cred);
    return rc ? rc : fp_credstore_confirm(s);
}

static int op_rotate2(fp_credstore *s)
{
    return fp_credstore_rotate(s, P[2].cred);
}

static int op_rollback(fp_credstore *s)
{
    return fp_credstore_rollback(s);
}

static int run_op(disk *d, store_op op)
{
    fp_storage st = storage_of(d);
    fp_credstore *s = NULL;
    int rc;
    assert_int_equal(fp_credstore_open(&st, anchor_pem, strlen(anchor_pem), &s), 0);
    rc = op(s);
    fp_credstore_free(s);
    return rc;
}

/* Builds the starting disk: P[0] confirmed, and P[1] rotated in but not
 * confirmed when two_pairs. */
static void start_disk(disk *d, int two_pairs)
{
    fp_storage st;
    fp_credstore *s = NULL;
    disk_init(d);
    st = storage_of(d);
    assert_int_equal(fp_credstore_open(&st, anchor_pem, strlen(anchor_pem), &s), 0);
    assert_int_equal(fp_credstore_rotate(s, P[0].cred), 0);
    if (two_pairs)
        assert_int_equal(fp_credstore_rotate(s, P[1].cred), 0);
    fp_credstore_free(s);
    d->calls = 0;
}

/* Every fault point of op on the starting disk, every combination of
 * unsynced directory changes:
 * the rebooted store holds one of allowed[] (never none), and a rotation
 * to P[3] from there succeeds and survives a clean reboot. */
static void powercut_all(int two_pairs, store_op op, const int *allowed, int nallowed,
                         int want_after, long want_points)
{
    long k;
    int reboots = 0;

    for (k = 0;; k++) {
        disk d;
        int rc, completed;
        start_disk(&d, two_pairs);
        d.fail_at = k;
        rc = run_op(&d, op);
        completed = !d.dead;
        if (completed) {
            /* no fault hit: the whole operation ran */
            assert_int_equal(rc, 0);
            assert_int_equal(current_of(&d), want_after);
        } else {
            assert_int_not_equal(rc, 0);
        }
        char names[16][32];
        unsigned combos = 1u << touched(&d, names, 16);
        for (unsigned mask = 0; mask < combos; mask++) {
            disk after, again;
            int cur, ok = 0;
            crash(&d, mask, &after);
            cur = current_of(&after);
            for (int i = 0; i < nallowed; i++)
                ok |= cur == allowed[i];
            /* a completed operation is durable: the power cut right after
             * it must find its result */
            if (completed)
                ok = cur == want_after;
            if (!ok)
                fail_msg("fault at call %ld, directory changes kept %#x of %u: current pair %d", k,
                         mask, combos - 1, cur);
            reboots++;
            /* recovery: rotate again after the reboot, then reboot clean */
            after.fail_at = -1;
            {
                fp_storage st = storage_of(&after);
                fp_credstore *s = NULL;
                assert_int_equal(fp_credstore_open(&st, anchor_pem, strlen(anchor_pem), &s), 0);
                assert_int_equal(fp_credstore_rotate(s, P[3].cred), 0);
                fp_credstore_free(s);
            }
            crash(&after, 0, &again);
            assert_int_equal(current_of(&again), 3);
            disk_free(&after);
            disk_free(&again);
        }
        disk_free(&d);
        if (completed)
            break;
    }
    /* every storage call of the operation was a fault point (a rotation:
     * 2 x (open, write header, write PEM, sync), 2 renames, 1 directory
     * sync; confirm and rollback: 2 unlinks, 1 directory sync) */
    assert_int_equal(k, want_points);
    print_message("%ld fault points, %d reboots checked\n", k, reboots);
}

static void test_rotate_and_confirm(void **state)
{
    static const int allowed[] = {0, 2};
    (void)state;
    powercut_all(0, op_rotate2_confirm, allowed, 2, 2, 14);
}

static void test_rotate_over_unconfirmed(void **state)
{
    /* P[0] confirmed, P[1] current but unconfirmed: rotating to P[2]
     * may lose P[1] (never used successfully) but never P[0] */
    static const int allowed[] = {0, 1, 2};
    (void)state;
    powercut_all(1, op_rotate2, allowed, 3, 2, 11);
}

static void test_rollback(void **state)
{
    static const int allowed[] = {0, 1};
    (void)state;
    powercut_all(1, op_rollback, allowed, 2, 0, 3);
}

static void test_mismatched_pair_refused(void **state)
{
    /* a slot whose key is not its certificate's (same generation, as a
     * corrupt write could leave) is never picked */
    disk d;
    fp_storage st;
    fp_credstore *s = NULL;
    (void)state;
    start_disk(&d, 1); /* slot 0: P0 gen 1, slot 1: P1 gen 2 */
    for (int i = 0; i < MAXF; i++)
        if (d.vol[i].ino >= 0 && !strcmp(d.vol[i].name, "cred1.key")) {
            /* replace slot 1's key with P2's key, keeping gen=2 */
            inode *in = &d.ino[d.vol[i].ino];
            char buf[1200];
            int n = snprintf(buf, sizeof(buf), "fleetpki-cred 1 gen=2\n%s", P[2].key);
            free(in->vol);
            in->vol = malloc((size_t)n);
            memcpy(in->vol, buf, (size_t)n);
            in->vlen = (size_t)n;
        }
    assert_int_equal(current_of(&d), 0);
    disk_free(&d);

    /* a rotation refuses a credential that does not chain to the anchors
     * (a self-signed one) and leaves the disk alone */
    {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509 *x = make_cert(k, "rogue", 1, 99);
        BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
        char kp[1024], cp[2048];
        fp_device_cred *rogue = NULL;
        PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL);
        PEM_write_bio_X509(cb, x);
        to_pem(kb, kp, sizeof(kp));
        to_pem(cb, cp, sizeof(cp));
        assert_int_equal(fp_device_cred_from_pem(kp, strlen(kp), cp, strlen(cp), &rogue), 0);
        start_disk(&d, 0);
        st = storage_of(&d);
        assert_int_equal(fp_credstore_open(&st, anchor_pem, strlen(anchor_pem), &s), 0);
        assert_int_equal(fp_credstore_rotate(s, rogue), FP_DEVICE_ERR_TRUST);
        assert_int_equal(d.calls, 0);
        fp_credstore_free(s);
        assert_int_equal(current_of(&d), 0);
        fp_device_cred_free(rogue);
        BIO_free(kb);
        BIO_free(cb);
        X509_free(x);
        EVP_PKEY_free(k);
        disk_free(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotate_and_confirm),
        cmocka_unit_test(test_rotate_over_unconfirmed),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_mismatched_pair_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
