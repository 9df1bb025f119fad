/* cmd_ocsp.c - `fleetpki ocsp`: answer an OCSP request offline, renew the
 * OCSP signer. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>

#include "../common/util.h"
#include "../ocsp/ocsp_setup.h"
#include "../x509/x509util.h"
#include "cli.h"

static const char ocsp_help[] =
    "usage: fleetpki ocsp --request FILE [--out FILE] [--dir DIR] [--passphrase-file F]\n"
    "       fleetpki ocsp --renew-signer [--force] [--dir DIR] [--passphrase-file F]\n"
    "\nThe first form answers a DER OCSPRequest (as `openssl ocsp -reqout` writes\n"
    "it; '-' reads stdin) exactly as the server would, signed by the delegated\n"
    "OCSP signer, and writes the DER OCSPResponse to FILE or stdout.  Exit 0\n"
    "whenever a response was produced, even malformedRequest/unauthorized.\n"
    "Every issuing CA of every project is answered for, each by its own\n"
    "delegated responder.\n"
    "\nThe second form renews the OCSP signer certificate of every issuing CA\n"
    "(ocsp.crt/ocsp.key; DIR/ca/<id>/ for CAs made after init) if less than\n"
    "a third of its lifetime is left (--force: now), and makes the missing\n"
    "ones.  The server does the same check at start and every hour.\n";

/* A responder for every issuing CA, as the server builds it. */
static int responder(cli_env *env, const char *pass, size_t passlen, fp_ocsp_responder **out,
                     fp_error *err)
{
    fp_ocsp_opts o = {env->cfg.ocsp_validity_seconds, false, 0};
    int rc = fp_ocsp_responder_new(&o, out, err);
    for (int i = 0; rc == FP_ERR_OK && i < fp_caset_count(env->cas); i++)
        rc = fp_ocsp_add_ca(*out, fp_caset_at(env->cas, i), pass, passlen, err);
    return rc;
}

static int write_out(const char *path, const unsigned char *der, size_t len, fp_error *err)
{
    if (path == NULL) {
        if (fwrite(der, 1, len, stdout) != len || fflush(stdout) != 0)
            return fp_err_set(err, FP_ERR_IO, "writing to stdout failed");
        return FP_ERR_OK;
    }
    return fp_file_replace(path, der, len, 0644, err);
}

int cmd_ocsp(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"request", required_argument, NULL, 'r'},
        {"out", required_argument, NULL, 'o'},
        {"renew-signer", no_argument, NULL, 'R'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    const char *req_path = NULL, *out_path = NULL;
    bool renew = false, force = false;
    char *pass = NULL;
    size_t passlen = 0, len = 0, out_len = 0;
    unsigned char *data = NULL, *out = NULL;
    fp_ocsp_responder *r = NULL;
    fp_ocsp_result res;
    int c, rc = EXIT_OK;

    while ((c = getopt_long(argc, argv, "d:P:r:o:Rfhj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'r':
            req_path = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'R':
            renew = true;
            break;
        case 'f':
            force = true;
            break;
        case 'h':
            fputs(ocsp_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("ocsp", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("ocsp", "unexpected argument '%s'", argv[optind]);
    if ((req_path == NULL) == !renew)
        return cli_usage_error("ocsp", "give either --request FILE or --renew-signer");
    if (cli_open_store(&env, &err) != FP_ERR_OK)
        goto fail;
    if ((env.cfg.keys_encrypted || env.passphrase_file != NULL) &&
        fp_passphrase_load(env.passphrase_file, &pass, &passlen, &err) != FP_ERR_OK)
        goto fail;
    if (cli_open_ca(&env, &err) != FP_ERR_OK)
        goto fail;
    if (renew) {
        for (int i = 0; i < fp_caset_count(env.cas); i++) {
            fp_ca *ca = fp_caset_at(env.cas, i);
            bool renewed = false;
            if (fp_ocsp_signer_check(&env.cfg, ca, env.store, pass, passlen,
                                     force ? INT64_MAX / 4 : fp_now(), NULL, &renewed,
                                     &err) != FP_ERR_OK)
                goto fail;
            printf(renewed ? "OCSP signer of %s renewed\n"
                           : "OCSP signer of %s is fresh; nothing to do\n", fp_ca_id(ca));
        }
        goto out;
    }
    /* read up to one byte more than the responder accepts: it answers the
     * oversize case itself (malformedRequest) */
    if (fp_file_read(strcmp(req_path, "-") ? req_path : "/dev/stdin", 1024 * 1024, &data, &len,
                     &err) != FP_ERR_OK ||
        responder(&env, pass, passlen, &r, &err) != FP_ERR_OK ||
        fp_ocsp_respond(r, env.store, data, len, fp_now(), &out, &out_len, &res, &err) !=
            FP_ERR_OK ||
        write_out(out_path, out, out_len, &err) != FP_ERR_OK)
        goto fail;
    if (res.status != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        fprintf(stderr, "fleetpki: ocsp: %s: %s\n", OCSP_response_status_str(res.status),
                res.why.msg);
    goto out;
fail:
    rc = cli_fail(&err);
out:
    free(data);
    free(out);
    fp_ocsp_responder_free(r);
    fp_passphrase_free(pass, passlen);
    cli_env_close(&env);
    return rc;
}
