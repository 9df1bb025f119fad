/*
 * privsep.c - the signer process and its client; see privsep.h.
 *
 * The client side is the network process: an opener for signer.c that
 * turns "open this key reference" into an OPEN request and wraps the
 * answer (a key id and the public key) as a remote key whose signatures
 * are SIGN requests.  The server side runs in the forked child: as many
 * threads as cores (signer_threads), each serving its share of the
 * channels through epoll, reading and answering requests in batches,
 * every length checked before use.
 */
#define _GNU_SOURCE
#include "privsep.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "../ca/signer.h"
#include "../common/util.h"
#include "../keys/rkey.h"
#include "supervisor.h"

enum { OP_OPEN = 1, OP_SIGN = 2, OP_SEAL = 3, OP_GEN = 4 };

#define MAX_KEYS 256
#define REF_MAX 4096
#define MD_NAME_MAX 31
#define ALGO_MAX 31
#define SIG_MAX 1024

/* ---- framing: both sides ---- */

/*
 * Spinning before sleeping: under load the answer (or the next request)
 * usually comes within tens of microseconds, and a thread that sleeps for
 * it pays two context switches, which perf shows as the largest single
 * cost of the separation (finish_task_switch, about a fifth of both
 * processes' samples, BENCHMARKS.md).  A reader can first poll without
 * blocking for up to spin_us (FLEETPKI_SIGNER_SPIN_US), then sleep as
 * before.  Off by default: on the shared 2-core machine, where the
 * cores are already oversubscribed, 50 us of spinning raised the CPU per
 * fresh OCSP answer from 115 to 205 us (the spinner takes the core the
 * other side needs); it can only pay where cores idle.
 */
#define SPIN_US_DEFAULT 0
static int spin_us = -1; /* read once, before the signer is forked */

static int spin_budget(void)
{
    if (spin_us < 0) {
        const char *e = getenv("FLEETPKI_SIGNER_SPIN_US");
        long v = e != NULL && *e ? strtol(e, NULL, 10) : SPIN_US_DEFAULT;
        spin_us = v < 0 ? 0 : v > 10000 ? 10000 : (int)v;
    }
    return spin_us;
}

static long long mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* read(), after polling for up to spin_budget() microseconds */
static ssize_t read_spin(int fd, void *buf, size_t len)
{
    ssize_t r;
    int us = spin_budget();
    if (us > 0) {
        long long end = mono_ns() + (long long)us * 1000;
        do {
            r = recv(fd, buf, len, MSG_DONTWAIT);
            if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                return r;
            cpu_relax();
        } while (mono_ns() < end);
    }
    return read(fd, buf, len);
}

