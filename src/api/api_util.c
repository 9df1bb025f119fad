/*
 * api_util.c - what every admin API handler shares: RFC 9457 problem
 * details, JSON answers, project scoping, strict body and query parsing,
 * keyset cursors.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../common/util.h"
#include "api_int.h"

#define PROBLEM_BASE "https://fleetpki.dev/problems/"

/* The one table from error class to HTTP status (RFC 9110 15). */
int api_status_of(int code)
{
    switch (fp_err_class(code)) {
    case FP_ERRCLASS_BAD_INPUT:
    case FP_ERRCLASS_MALFORMED:
        return 400;
    case FP_ERRCLASS_REFUSED:
        return 422; /* well-formed, refused by a rule (RFC 9110 15.5.21) */
    case FP_ERRCLASS_TOO_LARGE:
        return 413;
    case FP_ERRCLASS_NOT_FOUND:
        return 404;
    case FP_ERRCLASS_CONFLICT:
        return 409;
    case FP_ERRCLASS_AUTH:
        return 401;
    case FP_ERRCLASS_UNAVAILABLE:
        return 503; /* a dependency (database, key token, signer) is down: retry (RFC 9110 15.6.4) */
    case FP_ERRCLASS_INTERNAL:
    default:
        return 500;
    }
}

void api_json(fp_http_req *req, int status, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    if (text == NULL) {
        fp_http_error(req, 500, "out of memory");
        return;
    }
    fp_http_reply(req, status, "application/json", text, strlen(text));
    free(text);
}

static void problem_v(fp_http_req *req, int status, const char *name, const char *title,
                      const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void problem_v(fp_http_req *req, int status, const char *name, const char *title,
                      const char *fmt, va_list ap)
{
    char detail[FP_ERRMSG_MAX], type[128];
    json_t *j;
    char *text;

    vsnprintf(detail, sizeof(detail), fmt, ap);
    snprintf(type, sizeof(type), PROBLEM_BASE "%s", name);
    j = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title, "status", status,
                  "detail", detail);
    text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        fp_http_error(req, 500, "out of memory");
        return;
    }
    fp_http_reply(req, status, "application/problem+json", text, strlen(text));
    free(text);
}

void api_problem(fp_http_req *req, int status, const char *name, const char *title,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(req, status, name, title, fmt, ap);
    va_end(ap);
}

void api_fail(fp_http_req *req, const fp_error *err)
{
    int status = api_status_of(err->code);

    if (status == 503) {
        /* the store is unavailable (PostgreSQL restarting, failing over):
         * the detail goes to the log, the client retries */
        fp_log(FP_LOG_WARN, "api %s: %s", req->id, fp_err_str(err));
        fp_http_add_header(req, "Retry-After", "2");
        api_problem(req, 503, fp_err_name(err->code), fp_err_default_msg(err->code),
                    "the store is unavailable, retry later (request %s)", req->id);
        return;
    }
    if (status == 500) {
        /* our fault: the detail goes to the log, the caller gets the title */
        fp_log(FP_LOG_ERROR, "api %s: %s", req->id, fp_err_str(err));
        api_problem(req, 500, fp_err_name(FP_ERR_INTERNAL), fp_err_default_msg(FP_ERR_INTERNAL),
                    "see the server log, request %s", req->id);
        return;
    }
    api_problem(req, status, fp_err_name(err->code), fp_err_default_msg(err->code), "%s",
                err->msg[0] ? err->msg : fp_err_default_msg(err->code));
}

void api_fail_code(fp_http_req *req, int code, const char *fmt, ...)
{
    fp_error e = {0};
    va_list ap;

    e.code = code;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
    va_end(ap);
    api_fail(req, &e);
}

const char *api_project_scope(fp_http_req *req)
{
    const api_principal *who = API_WHO(req);
    const char *p = fp_http_param(req, "project");

    if (p == NULL) {
        api_fail_code(req, FP_ERR_INTERNAL, "route without {project}");
        return NULL;
    }
    /* the same answer for another project's name and an absent one */
    if (who->project[0] != '\0' && strcmp(who->project, p) != 0) {
        api_fail_code(req, FP_ERR_NOT_FOUND, "no project '%s'", p);
        return NULL;
    }
    return p;
}

