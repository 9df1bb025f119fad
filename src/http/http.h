/*
 * http.h - the HTTP(S) front end shared by every protocol module (EST,
 * OCSP, CRL, later the admin API).  Only src/http/ includes libevent.
 *
 * Threads: N workers (config `threads`, 0 = one per core), each with its
 * own event_base and two evhttp servers accepting on shared listening
 * sockets: "https" (TLS 1.2/1.3 via bufferevent_openssl; EST and API) and
 * "http" (plain; CRL and OCSP, RFC 5280 / RFC 5019 expect plain HTTP).
 * A request is handled start to finish on the worker that accepted it.
 *
 * Routing is one static table per module (method, path, listener,
 * content type, auth, body limit, handler).  HOW TO ADD ROUTES FROM A
 * MODULE (e.g. src/rev/ for OCSP and CRL):
 *   1. In your module define a route array terminated by an all-zero row:
 *        const fp_http_route fp_rev_routes[] = {
 *            {FP_HTTP_POST, "/ocsp", FP_HTTP_PLAIN, "application/ocsp-request",
 *             FP_HTTP_AUTH_NONE, 0, rev_ocsp_post},
 *            {FP_HTTP_GET, "/ocsp/ **" (no space), FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0,
 *             rev_ocsp_get},
 *            {0},
 *        };
 *      and, if the module needs shared state, an init/free pair.
 *   2. Fill in the module's row in fp_http_modules[] (src/http/routes.c):
 *      name, routes, init, stop, free.  Today src/http/routes_rev.c holds an
 *      empty placeholder fp_rev_routes[] and NULL hooks; delete it (and its
 *      line in CMakeLists.txt) when your module defines the real ones.
 *   3. A handler reads the fp_http_req fields, then either answers at once
 *      (fp_http_reply / fp_http_error, return FP_HTTP_DONE) or keeps req and
 *      returns FP_HTTP_DEFERRED, finishing later ON THE SAME WORKER THREAD
 *      (use fp_http_worker_post from another thread to get back there).
 *
 * Path syntax in a route: an exact path ("/ocsp"); '*' as a whole segment
 * matches one non-empty segment ("/.well-known/est/ * /cacerts", no spaces)
 * and is exposed as req->wildcard; a trailing "/ **" (no space) matches any
 * remainder (req->rest, may be empty).
 *
 * Errors the layer answers itself: 404 no route, 405 (with Allow) path known
 * but not the method, 411 POST without Content-Length (chunked bodies are
 * accepted and bounded), 413 over the route's body limit, 415 content type
 * not the route's, 503 (Retry-After) when the server is draining, 429
 * (Retry-After) over rate_per_address.  Before evhttp parses a byte, the
 * framing guard (guard.h) answers 400 (malformed or ambiguous length),
 * 413, 431, 501, 505 and closes; deadlines and connection caps are in
 * conn.c.  Every answer is text/plain with exactly one log line.
 */
#ifndef FP_HTTP_H
#define FP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../ca/ca.h"
#include "../ca/config.h"
#include "../common/err.h"
#include "../store/store.h"

/* Methods (bit set, so a route may accept several). */
enum {
    FP_HTTP_GET = 1 << 0,
    FP_HTTP_POST = 1 << 1,
    FP_HTTP_HEAD = 1 << 2,
    FP_HTTP_PUT = 1 << 3,
    FP_HTTP_DELETE = 1 << 4,
};

/* Listener kinds (bit set). */
enum {
    FP_HTTP_TLS = 1 << 0,   /* https_listen */
    FP_HTTP_PLAIN = 1 << 1, /* http_listen */
};

/* Authentication the layer enforces before calling the handler. */
typedef enum {
    FP_HTTP_AUTH_NONE = 0,    /* public; the handler may still look at creds */
    FP_HTTP_AUTH_HANDLER = 1, /* the handler authenticates (per-label policy) */
    FP_HTTP_AUTH_CLIENT_CERT = 2, /* a TLS client certificate must be present */
} fp_http_auth;

/* Handler results. */
enum { FP_HTTP_DONE = 0, FP_HTTP_DEFERRED = 1 };

typedef struct fp_http_server fp_http_server;
typedef struct fp_http_worker fp_http_worker;
typedef struct fp_http_req fp_http_req;

typedef int (*fp_http_handler)(fp_http_req *req);

typedef struct fp_http_route {
    int methods;              /* FP_HTTP_GET | ... ; 0 ends the table */
    const char *path;         /* see "Path syntax" above */
    int listeners;            /* FP_HTTP_TLS | FP_HTTP_PLAIN */
    const char *content_type; /* required type of a request body (media type
                                 only, case-insensitive); NULL: any */
    fp_http_auth auth;
    size_t max_body;          /* 0: the server's max_body_bytes */
    fp_http_handler fn;
} fp_http_route;

