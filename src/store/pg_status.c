/*
 * pg_status.c - certificate status in the PostgreSQL backend: status
 * lookups, the revoked entries of a CA, revocation list numbers and the
 * status-change log (migration 3).
 *
 * Change log order across nodes: a status change runs under the audit
 * head lock (pg_cert_set_status takes it at BEGIN), and its seq is
 * max(seq) + 1 read under that lock, so seq order is commit order: a
 * follower that has seen seq n and asks for seq > n cannot miss a change
 * that commits later with a smaller seq (a sequence could hand out n+1 to
 * a transaction that commits after n+2 is read).  The change also sends
 * NOTIFY fleetpki_status (delivered at COMMIT), which wakes followers on
 * every node (fp_store_pg_wait) instead of leaving them to their poll.
 * Revocation list numbers live in meta under "crl_number:<ca id>".
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "pg_int.h"

int pg_status_log_change(pg_store *s, const char *serial, const char *ca_id,
                         const char *project, fp_error *err)
{
    /* one round trip: the row, the prune and the notification */
    static const char sql[] =
        "WITH n AS (SELECT coalesce(max(seq), 0) + 1 AS seq FROM cert_status_log),"
        " ins AS (INSERT INTO cert_status_log (seq, serial, ca_id, ts, project)"
        "  SELECT n.seq, $1::text, $2::text, $3::bigint, $4::text FROM n RETURNING seq),"
        " pruned AS (DELETE FROM cert_status_log WHERE seq <= (SELECT seq FROM n) - $5::bigint)"
        " SELECT pg_notify('" PG_CHANGES_CHANNEL "', seq::text) FROM ins";
    pg_params p = {0};
    PGresult *res;

    if (!s->head_locked)
        return fp_err_set(err, FP_ERR_INTERNAL, "status change outside the head lock");
    pp_str(&p, serial);
    pp_str(&p, ca_id);
    pp_i64(&p, fp_now());
    pp_str(&p, project);
    pp_i64(&p, FP_STORE_CHANGES_KEEP);
    if ((res = pg_q(s, sql, &p, "change log insert", err)) == NULL)
        return s->last_rc;
    PQclear(res);
    return FP_ERR_OK;
}

