/*
 * main.c - fleetpki-agent: keeps a Linux device's EST identity fresh.
 *
 *   fleetpki-agent [--config FILE] [--once | --check-config]
 *
 * Foreground service (systemd, contrib/systemd/fleetpki-agent.service) or
 * one cycle with --once (cron, tests).  Exit codes in agent.h and
 * docs/agent.md.  SIGTERM/SIGINT end the service (exit 0) between two
 * cycles or during a wait; SIGHUP runs a cycle at once.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"

#ifndef FLEETPKI_VERSION
#define FLEETPKI_VERSION "0"
#endif

static int usage(FILE *f, int code)
{
    fprintf(f, "usage: fleetpki-agent [--config FILE] [--once | --check-config]\n"
               "  --config FILE    configuration (default /etc/fleetpki/agent.conf)\n"
               "  --once           one cycle, then exit (cron, tests)\n"
               "  --check-config   parse the configuration and exit\n"
               "exit codes: 0 ok, 1 retry later, 2 usage/config, 3 refused (trust or\n"
               "bootstrap credential), 4 credential directory unusable\n");
    return code;
}

/* Waits ms or until a signal: 1 = stop, 0 = go on. */
static int wait_for(const sigset_t *set, uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);

    if (sig == SIGTERM || sig == SIGINT) {
        fpa_log(FPA_INFO, "stop", "signal=%d", sig);
        return 1;
    }
    if (sig == SIGHUP)
        fpa_log(FPA_INFO, "wake", "signal=SIGHUP");
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = "/etc/fleetpki/agent.conf";
    int once = 0, check = 0;
    char err[FPA_ERR_MAX];
    fpa_config cfg;
    fpa_agent *a = NULL;
    sigset_t set;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--once"))
            once = 1;
        else if (!strcmp(argv[i], "--check-config"))
            check = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return usage(stdout, 0);
        else if (!strcmp(argv[i], "--version")) {
            printf("fleetpki-agent %s (%s)\n", FLEETPKI_VERSION, fp_device_backend());
            return 0;
        } else {
            char esc[128];
            fprintf(stderr, "fleetpki-agent: unknown argument %s\n", fpa_esc(argv[i], esc, sizeof(esc)));
            return usage(stderr, FPA_EXIT_CONFIG);
        }
    }
    if (once && check)
        return usage(stderr, FPA_EXIT_CONFIG);
    if (fpa_config_load(path, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetpki-agent: config error: %s\n", err);
        return FPA_EXIT_CONFIG;
    }
    if (check) {
        printf("config ok: server %s:%u label %s\n", cfg.host, cfg.port, cfg.label[0] ? cfg.label : "-");
        return 0;
    }
    /* signals are taken synchronously in wait_for: a cycle is never cut
     * in the middle of a rotation */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = fpa_agent_new(&cfg, &a)) != FPA_EXIT_OK)
        return rc;
    fpa_log(FPA_INFO, "start", "version=%s backend=%s mode=%s server=%s:%u", FLEETPKI_VERSION,
            fp_device_backend(), once ? "once" : "service", cfg.host, cfg.port);
    for (;;) {
        fpa_result r = fpa_agent_cycle(a);
        if (once) {
            rc = r.exit_code;
            break;
        }
        if (wait_for(&set, r.sleep_ms)) {
            rc = 0;
            break;
        }
    }
    fpa_agent_free(a);
    return rc;
}
