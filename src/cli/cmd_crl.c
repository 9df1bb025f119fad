/* cmd_crl.c - `fleetpki crl`: write a CA's CRL on demand. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../common/util.h"
#include "../crl/crl.h"
#include "../keys/offline.h"
#include "../x509/x509util.h"
#include "cli.h"

static const char crl_help[] =
    "usage: fleetpki crl [--ca ID] [--out FILE] [--pem] [--next-update-hours N]\n"
    "                   [--next-update-days N] [--dir DIR] [--passphrase-file F] [--json]\n"
    "       fleetpki crl --ca root --root-key F [--root-passphrase-file F] [--out FILE] ...\n"
    "\nSigns a fresh CRL (RFC 5280: version 2, CRL Number, AKI, reason codes)\n"
    "listing every revoked or held certificate of the CA (default: the issuing\n"
    "CA; --ca root needs the root key online).  Writes DER (or PEM with --pem)\n"
    "to FILE atomically, or to stdout.  Each run draws a new CRL Number.\n"
    "nextUpdate defaults to [server] crl_next_update_hours.\n"
    "With an offline root, --root-key F is the ceremony: the root key file from\n"
    "removable media signs the root's CRL, with a long nextUpdate (default %d\n"
    "days); copy the file to DIR/crl-upload/<root id>.crl and the server\n"
    "publishes it as is (docs/keys.md).\n";

#define ROOT_CRL_DAYS 365

static void fmt_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cmd_crl(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"ca", required_argument, NULL, 'c'},
        {"out", required_argument, NULL, 'o'},
        {"pem", no_argument, NULL, 'm'},
        {"next-update-hours", required_argument, NULL, 'n'},
        {"next-update-days", required_argument, NULL, 'D'},
        {"root-key", required_argument, NULL, 'R'},
        {"root-passphrase-file", required_argument, NULL, 'Q'},
        {NULL, 0, NULL, 0},
    };
    const char *root_key = NULL, *root_pass_file = NULL;
    cli_env env = {0};
    fp_error err = {0};
    const char *ca_id = NULL, *out_path = NULL;
    char *pass = NULL;
    size_t passlen = 0;
    X509 *cert = NULL;
    fp_signer *signer = NULL;
    fp_crl_params p;
    fp_crl_info info;
    BIO *bio = NULL, *b64 = NULL;
    bool pem = false;
    long hours = 0;
    int c, rc = EXIT_OK;

    while ((c = getopt_long(argc, argv, "d:P:c:o:mn:D:R:Q:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'c':
            ca_id = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'm':
            pem = true;
            break;
        case 'n': {
            char *end = NULL;
            hours = strtol(optarg, &end, 10);
            if (end == optarg || *end || hours < 1 || hours > 24 * 366)
                return cli_usage_error("crl", "--next-update-hours must be 1..8784");
            break;
        }
        case 'D': {
            char *end = NULL;
            long days = strtol(optarg, &end, 10);
            if (end == optarg || *end || days < 1 || days > 3660)
                return cli_usage_error("crl", "--next-update-days must be 1..3660");
            hours = days * 24;
            break;
        }
        case 'R':
            root_key = optarg;
            break;
        case 'Q':
            root_pass_file = optarg;
            break;
        case 'h':
            printf(crl_help, ROOT_CRL_DAYS);
            return EXIT_OK;
        default:
            return cli_usage_error("crl", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("crl", "unexpected argument '%s'", argv[optind]);
    if (cli_open_store(&env, &err) != FP_ERR_OK)
        goto fail;
    if (ca_id == NULL)
        ca_id = root_key != NULL ? env.cfg.root_id : env.cfg.issuing_id;
    if ((env.cfg.keys_encrypted || env.passphrase_file != NULL) &&
        fp_passphrase_load(env.passphrase_file, &pass, &passlen, &err) != FP_ERR_OK)
        goto fail;
    if (root_key != NULL) {
        /* the ceremony: the offline root signs its own CRL */
        char path[FP_PATH_MAX], *rpass = NULL;
        size_t rpasslen = 0;
        int lrc;
        if (strcmp(ca_id, env.cfg.root_id) != 0)
            return cli_usage_error("crl", "--root-key signs the root's CRL: --ca %s",
                                   env.cfg.root_id);
        if (fp_config_path(&env.cfg, env.cfg.root_cert, path, sizeof(path), &err) != FP_ERR_OK ||
            fp_cert_read(path, &cert, &err) != FP_ERR_OK ||
            fp_root_passphrase_load(root_pass_file, pass, passlen, &rpass, &rpasslen, &err) !=
                FP_ERR_OK)
            goto fail;
        lrc = fp_offline_root_open(root_key, rpass, rpasslen, cert, &signer, &err);
        fp_passphrase_free(rpass, rpasslen);
        if (lrc != FP_ERR_OK)
            goto fail;
        if (hours == 0)
            hours = ROOT_CRL_DAYS * 24;
    } else if (fp_crl_load_ca(&env.cfg, ca_id, pass, passlen, &cert, &signer, &err) != FP_ERR_OK) {
        goto fail;
    }
    memset(&p, 0, sizeof(p));
    p.ca_id = ca_id;
    p.issuer = cert;
    p.signer = signer;
    p.next_update_hours = hours ? (int)hours : env.cfg.crl_next_update_hours;
    p.spool_dir = env.cfg.dir;
    if (out_path != NULL) {
        if (fp_crl_write_file(env.store, &p, out_path, pem, &info, &err) != FP_ERR_OK)
            goto fail;
    } else {
        bio = BIO_new_fp(stdout, BIO_NOCLOSE);
        if (bio == NULL) {
            fp_err_set(&err, FP_ERR_NOMEM, NULL);
            goto fail;
        }
        if (pem) {
            fputs("-----BEGIN X509 CRL-----\n", stdout);
            b64 = BIO_new(BIO_f_base64());
            if (b64 == NULL) {
                fp_err_set(&err, FP_ERR_NOMEM, NULL);
                goto fail;
            }
            BIO_push(b64, bio);
        }
        if (fp_crl_generate(env.store, &p, b64 ? b64 : bio, &info, &err) != FP_ERR_OK)
            goto fail;
        if (pem)
            fputs("-----END X509 CRL-----\n", stdout);
        if (fflush(stdout) != 0) {
            fp_err_set(&err, FP_ERR_IO, "writing to stdout failed");
            goto fail;
        }
    }
    if (env.json || out_path != NULL) {
        char tu[32], nu[32];
        FILE *to = out_path ? stdout : stderr; /* stdout may be the CRL itself */
        fmt_time(info.this_update, tu, sizeof(tu));
        fmt_time(info.next_update, nu, sizeof(nu));
        if (env.json) {
            json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s?}", "ca", ca_id,
                                  "number", (json_int_t)info.number, "entries",
                                  (json_int_t)info.entries, "bytes", (json_int_t)info.der_len,
                                  "this_update", tu, "next_update", nu, "out", out_path);
            json_dumpf(j, to, JSON_INDENT(2));
            fputc('\n', to);
            json_decref(j);
        } else {
            fprintf(to, "CRL %" PRId64 " of %s: %" PRIu64 " entries, %" PRIu64
                        " bytes, next update %s -> %s\n",
                    info.number, ca_id, info.entries, info.der_len, nu, out_path);
        }
    }
    goto out;
fail:
    rc = cli_fail(&err);
out:
    if (b64 != NULL) {
        BIO_pop(b64);
        BIO_free(b64);
    }
    BIO_free(bio);
    fp_passphrase_free(pass, passlen);
    fp_signer_free(signer);
    X509_free(cert);
    cli_env_close(&env);
    return rc;
}