static int read_all(int fd, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One frame: u32 length, u8 tag, body (two pieces, so nothing is copied),
 * in one sendmsg when the socket takes it whole. */
static int send_frame(int fd, uint8_t tag, const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char hdr[5];
    struct iovec iov[3];
    struct msghdr mh;
    size_t total = 5 + alen + blen, sent = 0;
    uint32_t n;

    if (alen + blen + 1 > FP_PRIVSEP_MAX_MSG)
        return -1;
    n = htonl((uint32_t)(1 + alen + blen));
    memcpy(hdr, &n, 4);
    hdr[4] = tag;
    iov[0] = (struct iovec){hdr, 5};
    iov[1] = (struct iovec){(void *)a, alen};
    iov[2] = (struct iovec){(void *)b, blen};
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = 3;
    while (sent < total) {
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        sent += (size_t)w;
        /* a short write: skip what went out */
        while (w > 0 && mh.msg_iovlen > 0) {
            if ((size_t)w >= mh.msg_iov[0].iov_len) {
                w -= (ssize_t)mh.msg_iov[0].iov_len;
                mh.msg_iov++;
                mh.msg_iovlen--;
            } else {
                mh.msg_iov[0].iov_base = (unsigned char *)mh.msg_iov[0].iov_base + w;
                mh.msg_iov[0].iov_len -= (size_t)w;
                w = 0;
            }
        }
    }
    return 0;
}

/* Frames collected to be written in one go (privsep.h, "Pipelining"): a
 * signing thread's answers to what one read brought, a worker's requests
 * of one turn of its loop. */
typedef struct obuf {
    unsigned char *p;
    size_t len, cap;
} obuf;

static int out_frame(obuf *o, uint8_t tag, const void *a, size_t alen, const void *b,
                     size_t blen)
{
    size_t need = 5 + alen + blen;
    uint32_t n;

    if (alen + blen + 1 > FP_PRIVSEP_MAX_MSG)
        return -1;
    if (o->cap - o->len < need) {
        size_t cap = o->cap ? o->cap : 4096;
        unsigned char *np;
        while (cap - o->len < need)
            cap *= 2;
        if ((np = realloc(o->p, cap)) == NULL)
            return -1;
        o->p = np;
        o->cap = cap;
    }
    n = htonl((uint32_t)(1 + alen + blen));
    memcpy(o->p + o->len, &n, 4);
    o->p[o->len + 4] = tag;
    if (alen)
        memcpy(o->p + o->len + 5, a, alen);
    if (blen)
        memcpy(o->p + o->len + 5 + alen, b, blen);
    o->len += need;
    return 0;
}

/* Write out what o holds, blocking (a worker has at most signer_async
 * requests out, whose answers and requests fit the socket buffers); -1:
 * the channel failed.  o is empty after either. */
static int out_flush(obuf *o, int fd)
{
    size_t off = 0;
    while (off < o->len) {
        ssize_t w = send(fd, o->p + off, o->len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            o->len = 0;
            return -1;
        }
        off += (size_t)w;
    }
    o->len = 0;
    return 0;
}

/* Receive a frame: *tag, and the body in *body (length *len): in inl
 * when it fits there (inlsize bytes; inl may be NULL), else malloc'd.
 * A synchronous channel carries one request and then its answer, never two
 * frames at once, so a first read of up to a page cannot take bytes of another
 * frame; the common small frame costs one read and no allocation.  spin:
 * poll briefly before sleeping for the first bytes (read_spin). */
static int recv_frame(int fd, uint8_t *tag, unsigned char *inl, size_t inlsize,
                      unsigned char **body, size_t *len, bool spin)
{
    unsigned char first[4096];
    size_t got = 0, want;
    uint32_t n;

    *body = NULL;
    while (got < 5) {
        ssize_t r = spin && got == 0 ? read_spin(fd, first, sizeof(first))
                                     : read(fd, first + got, sizeof(first) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    memcpy(&n, first, 4);
    n = ntohl(n);
    if (n < 1 || n > FP_PRIVSEP_MAX_MSG)
        return -1;
    want = 4 + (size_t)n;
    if (got > want)
        return -1; /* more than one frame: the peer is out of step */
    *tag = first[4];
    *len = n - 1;
    if (inl != NULL && *len <= inlsize && want == got) {
        memcpy(inl, first + 5, *len);
        *body = inl;
        return 0;
    }
    if ((*body = malloc(*len ? *len : 1)) == NULL)
        return -1;
    memcpy(*body, first + 5, got - 5);
    if (want > got && read_all(fd, *body + (got - 5), want - got) != 0) {
        free(*body);
        *body = NULL;
        return -1;
    }
    return 0;
}

/* A bounded reader over a received body. */
typedef struct rd {
    const unsigned char *p;
    size_t left;
} rd;

static bool rd_u8(rd *r, uint8_t *v)
{
    if (r->left < 1)
        return false;
    *v = r->p[0];
    r->p++;
    r->left--;
    return true;
}

static bool rd_u16(rd *r, uint16_t *v)
{
    if (r->left < 2)
        return false;
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    r->left -= 2;
    return true;
}

static bool rd_u32(rd *r, uint32_t *v)
{
    if (r->left < 4)
        return false;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->left -= 4;
    return true;
}

static bool rd_bytes(rd *r, size_t n, const unsigned char **out)
{
    if (r->left < n)
        return false;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

/* ---- the signer process ---- */


typedef struct skey {
    char ref[REF_MAX];
    fp_signer *signer;
    unsigned char *spki;
    int spki_len;
} skey;

typedef struct server {
    pthread_mutex_t mu;
    skey keys[MAX_KEYS];
    long long retry_at[MAX_KEYS]; /* a key not reopened: next try (ms) */
    uint32_t n;
    bool sealed;
    int jfd; /* the journal to the supervisor (supervisor.h); -1: none */
    const fp_sigjournal *j; /* what a restarted signer reopens from */
} server;

/* A new key id: the supervisor learns it before the network side does,
 * so a signer started after this one dies answers for it too. */
static void journal_note(server *s, uint8_t kind, int idx, const void *pass, size_t passlen)
{
    skey *k = &s->keys[idx];
    if (fp_sj_send(s->jfd, kind, (uint32_t)idx, k->ref, pass, passlen, k->spki,
                   (size_t)k->spki_len) != 0)
        fp_log(FP_LOG_WARN, "signer: key %d not recorded with the supervisor: a restarted "
                            "signer will not have it", idx);
}

static int reply_err(obuf *o, int code, const char *msg)
{
    return out_frame(o, (uint8_t)code, msg, strlen(msg), NULL, 0);
}

/* Find ref (the newest entry for it), or -1. */
static int find_ref(server *s, const char *ref)
{
    for (int i = (int)s->n - 1; i >= 0; i--)
        if (!strcmp(s->keys[i].ref, ref))
            return i;
    return -1;
}

/*
 * OPEN: before the seal, any reference; after it, only a known one.  A
 * known key file is read again (the server renews its OCSP signer's key in
 * place, at start or while running) and gets a new id when its key
 * changed; a token key is not.
 */
static int do_open(server *s, obuf *o, rd *r)
{
    uint16_t reflen = 0, passlen = 0;
    const unsigned char *ref = NULL, *pass = NULL;
    char refz[REF_MAX];
    fp_signer *sg = NULL;
    fp_error err = {0};
    unsigned char *spki = NULL, hdr[4];
    int spki_len, idx, rc;
    uint32_t id;

    if (!rd_u16(r, &reflen) || reflen == 0 || reflen >= REF_MAX || !rd_bytes(r, reflen, &ref) ||
        !rd_u16(r, &passlen) || !rd_bytes(r, passlen, &pass) || r->left != 0 ||
        memchr(ref, 0, reflen) != NULL)
        return -1;
    memcpy(refz, ref, reflen);
    refz[reflen] = '\0';
    pthread_mutex_lock(&s->mu);
    idx = find_ref(s, refz);
    if (idx < 0 && s->sealed) {
        char esc[256];
        pthread_mutex_unlock(&s->mu);
        fp_log(FP_LOG_WARN, "signer: refused to open %s after startup",
               fp_log_escape(esc, sizeof(esc), refz));
        return reply_err(o, FP_ERR_STATE,
                         "the signer opens no new key once the server runs (restart it)");
    }
    if (idx < 0 || strncasecmp(refz, "pkcs11:", 7) != 0) {
        rc = fp_signer_open_direct(refz, (const char *)pass, passlen, &sg, &err);
        if (rc != FP_ERR_OK) {
            pthread_mutex_unlock(&s->mu);
            return reply_err(o, rc, fp_err_str(&err));
        }
        spki_len = i2d_PUBKEY(fp_signer_get0_pkey(sg), &spki);
        if (spki_len <= 0) {
            pthread_mutex_unlock(&s->mu);
            fp_signer_free(sg);
            return reply_err(o, FP_ERR_CRYPTO, "public key encoding");
        }
        if (idx >= 0 && s->keys[idx].spki_len == spki_len &&
            !memcmp(s->keys[idx].spki, spki, (size_t)spki_len)) {
            fp_signer_free(sg); /* unchanged */
            OPENSSL_free(spki);
        } else if (s->n == MAX_KEYS) {
            pthread_mutex_unlock(&s->mu);
            fp_signer_free(sg);
            OPENSSL_free(spki);
            return reply_err(o, FP_ERR_TOO_LARGE, "the signer holds too many keys");
        } else {
            idx = (int)s->n;
            snprintf(s->keys[idx].ref, REF_MAX, "%s", refz);
            s->keys[idx].signer = sg;
            s->keys[idx].spki = spki;
            s->keys[idx].spki_len = spki_len;
            s->n++; /* published last: signing threads read n without the lock */
            journal_note(s, FP_SJ_OPEN, idx, pass, passlen);
        }
    }
    id = htonl((uint32_t)idx);
    memcpy(hdr, &id, 4);
    rc = out_frame(o, FP_ERR_OK, hdr, 4, s->keys[idx].spki, (size_t)s->keys[idx].spki_len);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/*
 * GEN: a new key for a file reference, written to "<ref>.new" by this
 * process (0600) and kept under ref, so that the network process renames
 * it into place and never holds it (the OCSP signer's renewal while the
 * server runs).  After the seal only for a file reference already open:
 * no new path can be named.
 */
static int do_gen(server *s, obuf *o, rd *r)
{
    uint16_t reflen = 0, algolen = 0, passlen = 0;
    const unsigned char *ref = NULL, *algo = NULL, *pass = NULL;
    char refz[REF_MAX], algoz[ALGO_MAX + 1];
    EVP_PKEY *key = NULL;
    fp_signer *sg = NULL;
    fp_error err = {0};
    unsigned char *spki = NULL, hdr[4];
    int spki_len, idx, rc;
    uint32_t id;

    if (!rd_u16(r, &reflen) || reflen == 0 || reflen >= REF_MAX - 8 ||
        !rd_bytes(r, reflen, &ref) || !rd_u16(r, &algolen) || algolen == 0 ||
        algolen > ALGO_MAX || !rd_bytes(r, algolen, &algo) || !rd_u16(r, &passlen) ||
        !rd_bytes(r, passlen, &pass) || r->left != 0 || memchr(ref, 0, reflen) != NULL ||
        memchr(algo, 0, algolen) != NULL)
        return -1;
    memcpy(refz, ref, reflen);
    refz[reflen] = '\0';
    memcpy(algoz, algo, algolen);
    algoz[algolen] = '\0';
    pthread_mutex_lock(&s->mu);
    if (s->sealed && find_ref(s, refz) < 0) {
        char esc[256];
        pthread_mutex_unlock(&s->mu);
        fp_log(FP_LOG_WARN, "signer: refused to make a key for %s after startup",
               fp_log_escape(esc, sizeof(esc), refz));
        return reply_err(o, FP_ERR_STATE, "the signer makes keys only for keys it holds");
    }
    if (s->n == MAX_KEYS) {
        pthread_mutex_unlock(&s->mu);
        return reply_err(o, FP_ERR_TOO_LARGE, "the signer holds too many keys");
    }
    rc = fp_signer_generate_direct(refz, algoz, (const char *)pass, passlen, &key, &err);
    if (rc == FP_ERR_OK)
        rc = fp_signer_from_key(key, &sg, &err);
    EVP_PKEY_free(key);
    if (rc != FP_ERR_OK) {
        pthread_mutex_unlock(&s->mu);
        return reply_err(o, rc, fp_err_str(&err));
    }
    if ((spki_len = i2d_PUBKEY(fp_signer_get0_pkey(sg), &spki)) <= 0) {
        pthread_mutex_unlock(&s->mu);
        fp_signer_free(sg);
        return reply_err(o, FP_ERR_CRYPTO, "public key encoding");
    }
    idx = (int)s->n;
    snprintf(s->keys[idx].ref, REF_MAX, "%s", refz);
    s->keys[idx].signer = sg;
    s->keys[idx].spki = spki;
    s->keys[idx].spki_len = spki_len;
    s->n++; /* published last, as in do_open */
    journal_note(s, FP_SJ_GEN, idx, pass, passlen);
    id = htonl((uint32_t)idx);
    memcpy(hdr, &id, 4);
    rc = out_frame(o, FP_ERR_OK, hdr, 4, spki, (size_t)spki_len);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Signing contexts a channel's thread keeps between requests (one per key
 * and digest), so a signature costs the signature and not the context's
 * set-up: per thread, so no lock. */
#define PREP_MAX 8
typedef struct prep {
    uint32_t id;
    const EVP_MD *dg;
    EVP_PKEY_CTX *ctx;
} prep;

typedef struct chan_cache {
    prep p[PREP_MAX];
    int n, next;
} chan_cache;

static EVP_PKEY_CTX *prepared(chan_cache *cc, uint32_t id, EVP_PKEY *key, const EVP_MD *dg)
{
    EVP_PKEY_CTX *ctx;
    prep *slot;

    for (int i = 0; i < cc->n; i++)
        if (cc->p[i].id == id && cc->p[i].dg == dg)
            return cc->p[i].ctx;
    if ((ctx = EVP_PKEY_CTX_new(key, NULL)) == NULL || EVP_PKEY_sign_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, dg) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    if (cc->n < PREP_MAX) {
        slot = &cc->p[cc->n++];
    } else {
        slot = &cc->p[cc->next];
        cc->next = (cc->next + 1) % PREP_MAX;
        EVP_PKEY_CTX_free(slot->ctx);
    }
    *slot = (prep){id, dg, ctx};
    return ctx;
}

static void cache_free(chan_cache *cc)
{
    for (int i = 0; i < cc->n; i++)
        EVP_PKEY_CTX_free(cc->p[i].ctx);
    cc->n = 0;
}

static fp_signer *retry_key(server *s, uint32_t id);

static int do_sign(server *s, chan_cache *cc, obuf *o, rd *r)
{
    fp_signer *sg;
    uint32_t id = 0, n;
    uint8_t mdlen = 0;
    const unsigned char *md = NULL;
    char mdname[MD_NAME_MAX + 1];
    EVP_PKEY *key;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_MD_CTX *mctx = NULL;
    const EVP_MD *dg = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    fp_error err = {0};
    int rc;

    if (!rd_u32(r, &id) || !rd_u8(r, &mdlen) || mdlen > MD_NAME_MAX || !rd_bytes(r, mdlen, &md))
        return -1;
    pthread_mutex_lock(&s->mu);
    n = s->n;
    pthread_mutex_unlock(&s->mu);
    if (id >= n) /* only keys this signer opened, never an index past them */
        return reply_err(o, FP_ERR_NOT_FOUND, "unknown key id");
    if ((sg = __atomic_load_n(&s->keys[id].signer, __ATOMIC_ACQUIRE)) == NULL &&
        (sg = retry_key(s, id)) == NULL) /* a restarted signer could not reopen it */
        return reply_err(o, FP_ERR_KEY_UNAVAILABLE, "key not available (not reopened)");
    key = fp_signer_get0_pkey(sg);
    memcpy(mdname, md, mdlen);
    mdname[mdlen] = '\0';
    if (mdlen > 0) {
        /* a digest of exactly its algorithm's size, nothing else */
        if ((dg = EVP_get_digestbyname(mdname)) == NULL ||
            (size_t)EVP_MD_get_size(dg) != r->left)
            return reply_err(o, FP_ERR_ARG, "digest name or length");
    } else if (!EVP_PKEY_is_a(key, "ED25519") && !EVP_PKEY_is_a(key, "ED448")) {
        return reply_err(o, FP_ERR_ARG, "a whole message is signed only with EdDSA keys");
    }
    if (fp_rkey_is_remote(key)) {
        rc = fp_rkey_sign_raw(key, mdlen ? mdname : NULL, r->p, r->left, &sig, &siglen, &err);
        if (rc != FP_ERR_OK)
            return reply_err(o, rc, fp_err_str(&err));
    } else if (mdlen == 0) {
        /* RFC 8032 PureEdDSA over the whole message */
        if ((mctx = EVP_MD_CTX_new()) == NULL ||
            EVP_DigestSignInit(mctx, NULL, NULL, NULL, key) != 1 ||
            EVP_DigestSign(mctx, NULL, &siglen, r->p, r->left) != 1 ||
            (sig = OPENSSL_malloc(siglen)) == NULL ||
            EVP_DigestSign(mctx, sig, &siglen, r->p, r->left) != 1) {
            EVP_MD_CTX_free(mctx);
            OPENSSL_free(sig);
            return reply_err(o, FP_ERR_CRYPTO, "EdDSA signing failed");
        }
        EVP_MD_CTX_free(mctx);
    } else {
        /* ECDSA (DER ECDSA-Sig-Value) or RSASSA-PKCS1-v1_5 (DigestInfo made
         * by OpenSSL) over the digest, with this thread's prepared context
         * (a signature leaves it ready for the next one) */
        unsigned char buf[SIG_MAX];
        siglen = sizeof(buf);
        if ((ctx = prepared(cc, id, key, dg)) == NULL ||
            EVP_PKEY_sign(ctx, buf, &siglen, r->p, r->left) != 1)
            return reply_err(o, FP_ERR_CRYPTO, "signing failed");
        return out_frame(o, FP_ERR_OK, buf, siglen, NULL, 0);
    }
    rc = out_frame(o, FP_ERR_OK, sig, siglen, NULL, 0);
    OPENSSL_free(sig);
    return rc;
}

/* A channel as a signing thread sees it: what it read and has not served
 * yet (a request may arrive in pieces, and several at once). */
typedef struct schan {
    int fd;
    unsigned char *buf;
    size_t len, cap;
} schan;

#define SCHAN_BUF 16384
/* answers written together at most: the first answers of a long batch go
 * out while the rest are signed */
#define FLUSH_EVERY 8

/* One request (op, body[len]) into o; -1: malformed (the channel closes). */
static int serve_one(server *s, chan_cache *cc, obuf *o, uint8_t op, const unsigned char *body,
                     size_t len)
{
    rd r = {body, len};
    int rc = -1;

    if (op == OP_OPEN) {
        rc = do_open(s, o, &r);
    } else if (op == OP_SIGN) {
        rc = do_sign(s, cc, o, &r);
    } else if (op == OP_GEN) {
        rc = do_gen(s, o, &r);
    } else if (op == OP_SEAL && len == 0) {
        pthread_mutex_lock(&s->mu);
        s->sealed = true;
        if (fp_sj_send(s->jfd, FP_SJ_SEAL, 0, NULL, NULL, 0, NULL, 0) != 0)
            fp_log(FP_LOG_WARN, "signer: the seal not recorded with the supervisor");
        pthread_mutex_unlock(&s->mu);
        rc = out_frame(o, FP_ERR_OK, NULL, 0, NULL, 0);
    }
    return rc;
}

/*
 * The channel is readable: read what is there and serve every whole
 * request in it, in order, answering in as few writes as possible.  A
 * request's length is checked before its bytes are waited for; a frame
 * never needs more than 4 + FP_PRIVSEP_MAX_MSG bytes of buffer.  -1: the
 * channel is closed or out of step (the caller closes it).
 */
static int serve_chan(server *s, chan_cache *cc, obuf *o, schan *c)
{
    size_t off = 0;
    ssize_t r;
    int rc = 0, answered = 0;

    if (c->cap - c->len < SCHAN_BUF / 4 && c->cap < SCHAN_BUF) {
        unsigned char *nb = realloc(c->buf, SCHAN_BUF);
        if (nb == NULL)
            return -1;
        c->buf = nb;
        c->cap = SCHAN_BUF;
    }
    do
        r = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (r <= 0)
        return -1; /* the network process closed it */
    c->len += (size_t)r;
    while (c->len - off >= 5) {
        uint32_t n;
        size_t want;
        memcpy(&n, c->buf + off, 4);
        n = ntohl(n);
        if (n < 1 || n > FP_PRIVSEP_MAX_MSG) {
            rc = -1; /* garbage: never read on */
            break;
        }
        want = 4 + (size_t)n;
        if (c->len - off < want) {
            if (want > c->cap) {
                /* a large request (an Ed25519 TBS): room for exactly it */
                unsigned char *nb;
                memmove(c->buf, c->buf + off, c->len - off);
                c->len -= off;
                off = 0;
                if ((nb = realloc(c->buf, want)) == NULL) {
                    rc = -1;
                    break;
                }
                c->buf = nb;
                c->cap = want;
            }
            break;
        }
        rc = serve_one(s, cc, o, c->buf[off + 4], c->buf + off + 5, n - 1);
        OPENSSL_cleanse(c->buf + off, want); /* may hold a passphrase */
        off += want;
        if (rc != 0)
            break;
        if (++answered % FLUSH_EVERY == 0 && out_flush(o, c->fd) != 0)
            return -1;
    }
    /* what was served before a malformed request is still answered */
    if (o->len > 0 && out_flush(o, c->fd) != 0)
        rc = -1;
    if (off > 0) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    if (c->cap > SCHAN_BUF && c->len <= SCHAN_BUF) {
        /* the large request is served: back to the usual buffer */
        unsigned char *nb = malloc(SCHAN_BUF);
        if (nb != NULL) {
            memcpy(nb, c->buf, c->len);
            OPENSSL_cleanse(c->buf, c->cap);
            free(c->buf);
            c->buf = nb;
            c->cap = SCHAN_BUF;
        }
    }
    if (rc != 0)
        fp_log(FP_LOG_WARN, "signer: malformed request or closed channel; closing it");
    return rc;
}

static void schan_close(schan *c)
{
    close(c->fd);
    if (c->buf != NULL)
        OPENSSL_cleanse(c->buf, c->cap);
    free(c->buf);
    *c = (schan){.fd = -1};
}

/*
 * A signing thread serves several channels through one epoll set: when
 * requests from several network workers wait, it answers them one after
 * the other without sleeping in between (a thread per channel woke and
 * switched once per request).  Threads = min(channels, cores)
 * (signer_threads), so signing still uses every core.  An async channel
 * brings up to signer_async requests at once:
 * one read takes them all and one write returns their answers.
 */
typedef struct loop_arg {
    server *s;
    int *fds;
    int n;
} loop_arg;

static void *serve_loop(void *arg)
{
    loop_arg *l = arg;
    chan_cache cc = {0};
    obuf o = {0};
    struct epoll_event evs[32];
    schan *ch = calloc((size_t)(l->n > 0 ? l->n : 1), sizeof(*ch));
    int ep = epoll_create1(EPOLL_CLOEXEC), open_n = 0;

    if (ep < 0 || ch == NULL) {
        for (int i = 0; i < l->n; i++)
            close(l->fds[i]);
        if (ep >= 0)
            close(ep);
        free(ch);
        return NULL;
    }
    for (int i = 0; i < l->n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ch[i]};
        ch[i].fd = l->fds[i];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fds[i], &ev) == 0)
            open_n++;
        else
            schan_close(&ch[i]);
    }
    while (open_n > 0) {
        int k = 0, us = spin_budget();
        if (us > 0) {
            /* the next request, if it comes soon, without sleeping for it */
            long long end = mono_ns() + (long long)us * 1000;
            do {
                k = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 0);
                if (k != 0)
                    break;
                cpu_relax();
            } while (mono_ns() < end);
        }
        if (k == 0)
            k = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), -1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            break;
        for (int i = 0; i < k; i++) {
            schan *c = evs[i].data.ptr;
            if (serve_chan(l->s, &cc, &o, c) != 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                schan_close(c);
                open_n--;
            }
        }
    }
    close(ep);
    for (int i = 0; i < l->n; i++)
        if (ch[i].fd >= 0)
            schan_close(&ch[i]);
    free(ch);
    free(o.p);
    cache_free(&cc);
    return NULL;
}

