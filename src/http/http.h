/*
 * http.h - the HTTP(S) front end shared by every protocol module (EST,
 * OCSP, CRL, later the admin API, CMP, SCEP).  Only src/http/ includes
 * libevent, and src/http/ names no protocol and includes nothing of the
 * CA layer: modules are mounted at start by the composition root.
 *
 * Threads: N workers (fp_http_opts.threads, 0 = one per core), each with
 * its own event_base and two evhttp servers accepting on shared listening
 * sockets: "https" (TLS 1.2/1.3 via bufferevent_openssl; EST and API) and
 * "http" (plain; CRL and OCSP, RFC 5280 / RFC 5019 expect plain HTTP).
 * A request is handled start to finish on the worker that accepted it.
 *
 * HOW TO ADD ROUTES (a module, e.g. src/rev/ for OCSP and CRL):
 *   1. In the module define one static route table, ended by an all-zero
 *      row (methods == 0):
 *        static const fp_http_route rev_routes[] = {
 *            {FP_HTTP_POST, "/ocsp", FP_HTTP_PLAIN, "application/ocsp-request",
 *             FP_HTTP_AUTH_NONE, 0, rev_ocsp_post},
 *            {FP_HTTP_GET, "/ocsp/ **" (no space), FP_HTTP_PLAIN, NULL,
 *             FP_HTTP_AUTH_NONE, 0, rev_ocsp_get},
 *            {FP_HTTP_GET, "/crl/{file}", FP_HTTP_PLAIN, NULL, FP_HTTP_AUTH_NONE, 0,
 *             rev_crl_get},
 *            {0},
 *        };
 *      and an fp_http_module naming it with the module's hooks (init with
 *      the module's own argument struct, per-worker init/free, stop, free).
 *   2. The composition root (src/cli/cmd_serve.c) mounts it after
 *      fp_http_server_new and before fp_http_server_run:
 *        fp_rev_args ra = {cfg, ca, pass, passlen};
 *        fp_http_mount(srv, &fp_rev_module, NULL, &ra, &err);
 *      Mounting calls init(srv, arg, &state) once, then worker_init on
 *      every worker (on the main thread: no worker runs yet).  What the
 *      module needs (config, CA, passphrase, how to open its store) comes
 *      through arg; nothing of it passes through this layer.
 *   3. A handler reads the fp_http_req fields (req->mod_state: the
 *      module's state; req->worker_state: its per-worker state on this
 *      worker, e.g. a store handle; fp_http_param for path parameters),
 *      then either answers at once (fp_http_reply / fp_http_error, return
 *      FP_HTTP_DONE) or keeps req and returns FP_HTTP_DEFERRED, finishing
 *      later ON THE SAME WORKER THREAD (use fp_http_worker_post from
 *      another thread to get back there).
 *
 * Route syntax (a route's path, after the mount prefix if any): '/'
 * separated segments, each either literal text, or "{name}" (a path
 * parameter: exactly one non-empty segment, name of [A-Za-z0-9_], at most
 * FP_HTTP_MAX_PARAMS per route), and optionally a last segment "**" (no
 * space) that matches any remainder, possibly empty, possibly with '/'
 * (req->rest).  "/api/v1/projects/{project}/devices/{device}",
 * "/.well-known/est/{label}/cacerts", "/ocsp/ **" (no space).
 *
 * Matching works on the raw request path split at its '/' characters;
 * each segment is then percent-decoded (RFC 3986 2.1; '+' stays '+').  So
 * "%2F" inside a segment is data, not a separator: a literal segment never
 * equals it and a parameter whose decoded value holds a '/' does not
 * match.  A path that decodes to a NUL anywhere is answered 400.  A
 * parameter value (fp_http_param) is DECODED, NUL-terminated, non-empty,
 * without '/', at most FP_HTTP_PARAM_MAX bytes (longer: 414 when nothing
 * else matches).  req->path and req->rest are decoded too.  Routes are
 * tried in mount order, then in table order: the first match wins.  A
 * route with the same shape, an overlapping method and listener as one
 * already mounted is refused at mount.
 *
 * Authentication is a per-route hook: a route names a scheme registered
 * with fp_http_auth_register ("none", "handler" and "client-cert" are
 * built in).  The layer runs the scheme after routing and the 411/413/415
 * checks and, unless the scheme asks for the body, BEFORE the body is
 * handed over (req->body is NULL during the check): an unauthenticated
 * caller costs no body work.  A refusing scheme answers the request
 * itself; the handler never runs.  A module may register its own schemes
 * from its init hook, before its routes are resolved.
 *
 * Errors the layer answers itself: 400 a path that decodes to NUL, 404 no
 * route, 405 (with Allow) path known but not the method, 411 POST without
 * Content-Length (chunked bodies are accepted and bounded), 413 over the
 * route's body limit, 414 an overlong path parameter, 415 content type
 * not the route's, 503 (Retry-After) when the server is draining, 429
 * (Retry-After) over rate_per_address.  Before evhttp parses a byte, the
 * framing guard (guard.h) answers 400 (malformed or ambiguous length),
 * 413, 431, 501, 505 and closes; deadlines and connection caps are in
 * conn.c.  Every answer is text/plain with exactly one log line.
 *
 * Files: server.c (lifecycle, mount, accessors), listen.c (sockets, TLS
 * context), router.c (route table, patterns, parameters; no libevent),
 * auth.c (scheme registry, built-in schemes), request.c (from evhttp's
 * callback to the handler), reply.c (answers, log line), worker.c
 * (threads, cross-thread queue), drain.c (run loop, signals, drain),
 * conn.c + guard.c + limits.c (per-connection defences), http_util.c
 * (codecs for modules).
 */
