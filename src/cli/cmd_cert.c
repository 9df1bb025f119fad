/* cmd_cert.c - `fleetpki issue|list|show|revoke`. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "cli.h"

static void fmt_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "valid", "expired", "revoked", "on-hold" */
static const char *status_name(const fp_cert_rec *r, int64_t now)
{
    if (r->status == FP_CERT_REVOKED)
        return r->reason == FP_REASON_HOLD ? "on-hold" : "revoked";
    return r->not_after < now ? "expired" : "valid";
}

static json_t *rec_json(const fp_cert_rec *r, int64_t now, const char *pem)
{
    char nb[32], na[32], ra[32];
    json_t *j;
    fmt_time(r->not_before, nb, sizeof(nb));
    fmt_time(r->not_after, na, sizeof(na));
    j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "serial", r->serial, "ca",
                  r->ca_id, "profile", r->profile, "subject", r->subject, "sans", r->sans,
                  "not_before", nb, "not_after", na, "status", status_name(r, now));
    if (r->status == FP_CERT_REVOKED) {
        fmt_time(r->revoked_at, ra, sizeof(ra));
        json_object_set_new(j, "revoked_at", json_string(ra));
        json_object_set_new(j, "reason", json_string(fp_reason_name(r->reason)));
    }
    json_object_set_new(j, "project", json_string(r->project));
    if (pem)
        json_object_set_new(j, "pem", json_string(pem));
    return j;
}

