/*
 * cmd_serve.c - `fleetpki serve`: the composition root of the server.
 * It opens the CA, builds the HTTP layer's options from the [server]
 * configuration, and mounts the protocol modules in matching order: EST
 * (https), then revocation (OCSP, CRL, CA certificates on plain http).
 * The HTTP layer knows none of them; a new front end (admin API, CMP,
 * SCEP) is one more fp_http_mount here with its own argument struct.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/util.h"
#include "../api/api.h"
#include "../api/device_api.h"
#include "../cmp/cmp_module.h"
#include "../est/est_module.h"
#include "../http/http.h"
#include "../serve/app.h"
#include "../rev/rev.h"
#include "../audit/checkpoint.h"
#include "../signer/privsep.h"
#include "../scep/scep_module.h"
#include "../x509/x509util.h"
#include "cli.h"

static const char serve_help[] =
    "usage: fleetpki serve [--dir DIR] [--https ADDR:PORT] [--http ADDR:PORT]\n"
    "                      [--threads N] [--addr-file FILE] [--quiet]\n"
    "                      [--passphrase-file F]\n"
    "\nServes EST (RFC 7030) on https (default from the config, 127.0.0.1:8443)\n"
    "and CRL/OCSP on plain http (127.0.0.1:8080).  Port 0 picks a free port;\n"
    "the bound addresses are printed on stderr as\n"
    "  listening https=HOST:PORT http=HOST:PORT\n"
    "and, with --addr-file, written to FILE (\"https=...\" and \"http=...\" lines)\n"
    "once the server accepts connections.  An empty address (--http '')\n"
    "disables that listener.  SIGTERM or SIGINT: finish in-flight requests,\n"
    "then exit 0.  --quiet drops the per-request log lines (errors stay);\n"
    "FLEETPKI_DEBUG=1 adds debug lines (commit batches, waits).\n"
    "\nThe soft descriptor limit is raised to the hard limit at start and the\n"
    "connection cap kept below it; connection caps, request rates and\n"
    "handshake/header/body deadlines are [server] options (README, \"Limits\n"
    "and abuse\").\n"
    "\nCA keys (files or PKCS#11) live in a signer process of their own (the\n"
    "default; [server] signer = inprocess keeps them in the server); a worker\n"
    "does not wait for the signer's answer but serves other connections until\n"
    "it is in ([server] signer_async = N signatures out per worker, default\n"
    "16; 0: wait for each).  Started as root with [server] user = NAME,\n"
    "the network side drops to NAME once its sockets are bound (docs/keys.md).\n";

/*
 * Started as root: become cfg->user (after binding, after every key was
 * opened through the signer).  setgroups first, then gid, then uid
 * (setuid last, or the rest would be refused); then make sure root cannot
 * be regained.
 */
