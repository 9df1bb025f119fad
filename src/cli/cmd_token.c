/* cmd_token.c - `fleetpki token create`, `pending`, `approve`, `reject`:
 * EST enrollment tokens and manually approved requests. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "../ca/detail.h"
#include "../common/util.h"
#include "../est/token.h"
#include "../x509/x509util.h"
#include "cli.h"

/* "90", "90s", "15m", "12h", "7d" -> seconds; -1 if malformed. */
static long long parse_duration(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10), mul = 1;
    if (end == s || v <= 0)
        return -1;
    if (*end == 's')
        mul = 1;
    else if (*end == 'm')
        mul = 60;
    else if (*end == 'h')
        mul = 3600;
    else if (*end == 'd')
        mul = 86400;
    else if (*end != '\0')
        return -1;
    if (*end && end[1] != '\0')
        return -1;
    if (v > 3650LL * 86400 / mul)
        return -1;
    return v * mul;
}

static const char token_help[] =
    "usage: fleetpki token create --label LABEL [--cn PATTERN] [--uses N] [--ttl DURATION]\n"
    "                             [--dir DIR] [--json]\n"
    "\nCreates a one-time EST enrollment token for HTTP Basic authentication\n"
    "(user = token id, password = secret).  The secret is printed ONCE; only its\n"
    "SHA-256 is stored.  LABEL is an [est LABEL] section, or 'default' for\n"
    "/.well-known/est/.  --uses is how many certificates it may obtain\n"
    "(default 1), --ttl how long it is valid (90s, 15m, 12h, 7d; default 7d).\n"
    "\n--cn PATTERN limits the CSR's common name (docs/policy.md):\n"
    "  *   one or more characters from A-Z a-z 0-9 . _ -\n"
    "      (never '/', a space, a control or a non-ASCII character)\n"
    "  ?   exactly one such character\n"
    "  any other printable ASCII character matches itself (case-sensitive);\n"
    "  '[', ']' and '\\' are reserved.  Example: --cn 'sensor-*' matches\n"
    "  sensor-17 and sensor-a.b, not sensor- or sensor-/../x.\n";

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"label", required_argument, NULL, 'l'},
        {"cn", required_argument, NULL, 'c'},
        {"uses", required_argument, NULL, 'u'},
        {"ttl", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    cli_env env = {0};
    fp_error err = {0};
    const char *label = NULL, *cn = "";
    long long ttl = 7 * 86400;
    long uses = 1;
    char secret_txt[FP_TOKEN_SECRET_MAX];
    fp_token_rec t;
    fp_audit_event ev;
    const fp_est_label *lcfg;
    char *detail = NULL, num_uses[24], num_exp[24];
    int c, rc = EXIT_OK;

    if (argc < 2 || (strcmp(argv[1], "create") && strcmp(argv[1], "--help") && strcmp(argv[1], "-h")))
        return cli_usage_error("token", "expected 'token create'");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(token_help, stdout);
        return EXIT_OK;
    }
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "d:P:l:c:u:t:hj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        switch (c) {
        case 'l':
            label = optarg;
            break;
        case 'c':
            cn = optarg;
            break;
        case 'u': {
            char *end = NULL;
            uses = strtol(optarg, &end, 10);
            if (end == optarg || *end || uses < 1 || uses > 1000000)
                return cli_usage_error("token", "--uses must be 1..1000000");
            break;
        }
        case 't':
            if ((ttl = parse_duration(optarg)) < 0)
                return cli_usage_error("token", "--ttl: expected e.g. 90s, 15m, 12h, 7d");
            break;
        case 'h':
            fputs(token_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("token", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("token", "unexpected argument '%s'", argv[optind]);
    if (label == NULL)
        return cli_usage_error("token", "--label is required ('default' for /.well-known/est/)");
    if (!strcmp(label, "default"))
        label = "";
    if (cn[0] != '\0' && fp_token_pattern_check(cn, &err) != FP_ERR_OK)
        return cli_usage_error("token", "--cn: %s", err.msg);
    if (cli_open_store(&env, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    if ((lcfg = fp_config_est_label(&env.cfg, label)) == NULL) {
        fp_err_set(&err, FP_ERR_NOT_FOUND, "no [est %s] section in the config", label);
        rc = cli_fail(&err);
        goto out;
    }
    memset(&t, 0, sizeof(t));
    /* a token belongs to its label's project: it authenticates nowhere else */
    snprintf(t.project, sizeof(t.project), "%s", lcfg->project);
    if (fp_token_generate(t.id, secret_txt, t.hash, &err) != FP_ERR_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    snprintf(t.label, sizeof(t.label), "%s", label);
    snprintf(t.cn_pattern, sizeof(t.cn_pattern), "%s", cn);
    t.uses_left = (int)uses;
    t.created_at = fp_now();
    t.expires_at = t.created_at + ttl;
    snprintf(num_uses, sizeof(num_uses), "%ld", uses);
    snprintf(num_exp, sizeof(num_exp), "%lld", (long long)t.expires_at);
    detail = fp_audit_detail("label", label, "uses", num_uses, "expires_at", num_exp, NULL);
    ev = (fp_audit_event){.actor = cli_actor(), .action = "token.create", .object = t.id,
                          .detail = detail ? detail : "", .project = t.project};
    if (detail == NULL || fp_store_token_put(env.store, &t, &ev, &err) != FP_ERR_OK) {
        if (detail == NULL)
            fp_err_set(&err, FP_ERR_NOMEM, NULL);
        rc = cli_fail(&err);
        goto out;
    }
    if (env.json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I}", "id", t.id, "secret", secret_txt,
                              "label", label[0] ? label : "default", "project", t.project,
                              "uses", (int)uses,
                              "expires_at", (json_int_t)t.expires_at);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("id:     %s\nsecret: %s\n", t.id, secret_txt);
        printf("# use as HTTP Basic credentials, e.g. curl -u '%s:%s' ...\n"
               "# the secret is not stored and cannot be shown again\n", t.id, secret_txt);
    }
out:
    free(detail);
    OPENSSL_cleanse(secret_txt, sizeof(secret_txt));
    cli_env_close(&env);
    return rc;
}

/* ---- pending / approve / reject ---- */

static const char *pending_status(int s)
{
    return s == FP_PENDING_WAITING ? "waiting" : s == FP_PENDING_ISSUED ? "issued" : "rejected";
}

static int print_pending(void *arg, const fp_pending_rec *r)
{
    json_t *arr = arg;
    if (arr != NULL) {
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
                                             (json_int_t)r->id, "project", r->project, "label",
                                             r->label[0] ? r->label : "default", "status",
                                             pending_status(r->status), "subject", r->subject,
                                             "requested_by", r->actor, "serial", r->serial));
        return FP_ERR_OK;
    }
    printf("%-6" PRId64 " %-9s %-12s %s  (%s)%s%s\n", r->id, pending_status(r->status),
           r->label[0] ? r->label : "default", r->subject, r->actor, r->serial[0] ? " serial " : "",
           r->serial);
    return FP_ERR_OK;
}

