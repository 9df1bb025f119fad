/*
 * loadgen.c - closed-loop load generator for fleetpki's EST and OCSP
 * endpoints.
 *
 * Design: one thread per simulated client (--concurrency, default 64),
 * each with one blocking connection.  Every request body is built before
 * the clock starts (CSRs with fresh P-256 keys, OCSP requests), so the
 * measured loop only writes prepared bytes, reads the answer and checks
 * it.  Latencies go into per-thread arrays (no sharing on the hot path)
 * and are merged once at the end for percentiles.
 *
 * Safety: the target must be a loopback address, and a run is always
 * bounded: by --duration (default 10 s, at most 600 s) and optionally by
 * --requests.  Sockets carry I/O timeouts so a stalled server cannot hang
 * the run.
 */
#define _GNU_SOURCE
#include "loadgen.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>

#define MAX_DURATION 600.0
#define MAX_CONCURRENCY 4096
#define STATUS_SLOTS 600

typedef enum {
    M_EST_NEWCONN,
    M_EST_KEEPALIVE,
    M_EST_SERVERKEYGEN,
    M_OCSP_POST,
    M_OCSP_GET,
    M_FLOOR_NEWCONN,
    M_FLOOR_KEEPALIVE,
    M_API_GET,
    M_DEVICE_NEWCONN,
} lg_mode;

static const char *const mode_names[] = {"est-newconn", "est-keepalive", "est-serverkeygen",
                                         "ocsp-post", "ocsp-get", "floor-newconn",
                                         "floor-keepalive", "api-get",
                                         "device-newconn"};

typedef struct opts {
    lg_mode mode;
    const char *host, *port;
    int concurrency;
    double duration, warmup;
    uint64_t requests;
    const char *cacert, *cert, *key, *basic, *label, *path;
    const char *bearer, *paths; /* api-get */
    const char *csr_dir;
    size_t csr_count;
    bool reenroll, tls12;
    const char *issuer, *serials;
    size_t ocsp_count;
    int unknown_pct;
    int server_pid;
    int validate_every;
    int timeout_ms;
    const char *device_ca, *device_ca_key;
    size_t device_count;
} opts;

/* A prepared HTTP request. */
typedef struct req {
    unsigned char *bytes;
    size_t len;
    int expect; /* OCSP expected status, -1 none */
} req;

typedef struct worker {
    pthread_t tid;
    int id;
    uint64_t *lat; /* ns, successful requests */
    size_t n_lat, cap_lat;
    uint64_t err_io, err_connect, err_invalid, err_mismatch, reconnects;
    uint64_t status[STATUS_SLOTS];
    char pad[64];
} worker;

/* shared state */
static opts O;
static lg_target T;
static req *REQS;
static size_t N_REQS;
static atomic_int phase;      /* 0 warm-up, 1 measuring, 2 stop */
static atomic_uint_fast64_t issued;
static atomic_int finished;
/* device-newconn: every connection presents the next identity, once */
static lg_identity *DEVS;
static atomic_size_t dev_next;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen MODE [options]\n"
            "modes: est-newconn | est-keepalive | est-serverkeygen | ocsp-post | ocsp-get\n"
            "       floor-newconn | floor-keepalive: GET /.well-known/est/cacerts (or --path)\n"
            "       api-get: keep-alive GETs of the admin API (--bearer, --path or --paths)\n"
            "       on new / kept-alive connections: the TLS + HTTP cost with no enrollment\n"
            "       device-newconn: GET /api/v1/device (or --path) on a new connection per\n"
            "       request, each with the next of --device-count fresh device certificates\n"
            "       signed by --device-ca/--device-ca-key (first contacts); stops when\n"
            "       they are used up\n"
            "  --host H            loopback address (default 127.0.0.1)\n"
            "  --port P            required\n"
            "  --concurrency N     clients, one connection each (default 64)\n"
            "  --duration S        measured seconds (default 10, max 600)\n"
            "  --requests N        stop after N measured requests as well\n"
            "  --warmup S          unmeasured seconds first (default 0)\n"
            "  --cacert F          CA bundle to verify the TLS server\n"
            "  --cert F --key F    TLS client certificate\n"
            "  --basic USER:PASS   HTTP Basic credentials (enrollment token)\n"
            "  --label L           EST label (/.well-known/est/L/...)\n"
            "  --path P            request path override\n"
            "  --paths F           api-get: paths to cycle through, one a line\n"
            "  --bearer TOKEN      api-get: API key (Authorization: Bearer)\n"
            "  --reenroll          simplereenroll; CSRs copy --cert's subject/SANs\n"
            "  --csr-dir D         use the CSRs in D (*.csr, *.pem, *.der)\n"
            "  --csr-count N       generate N P-256 CSRs before timing (default 1000)\n"
            "  --tls12             cap TLS at 1.2 (default: 1.3 when offered)\n"
            "  --issuer F          OCSP: issuing CA certificate (PEM)\n"
            "  --serials F         OCSP: serial list (\"HEX good|revoked\" lines)\n"
            "  --ocsp-count N      OCSP: distinct requests to sample (default 10000)\n"
            "  --unknown-pct P     OCSP: %% of requests for never-issued serials (default 5)\n"
            "  --validate-every N  EST: every answer's PKCS#7 walked (DER), full parse every 10*Nth\n"
            "                      (default N 10); serverkeygen: parts checked every Nth;\n"
            "                      OCSP: status of every answer checked, full parse every 100*Nth\n"
            "  --timeout-ms N      socket I/O timeout (default 10000)\n"
            "  --server-pid PID    report the server's peak RSS and CPU use\n"
            "  --device-ca F --device-ca-key F --device-count N   device-newconn identities\n");
}

