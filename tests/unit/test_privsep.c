/* test_privsep.c - the signer process (signer/privsep.c): keys opened
 * through it sign and verify; its wire refuses what it must (unknown key
 * ids, wrong digest lengths, keys named after the seal, malformed frames);
 * requests pipelined on a channel are answered in order. */
#define _GNU_SOURCE
#include "testutil.h"

#include <arpa/inet.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "ca/signer.h"
#include "keys/rkey.h"
#include "signer/privsep.h"
#include "x509/x509util.h"

static char *write_key(const char *dir, const char *name, EVP_PKEY *k)
{
    static char path[8][512];
    static int i;
    fp_error e = {0};
    char *p = path[i++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    assert_int_equal(fp_key_write(p, k, NULL, 0, &e), 0);
    return p;
}

static int sign_until(fp_signer *s, X509_REQ *req, int want);

/* Through fp_signer_open_file: the key lives in the child, signatures verify. */
static void test_sign_through_signer(void **state)
{
    char *dir = tu_tmpdir();
    EVP_PKEY *k = tu_key("p256"), *e25 = tu_key("ed25519");
    char *kp = write_key(dir, "a.key", k), *ep = write_key(dir, "e.key", e25);
    fp_privsep *ps = NULL;
    fp_signer *s = NULL;
    fp_error e = {0};
    X509_REQ *req = tu_csr(k, "/CN=x", NULL, 0, NULL, NULL);
    (void)state;

    unsigned char *before = NULL, *after = NULL;
    int nb, na;
    assert_int_equal(fp_privsep_start(2, 0, 0, &ps, &e), 0);
    assert_int_equal(fp_signer_open_file(kp, NULL, 0, &s, &e), 0);
    assert_true(fp_rkey_is_remote(fp_signer_get0_pkey(s)));
    /* the request is re-signed by the key in the signer process (ECDSA:
     * a new signature) */
    nb = i2d_X509_REQ(req, &before);
    assert_int_equal(fp_signer_sign_req(s, req, &e), 0);
    na = i2d_X509_REQ(req, &after);
    assert_false(nb == na && !memcmp(before, after, (size_t)nb));
    OPENSSL_free(before);
    OPENSSL_free(after);
    assert_int_equal(X509_REQ_verify(req, k), 1);
    fp_signer_free(s);
    s = NULL;
    assert_int_equal(fp_signer_open_file(ep, NULL, 0, &s, &e), 0);
    /* an Ed25519 signature over a request holding the P-256 key: verifies
     * with the Ed25519 key only if the signer made it */
    assert_int_equal(fp_signer_sign_req(s, req, &e), 0);
    assert_int_equal(X509_REQ_verify(req, e25), 1);
    fp_signer_free(s);
    s = NULL;

    /* sealed: a key it has not opened is refused, a known one is fine */
    assert_int_equal(fp_privsep_seal(ps, &e), 0);
    assert_int_equal(fp_signer_open_file(write_key(dir, "b.key", k), NULL, 0, &s, &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_signer_open_file(kp, NULL, 0, &s, &e), 0);

    /* the signer gone (and its supervisor stopped, so none restarts):
     * FP_ERR_KEY_UNAVAILABLE, not a crash */
    kill(fp_privsep_supervisor_pid(ps), SIGSTOP);
    kill(fp_privsep_pid(ps), SIGKILL);
    assert_int_equal(sign_until(s, req, FP_ERR_KEY_UNAVAILABLE), FP_ERR_KEY_UNAVAILABLE);
    kill(fp_privsep_supervisor_pid(ps), SIGCONT);
    fp_signer_free(s);
    fp_privsep_free(ps);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    EVP_PKEY_free(e25);
    tu_rmdir(dir);
}

/* A key file replaced in place (the OCSP signer renewed while the server
 * runs, or at its start) is read again: the new key, not the cached one,
 * also after the seal. */
static void test_reread_renewed_file(void **state)
{
    char *dir = tu_tmpdir();
    EVP_PKEY *k[3] = {tu_key("p256"), tu_key("p256"), tu_key("p256")};
    char *kp = write_key(dir, "ocsp.key", k[0]);
    fp_privsep *ps = NULL;
    fp_signer *s = NULL;
    fp_error e = {0};
    (void)state;

    assert_int_equal(fp_privsep_start(1, 0, 0, &ps, &e), 0);
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            /* renewed in place: at start (i = 1, before the seal) and
             * while running (i = 2, after it) */
            unlink(kp);
            kp = write_key(dir, "ocsp.key", k[i]);
        }
        if (i == 2)
            assert_int_equal(fp_privsep_seal(ps, &e), 0);
        assert_int_equal(fp_signer_open_file(kp, NULL, 0, &s, &e), 0);
        assert_int_equal(EVP_PKEY_eq(fp_signer_get0_pkey(s), k[i]), 1);
        fp_signer_free(s);
        s = NULL;
    }
    fp_privsep_free(ps);
    for (int i = 0; i < 3; i++)
        EVP_PKEY_free(k[i]);
    tu_rmdir(dir);
}