static const char pending_help[] =
    "usage: fleetpki pending [--all] [--dir DIR] [--json]\n"
    "       fleetpki approve ID [--dir DIR] [--passphrase-file F]\n"
    "       fleetpki reject ID [--dir DIR]\n"
    "\nEST enrollments on labels with manual_approval wait here.  'approve'\n"
    "issues the certificate under the label's profile (the device gets it when\n"
    "it retries the same CSR); 'reject' makes the retry fail with 403.\n";

static int decide(cli_env *env, int64_t id, bool approve, fp_error *err)
{
    fp_pending_rec pr;
    X509_REQ *csr = NULL;
    X509 *cert = NULL;
    char serial[FP_SERIAL_HEX_MAX] = "";
    int rc;

    if ((rc = cli_open_store(env, err)) != FP_ERR_OK ||
        (rc = fp_store_pending_get(env->store, id, &pr, err)) != FP_ERR_OK)
        return rc;
    if (pr.status != FP_PENDING_WAITING) {
        rc = fp_err_set(err, FP_ERR_STATE, "request %" PRId64 " is already %s", id,
                        pending_status(pr.status));
        goto out;
    }
    if (approve) {
        const fp_est_label *l = fp_config_est_label(&env->cfg, pr.label);
        fp_issue_req ir;
        if (l == NULL) {
            rc = fp_err_set(err, FP_ERR_CONFIG, "label '%s' is no longer configured", pr.label);
            goto out;
        }
        if ((rc = fp_csr_parse(pr.csr, pr.csr_len, &csr, err)) != FP_ERR_OK ||
            (rc = cli_open_ca(env, err)) != FP_ERR_OK)
            goto out;
        /* the certificate and the request's new state: one transaction */
        ir = (fp_issue_req){.csr = csr, .profile = l->profile, .actor = cli_actor(),
                            .project = pr.project, .via = "cli/approve", .pending_id = id};
        if ((rc = fp_issue(env->issuer, env->store, &ir, &cert, err)) != FP_ERR_OK)
            goto out;
        fp_serial_hex(X509_get0_serialNumber(cert), serial);
        printf("approved request %" PRId64 ": issued %s\n", id, serial);
    } else {
        fp_audit_event ev = {.actor = cli_actor(), .action = "csr.reject", .object = "",
                             .detail = "", .project = pr.project};
        rc = fp_store_pending_decide(env->store, id, FP_PENDING_REJECTED, NULL, &ev, err);
        if (rc == FP_ERR_OK)
            printf("rejected request %" PRId64 "\n", id);
    }
out:
    X509_free(cert);
    X509_REQ_free(csr);
    fp_pending_rec_clear(&pr);
    return rc;
}