static int parse_mode(const char *s, lg_mode *m)
{
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(*mode_names); i++)
        if (!strcmp(s, mode_names[i])) {
            *m = (lg_mode)i;
            return 0;
        }
    return -1;
}

static bool is_est(void) { return O.mode <= M_EST_SERVERKEYGEN; }
static bool is_floor(void) { return O.mode == M_FLOOR_NEWCONN || O.mode == M_FLOOR_KEEPALIVE; }
static bool is_api(void) { return O.mode == M_API_GET; }
static bool is_device(void) { return O.mode == M_DEVICE_NEWCONN; }

static int parse_opts(int argc, char **argv)
{
    enum { O_HOST = 256, O_PORT, O_CONC, O_DUR, O_REQS, O_WARM, O_CACERT, O_CERT, O_KEY,
           O_BASIC, O_BEARER, O_PATHS, O_LABEL, O_PATH, O_REENROLL, O_CSRDIR, O_CSRCOUNT, O_TLS12, O_ISSUER,
           O_SERIALS, O_OCSPCOUNT, O_UNKNOWN, O_VALIDATE, O_TIMEOUT, O_PID, O_HELP,
           O_DEVCA, O_DEVCAKEY, O_DEVCOUNT };
    static const struct option lo[] = {
        {"host", 1, 0, O_HOST},         {"port", 1, 0, O_PORT},
        {"concurrency", 1, 0, O_CONC},  {"duration", 1, 0, O_DUR},
        {"requests", 1, 0, O_REQS},     {"warmup", 1, 0, O_WARM},
        {"cacert", 1, 0, O_CACERT},     {"cert", 1, 0, O_CERT},
        {"key", 1, 0, O_KEY},           {"basic", 1, 0, O_BASIC},
        {"bearer", 1, 0, O_BEARER},     {"paths", 1, 0, O_PATHS},
        {"label", 1, 0, O_LABEL},       {"path", 1, 0, O_PATH},
        {"reenroll", 0, 0, O_REENROLL}, {"csr-dir", 1, 0, O_CSRDIR},
        {"csr-count", 1, 0, O_CSRCOUNT}, {"tls12", 0, 0, O_TLS12},
        {"issuer", 1, 0, O_ISSUER},     {"serials", 1, 0, O_SERIALS},
        {"ocsp-count", 1, 0, O_OCSPCOUNT}, {"unknown-pct", 1, 0, O_UNKNOWN},
        {"validate-every", 1, 0, O_VALIDATE}, {"timeout-ms", 1, 0, O_TIMEOUT},
        {"server-pid", 1, 0, O_PID},    {"help", 0, 0, O_HELP},
        {"device-ca", 1, 0, O_DEVCA},   {"device-ca-key", 1, 0, O_DEVCAKEY},
        {"device-count", 1, 0, O_DEVCOUNT},
        {0, 0, 0, 0},
    };
    int c;

    O.host = "127.0.0.1";
    O.concurrency = 64;
    O.duration = 10;
    O.csr_count = 1000;
    O.ocsp_count = 10000;
    O.unknown_pct = 5;
    O.validate_every = 10;
    O.timeout_ms = 10000;
    if (argc < 2 || parse_mode(argv[1], &O.mode) != 0) {
        usage(stderr);
        return -1;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case O_HOST: O.host = optarg; break;
        case O_PORT: O.port = optarg; break;
        case O_CONC: O.concurrency = atoi(optarg); break;
        case O_DUR: O.duration = atof(optarg); break;
        case O_REQS: O.requests = strtoull(optarg, NULL, 10); break;
        case O_WARM: O.warmup = atof(optarg); break;
        case O_CACERT: O.cacert = optarg; break;
        case O_CERT: O.cert = optarg; break;
        case O_KEY: O.key = optarg; break;
        case O_BASIC: O.basic = optarg; break;
        case O_BEARER: O.bearer = optarg; break;
        case O_PATHS: O.paths = optarg; break;
        case O_LABEL: O.label = optarg; break;
        case O_PATH: O.path = optarg; break;
        case O_REENROLL: O.reenroll = true; break;
        case O_CSRDIR: O.csr_dir = optarg; break;
        case O_CSRCOUNT: O.csr_count = strtoul(optarg, NULL, 10); break;
        case O_TLS12: O.tls12 = true; break;
        case O_ISSUER: O.issuer = optarg; break;
        case O_SERIALS: O.serials = optarg; break;
        case O_OCSPCOUNT: O.ocsp_count = strtoul(optarg, NULL, 10); break;
        case O_UNKNOWN: O.unknown_pct = atoi(optarg); break;
        case O_VALIDATE: O.validate_every = atoi(optarg); break;
        case O_TIMEOUT: O.timeout_ms = atoi(optarg); break;
        case O_PID: O.server_pid = atoi(optarg); break;
        case O_DEVCA: O.device_ca = optarg; break;
        case O_DEVCAKEY: O.device_ca_key = optarg; break;
        case O_DEVCOUNT: O.device_count = strtoul(optarg, NULL, 10); break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (O.port == NULL || O.concurrency < 1 || O.concurrency > MAX_CONCURRENCY ||
        !(O.duration > 0 && O.duration <= MAX_DURATION) || O.warmup < 0 ||
        O.warmup > MAX_DURATION || O.csr_count < 1 || O.ocsp_count < 1 ||
        O.unknown_pct < 0 || O.unknown_pct > 90 || O.validate_every < 1 ||
        O.timeout_ms < 100) {
        fprintf(stderr, "loadgen: bad or missing option (need --port; duration in (0, 600])\n");
        return -1;
    }
    if (is_device() && (O.device_ca == NULL || O.device_ca_key == NULL || O.device_count < 1)) {
        fprintf(stderr, "loadgen: device-newconn needs --device-ca, --device-ca-key, --device-count\n");
        return -1;
    }
    if (!is_est() && !is_floor() && !is_api() && !is_device() && O.issuer == NULL) {
        fprintf(stderr, "loadgen: OCSP modes need --issuer\n");
        return -1;
    }
    return 0;
}

/* Resolve host:port and insist on loopback: this tool must never load
 * anything but the local machine. */
static int resolve(struct sockaddr_storage *ss, unsigned *len)
{
    struct addrinfo hints = {0}, *ai = NULL;
    int ok = 0;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(O.host, O.port, &hints, &ai) != 0 || ai == NULL) {
        fprintf(stderr, "loadgen: cannot resolve %s:%s\n", O.host, O.port);
        return -1;
    }
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ai->ai_addr;
        ok = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ai->ai_addr;
        ok = memcmp(&in6->sin6_addr, &in6addr_loopback, sizeof(in6addr_loopback)) == 0;
    }
    if (ok) {
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        *len = (unsigned)ai->ai_addrlen;
    } else {
        fprintf(stderr, "loadgen: %s is not a loopback address; refusing\n", O.host);
    }
    freeaddrinfo(ai);
    return ok ? 0 : -1;
}