/* Open journal entry e's key again (a GEN key not renamed into place yet
 * is still at <ref>.new) and check it is the key it named. */
static int reopen(const fp_sj_entry *e, fp_signer **out, unsigned char **spki, int *len,
                  fp_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        char path[REF_MAX + 8];
        fp_signer *sg = NULL;
        if (attempt == 1 && e->kind != FP_SJ_GEN)
            break;
        snprintf(path, sizeof(path), attempt ? "%s.new" : "%s", e->ref);
        if (fp_signer_open_direct(path, (const char *)e->pass, e->passlen, &sg, err) != FP_ERR_OK)
            continue;
        *spki = NULL;
        *len = i2d_PUBKEY(fp_signer_get0_pkey(sg), spki);
        if (*len > 0 && (size_t)*len == e->spki_len && !memcmp(*spki, e->spki, e->spki_len)) {
            *out = sg;
            return FP_ERR_OK;
        }
        fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "a different key is there now");
        fp_signer_free(sg);
        OPENSSL_free(*spki);
        *spki = NULL;
    }
    return err->code != FP_ERR_OK ? err->code : FP_ERR_KEY_UNAVAILABLE;
}

#define RETRY_MS 1000

static long long mono_ms(void)
{
    return mono_ns() / 1000000;
}

/*
 * A signer started after one died: the same key ids for the same keys.
 * Each journaled reference is opened again (a GEN key that the network
 * side has not renamed into place yet is still at <ref>.new); an id whose
 * key is not found, or is no longer the key it named, stays in the table
 * without a key, so its signatures fail (key-unavailable) and no other
 * key ever answers for it, until retry_key finds the same key again.
 */