#ifndef FP_HTTP_H
#define FP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../common/err.h"

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

/* Built-in authentication schemes, by the name a route gives. */
#define FP_HTTP_AUTH_NONE "none"               /* public; the handler may still look at creds */
#define FP_HTTP_AUTH_HANDLER "handler"         /* the handler authenticates (per-label policy) */
#define FP_HTTP_AUTH_CLIENT_CERT "client-cert" /* a TLS client certificate must be present (401) */

/* Handler results. */
enum { FP_HTTP_DONE = 0, FP_HTTP_DEFERRED = 1 };

#define FP_HTTP_MAX_PARAMS 8   /* "{name}" segments per route */
#define FP_HTTP_PARAM_MAX 255  /* decoded bytes of one parameter value */

typedef struct fp_http_server fp_http_server;
typedef struct fp_http_worker fp_http_worker;
typedef struct fp_http_req fp_http_req;
typedef struct fp_http_rt fp_http_rt; /* a mounted route (private) */

typedef int (*fp_http_handler)(fp_http_req *req);

typedef struct fp_http_route {
    int methods;              /* FP_HTTP_GET | ... ; 0 ends the table */
    const char *path;         /* see "Route syntax" above */
    int listeners;            /* FP_HTTP_TLS | FP_HTTP_PLAIN */
    const char *content_type; /* required type of a request body (media type
                                 only, case-insensitive); NULL: any */
    const char *auth;         /* name of a registered scheme (FP_HTTP_AUTH_*
                                 or a module's own); NULL is refused at mount */
    size_t max_body;          /* 0: the server's max_body_bytes */
    fp_http_handler fn;
} fp_http_route;

/* A module: routes plus optional hooks (any may be NULL).  Mounted with
 * fp_http_mount; the struct and its routes are borrowed for the server's
 * lifetime. */
typedef struct fp_http_module {
    const char *name;
    const fp_http_route *routes;
    /* Once, at mount (main thread).  arg is what the composition root
     * passed to fp_http_mount (the module's own argument struct; borrowed
     * for this call only).  *state becomes req->mod_state. */
    int (*init)(fp_http_server *srv, void *arg, void **state, fp_error *err);
    /* Once per worker, at mount (main thread, before the worker runs).
     * *wstate becomes req->worker_state for this module's requests on w,
     * used by w's thread only (a store handle, a cache). */
    int (*worker_init)(void *state, fp_http_worker *w, void **wstate, fp_error *err);
    /* After w's loop exited and its queued work ran. */
    void (*worker_free)(void *state, void *wstate);
    /* After every worker loop exited, before workers are freed: stop
     * background threads; work they post to workers still runs. */
    void (*stop)(void *state);
    /* Last, in reverse mount order. */
    void (*free)(void *state);
} fp_http_module;

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
    const char *rest;         /* decoded remainder matched by "/ **", or NULL */
    const unsigned char *body; /* NULL while a before-body auth scheme runs */
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
    void *worker_state;       /* the module's worker_init() state on this worker */
    void *principal;          /* set by the route's auth scheme (released by it) */
    char identity[160];       /* who the caller is, for the log (scheme or handler) */
    void *user;               /* free for the handler (deferred state) */

    /* private to src/http/ */
    struct evhttp_request *ev_;
    int64_t start_ns_;
    unsigned char *body_buf_;
    const fp_http_rt *rt_;
    char *path_buf_;
    const char *params_[FP_HTTP_MAX_PARAMS];
};

/* Value of the route's path parameter "{name}" (decoded, see "Route
 * syntax"), or NULL if the route has no such parameter. */
const char *fp_http_param(const fp_http_req *req, const char *name);

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
 * the per-identity rate (fp_http_opts rate_per_identity,
 * rate_burst_per_identity).  Call once the handler knows who the caller
 * is.  Over the limit: answers 429 with Retry-After (RFC 6585 4) and
 * returns true; req is then finished and the handler returns
 * FP_HTTP_DONE.  Otherwise (or with no limit configured) returns false.
 * O(1), bounded memory, any worker. */
bool fp_http_limit_identity(fp_http_req *req, const char *key);

/* ---- authentication schemes ---- */

enum {
    /* run the check after the body was read (req->body set): for schemes
     * that authenticate the body itself (a signed message) */
    FP_HTTP_AUTH_NEEDS_BODY = 1 << 0,
};

