/* err.c - error names, messages, and OpenSSL error-queue draining. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static const char *const err_names[] = {
#define FP_X_NAME(sym, name, msg) name,
    FP_ERR_LIST(FP_X_NAME)
#undef FP_X_NAME
};

static const char *const err_msgs[] = {
#define FP_X_MSG(sym, name, msg) msg,
    FP_ERR_LIST(FP_X_MSG)
#undef FP_X_MSG
};

const char *fp_err_name(int code)
{
    if (code < 0 || code >= FP_ERR__COUNT)
        return "unknown";
    return err_names[code];
}

const char *fp_err_default_msg(int code)
{
    if (code < 0 || code >= FP_ERR__COUNT)
        return "unknown error";
    return err_msgs[code];
}

/* Append the OpenSSL error queue ("; reason; reason") to buf, bounded. */
static void append_openssl_errors(char *buf, size_t size)
{
    unsigned long e;
    const char *data = NULL;
    int flags = 0;
    size_t used = strlen(buf);

    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        if (used + 3 >= size)
            continue; /* keep draining even when full */
        int n = snprintf(buf + used, size - used, "; %s%s%s", one,
                         (flags & ERR_TXT_STRING) && data && *data ? ": " : "",
                         (flags & ERR_TXT_STRING) && data ? data : "");
        if (n > 0)
            used = (size_t)n >= size - used ? size - 1 : used + (size_t)n;
    }
}

int fp_err_set(fp_error *e, int code, const char *fmt, ...)
{
    if (e == NULL) {
        ERR_clear_error();
        return code;
    }
    e->code = (fp_errcode)code;
    e->msg[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    } else {
        snprintf(e->msg, sizeof(e->msg), "%s", fp_err_default_msg(code));
    }
    if (code == FP_ERR_CRYPTO)
        append_openssl_errors(e->msg, sizeof(e->msg));
    else
        ERR_clear_error();
    return code;
}

void fp_err_prefix(fp_error *e, const char *fmt, ...)
{
    char prefix[FP_ERRMSG_MAX];
    size_t plen, mlen;
    va_list ap;

    if (e == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    plen = strlen(prefix);
    mlen = strlen(e->msg);
    if (plen >= sizeof(e->msg) - 1)
        plen = sizeof(e->msg) - 1;
    if (plen + mlen >= sizeof(e->msg))
        mlen = sizeof(e->msg) - 1 - plen;
    memmove(e->msg + plen, e->msg, mlen);
    memcpy(e->msg, prefix, plen);
    e->msg[plen + mlen] = '\0';
}

void fp_err_clear(fp_error *e)
{
    if (e != NULL) {
        e->code = FP_ERR_OK;
        e->msg[0] = '\0';
    }
}

const char *fp_err_str(const fp_error *e)
{
    if (e == NULL)
        return "unknown error";
    return e->msg[0] ? e->msg : fp_err_default_msg(e->code);
}

fp_errclass fp_err_class(int code)
{
    if (code >= FP_ERR_PROFILE && code <= FP_ERR_ISSUER_EXPIRED && code != FP_ERR_TOO_LARGE &&
        code != FP_ERR_CSR_MALFORMED)
        return FP_ERRCLASS_REFUSED;
    switch (code) {
    case FP_ERR_CA_CERT:
        return FP_ERRCLASS_REFUSED;
    case FP_ERR_ARG:
        return FP_ERRCLASS_BAD_INPUT;
    case FP_ERR_CSR_MALFORMED:
        return FP_ERRCLASS_MALFORMED;
    case FP_ERR_TOO_LARGE:
        return FP_ERRCLASS_TOO_LARGE;
    case FP_ERR_NOT_FOUND:
        return FP_ERRCLASS_NOT_FOUND;
    case FP_ERR_EXISTS:
    case FP_ERR_DUPLICATE:
    case FP_ERR_STATE:
        return FP_ERRCLASS_CONFLICT;
    case FP_ERR_PASSPHRASE:
        return FP_ERRCLASS_AUTH;
    case FP_ERR_KEY_UNAVAILABLE:
    case FP_ERR_UNAVAILABLE:
        return FP_ERRCLASS_UNAVAILABLE;
    default:
        return FP_ERRCLASS_INTERNAL;
    }
}

int fp_err_is_refusal(int code) { return fp_err_class(code) == FP_ERRCLASS_REFUSED; }