static void replay(server *s, const fp_sigjournal *j)
{
    uint32_t ok = 0;

    for (uint32_t i = 0; i < j->n && i < MAX_KEYS; i++) {
        const fp_sj_entry *e = &j->e[i];
        skey *k = &s->keys[i];
        fp_error err = {0};
        unsigned char *spki = NULL;
        fp_signer *sg = NULL;
        int len = 0;

        if (e->kind == 0) {
            snprintf(k->ref, REF_MAX, "%s", "");
            continue;
        }
        snprintf(k->ref, REF_MAX, "%s", e->ref);
        if (reopen(e, &sg, &spki, &len, &err) != FP_ERR_OK) {
            char esc[256];
            fp_log(FP_LOG_ERROR, "signer: key %u (%s) not reopened: %s (tried again on use, "
                                 "every %d ms at most)", i,
                   fp_log_escape(esc, sizeof(esc), e->ref), fp_err_str(&err), RETRY_MS);
            /* the journaled public key still answers OPEN for it */
            if ((spki = OPENSSL_malloc(e->spki_len ? e->spki_len : 1)) != NULL)
                memcpy(spki, e->spki, e->spki_len);
            len = spki ? (int)e->spki_len : 0;
            sg = NULL;
        } else {
            ok++;
        }
        k->signer = sg;
        k->spki = spki;
        k->spki_len = len;
    }
    s->n = j->n < MAX_KEYS ? j->n : MAX_KEYS;
    s->sealed = j->sealed;
    s->j = j;
    fp_log(FP_LOG_INFO, "signer process %d started: %u of %u keys reopened%s", (int)getpid(), ok,
           s->n, s->sealed ? ", sealed" : "");
}

/*
 * Key id not reopened at this signer's start (a token that was unplugged,
 * a key file moved away): tried again when it is asked for, once every
 * RETRY_MS at most, so it comes back without a server restart once its
 * token or file does (the same public key only).  The key it finds is
 * published with an atomic store: signing threads read it without the
 * lock.
 */
static fp_signer *retry_key(server *s, uint32_t id)
{
    fp_signer *sg = NULL;
    unsigned char *spki = NULL;
    fp_error err = {0};
    int len = 0;
    long long now = mono_ms();

    pthread_mutex_lock(&s->mu);
    if ((sg = __atomic_load_n(&s->keys[id].signer, __ATOMIC_ACQUIRE)) != NULL ||
        s->j == NULL || id >= s->j->n || s->j->e[id].kind == 0 || now < s->retry_at[id]) {
        pthread_mutex_unlock(&s->mu);
        return sg;
    }
    s->retry_at[id] = now + RETRY_MS;
    if (reopen(&s->j->e[id], &sg, &spki, &len, &err) == FP_ERR_OK) {
        char esc[256];
        OPENSSL_free(spki); /* the same as the journaled one it answers with */
        __atomic_store_n(&s->keys[id].signer, sg, __ATOMIC_RELEASE);
        fp_log(FP_LOG_INFO, "signer: key %u (%s) reopened", id,
               fp_log_escape(esc, sizeof(esc), s->keys[id].ref));
    }
    pthread_mutex_unlock(&s->mu);
    return sg;
}

