/* cmd_apikey.c - `fleetpki apikey create|list|revoke`: API keys of the
 * admin REST API (docs/api.md).  The secret is printed once. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "../api/apikey.h"
#include "../common/util.h"
#include "cli.h"

static const char apikey_help[] =
    "usage: fleetpki apikey create (--project P [--read-only] | --admin) [--dir DIR] [--json]\n"
    "       fleetpki apikey list [--project P] [--dir DIR] [--json]\n"
    "       fleetpki apikey revoke ID [--dir DIR]\n"
    "\nAPI keys authenticate the admin REST API (/api/v1, docs/api.md) as\n"
    "'Authorization: Bearer <id>.<secret>'.  A project key sees only its project;\n"
    "an --admin key sees every project.  --read-only keys may only read.  The\n"
    "secret is printed ONCE; only its SHA-256 is stored.\n";

static int print_key(void *arg, const fp_apikey_rec *k)
{
    json_t *arr = arg;
    if (arr != NULL) {
        json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:I, s:I}", "id", k->id, "project",
                                             k->project, "read_only", k->read_only,
                                             "created_at", (json_int_t)k->created_at,
                                             "revoked_at", (json_int_t)k->revoked_at));
        return FP_ERR_OK;
    }
    printf("%-17s %-20s %-10s %s\n", k->id, k->project[0] ? k->project : "(admin)",
           k->read_only ? "read-only" : "read-write", k->revoked_at ? "revoked" : "active");
    return FP_ERR_OK;
}

int cmd_apikey(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"project", required_argument, NULL, 'p'},
        {"read-only", no_argument, NULL, 'r'},
        {"admin", no_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    const char *verb, *project = NULL, *id = NULL;
    bool read_only = false, admin = false;
    char token[FP_APIKEY_TOKEN_MAX] = "";
    fp_apikey_rec k;
    fp_audit_event ev;
    int c, rc = EXIT_OK;

    if (argc < 2)
        return cli_usage_error("apikey", "expected 'apikey create|list|revoke'");
    verb = argv[1];
    if (!strcmp(verb, "--help") || !strcmp(verb, "-h")) {
        fputs(apikey_help, stdout);
        return EXIT_OK;
    }
    if (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "revoke"))
        return cli_usage_error("apikey", "expected 'apikey create|list|revoke'");
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "d:P:p:rahj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'p':
            project = optarg;
            break;
        case 'r':
            read_only = true;
            break;
        case 'a':
            admin = true;
            break;
        case 'h':
            fputs(apikey_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("apikey", "unknown option");
        }
    }
    if (!strcmp(verb, "revoke")) {
        if (optind + 1 != argc)
            return cli_usage_error("apikey", "revoke takes one key id");
        id = argv[optind];
    } else if (optind != argc) {
        return cli_usage_error("apikey", "unexpected argument '%s'", argv[optind]);
    }
    if (!strcmp(verb, "create") && (admin == (project != NULL)))
        return cli_usage_error("apikey", "create needs exactly one of --project P or --admin");
    if (strcmp(verb, "create") && (admin || read_only))
        return cli_usage_error("apikey", "--admin and --read-only go with 'create'");
    if (cli_open_store(&env, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    if (!strcmp(verb, "list")) {
        json_t *arr = env.json ? json_array() : NULL;
        if (fp_store_apikey_list(env.store, project, print_key, arr, &err) != FP_ERR_OK) {
            json_decref(arr);
            rc = cli_fail(&err);
            goto out;
        }
        if (arr != NULL) {
            json_dumpf(arr, stdout, JSON_INDENT(2));
            putchar('\n');
            json_decref(arr);
        }
        goto out;
    }
    if (!strcmp(verb, "revoke")) {
        ev = (fp_audit_event){.actor = cli_actor(), .action = "apikey.revoke", .object = id,
                              .detail = "", .project = ""};
        if (fp_store_apikey_revoke(env.store, id, fp_now(), &ev, &err) != FP_ERR_OK)
            rc = cli_fail(&err);
        else
            printf("revoked API key %s\n", id);
        goto out;
    }
    memset(&k, 0, sizeof(k));
    if (fp_apikey_generate(k.id, token, k.hash, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    snprintf(k.project, sizeof(k.project), "%s", admin ? "" : project);
    k.read_only = read_only;
    k.created_at = fp_now();
    ev = (fp_audit_event){.actor = cli_actor(), .action = "apikey.create", .object = k.id,
                          .detail = read_only ? "read-only" : "read-write",
                          .project = k.project};
    if (fp_store_apikey_put(env.store, &k, &ev, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    if (env.json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:b}", "id", k.id, "token", token, "project",
                              k.project, "read_only", read_only);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("id:    %s\ntoken: %s\n", k.id, token);
        printf("# send as 'Authorization: Bearer %s'\n"
               "# the secret is not stored and cannot be shown again\n", token);
    }
out:
    OPENSSL_cleanse(token, sizeof(token));
    cli_env_close(&env);
    return rc;
}
