/* cmd_project.c - `fleetpki project`, `ca`, `root`: tenants and their CAs. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../ca/admin.h"
#include "../ca/resign.h"
#include "../common/util.h"
#include "../ca/rollover.h"
#include "../keys/offline.h"
#include "../x509/x509util.h"
#include "cli.h"

static const char project_help[] =
    "usage: fleetpki project create NAME [--algo p256|p384|p521|ed25519|rsa3072] [--dir DIR]\n"
    "                              [--pkcs11 URI] [--root-key F [--root-passphrase-file F]]\n"
    "       fleetpki project list [--dir DIR] [--json]\n"
    "\nA project (tenant) owns its issuing CAs, trust roots, EST labels\n"
    "([est LABEL] project = NAME), tokens and certificates; nothing of one\n"
    "project authenticates or enrolls in another.  'create' makes the project\n"
    "and its first issuing CA, signed by the root (whose key must be online,\n"
    "or given for the ceremony with --root-key; see 'ca create').\n"
    "NAME: a-z, 0-9, '-', '_', at most 63, starting with a letter or digit.\n";

static const char ca_help[] =
    "usage: fleetpki ca list [--project P] [--dir DIR] [--json]\n"
    "       fleetpki ca create --project P [--algo ALGO] [--pkcs11 URI]\n"
    "                          [--root-key F [--root-passphrase-file F]] [--dir DIR]\n"
    "       fleetpki ca import --project P --cert FILE --key FILE [--dir DIR]\n"
    "       fleetpki ca activate ID [--dir DIR]\n"
    "       fleetpki ca resign ID --root-key F [--root-passphrase-file F] [--days N]\n"
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
    "non-exportable, labelled fleetpki-<id> (docs/keys.md).  With an offline\n"
    "root, --root-key F is the ceremony: the root key file from removable\n"
    "media (passphrase: --root-passphrase-file, FLEETPKI_ROOT_PASSPHRASE).\n"
    "'resign' is the ceremony for an existing issuing CA: the same key and\n"
    "subject, a new serial and a validity of N days (default 3652) from now,\n"
    "signed by the offline root key F; it replaces the CA's certificate (store\n"
    "and file), and the server uses it after a restart (docs/keys.md).\n";

static const char root_help[] =
    "usage: fleetpki root add --project P FILE [--dir DIR] [--json]\n"
    "       fleetpki root rollover --new-root-dir DIR [--root-key F] [--algo ALGO]\n"
    "                              [--root-passphrase-file F] [--dir DIR]\n"
    "\nAdds a bring-your-own root or factory CA to P: devices whose certificate\n"
    "chains to it authenticate on P's EST labels.  fleetpki never holds its key\n"
    "and never signs with it.  FILE: PEM (the certificate first, then its chain\n"
    "up to a self-signed root if it is not self-signed) or one DER certificate.\n"
    "Refused, naming the rule: not a CA certificate (rule 'ca'), expired or not\n"
    "yet valid ('validity'), weak key ('key'), a chain that does not verify\n"
    "('chain').  List them with 'fleetpki ca list'.\n"
    "\n'rollover' makes a new root (key encrypted to --new-root-dir, offline) and\n"
    "the cross certificates NewWithOld and OldWithNew (RFC 4210 4.4), written\n"
    "to DATA/rollover/ and served by EST cacerts (RFC 7030 4.1.3) once the\n"
    "server restarts.  The current root key: --root-key F (offline) or the\n"
    "config's.  Both keys use the root passphrase (docs/keys.md).\n";

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
    const char *project, *algo, *cert, *key, *pkcs11, *root_key, *root_pass_file, *days;
} admin_opts;

/* The ceremony's root key and its passphrase (docs/keys.md). */
static int create_opts(cli_env *env, const admin_opts *o, fp_ca_create_opts *co, char **pass,
                       size_t *passlen, fp_error *err)
{
    *pass = NULL;
    *passlen = 0;
    *co = (fp_ca_create_opts){.algo = o->algo, .pkcs11 = o->pkcs11, .root_key = o->root_key};
    if (o->root_key == NULL)
        return FP_ERR_OK;
    if (fp_root_passphrase_load(o->root_pass_file, env->pass, env->passlen, pass, passlen,
                                err) != FP_ERR_OK)
        return err->code;
    co->root_pass = *pass;
    co->root_passlen = *passlen;
    return FP_ERR_OK;
}

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
        {"root-key", required_argument, NULL, 'R'},
        {"root-passphrase-file", required_argument, NULL, 'Q'},
        {"days", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "d:P:p:a:c:k:K:R:Q:D:hj", opts, NULL)) != -1) {
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
        case 'R':
            o->root_key = optarg;
            break;
        case 'Q':
            o->root_pass_file = optarg;
            break;
        case 'D':
            o->days = optarg;
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
    fp_ca_create_opts co;
    char *rpass = NULL;
    size_t rpasslen = 0;
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
        create_opts(&env, &o, &co, &rpass, &rpasslen, &err) != FP_ERR_OK ||
        fp_admin_project_create_ex(&a, argv[optind], &co, ca_id, &err) != FP_ERR_OK)
        rc = cli_fail(&err);
    else
        print_created(&env, "project", argv[optind], ca_id);
    fp_passphrase_free(rpass, rpasslen);
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
    fp_ca_create_opts co;
    char *rpass = NULL;
    size_t rpasslen = 0;
    int rc = EXIT_OK;

    if ((rc = help_first(argc, argv, ca_help)) >= 0)
        return rc;
    rc = EXIT_OK;
    sub = argv[1];
    if (strcmp(sub, "list") && strcmp(sub, "create") && strcmp(sub, "import") &&
        strcmp(sub, "activate") && strcmp(sub, "resign"))
        return cli_usage_error("ca", "expected 'ca list', 'ca create', 'ca import', "
                                     "'ca activate' or 'ca resign'");
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
    if (!strcmp(sub, "resign")) {
        fp_ca_resign_opts ro = {0};
        char serial[80] = "", *end = NULL;
        if (optind + 1 != argc)
            return cli_usage_error("ca", "resign takes one CA id");
        if (o.root_key == NULL)
            return cli_usage_error("ca", "resign needs --root-key F (the offline root key)");
        if (o.days != NULL) {
            long d = strtol(o.days, &end, 10);
            if (end == o.days || *end != '\0' || d < 1 || d > 36525)
                return cli_usage_error("ca", "--days: a number of days, 1..36525");
            ro.days = (int)d;
        }
        ro.root_key = o.root_key;
        if (admin_open(&env, &a, &err) != FP_ERR_OK ||
            create_opts(&env, &o, &co, &rpass, &rpasslen, &err) != FP_ERR_OK) {
            rc = cli_fail(&err);
        } else {
            ro.root_pass = co.root_pass;
            ro.root_passlen = co.root_passlen;
            if (fp_admin_ca_resign(&a, argv[optind], &ro, serial, &err) != FP_ERR_OK)
                rc = cli_fail(&err);
            else
                printf("CA %s re-signed by the root: new certificate serial %s "
                       "(restart the server to use it)\n", argv[optind], serial);
        }
        fp_passphrase_free(rpass, rpasslen);
        cli_env_close(&env);
        return rc;
    }
    if (o.days != NULL)
        return cli_usage_error("ca", "--days is for 'ca resign'");
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
    if ((o.pkcs11 != NULL || o.root_key != NULL) && strcmp(sub, "create"))
        return cli_usage_error("ca", "--pkcs11 and --root-key are for 'ca create'");
    if (admin_open(&env, &a, &err) != FP_ERR_OK ||
        create_opts(&env, &o, &co, &rpass, &rpasslen, &err) != FP_ERR_OK ||
        (!strcmp(sub, "create") ? fp_admin_ca_create_ex(&a, o.project, &co, ca_id, &err)
                                : fp_admin_ca_import(&a, o.project, o.cert, o.key, ca_id, &err)) !=
            FP_ERR_OK)
        rc = cli_fail(&err);
    else
        print_created(&env, "project", o.project, ca_id);
    fp_passphrase_free(rpass, rpasslen);
    cli_env_close(&env);
    return rc;
}

