/*
 * scep_load.c - SCEP (RFC 8894) request builder and load generator.
 * A client only: OpenSSL's CMS API builds the messages, no fleetpki code.
 *
 *   scep_load req --ra RA.pem --out REQ.der [options]
 *       one PKIOperation message (for tests: the shapes scepclient will
 *       not send).  Options:
 *         --type N          messageType (19 PKCSReq, 17 RenewalReq, 20
 *                           CertPoll, 21 GetCert, 22 GetCRL; default 19)
 *         --challenge S     challengePassword of the PKCS#10
 *         --cn CN           subject CN (default scep-load)
 *         --key-bits N      RSA key of the request (default 2048)
 *         --ec-key          a P-256 key instead
 *         --key FILE        use this key (PEM) instead of a fresh one
 *         --cert FILE       sign with this certificate (renewal) instead
 *                           of a self-signed one made from the key
 *         --md NAME         signature digest (default sha256)
 *         --cipher NAME     envelope cipher (default aes-256-cbc)
 *         --corrupt-sig     flip a bit of the signature
 *         --other-csr-key   the PKCS#10 gets a fresh key, not the signer's
 *         --inner FILE      envelope these bytes instead of the CSR
 *         --about CERT      envelope CERT's IssuerAndSerialNumber (GetCert,
 *                           GetCRL) or, with --type 20, its issuer and
 *                           subject (CertPoll's IssuerAndSubject)
 *         --key-out F, --self-out F   write the key / signer certificate
 *
 *   scep_load bench --port P --ra RA.pem --challenge S [--path /scep]
 *                   [--count N] [--concurrency C] [--keys K]
 *       builds N distinct PKCSReq messages first (K RSA-2048 keys, a
 *       fresh self-signed certificate, CN, transactionID and nonce each),
 *       then POSTs them over C keep-alive HTTP/1.1 connections as fast as
 *       the server answers and prints one line:
 *         scep ok=N fail=N seconds=S rps=R p50_ms=X p99_ms=Y
 *       ok counts CertReps whose pkiStatus is SUCCESS.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1t.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static int nid_type, nid_status, nid_snonce, nid_txid;

/* IssuerAndSubject (RFC 8894 3.3.3), with OpenSSL's ASN.1 templates. */
typedef struct load_ias {
    X509_NAME *issuer;
    X509_NAME *subject;
} LOAD_IAS;
ASN1_SEQUENCE(LOAD_IAS) = {
    ASN1_SIMPLE(LOAD_IAS, issuer, X509_NAME),
    ASN1_SIMPLE(LOAD_IAS, subject, X509_NAME),
} ASN1_SEQUENCE_END(LOAD_IAS)
IMPLEMENT_ASN1_FUNCTIONS(LOAD_IAS)

static void die(const char *what)
{
    fprintf(stderr, "scep_load: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static int obj(const char *oid, const char *sn)
{
    int nid = OBJ_txt2nid(oid);
    if (nid == NID_undef)
        nid = OBJ_create(oid, sn, sn);
    if (nid == NID_undef)
        die("OBJ_create");
    return nid;
}

static void init_oids(void)
{
    nid_type = obj("2.16.840.1.113733.1.9.2", "loadMessageType");
    nid_status = obj("2.16.840.1.113733.1.9.3", "loadPkiStatus");
    nid_snonce = obj("2.16.840.1.113733.1.9.5", "loadSenderNonce");
    nid_txid = obj("2.16.840.1.113733.1.9.7", "loadTransactionID");
}

typedef struct req_opts {
    int type;
    const char *challenge;
    const char *cn;
    const char *md;
    const char *cipher;
    bool corrupt;
    const unsigned char *inner; /* instead of the CSR */
    size_t inner_len;
    EVP_PKEY *csr_key;          /* the CSR's key when not the signer's */
} req_opts;

static EVP_PKEY *rsa_key(int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);
    if (k == NULL)
        die("RSA keygen");
    return k;
}

/* A self-signed certificate for key (RFC 8894 2.3: the requester's
 * temporary identity). */
static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    ASN1_INTEGER *sn = ASN1_INTEGER_new();
    BIGNUM *bn = NULL;
    unsigned char r[8];

    RAND_bytes(r, sizeof(r));
    r[0] &= 0x7f;
    bn = BN_bin2bn(r, 8, NULL);
    if (x == NULL || n == NULL || sn == NULL || bn == NULL || !BN_to_ASN1_INTEGER(bn, sn) ||
        !X509_set_version(x, 2) || !X509_set_serialNumber(x, sn) ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_subject_name(x, n) || !X509_set_issuer_name(x, n) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 3600) || !X509_set_pubkey(x, key) ||
        !X509_sign(x, key, EVP_sha256()))
        die("self-signed certificate");
    BN_free(bn);
    X509_NAME_free(n);
    ASN1_INTEGER_free(sn);
    return x;
}

