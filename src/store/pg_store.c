/*
 * pg_store.c - the PostgreSQL backend: a handle is one libpq connection
 * (pg_int.h says how several nodes stay correct on one database).
 *
 * Connection: any libpq connection string, including several hosts with
 * target_session_attrs=read-write, so that after a failover the handle
 * finds the new primary.  A handle whose connection broke reconnects at
 * its next call outside a transaction (PQreset walks the host list
 * again); a call that fails meanwhile returns FP_ERR_UNAVAILABLE
 * ("database unavailable: ..."), which EST answers with 503 and
 * Retry-After.  Nothing is retried blindly inside a transaction:
 * a COMMIT whose answer was lost is reported as a failure, and the caller
 * (EST, the CLI) did not tell its client that the certificate exists.
 *
 * Statements are prepared once per connection (by the address of their
 * SQL text, always a string constant) and kept until it is reset.
 * Durability: synchronous_commit stays at the server's setting (on by
 * default: COMMIT returns after the WAL is flushed, and with synchronous
 * standbys configured, after they have it too).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "pg_int.h"

void pp_str(pg_params *p, const char *v)
{
    p->v[p->n] = v;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

void pp_i64(pg_params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
    pp_str(p, p->num[p->n]);
}

void pp_bytes(pg_params *p, const void *v, size_t len)
{
    p->v[p->n] = v != NULL ? v : "";
    p->len[p->n] = (int)len;
    p->fmt[p->n] = 1;
    p->n++;
}

/* Reconnect when the connection broke (never inside a transaction: its
 * work is gone with the old connection, the caller sees the failure). */
static int ensure_conn(pg_store *s, fp_error *err)
{
    if (PQstatus(s->conn) == CONNECTION_OK)
        return FP_ERR_OK;
    s->sqlstate[0] = '\0';
    if (s->in_tx)
        return s->last_rc = fp_err_set(err, FP_ERR_UNAVAILABLE,
                                       "database unavailable: connection lost");
    PQreset(s->conn);
    s->n_prepared = 0;
    s->listening = false;
    if (PQstatus(s->conn) != CONNECTION_OK)
        return s->last_rc = fp_err_set(err, FP_ERR_UNAVAILABLE, "database unavailable: %s",
                                       PQerrorMessage(s->conn));
    fp_log(FP_LOG_INFO, "store: reconnected to the database");
    return FP_ERR_OK;
}

static PGresult *check_result(pg_store *s, PGresult *res, const char *what, fp_error *err)
{
    ExecStatusType st = PQresultStatus(res);
    const char *state, *msg;

    if (res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
        s->sqlstate[0] = '\0';
        return res;
    }
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", state ? state : "");
    msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    /* connection lost, or the server going away (57P01 admin_shutdown,
     * 57P02/57P03 crash or starting up, 25006 read-only after a failover
     * until we reconnect to the new primary) */
    if (PQstatus(s->conn) != CONNECTION_OK || state == NULL || !strncmp(state, "57P0", 4) ||
        !strcmp(state, "25006") ||
        /* 55P03 lock_not_available: a lock waited on past lock_timeout
         * (fp_store_pg_open); the caller answers 503, not hangs */
        !strcmp(state, "55P03"))
        s->last_rc = fp_err_set(err, FP_ERR_UNAVAILABLE, "database unavailable: %s: %s", what,
                                msg ? msg : PQerrorMessage(s->conn));
    else
        s->last_rc = fp_err_set(err, FP_ERR_STORE, "%s: %s", what,
                                msg ? msg : PQerrorMessage(s->conn));
    PQclear(res);
    return NULL;
}

static bool is_prepared(pg_store *s, const char *sql, int *slot)
{
    for (int i = 0; i < s->n_prepared; i++)
        if (s->prepared[i] == sql) {
            *slot = i;
            return true;
        }
    return false;
}

PGresult *pg_q(pg_store *s, const char *sql, const pg_params *p, const char *what, fp_error *err)
{
    static const pg_params none = {0};
    char name[16];
    int slot = -1;

    if (p == NULL)
        p = &none;
    if (ensure_conn(s, err) != FP_ERR_OK)
        return NULL;
    if (!is_prepared(s, sql, &slot)) {
        if (s->n_prepared >= PG_MAX_STMTS)
            return pg_q_once(s, sql, p, what, err);
        slot = s->n_prepared;
        snprintf(name, sizeof(name), "fp%d", slot);
        PGresult *prep = check_result(s, PQprepare(s->conn, name, sql, p->n, NULL), what, err);
        if (prep == NULL)
            return NULL;
        PQclear(prep);
        s->prepared[s->n_prepared++] = sql;
    }
    snprintf(name, sizeof(name), "fp%d", slot);
    return check_result(s, PQexecPrepared(s->conn, name, p->n, p->v, p->len, p->fmt, 0), what,
                        err);
}

