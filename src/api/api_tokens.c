/*
 * api_tokens.c - /projects/{project}/tokens: EST enrollment tokens (the
 * secret is in the create answer only; only its SHA-256 is stored, as
 * `fleetpki token create` does).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "../ca/detail.h"
#include "../common/util.h"
#include "../est/token.h"
#include "api_int.h"

static int add_token(void *arg, const fp_token_rec *t)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "id", t->id, "label",
                          t->label[0] ? t->label : "default", "cn_pattern", t->cn_pattern,
                          "uses_left", t->uses_left, "expires_at", (json_int_t)t->expires_at,
                          "created_at", (json_int_t)t->created_at);
    return o != NULL && json_array_append_new(arg, o) == 0 ? FP_ERR_OK : FP_ERR_NOMEM;
}

int api_tokens_list(fp_http_req *req)
{
    const char *p;
    json_t *arr;
    fp_error e = {0};
    int rc;

    if ((p = api_project(req)) == NULL)
        return FP_HTTP_DONE;
    if ((arr = json_array()) == NULL) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        return FP_HTTP_DONE;
    }
    rc = fp_store_token_list(API_STORE(req), p, add_token, arr, &e);
    api_items(req, arr, rc, &e, "listing tokens");
    return FP_HTTP_DONE;
}

int api_tokens_create(fp_http_req *req)
{
    static const api_field fields[] = {{"label", JSON_STRING, true},
                                       {"cn", JSON_STRING, false},
                                       {"uses", JSON_INTEGER, false},
                                       {"ttl", JSON_STRING, false},
                                       {NULL, 0, false}};
    const char *p, *label, *cn, *ttl_s;
    const fp_est_label *lcfg;
    char secret[FP_TOKEN_SECRET_MAX] = "", num_uses[24], num_exp[24], *detail = NULL;
    long long ttl = 7 * 86400;
    json_int_t uses = 1;
    fp_token_rec t;
    fp_audit_event ev;
    json_t *j, *out;
    fp_error e = {0};

    if ((p = api_project(req)) == NULL || !api_may_write(req) || (j = api_body(req, fields)) == NULL)
        return FP_HTTP_DONE;
    label = json_string_value(json_object_get(j, "label"));
    cn = json_object_get(j, "cn") ? json_string_value(json_object_get(j, "cn")) : "";
    ttl_s = json_string_value(json_object_get(j, "ttl"));
    if (json_object_get(j, "uses") != NULL)
        uses = json_integer_value(json_object_get(j, "uses"));
    if (uses < 1 || uses > 1000000) {
        api_fail_code(req, FP_ERR_ARG, "uses must be 1..1000000");
        goto out;
    }
    if (ttl_s != NULL && (ttl = api_duration(ttl_s)) < 0) {
        api_fail_code(req, FP_ERR_ARG, "ttl: expected e.g. 90s, 15m, 12h, 7d");
        goto out;
    }
    if (cn[0] != '\0' && fp_token_pattern_check(cn, &e) != FP_ERR_OK) {
        api_fail(req, &e);
        goto out;
    }
    if (!strcmp(label, "default"))
        label = "";
    /* a token belongs to its label's project; a label of another project
     * is not found, as an absent one */
    lcfg = fp_config_est_label(API_STATE(req)->app->cfg, label);
    if (lcfg == NULL || strcmp(lcfg->project, p) != 0) {
        api_fail_code(req, FP_ERR_NOT_FOUND, "no EST label '%s' in project %s",
                      label[0] ? label : "default", p);
        goto out;
    }
    memset(&t, 0, sizeof(t));
    snprintf(t.project, sizeof(t.project), "%s", p);
    if (fp_token_generate(t.id, secret, t.hash, &e) != FP_ERR_OK) {
        api_fail(req, &e);
        goto out;
    }
    snprintf(t.label, sizeof(t.label), "%s", label);
    snprintf(t.cn_pattern, sizeof(t.cn_pattern), "%s", cn);
    t.uses_left = (int)uses;
    t.created_at = fp_now();
    t.expires_at = t.created_at + ttl;
    snprintf(num_uses, sizeof(num_uses), "%d", t.uses_left);
    snprintf(num_exp, sizeof(num_exp), "%lld", (long long)t.expires_at);
    detail = fp_audit_detail("label", label, "uses", num_uses, "expires_at", num_exp, NULL);
    if (detail == NULL) {
        api_fail_code(req, FP_ERR_NOMEM, "out of memory");
        goto out;
    }
    ev = (fp_audit_event){.actor = API_WHO(req)->actor, .action = "token.create", .object = t.id,
                          .detail = detail, .project = p};
    if (fp_store_token_put(API_STORE(req), &t, &ev, &e) != FP_ERR_OK) {
        api_fail(req, &e);
        goto out;
    }
    out = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I}", "id", t.id, "secret", secret, "label",
                    label[0] ? label : "default", "project", p, "uses", t.uses_left,
                    "expires_at", (json_int_t)t.expires_at);
    api_json(req, 201, out);
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    free(detail);
    json_decref(j);
    return FP_HTTP_DONE;
}

int api_token_delete(fp_http_req *req)
{
    const char *p, *id = fp_http_param(req, "token");
    fp_audit_event ev;
    fp_error e = {0};

    if ((p = api_project(req)) == NULL || !api_may_write(req))
        return FP_HTTP_DONE;
    ev = (fp_audit_event){.actor = API_WHO(req)->actor, .action = "token.delete", .object = id,
                          .detail = "", .project = p};
    if (fp_store_token_delete(API_STORE(req), p, id, &ev, &e) != FP_ERR_OK) {
        api_fail(req, &e);
        return FP_HTTP_DONE;
    }
    fp_http_reply(req, 204, NULL, "", 0);
    return FP_HTTP_DONE;
}
