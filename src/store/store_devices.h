/*
 * store_devices.h - the device registry's rows (part of the store
 * interface, see store.h; the service logic is in src/registry).
 *
 * A device is identified by (project, name); the name is derived from its
 * certificate by the project's naming rule (device_naming below).  Each
 * certificate a device has presented or been issued is linked to it by
 * (project, SHA-256 of its DER): a certificate we issued is also a row of
 * certificates (ours = 1, status there); one under a bring-your-own root
 * that we did not issue exists only here, with its serial, issuer,
 * subject and DER (ours = 0).  Tags live in a table of their own, one row
 * per (device, key), so a tag filter walks an index.
 */
#ifndef FP_STORE_DEVICES_H
#define FP_STORE_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "store_audit.h"
#include "store_projects.h"

#define FP_DEVICE_NAME_MAX 256
#define FP_DEVICE_TAG_MAX 128 /* key and value, each, including the NUL */
/* Tags one device may hold.  Bounded because each of a device's tag rows
 * carries a copy of its tags JSON (SQLite, device_tags' copies): a device
 * with k tags stores ~k^2 tag texts, and every write of it rewrites them. */
#define FP_DEVICE_TAGS_MAX 32
#define FP_DEVICE_FP_LEN 65   /* hex SHA-256 of a certificate's DER + NUL */

typedef enum { FP_DEV_ACTIVE = 0, FP_DEV_SUSPENDED = 1, FP_DEV_DECOMMISSIONED = 2 } fp_dev_state;

typedef struct fp_device_rec {
    char project[FP_PROJECT_MAX];
    char name[FP_DEVICE_NAME_MAX];
    int state; /* fp_dev_state */
    int64_t first_seen, last_seen; /* last_seen is batched: may lag by the flush interval */
    char *tags; /* JSON object text {"k":"v",...}, heap, never NULL after a get */
} fp_device_rec;

/* Free the heap fields of r (not r) and zero it. */
void fp_device_rec_clear(fp_device_rec *r);

typedef struct fp_device_filter {
    const char *project;             /* required */
    int state;                       /* -1 any */
    const char *tag_key, *tag_value; /* NULL: any (tag_value NULL with a key: any value) */
    const char *name_prefix;         /* NULL: any */
    const char *after;               /* keyset cursor: names > after (NULL: first page) */
    int limit;                       /* 1..1000 */
} fp_device_filter;
typedef int (*fp_device_cb)(void *arg, const fp_device_rec *r);

/* A certificate linked to a device (strings borrowed from the caller on
 * link, valid during the callback on iteration). */
typedef struct fp_device_cert {
    char fp[FP_DEVICE_FP_LEN]; /* hex SHA-256 of der: the link's key */
    const char *serial;        /* uppercase hex */
    const char *issuer;        /* RFC 2253 */
    const char *subject;       /* RFC 2253 */
    bool ours;                 /* issued by this fleetpki (a row of certificates) */
    int64_t added_at;
    const unsigned char *der;
    size_t der_len;
} fp_device_cert;
typedef int (*fp_device_cert_cb)(void *arg, const fp_device_cert *c);

/* Register device (project, name) at now if it does not exist (state
 * active, first_seen = last_seen = now, audited with ev: set *created) and
 * link cert to it if it is not linked yet (cert may be NULL).  One
 * transaction; two racing calls for one name make one device (the primary
 * key decides).  out (may be NULL) receives the row after the call.
 * FP_ERR_NOT_FOUND for an unknown project; FP_ERR_DUPLICATE when cert is
 * linked to another device of the project already.
 * Durability: the one exception to store.h's "fsync'd before it returns":
 * a registration is atomic (device, link and audit row together) but may
 * be lost by a power cut after it returned (SQLite: WAL, synchronous =
 * NORMAL for this transaction); the device's next contact makes it again.
 * Every other device call (states, tags) is durable as usual. */