static SSL_CTX *make_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (O.tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    /* every new connection must pay a full handshake */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    /* Send the --cert file's certificates as they are.  Without this,
     * OpenSSL builds the client's chain from the --cacert store on every
     * handshake (verifying its own chain: 2 ECDSA verifications) and sends
     * the issuing CA and root along, which the server then has to parse.
     * A device sends what it was provisioned with. */
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    if (O.cacert != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, O.cacert, NULL) != 1)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (O.cert != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx, O.cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, O.key ? O.key : O.cert, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1))
        goto fail;
    return ctx;
fail:
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return NULL;
}

/* One complete HTTP/1.1 request (head + body) in r->bytes. */
static int build_req(req *r, const char *method, const char *path, const char *ctype,
                     const char *auth, const unsigned char *body, size_t body_len, int expect)
{
    char head[2048];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: fleetpki-loadgen\r\n"
                     "%s%s%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, O.host, O.port, ctype ? "Content-Type: " : "",
                     ctype ? ctype : "", ctype ? "\r\n" : "", auth ? auth : "",
                     auth ? "\r\n" : "", body_len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return -1;
    if (!strcmp(method, "GET")) /* no body, no Content-Length on GET */
        n = snprintf(head, sizeof(head),
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: fleetpki-loadgen\r\n\r\n",
                     path, O.host, O.port);
    r->len = (size_t)n + body_len;
    r->bytes = malloc(r->len);
    if (r->bytes == NULL)
        return -1;
    memcpy(r->bytes, head, (size_t)n);
    if (body_len)
        memcpy(r->bytes + n, body, body_len);
    r->expect = expect;
    return 0;
}

/* RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of the DER}. */
static char *url_encode_b64(const char *b64)
{
    char *out = malloc(strlen(b64) * 3 + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const char *p = b64; *p; p++) {
        if (*p == '+' || *p == '/' || *p == '=')
            o += sprintf(o, "%%%02X", (unsigned char)*p);
        else
            *o++ = *p;
    }
    *o = '\0';
    return out;
}

/* api-get: one keep-alive GET per path (--paths file, else --path), each
 * with the API key; the HTTP/1.1 head is built here since build_req
 * sends no headers on a GET. */
static int api_get_req(req *r, const char *path)
{
    char head[2048];
    int n = snprintf(head, sizeof(head),
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: fleetpki-loadgen\r\n"
                     "%s%s%s\r\n",
                     path, O.host, O.port, O.bearer ? "Authorization: Bearer " : "",
                     O.bearer ? O.bearer : "", O.bearer ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head) || (r->bytes = malloc((size_t)n)) == NULL)
        return -1;
    memcpy(r->bytes, head, (size_t)n);
    r->len = (size_t)n;
    r->expect = -1;
    return 0;
}

static int prepare_api_requests(void)
{
    char line[1024];
    size_t cap = 0;
    FILE *f;

    if (O.paths == NULL) {
        REQS = calloc(1, sizeof(*REQS));
        if (REQS == NULL || api_get_req(&REQS[0], O.path ? O.path : "/api/v1/projects") != 0)
            return -1;
        N_REQS = 1;
        return 0;
    }
    if ((f = fopen(O.paths, "r")) == NULL) {
        fprintf(stderr, "loadgen: cannot read --paths %s\n", O.paths);
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (N_REQS == cap) {
            size_t nc = cap ? cap * 2 : 64;
            req *nr = realloc(REQS, nc * sizeof(*nr));
            if (nr == NULL)
                break;
            REQS = nr;
            cap = nc;
        }
        if (api_get_req(&REQS[N_REQS], line) != 0)
            break;
        N_REQS++;
    }
    fclose(f);
    return N_REQS > 0 ? 0 : -1;
}

