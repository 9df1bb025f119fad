/* cmd_project.c - `fleetpki project`, `ca`, `root`: tenants and their CAs. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../ca/admin.h"
#include "../common/util.h"
#include "cli.h"

static const char project_help[] =
    "usage: fleetpki project create NAME [--algo p256|p384|p521|ed25519|rsa3072] [--dir DIR]\n"
    "       fleetpki project list [--dir DIR] [--json]\n"
    "\nA project (tenant) owns its issuing CAs, trust roots, EST labels\n"
    "([est LABEL] project = NAME), tokens and certificates; nothing of one\n"
    "project authenticates or enrolls in another.  'create' makes the project\n"
    "and its first issuing CA, signed by the root (whose key must be online).\n"
    "NAME: a-z, 0-9, '-', '_', at most 63, starting with a letter or digit.\n";

static const char ca_help[] =
    "usage: fleetpki ca list [--project P] [--dir DIR] [--json]\n"
    "       fleetpki ca create --project P [--algo ALGO] [--pkcs11 URI] [--dir DIR]\n"
    "       fleetpki ca import --project P --cert FILE --key FILE [--dir DIR]\n"
    "       fleetpki ca activate ID [--dir DIR]\n"
    "\n'create' makes a new issuing CA for P signed by the root and makes it P's\n"
    "active CA (new certificates come from it; earlier CAs keep answering CRL\n"
    "and OCSP for theirs).  'import' brings in a CA made elsewhere: it must be a\n"
    "CA certificate (basicConstraints CA:TRUE, keyCertSign) inside its validity,\n"
    "signed by the root or by one of P's trust roots ('fleetpki root add'), and\n"
    "the key must be its key; the key is stored again under the data\n"
    "directory's passphrase.  'activate' makes an issuing CA its project's\n"
    "active one again (a rollback).  Files: DIR/ca/<id>/.  The server loads\n"
    "CAs when it starts: restart it after any of these.  With --pkcs11\n"
    "'pkcs11:token=T' the new CA's key is generated inside that token,\n"
    "non-exportable, labelled fleetpki-<id> (docs/keys.md).\n";

static const char root_help[] =
    "usage: fleetpki root add --project P FILE [--dir DIR] [--json]\n"
    "\nAdds a bring-your-own root or factory CA to P: devices whose certificate\n"
    "chains to it authenticate on P's EST labels.  fleetpki never holds its key\n"
    "and never signs with it.  FILE: PEM (the certificate first, then its chain\n"
    "up to a self-signed root if it is not self-signed) or one DER certificate.\n"
    "Refused, naming the rule: not a CA certificate (rule 'ca'), expired or not\n"
    "yet valid ('validity'), weak key ('key'), a chain that does not verify\n"
    "('chain').  List them with 'fleetpki ca list'.\n";

/* No sub-command (usage on stderr, EXIT_USAGE) or --help (EXIT_OK);
 * -1 when argv[1] is a sub-command. */
static int help_first(int argc, char **argv, const char *help)
{
    if (argc >= 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))
        return -1;
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
}

static int admin_open(cli_env *env, fp_admin *a, fp_error *err)
{
    int rc;
    if ((rc = cli_open_store(env, err)) != FP_ERR_OK ||
        (rc = cli_load_passphrase(env, err)) != FP_ERR_OK)
        return rc;
    *a = (fp_admin){&env->cfg, env->store, env->pass, env->passlen, cli_actor()};
    return FP_ERR_OK;
}

static void print_created(const cli_env *env, const char *what, const char *name,
                          const char *ca_id)
{
    if (env->json) {
        json_t *j = json_pack("{s:s, s:s}", what, name, "ca", ca_id);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("%s %s: issuing CA %s\n", what, name, ca_id);
    }
}

/* Shared option parsing of the three commands. */
typedef struct {
    const char *project, *algo, *cert, *key, *pkcs11;
} admin_opts;