/*
 * How many signing threads: as many as cores (at most one per channel).
 * A thread serves its share of the channels; a worker's async channel is
 * served by one thread, which reads the worker's pipelined requests in
 * batches.  Before pipelining (a channel per request out) half the cores
 * did better, since one thread found several channels ready per wakeup;
 * with pipelining one thread on the 2-core bench machine became the
 * serialisation point (a quarter core idle while the workers waited for
 * it, fresh OCSP 84% of in-process) and two reached 91-103%
 * (BENCHMARKS.md, "Separate signer", pipelined channels).
 * FLEETPKI_SIGNER_THREADS=N sets it (1..cores), for measuring.  Read in
 * the parent before the fork, so a restarted signer does the same.
 */
static long signer_threads(long cores)
{
    const char *te = getenv("FLEETPKI_SIGNER_THREADS");
    long want = te != NULL && *te ? strtol(te, NULL, 10) : 0;

    if (cores < 1)
        cores = 1;
    if (want > 0)
        return want < cores ? want : cores;
    return cores;
}

void fp_privsep_child_main(int *fds, int n)
{
    fp_privsep_child_run(fds, n, NULL);
}

void fp_privsep_child_run(int *fds, int n, const fp_sigjournal *j)
{
    static server s;
    long cores = signer_threads(sysconf(_SC_NPROCESSORS_ONLN));
    int nt = (int)(cores < 1 ? 1 : cores < n ? cores : n);
    pthread_t *th = calloc((size_t)nt, sizeof(*th));
    loop_arg *args = calloc((size_t)nt, sizeof(*args));
    int *byt = calloc((size_t)n, sizeof(*byt));

    /* die with the network process; never dumped or traced by it */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_DUMPABLE, 0);
    prctl(PR_SET_NAME, "fleetpki-signer");
    /* SIGTERM/SIGINT go to the network process, which drains and then
     * closes the channels; the signer must outlive the drain */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&s.mu, NULL);
    s.jfd = j != NULL ? j->fd : -1;
    if (j != NULL && j->n > 0)
        replay(&s, j);
    if (th == NULL || args == NULL || byt == NULL)
        _exit(1);
    /* channel i to thread i % nt, each thread's channels side by side */
    for (int t = 0, k = 0; t < nt; t++) {
        args[t] = (loop_arg){&s, byt + k, 0};
        for (int i = t; i < n; i += nt)
            byt[k++] = fds[i];
        args[t].n = (int)(byt + k - args[t].fds);
    }
    for (int t = 0; t < nt; t++)
        if (pthread_create(&th[t], NULL, serve_loop, &args[t]) != 0)
            _exit(1);
    for (int t = 0; t < nt; t++)
        pthread_join(th[t], NULL);
    _exit(0);
}

/* ---- the network side ---- */

/* One asynchronous answer, or the room for it. */
typedef struct aslot {
    int fd;       /* the descriptor its request went out on */
    unsigned seq; /* send order: answers come back in it */
    bool used, filled;
    uint8_t status;
    size_t len;
    unsigned char body[SIG_MAX];
} aslot;

#define RBUF_SIZE 8192
#define RETIRED_MAX 8

/* An async channel: one per worker, used only by the thread that drew it
 * (ps_start), so none of this is locked; rfd is written under the
 * channel's lock, which the watcher takes to read it. */
typedef struct achan {
    int window, out; /* signatures out at most (signer_async), and now */
    unsigned seq;
    aslot *slot;     /* window of them */
    int rfd;         /* the descriptor in use; -1: none yet */
    bool rdead;      /* it failed or fell out of step: its tickets fail */
    size_t rlen;
    unsigned char rbuf[RBUF_SIZE]; /* answers read and not yet handed out */
    int retired[RETIRED_MAX];      /* replaced descriptors, closed once no */
    int nretired;                  /* ticket is out on them (ps_start) */
    obuf w;                        /* requests of this turn, not sent yet */
} achan;

typedef struct chan {
    pthread_mutex_t mu;
    int fd;
    bool owned; /* an async channel a thread drew: it closes old descriptors */
    achan *a;   /* async channels only */
} chan;

/* Signatures out per worker at most (signer_async). */
#define ASYNC_PER_MAX 64

struct fp_privsep {
    atomic_int refs;
    pid_t pid;              /* the supervisor */
    atomic_int signer_pid;  /* the signer it runs now */
    int n;
    atomic_uint next;
    chan *ch;
    int nsync;              /* ch[0..nsync-1]: one request/answer at a time */
    int async_per, async_blocks; /* then async_blocks async channels (one per
                                    worker) with async_per requests out each */
    atomic_int next_block;
    unsigned gen;           /* tells a thread's block of this one from an old one's */
    int ctl;                /* control socket from the supervisor */
    pthread_t watcher;
    bool watching;
    atomic_bool stopping;
};

typedef struct rkey_arg {
    fp_privsep *p;
    uint32_t id;
} rkey_arg;

static void privsep_unref(fp_privsep *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    for (int i = 0; i < p->n; i++) {
        achan *a = p->ch[i].a;
        if (p->ch[i].fd >= 0)
            close(p->ch[i].fd);
        if (a != NULL) {
            if (a->rfd >= 0 && a->rfd != p->ch[i].fd)
                close(a->rfd);
            for (int k = 0; k < a->nretired; k++)
                close(a->retired[k]);
            free(a->slot);
            free(a->w.p);
            free(a);
        }
        pthread_mutex_destroy(&p->ch[i].mu);
    }
    free(p->ch);
    free(p);
}

static _Thread_local unsigned tl_slot; /* 0: this thread has none yet */

/* One request/answer on some channel.  An answer's status goes to *status
 * and its body to *body: inl when it fits there (inlsize), else malloc'd. */