int pg_cert_status(fp_store *base, const char *serial, fp_cert_status_rec *out, fp_error *err)
{
    static const char sql[] =
        "SELECT ca_id, status, coalesce(revoked_at, 0), coalesce(reason, 0), not_after,"
        " not_before, project FROM certificates WHERE serial = $1";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    memset(out, 0, sizeof(*out));
    pp_str(&p, serial);
    if ((res = pg_q(s, sql, &p, "status lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1) {
        pg_copy(res, 0, 0, out->ca_id, sizeof(out->ca_id));
        out->status = (int)pg_i64(res, 0, 1);
        out->revoked_at = pg_i64(res, 0, 2);
        out->reason = (int)pg_i64(res, 0, 3);
        out->not_after = pg_i64(res, 0, 4);
        out->not_before = pg_i64(res, 0, 5);
        pg_copy(res, 0, 6, out->project, sizeof(out->project));
    } else {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no certificate with serial %s", serial);
    }
    PQclear(res);
    return rc;
}

/* Flat memory for any count: the rows come in chunks through a cursor-less
 * single-row stream (libpq single-row mode), in serial order straight from
 * the partial index cert_revoked_crl. */
int pg_revoked_iter(fp_store *base, const char *ca_id, fp_revoked_cb cb, void *arg,
                    fp_error *err)
{
    static const char sql[] =
        "SELECT serial, revoked_at, reason FROM certificates"
        " WHERE status = 1 AND ca_id = $1 ORDER BY serial";
    pg_store *s = PG(base);
    const char *v[1] = {ca_id};
    PGresult *res;
    int rc = FP_ERR_OK;

    if (PQstatus(s->conn) != CONNECTION_OK) {
        /* reconnect through an ordinary call first */
        int64_t seq;
        if ((rc = pg_status_seq(base, &seq, err)) != FP_ERR_OK)
            return rc;
    }
    if (!PQsendQueryParams(s->conn, sql, 1, NULL, v, NULL, NULL, 0) ||
        !PQsetSingleRowMode(s->conn))
        return fp_err_set(err, FP_ERR_UNAVAILABLE, "database unavailable: revoked certificates: %s",
                          PQerrorMessage(s->conn));
    while ((res = PQgetResult(s->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE && rc == FP_ERR_OK)
            rc = cb(arg, pg_val(res, 0, 0), pg_i64(res, 0, 1), (int)pg_i64(res, 0, 2));
        else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == FP_ERR_OK)
            rc = fp_err_set(err, FP_ERR_STORE, "revoked certificates: %s",
                            PQerrorMessage(s->conn));
        PQclear(res);
    }
    return rc;
}

int pg_revocation_number_next(fp_store *base, const char *ca_id, int64_t *out, fp_error *err)
{
    /* one statement, so one transaction: the row lock of the upsert
     * orders concurrent callers on every node */
    static const char sql[] =
        "INSERT INTO meta (key, value) VALUES ('crl_number:' || $1, '1')"
        " ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text"
        " RETURNING value::bigint";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    *out = 0;
    pp_str(&p, ca_id);
    if ((res = pg_q(s, sql, &p, "revocation list number", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1)
        *out = pg_i64(res, 0, 0);
    PQclear(res);
    if (*out < 1)
        rc = fp_err_set(err, FP_ERR_STORE, "revocation list number of %s is corrupt", ca_id);
    return rc;
}

int pg_status_seq(fp_store *base, int64_t *seq, fp_error *err)
{
    static const char sql[] = "SELECT coalesce(max(seq), 0) FROM cert_status_log";
    return pg_q_i64(PG(base), sql, NULL, "status sequence", seq, err);
}

int pg_status_changes(fp_store *base, int64_t after, int max, fp_change_cb cb, void *arg,
                      fp_error *err)
{
    static const char sql[] =
        "SELECT seq, serial, ca_id FROM cert_status_log WHERE seq > $1 ORDER BY seq LIMIT $2";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_i64(&p, after);
    pp_i64(&p, max > 0 ? max : 1);
    if ((res = pg_q(s, sql, &p, "status changes", err)) == NULL)
        return s->last_rc;
    for (int i = 0; i < PQntuples(res) && rc == FP_ERR_OK; i++)
        rc = cb(arg, pg_i64(res, i, 0), pg_val(res, i, 1), pg_val(res, i, 2));
    PQclear(res);
    return rc;
}

/* Drain what libpq has read; true if a status change was announced. */
static bool drain_notifies(pg_store *s)
{
    PGnotify *n;
    bool any = false;

    while ((n = PQnotifies(s->conn)) != NULL) {
        any = any || strcmp(n->relname, PG_CHANGES_CHANNEL) == 0;
        PQfreemem(n);
    }
    return any;
}

int pg_status_wait(fp_store *base, int timeout_ms, bool *woken, fp_error *err)
{
    pg_store *s = PG(base);
    struct pollfd pfd;
    int rc;

    *woken = false;
    if (!s->listening) {
        PGresult *res = pg_q_once(s, "LISTEN " PG_CHANGES_CHANNEL, NULL, "listen", err);
        if (res == NULL)
            return s->last_rc;
        PQclear(res);
        s->listening = true; /* forgotten by a reconnect (ensure_conn) */
    }
    if ((*woken = drain_notifies(s)))
        return FP_ERR_OK;
    pfd.fd = PQsocket(s->conn);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd < 0)
        return s->last_rc = fp_err_set(err, FP_ERR_UNAVAILABLE, "database unavailable: no socket");
    rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0 && errno != EINTR)
        return fp_err_set(err, FP_ERR_INTERNAL, "poll: %s", strerror(errno));
    if (rc > 0 && !PQconsumeInput(s->conn))
        return s->last_rc = fp_err_set(err, FP_ERR_UNAVAILABLE, "database unavailable: %s",
                                       PQerrorMessage(s->conn));
    *woken = drain_notifies(s);
    return FP_ERR_OK;
}

int pg_crl_put(fp_store *base, const char *ca_id, const fp_crl_pub *c, fp_error *err)
{
    static const char sql[] =
        "INSERT INTO crl_published (ca_id, number, seq, this_update, next_update, der)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ca_id) DO UPDATE SET"
        " number = excluded.number, seq = excluded.seq, this_update = excluded.this_update,"
        " next_update = excluded.next_update, der = excluded.der"
        " WHERE crl_published.number < excluded.number";
    pg_store *s = PG(base);
    pg_params p = {0};

    pp_str(&p, ca_id);
    pp_i64(&p, c->number);
    pp_i64(&p, c->seq);
    pp_i64(&p, c->this_update);
    pp_i64(&p, c->next_update);
    pp_bytes(&p, c->der, c->der_len);
    return pg_cmd(s, sql, &p, "CRL publish", NULL, err);
}

int pg_crl_get(fp_store *base, const char *ca_id, fp_crl_pub *out, fp_error *err)
{
    static const char sql[] = "SELECT number, seq, this_update, next_update, der"
                              " FROM crl_published WHERE ca_id = $1";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;
    int rc = FP_ERR_OK;

    pp_str(&p, ca_id);
    if ((res = pg_q(s, sql, &p, "CRL lookup", err)) == NULL)
        return s->last_rc;
    if (PQntuples(res) == 1) {
        out->number = pg_i64(res, 0, 0);
        out->seq = pg_i64(res, 0, 1);
        out->this_update = pg_i64(res, 0, 2);
        out->next_update = pg_i64(res, 0, 3);
        if ((out->der = pg_bytea(res, 0, 4, &out->der_len)) == NULL)
            rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
    } else {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no published CRL of %s", ca_id);
    }
    PQclear(res);
    return rc;
}

/* A session advisory lock per CA (key: a hash of the CA id in a space of
 * its own), so that one node at a time regenerates that CA's CRL; the
 * server drops it with the connection. */
int pg_crl_lock(fp_store *base, const char *ca_id, bool lock, bool *got, fp_error *err)
{
    static const char take[] =
        "SELECT pg_try_advisory_lock(hashtextextended('fleetpki crl ' || $1, 0))";
    static const char give[] =
        "SELECT pg_advisory_unlock(hashtextextended('fleetpki crl ' || $1, 0))";
    pg_store *s = PG(base);
    pg_params p = {0};
    PGresult *res;

    *got = false;
    pp_str(&p, ca_id);
    if ((res = pg_q(s, lock ? take : give, &p, "CRL lock", err)) == NULL)
        return s->last_rc;
    *got = lock && strcmp(pg_val(res, 0, 0), "t") == 0;
    PQclear(res);
    return FP_ERR_OK;
}