static int parse(cli_env *env, int argc, char **argv, const char *cmd, const char *help,
                 admin_opts *o)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"project", required_argument, NULL, 'p'},
        {"algo", required_argument, NULL, 'a'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"pkcs11", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "d:P:p:a:c:k:K:hj", opts, NULL)) != -1) {
        if (cli_common_opt(env, c, optarg))
            continue;
        switch (c) {
        case 'p':
            o->project = optarg;
            break;
        case 'a':
            o->algo = optarg;
            break;
        case 'c':
            o->cert = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'K':
            o->pkcs11 = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error(cmd, "unknown option");
        }
    }
    return -1;
}

static int list_project(void *arg, const fp_project_rec *p)
{
    json_t *arr = arg;
    if (arr != NULL)
        return json_array_append_new(arr, json_pack("{s:s, s:I}", "name", p->name, "created_at",
                                                     (json_int_t)p->created_at)) == 0
                   ? FP_ERR_OK : FP_ERR_NOMEM;
    printf("%s\n", p->name);
    return FP_ERR_OK;
}

int cmd_project(int argc, char **argv)
{
    cli_env env = {0};
    fp_error err = {0};
    admin_opts o = {0};
    const char *sub;
    char ca_id[64] = "";
    fp_admin a;
    int rc = EXIT_OK;

    if ((rc = help_first(argc, argv, project_help)) >= 0)
        return rc;
    rc = EXIT_OK;
    sub = argv[1];
    if (strcmp(sub, "create") && strcmp(sub, "list"))
        return cli_usage_error("project", "expected 'project create' or 'project list'");
    if ((rc = parse(&env, argc - 1, argv + 1, "project", project_help, &o)) >= 0)
        return rc;
    rc = EXIT_OK;
    optind++; /* argv was shifted by one for getopt */
    if (!strcmp(sub, "list")) {
        json_t *arr = env.json ? json_array() : NULL;
        if (optind != argc)
            return cli_usage_error("project", "unexpected argument '%s'", argv[optind]);
        if (cli_open_store(&env, &err) != FP_ERR_OK ||
            fp_store_project_list(env.store, list_project, arr, &err) != FP_ERR_OK)
            rc = cli_fail(&err);
        else if (arr != NULL) {
            json_dumpf(arr, stdout, JSON_INDENT(2));
            putchar('\n');
        }
        json_decref(arr);
        cli_env_close(&env);
        return rc;
    }
    if (optind + 1 != argc)
        return cli_usage_error("project", "expected one project NAME");
    if (!fp_project_name_ok(argv[optind]))
        return cli_usage_error("project", "'%s' is not a project name (a-z, 0-9, '-', '_'; at "
                                          "most 63, starting with a letter or digit)",
                               argv[optind]);
    if (admin_open(&env, &a, &err) != FP_ERR_OK ||
        fp_admin_project_create(&a, argv[optind], o.algo, ca_id, &err) != FP_ERR_OK)
        rc = cli_fail(&err);
    else
        print_created(&env, "project", argv[optind], ca_id);
    cli_env_close(&env);
    return rc;
}

static const char *kind_name(int kind)
{
    return kind == FP_CA_ROOT ? "root" : kind == FP_CA_ISSUING ? "issuing" : "trust-root";
}

static int list_ca(void *arg, const fp_ca_rec *r)
{
    json_t *arr = arg;
    if (arr != NULL)
        return json_array_append_new(
                   arr, json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I}", "id", r->id,
                                  "project", r->project, "kind", kind_name(r->kind), "parent",
                                  r->parent_id, "active", r->active, "subject",
                                  r->subject ? r->subject : "", "not_before",
                                  (json_int_t)r->not_before, "not_after",
                                  (json_int_t)r->not_after)) == 0
                   ? FP_ERR_OK : FP_ERR_NOMEM;
    printf("%-24s %-16s %-10s %-6s %s\n", r->id, r->project[0] ? r->project : "-",
           kind_name(r->kind), r->active ? "active" : "", r->subject ? r->subject : "");
    return FP_ERR_OK;
}