static int roundtrip(fp_privsep *p, uint8_t op, const void *a, size_t alen, const void *b,
                     size_t blen, uint8_t *status, unsigned char *inl, size_t inlsize,
                     unsigned char **body, size_t *len, fp_error *err)
{
    chan *c;
    int rc = FP_ERR_OK;

    /* a thread keeps the channel it first drew: with a channel per worker
     * (serve makes workers + 4) no two threads wait on one lock while
     * another channel idles, as drawing round-robin per request did */
    if (tl_slot == 0)
        tl_slot = atomic_fetch_add(&p->next, 1) + 1;
    c = &p->ch[(tl_slot - 1) % (unsigned)p->nsync];

    pthread_mutex_lock(&c->mu);
    if (c->fd < 0 || send_frame(c->fd, op, a, alen, b, blen) != 0 ||
        recv_frame(c->fd, status, inl, inlsize, body, len, true) != 0) {
        /* a channel out of step is useless: close it so no later answer
         * is read as another request's */
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        rc = fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "the signer process is gone");
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* A SIGN request's fixed part: u32 key id, u8 n, digest name[n]. */
static int sign_header(const rkey_arg *ra, const char *mdname, unsigned char *hdr, size_t *hlen,
                       fp_error *err)
{
    size_t mdlen = mdname ? strlen(mdname) : 0;
    uint32_t id = htonl(ra->id);

    if (mdlen > MD_NAME_MAX)
        return fp_err_set(err, FP_ERR_ARG, "digest name too long");
    memcpy(hdr, &id, 4);
    hdr[4] = (unsigned char)mdlen;
    memcpy(hdr + 5, mdname ? mdname : "", mdlen);
    *hlen = 5 + mdlen;
    return FP_ERR_OK;
}

/* A SIGN answer into *sig (OPENSSL_malloc'd). */
static int sign_answer(uint8_t status, const unsigned char *body, size_t blen,
                       unsigned char **sig, size_t *siglen, fp_error *err)
{
    if (status != FP_ERR_OK)
        return fp_err_set(err, status < FP_ERR__COUNT ? status : FP_ERR_INTERNAL,
                          "signer: %.*s", (int)(blen > 300 ? 300 : blen), (const char *)body);
    if (blen == 0 || blen > SIG_MAX || (*sig = OPENSSL_malloc(blen)) == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "signer: bad signature length");
    memcpy(*sig, body, blen);
    *siglen = blen;
    return FP_ERR_OK;
}

static int ps_sign(void *arg, const char *mdname, const unsigned char *data, size_t len,
                   unsigned char **sig, size_t *siglen, fp_error *err)
{
    rkey_arg *ra = arg;
    unsigned char hdr[4 + 1 + MD_NAME_MAX], inl[SIG_MAX], *body = NULL;
    size_t hlen = 0, blen = 0;
    uint8_t status = 0;
    int rc;

    *sig = NULL;
    if ((rc = sign_header(ra, mdname, hdr, &hlen, err)) != FP_ERR_OK ||
        (rc = roundtrip(ra->p, OP_SIGN, hdr, hlen, data, len, &status, inl, sizeof(inl), &body,
                        &blen, err)) != FP_ERR_OK)
        return rc;
    rc = sign_answer(status, body, blen, sig, siglen, err);
    if (body != inl)
        free(body);
    return rc;
}

/*
 * Asynchronous signing (rkey.h start/finish), for the network workers'
 * ASYNC jobs (signer/async.h).  Each thread that signs this way draws an
 * async channel of its own, once, and pipelines its requests on it: up to
 * async_per out at once, written as they come, answered by the signer in
 * the same order (one signing thread serves a channel) and read back in
 * batches: one read brings every answer that is there, and each goes to
 * its slot, the oldest request's first.  finish hands out its slot's
 * answer, reading more only when it is not in yet (FP_RKEY_AGAIN when
 * nothing more is there: the job waits again).  When async_per are out,
 * start says FP_RKEY_WAIT (the job waits for one of them to come back:
 * queueing keeps the worker free, where blocking would stall every
 * connection of the worker); a thread that found no channel left signs
 * the blocking way.
 *
 * Descriptors: a job waits on the descriptor its request went out on, and
 * the worker's event loop keeps watching the channel's descriptor, between
 * batches too (fp_signer_thread_keep_fd: no epoll_ctl per batch), so no
 * descriptor a job may still wait on is ever closed.  After a restart the
 * watcher puts the new descriptor in the channel and leaves the old one
 * to its owner thread, which shuts it down (so every job waiting on it
 * wakes and fails) and closes it only once no request of its is out and
 * its watch is dropped (fp_signer_thread_forget_fd).
 */
typedef struct async_tl {
    fp_privsep *p;
    unsigned gen; /* p->gen: p may be a new one at an old one's address */
    int ci;       /* index of the thread's async channel; -1: none left */
} async_tl;

static _Thread_local async_tl tl_ab;
static atomic_uint privsep_gen;

static bool fd_in_use(const achan *a, int fd)
{
    for (int i = 0; i < a->window; i++)
        if (a->slot[i].used && a->slot[i].fd == fd)
            return true;
    return false;
}

/* Replaced descriptors no request is out on any more: closed. */
static void close_retired(achan *a)
{
    for (int k = 0; k < a->nretired;)
        if (!fd_in_use(a, a->retired[k])) {
            fp_signer_thread_forget_fd(a->retired[k]); /* no watch left on it */
            close(a->retired[k]);
            a->retired[k] = a->retired[--a->nretired];
        } else {
            k++;
        }
}

/* The channel's descriptor failed or is out of step: every request out on
 * it fails, and a job waiting on it wakes (it reads EOF now). */
static void mark_dead(achan *a)
{
    a->rdead = true;
    if (a->rfd >= 0)
        shutdown(a->rfd, SHUT_RDWR);
}

/* Whole answers in rbuf to their slots, oldest request first.  An answer
 * with no request out, or longer than any answer can be: out of step. */
static void take_answers(achan *a)
{
    size_t off = 0;

    while (!a->rdead && a->rlen - off >= 5) {
        uint32_t n;
        aslot *sl = NULL;
        memcpy(&n, a->rbuf + off, 4);
        n = ntohl(n);
        if (n < 1 || n - 1 > SIG_MAX) {
            mark_dead(a);
            break;
        }
        if (a->rlen - off < 4 + (size_t)n)
            break;
        for (int i = 0; i < a->window; i++) {
            aslot *c = &a->slot[i];
            if (c->used && !c->filled && c->fd == a->rfd && (sl == NULL || c->seq - sl->seq > (1u << 31)))
                sl = c;
        }
        if (sl == NULL) {
            mark_dead(a);
            break;
        }
        sl->filled = true;
        sl->status = a->rbuf[off + 4];
        sl->len = n - 1;
        memcpy(sl->body, a->rbuf + off + 5, sl->len);
        off += 4 + (size_t)n;
    }
    if (off > 0) {
        memmove(a->rbuf, a->rbuf + off, a->rlen - off);
        a->rlen -= off;
    }
}

/* Send what this turn queued, in one write. */
static void flush_requests(void *arg)
{
    achan *a = arg;
    if (a->rdead)
        a->w.len = 0;
    else if (a->w.len > 0 && out_flush(&a->w, a->rfd) != 0)
        mark_dead(a); /* its jobs read EOF and fail */
}

/*
 * A SIGN request on the channel: queued, and sent with the rest of the
 * worker's turn (fp_signer_thread_defer), so a turn that starts several
 * signatures wakes the signer once; at once where nothing defers.  -1:
 * the channel is dead.
 */
static int queue_request(achan *a, const unsigned char *hdr, size_t hlen,
                         const unsigned char *data, size_t len)
{
    if (out_frame(&a->w, OP_SIGN, hdr, hlen, data, len) != 0)
        return -1;
    if (!fp_signer_thread_defer(flush_requests, a))
        flush_requests(a);
    return a->rdead ? -1 : 0;
}

static int ps_start(void *arg, const char *mdname, const unsigned char *data, size_t len,
                    int *fd, void **ticket, fp_error *err)
{
    rkey_arg *ra = arg;
    fp_privsep *p = ra->p;
    unsigned char hdr[4 + 1 + MD_NAME_MAX];
    size_t hlen = 0;
    chan *c;
    achan *a;
    int i, rc;

    *fd = FP_RKEY_BLOCK;
    *ticket = NULL;
    if (p->async_blocks == 0)
        return FP_ERR_OK;
    if (tl_ab.p != p || tl_ab.gen != p->gen) {
        int b = atomic_fetch_add(&p->next_block, 1);
        tl_ab = (async_tl){p, p->gen, b < p->async_blocks ? p->nsync + b : -1};
        if (tl_ab.ci >= 0) {
            pthread_mutex_lock(&p->ch[tl_ab.ci].mu);
            p->ch[tl_ab.ci].owned = true;
            pthread_mutex_unlock(&p->ch[tl_ab.ci].mu);
        }
    }
    if (tl_ab.ci < 0)
        return FP_ERR_OK;
    c = &p->ch[tl_ab.ci];
    a = c->a;
    close_retired(a);
    if (a->out == a->window) {
        *fd = FP_RKEY_WAIT;
        return FP_ERR_OK;
    }
    if ((rc = sign_header(ra, mdname, hdr, &hlen, err)) != FP_ERR_OK)
        return rc;
    pthread_mutex_lock(&c->mu);
    if (c->fd != a->rfd) {
        /* first use, or a restart replaced it */
        if (a->rfd >= 0) {
            if (a->nretired == RETIRED_MAX) {
                pthread_mutex_unlock(&c->mu);
                return fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "the signer process is gone");
            }
            shutdown(a->rfd, SHUT_RDWR);
            a->retired[a->nretired++] = a->rfd;
        }
        a->rfd = c->fd;
        a->rlen = 0;
        a->w.len = 0; /* unsent requests for the old one: their jobs fail */
        a->rdead = false;
        if (a->rfd >= 0)
            fp_signer_thread_keep_fd(a->rfd); /* watched between batches too */
    }
    pthread_mutex_unlock(&c->mu);
    if (a->rfd < 0 || a->rdead)
        return fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "the signer process is gone");
    if (queue_request(a, hdr, hlen, data, len) != 0)
        return fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "the signer process is gone");
    for (i = 0; a->slot[i].used; i++)
        ; /* out < window: there is a free one */
    a->slot[i] = (aslot){.fd = a->rfd, .seq = a->seq++, .used = true};
    a->out++;
    *fd = a->rfd;
    *ticket = (void *)(uintptr_t)(i + 1);
    return FP_ERR_OK;
}

