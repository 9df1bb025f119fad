/*
 * cycle.c - one pass of the agent's state machine, on the public API of
 * libfleetpki-device:
 *
 *   anchors   cred_dir/anchors.pem, else the configured trust_anchor, else
 *             the RFC 7030 4.1.1 bootstrap by fingerprint (written to
 *             anchors.pem so it happens once)
 *   no pair   enroll with the bootstrap credential (manufacturer
 *             certificate as TLS client certificate, or token as Basic)
 *   pair      unconfirmed: use it once (a /cacerts request authenticated
 *             by it), then confirm; expired: bootstrap again; past
 *             renew_at of its lifetime: simplereenroll with it, and when
 *             the server refuses that with 401/403 (revoked, or expired on
 *             the server's clock) fall back to the bootstrap credential
 *   always    refresh /cacerts; a new root is taken only when linked to
 *             the current one (rollover.c)
 *
 * A failure waits per the backoff schedule (full jitter), or the server's
 * Retry-After on a 202/503; success resets the schedule.  The pending
 * request of a 202 stays in the fp_device (RFC 7030 4.2.3), so the retry
 * after an operator's approval sends the very CSR that was approved.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"

#define ANCHORS "anchors.pem"

struct fpa_agent {
    const fpa_config *cfg;
    fp_device *d;
    fp_storage st;
    int st_open;
    fp_credstore *cs;
    char *anchors;
    size_t anchors_len;
    fpa_backoff bo;
};

/* ---- small file helpers over the storage interface ---- */

static int st_read(fp_storage *st, const char *name, char **out, size_t *len, int *missing)
{
    fp_storage_file *f = NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, got = 0;

    *missing = 0;
    if (st->open(st->ctx, name, 0, &f, missing) != 0)
        return -1;
    do {
        if (cap - n < 4096) {
            char *nb;
            if (cap > 1024 * 1024 || (nb = realloc(buf, cap + 8192 + 1)) == NULL) {
                free(buf);
                st->close(st->ctx, f);
                return -1;
            }
            buf = nb;
            cap += 8192;
        }
        if (st->read(st->ctx, f, buf + n, cap - n, &got) != 0) {
            free(buf);
            st->close(st->ctx, f);
            return -1;
        }
        n += got;
    } while (got > 0);
    st->close(st->ctx, f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Written beside, synced, renamed over, directory synced: a power cut
 * leaves the old or the new anchors, never a torn file. */
static int st_replace(fp_storage *st, const char *name, const char *p, size_t len)
{
    char tmp[64];
    fp_storage_file *f = NULL;
    int missing = 0, ok;

    snprintf(tmp, sizeof(tmp), "%s.new", name);
    if (st->open(st->ctx, tmp, 1, &f, &missing) != 0)
        return -1;
    ok = st->write(st->ctx, f, p, len) == 0 && st->sync(st->ctx, f) == 0;
    ok = st->close(st->ctx, f) == 0 && ok;
    if (!ok || st->rename(st->ctx, tmp, name) != 0 || st->sync(st->ctx, NULL) != 0) {
        st->unlink(st->ctx, tmp);
        return -1;
    }
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL)
        return NULL;
    if ((buf = malloc(256 * 1024 + 1)) != NULL) {
        n = fread(buf, 1, 256 * 1024 + 1, f);
        if (ferror(f) || n > 256 * 1024) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = n;
        }
    }
    fclose(f);
    return buf;
}

static void wipe_free(char *p, size_t len)
{
    fp_device_secret_free(p, len);
}

/* ---- setup ---- */