int pg_q_i64(pg_store *s, const char *sql, const pg_params *p, const char *what, int64_t *out,
             fp_error *err)
{
    PGresult *res;

    *out = 0;
    if ((res = pg_q(s, sql, p, what, err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) > 0)
        *out = pg_i64(res, 0, 0);
    PQclear(res);
    return FP_ERR_OK;
}

int pg_prepare(pg_store *s, const char *sql, int nparams, fp_error *err)
{
    char name[16];
    PGresult *res;
    int slot;

    if (ensure_conn(s, err) != FP_ERR_OK)
        return s->last_rc;
    if (is_prepared(s, sql, &slot))
        return FP_ERR_OK;
    if (s->n_prepared >= PG_MAX_STMTS)
        return fp_err_set(err, FP_ERR_INTERNAL, "too many prepared statements");
    snprintf(name, sizeof(name), "fp%d", s->n_prepared);
    if ((res = check_result(s, PQprepare(s->conn, name, sql, nparams, NULL), "prepare", err)) ==
        NULL)
        return s->last_rc;
    PQclear(res);
    s->prepared[s->n_prepared++] = sql;
    return FP_ERR_OK;
}

static int pipe_broken(pg_store *s, fp_error *err)
{
    return s->last_rc = fp_err_set(err, FP_ERR_UNAVAILABLE, "database unavailable: %s",
                                   PQerrorMessage(s->conn));
}

int pg_pipe_start(pg_store *s, fp_error *err)
{
    if (ensure_conn(s, err) != FP_ERR_OK)
        return s->last_rc;
    return PQenterPipelineMode(s->conn) ? FP_ERR_OK : pipe_broken(s, err);
}

int pg_pipe_send(pg_store *s, const char *sql, const pg_params *p, fp_error *err)
{
    char name[16];
    int slot, ok;

    if (p == NULL) {
        ok = PQsendQueryParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    } else {
        if (!is_prepared(s, sql, &slot))
            return fp_err_set(err, FP_ERR_INTERNAL, "pipeline statement not prepared");
        snprintf(name, sizeof(name), "fp%d", slot);
        ok = PQsendQueryPrepared(s->conn, name, p->n, p->v, p->len, p->fmt, 0);
    }
    return ok ? FP_ERR_OK : pipe_broken(s, err);
}

int pg_pipe_run(pg_store *s, int n, int *failed,
                int (*on_result)(void *arg, int i, PGresult *res, fp_error *err), void *arg,
                fp_error *err)
{
    PGresult *res;
    int rc = FP_ERR_OK;

    *failed = -1;
    if (!PQpipelineSync(s->conn)) {
        rc = pipe_broken(s, err);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        ExecStatusType st;
        if ((res = PQgetResult(s->conn)) == NULL) {
            if (rc == FP_ERR_OK) {
                rc = pipe_broken(s, err);
                *failed = i;
            }
            break;
        }
        st = PQresultStatus(res);
        if (rc != FP_ERR_OK) {
            PQclear(res); /* after the failure: aborted, not looked at */
        } else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (on_result != NULL)
                rc = on_result(arg, i, res, err);
            PQclear(res);
            if (rc != FP_ERR_OK)
                *failed = i;
        } else {
            check_result(s, res, "pipeline", err); /* clears res */
            rc = s->last_rc;
            *failed = i;
        }
        /* the NULL that ends this statement's results */
        while ((res = PQgetResult(s->conn)) != NULL)
            PQclear(res);
    }
    /* the sync point */
    while ((res = PQgetResult(s->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st == PGRES_PIPELINE_SYNC)
            break;
    }
out:
    if (!PQexitPipelineMode(s->conn)) {
        /* results left unread: start over on a new connection (the open
         * transaction, if any, is rolled back by the server) */
        if (rc == FP_ERR_OK)
            rc = pipe_broken(s, err);
        PQreset(s->conn);
        s->n_prepared = 0;
        s->listening = false;
        s->in_tx = false;
    }
    return rc;
}

PGresult *pg_q_once(pg_store *s, const char *sql, const pg_params *p, const char *what,
                    fp_error *err)
{
    static const pg_params none = {0};

    if (p == NULL)
        p = &none;
    if (ensure_conn(s, err) != FP_ERR_OK)
        return NULL;
    return check_result(s, PQexecParams(s->conn, sql, p->n, NULL, p->v, p->len, p->fmt, 0), what,
                        err);
}

int pg_cmd(pg_store *s, const char *sql, const pg_params *p, const char *what, int64_t *changed,
           fp_error *err)
{
    PGresult *res = pg_q(s, sql, p, what, err);

    if (res == NULL)
        return s->last_rc;
    if (changed != NULL)
        *changed = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return FP_ERR_OK;
}

bool pg_failed_with(const pg_store *s, const char *sqlstate)
{
    return strcmp(s->sqlstate, sqlstate) == 0;
}

/* A statement without parameters through the simple protocol (several
 * statements in one round trip). */
static int simple(pg_store *s, const char *sql, const char *what, fp_error *err)
{
    PGresult *res;

    if (ensure_conn(s, err) != FP_ERR_OK)
        return s->last_rc;
    res = check_result(s, PQexec(s->conn, sql), what, err);
    if (res == NULL)
        return s->last_rc;
    PQclear(res);
    return FP_ERR_OK;
}

int pg_begin(pg_store *s, bool lock_head, fp_error *err)
{
    int rc;

    s->head_locked = s->head_dirty = false;
    if ((rc = simple(s, "BEGIN", "BEGIN", err)) != FP_ERR_OK)
        return rc;
    s->in_tx = true;
    if (lock_head && (rc = pg_audit_lock_head(s, err)) != FP_ERR_OK) {
        pg_rollback(s);
        return rc;
    }
    return FP_ERR_OK;
}

int pg_commit(pg_store *s, fp_error *err)
{
    int rc = FP_ERR_OK;

    if (s->head_dirty) {
        static const char set_head[] =
            "UPDATE meta SET value = CASE key WHEN 'audit_head_id' THEN $1 ELSE $2 END"
            " WHERE key IN ('audit_head_id', 'audit_head_hash')";
        pg_params p = {0};
        pp_i64(&p, s->head_id);
        pp_str(&p, s->head_hash);
        rc = pg_cmd(s, set_head, &p, "audit head", NULL, err);
    }
    if (rc == FP_ERR_OK)
        rc = simple(s, "COMMIT", "COMMIT", err);
    s->in_tx = false;
    s->head_locked = s->head_dirty = false;
    if (rc == FP_ERR_OK)
        fp_test_crash_point("store-after-commit");
    return rc;
}

void pg_rollback(pg_store *s)
{
    s->head_locked = s->head_dirty = false;
    if (s->in_tx && PQstatus(s->conn) == CONNECTION_OK)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    s->in_tx = false;
}

int pg_finish_write(pg_store *s, const fp_audit_event *ev, int rc, fp_error *err)
{
    if (rc == FP_ERR_OK && ev != NULL)
        rc = pg_audit_append_locked(s, ev, err);
    if (rc == FP_ERR_OK)
        rc = pg_commit(s, err);
    if (rc != FP_ERR_OK)
        pg_rollback(s);
    return rc;
}

const char *pg_val(const PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? "" : PQgetvalue(res, r, c);
}

int64_t pg_i64(const PGresult *res, int r, int c)
{
    return strtoll(pg_val(res, r, c), NULL, 10);
}

void pg_copy(const PGresult *res, int r, int c, char *buf, size_t size)
{
    snprintf(buf, size, "%s", pg_val(res, r, c));
}

char *pg_strdup(const PGresult *res, int r, int c)
{
    return strdup(pg_val(res, r, c));
}

unsigned char *pg_bytea(const PGresult *res, int r, int c, size_t *len)
{
    unsigned char *raw, *out;
    size_t n = 0;

    *len = 0;
    raw = PQunescapeBytea((const unsigned char *)pg_val(res, r, c), &n);
    if (raw == NULL)
        return NULL;
    out = malloc(n > 0 ? n : 1);
    if (out != NULL && n > 0)
        memcpy(out, raw, n);
    PQfreemem(raw);
    if (out != NULL)
        *len = n;
    return out;
}

int pg_project_exists(pg_store *s, const char *name, bool *found, fp_error *err)
{
    static const char sql[] = "SELECT 1 FROM projects WHERE name = $1";
    pg_params p = {0};
    PGresult *res;

    *found = false;
    pp_str(&p, name);
    if ((res = pg_q(s, sql, &p, "project lookup", err)) == NULL)
        return s->last_rc;
    *found = PQntuples(res) > 0;
    PQclear(res);
    return FP_ERR_OK;
}

static void pg_close(fp_store *base)
{
    pg_store *s = PG(base);

    if (s == NULL)
        return;
    PQfinish(s->conn);
    free(s->conninfo);
    free(s);
}

/* Server-side consistency the way PostgreSQL offers it to a non-superuser:
 * the schema is at this build's version and the audit head row exists
 * (corruption checks proper are the server's, amcheck/pg_checksums). */
static int pg_check(fp_store *base, fp_error *err)
{
    pg_store *s = PG(base);
    PGresult *res = pg_q(s, "SELECT count(*) FROM meta WHERE key IN"
                            " ('audit_head_id', 'audit_head_hash')", NULL, "check", err);
    int rc = FP_ERR_OK;

    if (res == NULL)
        return s->last_rc;
    if (pg_i64(res, 0, 0) != 2)
        rc = fp_err_set(err, FP_ERR_STORE, "check: audit head record missing");
    PQclear(res);
    return rc;
}

static const fp_store_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .maintain = NULL, /* autovacuum does the upkeep */
    .check = pg_check,
    .project_put = pg_project_put,
    .project_get = pg_project_get,
    .project_list = pg_project_list,
    .ca_add = pg_ca_add,
    .ca_get = pg_ca_get,
    .ca_list = pg_ca_list,
    .ca_activate = pg_ca_activate,
    .ca_set_cert = pg_ca_set_cert,
    .cert_insert = pg_cert_insert,
    .cert_get = pg_cert_get,
    .cert_list = pg_cert_list,
    .cert_set_status = pg_cert_set_status,
    .cert_status = pg_cert_status,
    .revoked_iter = pg_revoked_iter,
    .revocation_number_next = pg_revocation_number_next,
    .status_seq = pg_status_seq,
    .status_changes = pg_status_changes,
    .status_wait = pg_status_wait,
    .crl_put = pg_crl_put,
    .crl_get = pg_crl_get,
    .crl_lock = pg_crl_lock,
    .token_put = pg_token_put,
    .token_get = pg_token_get,
    .token_use = pg_token_use,
    .token_list = pg_token_list,
    .token_delete = pg_token_delete,
    .apikey_put = pg_apikey_put,
    .apikey_get = pg_apikey_get,
    .apikey_list = pg_apikey_list,
    .apikey_revoke = pg_apikey_revoke,
    .pending_add = pg_pending_add,
    .pending_find = pg_pending_find,
    .pending_get = pg_pending_get,
    .pending_list = pg_pending_list,
    .pending_decide = pg_pending_decide,
    .pending_issue = pg_pending_issue,
    .audit_append = pg_audit_append,
    .audit_iter = pg_audit_iter,
    .audit_head = pg_audit_head,
    .device_register = pg_device_register,
    .device_get = pg_device_get,
    .device_list = pg_device_list,
    .device_set_state = pg_device_set_state,
    .device_tag = pg_device_tag,
    .device_touch = pg_device_touch,
    .device_certs = pg_device_certs,
    .device_naming_get = pg_device_naming_get,
    .device_naming_set = pg_device_naming_set,
    .device_seq = pg_device_seq,
    .device_changes = pg_device_changes,
    .fw_sig_record = pg_fw_sig_record,
    .fw_sig_last = pg_fw_sig_last,
    .fw_sig_list = pg_fw_sig_list,
};

