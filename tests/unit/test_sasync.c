/* test_sasync.c - signatures that do not stop the thread (signer/async.c,
 * the ASYNC path of keys/rkey.c, ca/signer.h *_async, the async channels
 * of signer/privsep.c): jobs pause while their signature is out and
 * resume from the event loop, each with its own signature or its own
 * error, however their answers interleave; jobs wait for a channel when
 * every one is out; a thread without a runner signs at once; the end of
 * the thread finishes what is out; through the real signer process,
 * signatures out on its async channels and its death while they are. */
#define _GNU_SOURCE
#include "testutil.h"

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "ca/signer.h"
#include "keys/rkey.h"
#include "signer/async.h"
#include "signer/privsep.h"
#include "x509/x509util.h"

/* ---- a fake backend: answers when the test says so ---- */

#define SLOTS 8

typedef struct slot {
    bool out;
    int fds[2];          /* [0] the job waits on, [1] the test writes to */
    unsigned char *sig;  /* made at start, handed out at finish */
    size_t siglen;
    bool fail;           /* finish fails with this slot's own message */
} slot;

typedef struct fake {
    EVP_PKEY *key;
    int nslots;          /* channels: more jobs than this wait */
    slot s[SLOTS];
    int starts, finishes, blocking, waits;
    int fail_next;       /* the next start's slot fails (-1: none) */
} fake;

static int raw_sign(EVP_PKEY *key, const char *mdname, const unsigned char *data, size_t len,
                    unsigned char **sig, size_t *siglen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_signature_md(ctx, EVP_get_digestbyname(mdname)) == 1 &&
             EVP_PKEY_sign(ctx, NULL, siglen, data, len) == 1 &&
             (*sig = OPENSSL_malloc(*siglen)) != NULL &&
             EVP_PKEY_sign(ctx, *sig, siglen, data, len) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? FP_ERR_OK : FP_ERR_CRYPTO;
}

static int fake_sign(void *arg, const char *mdname, const unsigned char *data, size_t len,
                     unsigned char **sig, size_t *siglen, fp_error *err)
{
    fake *f = arg;
    f->blocking++;
    if (raw_sign(f->key, mdname, data, len, sig, siglen) != FP_ERR_OK)
        return fp_err_set(err, FP_ERR_CRYPTO, "fake: blocking sign failed");
    return FP_ERR_OK;
}

static int fake_start(void *arg, const char *mdname, const unsigned char *data, size_t len,
                      int *fd, void **ticket, fp_error *err)
{
    fake *f = arg;
    int i;

    for (i = 0; i < f->nslots && f->s[i].out; i++)
        ;
    if (i == f->nslots) {
        f->waits++;
        *fd = FP_RKEY_WAIT;
        return FP_ERR_OK;
    }
    slot *s = &f->s[i];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s->fds), 0);
    assert_int_equal(raw_sign(f->key, mdname, data, len, &s->sig, &s->siglen), FP_ERR_OK);
    s->out = true;
    s->fail = f->fail_next == f->starts;
    f->starts++;
    *fd = s->fds[0];
    *ticket = s;
    (void)err;
    return FP_ERR_OK;
}

static int fake_finish(void *arg, void *ticket, unsigned char **sig, size_t *siglen,
                       fp_error *err)
{
    fake *f = arg;
    slot *s = ticket;
    char b;
    int rc = FP_ERR_OK;

    assert_true(s->out);
    /* the job was resumed for a reason: its answer, or its descriptor
     * shut down (the runner's end wait ran out) */
    ssize_t r = read(s->fds[0], &b, 1);
    assert_true(r >= 0);
    f->finishes++;
    if (r == 0) {
        rc = fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "fake: slot %d cut off", (int)(s - f->s));
        OPENSSL_free(s->sig);
    } else if (s->fail) {
        rc = fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "fake: slot %d failed", (int)(s - f->s));
        OPENSSL_free(s->sig);
    } else {
        *sig = s->sig;
        *siglen = s->siglen;
    }
    s->sig = NULL;
    close(s->fds[0]);
    close(s->fds[1]);
    s->out = false;
    return rc;
}

/* Release slot i's answer. */
static void release(fake *f, int i)
{
    assert_true(f->s[i].out);
    assert_int_equal(write(f->s[i].fds[1], "x", 1), 1);
}

