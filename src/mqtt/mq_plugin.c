/*
 * mq_plugin.c - fleetpki_mosquitto.so: the entry points of a Mosquitto 2.0
 * plugin (plugin API version 5) and its broker callbacks.  The only
 * symbols the object exports are mosquitto_plugin_version, _init and
 * _cleanup (hidden visibility and a version script for the rest, the
 * registry and store code it links included).
 *
 * Where the decision is taken.  Mosquitto 2.0.11 calls MOSQ_EVT_BASIC_AUTH
 * on every CONNECT of a listener that has neither use_identity_as_username
 * nor use_subject_as_username (handle_connect.c: with either set,
 * "authentication assumed to be cleared" and no plugin is asked).  So:
 *   - BASIC_AUTH, when it comes, decides: a refusal is CONNACK "not
 *     authorised" (MQTT 3.1.1 return code 5, MQTT 5 reason 0x87);
 *   - MOSQ_EVT_ACL_CHECK comes before every publish, subscription and
 *     delivery in every mode.  A client without a session (identity mode,
 *     or admitted before a reload) is decided there on first use; a
 *     refused one is denied everything and kicked at the next TICK.  No
 *     message reaches or leaves it either way.
 * The same ACL callback confines an admitted device to its topic filter
 * (plugin_opt_topic_pattern expanded): publish and delivery topics must
 * match it, subscription filters must lie within it.
 *
 * MOSQ_EVT_TICK (the broker's loop, at least every 100 ms) kicks the
 * clients the poller thread marked, writes the log lines other threads
 * queued and says when a thread waits on the store too long
 * (mq_watch_check); MOSQ_EVT_DISCONNECT forgets a session.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "mq.h"

#define EXPORT __attribute__((visibility("default")))
#define LOG_QUEUE_MAX 1000

static mosquitto_plugin_id_t *plugin_id;
static mq_state *state;

int64_t mq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void push_log_locked(mq_state *st, int level, const char *line)
{
    char *copy;

    if (st->n_logs == st->cap_logs) {
        size_t cap = st->cap_logs ? st->cap_logs * 2 : 16;
        char **l;
        int *v;
        if (cap > LOG_QUEUE_MAX)
            return; /* a flood of lines waiting: drop, the broker is stuck anyway */
        if ((l = realloc(st->logs, cap * sizeof(*l))) == NULL)
            return;
        st->logs = l;
        if ((v = realloc(st->log_levels, cap * sizeof(*v))) == NULL)
            return;
        st->log_levels = v;
        st->cap_logs = cap;
    }
    if ((copy = strdup(line)) == NULL)
        return;
    st->logs[st->n_logs] = copy;
    st->log_levels[st->n_logs++] = level;
    atomic_store(&st->pending, true);
}

void mq_log_locked(mq_state *st, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    push_log_locked(st, level, line);
}

void mq_log(mq_state *st, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (pthread_equal(pthread_self(), st->broker_thread)) {
        mosquitto_log_printf(level, "%s", line);
        return;
    }
    pthread_mutex_lock(&st->mu);
    push_log_locked(st, level, line);
    pthread_mutex_unlock(&st->mu);
}

void mq_kick_locked(mq_state *st, const char *clientid)
{
    char *copy;

    if (clientid == NULL || clientid[0] == '\0')
        return;
    if (st->n_kicks == st->cap_kicks) {
        size_t cap = st->cap_kicks ? st->cap_kicks * 2 : 16;
        char **k = realloc(st->kicks, cap * sizeof(*k));
        if (k == NULL)
            return;
        st->kicks = k;
        st->cap_kicks = cap;
    }
    if ((copy = strdup(clientid)) == NULL)
        return;
    st->kicks[st->n_kicks++] = copy;
    atomic_store(&st->pending, true);
}

void mq_session_refuse_locked(mq_state *st, mq_session *s)
{
    if (s->refused)
        return;
    s->refused = true;
    mq_kick_locked(st, s->clientid);
}

/* ---- callbacks (the broker's thread) ---- */

static int on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ed = event_data;
    mq_state *st = userdata;
    X509 *cert = mosquitto_client_certificate(ed->client); /* a reference: ours to free */
    mq_session *s = NULL;

    (void)event;
    mq_decide(st, ed->client, mosquitto_client_id(ed->client),
              mosquitto_client_address(ed->client), cert, &s);
    X509_free(cert);
    return s != NULL ? MOSQ_ERR_SUCCESS : MOSQ_ERR_AUTH;
}