static int root_rollover(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"new-root-dir", required_argument, NULL, 'N'},
        {"root-key", required_argument, NULL, 'R'},
        {"root-passphrase-file", required_argument, NULL, 'Q'},
        {"algo", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    fp_rollover_opts ro = {0};
    const char *pass_file = NULL;
    char *rpass = NULL;
    size_t rpasslen = 0;
    fp_admin a;
    int c, rc = EXIT_OK;

    optind = 1;
    while ((c = getopt_long(argc, argv, "d:P:N:R:Q:a:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'N':
            ro.new_dir = optarg;
            break;
        case 'R':
            ro.old_key = optarg;
            break;
        case 'Q':
            pass_file = optarg;
            break;
        case 'a':
            ro.algo = optarg;
            break;
        case 'h':
            fputs(root_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("root", "unknown option");
        }
    }
    if (optind != argc || ro.new_dir == NULL)
        return cli_usage_error("root", "rollover needs --new-root-dir DIR");
    if (admin_open(&env, &a, &err) != FP_ERR_OK ||
        fp_root_passphrase_load(pass_file, env.pass, env.passlen, &rpass, &rpasslen, &err) !=
            FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    ro.old_pass = ro.new_pass = rpass;
    ro.old_passlen = ro.new_passlen = rpasslen;
    if (fp_root_rollover(&a, &ro, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    printf("new root in %s (offline); NewWithOld, OldWithNew and the new root in %s/%s/\n",
           ro.new_dir, env.dir, FP_ROLLOVER_DIR);
out:
    fp_passphrase_free(rpass, rpasslen);
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
    if (!strcmp(argv[1], "rollover"))
        return root_rollover(argc - 1, argv + 1);
    if (strcmp(argv[1], "add"))
        return cli_usage_error("root", "expected 'root add' or 'root rollover'");
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
