/*
 * populate.c - fill a fleetpki store with N certificate records, a
 * fraction of them revoked, for the OCSP and CRL benchmarks.
 *
 *   populate --dir CADIR [--count N] [--revoked-pct P] [--batch B]
 *            [--serials-out FILE] [--revoke-mode sql|api] [--sign]
 *
 * Records go in through fp_store_cert_insert, B per call (one durable
 * transaction each, with an audit row per certificate, exactly as the CA
 * core writes them).  By default every record reuses the DER of one real
 * certificate the CA signs at start (subject, validity and serial in the
 * row differ; the DER does not): OCSP and CRL generation read the row, not
 * the DER.  --sign instead signs a real certificate per record (slow: one
 * ECDSA signature each) so the DER matches the row.
 *
 * Revocation: the store API revokes one certificate per durable
 * transaction (fp_store_cert_set_status), which --revoke-mode api uses:
 * honest but bounded by fsync rate.  The default --revoke-mode sql updates
 * status/reason/revoked_at of each batch's chosen rows in one SQLite
 * transaction on the same file and then appends ONE audit row through the
 * store API recording the bulk revocation, so the hash chain stays valid.
 * This is benchmark set-up only; no product code takes this path.
 *
 * Memory is bounded by the batch size; serials stream to --serials-out as
 * "HEX good|revoked" lines, the format loadgen's OCSP modes read.
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "ca/ca.h"
#include "common/util.h"
#include "store/store.h"
#include "x509/x509util.h"

#define DAY 86400
#define MAX_COUNT 100000000u
#define MAX_BATCH 100000u
#define SUBJECT_MAX 64

/* Reasons spread over the revoked records (RFC 5280 5.3.1). */
static const int reasons[] = {
    FP_REASON_KEY_COMPROMISE, FP_REASON_SUPERSEDED,      FP_REASON_CESSATION,
    FP_REASON_UNSPECIFIED,    FP_REASON_AFFILIATION_CHANGED, FP_REASON_PRIVILEGE_WITHDRAWN,
    FP_REASON_HOLD,
};

typedef struct popts {
    const char *dir, *serials_out, *revoke_mode;
    uint64_t count;
    unsigned revoked_pct, batch;
    bool sign;
} popts;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: populate --dir CADIR [--count N (1000000)] [--revoked-pct P (10)]\n"
               "                [--batch B (10000)] [--serials-out FILE]\n"
               "                [--revoke-mode sql|api (sql)] [--sign]\n");
}

/* A CSR for the template certificate (also used per record with --sign). */
static int make_csr(X509_REQ **out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    int ok = key && req && name &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                        (const unsigned char *)"populate-template", -1, -1, 0) &&
             X509_REQ_set_subject_name(req, name) && X509_REQ_set_pubkey(req, key) &&
             X509_REQ_sign(req, key, EVP_sha256()) > 0;
    X509_NAME_free(name);
    EVP_PKEY_free(key);
    if (!ok) {
        X509_REQ_free(req);
        return -1;
    }
    *out = req;
    return 0;
}

/* 16 random bytes shaped like fp_serial_random, as fp_serial_hex prints. */
static void random_serial(const unsigned char r[FP_SERIAL_BYTES], char out[FP_SERIAL_HEX_MAX])
{
    static const char hx[] = "0123456789ABCDEF";
    unsigned char b0 = (unsigned char)((r[0] & 0x7f) | 0x40);
    out[0] = hx[b0 >> 4];
    out[1] = hx[b0 & 15];
    for (int i = 1; i < FP_SERIAL_BYTES; i++) {
        out[2 * i] = hx[r[i] >> 4];
        out[2 * i + 1] = hx[r[i] & 15];
    }
    out[2 * FP_SERIAL_BYTES] = '\0';
}

typedef struct revoke_item {
    char serial[FP_SERIAL_HEX_MAX];
    int reason;
    int64_t when;
} revoke_item;