int fp_store_device_register(fp_store *s, const char *project, const char *name, int64_t now,
                             const fp_device_cert *cert, const fp_audit_event *ev,
                             fp_device_rec *out, bool *created, fp_error *err);
/* Read device (project, name); FP_ERR_NOT_FOUND if absent or the project
 * differs.  When cert_fp is non-NULL, *linked says whether that
 * certificate is linked to this device (same read). */
int fp_store_device_get(fp_store *s, const char *project, const char *name, const char *cert_fp,
                        bool *linked, fp_device_rec *out, fp_error *err);
/* Devices matching f in name order (byte order), at most f->limit. */
int fp_store_device_list(fp_store *s, const fp_device_filter *f, fp_device_cb cb, void *arg,
                         fp_error *err);
/* Move the device to state `to` if its current state is in from_mask (bit
 * 1 << state), audited with ev; FP_ERR_STATE (naming the current state)
 * otherwise, FP_ERR_NOT_FOUND if absent. */
int fp_store_device_set_state(fp_store *s, const char *project, const char *name,
                              unsigned from_mask, int to, const fp_audit_event *ev,
                              fp_error *err);
/* Set (value non-NULL) or delete tag key of the device, audited. */
int fp_store_device_tag(fp_store *s, const char *project, const char *name, const char *key,
                        const char *value, const fp_audit_event *ev, fp_error *err);
/* last_seen = max(last_seen, seen[i]) for n devices of projects[i]/names[i],
 * one transaction, not audited (a heartbeat, not a change).  Absent
 * devices are skipped. */
int fp_store_device_touch(fp_store *s, const char *const *projects, const char *const *names,
                          const int64_t *seen, size_t n, fp_error *err);
/* The certificates linked to the device, oldest link first. */
int fp_store_device_certs(fp_store *s, const char *project, const char *name,
                          fp_device_cert_cb cb, void *arg, fp_error *err);

/*
 * Device change log (issue 11).  Every registration (a device created)
 * and every state change (suspend, resume, decommission) appends (seq,
 * project, name, state) in the same transaction, seq strictly increasing,
 * so that a process holding devices in memory (the Mosquitto plugin)
 * learns of changes made by any other process or node by polling this
 * log, not every device.  The log keeps at least the last
 * FP_STORE_CHANGES_KEEP entries (store_status.h); a reader that fell
 * further behind reloads the devices.
 */
/* Highest device change sequence number so far (0 if none). */
int fp_store_device_seq(fp_store *s, int64_t *seq, fp_error *err);
/* state: the device's state as that change left it. */
typedef int (*fp_device_change_cb)(void *arg, int64_t seq, const char *project,
                                   const char *name, int state);
/* Call cb for device changes with seq > after, oldest first, at most max
 * of them. */
int fp_store_device_changes(fp_store *s, int64_t after, int max, fp_device_change_cb cb,
                            void *arg, fp_error *err);

/* How a project names its devices from their certificates. */
typedef enum {
    FP_DEVNAME_CN = 0,      /* subject commonName (the default) */
    FP_DEVNAME_SAN_URI = 1, /* first URI subjectAltName */
    FP_DEVNAME_SAN_DNS = 2, /* first DNS subjectAltName */
    FP_DEVNAME_SERIALNUMBER = 3, /* subject serialNumber attribute (2.5.4.5) */
} fp_devname_rule;
const char *fp_devname_rule_name(int rule);  /* "cn", "san-uri", "san-dns", "serialnumber" */
int fp_devname_rule_from_name(const char *n); /* -1 unknown */
/* The project's rule (FP_DEVNAME_CN unless set); FP_ERR_NOT_FOUND for an
 * unknown project. */
int fp_store_device_naming_get(fp_store *s, const char *project, int *rule, fp_error *err);
int fp_store_device_naming_set(fp_store *s, const char *project, int rule,
                               const fp_audit_event *ev, fp_error *err);

#endif