int fpa_agent_new(const fpa_config *cfg, fpa_agent **out)
{
    fpa_agent *a = calloc(1, sizeof(*a));
    int rc;

    *out = NULL;
    if (a == NULL || (a->d = fp_device_new()) == NULL) {
        free(a);
        return FPA_EXIT_STORE;
    }
    a->cfg = cfg;
    fpa_backoff_init(&a->bo, cfg->backoff_base_ms, cfg->backoff_cap_ms);
    if ((rc = fp_device_set_server(a->d, cfg->host, cfg->port, cfg->label[0] ? cfg->label : NULL)) !=
            0 ||
        (rc = fp_device_set_limits(a->d, 64 * 1024, (int)cfg->timeout * 1000)) != 0) {
        char esc[300];
        fpa_log(FPA_ERROR, "config", "server=%s error=%s msg=%s", cfg->host, fp_device_err_name(rc),
                fpa_esc(fp_device_errmsg(a->d), esc, sizeof(esc)));
        fpa_agent_free(a);
        return FPA_EXIT_CONFIG;
    }
    if (fp_storage_posix_open(cfg->cred_dir, &a->st) != 0) {
        char esc[FPA_PATH_MAX + 8];
        fpa_log(FPA_ERROR, "store-unusable", "dir=%s errno=%s", fpa_esc(cfg->cred_dir, esc, sizeof(esc)),
                strerror(errno));
        fpa_agent_free(a);
        return FPA_EXIT_STORE;
    }
    a->st_open = 1;
    *out = a;
    return FPA_EXIT_OK;
}

void fpa_agent_free(fpa_agent *a)
{
    if (a == NULL)
        return;
    fp_credstore_free(a->cs);
    if (a->st_open)
        fp_storage_posix_close(&a->st);
    fp_device_free(a->d);
    free(a->anchors);
    free(a);
}

/* ---- outcomes ---- */

static void lib_err(fpa_agent *a, fpa_level lvl, const char *event, int rc)
{
    char esc[600];
    fpa_log(lvl, event, "error=%s http=%d msg=%s", fp_device_err_name(rc), fp_device_http_status(a->d),
            fpa_esc(fp_device_errmsg(a->d), esc, sizeof(esc)));
}

/* A failed exchange: when to try again, and what --once reports. */
static fpa_result failed(fpa_agent *a, int rc)
{
    fpa_result r = {FPA_EXIT_RETRY, 0};
    long ra = fp_device_retry_after(a->d);
    uint64_t ceiling = fpa_backoff_ceiling(&a->bo);

    if (rc == FP_DEVICE_ERR_TRUST || rc == FP_DEVICE_ERR_FINGERPRINT)
        r.exit_code = FPA_EXIT_REFUSED;
    if (rc == FP_DEVICE_ERR_RETRY_LATER && ra >= 0) {
        /* RFC 7030 4.2.3 / RFC 9110 10.2.3: the server said when */
        uint64_t s = (uint64_t)ra;
        if (s > a->cfg->retry_after_max)
            s = a->cfg->retry_after_max;
        if (s == 0)
            s = 1;
        r.sleep_ms = s * 1000;
        a->bo.attempt++;
        fpa_log(FPA_INFO, "retry-after", "status=%d delay_ms=%llu", fp_device_http_status(a->d),
                (unsigned long long)r.sleep_ms);
        return r;
    }
    r.sleep_ms = fpa_backoff_next(&a->bo, NULL, NULL);
    fpa_log(FPA_INFO, "backoff", "attempt=%u ceiling_ms=%llu delay_ms=%llu", a->bo.attempt,
            (unsigned long long)ceiling, (unsigned long long)r.sleep_ms);
    return r;
}

static void cred_log(fpa_level lvl, const char *event, fp_device_cred *c, const char *how)
{
    char *pem = NULL, serial[128];
    size_t len = 0;
    int64_t nb = 0, na = 0;

    if (fp_device_cred_chain_pem(c, &pem, &len) == 0)
        fpa_cert_brief(pem, len, serial, sizeof(serial));
    else
        snprintf(serial, sizeof(serial), "?");
    fp_device_buf_free(pem);
    fp_device_cred_validity(c, &nb, &na);
    fpa_log(lvl, event, "serial=%s not_before=%lld not_after=%lld via=%s", serial, (long long)nb,
            (long long)na, how);
}

