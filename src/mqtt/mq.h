/*
 * mq.h - the Mosquitto broker plugin (issue 11), private to src/mqtt.
 * docs/mqtt.md has the configuration and the model.
 *
 *   mq_plugin.c   entry points and broker callbacks (the broker's thread)
 *   mq_decide.c   admit or refuse a client certificate from the cache
 *   mq_sync.c     the cache loader/poller thread and the registration
 *                 writer thread (each with its own store handle)
 *   mq_config.c   plugin_opt_* options, from one table
 *   mq_topic.c    topic pattern expansion and MQTT filter checks
 *   mq_hash.c     a small hash map
 *
 * Threads.  Mosquitto runs every callback on its one thread, and almost
 * none of its API may be called from another (mosquitto_log_printf may
 * queue a $SYS message; a kick frees state).  So the plugin's own threads
 * never call the broker: they update the cache under mq_state.mu and
 * leave kicks and log lines in queues that the MOSQ_EVT_TICK callback
 * (the broker's thread, at least every 100 ms in 2.0) drains.  A CONNECT
 * reads only memory: no store read, no disk write waits on it.
 */
#ifndef FP_MQ_H
#define FP_MQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "../ca/config.h"
#include "../common/err.h"
#include "../common/util.h"
#include "../store/store.h"
#include "../x509/x509util.h"

/* ---- mq_hash.c: chained hash map over byte-string keys (copied in) ---- */
typedef struct mq_hnode mq_hnode;
typedef struct mq_hash {
    mq_hnode **b;
    size_t nb, n;
} mq_hash;

void *mq_hash_get(const mq_hash *t, const void *key, size_t klen);
/* Insert or replace; 0, or -1 out of memory (t unchanged). */
int mq_hash_put(mq_hash *t, const void *key, size_t klen, void *val);
/* Remove; returns the value (NULL if absent). */
void *mq_hash_del(mq_hash *t, const void *key, size_t klen);
/* Call fn on every value (may be NULL) and empty t. */
void mq_hash_clear(mq_hash *t, void (*fn)(void *));
/* Call fn(arg, value) on every value; fn must not change t. */
void mq_hash_each(const mq_hash *t, void (*fn)(void *arg, void *val), void *arg);

/* ---- mq_config.c ---- */
#define MQ_TOPIC_MAX 512

typedef struct mq_config {
    char data_dir[FP_PATH_MAX];      /* fleetpki data directory (its fleetpki.conf) */
    char store[FP_PATH_MAX];         /* or the store path / URL itself */
    char store_path[FP_PATH_MAX];    /* resolved: what fp_store_open gets */
    char project[FP_PROJECT_MAX];    /* "" = every project ("all") */
    char topic_pattern[MQ_TOPIC_MAX];
    bool auto_register;
    bool fail_closed;
    char client_id[8];    /* "name": a client id is its device's; "any" */
    bool bind_client_id;  /* client_id is "name" */
    int poll_ms;          /* change-log poll interval */
    int stale_ms;         /* no successful poll for this long: store unavailable */
    int contact_seconds;  /* a known device's contact (last seen) at most this often */
    int queue_max;        /* registration writer queue bound */
} mq_config;

/* Parse n options (keys without the plugin_opt_ prefix) over the
 * defaults; FP_ERR_ARG naming the option for an unknown key, a bad value
 * or a missing store. */
int mq_config_parse(mq_config *c, const char *const *keys, const char *const *values, int n,
                    fp_error *err);

/* ---- mq_topic.c ---- */
/* Whether name can stand in a topic level: non-empty, without '/', '+',
 * '#' (which would widen its subtree into others'). */
bool mq_name_topic_safe(const char *name);
/* Whether pattern is a valid filter with %n (and only %n, %p, %%). */
bool mq_pattern_ok(const char *pattern);
/* pattern with %n = name, %p = project, %% = %; -1 if it does not fit. */
int mq_topic_expand(const char *pattern, const char *project, const char *name, char *out,
                    size_t size);
/* MQTT 3.1.1 4.7: whether topic (no wildcards) matches filter. */
bool mq_topic_matches(const char *filter, const char *topic);
/* Whether every topic that filter inner matches also matches outer. */
bool mq_filter_within(const char *outer, const char *inner);

/* ---- the shared state ---- */
typedef struct mq_session mq_session;

/* A device of a served project.  key holds "project\0name\0". */
typedef struct mq_dev {
    int state;                 /* fp_dev_state */
    bool vfp_ok;               /* vfp: the last certificate whose signature we checked */
    unsigned char vfp[32];
    int64_t contacted_at;      /* last contact queued for the writer */
    mq_session *sessions;      /* its open connections */
    size_t klen;
    char key[];
} mq_dev;
#define MQ_DEV_PROJECT(d) ((d)->key)
#define MQ_DEV_NAME(d) ((d)->key + strlen((d)->key) + 1)

/* A CA a client certificate may be issued by: an issuing CA (ours) or a
 * project's bring-your-own trust root. */