static int prepare_requests(void)
{
    lg_blob *blobs = NULL;
    size_t n = 0;
    char path[512], auth[512] = "";
    const char *auth_hdr = NULL;
    X509 *self = NULL;
    int rc = -1;

    if (O.basic != NULL) {
        char *b = lg_base64((const unsigned char *)O.basic, strlen(O.basic));
        if (b == NULL)
            return -1;
        snprintf(auth, sizeof(auth), "Authorization: Basic %s", b);
        free(b);
        auth_hdr = auth;
    }
    if (O.mode == M_API_GET)
        return prepare_api_requests();
    if (is_device()) {
        /* the same GET on every connection; the identity differs */
        REQS = calloc(1, sizeof(*REQS));
        if (REQS == NULL || build_req(&REQS[0], "GET", O.path ? O.path : "/api/v1/device", NULL,
                                      NULL, NULL, 0, -1) != 0)
            goto out;
        N_REQS = 1;
        rc = lg_devices_make(O.device_ca, O.device_ca_key, O.device_count, &DEVS);
        goto out;
    }
    if (is_floor()) {
        /* one request, repeated: what a connection costs the server with
         * no enrollment work (cacerts is served from memory) */
        REQS = calloc(1, sizeof(*REQS));
        if (REQS == NULL || build_req(&REQS[0], "GET", O.path ? O.path : "/.well-known/est/cacerts",
                                      NULL, auth_hdr, NULL, 0, -1) != 0)
            goto out;
        N_REQS = 1;
        rc = 0;
        goto out;
    }
    if (is_est()) {
        const char *op = O.mode == M_EST_SERVERKEYGEN ? "serverkeygen"
                         : O.reenroll                ? "simplereenroll"
                                                     : "simpleenroll";
        if (O.path)
            snprintf(path, sizeof(path), "%s", O.path);
        else if (O.label)
            snprintf(path, sizeof(path), "/.well-known/est/%s/%s", O.label, op);
        else
            snprintf(path, sizeof(path), "/.well-known/est/%s", op);
        /* a device enrolls under its own names (the server refuses others
         * by default: [est] cert_identity), so CSRs copy the client
         * certificate's subject and SANs whenever there is one */
        if (O.reenroll || O.cert) {
            BIO *bio = O.cert ? BIO_new_file(O.cert, "r") : NULL;
            self = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
            BIO_free(bio);
            if (self == NULL) {
                fprintf(stderr, "loadgen: --cert is not a readable PEM certificate (--reenroll needs one)\n");
                goto out;
            }
        }
        if (O.csr_dir ? lg_csr_load_dir(O.csr_dir, &blobs, &n) != 0
                      : (n = O.csr_count, lg_csr_generate(n, "bench", self, &blobs) != 0))
            goto out;
    } else {
        snprintf(path, sizeof(path), "%s", O.path ? O.path : "/ocsp");
        if (lg_ocsp_build(O.issuer, O.serials, O.ocsp_count, O.unknown_pct, &blobs, &n) != 0)
            goto out;
    }
    REQS = calloc(n, sizeof(*REQS));
    if (REQS == NULL)
        goto out;
    for (size_t i = 0; i < n; i++, N_REQS++) {
        int r;
        if (O.mode == M_OCSP_GET) {
            char *b64 = lg_base64(blobs[i].data, blobs[i].len);
            char *enc = b64 ? url_encode_b64(b64) : NULL;
            char *full = enc ? malloc(strlen(path) + strlen(enc) + 2) : NULL;
            if (full != NULL)
                sprintf(full, "%s/%s", path, enc);
            r = full ? build_req(&REQS[i], "GET", full, NULL, NULL, NULL, 0, blobs[i].expect) : -1;
            free(full);
            free(enc);
            free(b64);
        } else if (O.mode == M_OCSP_POST) {
            r = build_req(&REQS[i], "POST", path, "application/ocsp-request", NULL,
                          blobs[i].data, blobs[i].len, blobs[i].expect);
        } else {
            r = build_req(&REQS[i], "POST", path, "application/pkcs10", auth_hdr,
                          blobs[i].data, blobs[i].len, -1);
        }
        if (r != 0)
            goto out;
    }
    rc = 0;
out:
    X509_free(self);
    lg_blobs_free(blobs, n);
    return rc;
}