/* ---- anchors ---- */

static int set_anchors(fpa_agent *a, char *pem, size_t len)
{
    int rc = fp_device_set1_trust_anchors(a->d, pem, len);
    if (rc != 0) {
        lib_err(a, FPA_ERROR, "anchors-unusable", rc);
        free(pem);
        return rc;
    }
    free(a->anchors);
    a->anchors = pem;
    a->anchors_len = len;
    /* the store verifies chains against the anchors: reopen on change */
    fp_credstore_free(a->cs);
    a->cs = NULL;
    return 0;
}

/* -1: transient (retry); 1: refused (trust); 0 ok */
static int load_anchors(fpa_agent *a, int *rc_out)
{
    char *pem = NULL;
    size_t len = 0;
    int missing = 0, rc;

    *rc_out = 0;
    if (a->anchors != NULL)
        return 0;
    if (st_read(&a->st, ANCHORS, &pem, &len, &missing) == 0) {
        fpa_log(FPA_INFO, "anchors-loaded", "from=%s", ANCHORS);
    } else if (!missing) {
        fpa_log(FPA_ERROR, "store-unusable", "cannot read %s", ANCHORS);
        *rc_out = FP_DEVICE_ERR_STORE;
        return 2;
    } else if (a->cfg->trust_anchor[0] != '\0') {
        char esc[FPA_PATH_MAX + 8];
        if ((pem = slurp(a->cfg->trust_anchor, &len)) == NULL) {
            fpa_log(FPA_ERROR, "anchors-unusable", "file=%s errno=%s",
                    fpa_esc(a->cfg->trust_anchor, esc, sizeof(esc)), strerror(errno));
            *rc_out = FP_DEVICE_ERR_ARG;
            return 3;
        }
        fpa_log(FPA_INFO, "anchors-loaded", "from=%s", fpa_esc(a->cfg->trust_anchor, esc, sizeof(esc)));
    } else {
        char *boot = NULL;
        size_t blen = 0;
        /* RFC 7030 4.1.1: no credential goes out on this connection */
        if ((rc = fp_device_bootstrap(a->d, a->cfg->fingerprint, &boot, &blen)) != 0) {
            lib_err(a, FPA_ERROR, "bootstrap-failed", rc);
            *rc_out = rc;
            return 1;
        }
        pem = malloc(blen + 1);
        if (pem != NULL) {
            memcpy(pem, boot, blen);
            pem[blen] = '\0';
            len = blen;
        }
        fp_device_buf_free(boot);
        if (pem == NULL || st_replace(&a->st, ANCHORS, pem, len) != 0) {
            fpa_log(FPA_ERROR, "store-unusable", "cannot write %s", ANCHORS);
            free(pem);
            *rc_out = FP_DEVICE_ERR_STORE;
            return 2;
        }
        fpa_log(FPA_INFO, "bootstrap-anchor-accepted", "fingerprint=match saved=%s", ANCHORS);
    }
    if ((rc = set_anchors(a, pem, len)) != 0) {
        *rc_out = rc;
        return 3;
    }
    return 0;
}

/* /cacerts over a connection offering our current pair; a linked new root
 * is added to the anchors.  This request is also "the first successful
 * use" that confirms a new pair. */
static int refresh(fpa_agent *a)
{
    char *pem = NULL, *next = NULL, msg[200];
    size_t len = 0, nlen = 0;
    int rc, n;

    if ((rc = fp_device_cacerts_unverified(a->d, &pem, &len)) != 0) {
        lib_err(a, FPA_WARN, "cacerts-failed", rc);
        return rc;
    }
    n = fpa_rollover(a->anchors, a->anchors_len, pem, len, &next, &nlen, msg, sizeof(msg));
    fp_device_buf_free(pem);
    if (n < 0) {
        fpa_log(FPA_WARN, "cacerts-unusable", "msg=\"%s\" action=keep-current", msg);
        return 0;
    }
    if (n > 0) {
        if (st_replace(&a->st, ANCHORS, next, nlen) != 0) {
            fpa_log(FPA_ERROR, "store-unusable", "cannot write %s; new anchors not kept", ANCHORS);
            free(next);
            return FP_DEVICE_ERR_STORE;
        }
        fpa_log(FPA_INFO, "anchors-updated", "roots_added=%d saved=%s", n, ANCHORS);
        if (set_anchors(a, next, nlen) != 0)
            return FP_DEVICE_ERR_ARG;
    }
    return 0;
}