bool api_project_exists(fp_http_req *req, const char *p)
{
    fp_project_rec rec;
    fp_error e = {0};
    int rc;

    if ((rc = fp_store_project_get(API_STORE(req), p, &rec, &e)) != FP_ERR_OK) {
        if (rc == FP_ERR_ARG)
            fp_err_set(&e, FP_ERR_NOT_FOUND, "no project '%s'", p);
        api_fail(req, &e);
        return false;
    }
    return true;
}

const char *api_project(fp_http_req *req)
{
    const char *p = api_project_scope(req);
    return p != NULL && api_project_exists(req, p) ? p : NULL;
}

bool api_may_write(fp_http_req *req)
{
    if (!API_WHO(req)->read_only)
        return true;
    api_problem(req, 403, "forbidden", "forbidden", "API key %s is read-only", API_WHO(req)->id);
    return false;
}

bool api_admin_only(fp_http_req *req)
{
    if (API_WHO(req)->project[0] == '\0')
        return api_may_write(req);
    api_problem(req, 403, "forbidden", "forbidden", "this needs an admin API key");
    return false;
}

static const char *type_name(int t)
{
    return t == JSON_STRING ? "a string" : t == JSON_INTEGER ? "an integer" : "a boolean";
}

json_t *api_body(fp_http_req *req, const api_field *fields)
{
    json_error_t je;
    json_t *j;
    const char *key;
    json_t *val;

    if (req->body == NULL || req->body_len == 0) {
        api_fail_code(req, FP_ERR_ARG, "a JSON object body is required");
        return NULL;
    }
    j = json_loadb((const char *)req->body, req->body_len,
                   JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        api_fail_code(req, FP_ERR_ARG, "body is not valid JSON: %s at line %d column %d",
                      je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_fail_code(req, FP_ERR_ARG, "body must be a JSON object");
        return NULL;
    }
    json_object_foreach(j, key, val) {
        const api_field *f = fields;
        char esc[96];
        while (f->name != NULL && strcmp(f->name, key) != 0)
            f++;
        if (f->name == NULL) {
            fp_log_escape(esc, sizeof(esc), key);
            api_fail_code(req, FP_ERR_ARG, "unknown field \"%s\"", esc);
            json_decref(j);
            return NULL;
        }
        if ((f->type == JSON_TRUE && !json_is_boolean(val)) ||
            (f->type != JSON_TRUE && (int)json_typeof(val) != f->type)) {
            api_fail_code(req, FP_ERR_ARG, "field \"%s\" must be %s", f->name,
                          type_name(f->type));
            json_decref(j);
            return NULL;
        }
        if (f->type == JSON_STRING && strlen(json_string_value(val)) != json_string_length(val)) {
            api_fail_code(req, FP_ERR_ARG, "field \"%s\" holds a NUL character", f->name);
            json_decref(j);
            return NULL;
        }
    }
    for (const api_field *f = fields; f->name != NULL; f++)
        if (f->required && json_object_get(j, f->name) == NULL) {
            api_fail_code(req, FP_ERR_ARG, "field \"%s\" is required", f->name);
            json_decref(j);
            return NULL;
        }
    return j;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Percent-decode [s, s+n) (RFC 3986 2.1; '+' is a space in a query, per
 * the HTML form encoding curl and browsers use).  NULL if malformed or
 * holding a NUL. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

char *api_query(const fp_http_req *req, const char *name)
{
    const char *q = req->query, *end;
    size_t nlen = strlen(name);

    while (q != NULL && *q != '\0') {
        end = strchr(q, '&');
        if (end == NULL)
            end = q + strlen(q);
        if ((size_t)(end - q) > nlen && !strncmp(q, name, nlen) && q[nlen] == '=')
            return pct_decode(q + nlen + 1, (size_t)(end - q) - nlen - 1);
        q = *end ? end + 1 : end;
    }
    return NULL;
}

bool api_query_allowed(fp_http_req *req, const char *const *allowed)
{
    const char *q = req->query, *end, *eq;

    while (q != NULL && *q != '\0') {
        const char *const *a = allowed;
        size_t klen;
        end = strchr(q, '&');
        if (end == NULL)
            end = q + strlen(q);
        eq = memchr(q, '=', (size_t)(end - q));
        klen = (size_t)((eq ? eq : end) - q);
        while (*a != NULL && (strlen(*a) != klen || strncmp(*a, q, klen) != 0))
            a++;
        if (*a == NULL || eq == NULL) {
            char esc[64], key[32];
            snprintf(key, sizeof(key), "%.*s", (int)(klen < 31 ? klen : 31), q);
            fp_log_escape(esc, sizeof(esc), key);
            api_fail_code(req, FP_ERR_ARG, "unknown or malformed query parameter \"%s\"", esc);
            return false;
        }
        q = *end ? end + 1 : end;
    }
    return true;
}

bool api_limit(fp_http_req *req, int *limit)
{
    char *v = api_query(req, "limit"), *end = NULL;
    long n;

    *limit = 100;
    if (v == NULL)
        return true;
    n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 1 || n > 1000) {
        free(v);
        api_fail_code(req, FP_ERR_ARG, "limit must be an integer 1..1000");
        return false;
    }
    free(v);
    *limit = (int)n;
    return true;
}

bool api_cursor(fp_http_req *req, char *buf, size_t size, bool (*valid)(const char *))
{
    char *v = api_query(req, "cursor");
    unsigned char *dec = NULL;
    size_t dlen = 0;
    fp_error e = {0};

    buf[0] = '\0';
    if (v == NULL)
        return true;
    /* opaque to clients; checked as strictly as any other input */
    if (v[0] == '\0' || strchr(v, '=') != NULL || strchr(v, '+') != NULL ||
        strchr(v, '/') != NULL ||
        fp_b64_decode(v, strlen(v), FP_B64_URLSAFE, size - 1, &dec, &dlen, &e) != FP_ERR_OK ||
        memchr(dec, '\0', dlen) != NULL) {
        free(v);
        free(dec);
        api_fail_code(req, FP_ERR_ARG, "cursor is not one this API returned");
        return false;
    }
    memcpy(buf, dec, dlen);
    buf[dlen] = '\0';
    free(v);
    free(dec);
    if (!valid(buf)) {
        api_fail_code(req, FP_ERR_ARG, "cursor is not one this API returned");
        return false;
    }
    return true;
}

char *api_cursor_encode(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len;

    if (out == NULL)
        return NULL;
    len = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)n);
    /* base64url without padding (RFC 4648 5): safe in a query unescaped */
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

long long api_duration(const char *s)
{
    char *end = NULL;
    long long v, mul;

    if (!isdigit((unsigned char)s[0]))
        return -1;
    v = strtoll(s, &end, 10);
    if (end == s || v <= 0 || end[0] == '\0' || end[1] != '\0')
        return -1;
    mul = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : -1;
    if (mul < 0 || v > 3650LL * 86400 / mul)
        return -1;
    return v * mul;
}

fp_admin api_admin(fp_http_req *req)
{
    const api_state *st = API_STATE(req);
    return (fp_admin){st->app->cfg, API_STORE(req), st->app->pass, st->app->passlen,
                      API_WHO(req)->actor};
}

void api_items(fp_http_req *req, json_t *arr, int rc, fp_error *e, const char *what)
{
    if (rc != FP_ERR_OK) {
        json_decref(arr);
        if (e->code == FP_ERR_OK)
            fp_err_set(e, rc, "%s", what);
        api_fail(req, e);
        return;
    }
    api_json(req, 200, json_pack("{s:o}", "items", arr));
}
