/* cmd_ca.c - `fleetpki init` and `fleetpki check-config`. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../keys/offline.h"
#include "../x509/x509util.h"
#include "cli.h"

static const char init_help[] =
    "usage: fleetpki init [--dir DIR] [--algo p256|p384|ed25519|rsa3072] [--name ORG]\n"
    "                     [--passphrase-file F] [--pkcs11 URI] [--force] [--json]\n"
    "                     [--offline-root DIR [--root-passphrase-file F]] [--store-url URL]\n"
    "\n"
    "Creates in DIR (default ./fleetpki-data): a self-signed root CA (20 years),\n"
    "an issuing CA signed by it (10 years), a TLS server certificate and an OCSP\n"
    "signer certificate, the SQLite store and fleetpki.conf.  Keys are written\n"
    "with mode 0600; with --passphrase-file or FLEETPKI_PASSPHRASE they are\n"
    "PKCS#8-encrypted (scrypt, AES-256-CBC).  An existing CA is never\n"
    "overwritten: init refuses, or with --force moves it to DIR/backup-<time>/.\n"
    "With --pkcs11 'pkcs11:token=T?module-path=M' the root, issuing and OCSP\n"
    "keys are generated inside that PKCS#11 token (non-exportable), labelled\n"
    "fleetpki-root, -issuing, -ocsp; the PIN comes from FP_PKCS11_PIN or the\n"
    "URI's pin-source=file:PATH (docs/keys.md).\n"
    "With --offline-root DIR the root key is written only to DIR (removable\n"
    "media), encrypted with the root passphrase (--root-passphrase-file,\n"
    "FLEETPKI_ROOT_PASSPHRASE); no root key stays in the data directory.\n"
    "--store-url puts the store in a PostgreSQL database instead ([store] url,\n"
    "a libpq URI or key=value connection string; see docs/postgresql.md).\n";

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"algo", required_argument, NULL, 'a'},
        {"name", required_argument, NULL, 'n'},
        {"force", no_argument, NULL, 'f'},
        {"pkcs11", required_argument, NULL, 'K'},
        {"offline-root", required_argument, NULL, 'O'},
        {"root-passphrase-file", required_argument, NULL, 'R'},
        {"store-url", required_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_init_opts o = {0};
    const char *root_pass_file = NULL;
    char *root_pass = NULL;
    size_t root_passlen = 0;
    fp_error err = {0};
    char *pass = NULL;
    size_t passlen = 0;
    int c, rc;

    while ((c = getopt_long(argc, argv, "d:a:n:fhjK:O:R:", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'a':
            o.algo = optarg;
            break;
        case 'n':
            o.org = optarg;
            break;
        case 'f':
            o.force = true;
            break;
        case 'K':
            o.pkcs11 = optarg;
            break;
        case 'O':
            o.offline_root = optarg;
            break;
        case 'R':
            root_pass_file = optarg;
            break;
        case 'U':
            o.store_url = optarg;
            break;
        case 'h':
            fputs(init_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("init", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("init", "unexpected argument '%s'", argv[optind]);
    o.dir = env.dir ? env.dir : getenv("FLEETPKI_DIR");
    if (o.dir == NULL || !*o.dir)
        o.dir = "./fleetpki-data";
    if ((rc = fp_passphrase_load(env.passphrase_file, &pass, &passlen, &err)) != FP_ERR_OK)
        return cli_fail(&err);
    o.pass = pass;
    o.passlen = passlen;
    if (o.offline_root != NULL &&
        fp_root_passphrase_load(root_pass_file, NULL, 0, &root_pass, &root_passlen, &err) !=
            FP_ERR_OK) {
        fp_passphrase_free(pass, passlen);
        return cli_fail(&err);
    }
    o.root_pass = root_pass;
    o.root_passlen = root_passlen;
    rc = fp_ca_init(&o, &err);
    fp_passphrase_free(pass, passlen);
    fp_passphrase_free(root_pass, root_passlen);
    if (rc != FP_ERR_OK)
        return cli_fail(&err);
    if (env.json) {
        json_t *j = json_pack("{s:s, s:s, s:b, s:s?}", "dir", o.dir, "algo", o.algo,
                              "encrypted", passlen > 0, "backup",
                              o.backup_dir[0] ? o.backup_dir : NULL);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        if (o.backup_dir[0])
            printf("previous CA moved to %s\n", o.backup_dir);
        printf("created CA in %s (%s, keys %s)\n"
               "  root CA:     %s/root.crt   (%s)\n"
               "  issuing CA:  %s/issuing.crt\n"
               "  TLS server:  %s/tls.crt\n"
               "  OCSP signer: %s/ocsp.crt\n"
               "  config:      %s/fleetpki.conf\n",
               o.dir, o.algo, passlen ? "encrypted" : "NOT encrypted (no passphrase given)",
               o.dir, o.offline_root ? "key offline, only in --offline-root"
                      : o.pkcs11 ? "key in the token" : "move root.key offline once set up",
               o.dir, o.dir, o.dir, o.dir);
    }
    return EXIT_OK;
}

static const char check_help[] =
    "usage: fleetpki check-config [--dir DIR]\n"
    "\nParses DIR/fleetpki.conf and checks every option and profile; prints\n"
    "'ok' or the first error with its line number.\n";

int cmd_check_config(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTS, {NULL, 0, NULL, 0}};
    cli_env env = {0};
    fp_error err = {0};
    int c;

    while ((c = getopt_long(argc, argv, "d:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        if (c == 'h') {
            fputs(check_help, stdout);
            return EXIT_OK;
        }
        return cli_usage_error("check-config", "unknown option");
    }
    if (optind != argc)
        return cli_usage_error("check-config", "unexpected argument '%s'", argv[optind]);
    if (cli_load_config(&env, &err) != FP_ERR_OK)
        return cli_fail(&err);
    printf("ok: %s/%s (%d profiles)\n", env.dir, FP_CONFIG_FILE, env.cfg.n_profiles);
    return EXIT_OK;
}