static int open_store(fpa_agent *a)
{
    int rc;
    if (a->cs != NULL)
        return 0;
    if ((rc = fp_credstore_open(&a->st, a->anchors, a->anchors_len, &a->cs)) != 0) {
        char esc[300];
        fpa_log(FPA_ERROR, "store-unusable", "error=%s msg=%s", fp_device_err_name(rc),
                fpa_esc(a->cs ? fp_credstore_errmsg(a->cs) : "", esc, sizeof(esc)));
        fp_credstore_free(a->cs);
        a->cs = NULL;
    }
    return rc;
}

/* ---- enrollment ---- */

/* The token file: one line ID:SECRET (a secret: wiped after use). */
static int set_token(fpa_agent *a)
{
    size_t len = 0;
    char *t = slurp(a->cfg->bootstrap_token_file, &len), *colon, *nl;
    int rc;

    if (t == NULL) {
        char esc[FPA_PATH_MAX + 8];
        fpa_log(FPA_ERROR, "bootstrap-unusable", "token_file=%s errno=%s",
                fpa_esc(a->cfg->bootstrap_token_file, esc, sizeof(esc)), strerror(errno));
        return FP_DEVICE_ERR_ARG;
    }
    if ((nl = strpbrk(t, "\r\n")) != NULL)
        *nl = '\0';
    if ((colon = strchr(t, ':')) == NULL || colon == t || colon[1] == '\0') {
        fpa_log(FPA_ERROR, "bootstrap-unusable", "token file is not one line ID:SECRET");
        wipe_free(t, len);
        return FP_DEVICE_ERR_ARG;
    }
    *colon = '\0';
    rc = fp_device_set_basic_auth(a->d, t, colon + 1);
    wipe_free(t, len);
    return rc;
}

static int bootstrap_cred(fpa_agent *a, fp_device_cred **out)
{
    size_t cl = 0, kl = 0;
    char *c = slurp(a->cfg->bootstrap_cert, &cl), *k = slurp(a->cfg->bootstrap_key, &kl);
    int rc = c != NULL && k != NULL ? fp_device_cred_from_pem(k, kl, c, cl, out) : FP_DEVICE_ERR_IO;

    if (rc != 0)
        fpa_log(FPA_ERROR, "bootstrap-unusable", "manufacturer certificate/key: %s",
                fp_device_err_name(rc));
    free(c);
    if (k != NULL)
        wipe_free(k, kl);
    return rc;
}

/* Rotate into the store, then use the new pair once and confirm it. */
static int install(fpa_agent *a, fp_device_cred *got, const char *event, const char *how)
{
    int rc;
    char esc[300];

    if ((rc = fp_credstore_rotate(a->cs, got)) != 0) {
        fpa_log(FPA_ERROR, "store-unusable", "rotate: error=%s msg=%s", fp_device_err_name(rc),
                fpa_esc(fp_credstore_errmsg(a->cs), esc, sizeof(esc)));
        return rc;
    }
    cred_log(FPA_INFO, event, got, how);
    fp_device_set1_client_cred(a->d, got);
    return 0;
}