static int ps_finish(void *arg, void *ticket, unsigned char **sig, size_t *siglen, fp_error *err)
{
    rkey_arg *ra = arg;
    int i = (int)(uintptr_t)ticket - 1, rc;
    achan *a;
    aslot *sl;

    *sig = NULL;
    if (tl_ab.p != ra->p || tl_ab.gen != ra->p->gen || tl_ab.ci < 0 ||
        (a = ra->p->ch[tl_ab.ci].a) == NULL || i < 0 || i >= a->window || !a->slot[i].used)
        return fp_err_set(err, FP_ERR_INTERNAL, "async signature finished on another thread");
    sl = &a->slot[i];
    while (!sl->filled && sl->fd == a->rfd && !a->rdead) {
        ssize_t r;
        take_answers(a);
        if (sl->filled || a->rdead)
            break;
        r = recv(a->rfd, a->rbuf + a->rlen, sizeof(a->rbuf) - a->rlen, MSG_DONTWAIT);
        if (r > 0)
            a->rlen += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return FP_RKEY_AGAIN; /* not in yet: the job waits again */
        else
            mark_dead(a); /* EOF: the signer is gone */
    }
    if (sl->filled)
        rc = sign_answer(sl->status, sl->body, sl->len, sig, siglen, err);
    else
        rc = fp_err_set(err, FP_ERR_KEY_UNAVAILABLE, "the signer process is gone");
    sl->used = false;
    a->out--;
    return rc;
}

static void ps_key_free(void *arg)
{
    rkey_arg *ra = arg;
    privsep_unref(ra->p);
    free(ra);
}

/* An OPEN or GEN answer (u32 key id, SubjectPublicKeyInfo DER) as a remote
 * key; frees body. */
static int ps_key_from_answer(fp_privsep *p, uint8_t status, unsigned char *body, size_t blen,
                              EVP_PKEY **out, fp_error *err)
{
    const unsigned char *der;
    EVP_PKEY *pub = NULL;
    rkey_arg *ra = NULL;
    fp_rkey_backend be;
    uint32_t id;
    int rc;

    if (status != FP_ERR_OK) {
        rc = fp_err_set(err, status < FP_ERR__COUNT ? status : FP_ERR_INTERNAL, "%.*s",
                        (int)(blen > 400 ? 400 : blen), (const char *)body);
        goto out;
    }
    if (blen < 5) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "signer: short answer");
        goto out;
    }
    id = (uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 | (uint32_t)body[2] << 8 | body[3];
    der = body + 4;
    if ((pub = d2i_PUBKEY(NULL, &der, (long)(blen - 4))) == NULL || der != body + blen) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "signer: public key does not decode");
        goto out;
    }
    if ((ra = calloc(1, sizeof(*ra))) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    ra->p = p;
    ra->id = id;
    atomic_fetch_add(&p->refs, 1);
    be = (fp_rkey_backend){ps_sign, ps_key_free, ra, NULL, NULL};
    if (p->async_blocks > 0) {
        be.start = ps_start;
        be.finish = ps_finish;
    }
    rc = fp_rkey_new(pub, &be, out, err); /* be freed by it on failure */
out:
    EVP_PKEY_free(pub);
    free(body);
    return rc;
}

