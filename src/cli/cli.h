/* cli.h - shared pieces of the fleetpki command-line tool. */
#ifndef FP_CLI_H
#define FP_CLI_H

#include <stdbool.h>

#include "../ca/ca.h"
#include "../ca/config.h"
#include "../ca/issue.h"
#include "../store/store.h"

/* Exit codes (documented in README). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_REFUSED = 3 };

/* Everything a command may need, opened on demand. */
typedef struct cli_env {
    const char *dir;
    const char *passphrase_file;
    bool json;
    fp_config cfg;
    fp_store *store;
    fp_caset *cas;     /* every CA, by project (cli_open_ca) */
    fp_issuer *issuer; /* the issuance path over cas */
    fp_ca *ca;         /* borrowed from cas: project default's active CA */
    char *pass;        /* the key passphrase, when one is needed */
    size_t passlen;
} cli_env;

int cli_load_config(cli_env *env, fp_error *err);
int cli_open_store(cli_env *env, fp_error *err);
int cli_open_ca(cli_env *env, fp_error *err);
/* Load the key passphrase (--passphrase-file or FLEETPKI_PASSPHRASE) when
 * the keys are encrypted or one was given; env->pass stays NULL otherwise. */
int cli_load_passphrase(cli_env *env, fp_error *err);
void cli_env_close(cli_env *env);

/* Print "fleetpki: <name>: <message>" to stderr; return the exit code that
 * fits err (EXIT_REFUSED for policy refusals). */
int cli_fail(const fp_error *err);
/* Usage error: message then hint, returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Actor string for the audit log ("cli:<user>"). */
const char *cli_actor(void);

int cmd_init(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_issue(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_crl(int argc, char **argv);
int cmd_ocsp(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_cmp_secret(int argc, char **argv);
int cmd_pending(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_reject(int argc, char **argv);
int cmd_project(int argc, char **argv);
int cmd_ca(int argc, char **argv);
int cmd_root(int argc, char **argv);
int cmd_factory(int argc, char **argv);
int cmd_apikey(int argc, char **argv);
int cmd_device(int argc, char **argv);
int cmd_firmware(int argc, char **argv);

/* Common long options every command accepts. */
#define CLI_COMMON_OPTS                                   \
    {"dir", required_argument, NULL, 'd'},                \
    {"passphrase-file", required_argument, NULL, 'P'},    \
    {"json", no_argument, NULL, 'j'},                     \
    {"help", no_argument, NULL, 'h'}

/* Handle a common option; returns 1 if handled. */
int cli_common_opt(cli_env *env, int c, const char *arg);

#endif