static int confirm(fpa_agent *a)
{
    int rc;
    char esc[300];

    if (!fp_credstore_has_previous(a->cs))
        return 0;
    /* the new pair authenticated a request: the old one can go */
    if ((rc = fp_credstore_confirm(a->cs)) != 0) {
        fpa_log(FPA_ERROR, "store-unusable", "confirm: error=%s msg=%s", fp_device_err_name(rc),
                fpa_esc(fp_credstore_errmsg(a->cs), esc, sizeof(esc)));
        return rc;
    }
    fpa_log(FPA_INFO, "confirmed", "previous pair removed");
    return 0;
}

static int enroll_bootstrap(fpa_agent *a, const char *why)
{
    const fpa_config *c = a->cfg;
    fp_device_enroll_opts o = {0};
    fp_device_cred *boot = NULL, *got = NULL;
    int rc;

    o.common_name = c->common_name;
    o.dns_name = c->dns_name[0] ? c->dns_name : NULL;
    o.serial_number = c->serial_number[0] ? c->serial_number : NULL;
    o.key_type = c->key_type;
    o.use_csrattrs = c->use_csrattrs;
    if (c->bootstrap_token_file[0] != '\0') {
        fp_device_set1_client_cred(a->d, NULL);
        rc = set_token(a);
    } else {
        if ((rc = bootstrap_cred(a, &boot)) == 0)
            rc = fp_device_set1_client_cred(a->d, boot);
        fp_device_cred_free(boot);
    }
    if (rc != 0)
        return rc;
    fpa_log(FPA_INFO, "enroll", "reason=%s with=%s%s", why,
            c->bootstrap_token_file[0] ? "token" : "manufacturer-certificate",
            fp_device_has_pending(a->d) ? " repeat=pending-request" : "");
    rc = fp_device_enroll(a->d, &o, &got);
    fp_device_set_basic_auth(a->d, NULL, NULL); /* not sent again */
    if (rc != 0) {
        lib_err(a, rc == FP_DEVICE_ERR_RETRY_LATER ? FPA_INFO : FPA_ERROR, "enroll-failed", rc);
        if (rc == FP_DEVICE_ERR_AUTH)
            return FP_DEVICE_ERR_AUTH;
        return rc;
    }
    rc = install(a, got, "enrolled", "simpleenroll");
    fp_device_cred_free(got);
    return rc;
}

static int renew(fpa_agent *a, fp_device_cred *cur)
{
    fp_device_enroll_opts o = {0};
    fp_device_cred *got = NULL;
    int rc;

    o.rekey = a->cfg->rekey;
    fp_device_set1_client_cred(a->d, cur);
    fpa_log(FPA_INFO, "renew", "rekey=%s%s", o.rekey ? "yes" : "no",
            fp_device_has_pending(a->d) ? " repeat=pending-request" : "");
    if ((rc = fp_device_reenroll(a->d, &o, &got)) != 0) {
        lib_err(a, rc == FP_DEVICE_ERR_RETRY_LATER ? FPA_INFO : FPA_WARN, "renew-failed", rc);
        return rc;
    }
    rc = install(a, got, "renewed", "simplereenroll");
    fp_device_cred_free(got);
    return rc;
}

/* ---- the cycle ---- */

static fpa_result done_ok(fpa_agent *a, fp_device_cred *cur)
{
    fpa_result r = {FPA_EXIT_OK, (uint64_t)a->cfg->check_interval * 1000};
    int64_t nb = 0, na = 0, now = (int64_t)time(NULL), at;

    fpa_backoff_reset(&a->bo);
    if (cur != NULL && fp_device_cred_validity(cur, &nb, &na) == 0) {
        at = fpa_renew_time(nb, na, a->cfg->renew_at);
        if (at <= now) {
            /* due again already (a lifetime so short, or a notBefore so
             * far back, that renew_at has passed): never a tight loop */
            r.sleep_ms = a->cfg->backoff_base_ms;
            fpa_log(FPA_WARN, "renew-due-at-once", "renew_at=%lld not_after=%lld wait_ms=%u",
                    (long long)at, (long long)na, a->cfg->backoff_base_ms);
        } else if (at - now < (int64_t)a->cfg->check_interval) {
            r.sleep_ms = (uint64_t)(at - now) * 1000;
        }
        fpa_log(FPA_INFO, "next-check", "renew_at=%lld in_ms=%llu", (long long)at,
                (unsigned long long)r.sleep_ms);
    }
    return r;
}