/* Sign req with s until it gives want (at most ~20 s: a hang guard, the
 * restart itself takes about 0.1 s); the last result. */
static int sign_until(fp_signer *s, X509_REQ *req, int want)
{
    fp_error e = {0};
    int rc = -1;
    for (int i = 0; i < 400 && rc != want; i++) {
        if (i > 0)
            usleep(50 * 1000);
        rc = fp_signer_sign_req(s, req, &e);
        ERR_clear_error();
    }
    return rc;
}

/*
 * A signer that dies is restarted by its supervisor with the same keys
 * under the same ids: the network side's remote keys (one of them an
 * encrypted key file, opened with its passphrase) sign again and the
 * signatures verify; the new signer is sealed as the old one was.  While
 * the supervisor cannot restart it (stopped), signatures fail with
 * key-unavailable, not a crash or a hang.  (Before the supervisor: a dead
 * signer stayed dead.)  A key file missing when the signer restarts comes
 * back on use once the same key is there again, not another one.
 */
static void test_restart_after_kill(void **state)
{
    char *dir = tu_tmpdir();
    EVP_PKEY *k = tu_key("p256"), *k2 = tu_key("p256");
    char *kp = write_key(dir, "a.key", k), kp2[512];
    fp_privsep *ps = NULL;
    fp_signer *s = NULL, *s2 = NULL, *other = NULL;
    fp_error e = {0};
    X509_REQ *req = tu_csr(k, "/CN=x", NULL, 0, NULL, NULL);
    pid_t first, second, sup;
    (void)state;

    snprintf(kp2, sizeof(kp2), "%s/enc.key", dir);
    assert_int_equal(fp_key_write(kp2, k2, "s3cret", 6, &e), 0);
    assert_int_equal(fp_privsep_start(2, 0, 0, &ps, &e), 0);
    assert_int_equal(fp_signer_open_file(kp, NULL, 0, &s, &e), 0);
    assert_int_equal(fp_signer_open_file(kp2, "s3cret", 6, &s2, &e), 0);
    assert_int_equal(fp_privsep_seal(ps, &e), 0);
    assert_int_equal(fp_signer_sign_req(s, req, &e), 0);
    first = fp_privsep_pid(ps);
    sup = fp_privsep_supervisor_pid(ps);
    assert_true(first > 0 && sup > 0 && first != sup);

    /* killed: a new signer answers for both keys */
    assert_int_equal(kill(first, SIGKILL), 0);
    assert_int_equal(sign_until(s, req, FP_ERR_OK), FP_ERR_OK);
    assert_int_equal(X509_REQ_verify(req, k), 1);
    assert_int_equal(sign_until(s2, req, FP_ERR_OK), FP_ERR_OK);
    assert_int_equal(X509_REQ_verify(req, k2), 1);
    second = fp_privsep_pid(ps);
    assert_true(second > 0 && second != first);
    /* still sealed: no new reference, a known one is fine */
    assert_int_equal(fp_signer_open_file(write_key(dir, "b.key", k), NULL, 0, &other, &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_signer_open_file(kp, NULL, 0, &other, &e), 0);
    fp_signer_free(other);

    /* no supervisor to restart it: key-unavailable; then it is back */
    assert_int_equal(kill(sup, SIGSTOP), 0);
    assert_int_equal(kill(second, SIGKILL), 0);
    assert_int_equal(sign_until(s, req, FP_ERR_KEY_UNAVAILABLE), FP_ERR_KEY_UNAVAILABLE);
    assert_int_equal(kill(sup, SIGCONT), 0);
    assert_int_equal(sign_until(s, req, FP_ERR_OK), FP_ERR_OK);
    assert_int_equal(X509_REQ_verify(req, k), 1);
    assert_true(fp_privsep_pid(ps) != second);

    /* a key file gone when the signer restarts: key-unavailable, and back
     * (no server restart) once the same key is there again */
    {
        char moved[600];
        pid_t third = fp_privsep_pid(ps);
        snprintf(moved, sizeof(moved), "%s.away", kp);
        assert_int_equal(rename(kp, moved), 0);
        assert_int_equal(kill(third, SIGKILL), 0);
        assert_int_equal(sign_until(s, req, FP_ERR_KEY_UNAVAILABLE), FP_ERR_KEY_UNAVAILABLE);
        for (int i = 0; i < 300 && (fp_privsep_pid(ps) == third); i++)
            usleep(10000);
        assert_true(fp_privsep_pid(ps) != third);
        assert_int_equal(fp_signer_sign_req(s, req, &e), FP_ERR_KEY_UNAVAILABLE);
        /* the other key was reopened */
        assert_int_equal(sign_until(s2, req, FP_ERR_OK), FP_ERR_OK);
        /* another key under the name is not taken for it (tried again
         * after the retry interval, 1 s) */
        {
            EVP_PKEY *k3 = tu_key("p256");
            write_key(dir, "a.key", k3);
            usleep(1200 * 1000);
            assert_int_equal(fp_signer_sign_req(s, req, &e), FP_ERR_KEY_UNAVAILABLE);
            EVP_PKEY_free(k3);
        }
        assert_int_equal(rename(moved, kp), 0);
        assert_int_equal(sign_until(s, req, FP_ERR_OK), FP_ERR_OK);
        assert_int_equal(X509_REQ_verify(req, k), 1);
    }

    fp_signer_free(s);
    fp_signer_free(s2);
    fp_privsep_free(ps);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
    tu_rmdir(dir);
}

/* ---- raw frames against the child's loop ---- */

typedef struct child {
    int fd;
    pid_t pid;
} child;

static child spawn(void)
{
    int sv[2];
    child c;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c.pid = fork();
    assert_true(c.pid >= 0);
    if (c.pid == 0) {
        close(sv[0]);
        fp_privsep_child_main(&sv[1], 1);
    }
    close(sv[1]);
    c.fd = sv[0];
    return c;
}

static void put(int fd, uint8_t op, const void *body, size_t len)
{
    uint32_t n = htonl((uint32_t)(len + 1));
    assert_int_equal(write(fd, &n, 4), 4);
    assert_int_equal(write(fd, &op, 1), 1);
    if (len)
        assert_int_equal(write(fd, body, len), (ssize_t)len);
}

/* Answer status; body copied to out (up to cap), length to *len.  -1: EOF. */
static int get(int fd, unsigned char *out, size_t cap, size_t *len)
{
    unsigned char hdr[5];
    uint32_t n;
    size_t got = 0;
    if (read(fd, hdr, 5) != 5)
        return -1;
    memcpy(&n, hdr, 4);
    n = ntohl(n) - 1;
    assert_true(n <= cap);
    while (got < n) {
        ssize_t r = read(fd, out + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    *len = n;
    return hdr[4];
}

/* OPEN key file kp (u16 ref length, ref, u16 passphrase length 0) as the
 * child's first key: id 0. */
static void open_first(int fd, const char *kp)
{
    unsigned char req[600], ans[4096];
    size_t n = 0, len = strlen(kp);
    assert_true(len < sizeof(req) - 4);
    req[0] = (unsigned char)(len >> 8);
    req[1] = (unsigned char)len;
    memcpy(req + 2, kp, len);
    req[2 + len] = req[3 + len] = 0;
    put(fd, 1, req, 4 + len);
    assert_int_equal(get(fd, ans, sizeof(ans), &n), FP_ERR_OK);
    assert_true(n > 4);
    assert_memory_equal(ans, "\0\0\0\0", 4); /* key id 0 */
}

/* GEN body: u16 ref length, ref, u16 algorithm length, algorithm, u16
 * passphrase length (empty) */
static size_t gen_body(unsigned char *req, const char *ref, const char *algo)
{
    size_t rl = strlen(ref), al = strlen(algo);
    req[0] = (unsigned char)(rl >> 8);
    req[1] = (unsigned char)rl;
    memcpy(req + 2, ref, rl);
    req[2 + rl] = 0;
    req[3 + rl] = (unsigned char)al;
    memcpy(req + 4 + rl, algo, al);
    req[4 + rl + al] = req[5 + rl + al] = 0;
    return 6 + rl + al;
}

/* GEN (the OCSP signer's renewal): after the seal only for a file the
 * signer holds; the new key goes to <ref>.new, 0600, under a new id whose
 * public key is answered; a truncated GEN closes the channel. */
static void test_gen(void **state)
{
    char *dir = tu_tmpdir();
    EVP_PKEY *k = tu_key("p256"), *nk = NULL;
    char *kp = write_key(dir, "a.key", k), newp[600];
    child c = spawn();
    unsigned char req[700], ans[4096];
    const unsigned char *der;
    size_t n = 0, len = strlen(kp), bl;
    struct stat st;
    fp_error e = {0};
    (void)state;

    req[0] = 0;
    req[1] = (unsigned char)len;
    memcpy(req + 2, kp, len);
    req[2 + len] = req[3 + len] = 0;
    put(c.fd, 1, req, 4 + len);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
    put(c.fd, 3, NULL, 0);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
    /* a path it does not hold: refused, nothing written */
    snprintf(newp, sizeof(newp), "%s/b.key", dir);
    bl = gen_body(req, newp, "p256");
    put(c.fd, 4, req, bl);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_STATE);
    snprintf(newp, sizeof(newp), "%s/b.key.new", dir);
    assert_int_not_equal(access(newp, F_OK), 0);
    /* the key it holds: a new key in a.key.new, id 1, its public key */
    bl = gen_body(req, kp, "p256");
    put(c.fd, 4, req, bl);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
    assert_memory_equal(ans, "\0\0\0\1", 4);
    snprintf(newp, sizeof(newp), "%s.new", kp);
    assert_int_equal(stat(newp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(fp_key_read(newp, NULL, 0, &nk, &e), 0);
    der = ans + 4;
    {
        EVP_PKEY *pub = d2i_PUBKEY(NULL, &der, (long)(n - 4));
        assert_non_null(pub);
        assert_int_equal(EVP_PKEY_eq(pub, nk), 1);
        assert_int_not_equal(EVP_PKEY_eq(pub, k), 1);
        EVP_PKEY_free(pub);
    }
    /* it signs with id 1 */
    memcpy(req, "\0\0\0\1\x06SHA256", 11);
    memset(req + 11, 0x5a, 32);
    put(c.fd, 2, req, 43);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
    /* an unknown algorithm is an error answer, not a crash */
    bl = gen_body(req, kp, "dsa1024");
    put(c.fd, 4, req, bl);
    assert_int_not_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
    /* algorithm length past the frame: the channel closes */
    bl = gen_body(req, kp, "p256");
    put(c.fd, 4, req, bl - 4);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), -1);
    close(c.fd);
    waitpid(c.pid, NULL, 0);
    EVP_PKEY_free(nk);
    EVP_PKEY_free(k);
    tu_rmdir(dir);
}

static void test_wire_refusals(void **state)
{
    char *dir = tu_tmpdir();
    EVP_PKEY *k = tu_key("p256");
    char *kp = write_key(dir, "a.key", k);
    child c = spawn();
    unsigned char req[600], ans[4096];
    size_t n = 0;
    (void)state;

    open_first(c.fd, kp);

    /* SIGN with a key id it never handed out */
    memcpy(req, "\0\0\0\x07\x06SHA256", 11);
    memset(req + 11, 0x5a, 32);
    put(c.fd, 2, req, 43);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_NOT_FOUND);
    assert_non_null(memmem(ans, n, "unknown key id", 14));
    /* a digest of the wrong length */
    req[3] = 0;
    put(c.fd, 2, req, 42);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_ARG);
    /* a whole message for a P-256 key (only EdDSA signs messages) */
    req[4] = 0;
    put(c.fd, 2, req, 5 + 10);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_ARG);
    /* the right request signs */
    memcpy(req, "\0\0\0\0\x06SHA256", 11);
    put(c.fd, 2, req, 43);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
    /* SEAL, then an unknown reference is refused */
    put(c.fd, 3, NULL, 0);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
    req[0] = 0;
    req[1] = 9;
    memcpy(req + 2, "/etc/motd", 9);
    req[11] = req[12] = 0;
    put(c.fd, 1, req, 13);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_STATE);
    /* an OPEN whose ref length runs past the frame: the channel closes */
    req[0] = 0x7f;
    put(c.fd, 1, req, 13);
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), -1);
    close(c.fd);
    waitpid(c.pid, NULL, 0);

    /* a frame longer than the maximum: closed before reading it */
    c = spawn();
    {
        uint32_t big = htonl(FP_PRIVSEP_MAX_MSG + 2);
        assert_int_equal(write(c.fd, &big, 4), 4);
        assert_int_equal(write(c.fd, "\2", 1), 1);
    }
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), -1);
    close(c.fd);
    waitpid(c.pid, NULL, 0);
    EVP_PKEY_free(k);
    tu_rmdir(dir);
}