typedef struct mq_ca {
    X509 *x;
    char id[FP_CA_ID_MAX];
    char project[FP_PROJECT_MAX];
    int kind; /* FP_CA_ISSUING or FP_CA_TRUST_ROOT */
} mq_ca;

typedef struct mq_proj {
    char name[FP_PROJECT_MAX];
    int rule; /* fp_devname_rule */
} mq_proj;

/* One admitted connection (broker thread creates and frees it). */
struct mq_session {
    const void *client;        /* struct mosquitto *, the map's key */
    char *clientid;
    mq_dev *dev;
    char serial[FP_SERIAL_HEX_MAX];
    char filter[MQ_TOPIC_MAX]; /* the device's topic filter */
    bool refused;              /* revoked / suspended since: deny, kick */
    mq_session *dprev, *dnext; /* dev->sessions */
    mq_session *snext;         /* by_serial chain */
};

typedef struct mq_job {
    char project[FP_PROJECT_MAX];
    X509 *cert;
} mq_job;

/* What a thread is waiting on the store for, so that the broker thread
 * can tell when the store stops answering (mq_watch_check): a call that
 * never returns (a store that hangs, a lock held, a connection that
 * waits for ever) would otherwise leave the plugin silently stuck. */
typedef struct mq_watch {
    const char *who;               /* "poller", "registration writer" */
    _Atomic int64_t since;         /* its current store step began (monotonic ms); 0: idle */
    _Atomic(const char *) what;    /* that step, static text */
    int64_t warned_since;          /* broker thread: the step we said is stuck, 0: none */
    const char *warned_what;
} mq_watch;

typedef struct mq_state {
    mq_config cfg;
    pthread_t broker_thread;

    pthread_mutex_t mu; /* everything below unless said otherwise */
    mq_hash devs;       /* "project\0name" -> mq_dev */
    mq_hash revoked;    /* serial -> (void *)1: revoked or on hold, served projects */
    mq_ca *cas;
    int n_cas;
    mq_proj *projs;
    int n_projs;
    bool loaded;            /* a full load has completed once */
    int64_t last_ok_ms;     /* last successful poll (monotonic ms) */
    mq_hash sessions;       /* client pointer -> mq_session */
    mq_hash by_serial;      /* serial -> first mq_session with it */
    char **kicks;           /* client ids to kick (TICK) */
    size_t n_kicks, cap_kicks;
    char **logs;            /* lines for mosquitto_log_printf (TICK) */
    int *log_levels;
    size_t n_logs, cap_logs;
    atomic_bool pending;    /* kicks or logs wait: TICK takes the lock */

    /* threads: stopping, poller, writer (jobs under mu, signalled on wcv) */
    bool stopping;
    pthread_cond_t pcv, wcv;
    pthread_t poller, writer;
    bool poller_started, writer_started;
    mq_job *jobs;
    size_t n_jobs, head_job;
    bool queue_full_logged;

    /* no lock: atomics written by their thread, read by the broker's */
    mq_watch watch_poller, watch_writer;
} mq_state;

/* Log from any thread: straight to the broker on its thread, queued for
 * TICK on another.  level is a MOSQ_LOG_* value. */
void mq_log(mq_state *st, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, queued for TICK whatever the thread, by a holder of mu. */
void mq_log_locked(mq_state *st, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Monotonic milliseconds. */
int64_t mq_now_ms(void);
/* Queue clientid for a kick at the next TICK (under mu). */
void mq_kick_locked(mq_state *st, const char *clientid);
/* Mark sess refused and queue its kick (under mu). */
void mq_session_refuse_locked(mq_state *st, mq_session *sess);

/* ---- mq_decide.c (broker thread) ---- */
/* Admit client (certificate cert, borrowed) or refuse it: on admission
 * *out is its new session (registered in st->sessions); on refusal NULL,
 * with the reason logged.  Takes mu. */
/* clientid is one of device name's (NAME or NAME/...). */
bool mq_client_id_ok(const char *clientid, const char *name);

void mq_decide(mq_state *st, const void *client, const char *clientid, const char *address,
               X509 *cert, mq_session **out);
/* Forget client's session, if any (takes mu). */
void mq_session_drop(mq_state *st, const void *client);
/* mq_dev for (project, name) (under mu), created active if absent and
 * create is set; NULL if absent or out of memory. */
mq_dev *mq_dev_get(mq_state *st, const char *project, const char *name, bool create);

/* ---- mq_sync.c ---- */
int mq_sync_start(mq_state *st, fp_error *err);
void mq_sync_stop(mq_state *st);
/* Queue a registration / contact of cert (up-ref'd) for the writer
 * (under mu). */
void mq_contact_locked(mq_state *st, const char *project, X509 *cert);
/* The store as the broker thread sees it: loaded and polled recently. */
bool mq_store_fresh_locked(const mq_state *st);
/* Broker thread (TICK): say once when a thread's store step has not
 * returned for stale_ms, and again when it does. */
void mq_watch_check(mq_state *st);

#endif