static int drop_privileges(const fp_config *cfg, fp_error *err)
{
    struct passwd *pw;
    if (geteuid() != 0) {
        if (cfg->user[0])
            fp_log(FP_LOG_INFO, "not root: [server] user = %s has nothing to drop", cfg->user);
        return FP_ERR_OK;
    }
    if (!cfg->user[0]) {
        fp_log(FP_LOG_WARN, "running as root: set [server] user to drop privileges after "
                            "binding (docs/keys.md)");
        return FP_ERR_OK;
    }
    errno = 0;
    if ((pw = getpwnam(cfg->user)) == NULL)
        return fp_err_set(err, FP_ERR_CONFIG, "[server] user: no user '%s'", cfg->user);
    if (pw->pw_uid == 0)
        return fp_err_set(err, FP_ERR_CONFIG, "[server] user: '%s' is root", cfg->user);
    if (setgroups(1, &pw->pw_gid) != 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
        setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
        return fp_err_set(err, FP_ERR_IO, "dropping to user '%s': %s", cfg->user,
                          strerror(errno));
    if (setuid(0) == 0 || geteuid() == 0)
        return fp_err_set(err, FP_ERR_INTERNAL, "root could be regained after the drop");
    fp_log(FP_LOG_INFO, "network side runs as %s (uid %u)", cfg->user, (unsigned)pw->pw_uid);
    return FP_ERR_OK;
}

/* The HTTP layer's options from the configuration; the TLS file paths
 * are resolved into cert and key (FP_PATH_MAX each). */
static int http_opts_from_config(const fp_config *cfg, fp_http_opts *ho, char *cert, char *key,
                                 fp_error *err)
{
    int rc;
    if ((rc = fp_config_path(cfg, cfg->tls_cert, cert, FP_PATH_MAX, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->tls_key, key, FP_PATH_MAX, err)) != FP_ERR_OK)
        return rc;
    if (ho->https_listen == NULL)
        ho->https_listen = cfg->https_listen;
    if (ho->http_listen == NULL)
        ho->http_listen = cfg->http_listen;
    ho->tls_cert_file = cert;
    ho->tls_key_file = key;
    ho->threads = cfg->threads;
    ho->max_body_bytes = cfg->max_body_bytes;
    ho->max_header_bytes = cfg->max_header_bytes;
    ho->idle_timeout_seconds = cfg->idle_timeout_seconds;
    ho->max_connections = cfg->max_connections;
    ho->max_connections_per_address = cfg->max_connections_per_address;
    ho->max_requests_per_connection = cfg->max_requests_per_connection;
    ho->handshake_timeout_seconds = cfg->handshake_timeout_seconds;
    ho->header_timeout_seconds = cfg->header_timeout_seconds;
    ho->body_timeout_seconds = cfg->body_timeout_seconds;
    ho->min_body_rate = cfg->min_body_rate;
    ho->rate_per_address = cfg->rate_per_address;
    ho->rate_burst_per_address = cfg->rate_burst_per_address;
    ho->rate_per_identity = cfg->rate_per_identity;
    ho->rate_burst_per_identity = cfg->rate_burst_per_identity;
    ho->rate_limit_keys = cfg->rate_limit_keys;
    return FP_ERR_OK;
}

/* The modules, in matching order. */
/* EST, revocation and the admin API (/api/v1), each handed the configuration and every CA by
 * project with the one issuance path over them (serve/app.h). */
static int mount_modules(fp_http_server *srv, const fp_app *app, const char *pass, size_t passlen,
                         fp_error *err)
{
    fp_est_args ea = {app->cfg, app};
    fp_rev_args ra = {app->cfg, app, pass, passlen};
    fp_api_args aa = {app};
    fp_device_api_args da = {app};
    fp_scep_args sa = {app, pass, passlen};
    int rc;
    if ((rc = fp_http_mount(srv, &fp_est_module, NULL, &ea, err)) != FP_ERR_OK ||
        (rc = fp_http_mount(srv, &fp_rev_module, NULL, &ra, err)) != FP_ERR_OK ||
        (rc = fp_http_mount(srv, &fp_scep_module, NULL, &sa, err)) != FP_ERR_OK ||
        (rc = fp_http_mount(srv, &fp_device_api_module, "/api/v1", &da, err)) != FP_ERR_OK ||
        (rc = fp_http_mount(srv, &fp_api_module, "/api/v1", &aa, err)) != FP_ERR_OK)
        return rc;
    /* CMP (issue 14) */
    fp_cmp_args cma = {app->cfg, app};
    if ((rc = fp_http_mount(srv, &fp_cmp_module, NULL, &cma, err)) != FP_ERR_OK)
        return rc;
    return FP_ERR_OK;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"https", required_argument, NULL, 's'},
        {"http", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},
        {"addr-file", required_argument, NULL, 'a'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    fp_http_opts ho;
    fp_app app;
    fp_http_server *srv = NULL;
    fp_registry *registry = NULL;
    fp_privsep *signer = NULL;
    fp_signer *audit_key = NULL;
    fp_checkpointer *checkpointer = NULL;
    const char *addr_file = NULL;
    char tls_cert[FP_PATH_MAX], tls_key[FP_PATH_MAX];
    char *pass = NULL;
    size_t passlen = 0;
    long threads = -1;
    int c, rc = EXIT_OK;

    memset(&ho, 0, sizeof(ho));
    while ((c = getopt_long(argc, argv, "d:P:s:p:t:a:qhj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 's':
            ho.https_listen = optarg;
            break;
        case 'p':
            ho.http_listen = optarg;
            break;
        case 't': {
            char *end = NULL;
            threads = strtol(optarg, &end, 10);
            if (end == optarg || *end || threads < 0 || threads > 256)
                return cli_usage_error("serve", "--threads must be 0..256");
            break;
        }
        case 'a':
            addr_file = optarg;
            break;
        case 'q':
            ho.quiet = true;
            break;
        case 'h':
            fputs(serve_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("serve", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (getenv("FLEETPKI_DEBUG"))
        fp_log_set_level(FP_LOG_DEBUG);
    if (cli_load_config(&env, &err) != FP_ERR_OK)
        return cli_fail(&err);
    if (threads >= 0)
        env.cfg.threads = (int)threads;
    if (!strcmp(env.cfg.signer, "separate")) {
        /* first, while this process is one thread with no key and no
         * socket: a channel per thread that may sign at once (workers,
         * the publisher, the committer, this one) */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int workers;
        /* one worker per core, as in-process: twice as many (so that a
         * worker waiting for a signature leaves its core to another) was
         * measured worse on an idle 2-core machine, for signing (fresh
         * OCSP 70% of in-process against 84%) and for everything else
         * (the admin API's p99 at 64 clients doubled: 4 threads on 2
         * cores serve their connections unfairly); BENCHMARKS.md,
         * "Separate signer", 2026-12-01 04:20 */
        workers = env.cfg.threads > 0 ? env.cfg.threads : (int)(ncpu > 0 ? ncpu : 1);
        /* and an async channel per worker for its ASYNC jobs, with up to
         * signer_async requests pipelined on it (signer/async.h): a worker
         * goes on serving while its signatures are out */
        if (fp_privsep_start(workers + 4, workers, env.cfg.signer_async, &signer, &err) !=
            FP_ERR_OK) {
            rc = cli_fail(&err);
            goto out;
        }
        fp_log(FP_LOG_INFO, "signer process %d holds the CA keys (supervisor %d restarts it)",
               (int)fp_privsep_pid(signer), (int)fp_privsep_supervisor_pid(signer));
    }
    if (cli_open_ca(&env, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    /* the TLS key is encrypted with the same passphrase as the CA keys */
    if (env.cfg.keys_encrypted || env.passphrase_file != NULL) {
        if (fp_passphrase_load(env.passphrase_file, &pass, &passlen, &err) != FP_ERR_OK) {
            rc = cli_fail(&err);
            goto out;
        }
    }
    /* the device registry outlives the server: its last-seen queue is
     * flushed once every worker has stopped */
    if (fp_registry_new(&env.cfg, NULL, &registry, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    app = (fp_app){.cfg = &env.cfg, .cas = env.cas, .issuer = env.issuer,
                   .registry = registry, .pass = env.pass, .passlen = env.passlen};
    ho.tls_pass = pass;
    ho.tls_passlen = passlen;
    if (http_opts_from_config(&env.cfg, &ho, tls_cert, tls_key, &err) != FP_ERR_OK ||
        fp_http_server_new(&ho, &srv, &err) != FP_ERR_OK ||
        mount_modules(srv, &app, pass, passlen, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    /* the audit checkpoint key, opened like a CA key (files, token, signer) */
    if (env.cfg.audit_key[0]) {
        char kpath[FP_PATH_MAX];
        if (fp_config_path(&env.cfg, env.cfg.audit_key, kpath, sizeof(kpath), &err) != FP_ERR_OK ||
            fp_signer_open_file(kpath, pass, passlen, &audit_key, &err) != FP_ERR_OK) {
            fp_err_prefix(&err, "[server] audit_key: ");
            rc = cli_fail(&err);
            goto out;
        }
    }
    fp_passphrase_free(pass, passlen);
    pass = NULL;
    /* every key the server uses is open: the signer takes no new ones, and
     * the network side stops being root */
    if ((signer != NULL && fp_privsep_seal(signer, &err) != FP_ERR_OK) ||
        drop_privileges(&env.cfg, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    /* from the announcement on, a SIGTERM means a clean stop (a test or
     * supervisor may send it the moment the addr file appears) */
    fp_http_signals_early();
    fprintf(stderr, "listening https=%s http=%s\n", fp_http_server_addr(srv, FP_HTTP_TLS),
            fp_http_server_addr(srv, FP_HTTP_PLAIN));
    fflush(stderr);
    if (addr_file != NULL) {
        char text[256];
        int n = snprintf(text, sizeof(text), "https=%s\nhttp=%s\n",
                         fp_http_server_addr(srv, FP_HTTP_TLS), fp_http_server_addr(srv, FP_HTTP_PLAIN));
        if (fp_file_replace(addr_file, text, (size_t)n, 0644, &err) != FP_ERR_OK) {
            rc = cli_fail(&err);
            goto out;
        }
    }
    if (audit_key != NULL) {
        char store[FP_PATH_MAX], file[FP_PATH_MAX];
        if (fp_config_path(&env.cfg, env.cfg.store_path, store, sizeof(store), &err) != FP_ERR_OK ||
            fp_config_path(&env.cfg, env.cfg.audit_checkpoint_file, file, sizeof(file), &err) !=
                FP_ERR_OK ||
            fp_checkpointer_start(store, audit_key, file, env.cfg.audit_checkpoint_seconds,
                                  env.cfg.audit_checkpoint_syslog, &checkpointer, &err) !=
                FP_ERR_OK) {
            rc = cli_fail(&err);
            goto out;
        }
    }
    if (fp_http_server_run(srv, true, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    fp_log(FP_LOG_INFO, "stopped");
out:
    /* the shutdown checkpoint: after the last request was answered */
    fp_checkpointer_stop(checkpointer);
    fp_signer_free(audit_key);
    fp_http_server_free(srv);
    fp_registry_free(registry);
    fp_passphrase_free(pass, passlen);
    cli_env_close(&env);
    fp_privsep_free(signer); /* after every key that used it */
    return rc;
}