static EVP_PKEY *public_of(EVP_PKEY *k)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    int n = i2d_PUBKEY(k, &der);
    EVP_PKEY *pub;
    p = der;
    pub = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    assert_non_null(pub);
    return pub;
}

static X509 *cert_template(EVP_PKEY *pub, long serial)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"job", -1, -1, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pub);
    X509_NAME_free(n);
    return x;
}

typedef struct outcome {
    bool done;
    int rc;
    char msg[FP_ERRMSG_MAX];
    int order;
} outcome;

static int n_done;

static void on_done(void *arg, int rc, const fp_error *err)
{
    outcome *o = arg;
    assert_false(o->done); /* exactly once */
    o->done = true;
    o->rc = rc;
    snprintf(o->msg, sizeof(o->msg), "%s", rc ? err->msg : "");
    o->order = n_done++;
}

typedef struct env {
    EVP_PKEY *real, *pub;
    fake f;
    fp_signer *s;
    struct event_base *base;
    fp_sasync *sa;
} env;

static void env_init(env *v, int nslots)
{
    EVP_PKEY *rk = NULL;
    fp_error e = {0};
    fp_rkey_backend be;

    memset(v, 0, sizeof(*v));
    v->real = tu_key("p256");
    v->pub = public_of(v->real);
    v->f.key = v->real;
    v->f.nslots = nslots;
    v->f.fail_next = -1;
    be = (fp_rkey_backend){.sign = fake_sign, .arg = &v->f, .start = fake_start,
                           .finish = fake_finish};
    assert_int_equal(fp_rkey_new(v->pub, &be, &rk, &e), 0);
    assert_true(fp_rkey_can_async(rk));
    assert_int_equal(fp_signer_from_key(rk, &v->s, &e), 0);
    EVP_PKEY_free(rk);
    v->base = event_base_new();
    v->sa = fp_sasync_thread_begin(v->base);
    assert_non_null(v->sa);
    n_done = 0;
}

static void env_free(env *v)
{
    fp_sasync_thread_end(v->sa);
    event_base_free(v->base);
    fp_signer_free(v->s);
    EVP_PKEY_free(v->pub);
    EVP_PKEY_free(v->real);
}

static void loop_until(env *v, int want_done)
{
    for (int i = 0; i < 1000 && n_done < want_done; i++)
        event_base_loop(v->base, EVLOOP_ONCE);
    assert_int_equal(n_done, want_done);
}

/* Start n certificate signatures (serials serial0..), each with its
 * outcome. */
static void start_certs(EVP_PKEY *pub, fp_signer *s, X509 **x, outcome *o, int n, long serial0)
{
    for (int i = 0; i < n; i++) {
        x[i] = cert_template(pub, serial0 + i);
        fp_signer_sign_cert_async(s, x[i], on_done, &o[i]);
    }
}

/* Five jobs out at once on one thread, answered in reverse order: each
 * resumes with its own signature (each certificate has its own serial,
 * so another's signature would not verify). */
static void test_interleaved(void **state)
{
    env v;
    X509 *x[5];
    outcome o[5] = {0};
    (void)state;

    env_init(&v, SLOTS);
    start_certs(v.pub, v.s, x, o, 5, 100);
    for (int i = 0; i < 5; i++)
        assert_false(o[i].done); /* paused, not waited for */
    assert_int_equal(fp_sasync_pending(v.sa), 5);
    assert_int_equal(v.f.starts, 5);
    assert_int_equal(v.f.blocking, 0);
    for (int i = 4; i >= 0; i--) {
        release(&v.f, i);
        loop_until(&v, 5 - i);
        assert_true(o[i].done);
        assert_int_equal(o[i].order, 4 - i);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(o[i].rc, 0);
        assert_int_equal(X509_verify(x[i], v.pub), 1);
        X509_free(x[i]);
    }
    assert_int_equal(fp_sasync_pending(v.sa), 0);
    env_free(&v);
}

/* One of three fails while the others succeed: the failure, with its own
 * message, goes to its job only, answered first or last. */
