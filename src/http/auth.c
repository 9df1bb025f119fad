/*
 * auth.c - the registry of authentication schemes routes name, and the
 * three built in.  A scheme is a callback the layer runs before the
 * handler (http.h, "Authentication"); the layer knows no credential
 * format: client certificates, tokens, API keys live in the modules that
 * register their schemes, so a new scheme never touches src/http/.
 */
#define _POSIX_C_SOURCE 200809L
#include "http_int.h"

#include <string.h>

/* Public, or authenticated by the handler itself (EST: the mode depends
 * on the label, known from the path): nothing to do here. */
static bool auth_pass(fp_http_req *req, void *arg)
{
    (void)req;
    (void)arg;
    return true;
}

/* The handshake proved the client holds the certificate's key; whether
 * the certificate is acceptable is the handler's call (trust anchors
 * differ per module and label). */
static bool auth_client_cert(fp_http_req *req, void *arg)
{
    (void)arg;
    if (req->peer_cert != NULL)
        return true;
    fp_http_error(req, 401, "a TLS client certificate is required");
    return false;
}

int fp_http_auth_register(fp_http_server *srv, const fp_http_auth_scheme *scheme, fp_error *err)
{
    if (srv->running)
        return fp_err_set(err, FP_ERR_STATE, "auth schemes are registered before the server runs");
    if (scheme == NULL || scheme->name == NULL || scheme->name[0] == '\0' || scheme->check == NULL)
        return fp_err_set(err, FP_ERR_ARG, "auth scheme without a name or a check");
    if (fp_http_auth_index(srv, scheme->name) >= 0)
        return fp_err_set(err, FP_ERR_ARG, "auth scheme '%s' registered twice", scheme->name);
    if (srv->n_auth >= MAX_AUTH_SCHEMES)
        return fp_err_set(err, FP_ERR_ARG, "more than %d auth schemes", MAX_AUTH_SCHEMES);
    srv->auth[srv->n_auth++] = *scheme;
    return FP_ERR_OK;
}

int fp_http_auth_index(void *arg, const char *name)
{
    fp_http_server *srv = arg;
    for (int i = 0; i < srv->n_auth; i++)
        if (!strcmp(srv->auth[i].name, name))
            return i;
    return -1;
}

int fp_http_auth_builtin(fp_http_server *srv, fp_error *err)
{
    static const fp_http_auth_scheme builtin[] = {
        {FP_HTTP_AUTH_NONE, 0, auth_pass, NULL, NULL},
        {FP_HTTP_AUTH_HANDLER, 0, auth_pass, NULL, NULL},
        {FP_HTTP_AUTH_CLIENT_CERT, 0, auth_client_cert, NULL, NULL},
    };
    int rc;
    for (size_t i = 0; i < sizeof(builtin) / sizeof(*builtin); i++)
        if ((rc = fp_http_auth_register(srv, &builtin[i], err)) != FP_ERR_OK)
            return rc;
    return FP_ERR_OK;
}
