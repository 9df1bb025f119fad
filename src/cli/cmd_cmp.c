/* cmd_cmp.c - `fleetpki cmp-secret`: the shared secret an enrollment
 * token has for MAC-protected CMP (src/cmp/cmp_secret.c, docs/cmp.md). */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "../cmp/cmp.h"
#include "cli.h"

static const char cmp_help[] =
    "usage: fleetpki cmp-secret TOKEN-ID --label LABEL [--dir DIR]\n"
    "\nPrint the CMP MAC secret of an enrollment token of LABEL's project\n"
    "(`fleetpki token create --label LABEL`).  A CMP client sends the token id\n"
    "as senderKID (openssl cmp -ref ID) and MACs with this secret\n"
    "(-secret pass:SECRET).  It is derived from the token and the server key\n"
    "DIR/cmp-mac.key, so it can be printed again; the reveal is audited.\n";

int cmd_cmp_secret(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"label", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    const char *label = NULL, *id;
    const fp_est_label *l;
    fp_token_rec t;
    unsigned char key[32];
    char secret[CMP_SECRET_MAX];
    int c, rc = EXIT_OK;

    while ((c = getopt_long(argc, argv, "d:P:l:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'l':
            label = optarg;
            break;
        case 'h':
            fputs(cmp_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("cmp-secret", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("cmp-secret", "expected one TOKEN-ID");
    id = argv[optind];
    if (label == NULL)
        return cli_usage_error("cmp-secret", "--label is required ('default' for /.well-known/cmp)");
    if (!strcmp(label, "default"))
        label = "";
    if (cli_open_store(&env, &err) != FP_ERR_OK)
        goto fail;
    if ((l = fp_config_est_label(&env.cfg, label)) == NULL) {
        fp_err_set(&err, FP_ERR_NOT_FOUND, "no [est %s] section in the config", label);
        goto fail;
    }
    if (fp_store_token_get(env.store, l->project, id, &t, &err) != FP_ERR_OK ||
        cmp_mac_key_load(&env.cfg, key, &err) != FP_ERR_OK)
        goto fail;
    if (strcmp(t.label, label) != 0) {
        fp_err_set(&err, FP_ERR_NOT_FOUND, "token %s is not a token of label '%s'", t.id,
                   label[0] ? label : "default");
        goto fail;
    }
    rc = cmp_token_secret(key, t.id, t.hash, secret, &err);
    OPENSSL_cleanse(key, sizeof(key));
    if (rc != FP_ERR_OK)
        goto fail;
    {
        fp_audit_event ev = {.actor = cli_actor(), .action = "token.cmp-secret", .object = t.id,
                             .detail = "", .project = t.project};
        if (fp_store_audit_append(env.store, &ev, &err) != FP_ERR_OK) {
            OPENSSL_cleanse(secret, sizeof(secret));
            goto fail;
        }
    }
    printf("%s\n", secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    cli_env_close(&env);
    return EXIT_OK;
fail:
    rc = cli_fail(&err);
    cli_env_close(&env);
    return rc;
}