static void test_own_error(void **state)
{
    for (int first = 0; first < 2; first++) {
        env v;
        X509 *x[3];
        outcome o[3] = {0};
        (void)state;

        env_init(&v, SLOTS);
        v.f.fail_next = 1;
        start_certs(v.pub, v.s, x, o, 3, 200);
        if (first) {
            release(&v.f, 1);
            loop_until(&v, 1);
            release(&v.f, 0);
            release(&v.f, 2);
        } else {
            release(&v.f, 0);
            release(&v.f, 2);
            loop_until(&v, 2);
            release(&v.f, 1);
        }
        loop_until(&v, 3);
        assert_int_equal(o[1].rc, FP_ERR_KEY_UNAVAILABLE);
        assert_non_null(strstr(o[1].msg, "slot 1 failed"));
        assert_int_equal(o[0].rc, 0);
        assert_int_equal(o[2].rc, 0);
        assert_int_equal(X509_verify(x[0], v.pub), 1);
        assert_int_equal(X509_verify(x[2], v.pub), 1);
        for (int i = 0; i < 3; i++)
            X509_free(x[i]);
        env_free(&v);
    }
}

/* Two channels, six jobs: four wait for a channel (paused, no blocking
 * signature), each goes out when one comes back; all verify. */
static void test_wait_for_channel(void **state)
{
    env v;
    X509 *x[6];
    outcome o[6] = {0};
    (void)state;

    env_init(&v, 2);
    start_certs(v.pub, v.s, x, o, 6, 300);
    assert_int_equal(v.f.starts, 2);
    assert_int_equal(fp_sasync_pending(v.sa), 6);
    for (int round = 0; round < 6 && n_done < 6; round++) {
        int before = n_done;
        for (int i = 0; i < v.f.nslots; i++)
            if (v.f.s[i].out)
                release(&v.f, i);
        loop_until(&v, before + 2 > 6 ? 6 : before + 2);
    }
    assert_int_equal(n_done, 6);
    assert_int_equal(v.f.blocking, 0);
    assert_int_equal(v.f.starts, 6);
    assert_true(v.f.waits >= 4);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(o[i].rc, 0);
        assert_int_equal(X509_verify(x[i], v.pub), 1);
        X509_free(x[i]);
    }
    env_free(&v);
}

/* No runner on the thread (the CLI, the committer): signed at once, done
 * before the call returns, through the blocking sign. */
static void test_no_runner(void **state)
{
    env v;
    X509 *x;
    outcome o = {0};
    (void)state;

    env_init(&v, SLOTS);
    fp_sasync_thread_end(v.sa);
    v.sa = NULL;
    x = cert_template(v.pub, 400);
    fp_signer_sign_cert_async(v.s, x, on_done, &o);
    assert_true(o.done);
    assert_int_equal(o.rc, 0);
    assert_int_equal(v.f.blocking, 1);
    assert_int_equal(v.f.starts, 0);
    assert_int_equal(X509_verify(x, v.pub), 1);
    X509_free(x);
    env_free(&v);
}

/* The thread ends (its loop is over) with signatures out: they are waited
 * for and every continuation runs. */
static void test_end_finishes(void **state)
{
    env v;
    X509 *x[3];
    outcome o[3] = {0};
    (void)state;

    env_init(&v, SLOTS);
    for (int i = 0; i < 3; i++) {
        x[i] = cert_template(v.pub, 500 + i);
        fp_signer_sign_cert_async(v.s, x[i], on_done, &o[i]);
        release(&v.f, i);
    }
    assert_int_equal(n_done, 0);
    fp_sasync_thread_end(v.sa);
    v.sa = NULL;
    for (int i = 0; i < 3; i++) {
        assert_true(o[i].done);
        assert_int_equal(o[i].rc, 0);
        assert_int_equal(X509_verify(x[i], v.pub), 1);
        X509_free(x[i]);
    }
    env_free(&v);
}

/* The thread ends with a signature whose answer never comes: after the
 * end wait its descriptor is shut down and it fails (key-unavailable);
 * the answered one is still signed.  Without the bound this never returns
 * (ctest's timeout). */
