/* test_committer.c - group commit: each job gets its own result, and a
 * job's enrollment token pays in the transaction that stores its
 * certificate (a serial collision or a refused token leaves it unspent). */
#define _GNU_SOURCE
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "ca/committer.h"
#include "common/util.h"
#include "store/store.h"

#define MAX_JOBS 8

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc[MAX_JOBS];
    char msg[MAX_JOBS][FP_ERRMSG_MAX];
} results;

typedef struct {
    results *r;
    int i;
} slot;

typedef struct {
    char *dir;
    char path[512];
    fp_store *s;
    fp_committer *c;
    sqlite3 *lock; /* a second connection holding the write lock */
    results res;
    slot slots[MAX_JOBS];
    int submitted;
} fx;

/* A record with heap fields, as the committer takes it over. */
static fp_cert_rec mkrec(const char *serial)
{
    static const unsigned char der[4] = {0x30, 0x02, 0x05, 0x00};
    fp_cert_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.serial, sizeof(r.serial), "%s", serial);
    strcpy(r.ca_id, "issuing");
    strcpy(r.profile, "device");
    strcpy(r.project, FP_PROJECT_DEFAULT);
    r.subject = strdup("CN=x");
    r.sans = strdup("");
    r.der = malloc(sizeof(der));
    assert_true(r.subject && r.sans && r.der);
    memcpy(r.der, der, sizeof(der));
    r.der_len = sizeof(der);
    r.not_before = 1;
    r.not_after = fp_now() + 3600;
    r.issued_at = fp_now();
    return r;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    unsigned char der[3] = {1, 2, 3};
    fp_cert_rec dup = mkrec("DUP");

    f->dir = tu_tmpdir();
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    assert_int_equal(fp_store_open(f->path, &f->s, NULL), 0);
    assert_int_equal(fp_store_ca_add(f->s,
                                     &(fp_ca_rec){.id = "issuing", .kind = FP_CA_ROOT, .der = der,
                                                  .der_len = 3},
                                     NULL, NULL),
                     0);
    assert_int_equal(fp_store_cert_insert(f->s, &dup, NULL, 1, NULL), 0);
    fp_cert_rec_clear(&dup);
    assert_int_equal(fp_committer_start(f->path, &f->c, NULL), 0);
    pthread_mutex_init(&f->res.mu, NULL);
    pthread_cond_init(&f->res.cv, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fp_committer_stop(f->c);
    if (f->lock != NULL)
        sqlite3_close(f->lock);
    fp_store_close(f->s);
    pthread_mutex_destroy(&f->res.mu);
    pthread_cond_destroy(&f->res.cv);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

/* Writer thread. */
static void done_cb(void *arg, int rc, const fp_error *err)
{
    slot *s = arg;
    pthread_mutex_lock(&s->r->mu);
    s->r->rc[s->i] = rc;
    snprintf(s->r->msg[s->i], FP_ERRMSG_MAX, "%s", err != NULL ? err->msg : "");
    s->r->done++;
    pthread_cond_signal(&s->r->cv);
    pthread_mutex_unlock(&s->r->mu);
}

static int submit(fx *f, const char *serial, const char *token)
{
    fp_cert_rec r = mkrec(serial);
    int i = f->submitted++;
    assert_true(i < MAX_JOBS);
    f->slots[i] = (slot){&f->res, i};
    assert_int_equal(fp_committer_submit(f->c, &r, "est:token:t", "cert.issue", "{}", token,
                                         done_cb, &f->slots[i]),
                     0);
    return i;
}

static void wait_done(fx *f, int n)
{
    pthread_mutex_lock(&f->res.mu);
    while (f->res.done < n)
        pthread_cond_wait(&f->res.cv, &f->res.mu);
    pthread_mutex_unlock(&f->res.mu);
}

/* Make the jobs submitted until release_writer() one batch: hold the
 * store's write lock from another connection, submit a plug job and wait
 * until the writer has taken it (it then waits for the lock), so that
 * everything queued next is detached together once the plug commits. */
static int hold_writer(fx *f)
{
    struct timespec ms = {0, 1000000L};
    int plug;
    assert_int_equal(sqlite3_open(f->path, &f->lock), SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    plug = submit(f, "PLUG", NULL);
    while (fp_committer_backlog(f->c) != 0)
        nanosleep(&ms, NULL);
    return plug;
}

static void release_writer(fx *f)
{
    assert_int_equal(sqlite3_exec(f->lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(f->lock);
    f->lock = NULL;
}

static void test_collision_retry_pays_per_job(void **state)
{
    fx *f = *state;
    int plug, paid, clash, free_job;

    tu_token_put(f->s, "tok-a", 1, 0);
    tu_token_put(f->s, "tok-b", 1, 0);
    plug = hold_writer(f);
    paid = submit(f, "A1", "tok-a");
    clash = submit(f, "DUP", "tok-b"); /* fails the batch: retried one by one */
    free_job = submit(f, "A2", NULL);
    assert_int_equal(fp_committer_backlog(f->c), 3);
    release_writer(f);
    wait_done(f, 4);
    assert_int_equal(f->res.rc[plug], FP_ERR_OK);
    assert_int_equal(f->res.rc[paid], FP_ERR_OK);
    assert_int_equal(f->res.rc[clash], FP_ERR_DUPLICATE);
    assert_int_equal(f->res.rc[free_job], FP_ERR_OK);
    assert_true(tu_cert_stored(f->s, "A1") && tu_cert_stored(f->s, "A2"));
    assert_int_equal(tu_token_uses(f->s, "tok-a"), 0);
    /* the collision's token is unspent, so its re-signed retry can pay */
    assert_int_equal(tu_token_uses(f->s, "tok-b"), 1);
    clash = submit(f, "A3", "tok-b");
    wait_done(f, 5);
    assert_int_equal(f->res.rc[clash], FP_ERR_OK);
    assert_int_equal(tu_token_uses(f->s, "tok-b"), 0);
}

static void test_used_up_token_refused_alone(void **state)
{
    fx *f = *state;
    int plug, first, second, other;

    tu_token_put(f->s, "tok-c", 1, 0);
    plug = hold_writer(f);
    first = submit(f, "C1", "tok-c");
    second = submit(f, "C2", "tok-c"); /* same batch, no use left */
    other = submit(f, "C3", NULL);
    assert_int_equal(fp_committer_backlog(f->c), 3);
    release_writer(f);
    wait_done(f, 4);
    assert_int_equal(f->res.rc[plug], FP_ERR_OK);
    assert_int_equal(f->res.rc[first], FP_ERR_OK);
    assert_int_equal(f->res.rc[second], FP_ERR_STATE);
    assert_non_null(strstr(f->res.msg[second], "token tok-c is used up"));
    assert_int_equal(f->res.rc[other], FP_ERR_OK);
    assert_true(tu_cert_stored(f->s, "C1") && tu_cert_stored(f->s, "C3"));
    assert_false(tu_cert_stored(f->s, "C2"));
    assert_int_equal(tu_token_uses(f->s, "tok-c"), 0);
}

/* ---- the write-ahead log stays bounded under a steady stream ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, failed;
} counter;

static void count_cb(void *arg, int rc, const fp_error *err)
{
    counter *c = arg;
    (void)err;
    pthread_mutex_lock(&c->mu);
    c->done++;
    c->failed += rc != FP_ERR_OK;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* 50,000 certificates (1 KiB each) submitted at once keep the writer
 * committing back to back, the pattern that starved SQLite's log restart
 * (the log grew by ~50 MiB/s under load).  The log file must stay near the
 * 32 MiB bound however much was written through it. */
static void test_wal_stays_bounded(void **state)
{
    fx *f = *state;
    enum { N = 50000, DER = 1024 };
    counter c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    char wal[600];
    struct stat st;

    for (int i = 0; i < N; i++) {
        fp_cert_rec r = mkrec("");
        /* serials spread over the index, as random ones are */
        snprintf(r.serial, sizeof(r.serial), "%08X%08X", (unsigned)(i * 2654435761u), (unsigned)i);
        free(r.der);
        r.der = calloc(1, DER);
        assert_non_null(r.der);
        r.der[0] = (unsigned char)i;
        r.der_len = DER;
        assert_int_equal(fp_committer_submit(f->c, &r, "unit", "cert.issue", "{}", NULL, count_cb, &c),
                         0);
    }
    pthread_mutex_lock(&c.mu);
    while (c.done < N)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    assert_int_equal(c.failed, 0);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_int_equal(stat(wal, &st), 0);
    /* more than 100 MiB went through the log (N x ~5 page writes) */
    if (st.st_size > 40 * 1024 * 1024)
        fail_msg("write-ahead log is %lld bytes after %d certificates", (long long)st.st_size, N);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_collision_retry_pays_per_job),
        T(test_used_up_token_refused_alone),
        T(test_wal_stays_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
