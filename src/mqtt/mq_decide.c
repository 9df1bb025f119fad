/*
 * mq_decide.c - admit or refuse a client from its certificate, with the
 * cache alone (no store access on the broker's thread).
 *
 * The broker's TLS layer has verified the chain against its cafile
 * (require_certificate true).  That cafile may hold several projects' CAs
 * and bring-your-own roots, so the plugin decides which project the
 * certificate belongs to itself, as the device API does:
 *   1. its issuer is one of the cached issuing CAs or trust roots (the
 *      issuer name and key identifier match: X509_check_issued) of the
 *      served project(s); a match in two projects is ambiguous, refused;
 *   2. the issuer's key verifies the certificate's signature.  Without
 *      this a tenant's own root in the cafile could sign an intermediate
 *      that copies another project's CA name and key identifier.  A
 *      verified certificate's SHA-256 is remembered on its device, so a
 *      reconnect with the same certificate costs a digest, not a
 *      signature check;
 *   3. the device name by the project's naming rule (registry naming.c);
 *      a name holding '/', '+' or '#' is refused (it would reach into
 *      other devices' topics); with client_id name (the default) the
 *      client id must be that name or start with it and '/';
 *   4. a certificate we issued must not be revoked or on hold (the
 *      revoked set, kept by the change log); the device must be active;
 *      an unknown device is admitted and queued for registration when
 *      auto_register is on, refused otherwise.
 * When the store has not been read recently (mq_store_fresh_locked) a
 * fail_closed plugin refuses every new client; fail-open decides from
 * the cache it has.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "../registry/registry.h"
#include "mq.h"

static const mq_proj *proj_get(const mq_state *st, const char *name)
{
    for (int i = 0; i < st->n_projs; i++)
        if (!strcmp(st->projs[i].name, name))
            return &st->projs[i];
    return NULL;
}

mq_dev *mq_dev_get(mq_state *st, const char *project, const char *name, bool create)
{
    size_t pl = strlen(project), nl = strlen(name), klen = pl + 1 + nl;
    char key[FP_PROJECT_MAX + FP_DEVICE_NAME_MAX + 1];
    mq_dev *d;

    if (pl >= FP_PROJECT_MAX || nl >= FP_DEVICE_NAME_MAX)
        return NULL;
    memcpy(key, project, pl + 1);
    memcpy(key + pl + 1, name, nl);
    if ((d = mq_hash_get(&st->devs, key, klen)) != NULL || !create)
        return d;
    if ((d = calloc(1, sizeof(*d) + klen + 1)) == NULL)
        return NULL;
    memcpy(d->key, key, klen);
    d->key[klen] = '\0';
    d->klen = klen;
    d->state = FP_DEV_ACTIVE;
    if (mq_hash_put(&st->devs, d->key, klen, d) != 0) {
        free(d);
        return NULL;
    }
    return d;
}

/* The CA of a served project that issued cert; NULL with *why set. */
static const mq_ca *issuer_of(const mq_state *st, X509 *cert, const char **why)
{
    const mq_ca *found = NULL;
    bool elsewhere = false;

    for (int i = 0; i < st->n_cas; i++) {
        const mq_ca *c = &st->cas[i];
        if (X509_check_issued(c->x, cert) != X509_V_OK)
            continue;
        if (st->cfg.project[0] != '\0' && strcmp(c->project, st->cfg.project) != 0) {
            elsewhere = true;
            continue;
        }
        if (found != NULL && strcmp(found->project, c->project) != 0) {
            *why = "its issuer belongs to more than one project (ambiguous)";
            return NULL;
        }
        if (found == NULL)
            found = c;
    }
    if (found == NULL)
        *why = elsewhere ? "it belongs to another project"
                         : "its issuer is not a CA or trust root of a served project";
    return found;
}

static void session_link(mq_state *st, mq_session *s)
{
    mq_session *head;

    if (s->dev != NULL) {
        s->dnext = s->dev->sessions;
        if (s->dnext)
            s->dnext->dprev = s;
        s->dev->sessions = s;
    }
    head = mq_hash_get(&st->by_serial, s->serial, strlen(s->serial));
    s->snext = head;
    if (mq_hash_put(&st->by_serial, s->serial, strlen(s->serial), s) != 0)
        s->snext = NULL; /* out of memory: this session is not found by serial */
}

static void session_unlink(mq_state *st, mq_session *s)
{
    mq_session *head = mq_hash_get(&st->by_serial, s->serial, strlen(s->serial));

    if (s->dev != NULL) {
        if (s->dprev)
            s->dprev->dnext = s->dnext;
        else if (s->dev->sessions == s)
            s->dev->sessions = s->dnext;
        if (s->dnext)
            s->dnext->dprev = s->dprev;
    }
    if (head == s) {
        if (s->snext)
            mq_hash_put(&st->by_serial, s->serial, strlen(s->serial), s->snext);
        else
            mq_hash_del(&st->by_serial, s->serial, strlen(s->serial));
    } else {
        for (; head != NULL && head->snext != s; head = head->snext)
            ;
        if (head != NULL)
            head->snext = s->snext;
    }
}

void mq_session_drop(mq_state *st, const void *client)
{
    mq_session *s;

    pthread_mutex_lock(&st->mu);
    s = mq_hash_del(&st->sessions, &client, sizeof(client));
    if (s != NULL)
        session_unlink(st, s);
    pthread_mutex_unlock(&st->mu);
    if (s != NULL) {
        free(s->clientid);
        free(s);
    }
}

