/*
 * rollover_check.c - runs the agent's root-rollover decision (rollover.c)
 * on two PEM files for tests/integration/test_agent_rollover.sh:
 *
 *   fpa-rollover-check ANCHORS.pem CACERTS.pem [OUT.pem]
 *
 * Prints "accepted N" (and writes the new anchor set to OUT) or
 * "unchanged"; the decisions are logged on stderr.  Exit 0, or 2 on error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "agent.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1024 * 1024);
    if (f == NULL || buf == NULL) {
        if (f)
            fclose(f);
        free(buf);
        return NULL;
    }
    *len = fread(buf, 1, 1024 * 1024 - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    size_t al = 0, rl = 0, ol = 0;
    char *a, *r, *out = NULL, msg[200];
    int n;

    if (argc < 3 || (a = slurp(argv[1], &al)) == NULL || (r = slurp(argv[2], &rl)) == NULL) {
        fprintf(stderr, "usage: fpa-rollover-check ANCHORS CACERTS [OUT]\n");
        return 2;
    }
    n = fpa_rollover(a, al, r, rl, &out, &ol, msg, sizeof(msg));
    if (n < 0) {
        fprintf(stderr, "error: %s\n", msg);
        return 2;
    }
    if (n == 0) {
        printf("unchanged\n");
    } else {
        printf("accepted %d\n", n);
        if (argc > 3) {
            FILE *f = fopen(argv[3], "wb");
            if (f == NULL || fwrite(out, 1, ol, f) != ol || fclose(f) != 0)
                return 2;
        }
    }
    free(out);
    free(a);
    free(r);
    return 0;
}