/* Cheap per-answer checks, full parse on every validate_every-th. */
static int validate(const lg_resp *r, const req *q, uint64_t k)
{
    bool full = (k % (uint64_t)O.validate_every) == 0;
    if (r->body_len == 0)
        return -1;
    switch (O.mode) {
    case M_API_GET:
        return strncasecmp(r->ctype, "application/json", 16) == 0 ? 0 : -1;
    case M_EST_NEWCONN:
    case M_EST_KEEPALIVE:
    case M_FLOOR_NEWCONN:
    case M_FLOOR_KEEPALIVE:
        if (strncasecmp(r->ctype, "application/pkcs7-mime", 22) != 0)
            return -1;
        /* every answer by a cheap DER walk; OpenSSL's full parse (slow on
         * 3.0: it decodes each certificate's key) on every (10 x N)th */
        return lg_check_pkcs7_b64(r->body, r->body_len,
                                  (k % (10u * (uint64_t)O.validate_every)) == 0);
    case M_EST_SERVERKEYGEN:
        if (strncasecmp(r->ctype, "multipart/mixed", 15) != 0)
            return -1;
        if (full && (memmem(r->body, r->body_len, "application/pkcs8", 17) == NULL ||
                     memmem(r->body, r->body_len, "application/pkcs7-mime", 22) == NULL))
            return -1;
        return 0;
    case M_DEVICE_NEWCONN:
        /* the registry view of the device: a JSON object with its name */
        if (strncasecmp(r->ctype, "application/json", 16) != 0 ||
            memmem(r->body, r->body_len, "\"name\"", 6) == NULL ||
            memmem(r->body, r->body_len, "\"active\"", 8) == NULL)
            return -1;
        return 0;
    default:
        if (strncasecmp(r->ctype, "application/ocsp-response", 25) != 0)
            return -1;
        /* status of every answer by a cheap DER walk; a full OpenSSL
         * parse (slow on 3.0) only on every (100 x N)th */
        return lg_check_ocsp(r->body, r->body_len, q->expect,
                             (k % (100u * (uint64_t)O.validate_every)) == 0);
    }
}