/* Whether s may do access on topic (under mu). */
static bool allowed_locked(const mq_session *s, int access, const char *topic)
{
    if (s->refused || topic == NULL)
        return false;
    switch (access) {
    case MOSQ_ACL_SUBSCRIBE:
        return mq_filter_within(s->filter, topic);
    case MOSQ_ACL_UNSUBSCRIBE:
        return true;
    case MOSQ_ACL_READ:
    case MOSQ_ACL_WRITE:
        return mq_topic_matches(s->filter, topic);
    default:
        return false;
    }
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ed = event_data;
    mq_state *st = userdata;
    const void *client = ed->client;
    mq_session *s;
    bool ok;

    (void)event;
    pthread_mutex_lock(&st->mu);
    s = mq_hash_get(&st->sessions, &client, sizeof(client));
    pthread_mutex_unlock(&st->mu);
    if (s == NULL) {
        /* not decided at CONNECT (use_identity_as_username, or a reload) */
        X509 *cert = mosquitto_client_certificate(ed->client);
        mq_decide(st, ed->client, mosquitto_client_id(ed->client),
                  mosquitto_client_address(ed->client), cert, &s);
        X509_free(cert);
        if (s == NULL) {
            pthread_mutex_lock(&st->mu);
            mq_kick_locked(st, mosquitto_client_id(ed->client));
            pthread_mutex_unlock(&st->mu);
            return MOSQ_ERR_ACL_DENIED;
        }
    }
    pthread_mutex_lock(&st->mu);
    ok = allowed_locked(s, ed->access, ed->topic);
    pthread_mutex_unlock(&st->mu);
    if (!ok && ed->access != MOSQ_ACL_READ) {
        char esc_id[FP_LOG_ESCAPED_MAX(64)], esc_topic[FP_LOG_ESCAPED_MAX(128)];
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetpki: denied %s client_id=%s topic=%s",
                             ed->access == MOSQ_ACL_SUBSCRIBE ? "subscribe" : "publish",
                             fp_log_escape(esc_id, sizeof(esc_id), mosquitto_client_id(ed->client)),
                             fp_log_escape(esc_topic, sizeof(esc_topic), ed->topic));
    }
    return ok ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

/* The kicks and log lines other threads queued. */
static void flush_pending(mq_state *st)
{
    char **kicks, **logs;
    int *levels;
    size_t n_kicks, n_logs;

    pthread_mutex_lock(&st->mu);
    kicks = st->kicks;
    n_kicks = st->n_kicks;
    logs = st->logs;
    levels = st->log_levels;
    n_logs = st->n_logs;
    st->kicks = NULL;
    st->n_kicks = st->cap_kicks = 0;
    st->logs = NULL;
    st->log_levels = NULL;
    st->n_logs = st->cap_logs = 0;
    atomic_store(&st->pending, false);
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < n_logs; i++) {
        mosquitto_log_printf(levels[i], "%s", logs[i]);
        free(logs[i]);
    }
    /* outside the lock: a kick calls our DISCONNECT callback at once */
    for (size_t i = 0; i < n_kicks; i++) {
        char esc[FP_LOG_ESCAPED_MAX(64)];
        if (mosquitto_kick_client_by_clientid(kicks[i], false) == MOSQ_ERR_SUCCESS)
            mosquitto_log_printf(MOSQ_LOG_NOTICE,
                                 "fleetpki: disconnected client_id=%s (revoked, suspended or "
                                 "decommissioned)",
                                 fp_log_escape(esc, sizeof(esc), kicks[i]));
        free(kicks[i]);
    }
    free(kicks);
    free(logs);
    free(levels);
}

static int on_tick(int event, void *event_data, void *userdata)
{
    mq_state *st = userdata;

    (void)event;
    (void)event_data;
    if (atomic_load(&st->pending))
        flush_pending(st);
    /* after the queued lines: "cache loaded" before "answering again" */
    mq_watch_check(st);
    return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_disconnect *ed = event_data;

    (void)event;
    mq_session_drop(userdata, ed->client);
    return MOSQ_ERR_SUCCESS;
}

/* ---- entry points ---- */