static int ps_gen(void *arg, const char *ref, const char *algo, const char *pass, size_t passlen,
                  EVP_PKEY **out, fp_error *err)
{
    fp_privsep *p = arg;
    size_t reflen = strlen(ref), algolen = strlen(algo), qlen;
    unsigned char *req, *body = NULL;
    size_t blen = 0;
    uint8_t status = 0;
    int rc;

    *out = NULL;
    if (reflen == 0 || reflen >= REF_MAX - 8 || algolen == 0 || algolen > ALGO_MAX ||
        passlen > 65535)
        return fp_err_set(err, FP_ERR_ARG, "key reference, algorithm or passphrase too long");
    qlen = 2 + reflen + 2 + algolen + 2 + passlen;
    if ((req = malloc(qlen)) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    req[0] = (unsigned char)(reflen >> 8);
    req[1] = (unsigned char)reflen;
    memcpy(req + 2, ref, reflen);
    req[2 + reflen] = (unsigned char)(algolen >> 8);
    req[3 + reflen] = (unsigned char)algolen;
    memcpy(req + 4 + reflen, algo, algolen);
    req[4 + reflen + algolen] = (unsigned char)(passlen >> 8);
    req[5 + reflen + algolen] = (unsigned char)passlen;
    if (passlen)
        memcpy(req + 6 + reflen + algolen, pass, passlen);
    rc = roundtrip(p, OP_GEN, req, qlen, NULL, 0, &status, NULL, 0, &body, &blen, err);
    OPENSSL_clear_free(req, qlen);
    if (rc != FP_ERR_OK)
        return rc;
    return ps_key_from_answer(p, status, body, blen, out, err);
}

static int ps_open(void *arg, const char *path, const char *pass, size_t passlen, EVP_PKEY **out,
                   fp_error *err)
{
    fp_privsep *p = arg;
    size_t reflen = strlen(path);
    unsigned char *req = NULL, *body = NULL;
    size_t blen = 0, qlen;
    uint8_t status = 0;
    int rc;

    *out = NULL;
    if (reflen == 0 || reflen >= REF_MAX || passlen > 65535)
        return fp_err_set(err, FP_ERR_ARG, "key reference or passphrase too long");
    qlen = 2 + reflen + 2 + passlen;
    if ((req = malloc(qlen)) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    req[0] = (unsigned char)(reflen >> 8);
    req[1] = (unsigned char)reflen;
    memcpy(req + 2, path, reflen);
    req[2 + reflen] = (unsigned char)(passlen >> 8);
    req[3 + reflen] = (unsigned char)passlen;
    if (passlen)
        memcpy(req + 4 + reflen, pass, passlen);
    rc = roundtrip(p, OP_OPEN, req, qlen, NULL, 0, &status, NULL, 0, &body, &blen, err);
    OPENSSL_clear_free(req, qlen);
    if (rc != FP_ERR_OK)
        return rc;
    return ps_key_from_answer(p, status, body, blen, out, err);
}

/* One channel message from the supervisor (supervisor.h): its header in
 * hdr, its descriptors in fds (up to FP_SUP_FDS_PER_MSG; *nfds of them).
 * Returns the header's length, 0 at the end, -1 on error. */
static ssize_t recv_channels(int ctl, unsigned char *hdr, int *fds, int *nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * FP_SUP_FDS_PER_MSG)];
    } cm;
    struct iovec iov = {hdr, FP_SUP_HDR};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                        .msg_controllen = sizeof(cm.buf)};
    ssize_t r;

    *nfds = 0;
    do
        r = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return r;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (*nfds + k > FP_SUP_FDS_PER_MSG)
                k = FP_SUP_FDS_PER_MSG - *nfds;
            memcpy(fds + *nfds, CMSG_DATA(c), sizeof(int) * (size_t)k);
            *nfds += k;
        }
    }
    if ((mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0)
        return -1;
    return r;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * The network side's end of a restart: the supervisor sends the new
 * signer's channels; each replaces its dead one under the channel's lock
 * (a request already failed on the old one answered 503; the next uses
 * the new signer).
 */
static void *watch(void *arg)
{
    fp_privsep *p = arg;
    unsigned char hdr[FP_SUP_HDR];
    int fds[FP_SUP_FDS_PER_MSG], nfds;
    ssize_t r;

    while ((r = recv_channels(p->ctl, hdr, fds, &nfds)) > 0) {
        uint32_t restarts = be32(hdr), pid = be32(hdr + 4);
        unsigned first = (unsigned)(hdr[8] << 8 | hdr[9]), count = (unsigned)(hdr[10] << 8 | hdr[11]);
        if (r != FP_SUP_HDR || (unsigned)nfds != count || first + count > (unsigned)p->n) {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            fp_log(FP_LOG_ERROR, "signer supervisor: malformed channel message ignored");
            continue;
        }
        for (unsigned i = 0; i < count; i++) {
            chan *c = &p->ch[first + i];
            pthread_mutex_lock(&c->mu);
            /* an async channel's owner closes the descriptor it uses
             * (ps_start: jobs may still wait on it); one it never took
             * up, or any other channel's, goes now */
            if (c->fd >= 0 && !(c->owned && c->fd == c->a->rfd))
                close(c->fd);
            c->fd = fds[i];
            pthread_mutex_unlock(&c->mu);
        }
        if (first + count == (unsigned)p->n) {
            atomic_store(&p->signer_pid, (int)pid);
            fp_log(FP_LOG_INFO, "signer process %u (restart %u) serves the network side again",
                   pid, restarts);
        }
    }
    if (!atomic_load(&p->stopping))
        fp_log(FP_LOG_ERROR, "the signer's supervisor is gone: signatures fail (503) until the "
                             "server is restarted");
    return NULL;
}

int fp_privsep_start(int nchan, int async_blocks, int async_per, fp_privsep **out,
                     fp_error *err)
{
    fp_privsep *p = NULL;
    int *child = NULL, ctl[2] = {-1, -1}, nfds = 0, junk[FP_SUP_FDS_PER_MSG];
    unsigned char hdr[FP_SUP_HDR];
    pid_t pid;
    int rc = FP_ERR_OK;

    *out = NULL;
    if (async_blocks <= 0 || async_per <= 0)
        async_blocks = async_per = 0;
    /* many workers ([server] threads up to 256) or a low descriptor
     * limit: fewer async channels rather than no server (a worker that
     * draws none signs the blocking way).  Both ends of every channel are
     * open here until the fork, and the connections need most of the
     * limit: the channels get a quarter of it. */
    if (async_blocks > 0 && nchan >= 1) {
        long room = 2048 - nchan;
        struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            /* as the HTTP layer does at its start (http/conn.c) */
            struct rlimit nl = {rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max,
                                rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
                rl.rlim_cur = nl.rlim_cur;
        }
        if (rl.rlim_cur != RLIM_INFINITY && (long)(rl.rlim_cur / 4) - nchan < room)
            room = (long)(rl.rlim_cur / 4) - nchan;
        if (async_blocks > room)
            async_blocks = room > 0 ? (int)room : 0;
        if (async_blocks == 0)
            async_per = 0;
    }
    if (nchan < 1 || async_per > ASYNC_PER_MAX || async_blocks > 512 ||
        nchan + async_blocks > 2048)
        return fp_err_set(err, FP_ERR_ARG, "signer channels: 1..2048, %d async per worker at most",
                          ASYNC_PER_MAX);
    p = calloc(1, sizeof(*p));
    if (p != NULL) {
        p->nsync = nchan;
        p->async_blocks = async_blocks;
        p->async_per = async_per;
        atomic_init(&p->next_block, 0);
        p->gen = atomic_fetch_add(&privsep_gen, 1) + 1;
    }
    nchan += async_blocks;
    child = calloc((size_t)nchan, sizeof(*child));
    if (p == NULL || child == NULL || (p->ch = calloc((size_t)nchan, sizeof(*p->ch))) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto fail;
    }
    atomic_init(&p->refs, 1);
    atomic_init(&p->next, 0);
    atomic_init(&p->signer_pid, -1);
    atomic_init(&p->stopping, false);
    p->ctl = -1;
    for (int i = 0; i < nchan; i++) {
        int sv[2];
        pthread_mutex_init(&p->ch[i].mu, NULL);
        p->ch[i].fd = -1;
        p->n = i + 1;
        if (i >= p->nsync) {
            achan *a = calloc(1, sizeof(*a));
            if (a == NULL || (a->slot = calloc((size_t)p->async_per, sizeof(*a->slot))) == NULL) {
                free(a);
                rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
                goto fail;
            }
            a->window = p->async_per;
            a->rfd = -1;
            p->ch[i].a = a;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            rc = fp_err_set(err, FP_ERR_IO, "socketpair: %s", strerror(errno));
            goto fail;
        }
        p->ch[i].fd = sv[0];
        child[i] = sv[1];
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "socketpair: %s", strerror(errno));
        goto fail;
    }
    (void)spin_budget(); /* read the setting once, for both processes */
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        rc = fp_err_set(err, FP_ERR_IO, "fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        for (int i = 0; i < nchan; i++)
            close(p->ch[i].fd);
        close(ctl[0]);
        fp_sigsup_main(ctl[1], child, nchan); /* does not return */
    }
    for (int i = 0; i < nchan; i++)
        close(child[i]);
    free(child);
    child = NULL;
    close(ctl[1]);
    p->ctl = ctl[0];
    p->pid = pid;
    /* the supervisor names the first signer (a message without channels) */
    if (recv_channels(p->ctl, hdr, junk, &nfds) != FP_SUP_HDR || nfds != 0) {
        for (int i = 0; i < nfds; i++)
            close(junk[i]);
        rc = fp_err_set(err, FP_ERR_INTERNAL, "the signer's supervisor did not start");
        goto fail_child;
    }
    atomic_store(&p->signer_pid, (int)be32(hdr + 4));
    {
        /* the watcher never takes SIGTERM/SIGINT/SIGPIPE: as the HTTP
         * workers, it leaves them to the main loop (http/drain.c) */
        sigset_t block, old;
        int trc;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        trc = pthread_create(&p->watcher, NULL, watch, p);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (trc != 0) {
            rc = fp_err_set(err, FP_ERR_NOMEM, "signer watcher thread");
            goto fail_child;
        }
    }
    p->watching = true;
    fp_signer_set_opener(ps_open, p);
    fp_signer_set_generator(ps_gen, p);
    *out = p;
    return FP_ERR_OK;
fail_child:
    fp_privsep_free(p);
    return rc;
fail:
    if (child != NULL)
        for (int i = 0; i < nchan; i++)
            if (child[i] > 0)
                close(child[i]);
    free(child);
    if (ctl[0] >= 0) {
        close(ctl[0]);
        close(ctl[1]);
    }
    privsep_unref(p);
    return rc;
}

int fp_privsep_seal(fp_privsep *p, fp_error *err)
{
    unsigned char *body = NULL;
    size_t blen = 0;
    uint8_t status = 0;
    int rc;

    /* every channel's thread shares one state: one SEAL suffices */
    if ((rc = roundtrip(p, OP_SEAL, NULL, 0, NULL, 0, &status, NULL, 0, &body, &blen, err)) !=
        FP_ERR_OK)
        return rc;
    free(body);
    if (status != FP_ERR_OK)
        return fp_err_set(err, FP_ERR_INTERNAL, "signer refused to seal");
    return FP_ERR_OK;
}

pid_t fp_privsep_pid(const fp_privsep *p)
{
    return (pid_t)atomic_load(&((fp_privsep *)p)->signer_pid);
}

pid_t fp_privsep_supervisor_pid(const fp_privsep *p)
{
    return p->pid;
}

void fp_privsep_free(fp_privsep *p)
{
    pid_t pid;
    if (p == NULL)
        return;
    fp_signer_set_opener(NULL, NULL);
    fp_signer_set_generator(NULL, NULL);
    pid = p->pid;
    /* no more channels from the supervisor; closing the control socket
     * also tells it to stop restarting */
    atomic_store(&p->stopping, true);
    if (p->ctl >= 0)
        shutdown(p->ctl, SHUT_RDWR);
    if (p->watching)
        pthread_join(p->watcher, NULL);
    p->watching = false;
    if (p->ctl >= 0)
        close(p->ctl);
    p->ctl = -1;
    for (int i = 0; i < p->n; i++) {
        pthread_mutex_lock(&p->ch[i].mu);
        if (p->ch[i].fd >= 0)
            close(p->ch[i].fd);
        p->ch[i].fd = -1;
        pthread_mutex_unlock(&p->ch[i].mu);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    privsep_unref(p);
}