static void json_out(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(j);
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- issue ---- */

static const char issue_help[] =
    "usage: fleetpki issue --csr FILE --profile NAME [--days N] [--out FILE] [--chain]\n"
    "                      [--project P] [--dir DIR] [--passphrase-file F] [--json]\n"
    "\nChecks the PKCS#10 request (PEM or DER; '-' reads stdin) against the\n"
    "profile, signs it with the project's active issuing CA (project 'default'\n"
    "unless --project), records it durably, then prints the\n"
    "certificate as PEM (with --chain, followed by the issuing CA).  A refusal\n"
    "prints the policy error code and exits 3.\n";

int cmd_issue(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"csr", required_argument, NULL, 'c'},
        {"profile", required_argument, NULL, 'p'},
        {"days", required_argument, NULL, 'D'},
        {"out", required_argument, NULL, 'o'},
        {"chain", no_argument, NULL, 'C'},
        {"project", required_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    const char *csr_path = NULL, *profile = NULL, *out_path = NULL, *project = NULL;
    fp_ca *ca = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    X509_REQ *req = NULL;
    X509 *cert = NULL;
    char *pem = NULL, *chain_pem = NULL;
    bool chain = false;
    long days = 0;
    int c, rc = EXIT_OK;

    while ((c = getopt_long(argc, argv, "d:P:c:p:D:o:CJ:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'c':
            csr_path = optarg;
            break;
        case 'J':
            project = optarg;
            break;
        case 'p':
            profile = optarg;
            break;
        case 'D':
            if (parse_int(optarg, 1, 36500, &days) != 0)
                return cli_usage_error("issue", "--days must be 1..36500");
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'C':
            chain = true;
            break;
        case 'h':
            fputs(issue_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("issue", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("issue", "unexpected argument '%s'", argv[optind]);
    if (csr_path == NULL || profile == NULL)
        return cli_usage_error("issue", "--csr and --profile are required");

    rc = fp_file_read(strcmp(csr_path, "-") ? csr_path : "/dev/stdin", FP_CSR_MAX_BYTES, &data,
                      &len, &err);
    if (rc == FP_ERR_OK)
        rc = fp_csr_parse(data, len, &req, &err);
    if (rc == FP_ERR_OK)
        rc = cli_open_ca(&env, &err);
    if (rc == FP_ERR_OK) {
        fp_issue_req ir = {.csr = req, .profile = profile, .days = (int)days,
                           .actor = cli_actor(), .project = project, .via = "cli"};
        rc = fp_issuer_pick(env.issuer, &ir, &ca, &err);
        if (rc == FP_ERR_OK)
            rc = fp_issue(env.issuer, env.store, &ir, &cert, &err);
    }
    if (rc == FP_ERR_OK)
        rc = fp_cert_to_pem(cert, &pem, NULL, &err);
    if (rc == FP_ERR_OK && chain)
        rc = fp_cert_to_pem(fp_ca_get0_cert(ca), &chain_pem, NULL, &err);
    if (rc != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    if (out_path != NULL) {
        FILE *f = fopen(out_path, "w");
        if (f == NULL || fputs(pem, f) < 0 || (chain_pem && fputs(chain_pem, f) < 0) ||
            fclose(f) != 0) {
            /* the certificate is issued and recorded: say where to get it */
            char serial[FP_SERIAL_HEX_MAX];
            fp_serial_hex(X509_get0_serialNumber(cert), serial);
            fprintf(stderr, "fleetpki: io: cannot write %s; certificate %s is issued, "
                            "retrieve it with 'fleetpki show %s'\n", out_path, serial, serial);
            rc = EXIT_FAIL;
            goto out;
        }
    }
    if (env.json) {
        fp_cert_rec rec;
        char serial[FP_SERIAL_HEX_MAX];
        fp_serial_hex(X509_get0_serialNumber(cert), serial);
        if (fp_store_cert_get(env.store, serial, &rec, &err) != FP_ERR_OK) {
            rc = cli_fail(&err);
            goto out;
        }
        json_out(rec_json(&rec, fp_now(), pem));
        fp_cert_rec_clear(&rec);
    } else if (out_path == NULL) {
        fputs(pem, stdout);
        if (chain_pem)
            fputs(chain_pem, stdout);
    }
out:
    free(pem);
    free(chain_pem);
    X509_free(cert);
    X509_REQ_free(req);
    free(data);
    cli_env_close(&env);
    return rc;
}

/* ---- list ---- */

static const char list_help[] =
    "usage: fleetpki list [--status valid|revoked|expired|on-hold] [--expiring-within DAYS]\n"
    "                     [--profile NAME] [--project P] [--ca ID] [--limit N]\n"
    "                     [--dir DIR] [--json]\n"
    "\nLists issued certificates, oldest first: serial, status, notAfter,\n"
    "profile, subject (--json adds the project and CA).\n";

typedef struct {
    json_t *arr;
    int64_t now;
    const char *want; /* status name filter applied after the query */
    long count;
} list_ctx;

static int list_row(void *arg, const fp_cert_rec *r)
{
    list_ctx *lc = arg;
    const char *st = status_name(r, lc->now);
    char na[32];
    if (lc->want && strcmp(lc->want, st))
        return FP_ERR_OK;
    lc->count++;
    if (lc->arr) {
        json_array_append_new(lc->arr, rec_json(r, lc->now, NULL));
        return FP_ERR_OK;
    }
    fmt_time(r->not_after, na, sizeof(na));
    printf("%-34s %-8s %s %-12s %s\n", r->serial, st, na, r->profile, r->subject);
    return FP_ERR_OK;
}

int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"status", required_argument, NULL, 's'},
        {"expiring-within", required_argument, NULL, 'e'},
        {"profile", required_argument, NULL, 'p'},
        {"limit", required_argument, NULL, 'l'},
        {"project", required_argument, NULL, 'J'},
        {"ca", required_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    fp_cert_filter f = {.status = -1};
    list_ctx lc = {0};
    long v;
    int c, rc = EXIT_OK;

    f.now = lc.now = fp_now();
    while ((c = getopt_long(argc, argv, "d:s:e:p:l:J:A:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 's':
            lc.want = optarg;
            if (!strcmp(optarg, "valid")) {
                f.status = FP_CERT_VALID;
                f.unexpired_only = true;
            } else if (!strcmp(optarg, "expired")) {
                f.status = FP_CERT_VALID;
                f.expired_only = true;
            } else if (!strcmp(optarg, "revoked") || !strcmp(optarg, "on-hold")) {
                f.status = FP_CERT_REVOKED;
            } else {
                return cli_usage_error("list", "--status must be valid, revoked, expired or on-hold");
            }
            break;
        case 'e':
            if (parse_int(optarg, 0, 36500, &v) != 0)
                return cli_usage_error("list", "--expiring-within must be 0..36500 days");
            f.expiring_before = f.now + v * 86400;
            if (v == 0)
                f.expiring_before = f.now;
            break;
        case 'p':
            f.profile = optarg;
            break;
        case 'J':
            f.project = optarg;
            break;
        case 'A':
            f.ca_id = optarg;
            break;
        case 'l':
            if (parse_int(optarg, 1, INT_MAX, &v) != 0)
                return cli_usage_error("list", "--limit must be a positive integer");
            f.limit = (int)v;
            break;
        case 'h':
            fputs(list_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("list", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("list", "unexpected argument '%s'", argv[optind]);
    if (cli_open_store(&env, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    if (env.json)
        lc.arr = json_array();
    if (fp_store_cert_list(env.store, &f, list_row, &lc, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        json_decref(lc.arr);
        goto out;
    }
    if (lc.arr)
        json_out(lc.arr);
out:
    cli_env_close(&env);
    return rc;
}

/* ---- show ---- */

static const char show_help[] =
    "usage: fleetpki show SERIAL [--pem] [--dir DIR] [--json]\n"
    "\nShows a certificate's record (status, revocation, validity, subject,\n"
    "SANs) followed by its PEM; --pem prints the PEM alone.  SERIAL is hex,\n"
    "as printed by 'fleetpki list' or 'openssl x509 -serial'.\n";

int cmd_show(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"pem", no_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    fp_cert_rec rec = {0};
    char serial[FP_SERIAL_HEX_MAX], *pem = NULL;
    X509 *x = NULL;
    bool pem_only = false;
    int c, rc = EXIT_OK;

    while ((c = getopt_long(argc, argv, "d:mhj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        if (c == 'm') {
            pem_only = true;
            continue;
        }
        if (c == 'h') {
            fputs(show_help, stdout);
            return EXIT_OK;
        }
        return cli_usage_error("show", "unknown option");
    }
    if (optind + 1 != argc)
        return cli_usage_error("show", "expected one SERIAL");
    if (fp_serial_normalize(argv[optind], serial, &err) != FP_ERR_OK ||
        cli_open_store(&env, &err) != FP_ERR_OK ||
        fp_store_cert_get(env.store, serial, &rec, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    x = fp_cert_from_der(rec.der, rec.der_len);
    if (x == NULL || fp_cert_to_pem(x, &pem, NULL, &err) != FP_ERR_OK) {
        fp_err_set(&err, FP_ERR_STORE, "stored certificate %s does not decode", serial);
        rc = cli_fail(&err);
        goto out;
    }
    if (env.json) {
        json_out(rec_json(&rec, fp_now(), pem));
    } else if (pem_only) {
        fputs(pem, stdout);
    } else {
        char nb[32], na[32], ra[32];
        fmt_time(rec.not_before, nb, sizeof(nb));
        fmt_time(rec.not_after, na, sizeof(na));
        printf("serial:     %s\nstatus:     %s\n", rec.serial, status_name(&rec, fp_now()));
        if (rec.status == FP_CERT_REVOKED) {
            fmt_time(rec.revoked_at, ra, sizeof(ra));
            printf("revoked:    %s (%s)\n", ra, fp_reason_name(rec.reason));
        }
        printf("subject:    %s\nsans:       %s\nprofile:    %s\nissuer:     %s\n"
               "not before: %s\nnot after:  %s\n%s",
               rec.subject, rec.sans[0] ? rec.sans : "-", rec.profile, rec.ca_id, nb, na, pem);
    }
out:
    free(pem);
    X509_free(x);
    fp_cert_rec_clear(&rec);
    cli_env_close(&env);
    return rc;
}

/* ---- revoke ---- */

static const char revoke_help[] =
    "usage: fleetpki revoke SERIAL --reason REASON [--dir DIR] [--json]\n"
    "       fleetpki revoke --subject CN --reason REASON [--dir DIR] [--json]\n"
    "       fleetpki revoke --device ID --reason REASON [--dir DIR] [--json]\n"
    "\nREASON is an RFC 5280 CRLReason: unspecified, keyCompromise, cACompromise,\n"
    "affiliationChanged, superseded, cessationOfOperation, certificateHold,\n"
    "privilegeWithdrawn, aACompromise.  removeFromCRL lifts a certificateHold.\n"
    "Revocation is final for every reason but certificateHold.\n"
    "\n--subject revokes every unexpired valid or held certificate whose subject\n"
    "commonName equals CN exactly (a device's certificates); with removeFromCRL\n"
    "it lifts the holds of that CN.  --device also matches a DNS, URI or email\n"
    "subjectAltName equal to ID.  Each change is audited.  A running server\n"
    "picks the change up within a second (OCSP) and republishes its CRL.\n";

typedef struct {
    json_t *arr;
    int reason;
} revoke_report_ctx;

static void revoke_report(void *arg, const char *serial, const fp_error *e)
{
    revoke_report_ctx *rr = arg;
    const char *what = rr->reason == FP_REASON_REMOVE_FROM_CRL ? "hold lifted" : "revoked";

    if (rr->arr != NULL) {
        json_t *o = json_pack("{s:s, s:s}", "serial", serial, "reason", fp_reason_name(rr->reason));
        if (e->code != FP_ERR_OK)
            json_object_set_new(o, "error", json_string(fp_err_str(e)));
        json_array_append_new(rr->arr, o);
    } else if (e->code == FP_ERR_OK) {
        printf("%s: %s (%s)\n", serial, what, fp_reason_name(rr->reason));
    } else {
        fprintf(stderr, "fleetpki: %s: %s: %s\n", serial, fp_err_name(e->code), fp_err_str(e));
    }
}

int cmd_revoke(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"reason", required_argument, NULL, 'r'},
        {"subject", required_argument, NULL, 's'},
        {"device", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    char serial[FP_SERIAL_HEX_MAX];
    const char *subject = NULL;
    bool device = false;
    int reason = -1, c, rc = EXIT_OK;

    while ((c = getopt_long(argc, argv, "d:r:s:D:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        if (c == 'r') {
            reason = fp_reason_from_name(optarg);
            if (reason < 0)
                return cli_usage_error("revoke", "unknown reason '%s'", optarg);
            continue;
        }
        if (c == 's' || c == 'D') {
            if (subject != NULL)
                return cli_usage_error("revoke", "give one of --subject and --device");
            subject = optarg;
            device = c == 'D';
            continue;
        }
        if (c == 'h') {
            fputs(revoke_help, stdout);
            return EXIT_OK;
        }
        return cli_usage_error("revoke", "unknown option");
    }
    if (subject != NULL ? optind != argc : optind + 1 != argc)
        return cli_usage_error("revoke", "expected one SERIAL, --subject CN or --device ID");
    if (reason < 0)
        return cli_usage_error("revoke", "--reason is required");
    if (subject != NULL) {
        revoke_report_ctx rr = {env.json ? json_array() : NULL, reason};
        int count = 0, r;
        if (cli_open_store(&env, &err) != FP_ERR_OK) {
            json_decref(rr.arr);
            rc = cli_fail(&err);
            goto out;
        }
        r = (device ? fp_ca_revoke_device : fp_ca_revoke_cn)(env.store, subject, reason, cli_actor(),
                                                              revoke_report, &rr, &count, &err);
        if (rr.arr != NULL)
            json_out(rr.arr);
        if (r != FP_ERR_OK)
            rc = cli_fail(&err);
        goto out;
    }
    if (fp_serial_normalize(argv[optind], serial, &err) != FP_ERR_OK ||
        cli_open_store(&env, &err) != FP_ERR_OK ||
        fp_ca_revoke(env.store, serial, reason, cli_actor(), &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    if (env.json)
        json_out(json_pack("{s:s, s:s}", "serial", serial, "reason", fp_reason_name(reason)));
    else if (reason == FP_REASON_REMOVE_FROM_CRL)
        printf("%s: hold lifted, certificate valid again\n", serial);
    else
        printf("%s: revoked (%s)\n", serial, fp_reason_name(reason));
out:
    cli_env_close(&env);
    return rc;
}