static void test_end_wait_bounded(void **state)
{
    env v;
    X509 *x[3];
    outcome o[3] = {0};
    (void)state;

    env_init(&v, SLOTS);
    start_certs(v.pub, v.s, x, o, 3, 550);
    release(&v.f, 1);
    fp_sasync_set_end_wait(v.sa, 200);
    fp_sasync_thread_end(v.sa);
    v.sa = NULL;
    for (int i = 0; i < 3; i++) {
        assert_true(o[i].done);
        if (i == 1) {
            assert_int_equal(o[i].rc, 0);
            assert_int_equal(X509_verify(x[i], v.pub), 1);
        } else {
            assert_int_equal(o[i].rc, FP_ERR_KEY_UNAVAILABLE);
            assert_non_null(strstr(o[i].msg, "cut off"));
        }
        X509_free(x[i]);
    }
    env_free(&v);
}

/* An OCSP response signed in a paused job verifies with the responder's
 * certificate. */
static void test_ocsp(void **state)
{
    env v;
    X509 *x;
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    STACK_OF(X509) *certs = sk_X509_new_null();
    X509_STORE *st = X509_STORE_new();
    outcome o = {0};
    (void)state;

    env_init(&v, SLOTS);
    x = cert_template(v.pub, 600);
    assert_true(X509_sign(x, v.real, EVP_sha256()) > 0);
    fp_signer_sign_ocsp_async(v.s, bs, x, NULL, OCSP_RESPID_KEY, on_done, &o);
    assert_false(o.done);
    release(&v.f, 0);
    loop_until(&v, 1);
    assert_int_equal(o.rc, 0);
    sk_X509_push(certs, x);
    assert_int_equal(OCSP_basic_verify(bs, certs, st, OCSP_NOVERIFY | OCSP_TRUSTOTHER), 1);
    sk_X509_free(certs);
    X509_STORE_free(st);
    OCSP_BASICRESP_free(bs);
    X509_free(x);
    env_free(&v);
}

/* ---- through the signer process ---- */

/* Until pid is in state T (stopped): kill(SIGSTOP) returns before. */
static bool wait_stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 3000; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        char *p;
        if (f)
            fclose(f);
        buf[n] = '\0';
        if ((p = strrchr(buf, ')')) != NULL && p[1] == ' ' && (p[2] == 'T' || p[2] == 't'))
            return true;
        usleep(1000);
    }
    return false;
}

/* A real signer process with one key and a runner on a fresh loop. */
typedef struct penv {
    char *dir;
    EVP_PKEY *k;
    fp_privsep *ps;
    fp_signer *s;
    struct event_base *base;
    fp_sasync *sa;
} penv;

static void penv_init(penv *v, int window)
{
    char path[512];
    fp_error e = {0};
    *v = (penv){.dir = tu_tmpdir(), .k = tu_key("p256"), .base = event_base_new()};
    snprintf(path, sizeof(path), "%s/k.key", v->dir);
    assert_int_equal(fp_key_write(path, v->k, NULL, 0, &e), 0);
    assert_int_equal(fp_privsep_start(1, 1, window, &v->ps, &e), 0);
    assert_int_equal(fp_signer_open_file(path, NULL, 0, &v->s, &e), 0);
    assert_true(fp_rkey_can_async(fp_signer_get0_pkey(v->s)));
    v->sa = fp_sasync_thread_begin(v->base);
}

/* sa: the test may have ended the runner itself (NULL then) */
static void penv_free(penv *v)
{
    fp_sasync_thread_end(v->sa);
    event_base_free(v->base);
    fp_signer_free(v->s);
    fp_privsep_free(v->ps);
    EVP_PKEY_free(v->k);
    tu_rmdir(v->dir);
}

/* Two signatures out at once per thread: five signatures, up to two out at once,
 * the others waiting, all signed by the key in the signer process; then
 * with the signer killed while two are out, each resumes with
 * FP_ERR_KEY_UNAVAILABLE (no hang) and the channels serve again once the
 * supervisor restarted it. */