fpa_result fpa_agent_cycle(fpa_agent *a)
{
    fpa_result r = {FPA_EXIT_OK, 0};
    fp_device_cred *cur = NULL;
    int64_t nb = 0, na = 0, now = (int64_t)time(NULL);
    int rc = 0, st;

    if ((st = load_anchors(a, &rc)) != 0) {
        if (st == 2 || st == 3) {
            r.exit_code = st == 2 ? FPA_EXIT_STORE : FPA_EXIT_CONFIG;
            r.sleep_ms = fpa_backoff_next(&a->bo, NULL, NULL);
            return r;
        }
        return failed(a, rc);
    }
    if (open_store(a) != 0) {
        r.exit_code = FPA_EXIT_STORE;
        r.sleep_ms = fpa_backoff_next(&a->bo, NULL, NULL);
        return r;
    }
    if (fp_credstore_get1_current(a->cs, &cur) != 0) {
        if ((rc = enroll_bootstrap(a, "no-credentials")) != 0)
            goto fail;
        if ((rc = fp_credstore_get1_current(a->cs, &cur)) != 0)
            goto fail;
    } else if (fp_device_cred_validity(cur, &nb, &na) == 0 && now >= na) {
        fpa_log(FPA_WARN, "expired", "not_after=%lld action=bootstrap", (long long)na);
        fp_device_cred_free(cur);
        cur = NULL;
        if ((rc = enroll_bootstrap(a, "expired")) != 0)
            goto fail;
        if ((rc = fp_credstore_get1_current(a->cs, &cur)) != 0)
            goto fail;
    } else if (now >= fpa_renew_time(nb, na, a->cfg->renew_at)) {
        rc = renew(a, cur);
        if (rc == FP_DEVICE_ERR_AUTH) {
            /* revoked, or expired as the server sees it: the pair is no
             * longer an identity here; start over with the bootstrap one */
            fpa_log(FPA_WARN, "fallback-bootstrap", "reason=\"re-enrollment refused (%d)\"",
                    fp_device_http_status(a->d));
            fp_device_cred_free(cur);
            cur = NULL;
            if ((rc = enroll_bootstrap(a, "reenroll-refused")) != 0)
                goto fail;
        } else if (rc != 0) {
            goto fail;
        }
        fp_device_cred_free(cur);
        cur = NULL;
        if ((rc = fp_credstore_get1_current(a->cs, &cur)) != 0)
            goto fail;
    }
    /* talk with the current pair: refresh the anchors, confirm it */
    fp_device_set1_client_cred(a->d, cur);
    if ((rc = refresh(a)) != 0)
        goto fail;
    if (a->cs == NULL && open_store(a) != 0) { /* anchors changed */
        r.exit_code = FPA_EXIT_STORE;
        goto out;
    }
    if ((rc = confirm(a)) != 0) {
        r.exit_code = FPA_EXIT_STORE;
        r.sleep_ms = fpa_backoff_next(&a->bo, NULL, NULL);
        goto out;
    }
    r = done_ok(a, cur);
    goto out;
fail:
    if (rc == FP_DEVICE_ERR_STORE || rc == FP_DEVICE_ERR_NOT_FOUND) {
        r.exit_code = FPA_EXIT_STORE;
        r.sleep_ms = fpa_backoff_next(&a->bo, NULL, NULL);
    } else {
        r = failed(a, rc);
        if (rc == FP_DEVICE_ERR_AUTH && fp_device_has_pending(a->d) == 0 && cur == NULL)
            r.exit_code = FPA_EXIT_REFUSED; /* the bootstrap credential itself */
    }
out:
    fp_device_cred_free(cur);
    return r;
}
