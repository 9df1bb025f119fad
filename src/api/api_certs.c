/*
 * api_certs.c - /projects/{project}/certificates: list (filters, keyset
 * pages), get by serial, revoke (fp_ca_revoke, as `fleetpki revoke`).
 *
 * Pages: the store lists a project's certificates by issue time (then
 * insertion order); the cursor is base64url("<issued_at>:<serial>") of the
 * last item, and the next page starts after that certificate.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ca/ca.h"
#include "../common/util.h"
#include "api_int.h"

json_t *api_cert_json(const fp_cert_rec *r)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "serial", r->serial,
                          "project", r->project, "ca_id", r->ca_id, "profile", r->profile,
                          "subject", r->subject ? r->subject : "", "not_before",
                          (json_int_t)r->not_before, "not_after", (json_int_t)r->not_after,
                          "issued_at", (json_int_t)r->issued_at, "status",
                          r->status == FP_CERT_REVOKED ? "revoked" : "valid");
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "sans", json_string(r->sans ? r->sans : ""));
    if (r->status == FP_CERT_REVOKED) {
        const char *rn = fp_reason_name(r->reason);
        json_object_set_new(o, "revoked_at", json_integer(r->revoked_at));
        json_object_set_new(o, "reason", json_string(rn ? rn : "unspecified"));
    }
    return o;
}

static bool serial_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || islower((unsigned char)s[i]))
            return false;
    return true;
}

/* "<issued_at>:<serial>" */
static bool cursor_ok(const char *c)
{
    const char *colon = strchr(c, ':');
    if (colon == NULL || colon == c)
        return false;
    for (const char *p = c; p < colon; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return colon - c <= 19 && serial_ok(colon + 1);
}

typedef struct page {
    int64_t after_ts;
    const char *after_serial; /* NULL: first page */
    bool passed;
    int limit, n;
    json_t *items;
    char last[64];
    bool more;
} page;

static int page_add(void *arg, const fp_cert_rec *r)
{
    page *pg = arg;
    json_t *o;

    if (pg->after_serial != NULL && !pg->passed) {
        if (r->issued_at < pg->after_ts)
            return FP_ERR_OK;
        if (r->issued_at == pg->after_ts) {
            if (!strcmp(r->serial, pg->after_serial))
                pg->passed = true;
            return FP_ERR_OK;
        }
        pg->passed = true; /* the cursor's certificate is gone: start after its time */
    }
    if (pg->n == pg->limit) {
        pg->more = true;
        return FP_ERR_STATE; /* stop the walk: one item beyond the page is enough */
    }
    if ((o = api_cert_json(r)) == NULL || json_array_append_new(pg->items, o) != 0)
        return FP_ERR_NOMEM;
    pg->n++;
    snprintf(pg->last, sizeof(pg->last), "%" PRId64 ":%s", r->issued_at, r->serial);
    return FP_ERR_OK;
}

int api_certs_list(fp_http_req *req)
{
    static const char *const allowed[] = {"status", "expiring_within", "limit", "cursor", NULL};
    const char *p;
    char cur[80], *v;
    fp_cert_filter f;
    page pg;
    fp_error e = {0};
    int rc;

    if ((p = api_project(req)) == NULL || !api_query_allowed(req, allowed))
        return FP_HTTP_DONE;
    memset(&pg, 0, sizeof(pg));
    memset(&f, 0, sizeof(f));
    f.status = -1;
    f.project = p;
    f.now = fp_now();
    if (!api_limit(req, &pg.limit) || !api_cursor(req, cur, sizeof(cur), cursor_ok))
        return FP_HTTP_DONE;
    if (cur[0] != '\0') {
        pg.after_ts = strtoll(cur, NULL, 10);
        pg.after_serial = strchr(cur, ':') + 1;
    }
    if ((v = api_query(req, "status")) != NULL) {
        if (!strcmp(v, "valid"))
            f.status = FP_CERT_VALID;
        else if (!strcmp(v, "revoked"))
            f.status = FP_CERT_REVOKED;
        free(v);
        if (f.status < 0) {
            api_fail_code(req, FP_ERR_ARG, "status must be valid or revoked");
            return FP_HTTP_DONE;
        }
    }
    if ((v = api_query(req, "expiring_within")) != NULL) {
        long long d = api_duration(v);
        free(v);
        if (d < 0) {
            api_fail_code(req, FP_ERR_ARG, "expiring_within: expected e.g. 30d, 12h, 15m, 90s");
            return FP_HTTP_DONE;
        }
        f.expiring_before = f.now + d;
    }
    if ((pg.items = json_array()) == NULL) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        return FP_HTTP_DONE;
    }
    rc = fp_store_cert_list(API_STORE(req), &f, page_add, &pg, &e);
    if (rc != FP_ERR_OK && !(rc == FP_ERR_STATE && pg.more)) {
        json_decref(pg.items);
        if (e.code == FP_ERR_OK)
            fp_err_set(&e, rc, "listing certificates");
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    {
        json_t *out = json_pack("{s:o}", "items", pg.items);
        char *next = pg.more ? api_cursor_encode(pg.last) : NULL;
        json_object_set_new(out, "next_cursor", next ? json_string(next) : json_null());
        free(next);
        api_json(req, 200, out);
    }
    return FP_HTTP_DONE;
}

/* The certificate {serial} of the path's project, or answered 404. */
static bool cert_of(fp_http_req *req, const char *p, fp_cert_rec *r)
{
    const char *serial = fp_http_param(req, "serial");
    fp_error e = {0};
    int rc;

    memset(r, 0, sizeof(*r));
    if (!serial_ok(serial)) {
        api_fail_code(req, FP_ERR_ARG, "a serial is uppercase hex, at most 40 digits");
        return false;
    }
    rc = fp_store_cert_get(API_STORE(req), serial, r, &e);
    if (rc == FP_ERR_OK && strcmp(r->project, p) != 0)
        rc = fp_err_set(&e, FP_ERR_NOT_FOUND, "no certificate %s", serial);
    if (rc != FP_ERR_OK) {
        fp_cert_rec_clear(r);
        if (rc == FP_ERR_NOT_FOUND)
            fp_err_set(&e, FP_ERR_NOT_FOUND, "no certificate %s", serial);
        api_fail(req, &e);
        return false;
    }
    return true;
}

int api_cert_get(fp_http_req *req)
{
    const char *p;
    fp_cert_rec r;

    if ((p = api_project(req)) == NULL || !cert_of(req, p, &r))
        return FP_HTTP_DONE;
    api_json(req, 200, api_cert_json(&r));
    fp_cert_rec_clear(&r);
    return FP_HTTP_DONE;
}

int api_cert_revoke(fp_http_req *req)
{
    static const api_field fields[] = {{"reason", JSON_STRING, false}, {NULL, 0, false}};
    const char *p, *rn;
    fp_cert_rec r;
    json_t *j;
    int reason = FP_REASON_UNSPECIFIED;
    fp_error e = {0};
    int rc;

    if ((p = api_project(req)) == NULL || !api_may_write(req) || (j = api_body(req, fields)) == NULL)
        return FP_HTTP_DONE;
    rn = json_string_value(json_object_get(j, "reason"));
    if (rn != NULL && ((reason = fp_reason_from_name(rn)) < 0 || reason == FP_REASON_REMOVE_FROM_CRL)) {
        json_decref(j);
        api_fail_code(req, FP_ERR_ARG, "reason: not an RFC 5280 CRLReason name (e.g. keyCompromise)");
        return FP_HTTP_DONE;
    }
    json_decref(j);
    if (!cert_of(req, p, &r))
        return FP_HTTP_DONE;
    rc = fp_ca_revoke(API_STORE(req), r.serial, reason, API_WHO(req)->actor, &e);
    fp_cert_rec_clear(&r);
    if (rc == FP_ERR_OK)
        rc = cert_of(req, p, &r) ? FP_ERR_OK : -1;
    if (rc == -1)
        return FP_HTTP_DONE;
    if (rc != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    api_json(req, 200, api_cert_json(&r));
    fp_cert_rec_clear(&r);
    return FP_HTTP_DONE;
}