static unsigned char *make_csr(EVP_PKEY *key, const req_opts *o, int *len)
{
    X509_REQ *r = X509_REQ_new();
    X509_NAME *n = X509_NAME_new();
    unsigned char *der = NULL;

    if (r == NULL || n == NULL ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)o->cn, -1, -1,
                                    0) ||
        !X509_REQ_set_subject_name(r, n) || !X509_REQ_set_pubkey(r, key) ||
        (o->challenge != NULL &&
         !X509_REQ_add1_attr_by_NID(r, NID_pkcs9_challengePassword, MBSTRING_UTF8,
                                    (const unsigned char *)o->challenge, -1)) ||
        !X509_REQ_sign(r, key, EVP_sha256()) || (*len = i2d_X509_REQ(r, &der)) <= 0)
        die("CSR");
    X509_REQ_free(r);
    X509_NAME_free(n);
    return der;
}

/* The pkiMessage: SignedData(EnvelopedData(inner)) with the SCEP
 * authenticated attributes (RFC 8894 3.2). */
static unsigned char *build(X509 *ra, EVP_PKEY *key, X509 *signer, const req_opts *o, int *outlen)
{
    STACK_OF(X509) *rcpt = sk_X509_new_null();
    unsigned char *inner = NULL, *env_der = NULL, *out = NULL, nonce[16], txr[20];
    int inner_len = 0, env_len = 0;
    BIO *in, *envb;
    CMS_ContentInfo *env, *sd;
    CMS_SignerInfo *si;
    char type[8], txid[41];
    EVP_CIPHER *fetched = EVP_CIPHER_fetch(NULL, o->cipher, NULL);
    const EVP_CIPHER *c = fetched;
    const EVP_MD *md = EVP_get_digestbyname(o->md);

    if (c == NULL) {
        /* single DES lives in the legacy provider */
        c = EVP_get_cipherbyname(o->cipher);
    }
    if (c == NULL || md == NULL)
        die("unknown cipher or digest (single DES needs OPENSSL_CONF with the legacy provider)");
    if (o->inner != NULL) {
        inner = OPENSSL_memdup(o->inner, o->inner_len);
        inner_len = (int)o->inner_len;
    } else {
        inner = make_csr(o->csr_key != NULL ? o->csr_key : key, o, &inner_len);
    }
    sk_X509_push(rcpt, ra);
    in = BIO_new_mem_buf(inner, inner_len);
    env = CMS_encrypt(rcpt, in, c, CMS_BINARY);
    if (env == NULL || (env_len = i2d_CMS_ContentInfo(env, &env_der)) <= 0)
        die("CMS_encrypt");
    envb = BIO_new_mem_buf(env_der, env_len);
    sd = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    if (sd == NULL || (si = CMS_add1_signer(sd, signer, key, md, CMS_BINARY | CMS_NOSMIMECAP)) == NULL)
        die("CMS_add1_signer");
    RAND_bytes(nonce, sizeof(nonce));
    RAND_bytes(txr, sizeof(txr));
    for (int i = 0; i < 20; i++)
        snprintf(txid + 2 * i, 3, "%02X", txr[i]);
    snprintf(type, sizeof(type), "%d", o->type);
    if (!CMS_signed_add1_attr_by_NID(si, nid_type, V_ASN1_PRINTABLESTRING, type, (int)strlen(type)) ||
        !CMS_signed_add1_attr_by_NID(si, nid_txid, V_ASN1_PRINTABLESTRING, txid, (int)strlen(txid)) ||
        !CMS_signed_add1_attr_by_NID(si, nid_snonce, V_ASN1_OCTET_STRING, nonce, 16) ||
        !CMS_final(sd, envb, NULL, CMS_BINARY))
        die("CMS_final");
    if (o->corrupt) {
        ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(si);
        unsigned char *d = (unsigned char *)ASN1_STRING_get0_data(sig);
        d[ASN1_STRING_length(sig) / 2] ^= 0x01;
    }
    if ((*outlen = i2d_CMS_ContentInfo(sd, &out)) <= 0)
        die("encode");
    CMS_ContentInfo_free(sd);
    CMS_ContentInfo_free(env);
    BIO_free(in);
    BIO_free(envb);
    OPENSSL_free(inner);
    OPENSSL_free(env_der);
    sk_X509_free(rcpt);
    EVP_CIPHER_free(fetched);
    return out;
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (x == NULL)
        die(path);
    return x;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (k == NULL)
        die(path);
    return k;
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = malloc(1 << 20);
    if (f == NULL || buf == NULL)
        die(path);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static int cmd_req(int argc, char **argv)
{
    req_opts o = {19, NULL, "scep-load", "sha256", "aes-256-cbc", false, NULL, 0, NULL};
    const char *ra_path = NULL, *out_path = NULL, *key_path = NULL, *cert_path = NULL,
               *key_out = NULL, *self_out = NULL, *about = NULL;
    int bits = 2048, len;
    bool ec = false;
    EVP_PKEY *key;
    X509 *ra, *signer;
    unsigned char *der;
    FILE *f;

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--corrupt-sig")) {
            o.corrupt = true;
            continue;
        }
        if (!strcmp(a, "--ec-key")) {
            ec = true;
            continue;
        }
        if (!strcmp(a, "--other-csr-key")) {
            o.csr_key = rsa_key(2048);
            continue;
        }
        if (v == NULL)
            die("option needs a value");
        i++;
        if (!strcmp(a, "--ra")) ra_path = v;
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--type")) o.type = atoi(v);
        else if (!strcmp(a, "--challenge")) o.challenge = v;
        else if (!strcmp(a, "--cn")) o.cn = v;
        else if (!strcmp(a, "--key-bits")) bits = atoi(v);
        else if (!strcmp(a, "--key")) key_path = v;
        else if (!strcmp(a, "--cert")) cert_path = v;
        else if (!strcmp(a, "--md")) o.md = v;
        else if (!strcmp(a, "--cipher")) o.cipher = v;
        else if (!strcmp(a, "--inner")) {
            unsigned char *buf = read_file(v, &o.inner_len);
            o.inner = OPENSSL_memdup(buf, o.inner_len ? o.inner_len : 1);
            free(buf);
        }
        else if (!strcmp(a, "--about")) about = v;
        else if (!strcmp(a, "--key-out")) key_out = v;
        else if (!strcmp(a, "--self-out")) self_out = v;
        else die("unknown option");
    }
    if (ra_path == NULL || out_path == NULL)
        die("req needs --ra and --out");
    if (about != NULL) {
        X509 *x = read_cert(about);
        unsigned char *d = NULL;
        int n;
        if (o.type == 20) {
            LOAD_IAS *ias = LOAD_IAS_new();
            X509_NAME_free(ias->issuer);
            X509_NAME_free(ias->subject);
            ias->issuer = X509_NAME_dup(X509_get_issuer_name(x));
            ias->subject = X509_NAME_dup(X509_get_subject_name(x));
            n = i2d_LOAD_IAS(ias, &d);
            LOAD_IAS_free(ias);
        } else {
            PKCS7_ISSUER_AND_SERIAL *is = PKCS7_ISSUER_AND_SERIAL_new();
            X509_NAME_free(is->issuer);
            ASN1_INTEGER_free(is->serial);
            is->issuer = X509_NAME_dup(X509_get_issuer_name(x));
            is->serial = ASN1_INTEGER_dup(X509_get0_serialNumber(x));
            n = i2d_PKCS7_ISSUER_AND_SERIAL(is, &d);
            PKCS7_ISSUER_AND_SERIAL_free(is);
        }
        if (n <= 0)
            die("--about");
        o.inner = d;
        o.inner_len = (size_t)n;
        X509_free(x);
    }
    ra = read_cert(ra_path);
    if (key_path != NULL)
        key = read_key(key_path);
    else if (ec)
        key = EVP_EC_gen("P-256");
    else
        key = rsa_key(bits);
    signer = cert_path != NULL ? read_cert(cert_path) : self_signed(key, o.cn);
    der = build(ra, key, signer, &o, &len);
    if ((f = fopen(out_path, "wb")) == NULL || fwrite(der, 1, (size_t)len, f) != (size_t)len)
        die(out_path);
    fclose(f);
    if (key_out != NULL) {
        if ((f = fopen(key_out, "w")) == NULL || !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL))
            die(key_out);
        fclose(f);
    }
    if (self_out != NULL) {
        if ((f = fopen(self_out, "w")) == NULL || !PEM_write_X509(f, signer))
            die(self_out);
        fclose(f);
    }
    OPENSSL_free(der);
    OPENSSL_free((void *)o.inner);
    EVP_PKEY_free(o.csr_key);
    EVP_PKEY_free(key);
    X509_free(signer);
    X509_free(ra);
    return 0;
}