/* A SIGN frame for key 0 over a SHA-256 digest of 32 bytes of v, into
 * out (48 bytes). */
static size_t sign_frame(unsigned char *out, unsigned char v)
{
    uint32_t n = htonl(44);
    memcpy(out, &n, 4);
    out[4] = 2;
    memcpy(out + 5, "\0\0\0\0\x06SHA256", 11);
    memset(out + 16, v, 32);
    return 48;
}

/* The signature in ans (n bytes) is k's over the digest of 32 bytes of v. */
static void assert_signed(EVP_PKEY *k, const unsigned char *ans, size_t n, unsigned char v)
{
    unsigned char dg[32];
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
    memset(dg, v, sizeof(dg));
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_verify(ctx, ans, n, dg, sizeof(dg)), 1);
    EVP_PKEY_CTX_free(ctx);
}

/* Pipelining (privsep.h): requests written back to back, in one write or
 * split anywhere, are each answered, in order; a malformed frame behind
 * good ones still has them answered before the channel closes. */
static void test_pipelined(void **state)
{
    char *dir = tu_tmpdir();
    EVP_PKEY *k = tu_key("p256");
    char *kp = write_key(dir, "a.key", k);
    child c = spawn();
    unsigned char buf[48 * 8], ans[4096];
    size_t n = 0, off = 0;
    (void)state;

    open_first(c.fd, kp);

    /* five in one write */
    for (int i = 0; i < 5; i++)
        off += sign_frame(buf + off, (unsigned char)(0x10 + i));
    assert_int_equal(write(c.fd, buf, off), (ssize_t)off);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
        assert_signed(k, ans, n, (unsigned char)(0x10 + i));
    }
    /* three split at odd places: inside a length, inside a body, between */
    off = 0;
    for (int i = 0; i < 3; i++)
        off += sign_frame(buf + off, (unsigned char)(0x20 + i));
    {
        size_t cuts[] = {0, 2, 61, 96, off};
        for (int i = 0; i + 1 < 5; i++) {
            assert_int_equal(write(c.fd, buf + cuts[i], cuts[i + 1] - cuts[i]),
                             (ssize_t)(cuts[i + 1] - cuts[i]));
            usleep(20000); /* the signer sees each piece on its own */
        }
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
        assert_signed(k, ans, n, (unsigned char)(0x20 + i));
    }
    /* two good ones and garbage (a zero length) behind them, in one write */
    off = sign_frame(buf, 0x30);
    off += sign_frame(buf + off, 0x31);
    memset(buf + off, 0, 5);
    off += 5;
    assert_int_equal(write(c.fd, buf, off), (ssize_t)off);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(get(c.fd, ans, sizeof(ans), &n), FP_ERR_OK);
        assert_signed(k, ans, n, (unsigned char)(0x30 + i));
    }
    assert_int_equal(get(c.fd, ans, sizeof(ans), &n), -1);
    close(c.fd);
    waitpid(c.pid, NULL, 0);
    EVP_PKEY_free(k);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_through_signer),
        cmocka_unit_test(test_reread_renewed_file),
        cmocka_unit_test(test_wire_refusals),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_gen),
        cmocka_unit_test(test_restart_after_kill),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