typedef struct fp_http_auth_scheme {
    const char *name;  /* what routes name; borrowed for the server's life */
    unsigned flags;    /* FP_HTTP_AUTH_NEEDS_BODY */
    /* On the worker thread.  true: authenticated, the handler runs (the
     * check may set req->principal and req->identity); false: the check
     * answered the request itself (401 with WWW-Authenticate, 403, 429,
     * 500) and req is gone. */
    bool (*check)(fp_http_req *req, void *arg);
    /* Frees req->principal when the request ends; NULL: nothing to free. */
    void (*release)(void *principal, void *arg);
    void *arg;
} fp_http_auth_scheme;

/* Register scheme (copied) under scheme->name.  FP_ERR_ARG if the name is
 * taken or empty, or check is NULL; FP_ERR_STATE once the server runs. */
int fp_http_auth_register(fp_http_server *srv, const fp_http_auth_scheme *scheme,
                          fp_error *err);

/* ---- server ---- */

/* Server options.  Strings borrowed for the server's lifetime, except the
 * TLS passphrase (used during fp_http_server_new only).  The limits mean
 * what the [server] options of the same names do (README, "Limits and
 * abuse"); the composition root copies them from the configuration. */
typedef struct fp_http_opts {
    const char *https_listen;   /* "HOST:PORT" (port 0: any free); "" or NULL: off */
    const char *http_listen;    /* the same for plain http */
    const char *tls_cert_file;  /* PEM chain, leaf first (https only) */
    const char *tls_key_file;   /* PEM private key, maybe encrypted */
    const char *tls_pass;       /* passphrase of an encrypted TLS key */
    size_t tls_passlen;
    int threads;                /* workers; 0: one per core */
    int max_body_bytes;
    int max_header_bytes;
    int idle_timeout_seconds;
    int max_connections;
    int max_connections_per_address;
    int max_requests_per_connection;
    int handshake_timeout_seconds;
    int header_timeout_seconds;
    int body_timeout_seconds;
    int min_body_rate;
    int rate_per_address;       /* 0: no limit */
    int rate_burst_per_address;
    int rate_per_identity;      /* 0: no limit */
    int rate_burst_per_identity;
    int rate_limit_keys;
    bool quiet;                 /* no per-request log lines */
} fp_http_opts;

/* Create the server: SSL_CTX, listening sockets (bound now, so the actual
 * ports are known), workers and their event loops, the built-in auth
 * schemes.  No route yet: mount modules, then fp_http_server_run. */
int fp_http_server_new(const fp_http_opts *opts, fp_http_server **out,
                       fp_error *err);

/* Mount mod: run its init (with arg) and worker_init hooks, then add its
 * routes, each path prefixed with prefix ("/api/v1"; NULL or "": none),
 * after those of the modules mounted before.  All or nothing: on error
 * (a bad pattern, an unknown auth scheme, a route that duplicates one
 * mounted before: FP_ERR_ARG naming the module and route) the module's
 * hooks are undone (worker_free, stop, free) and the schemes its init
 * registered dropped.  Before fp_http_server_run only (FP_ERR_STATE). */
int fp_http_mount(fp_http_server *srv, const fp_http_module *mod, const char *prefix,
                  void *arg, fp_error *err);

/* "127.0.0.1:8443" of the bound listener (FP_HTTP_TLS or FP_HTTP_PLAIN),
 * "" if disabled. */
const char *fp_http_server_addr(const fp_http_server *srv, int kind);

/* Run the workers until fp_http_server_stop (or SIGTERM/SIGINT when
 * handle_signals).  Returns after every worker joined and in-flight
 * requests finished (or drain_seconds passed). */
int fp_http_server_run(fp_http_server *srv, bool handle_signals, fp_error *err);
/* Catch SIGTERM/SIGINT from now on (call before announcing the server):
 * one that arrives before fp_http_server_run(srv, true, ...) installs its
 * handlers starts the drain as soon as the loop runs, instead of killing
 * the process. */
void fp_http_signals_early(void);

/* Ask the server to stop (async-signal-safe). */
void fp_http_server_stop(fp_http_server *srv);

/* Stops and frees every mounted module (stop, worker_free, free). */
void fp_http_server_free(fp_http_server *srv);

/* The TLS context (NULL without https), e.g. to sign with the TLS key. */
SSL_CTX *fp_http_server_ssl_ctx(const fp_http_server *srv);
fp_http_server *fp_http_worker_server(fp_http_worker *w);
int fp_http_worker_index(const fp_http_worker *w);   /* 0 .. workers - 1 */
int fp_http_server_workers(const fp_http_server *srv); /* how many workers */

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
/* Connections worker i holds now (-1: no such worker): workers share
 * connections out evenly (conn.c, "balance"). */
long fp_http_worker_conns(const fp_http_server *srv, int i);

/* Is the server draining (shutdown begun)? */
bool fp_http_server_draining(const fp_http_server *srv);

/* ---- helpers shared with modules (http_util.c; no libevent) ---- */

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