/* ---- bench ---- */

typedef struct msg {
    unsigned char *der;
    int len;
} msg;

typedef struct bench {
    int port;
    const char *path;
    msg *msgs;
    int n;
    int next; /* guarded by lock */
    pthread_mutex_t lock;
    double *lat_ms;
    int ok, fail; /* guarded by lock */
} bench;

static int take(bench *b)
{
    int i;
    pthread_mutex_lock(&b->lock);
    i = b->next < b->n ? b->next++ : -1;
    pthread_mutex_unlock(&b->lock);
    return i;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

/* One HTTP/1.1 exchange; the body into *body (malloc'd). */
static int exchange(int fd, const bench *b, const msg *m, unsigned char **body, size_t *blen)
{
    char hdr[512], buf[65536];
    size_t have = 0, need = 0, clen = 0;
    char *end, *cl;
    int status = 0;

    snprintf(hdr, sizeof(hdr),
             "POST %s?operation=PKIOperation HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/x-pki-message\r\nContent-Length: %d\r\n\r\n",
             b->path, m->len);
    if (!write_all(fd, hdr, strlen(hdr)) || !write_all(fd, m->der, (size_t)m->len))
        return -1;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
        buf[have] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) != NULL)
            break;
        if (have >= sizeof(buf) - 1)
            return -1;
    }
    sscanf(buf, "HTTP/1.1 %d", &status);
    cl = strcasestr(buf, "content-length:");
    if (cl == NULL || cl > end)
        return -1;
    clen = strtoul(cl + 15, NULL, 10);
    need = (size_t)(end + 4 - buf) + clen;
    if (need > sizeof(buf) - 1)
        return -1;
    while (have < need) {
        ssize_t r = read(fd, buf + have, need - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    *body = malloc(clen ? clen : 1);
    memcpy(*body, end + 4, clen);
    *blen = clen;
    return status;
}

/* pkiStatus of a CertRep (0 SUCCESS), or -1. */
static int pki_status(const unsigned char *d, size_t n)
{
    const unsigned char *p = d;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)n);
    STACK_OF(CMS_SignerInfo) *sis = cms ? CMS_get0_SignerInfos(cms) : NULL;
    ASN1_STRING *s = NULL;
    int st = -1;

    if (sis != NULL && sk_CMS_SignerInfo_num(sis) == 1)
        s = CMS_signed_get0_data_by_OBJ(sk_CMS_SignerInfo_value(sis, 0), OBJ_nid2obj(nid_status),
                                        -3, V_ASN1_PRINTABLESTRING);
    if (s != NULL && ASN1_STRING_length(s) == 1)
        st = ASN1_STRING_get0_data(s)[0] - '0';
    CMS_ContentInfo_free(cms);
    return st;
}

