/*
 * main.c - `fleetpki` entry point: one table of commands, each in its own
 * function; shared environment handling.
 */
#define _POSIX_C_SOURCE 200809L
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/util.h"
#include "../registry/registry.h"
#include "../x509/x509util.h"
#include "cli.h"

#ifndef FLEETPKI_VERSION
#define FLEETPKI_VERSION "0.1.0"
#endif

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const command commands[] = {
    {"init", cmd_init, "create a root and issuing CA, TLS and OCSP certificates, store, config"},
    {"issue", cmd_issue, "issue a certificate for a CSR under a profile"},
    {"list", cmd_list, "list certificates (filter by status, expiry, profile)"},
    {"show", cmd_show, "show one certificate by serial"},
    {"revoke", cmd_revoke, "revoke a certificate (or lift a certificateHold)"},
    {"crl", cmd_crl, "write a CA's certificate revocation list (DER or PEM)"},
    {"ocsp", cmd_ocsp, "answer an OCSP request offline; renew the OCSP signer"},
    {"serve", cmd_serve, "run the EST server (https) and CRL/OCSP (http)"},
    {"project", cmd_project, "create or list projects (tenants), each with its own issuing CA"},
    {"ca", cmd_ca, "list, create or import issuing CAs of a project"},
    {"root", cmd_root, "add a bring-your-own root (authenticates devices, never signs)"},
    {"factory", cmd_factory, "mint device identities in bulk, offline ('factory mint')"},
    {"device", cmd_device, "the device registry: list, show, suspend, resume, decommission, tag"},
    {"firmware", cmd_firmware, "sign firmware (SUIT / CMS) with the project's code-signing CA; verify"},
    {"token", cmd_token, "create a one-time EST enrollment token ('token create')"},
    {"pending", cmd_pending, "list EST enrollments waiting for manual approval"},
    {"cmp-secret", cmd_cmp_secret, "print the CMP MAC secret of an enrollment token"},
    {"approve", cmd_approve, "approve a held EST enrollment (issues the certificate)"},
    {"reject", cmd_reject, "reject a held EST enrollment"},
    {"apikey", cmd_apikey, "create, list or revoke API keys of the admin REST API"},
    {"audit", cmd_audit, "verify or list the hash-chained audit log"},
    {"check-config", cmd_check_config, "validate fleetpki.conf without starting anything"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "show this help"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: fleetpki <command> [options]\n\ncommands:\n");
    for (const command *c = commands; c->name; c++)
        fprintf(f, "  %-13s %s\n", c->name, c->summary);
    fprintf(f, "\nEvery command accepts --dir DIR (default ./fleetpki-data or $FLEETPKI_DIR)\n"
               "and --help.  Exit codes: 0 ok, 1 failed, 2 usage error, 3 request refused (malformed or against policy).\n");
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("fleetpki %s (%s)\n", FLEETPKI_VERSION, OpenSSL_version(OPENSSL_VERSION));
    return EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    usage(stdout);
    return EXIT_OK;
}

int cli_common_opt(cli_env *env, int c, const char *arg)
{
    switch (c) {
    case 'd':
        env->dir = arg;
        return 1;
    case 'P':
        env->passphrase_file = arg;
        return 1;
    case 'j':
        env->json = true;
        return 1;
    default:
        return 0;
    }
}

int cli_load_config(cli_env *env, fp_error *err)
{
    if (env->dir == NULL) {
        env->dir = getenv("FLEETPKI_DIR");
        if (env->dir == NULL || !*env->dir)
            env->dir = "./fleetpki-data";
    }
    return fp_config_load(&env->cfg, env->dir, err);
}

int cli_open_store(cli_env *env, fp_error *err)
{
    char path[FP_PATH_MAX];
    int rc;
    if (env->store != NULL)
        return FP_ERR_OK;
    if (env->cfg.dir[0] == '\0' && (rc = cli_load_config(env, err)) != FP_ERR_OK)
        return rc;
    if ((rc = fp_config_path(&env->cfg, env->cfg.store_path, path, sizeof(path), err)) != FP_ERR_OK)
        return rc;
    return fp_store_open(path, &env->store, err);
}

int cli_load_passphrase(cli_env *env, fp_error *err)
{
    if (env->pass != NULL)
        return FP_ERR_OK;
    if (env->cfg.dir[0] == '\0') {
        int rc = cli_load_config(env, err);
        if (rc != FP_ERR_OK)
            return rc;
    }
    if (env->cfg.keys_encrypted || env->passphrase_file != NULL)
        return fp_passphrase_load(env->passphrase_file, &env->pass, &env->passlen, err);
    return FP_ERR_OK;
}

int cli_open_ca(cli_env *env, fp_error *err)
{
    int rc;

    if (env->cas != NULL)
        return FP_ERR_OK;
    if ((rc = cli_open_store(env, err)) != FP_ERR_OK ||
        (rc = cli_load_passphrase(env, err)) != FP_ERR_OK ||
        (rc = fp_caset_load(&env->cfg, env->store, env->pass, env->passlen, &env->cas, err)) !=
            FP_ERR_OK ||
        (rc = fp_issuer_new(env->cas, NULL, &env->issuer, err)) != FP_ERR_OK)
        return rc;
    /* every certificate issued through this issuer (CLI issue and approve,
     * and every front end of `serve`) is listed under its device at once
     * (issue 10; ca/issue.h step 6) */
    fp_issuer_set_issued_hook(env->issuer, fp_registry_issued_hook, NULL);
    /* and none is issued for a suspended or decommissioned device, by any
     * front end (issue 10: "refuses it from then on") */
    fp_issuer_set_issuing_hook(env->issuer, fp_registry_issuing_hook, NULL);
    env->ca = fp_caset_active(env->cas, FP_PROJECT_DEFAULT);
    if (env->ca == NULL)
        env->ca = fp_caset_at(env->cas, 0);
    return FP_ERR_OK;
}

void cli_env_close(cli_env *env)
{
    fp_issuer_free(env->issuer);
    fp_caset_free(env->cas);
    fp_store_close(env->store);
    fp_passphrase_free(env->pass, env->passlen);
    env->issuer = NULL;
    env->cas = NULL;
    env->ca = NULL;
    env->store = NULL;
    env->pass = NULL;
}

int cli_fail(const fp_error *err)
{
    fprintf(stderr, "fleetpki: %s: %s\n", fp_err_name(err->code), fp_err_str(err));
    /* README: 3 is "request refused (malformed or against policy)" */
    switch (fp_err_class(err->code)) {
    case FP_ERRCLASS_REFUSED:
    case FP_ERRCLASS_MALFORMED:
    case FP_ERRCLASS_TOO_LARGE:
        return EXIT_REFUSED;
    default:
        return EXIT_FAIL;
    }
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fleetpki %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'fleetpki %s --help')\n", cmd);
    return EXIT_USAGE;
}

const char *cli_actor(void)
{
    static char actor[96];
    if (actor[0] == '\0') {
        struct passwd *pw = getpwuid(getuid());
        snprintf(actor, sizeof(actor), "cli:%s", pw && pw->pw_name ? pw->pw_name : "?");
    }
    return actor;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version"))
        return cmd_version(0, NULL);
    for (const command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "fleetpki: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