static int pending_cmd(int argc, char **argv, int mode /* 0 list, 1 approve, 2 reject */)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"all", no_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    static const char *const names[] = {"pending", "approve", "reject"};
    cli_env env = {0};
    fp_error err = {0};
    bool all = false;
    int c, rc = EXIT_OK;

    while ((c = getopt_long(argc, argv, "d:P:Ahj", opts, NULL)) != -1) {
        if (cli_common_opt(&env, c, optarg))
            continue;
        if (c == 'A') {
            all = true;
            continue;
        }
        if (c == 'h') {
            fputs(pending_help, stdout);
            return EXIT_OK;
        }
        return cli_usage_error(names[mode], "unknown option");
    }
    if (mode == 0) {
        json_t *arr = env.json ? json_array() : NULL;
        if (optind != argc)
            return cli_usage_error("pending", "unexpected argument '%s'", argv[optind]);
        if (cli_open_store(&env, &err) != FP_ERR_OK ||
            fp_store_pending_list(env.store, NULL, all ? -1 : FP_PENDING_WAITING, print_pending,
                                  arr, &err) != FP_ERR_OK)
            rc = cli_fail(&err);
        else if (arr != NULL) {
            json_dumpf(arr, stdout, JSON_INDENT(2));
            putchar('\n');
        }
        json_decref(arr);
    } else {
        char *end = NULL;
        long long id;
        if (optind + 1 != argc)
            return cli_usage_error(names[mode], "expected one request ID");
        id = strtoll(argv[optind], &end, 10);
        if (end == argv[optind] || *end || id <= 0)
            return cli_usage_error(names[mode], "ID must be a positive number");
        if (decide(&env, id, mode == 1, &err) != FP_ERR_OK)
            rc = cli_fail(&err);
    }
    cli_env_close(&env);
    return rc;
}

int cmd_pending(int argc, char **argv) { return pending_cmd(argc, argv, 0); }
int cmd_approve(int argc, char **argv) { return pending_cmd(argc, argv, 1); }
int cmd_reject(int argc, char **argv) { return pending_cmd(argc, argv, 2); }
