/* cmd_device.c - `fleetpki device list|show|suspend|resume|decommission|
 * tag|naming --project P ...`: the device registry (src/registry), the
 * same calls the admin API makes. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../common/util.h"
#include "../registry/device_json.h"
#include "../registry/registry.h"
#include "cli.h"

static const char device_help[] =
    "usage: fleetpki device list --project P [--state S] [--tag KEY[=VALUE]] [--prefix NAME]\n"
    "                           [--after NAME] [--limit N] [--dir DIR] [--json]\n"
    "       fleetpki device show --project P NAME [--json]\n"
    "       fleetpki device suspend|resume|decommission --project P NAME [--json]\n"
    "       fleetpki device tag --project P NAME KEY=VALUE | KEY --delete\n"
    "       fleetpki device naming --project P [cn|san-uri|san-dns|serialnumber]\n"
    "\nDevices are registered on first contact (EST client-certificate auth, CMP\n"
    "signature, the device API) and when a certificate is issued to them (every\n"
    "front end: issue, approve, EST, CMP, SCEP; it is listed under the device),\n"
    "named from their certificate by the project's naming rule\n"
    "(default cn; `device naming` shows or sets it).  suspend refuses the device\n"
    "from its next request on; resume lifts that; decommission revokes every\n"
    "certificate of the device we issued (cessationOfOperation) and refuses it for\n"
    "good.  list pages by name: pass the last name printed as --after (limit\n"
    "1..1000, default 100).  docs/registry.md has the details.\n";

typedef struct {
    json_t *arr;
    int n;
    char last[FP_DEVICE_NAME_MAX];
} list_ctx;

static void print_device(const fp_device_rec *r)
{
    char esc[FP_LOG_ESCAPED_MAX(FP_DEVICE_NAME_MAX)];
    printf("%s\t%s\tfirst_seen=%" PRId64 "\tlast_seen=%" PRId64 "\ttags=%s\n",
           fp_log_escape(esc, sizeof(esc), r->name), fp_dev_state_name(r->state), r->first_seen,
           r->last_seen, r->tags);
}

static int list_cb(void *arg, const fp_device_rec *r)
{
    list_ctx *c = arg;
    c->n++;
    snprintf(c->last, sizeof(c->last), "%s", r->name);
    if (c->arr != NULL)
        return json_array_append_new(c->arr, fp_device_json(r)) == 0 ? 0 : 1;
    print_device(r);
    return 0;
}

static int certs_cb(void *arg, const fp_cert_rec *c)
{
    json_t *arr = arg;
    if (arr != NULL)
        return json_array_append_new(arr, fp_device_cert_json(c)) == 0 ? 0 : 1;
    printf("  cert %s\t%s\t%s\t%s\n", c->serial, c->ca_id[0] ? "ours" : "byo",
           c->status == FP_CERT_REVOKED ? "revoked" : "valid", c->subject ? c->subject : "");
    return 0;
}

static int show(cli_env *env, const char *project, const char *name, fp_error *err)
{
    fp_device_rec d = {0};
    json_t *j = NULL, *certs = NULL;
    int rc;

    if ((rc = fp_registry_device_get(env->store, project, name, &d, err)) != FP_ERR_OK)
        return rc;
    if (env->json) {
        j = fp_device_json(&d);
        certs = json_array();
        if (j == NULL || certs == NULL) {
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
            goto out;
        }
    } else {
        print_device(&d);
    }
    if ((rc = fp_registry_device_certs(env->store, project, name, certs_cb, certs, err)) !=
        FP_ERR_OK)
        goto out;
    if (j != NULL) {
        json_object_set(j, "certificates", certs);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
    }
out:
    json_decref(j);
    json_decref(certs);
    fp_device_rec_clear(&d);
    return rc;
}

int cmd_device(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"project", required_argument, NULL, 'p'},
        {"state", required_argument, NULL, 's'},
        {"tag", required_argument, NULL, 't'},
        {"prefix", required_argument, NULL, 'x'},
        {"after", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'n'},
        {"delete", no_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    fp_device_filter f = {NULL, -1, NULL, NULL, NULL, NULL, 100};
    const char *verb, *project = NULL;
    char *tagbuf = NULL;
    bool del = false;
    int c, rc = EXIT_OK, frc = FP_ERR_OK;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(device_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    verb = argv[1];
    if (strcmp(verb, "list") && strcmp(verb, "show") && strcmp(verb, "suspend") &&
        strcmp(verb, "resume") && strcmp(verb, "decommission") && strcmp(verb, "tag") &&
        strcmp(verb, "naming"))
        return cli_usage_error("device", "unknown verb '%s'", verb);
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "d:P:hjp:s:t:x:a:n:D", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'p':
            project = optarg;
            break;
        case 's':
            if ((f.state = fp_dev_state_from_name(optarg)) < 0)
                return cli_usage_error("device",
                                       "--state: active, suspended or decommissioned");
            break;
        case 't': {
            char *eq;
            free(tagbuf);
            if ((tagbuf = strdup(optarg)) == NULL)
                return cli_usage_error("device", "out of memory");
            f.tag_key = tagbuf;
            if ((eq = strchr(tagbuf, '=')) != NULL) {
                *eq = '\0';
                f.tag_value = eq + 1;
            }
            break;
        }
        case 'x':
            f.name_prefix = optarg;
            break;
        case 'a':
            f.after = optarg;
            break;
        case 'n': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > 1000) {
                free(tagbuf);
                return cli_usage_error("device", "--limit must be 1..1000");
            }
            f.limit = (int)v;
            break;
        }
        case 'D':
            del = true;
            break;
        case 'h':
            fputs(device_help, stdout);
            free(tagbuf);
            return EXIT_OK;
        default:
            free(tagbuf);
            return cli_usage_error("device", "unknown option");
        }
    }
    if (project == NULL) {
        free(tagbuf);
        return cli_usage_error("device", "--project is required");
    }
    if (cli_open_store(&env, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    if (!strcmp(verb, "list")) {
        list_ctx lc = {0};
        if (optind != argc) {
            rc = cli_usage_error("device", "unexpected argument '%s'", argv[optind]);
            goto out;
        }
        f.project = project;
        lc.arr = env.json ? json_array() : NULL;
        frc = fp_registry_device_list(env.store, &f, list_cb, &lc, &err);
        if (frc == FP_ERR_OK && lc.arr != NULL) {
            /* the cursor of the next page, when this one is full */
            json_t *page = json_pack("{s:o, s:s?}", "devices", lc.arr, "next_after",
                                     lc.n == f.limit ? lc.last : NULL);
            json_dumpf(page, stdout, JSON_INDENT(2));
            putchar('\n');
            json_decref(page);
        } else {
            json_decref(lc.arr);
        }
    } else if (!strcmp(verb, "naming")) {
        int rule = 0;
        if (optind == argc) {
            frc = fp_store_device_naming_get(env.store, project, &rule, &err);
        } else if (optind + 1 == argc) {
            fp_audit_event ev = {cli_actor(), "device.naming", project, argv[optind], project};
            if ((rule = fp_devname_rule_from_name(argv[optind])) < 0) {
                rc = cli_usage_error("device", "naming: cn, san-uri, san-dns or serialnumber");
                goto out;
            }
            frc = fp_store_device_naming_set(env.store, project, rule, &ev, &err);
        } else {
            rc = cli_usage_error("device", "naming takes at most one rule");
            goto out;
        }
        if (frc == FP_ERR_OK) {
            if (env.json)
                printf("{\"project\": \"%s\", \"device_name\": \"%s\"}\n", project,
                       fp_devname_rule_name(rule));
            else
                printf("%s\n", fp_devname_rule_name(rule));
        }
    } else {
        const char *name;
        if (optind >= argc) {
            rc = cli_usage_error("device", "%s needs a device NAME", verb);
            goto out;
        }
        name = argv[optind];
        if (!strcmp(verb, "tag")) {
            char *kv = NULL, *eq;
            if (optind + 2 != argc) {
                rc = cli_usage_error("device", "tag needs NAME KEY=VALUE or NAME KEY --delete");
                goto out;
            }
            if ((kv = strdup(argv[optind + 1])) == NULL) {
                frc = fp_err_set(&err, FP_ERR_NOMEM, NULL);
            } else {
                eq = strchr(kv, '=');
                if ((eq == NULL) != del) {
                    free(kv);
                    rc = cli_usage_error("device", "tag: KEY=VALUE sets, KEY --delete deletes");
                    goto out;
                }
                if (eq != NULL)
                    *eq = '\0';
                frc = fp_registry_tag(env.store, project, name, kv, eq ? eq + 1 : NULL,
                                      cli_actor(), &err);
                free(kv);
            }
        } else if (optind + 1 != argc) {
            rc = cli_usage_error("device", "unexpected argument '%s'", argv[optind + 1]);
            goto out;
        } else if (!strcmp(verb, "suspend")) {
            frc = fp_registry_suspend(env.store, project, name, cli_actor(), &err);
        } else if (!strcmp(verb, "resume")) {
            frc = fp_registry_resume(env.store, project, name, cli_actor(), &err);
        } else if (!strcmp(verb, "decommission")) {
            frc = fp_registry_decommission(env.store, project, name, cli_actor(), &err);
        }
        /* every verb ends by showing the device as it now is */
        if (frc == FP_ERR_OK)
            frc = show(&env, project, name, &err);
    }
    if (frc != FP_ERR_OK)
        rc = cli_fail(&err);
out:
    free(tagbuf);
    cli_env_close(&env);
    return rc;
}