/* A module contributes routes and optional shared state. */
typedef struct fp_http_module {
    const char *name;
    const fp_http_route *routes;
    /* Called once before workers start (main thread).  *state is what
     * handlers get as req->mod_state.  NULL: no state. */
    int (*init)(fp_http_server *srv, void **state, fp_error *err);
    /* Called after every worker loop exited, before workers are freed:
     * stop background threads; work they post to workers still runs. */
    void (*stop)(void *state);
    /* Called last. */
    void (*free)(void *state);
} fp_http_module;

/* The module list (src/http/routes.c), terminated by a NULL name. */
extern const fp_http_module fp_http_modules[];

/* A request as handlers see it.  Everything is borrowed and lives until
 * the response is sent, EXCEPT ssl, peer_cert and peer_chain: they belong
 * to the connection, which the client may close while a request is
 * deferred, so use them only during the handler call (take references
 * with X509_up_ref for later).  Answering a request whose connection is
 * gone is safe: the answer is dropped. */
struct fp_http_req {
    int method;               /* FP_HTTP_* */
    const char *method_name;
    const char *path;         /* decoded path, no query */
    const char *query;        /* raw query string or NULL */
    const char *wildcard;     /* segment matched by '*', or NULL */
    const char *rest;         /* remainder matched by "/ **", or NULL */
    const unsigned char *body;
    size_t body_len;
    bool tls;                 /* arrived on the https listener */
    SSL *ssl;                 /* TLS connection (channel bindings) or NULL */
    X509 *peer_cert;          /* TLS client certificate or NULL */
    STACK_OF(X509) *peer_chain; /* certificates the client sent after its
                                   leaf (may be NULL) */
    char peer_addr[64];
    char id[24];              /* request id, also in the log line */
    fp_http_worker *worker;
    const fp_http_route *route;
    void *mod_state;          /* the module's init() state */
    char identity[160];       /* handlers set who the caller is, for the log */
    void *user;               /* free for the handler (deferred state) */

    /* private to http.c */
    struct evhttp_request *ev_;
    int64_t start_ns_;
    unsigned char *body_buf_;
};

/* Look up a request header (case-insensitive); NULL if absent. */
const char *fp_http_header(const fp_http_req *req, const char *name);

/* Add a response header (copied).  Call before fp_http_reply. */
void fp_http_add_header(fp_http_req *req, const char *name, const char *value);

/* Send the response: status, content type (NULL: none) and body (copied).
 * Ends the request; req must not be used afterwards.  Worker thread only. */
void fp_http_reply(fp_http_req *req, int status, const char *content_type,
                   const void *body, size_t len);

/* fp_http_reply without the copy: body is sent by reference and
 * release(body, len, arg) is called once it is no longer needed (also on
 * failure), possibly after this returns.  For large immutable documents
 * (a CRL of a million entries).  Worker thread only. */
void fp_http_reply_ref(fp_http_req *req, int status, const char *content_type,
                       const void *body, size_t len,
                       void (*release)(const void *body, size_t len, void *arg), void *arg);
/* Like fp_http_reply for a body holding a secret (a server-generated
 * key): takes ownership of body (OPENSSL_malloc'd), hands it to the
 * connection without copying, and wipes and frees it once sent (or when
 * the connection goes away). */
void fp_http_reply_secret(fp_http_req *req, int status, const char *content_type,
                          void *body, size_t len);