static void record(worker *w, uint64_t ns)
{
    if (w->n_lat == w->cap_lat) {
        size_t ncap = w->cap_lat ? w->cap_lat * 2 : 65536;
        uint64_t *nl = realloc(w->lat, ncap * sizeof(*nl));
        if (nl == NULL)
            return; /* keep counting via status; percentiles lose a sample */
        w->lat = nl;
        w->cap_lat = ncap;
    }
    w->lat[w->n_lat++] = ns;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    lg_conn c;
    uint64_t k = (uint64_t)w->id * 7919u;
    bool fresh = O.mode == M_EST_NEWCONN || O.mode == M_FLOOR_NEWCONN || is_device();

    lg_conn_init(&c);
    for (;;) {
        int ph = atomic_load(&phase);
        const req *q;
        lg_resp r;
        uint64_t t0, t1;

        if (ph == 2)
            break;
        if (ph == 1 && O.requests && atomic_fetch_add(&issued, 1) >= O.requests)
            break;
        q = &REQS[k % N_REQS];
        t0 = now_ns();
        if (is_device()) {
            size_t d = atomic_fetch_add(&dev_next, 1);
            if (d >= O.device_count)
                break; /* every identity has made its first contact */
            c.cert = DEVS[d].cert;
            c.key = DEVS[d].key;
        }
        if (fresh || c.fd < 0 || !c.reusable) {
            if (!fresh && c.fd >= 0)
                w->reconnects += ph;
            if (lg_conn_open(&c, &T) != 0) {
                w->err_connect += ph;
                usleep(1000);
                continue;
            }
        }
        if (lg_http_exchange(&c, q->bytes, q->len, &r) != 0) {
            w->err_io += ph;
            continue;
        }
        t1 = now_ns();
        k++;
        if (ph == 1) {
            if (r.status >= 200 && r.status < 300) {
                int v = validate(&r, q, k);
                if (v == 0)
                    record(w, t1 - t0);
                else if (v == -2)
                    w->err_mismatch++;
                else
                    w->err_invalid++;
            } else {
                w->status[r.status < STATUS_SLOTS ? r.status : 0]++;
            }
        }
        if (fresh)
            lg_conn_close(&c);
    }
    lg_conn_free(&c);
    atomic_fetch_add(&finished, 1);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v (ms). */
static double pct(const uint64_t *v, size_t n, double p)
{
    size_t i;
    if (n == 0)
        return 0;
    i = (size_t)(p * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return (double)v[i - 1] / 1e6;
}

/* utime + stime of a process, seconds; -1 if unreadable. */
static double proc_cpu(int pid)
{
    char path[64], buf[2048], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* comm may hold spaces */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                            &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmHWM of a process in MiB; -1 if unreadable. */
static double proc_hwm_mib(int pid)
{
    char path[64], line[256];
    double kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb / 1024.0;
}

/* Busy CPU seconds of the whole machine (all but idle and iowait). */
static double machine_busy(void)
{
    unsigned long long v[10] = {0}, busy = 0;
    FILE *f = fopen("/proc/stat", "r");
    int n;
    if (f == NULL)
        return -1;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8)
        return -1;
    for (int i = 0; i < 8; i++)
        if (i != 3 && i != 4)
            busy += v[i];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    worker *W = NULL;
    pthread_attr_t attr;
    uint64_t t_start, t_end, *all = NULL;
    uint64_t ok = 0, e_io = 0, e_conn = 0, e_inv = 0, e_mis = 0, e_status = 0, reconn = 0;
    uint64_t status[STATUS_SLOTS] = {0};
    double srv_cpu0 = -1, srv_cpu1 = -1, cli_cpu0, cli_cpu, mach0, mach, srv, other, elapsed, rps,
           hwm = -1;
    size_t n_all = 0;
    int rc = 1;

    if (parse_opts(argc, argv) != 0)
        return 2;
    if (resolve(&ss, &T.addrlen) != 0)
        return 2;
    T.addr = &ss;
    T.io_timeout_ms = O.timeout_ms;
    if ((is_est() || is_floor() || is_api() || is_device()) && (T.ctx = make_ctx()) == NULL)
        return 1;
    {
        uint64_t p0 = now_ns();
        if (prepare_requests() != 0) {
            fprintf(stderr, "loadgen: could not prepare requests\n");
            goto out;
        }
        fprintf(stderr, "loadgen: %zu distinct requests prepared in %.2f s\n", N_REQS,
                (double)(now_ns() - p0) / 1e9);
    }
    W = calloc((size_t)O.concurrency, sizeof(*W));
    if (W == NULL)
        goto out;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    atomic_store(&phase, O.warmup > 0 ? 0 : 1);
    for (int i = 0; i < O.concurrency; i++) {
        W[i].id = i;
        if (pthread_create(&W[i].tid, &attr, worker_main, &W[i]) != 0) {
            fprintf(stderr, "loadgen: cannot start thread %d\n", i);
            atomic_store(&phase, 2);
            for (int j = 0; j < i; j++)
                pthread_join(W[j].tid, NULL);
            goto out;
        }
    }
    pthread_attr_destroy(&attr);
    if (O.warmup > 0) {
        struct timespec ts = {(time_t)O.warmup, (long)((O.warmup - (long)O.warmup) * 1e9)};
        nanosleep(&ts, NULL);
        /* answers already on the way when the phase flips are not counted */
        atomic_store(&phase, 1);
    }
    t_start = now_ns();
    cli_cpu0 = self_cpu();
    mach0 = machine_busy();
    if (O.server_pid > 0)
        srv_cpu0 = proc_cpu(O.server_pid);
    while (atomic_load(&finished) < O.concurrency &&
           (double)(now_ns() - t_start) / 1e9 < O.duration) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&phase, 2);
    for (int i = 0; i < O.concurrency; i++)
        pthread_join(W[i].tid, NULL);
    t_end = now_ns();
    mach = machine_busy();
    cli_cpu = self_cpu();
    if (O.server_pid > 0) {
        srv_cpu1 = proc_cpu(O.server_pid);
        hwm = proc_hwm_mib(O.server_pid);
    }
    elapsed = (double)(t_end - t_start) / 1e9;
    cli_cpu = (cli_cpu - cli_cpu0) / elapsed;
    srv = srv_cpu0 >= 0 && srv_cpu1 >= 0 ? (srv_cpu1 - srv_cpu0) / elapsed : -1;
    mach = mach0 >= 0 && mach >= 0 ? (mach - mach0) / elapsed : -1;
    /* CPU used by neither server nor loadgen: kernel softirq work for
     * loopback traffic, but also any other job on the machine (noise) */
    other = mach >= 0 ? mach - cli_cpu - (srv > 0 ? srv : 0) : -1;

    for (int i = 0; i < O.concurrency; i++)
        n_all += W[i].n_lat;
    all = malloc((n_all ? n_all : 1) * sizeof(*all));
    if (all == NULL)
        goto out;
    n_all = 0;
    for (int i = 0; i < O.concurrency; i++) {
        if (W[i].n_lat > 0)
            memcpy(all + n_all, W[i].lat, W[i].n_lat * sizeof(*all));
        n_all += W[i].n_lat;
        e_io += W[i].err_io;
        e_conn += W[i].err_connect;
        e_inv += W[i].err_invalid;
        e_mis += W[i].err_mismatch;
        reconn += W[i].reconnects;
        for (int s = 0; s < STATUS_SLOTS; s++) {
            status[s] += W[i].status[s];
            e_status += W[i].status[s];
        }
    }
    ok = n_all;
    qsort(all, n_all, sizeof(*all), cmp_u64);
    rps = (double)ok / elapsed;

    printf("mode         %s  (%d clients, %s:%s)\n", mode_names[O.mode], O.concurrency, O.host,
           O.port);
    printf("elapsed      %.2f s\n", elapsed);
    printf("completed    %" PRIu64 " ok\n", ok);
    printf("errors       %" PRIu64 " (io %" PRIu64 ", connect %" PRIu64 ", invalid %" PRIu64
           ", wrong-status %" PRIu64 ", http %" PRIu64 ")",
           e_io + e_conn + e_inv + e_mis + e_status, e_io, e_conn, e_inv, e_mis, e_status);
    for (int s = 0; s < STATUS_SLOTS; s++)
        if (status[s])
            printf(" [%d x%" PRIu64 "]", s, status[s]);
    printf("\n");
    if (reconn)
        printf("reconnects   %" PRIu64 " (server closed a keep-alive connection)\n", reconn);
    printf("throughput   %.1f req/s\n", rps);
    printf("latency ms   p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", pct(all, n_all, 0.50),
           pct(all, n_all, 0.90), pct(all, n_all, 0.99), pct(all, n_all, 1.0));
    if (O.server_pid > 0)
        printf("server       peak RSS %.1f MiB, CPU %.2f cores (%.0f us per answer)\n", hwm, srv,
               rps > 0 ? srv * 1e6 / rps : 0);
    printf("client CPU   %.2f cores\n", cli_cpu);
    printf("machine      %.2f of %ld cores busy; %.2f used by neither (softirq, other jobs)\n",
           mach, sysconf(_SC_NPROCESSORS_ONLN), other);
    printf("RESULT mode=%s conc=%d secs=%.2f ok=%" PRIu64 " err=%" PRIu64
           " rps=%.1f p50=%.2f p90=%.2f p99=%.2f max=%.2f rss_mib=%.1f srv_cpu=%.2f"
           " cli_cpu=%.2f busy=%.2f other_cpu=%.2f srv_us=%.0f cli_us=%.0f\n",
           mode_names[O.mode], O.concurrency, elapsed, ok, e_io + e_conn + e_inv + e_mis + e_status,
           rps, pct(all, n_all, 0.50), pct(all, n_all, 0.90), pct(all, n_all, 0.99),
           pct(all, n_all, 1.0), hwm, srv, cli_cpu, mach, other,
           rps > 0 && srv > 0 ? srv * 1e6 / rps : 0, rps > 0 ? cli_cpu * 1e6 / rps : 0);
    rc = ok > 0 ? 0 : 1;
out:
    free(all);
    lg_devices_free(DEVS, O.device_count);
    if (W != NULL)
        for (int i = 0; i < O.concurrency; i++)
            free(W[i].lat);
    free(W);
    for (size_t i = 0; i < N_REQS; i++)
        free(REQS[i].bytes);
    free(REQS);
    SSL_CTX_free(T.ctx);
    return rc;
}
