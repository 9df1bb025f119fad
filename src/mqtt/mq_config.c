/*
 * mq_config.c - the plugin's plugin_opt_* options, parsed once at init
 * from one table (name, type, bounds, default) into an immutable
 * mq_config.  An unknown option or a bad value is an error: the broker
 * then refuses to start, which beats running with a typo'd policy.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../ca/config.h"
#include "mq.h"

enum { OPT_STR, OPT_BOOL, OPT_INT };

typedef struct {
    const char *name;
    int type;
    size_t off;
    size_t size;  /* OPT_STR: buffer size */
    long min, max; /* OPT_INT */
    const char *def;
} opt;

#define S(f) offsetof(mq_config, f), sizeof(((mq_config *)0)->f)
#define V(f) offsetof(mq_config, f), 0

static const opt opts[] = {
    {"data_dir", OPT_STR, S(data_dir), 0, 0, ""},
    {"store", OPT_STR, S(store), 0, 0, ""},
    {"project", OPT_STR, S(project), 0, 0, FP_PROJECT_DEFAULT},
    {"topic_pattern", OPT_STR, S(topic_pattern), 0, 0, "devices/%n/#"},
    {"auto_register", OPT_BOOL, V(auto_register), 0, 0, "true"},
    {"fail_closed", OPT_BOOL, V(fail_closed), 0, 0, "true"},
    {"client_id", OPT_STR, S(client_id), 0, 0, "name"},
    {"poll_ms", OPT_INT, V(poll_ms), 20, 5000, "200"},
    {"stale_ms", OPT_INT, V(stale_ms), 500, 600000, "3000"},
    {"contact_seconds", OPT_INT, V(contact_seconds), 0, 86400, "60"},
    {"queue_max", OPT_INT, V(queue_max), 16, 1000000, "10000"},
};
#define N_OPTS (sizeof(opts) / sizeof(*opts))

static int set(mq_config *c, const opt *o, const char *v, fp_error *err)
{
    char *p = (char *)c + o->off;

    switch (o->type) {
    case OPT_STR:
        if (strlen(v) >= o->size)
            return fp_err_set(err, FP_ERR_ARG, "plugin_opt_%s is too long", o->name);
        memcpy(p, v, strlen(v) + 1);
        return FP_ERR_OK;
    case OPT_BOOL:
        if (!strcmp(v, "true"))
            *(bool *)(void *)p = true;
        else if (!strcmp(v, "false"))
            *(bool *)(void *)p = false;
        else
            return fp_err_set(err, FP_ERR_ARG, "plugin_opt_%s must be true or false", o->name);
        return FP_ERR_OK;
    default: {
        char *end = NULL;
        long n;
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || n < o->min || n > o->max)
            return fp_err_set(err, FP_ERR_ARG, "plugin_opt_%s must be an integer in %ld..%ld",
                              o->name, o->min, o->max);
        *(int *)(void *)p = (int)n;
        return FP_ERR_OK;
    }
    }
}

/* The store path: given, or the [store] path of DATA_DIR/fleetpki.conf. */
static int resolve_store(mq_config *c, fp_error *err)
{
    fp_config *fc;
    int rc;

    if ((c->data_dir[0] != '\0') == (c->store[0] != '\0'))
        return fp_err_set(err, FP_ERR_ARG,
                          "set exactly one of plugin_opt_data_dir and plugin_opt_store");
    if (c->store[0] != '\0') {
        memcpy(c->store_path, c->store, sizeof(c->store_path));
        return FP_ERR_OK;
    }
    if ((fc = calloc(1, sizeof(*fc))) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    /* without its configuration we still know where the store would be:
     * a data directory that is away for now is a store that is
     * unavailable, not a broker that does not start */
    if (fp_config_load(fc, c->data_dir, NULL) != FP_ERR_OK)
        fp_config_defaults(fc, c->data_dir);
    rc = fp_config_path(fc, fc->store_path, c->store_path, sizeof(c->store_path), err);
    free(fc);
    return rc;
}

int mq_config_parse(mq_config *c, const char *const *keys, const char *const *values, int n,
                    fp_error *err)
{
    int rc;

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_OPTS; i++)
        if ((rc = set(c, &opts[i], opts[i].def, err)) != FP_ERR_OK)
            return rc;
    for (int i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < N_OPTS && strcmp(keys[i], opts[j].name) != 0; j++)
            ;
        if (j == N_OPTS)
            return fp_err_set(err, FP_ERR_ARG, "unknown option plugin_opt_%s", keys[i]);
        if ((rc = set(c, &opts[j], values[i] ? values[i] : "", err)) != FP_ERR_OK)
            return rc;
    }
    if (!strcmp(c->project, "all"))
        c->project[0] = '\0';
    else if (!fp_project_name_ok(c->project))
        return fp_err_set(err, FP_ERR_ARG, "plugin_opt_project: '%s' is not a project name",
                          c->project);
    if (strcmp(c->client_id, "name") != 0 && strcmp(c->client_id, "any") != 0)
        return fp_err_set(err, FP_ERR_ARG, "plugin_opt_client_id must be name or any");
    c->bind_client_id = !strcmp(c->client_id, "name");
    if (!mq_pattern_ok(c->topic_pattern))
        return fp_err_set(err, FP_ERR_ARG,
                          "plugin_opt_topic_pattern must be a topic filter holding %%n "
                          "(the device name); %%p (project) and %%%% are the other escapes");
    return resolve_store(c, err);
}