/* Send status with a text/plain reason body ("reason\n"). */
void fp_http_error(fp_http_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Count one request for key (e.g. "cert:<serial>" or "token:<id>") against
 * the per-identity rate ([server] rate_per_identity, rate_burst_per_identity).
 * Call once the handler knows who the caller is.  Over the limit: answers
 * 429 with Retry-After (RFC 6585 4) and returns true; req is then finished
 * and the handler returns FP_HTTP_DONE.  Otherwise (or with no limit
 * configured) returns false.  O(1), bounded memory, any worker. */
bool fp_http_limit_identity(fp_http_req *req, const char *key);

/* Server options.  Strings borrowed for the server's lifetime. */
typedef struct fp_http_opts {
    const fp_config *cfg;       /* limits, threads, TLS cert/key, store path */
    fp_ca *ca;                  /* shared, thread-safe signing */
    const void *app;            /* the composition root's context for modules */
    const char *https_listen;   /* override cfg (e.g. "127.0.0.1:0"); "" off */
    const char *http_listen;    /* override cfg; "" disables */
    const char *tls_pass;       /* passphrase of an encrypted TLS key */
    size_t tls_passlen;
    bool quiet;                 /* no per-request log lines */
} fp_http_opts;

/* Create the server: SSL_CTX, listening sockets (bound now, so the actual
 * ports are known), per-worker store handles and event loops, and module
 * state.  Nothing runs until fp_http_server_run. */
int fp_http_server_new(const fp_http_opts *opts, fp_http_server **out,
                       fp_error *err);

/* "127.0.0.1:8443" of the bound listener (FP_HTTP_TLS or FP_HTTP_PLAIN),
 * "" if disabled. */
const char *fp_http_server_addr(const fp_http_server *srv, int kind);

/* Run the workers until fp_http_server_stop (or SIGTERM/SIGINT when
 * handle_signals).  Returns after every worker joined and in-flight
 * requests finished (or drain_seconds passed). */
int fp_http_server_run(fp_http_server *srv, bool handle_signals, fp_error *err);

/* Ask the server to stop (async-signal-safe). */
void fp_http_server_stop(fp_http_server *srv);

void fp_http_server_free(fp_http_server *srv);

const fp_config *fp_http_server_cfg(const fp_http_server *srv);
fp_ca *fp_http_server_ca(const fp_http_server *srv);
const void *fp_http_server_app(const fp_http_server *srv);
SSL_CTX *fp_http_server_ssl_ctx(const fp_http_server *srv);
/* Passphrase of the server's keys (fp_http_opts.tls_pass), borrowed; valid
 * only while module init hooks run (modules copy what they need). */
void fp_http_server_get0_key_pass(const fp_http_server *srv, const char **pass, size_t *len);

/* The worker's own store handle (used by this worker thread only). */
fp_store *fp_http_worker_store(fp_http_worker *w);
fp_http_server *fp_http_worker_server(fp_http_worker *w);
int fp_http_worker_index(const fp_http_worker *w);

/* Run fn(arg) on w's event loop thread as soon as possible.  Safe from any
 * thread.  Returns FP_ERR_NOMEM (fn not queued) on allocation failure. */
int fp_http_worker_post(fp_http_worker *w, void (*fn)(void *arg), void *arg);

/* The same with caller-owned storage, so it cannot fail: set fn and arg
 * (heap_ false) and keep *item alive until fn runs (fn may free it). */
typedef struct fp_http_post {
    void (*fn)(void *arg);
    void *arg;
    bool heap_;               /* private */
    struct fp_http_post *next; /* private */
} fp_http_post;
void fp_http_worker_post_item(fp_http_worker *w, fp_http_post *item);

/* Requests currently deferred across all workers (for overload checks). */
long fp_http_server_inflight(const fp_http_server *srv);
/* Connections the server has accept()ed since it started, and those it
 * holds open now (a client can tell whether its connection reached
 * accept() at all: see fuzz/README.md). */
unsigned long fp_http_server_accepted(const fp_http_server *srv);
long fp_http_server_open_conns(const fp_http_server *srv);

/* Is the server draining (shutdown begun)? */
bool fp_http_server_draining(const fp_http_server *srv);

/* ---- helpers shared with modules (http_util.c; no libevent) ---- */

/* Match path against a route pattern (see "Path syntax" above).  On a
 * match, wild and wlen give the segment '*' matched (else NULL and 0), and
 * rest what a trailing "/ **" (no space) matched (else NULL); both point
 * into path. */
bool fp_http_path_match(const char *pattern, const char *path, const char **wild,
                        size_t *wlen, const char **rest);

/* Media type of a Content-Type value compares equal to want (type/subtype
 * only, parameters ignored, case-insensitive). */
bool fp_http_media_type_is(const char *content_type, const char *want);

/* Base64 decoding options for fp_b64_decode. */
enum {
    FP_B64_SPACES = 1 << 0,  /* skip CR, LF, space and tab anywhere */
    FP_B64_URLSAFE = 1 << 1, /* also accept the URL-safe alphabet (RFC 4648 5) */
};

/* Decode canonical base64 (padding optional but only at the end), as
 * flags allow.  FP_ERR_ARG if malformed, FP_ERR_TOO_LARGE if the result
 * would exceed max.  *out is malloc'd. */
int fp_b64_decode(const char *in, size_t len, unsigned flags, size_t max,
                  unsigned char **out, size_t *outlen, fp_error *err);

/* Decode base64 text that may contain CR/LF/space/tab anywhere (RFC 8951:
 * EST bodies are base64 with or without line breaks).  Rejects other
 * characters, bad padding and a decoded size above max.  *out is malloc'd. */
int fp_b64_decode_lenient(const char *in, size_t len, size_t max,
                          unsigned char **out, size_t *outlen, fp_error *err);

/* Base64 with line breaks (LF) every 64 characters; *out
 * is malloc'd and NUL-terminated. */
int fp_b64_encode_lines(const unsigned char *in, size_t len, char **out,
                        size_t *outlen, fp_error *err);

/* Parse "Basic <b64(user:pass)>" (RFC 7617).  user and pass are malloc'd,
 * pass must be freed with fp_http_basic_free.  FP_ERR_ARG if malformed. */
int fp_http_basic_parse(const char *header, char **user, char **pass,
                        size_t *passlen, fp_error *err);
void fp_http_basic_free(char *user, char *pass, size_t passlen);

#endif
