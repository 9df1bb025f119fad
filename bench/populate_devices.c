/*
 * populate_devices.c - fill a fleetpki store's device registry for the
 * registry API benchmark (bench/run-registry-api.sh) and the API tests.
 *
 *   populate_devices --db FILE [--projects P] [--count N] [--prefix NAME]
 *
 * Creates projects bench-0 .. bench-(P-1) through the store API
 * (fp_store_project_put: audited), then N devices spread round-robin over
 * them, named "<prefix>-<project index>-<8-digit number>", each with the
 * tags {"site": "s<i % 100>", "model": "m<i % 7>"} and every 10th one
 * suspended.
 *
 * The devices go straight into the SQLite tables in transactions of
 * 50,000 rows: devices with its copy of the tags as JSON text (migration
 * 7), then device_tags, whose copies of the device columns the schema's
 * trigger device_tags_from_device fills from the device row just written
 * (so the device goes first).  One durable transaction per device
 * (fp_store_device_register, as first contact does) would take hours at
 * fsync rate for a million.  ONE audit row through the store API
 * then records the bulk load, so the hash chain stays valid.  Benchmark
 * and test set-up only; no product code takes this path.
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/util.h"
#include "store/store.h"

static int die(const char *what, sqlite3 *db)
{
    fprintf(stderr, "populate_devices: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"projects", required_argument, NULL, 'p'},
        {"count", required_argument, NULL, 'n'},
        {"prefix", required_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    const char *dbpath = NULL, *prefix = "dev";
    long projects = 10, count = 1000;
    fp_store *s = NULL;
    fp_error e = {0};
    sqlite3 *db = NULL;
    sqlite3_stmt *dev = NULL, *tag = NULL;
    int64_t now = fp_now();
    char detail[128];
    int c;

    while ((c = getopt_long(argc, argv, "d:p:n:x:", opts, NULL)) != -1) {
        if (c == 'd')
            dbpath = optarg;
        else if (c == 'p')
            projects = strtol(optarg, NULL, 10);
        else if (c == 'n')
            count = strtol(optarg, NULL, 10);
        else if (c == 'x')
            prefix = optarg;
        else
            return 2;
    }
    if (dbpath == NULL || projects < 1 || projects > 1000 || count < 0) {
        fprintf(stderr, "usage: populate_devices --db FILE [--projects P] [--count N] [--prefix X]\n");
        return 2;
    }
    /* the store API first: it migrates the file and makes the projects */
    if (fp_store_open(dbpath, &s, &e) != FP_ERR_OK) {
        fprintf(stderr, "populate_devices: %s\n", fp_err_str(&e));
        return 1;
    }
    for (long p = 0; p < projects; p++) {
        char name[32];
        fp_audit_event ev = {"bench:populate_devices", "project.create", name, "", name};
        snprintf(name, sizeof(name), "bench-%ld", p);
        if (fp_store_project_put(s, name, &ev, &e) != FP_ERR_OK && e.code != FP_ERR_DUPLICATE) {
            fprintf(stderr, "populate_devices: %s\n", fp_err_str(&e));
            return 1;
        }
    }
    if (sqlite3_open(dbpath, &db) != SQLITE_OK)
        return die("open", db);
    sqlite3_busy_timeout(db, 30000);
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO devices (project, name, state, first_seen,"
                           " last_seen, tags) VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &dev, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO device_tags (project, name, key, value)"
                           " VALUES (?, ?, ?, ?)",
                           -1, &tag, NULL) != SQLITE_OK)
        return die("prepare", db);
    for (long i = 0; i < count; i++) {
        char project[32], name[96], site[16], model[16], tags[64];
        if (i % 50000 == 0 && sqlite3_exec(db, i ? "COMMIT; BEGIN" : "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
            return die("begin", db);
        snprintf(project, sizeof(project), "bench-%ld", i % projects);
        snprintf(name, sizeof(name), "%s-%ld-%08ld", prefix, i % projects, i / projects);
        snprintf(site, sizeof(site), "s%ld", i % 100);
        snprintf(model, sizeof(model), "m%ld", i % 7);
        sqlite3_bind_text(dev, 1, project, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(dev, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(dev, 3, i % 10 == 9 ? 1 : 0);
        sqlite3_bind_int64(dev, 4, now);
        sqlite3_bind_int64(dev, 5, now);
        /* as json_group_object writes it: keys in byte order */
        snprintf(tags, sizeof(tags), "{\"model\":\"%s\",\"site\":\"%s\"}", model, site);
        sqlite3_bind_text(dev, 6, tags, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(dev) != SQLITE_DONE)
            return die("insert device", db);
        sqlite3_reset(dev);
        for (int t = 0; t < 2; t++) {
            sqlite3_bind_text(tag, 1, project, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(tag, 2, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(tag, 3, t ? "model" : "site", -1, SQLITE_STATIC);
            sqlite3_bind_text(tag, 4, t ? model : site, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(tag) != SQLITE_DONE)
                return die("insert tag", db);
            sqlite3_reset(tag);
        }
    }
    if (count > 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return die("commit", db);
    sqlite3_finalize(dev);
    sqlite3_finalize(tag);
    sqlite3_close(db);
    snprintf(detail, sizeof(detail), "{\"devices\":%ld,\"projects\":%ld}", count, projects);
    {
        fp_audit_event ev = {"bench:populate_devices", "device.bulk-load", prefix, detail, ""};
        if (fp_store_audit_append(s, &ev, &e) != FP_ERR_OK) {
            fprintf(stderr, "populate_devices: %s\n", fp_err_str(&e));
            return 1;
        }
    }
    fp_store_close(s);
    printf("%ld devices in %ld projects\n", count, projects);
    return 0;
}