static void *worker(void *arg)
{
    bench *b = arg;
    int fd = dial(b->port), i;

    while ((i = take(b)) >= 0) {
        unsigned char *body = NULL;
        size_t blen = 0;
        double t0 = now_ms();
        int status = exchange(fd, b, &b->msgs[i], &body, &blen);
        bool ok;
        if (status < 0) {
            close(fd);
            fd = dial(b->port);
            status = exchange(fd, b, &b->msgs[i], &body, &blen);
        }
        ok = status == 200 && pki_status(body, blen) == 0;
        b->lat_ms[i] = now_ms() - t0;
        pthread_mutex_lock(&b->lock);
        if (ok)
            b->ok++;
        else
            b->fail++;
        pthread_mutex_unlock(&b->lock);
        free(body);
    }
    close(fd);
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(int argc, char **argv)
{
    bench b = {0};
    const char *ra_path = NULL, *challenge = NULL;
    int conc = 8, nkeys = 16;
    EVP_PKEY **keys;
    pthread_t *th;
    X509 *ra;
    double t0, secs;

    b.path = "/scep";
    b.n = 1000;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--port")) b.port = atoi(v);
        else if (!strcmp(a, "--path")) b.path = v;
        else if (!strcmp(a, "--ra")) ra_path = v;
        else if (!strcmp(a, "--challenge")) challenge = v;
        else if (!strcmp(a, "--count")) b.n = atoi(v);
        else if (!strcmp(a, "--concurrency")) conc = atoi(v);
        else if (!strcmp(a, "--keys")) nkeys = atoi(v);
        else die("unknown option");
    }
    if (ra_path == NULL || b.port <= 0 || b.n <= 0 || conc <= 0 || nkeys <= 0)
        die("bench needs --port, --ra, --challenge");
    ra = read_cert(ra_path);
    keys = calloc((size_t)nkeys, sizeof(*keys));
    b.msgs = calloc((size_t)b.n, sizeof(*b.msgs));
    b.lat_ms = calloc((size_t)b.n, sizeof(*b.lat_ms));
    th = calloc((size_t)conc, sizeof(*th));
    for (int i = 0; i < nkeys; i++)
        keys[i] = rsa_key(2048);
    /* every message distinct (own signer certificate, CN, transactionID,
     * nonce): the challenge is a token with enough uses */
    for (int i = 0; i < b.n; i++) {
        char cn[32];
        req_opts o = {19, challenge, cn, "sha256", "aes-128-cbc", false, NULL, 0, NULL};
        EVP_PKEY *k = keys[i % nkeys];
        X509 *self;
        snprintf(cn, sizeof(cn), "scep-bench-%06d", i);
        self = self_signed(k, cn);
        b.msgs[i].der = build(ra, k, self, &o, &b.msgs[i].len);
        X509_free(self);
    }
    pthread_mutex_init(&b.lock, NULL);
    t0 = now_ms();
    for (int i = 0; i < conc; i++)
        pthread_create(&th[i], NULL, worker, &b);
    for (int i = 0; i < conc; i++)
        pthread_join(th[i], NULL);
    secs = (now_ms() - t0) / 1e3;
    qsort(b.lat_ms, (size_t)b.n, sizeof(double), cmp_d);
    printf("scep ok=%d fail=%d seconds=%.2f rps=%.1f p50_ms=%.1f p99_ms=%.1f\n", b.ok, b.fail,
           secs, b.ok / secs, b.lat_ms[b.n / 2], b.lat_ms[(int)(b.n * 0.99)]);
    for (int i = 0; i < b.n; i++)
        OPENSSL_free(b.msgs[i].der);
    for (int i = 0; i < nkeys; i++)
        EVP_PKEY_free(keys[i]);
    free(b.msgs);
    free(b.lat_ms);
    free(keys);
    free(th);
    X509_free(ra);
    pthread_mutex_destroy(&b.lock);
    return b.fail == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    init_oids();
    if (argc >= 2 && !strcmp(argv[1], "req"))
        return cmd_req(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "bench"))
        return cmd_bench(argc, argv);
    fprintf(stderr, "usage: scep_load req|bench ... (see the comment at the top of scep_load.c)\n");
    return 2;
}