int cmd_ca(int argc, char **argv)
{
    cli_env env = {0};
    fp_error err = {0};
    admin_opts o = {0};
    const char *sub;
    char ca_id[64] = "";
    fp_admin a;
    int rc = EXIT_OK;

    if ((rc = help_first(argc, argv, ca_help)) >= 0)
        return rc;
    rc = EXIT_OK;
    sub = argv[1];
    if (strcmp(sub, "list") && strcmp(sub, "create") && strcmp(sub, "import") &&
        strcmp(sub, "activate"))
        return cli_usage_error("ca", "expected 'ca list', 'ca create', 'ca import' or "
                                     "'ca activate'");
    if ((rc = parse(&env, argc - 1, argv + 1, "ca", ca_help, &o)) >= 0)
        return rc;
    rc = EXIT_OK;
    optind++;
    if (!strcmp(sub, "activate")) {
        if (optind + 1 != argc)
            return cli_usage_error("ca", "activate takes one CA id");
        if (admin_open(&env, &a, &err) != FP_ERR_OK ||
            fp_admin_ca_activate(&a, argv[optind], &err) != FP_ERR_OK)
            rc = cli_fail(&err);
        else
            printf("CA %s is now its project's active CA\n", argv[optind]);
        cli_env_close(&env);
        return rc;
    }
    if (optind != argc)
        return cli_usage_error("ca", "unexpected argument '%s'", argv[optind]);
    if (!strcmp(sub, "list")) {
        json_t *arr = env.json ? json_array() : NULL;
        if (cli_open_store(&env, &err) != FP_ERR_OK ||
            fp_store_ca_list(env.store, o.project, -1, list_ca, arr, &err) != FP_ERR_OK)
            rc = cli_fail(&err);
        else if (arr != NULL) {
            json_dumpf(arr, stdout, JSON_INDENT(2));
            putchar('\n');
        }
        json_decref(arr);
        cli_env_close(&env);
        return rc;
    }
    if (o.project == NULL)
        return cli_usage_error("ca", "--project is required");
    if (!strcmp(sub, "import") && (o.cert == NULL || o.key == NULL))
        return cli_usage_error("ca", "import needs --cert and --key");
    if (o.pkcs11 != NULL && strcmp(sub, "create"))
        return cli_usage_error("ca", "--pkcs11 is for 'ca create'");
    if (admin_open(&env, &a, &err) != FP_ERR_OK ||
        (!strcmp(sub, "create") ? fp_admin_ca_create_in(&a, o.project, o.algo, o.pkcs11, ca_id, &err)
                                : fp_admin_ca_import(&a, o.project, o.cert, o.key, ca_id, &err)) !=
            FP_ERR_OK)
        rc = cli_fail(&err);
    else
        print_created(&env, "project", o.project, ca_id);
    cli_env_close(&env);
    return rc;
}

int cmd_root(int argc, char **argv)
{
    cli_env env = {0};
    fp_error err = {0};
    admin_opts o = {0};
    char id[64] = "";
    fp_admin a;
    int rc = EXIT_OK;

    if ((rc = help_first(argc, argv, root_help)) >= 0)
        return rc;
    rc = EXIT_OK;
    if (strcmp(argv[1], "add"))
        return cli_usage_error("root", "expected 'root add'");
    if ((rc = parse(&env, argc - 1, argv + 1, "root", root_help, &o)) >= 0)
        return rc;
    rc = EXIT_OK;
    optind++;
    if (optind + 1 != argc)
        return cli_usage_error("root", "expected one certificate FILE");
    if (o.project == NULL)
        return cli_usage_error("root", "--project is required");
    if (admin_open(&env, &a, &err) != FP_ERR_OK ||
        fp_admin_root_add(&a, o.project, argv[optind], id, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
    } else if (env.json) {
        json_t *j = json_pack("{s:s, s:s}", "project", o.project, "root", id);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("project %s: trust root %s\n", o.project, id);
    }
    cli_env_close(&env);
    return rc;
}
