/* cmd_audit.c - `fleetpki audit verify|list`. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <openssl/pem.h>

#include "../audit/checkpoint.h"
#include "cli.h"

static const char audit_help[] =
    "usage: fleetpki audit verify [--checkpoints FILE [--pubkey F]] [--dir DIR] [--json]\n"
    "       fleetpki audit list   [--dir DIR] [--json]\n"
    "\nverify recomputes the hash chain of the audit log and exits 1 if any\n"
    "row was edited, deleted or reordered; list prints every row.  With\n"
    "--checkpoints, every signed checkpoint the server appended to FILE is\n"
    "checked too (signature by the audit key: --pubkey, default [server]\n"
    "audit_pubkey), and the chain must still hold each checkpoint's hash: a\n"
    "rewrite that re-hashed the chain fails, naming the first checkpoint that\n"
    "no longer matches (docs/keys.md).\n";

static int print_row(void *arg, const fp_audit_row *r)
{
    json_t *arr = arg;
    if (arr != NULL) {
        json_array_append_new(arr, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "id",
                                             (json_int_t)r->id, "ts", (json_int_t)r->ts,
                                             "actor", r->actor, "action", r->action, "object",
                                             r->object, "detail", r->detail, "hash", r->hash));
    } else {
        char ts[32];
        time_t t = (time_t)r->ts;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%6" PRId64 " %s %-14s %-12s %s %s\n", r->id, ts, r->action, r->actor,
               r->object, r->detail);
    }
    return FP_ERR_OK;
}

/* The checkpoints of file against the audit public key and the chain. */
static int verify_checkpoints(cli_env *env, const char *file, const char *pub_file)
{
    char path[FP_PATH_MAX];
    EVP_PKEY *pub = NULL;
    BIO *bio = NULL;
    fp_checkpoint_report rep;
    fp_error err = {0};
    int rc = EXIT_OK;

    if (pub_file == NULL) {
        if (fp_config_path(&env->cfg, env->cfg.audit_pubkey, path, sizeof(path), &err) !=
            FP_ERR_OK)
            return cli_fail(&err);
        pub_file = path;
    }
    if ((bio = BIO_new_file(pub_file, "r")) == NULL ||
        (pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) == NULL) {
        BIO_free(bio);
        fp_err_set(&err, FP_ERR_IO, "%s: no PEM public key", pub_file);
        return cli_fail(&err);
    }
    BIO_free(bio);
    if (fp_checkpoint_verify(env->store, file, pub, &rep, &err) != FP_ERR_OK)
        rc = cli_fail(&err);
    else
        printf("checkpoints ok: %d verified, the last at row %" PRId64 "\n", rep.checked,
               rep.last_seq);
    EVP_PKEY_free(pub);
    return rc;
}

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"checkpoints", required_argument, NULL, 'C'},
        {"pubkey", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    const char *sub, *cp_file = NULL, *pub_file = NULL;
    int c, rc = EXIT_OK;

    while ((c = getopt_long(argc, argv, "d:hjC:K:", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        if (c == 'C') {
            cp_file = optarg;
            continue;
        }
        if (c == 'K') {
            pub_file = optarg;
            continue;
        }
        if (c == 'h') {
            fputs(audit_help, stdout);
            return EXIT_OK;
        }
        return cli_usage_error("audit", "unknown option");
    }
    if (optind + 1 != argc)
        return cli_usage_error("audit", "expected 'verify' or 'list'");
    sub = argv[optind];
    if (strcmp(sub, "verify") && strcmp(sub, "list"))
        return cli_usage_error("audit", "unknown subcommand '%s'", sub);
    if (cli_open_store(&env, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    if (!strcmp(sub, "verify")) {
        int64_t rows = 0;
        int vrc = fp_store_audit_verify(env.store, &rows, &err);
        if (env.json) {
            json_t *j = json_pack("{s:b, s:I, s:s?}", "ok", vrc == FP_ERR_OK, "rows",
                                  (json_int_t)rows, "error", vrc == FP_ERR_OK ? NULL : err.msg);
            json_dumpf(j, stdout, JSON_INDENT(2));
            putchar('\n');
            json_decref(j);
        }
        if (vrc != FP_ERR_OK) {
            rc = cli_fail(&err);
            goto out;
        }
        if (!env.json)
            printf("audit log ok: %" PRId64 " rows, chain intact\n", rows);
        if (cp_file != NULL && (rc = verify_checkpoints(&env, cp_file, pub_file)) != EXIT_OK)
            goto out;
    } else {
        json_t *arr = env.json ? json_array() : NULL;
        if (fp_store_audit_iter(env.store, print_row, arr, &err) != FP_ERR_OK)
            rc = cli_fail(&err);
        else if (arr != NULL) {
            json_dumpf(arr, stdout, JSON_INDENT(2));
            putchar('\n');
        }
        json_decref(arr);
    }
out:
    cli_env_close(&env);
    return rc;
}