/* Decide under mu; NULL + *why on refusal. */
static mq_session *decide_locked(mq_state *st, const void *client, const char *clientid,
                                 X509 *cert, char name[FP_DEVICE_NAME_MAX], const char **why,
                                 char *whybuf, size_t whysize)
{
    const mq_config *cfg = &st->cfg;
    bool fresh = mq_store_fresh_locked(st);
    const mq_ca *ca = NULL;
    const char *project = cfg->project;
    int rule = FP_DEVNAME_CN;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char serial[FP_SERIAL_HEX_MAX];
    fp_error e = {0};
    mq_dev *d;
    mq_session *s;

    if (!fresh && cfg->fail_closed) {
        *why = "the fleetpki store is unavailable (fail_closed)";
        return NULL;
    }
    if (st->loaded) {
        const mq_proj *p;
        if ((ca = issuer_of(st, cert, why)) == NULL)
            return NULL;
        project = ca->project;
        if ((p = proj_get(st, project)) == NULL) {
            *why = "its project is not served";
            return NULL;
        }
        rule = p->rule;
    } else if (project[0] == '\0') {
        /* fail-open without a cache: no way to tell the project */
        *why = "the fleetpki store was never read and the project is 'all'";
        return NULL;
    }
    if (fp_registry_name_of(cert, rule, name, &e) != FP_ERR_OK) {
        snprintf(whybuf, whysize, "no device name: %s", e.msg);
        *why = whybuf;
        return NULL;
    }
    if (!mq_name_topic_safe(name)) {
        *why = "its device name holds '/', '+' or '#'";
        return NULL;
    }
    if (cfg->bind_client_id && !mq_client_id_ok(clientid, name)) {
        snprintf(whybuf, whysize, "its client id is not its device name (client_id name: "
                                  "NAME or NAME/anything)");
        *why = whybuf;
        return NULL;
    }
    if (fp_serial_hex(X509_get0_serialNumber(cert), serial) != 0) {
        *why = "its serial number is malformed";
        return NULL;
    }
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
        *why = "certificate digest failed";
        return NULL;
    }
    d = mq_dev_get(st, project, name, false);
    if (ca != NULL && !(d != NULL && d->vfp_ok && memcmp(d->vfp, md, 32) == 0)) {
        EVP_PKEY *k = X509_get0_pubkey(ca->x);
        if (k == NULL || X509_verify(cert, k) != 1) {
            ERR_clear_error();
            *why = "its signature does not verify with its issuer's key";
            return NULL;
        }
    }
    if (ca != NULL && ca->kind == FP_CA_ISSUING &&
        mq_hash_get(&st->revoked, serial, strlen(serial)) != NULL) {
        *why = "its certificate is revoked";
        return NULL;
    }
    if (d != NULL && d->state != FP_DEV_ACTIVE) {
        *why = d->state == FP_DEV_SUSPENDED ? "the device is suspended"
                                            : "the device is decommissioned";
        return NULL;
    }
    if (d == NULL && st->loaded && !cfg->auto_register) {
        *why = "the device is not registered (auto_register false)";
        return NULL;
    }
    if (d == NULL && (d = mq_dev_get(st, project, name, true)) == NULL) {
        *why = "out of memory";
        return NULL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL ||
        (s->clientid = strdup(clientid ? clientid : "")) == NULL ||
        mq_topic_expand(cfg->topic_pattern, project, name, s->filter, sizeof(s->filter)) != 0 ||
        mq_hash_put(&st->sessions, &client, sizeof(client), s) != 0) {
        if (s)
            free(s->clientid);
        free(s);
        *why = "out of memory or topic filter too long";
        return NULL;
    }
    /* a new certificate of the device, a first contact, or a last-seen
     * that is due: the writer registers / links / touches it */
    if (!d->vfp_ok || memcmp(d->vfp, md, 32) != 0 ||
        fp_now() - d->contacted_at >= cfg->contact_seconds) {
        d->contacted_at = fp_now();
        mq_contact_locked(st, project, cert);
    }
    if (ca != NULL) {
        memcpy(d->vfp, md, 32);
        d->vfp_ok = true;
    }
    s->client = client;
    s->dev = d;
    memcpy(s->serial, serial, sizeof(serial));
    session_link(st, s);
    return s;
}

void mq_decide(mq_state *st, const void *client, const char *clientid, const char *address,
               X509 *cert, mq_session **out)
{
    char name[FP_DEVICE_NAME_MAX] = "", whybuf[FP_ERRMSG_MAX + 32];
    char esc_name[FP_LOG_ESCAPED_MAX(64)], esc_id[FP_LOG_ESCAPED_MAX(64)];
    char esc_filter[FP_LOG_ESCAPED_MAX(64)];
    const char *why = "no client certificate";
    mq_session *s = NULL, *old;

    *out = NULL;
    if (cert != NULL) {
        pthread_mutex_lock(&st->mu);
        /* a client decided twice (identity mode, then a reload) keeps one */
        if ((old = mq_hash_del(&st->sessions, &client, sizeof(client))) != NULL)
            session_unlink(st, old);
        s = decide_locked(st, client, clientid, cert, name, &why, whybuf, sizeof(whybuf));
        pthread_mutex_unlock(&st->mu);
        if (old != NULL) {
            free(old->clientid);
            free(old);
        }
    }
    fp_log_escape(esc_name, sizeof(esc_name), name[0] ? name : NULL);
    fp_log_escape(esc_id, sizeof(esc_id), clientid);
    if (s == NULL)
        mq_log(st, MOSQ_LOG_NOTICE,
               "fleetpki: refused client_id=%s address=%s device=%s: %s", esc_id,
               address ? address : "-", esc_name, why);
    else
        mq_log(st, MOSQ_LOG_INFO, "fleetpki: admitted client_id=%s device=%s topics=%s", esc_id,
               esc_name, fp_log_escape(esc_filter, sizeof(esc_filter), s->filter));
    *out = s;
}