static void test_privsep_async(void **state)
{
    penv v;
    X509 *x[5];
    outcome o[5];
    pid_t old;
    (void)state;

    penv_init(&v, 2);
    EVP_PKEY *k = v.k;
    fp_privsep *ps = v.ps;
    fp_signer *s = v.s;
    struct event_base *base = v.base;
    fp_sasync *sa = v.sa;
    n_done = 0;
    memset(o, 0, sizeof(o));
    start_certs(k, s, x, o, 5, 700);
    assert_int_equal(fp_sasync_pending(sa), 5);
    for (int i = 0; i < 10000 && n_done < 5; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(n_done, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(o[i].rc, 0);
        assert_int_equal(X509_verify(x[i], k), 1);
        X509_free(x[i]);
    }

    /* the signer dies with two out (held first, so they are out) */
    old = fp_privsep_pid(ps);
    kill(fp_privsep_supervisor_pid(ps), SIGSTOP);
    kill(old, SIGSTOP);
    assert_true(wait_stopped(old)); /* SIGSTOP takes effect asynchronously */
    n_done = 0;
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 2; i++) {
        x[i] = cert_template(k, 800 + i);
        fp_signer_sign_cert_async(s, x[i], on_done, &o[i]);
        assert_false(o[i].done);
    }
    kill(old, SIGKILL);
    for (int i = 0; i < 10000 && n_done < 2; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(n_done, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(o[i].rc, FP_ERR_KEY_UNAVAILABLE);
        X509_free(x[i]);
    }
    kill(fp_privsep_supervisor_pid(ps), SIGCONT);
    /* restarted: the async channels are replaced and sign again */
    {
        int ok = 0;
        for (int attempt = 0; attempt < 300 && !ok; attempt++) {
            outcome r = {0};
            X509 *y = cert_template(k, 900 + attempt);
            n_done = 0;
            fp_signer_sign_cert_async(s, y, on_done, &r);
            for (int i = 0; i < 10000 && n_done < 1; i++)
                event_base_loop(base, EVLOOP_ONCE);
            assert_true(r.done);
            if (r.rc == 0 && X509_verify(y, k) == 1)
                ok = 1;
            else
                usleep(100000);
            X509_free(y);
        }
        assert_true(ok);
    }
    penv_free(&v);
}

/* Pipelined on one channel (privsep.c): 24 signatures started at once
 * with up to 8 out, answered in batches, each job resumed with its own
 * signature (answers are matched to requests by order alone). */
static void test_privsep_pipelined(void **state)
{
    penv v;
    X509 *x[24];
    outcome o[24];
    (void)state;

    penv_init(&v, 8);
    EVP_PKEY *k = v.k;
    fp_privsep *ps = v.ps;
    fp_signer *s = v.s;
    struct event_base *base = v.base;
    fp_sasync *sa = v.sa;
    for (int round = 0; round < 3; round++) {
        n_done = 0;
        memset(o, 0, sizeof(o));
        start_certs(k, s, x, o, 24, 1000 + round * 100);
        assert_int_equal(fp_sasync_pending(sa), 24);
        for (int i = 0; i < 100000 && n_done < 24; i++)
            event_base_loop(base, EVLOOP_ONCE);
        assert_int_equal(n_done, 24);
        for (int i = 0; i < 24; i++) {
            assert_int_equal(o[i].rc, 0);
            /* its own signature: over its own serial number */
            assert_int_equal(X509_verify(x[i], k), 1);
            X509_free(x[i]);
        }
    }
    /* the worker ends while the signer is stopped with 3 out: after the
     * end wait they fail instead of hanging the exit */
    {
        pid_t sp = fp_privsep_pid(ps), sup = fp_privsep_supervisor_pid(ps);
        kill(sup, SIGSTOP);
        kill(sp, SIGSTOP);
        assert_true(wait_stopped(sp));
        n_done = 0;
        memset(o, 0, sizeof(o));
        start_certs(k, s, x, o, 3, 1500);
        fp_sasync_set_end_wait(sa, 200);
        fp_sasync_thread_end(sa);
        v.sa = NULL;
        for (int i = 0; i < 3; i++) {
            assert_true(o[i].done);
            assert_int_equal(o[i].rc, FP_ERR_KEY_UNAVAILABLE);
            X509_free(x[i]);
        }
        kill(sp, SIGCONT);
        kill(sup, SIGCONT);
    }
    penv_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleaved),   cmocka_unit_test(test_own_error),
        cmocka_unit_test(test_wait_for_channel), cmocka_unit_test(test_no_runner),
        cmocka_unit_test(test_end_finishes),  cmocka_unit_test(test_end_wait_bounded),
        cmocka_unit_test(test_ocsp),
        cmocka_unit_test(test_privsep_async), cmocka_unit_test(test_privsep_pipelined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