static int revoke_sql(sqlite3 *db, const revoke_item *items, size_t n, fp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = FP_ERR_OK;

    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE certificates SET status = 1, revoked_at = ?, reason = ?"
                               " WHERE serial = ? AND status = 0", -1, &st, NULL) != SQLITE_OK) {
        rc = fp_err_set(err, FP_ERR_STORE, "bulk revoke: %s", sqlite3_errmsg(db));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, items[i].when);
        sqlite3_bind_int(st, 2, items[i].reason);
        sqlite3_bind_text(st, 3, items[i].serial, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(db) != 1) {
            rc = fp_err_set(err, FP_ERR_STORE, "bulk revoke %s: %s", items[i].serial,
                            sqlite3_errmsg(db));
            goto out;
        }
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = fp_err_set(err, FP_ERR_STORE, "bulk revoke commit: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    if (rc != FP_ERR_OK && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int parse(int argc, char **argv, popts *o)
{
    static const struct option lo[] = {
        {"dir", 1, 0, 'd'},         {"count", 1, 0, 'n'},       {"revoked-pct", 1, 0, 'r'},
        {"batch", 1, 0, 'b'},       {"serials-out", 1, 0, 's'}, {"revoke-mode", 1, 0, 'm'},
        {"sign", 0, 0, 'S'},        {"help", 0, 0, 'h'},        {0, 0, 0, 0},
    };
    int c;
    o->count = 1000000;
    o->revoked_pct = 10;
    o->batch = 10000;
    o->revoke_mode = "sql";
    while ((c = getopt_long(argc, argv, "d:n:r:b:s:m:Sh", lo, NULL)) != -1) {
        switch (c) {
        case 'd': o->dir = optarg; break;
        case 'n': o->count = strtoull(optarg, NULL, 10); break;
        case 'r': o->revoked_pct = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': o->batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': o->serials_out = optarg; break;
        case 'm': o->revoke_mode = optarg; break;
        case 'S': o->sign = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (o->dir == NULL || o->count < 1 || o->count > MAX_COUNT || o->revoked_pct > 100 ||
        o->batch < 1 || o->batch > MAX_BATCH ||
        (strcmp(o->revoke_mode, "sql") && strcmp(o->revoke_mode, "api"))) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    popts o = {0};
    fp_config cfg;
    fp_error err = {0};
    fp_store *store = NULL;
    fp_ca *ca = NULL;
    sqlite3 *db = NULL;
    X509_REQ *csr = NULL;
    X509 *tmpl = NULL;
    fp_cert_rec trec = {0};
    fp_cert_rec *recs = NULL;
    fp_audit_event *evs = NULL;
    revoke_item *rv = NULL;
    unsigned char *rnd = NULL;
    char *subjects = NULL, *pass = NULL, path[FP_PATH_MAX];
    FILE *sf = NULL;
    size_t passlen = 0;
    uint64_t done = 0, n_revoked = 0;
    double t0, t_ins = 0, t_rev = 0, t_sign = 0;
    int64_t now = fp_now();
    int rc = FP_ERR_OK;
    static const char detail[] = "{\"profile\":\"device\",\"source\":\"bench-populate\"}";

    if (parse(argc, argv, &o) != 0)
        return 2;
    t0 = mono();
    if ((rc = fp_config_load(&cfg, o.dir, &err)) != FP_ERR_OK ||
        (rc = fp_config_path(&cfg, cfg.store_path, path, sizeof(path), &err)) != FP_ERR_OK ||
        (rc = fp_store_open(path, &store, &err)) != FP_ERR_OK ||
        (rc = fp_passphrase_load(NULL, &pass, &passlen, &err)) != FP_ERR_OK ||
        (rc = fp_ca_open(&cfg, pass, passlen, &ca, &err)) != FP_ERR_OK)
        goto out;
    if (!strcmp(o.revoke_mode, "sql") && o.revoked_pct > 0) {
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
            rc = fp_err_set(&err, FP_ERR_STORE, "%s: %s", path, sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_busy_timeout(db, 10000);
        sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    }
    if (make_csr(&csr) != 0) {
        rc = fp_err_set(&err, FP_ERR_CRYPTO, "template CSR");
        goto out;
    }
    {
        fp_issue_req ir = {.csr = csr, .profile = "device", .actor = "bench:populate"};
        if ((rc = fp_ca_sign(ca, &ir, &tmpl, &trec, &err)) != FP_ERR_OK)
            goto out;
    }
    if (o.serials_out != NULL && (sf = fopen(o.serials_out, "w")) == NULL) {
        rc = fp_err_set(&err, FP_ERR_IO, "%s: cannot create", o.serials_out);
        goto out;
    }
    recs = calloc(o.batch, sizeof(*recs));
    evs = calloc(o.batch, sizeof(*evs));
    rv = calloc(o.batch, sizeof(*rv));
    subjects = malloc((size_t)o.batch * SUBJECT_MAX);
    rnd = malloc((size_t)o.batch * 24);
    if (!recs || !evs || !rv || !subjects || !rnd) {
        rc = fp_err_set(&err, FP_ERR_NOMEM, NULL);
        goto out;
    }

    while (done < o.count) {
        size_t n = o.count - done < o.batch ? (size_t)(o.count - done) : o.batch, nrv = 0;
        double t1;
        if (RAND_bytes(rnd, (int)(n * 24)) != 1) {
            rc = fp_err_set(&err, FP_ERR_CRYPTO, "RAND_bytes");
            goto out;
        }
        t1 = mono();
        for (size_t i = 0; i < n; i++) {
            const unsigned char *r = rnd + i * 24;
            uint32_t pick = (uint32_t)r[16] | (uint32_t)r[17] << 8 | (uint32_t)r[18] << 16;
            int64_t age = (int64_t)(r[19] % 200) * DAY + r[20];
            fp_cert_rec *rec = &recs[i];
            char *subj = subjects + i * SUBJECT_MAX;

            if (o.sign) {
                fp_issue_req ir = {.csr = csr, .profile = "device", .actor = "bench:populate"};
                X509 *x = NULL;
                fp_cert_rec_clear(rec);
                if ((rc = fp_ca_sign(ca, &ir, &x, rec, &err)) != FP_ERR_OK)
                    goto out;
                X509_free(x);
            } else {
                memset(rec, 0, sizeof(*rec));
                random_serial(r, rec->serial);
                snprintf(rec->ca_id, sizeof(rec->ca_id), "%s", fp_ca_id(ca));
                snprintf(rec->profile, sizeof(rec->profile), "device");
                snprintf(rec->project, sizeof(rec->project), "%s", FP_PROJECT_DEFAULT);
                snprintf(subj, SUBJECT_MAX, "CN=dev-%010" PRIu64, done + i);
                rec->subject = subj;
                rec->sans = (char *)"";
                rec->der = trec.der;
                rec->der_len = trec.der_len;
                rec->not_before = now - age - 300;
                rec->not_after = now - age + 365 * DAY;
                rec->issued_at = now - age;
            }
            evs[i] = (fp_audit_event){"bench:populate", "cert.issue", rec->serial, detail, NULL};
            /* revoked_pct of 2^24 */
            if ((uint64_t)pick * 100 < (uint64_t)o.revoked_pct << 24 || o.revoked_pct == 100) {
                revoke_item *it = &rv[nrv++];
                snprintf(it->serial, sizeof(it->serial), "%s", rec->serial);
                it->reason = reasons[r[21] % (sizeof(reasons) / sizeof(*reasons))];
                it->when = now - (r[22] % 30) * DAY - r[23];
            }
        }
        if (o.sign)
            t_sign += mono() - t1;
        t1 = mono();
        if ((rc = fp_store_cert_insert(store, recs, evs, n, &err)) != FP_ERR_OK)
            goto out;
        t_ins += mono() - t1;
        t1 = mono();
        if (db != NULL) {
            if (nrv > 0 && (rc = revoke_sql(db, rv, nrv, &err)) != FP_ERR_OK)
                goto out;
        } else {
            for (size_t i = 0; i < nrv; i++)
                if ((rc = fp_ca_revoke(store, rv[i].serial, rv[i].reason, "bench:populate",
                                       &err)) != FP_ERR_OK)
                    goto out;
        }
        t_rev += mono() - t1;
        if (sf != NULL) {
            size_t j = 0;
            for (size_t i = 0; i < n; i++) {
                bool revoked = j < nrv && !strcmp(rv[j].serial, recs[i].serial);
                if (revoked)
                    j++;
                fprintf(sf, "%s %s\n", recs[i].serial, revoked ? "revoked" : "good");
            }
        }
        if (o.sign)
            for (size_t i = 0; i < n; i++)
                fp_cert_rec_clear(&recs[i]);
        done += n;
        n_revoked += nrv;
        if (done % (o.batch * 20) == 0 || done == o.count)
            fprintf(stderr, "populate: %" PRIu64 "/%" PRIu64 " (%" PRIu64 " revoked) %.1f s\n",
                    done, o.count, n_revoked, mono() - t0);
    }
    if (db != NULL && n_revoked > 0) {
        char d[160];
        fp_audit_event ev = {"bench:populate", "cert.revoke-bulk", "", d, NULL};
        snprintf(d, sizeof(d), "{\"count\":%" PRIu64 ",\"note\":\"benchmark set-up\"}", n_revoked);
        if ((rc = fp_store_audit_append(store, &ev, &err)) != FP_ERR_OK)
            goto out;
    }
    if (sf != NULL && fclose(sf) != 0) {
        sf = NULL;
        rc = fp_err_set(&err, FP_ERR_IO, "%s: write failed", o.serials_out);
        goto out;
    }
    sf = NULL;
    printf("populate: %" PRIu64 " certificates (%" PRIu64 " revoked, mode %s%s) in %.1f s:"
           " insert %.1f s (%.0f/s), revoke %.1f s%s",
           done, n_revoked, o.revoke_mode, o.sign ? ", signed" : ", template DER",
           mono() - t0, t_ins, (double)done / (t_ins > 0 ? t_ins : 1), t_rev,
           o.sign ? "" : "\n");
    if (o.sign)
        printf(", sign %.1f s\n", t_sign);
out:
    if (rc != FP_ERR_OK)
        fprintf(stderr, "populate: %s\n", fp_err_str(&err));
    if (sf != NULL)
        fclose(sf);
    if (o.sign && recs != NULL)
        for (size_t i = 0; i < o.batch; i++)
            fp_cert_rec_clear(&recs[i]);
    free(recs);
    free(evs);
    free(rv);
    free(subjects);
    free(rnd);
    fp_cert_rec_clear(&trec);
    X509_free(tmpl);
    X509_REQ_free(csr);
    sqlite3_close(db);
    fp_ca_free(ca);
    fp_store_close(store);
    fp_passphrase_free(pass, passlen);
    return rc == FP_ERR_OK ? 0 : 1;
}