static const struct {
    int event;
    MOSQ_FUNC_generic_callback cb;
} callbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, on_basic_auth},
    {MOSQ_EVT_ACL_CHECK, on_acl_check},
    {MOSQ_EVT_TICK, on_tick},
    {MOSQ_EVT_DISCONNECT, on_disconnect},
};
#define N_CALLBACKS (sizeof(callbacks) / sizeof(*callbacks))

static void free_session(void *p)
{
    mq_session *s = p;
    free(s->clientid);
    free(s);
}

static void state_free(mq_state *st)
{
    if (st == NULL)
        return;
    mq_sync_stop(st);
    mq_hash_clear(&st->sessions, free_session);
    mq_hash_clear(&st->by_serial, NULL);
    mq_hash_clear(&st->devs, free);
    mq_hash_clear(&st->revoked, NULL);
    for (int i = 0; i < st->n_cas; i++)
        X509_free(st->cas[i].x);
    free(st->cas);
    free(st->projs);
    for (size_t i = 0; i < st->n_kicks; i++)
        free(st->kicks[i]);
    free(st->kicks);
    for (size_t i = 0; i < st->n_logs; i++)
        free(st->logs[i]);
    free(st->logs);
    free(st->log_levels);
    pthread_cond_destroy(&st->pcv);
    pthread_cond_destroy(&st->wcv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++)
        if (supported_versions[i] == 5)
            return 5;
    return -1;
}

EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                                 struct mosquitto_opt *options, int option_count)
{
    const char **keys = NULL, **values = NULL;
    mq_state *st = NULL;
    fp_error err = {0};
    size_t registered = 0;
    int rc = MOSQ_ERR_UNKNOWN;

    if (option_count < 0 || (st = calloc(1, sizeof(*st))) == NULL ||
        (keys = calloc((size_t)option_count + 1, sizeof(*keys))) == NULL ||
        (values = calloc((size_t)option_count + 1, sizeof(*values))) == NULL) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "fleetpki: out of memory");
        free(st);
        st = NULL;
        rc = MOSQ_ERR_NOMEM;
        goto out;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->pcv, NULL);
    pthread_cond_init(&st->wcv, NULL);
    st->broker_thread = pthread_self();
    for (int i = 0; i < option_count; i++) {
        keys[i] = options[i].key ? options[i].key : "";
        values[i] = options[i].value;
    }
    if (mq_config_parse(&st->cfg, keys, values, option_count, &err) != FP_ERR_OK) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "fleetpki: configuration: %s", err.msg);
        rc = MOSQ_ERR_INVAL;
        goto out;
    }
    if (mq_sync_start(st, &err) != FP_ERR_OK) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "fleetpki: %s", err.msg);
        goto out;
    }
    for (; registered < N_CALLBACKS; registered++)
        if (mosquitto_callback_register(identifier, callbacks[registered].event,
                                        callbacks[registered].cb, NULL, st) != MOSQ_ERR_SUCCESS) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "fleetpki: cannot register callback %d",
                                 callbacks[registered].event);
            goto out;
        }
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "fleetpki: plugin loaded: store=%s project=%s topic_pattern=%s "
                         "auto_register=%s fail_closed=%s poll_ms=%d",
                         st->cfg.store_path, st->cfg.project[0] ? st->cfg.project : "all",
                         st->cfg.topic_pattern, st->cfg.auto_register ? "true" : "false",
                         st->cfg.fail_closed ? "true" : "false", st->cfg.poll_ms);
    plugin_id = identifier;
    state = st;
    *userdata = st;
    st = NULL;
    rc = MOSQ_ERR_SUCCESS;
out:
    if (st != NULL) {
        while (registered-- > 0)
            mosquitto_callback_unregister(identifier, callbacks[registered].event,
                                          callbacks[registered].cb, NULL);
        state_free(st);
    }
    free(keys);
    free(values);
    return rc;
}

EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
                                    int option_count)
{
    mq_state *st = userdata;

    (void)options;
    (void)option_count;
    if (st == NULL)
        return MOSQ_ERR_SUCCESS;
    for (size_t i = 0; i < N_CALLBACKS && plugin_id != NULL; i++)
        mosquitto_callback_unregister(plugin_id, callbacks[i].event, callbacks[i].cb, NULL);
    if (st == state) {
        state = NULL;
        plugin_id = NULL;
    }
    state_free(st);
    return MOSQ_ERR_SUCCESS;
}