/* libpq prints notices (e.g. "relation exists, skipping") on stderr by
 * default; they are not errors. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int fp_store_pg_open(const char *conninfo, fp_store_role role, fp_store **out, fp_error *err)
{
    pg_store *s;
    int rc;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->conninfo = strdup(conninfo)) == NULL) {
        free(s);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    s->base.ops = &pg_ops;
    s->role = role;
    {
        /* defaults that the connection string may override (later values
         * win): a dead host must not hang a node (connect_timeout), and a
         * silently vanished one must be noticed within about a minute
         * (TCP keepalives, tcp_user_timeout) rather than hours.  Nor may a
         * lock someone else holds (an operator's LOCK TABLE, a stuck
         * session): lock_timeout ends such a wait after 10 s with 55P03,
         * which check_result makes FP_ERR_UNAVAILABLE, so a worker answers
         * 503 and the broker plugin's threads (which its shutdown joins)
         * come back.  Passed as a server option, it survives PQreset; a
         * connection string with options of its own replaces it
         * (docs/postgresql.md). */
        static const char *const keys[] = {"connect_timeout", "keepalives_idle",
                                           "keepalives_interval", "keepalives_count",
                                           "tcp_user_timeout", "options", "dbname", NULL};
        const char *vals[] = {"10", "30", "10", "3", "30000", "-c lock_timeout=10s", conninfo,
                              NULL};
        s->conn = PQconnectdbParams(keys, vals, 1);
    }
    if (s->conn == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto fail;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        /* the message names host and cause, never the password */
        rc = fp_err_set(err, FP_ERR_UNAVAILABLE, "database unavailable: %s",
                        PQerrorMessage(s->conn));
        goto fail;
    }
    PQsetNoticeProcessor(s->conn, quiet_notice, NULL);
    if ((rc = pg_migrate(s, err)) != FP_ERR_OK)
        goto fail;
    *out = &s->base;
    return FP_ERR_OK;
fail:
    pg_close(&s->base);
    return rc;
}
