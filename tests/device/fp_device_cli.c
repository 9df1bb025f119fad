/*
 * fp_device_cli.c - a small command-line driver of libfleetpki-device for
 * the integration tests (tests/integration/test_device_*.sh).  Uses the
 * public API only (include/fleetpki/device.h).
 *
 *   fp-device-cli [options] bootstrap|cacerts|csrattrs|enroll|reenroll|
 *                           serverkeygen|confirm|rollback|show
 *
 * Exit status: 0 success, 2 usage, 3 + the fp_device_err code on a
 * library error; stderr then holds "error: <name>: <message>".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetpki/device.h"

typedef struct {
    const char *server, *label, *anchor, *fingerprint, *anchor_out, *store, *basic;
    const char *client_cert, *client_key, *out_cert, *out_key;
    fp_device_enroll_opts eo;
    size_t max_body;
} opts;

static int fail(int rc, const char *msg)
{
    fprintf(stderr, "error: %s: %s\n", fp_device_err_name(rc), msg && *msg ? msg : fp_device_err_message(rc));
    return 3 + rc;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

static int spit(const char *path, const char *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok = f != NULL && fwrite(p, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

static int parse_fp(const char *hex, unsigned char out[32])
{
    size_t n = 0;
    for (const char *p = hex; *p && n < 64;) {
        unsigned v;
        if (*p == ':') {
            p++;
            continue;
        }
        if (sscanf(p, "%1x", &v) != 1)
            return -1;
        out[n / 2] = (unsigned char)(n % 2 ? (out[n / 2] | v) : v << 4);
        n++;
        p++;
    }
    return n == 64 ? 0 : -1;
}

static fp_device_key_type key_type(const char *s)
{
    static const char *const names[] = {"auto", "p256", "p384", "p521", "ed25519", "rsa2048", "rsa3072"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(s, names[i]))
            return (fp_device_key_type)i;
    return (fp_device_key_type)-1;
}

/* Writes a credential's key and chain to out_key / out_cert when set. */
static int save_cred(const opts *o, fp_device_cred *c)
{
    char *k = NULL, *ch = NULL;
    size_t kl = 0, cl = 0;
    int rc = 0;

    if (o->out_cert && (fp_device_cred_chain_pem(c, &ch, &cl) != 0 || spit(o->out_cert, ch, cl) != 0))
        rc = -1;
    if (o->out_key && (fp_device_cred_key_pem(c, &k, &kl) != 0 || spit(o->out_key, k, kl) != 0))
        rc = -1;
    fp_device_buf_free(ch);
    fp_device_secret_free(k, kl);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = {0};
    const char *cmd = NULL;
    fp_device *d = NULL;
    fp_storage st = {0};
    fp_credstore *cs = NULL;
    fp_device_cred *cur = NULL, *got = NULL;
    char *anchors = NULL, *pem = NULL;
    size_t anchors_len = 0, pem_len = 0;
    int rc = 0, ret = 0;

    o.eo.rekey = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field) \
    if (!strcmp(a, name) && v) { o.field = v; i++; continue; }
        OPT("--server", server)
        OPT("--label", label)
        OPT("--anchor", anchor)
        OPT("--fingerprint", fingerprint)
        OPT("--anchor-out", anchor_out)
        OPT("--store", store)
        OPT("--basic", basic)
        OPT("--client-cert", client_cert)
        OPT("--client-key", client_key)
        OPT("--out-cert", out_cert)
        OPT("--out-key", out_key)
        OPT("--cn", eo.common_name)
        OPT("--dns", eo.dns_name)
        OPT("--serial", eo.serial_number)
        OPT("--challenge", eo.challenge_password)
#undef OPT
        if (!strcmp(a, "--key-type") && v && (int)key_type(v) >= 0) {
            o.eo.key_type = key_type(v);
            i++;
        } else if (!strcmp(a, "--max-body") && v) {
            o.max_body = strtoul(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--csrattrs")) {
            o.eo.use_csrattrs = 1;
        } else if (!strcmp(a, "--encrypt")) {
            o.eo.encrypt_key = 1;
        } else if (!strcmp(a, "--no-rekey")) {
            o.eo.rekey = 0;
        } else if (a[0] != '-' && cmd == NULL) {
            cmd = a;
        } else {
            fprintf(stderr, "usage: fp-device-cli [options] COMMAND (bad argument %s)\n", a);
            return 2;
        }
    }
    if (cmd == NULL || o.server == NULL) {
        fprintf(stderr, "usage: fp-device-cli --server HOST:PORT [options] COMMAND\n");
        return 2;
    }
    if ((d = fp_device_new()) == NULL)
        return fail(FP_DEVICE_ERR_NOMEM, NULL);
    {
        char host[256];
        const char *colon = strrchr(o.server, ':');
        if (colon == NULL || (size_t)(colon - o.server) >= sizeof(host)) {
            fprintf(stderr, "--server HOST:PORT\n");
            return 2;
        }
        memcpy(host, o.server, (size_t)(colon - o.server));
        host[colon - o.server] = '\0';
        if ((rc = fp_device_set_server(d, host, (unsigned)atoi(colon + 1), o.label)) != 0)
            goto lib_err;
    }
    if (o.max_body && (rc = fp_device_set_limits(d, o.max_body, 30000)) != 0)
        goto lib_err;
    if (o.anchor != NULL) {
        if ((anchors = slurp(o.anchor, &anchors_len)) == NULL) {
            perror(o.anchor);
            ret = 2;
            goto out;
        }
        if ((rc = fp_device_set1_trust_anchors(d, anchors, anchors_len)) != 0)
            goto lib_err;
    }
    if (o.basic != NULL) {
        char *u = strdup(o.basic), *colon = u ? strchr(u, ':') : NULL;
        if (colon == NULL) {
            free(u);
            fprintf(stderr, "--basic USER:PASSWORD\n");
            ret = 2;
            goto out;
        }
        *colon = '\0';
        rc = fp_device_set_basic_auth(d, u, colon + 1);
        fp_device_secret_free(u, strlen(colon + 1) + (size_t)(colon - u) + 1);
        if (rc != 0)
            goto lib_err;
    }
    if (o.client_cert != NULL && o.client_key != NULL) {
        size_t cl = 0, kl = 0;
        char *c = slurp(o.client_cert, &cl), *k = slurp(o.client_key, &kl);
        fp_device_cred *idev = NULL;
        rc = c && k ? fp_device_cred_from_pem(k, kl, c, cl, &idev) : FP_DEVICE_ERR_IO;
        free(c);
        fp_device_secret_free(k, kl);
        if (rc != 0) {
            ret = fail(rc, "client certificate/key");
            goto out;
        }
        fp_device_set1_client_cred(d, idev);
        fp_device_cred_free(idev);
    }
    if (o.store != NULL) {
        if (anchors == NULL) {
            fprintf(stderr, "--store needs --anchor\n");
            ret = 2;
            goto out;
        }
        if ((rc = fp_storage_posix_open(o.store, &st)) != 0) {
            ret = fail(rc, o.store);
            goto out;
        }
        if ((rc = fp_credstore_open(&st, anchors, anchors_len, &cs)) != 0) {
            ret = fail(rc, "credential store");
            goto out;
        }
        /* the stored identity authenticates us unless an IDevID was given */
        if (o.client_cert == NULL && fp_credstore_get1_current(cs, &cur) == 0)
            fp_device_set1_client_cred(d, cur);
    }

    if (!strcmp(cmd, "bootstrap")) {
        unsigned char fp[32];
        if (o.fingerprint == NULL || parse_fp(o.fingerprint, fp) != 0) {
            fprintf(stderr, "bootstrap needs --fingerprint (64 hex digits)\n");
            ret = 2;
            goto out;
        }
        if ((rc = fp_device_bootstrap(d, fp, &pem, &pem_len)) != 0)
            goto lib_err;
        if (o.anchor_out && spit(o.anchor_out, pem, pem_len) != 0) {
            perror(o.anchor_out);
            ret = 2;
        }
    } else if (!strcmp(cmd, "cacerts")) {
        if ((rc = fp_device_cacerts(d, &pem, &pem_len)) != 0)
            goto lib_err;
        fwrite(pem, 1, pem_len, stdout);
    } else if (!strcmp(cmd, "csrattrs")) {
        fp_device_csrattrs a;
        if ((rc = fp_device_get_csrattrs(d, &a)) != 0)
            goto lib_err;
        printf("items=%d key_type=%d digest_bits=%d challenge=%d\n", a.n_items, (int)a.key_type,
               a.digest_bits, a.challenge_password);
    } else if (!strcmp(cmd, "enroll") || !strcmp(cmd, "reenroll") || !strcmp(cmd, "serverkeygen")) {
        if (!strcmp(cmd, "enroll"))
            rc = fp_device_enroll(d, &o.eo, &got);
        else if (!strcmp(cmd, "reenroll"))
            rc = fp_device_reenroll(d, &o.eo, &got);
        else
            rc = fp_device_serverkeygen(d, &o.eo, &got);
        if (rc != 0)
            goto lib_err;
        if (save_cred(&o, got) != 0) {
            fprintf(stderr, "cannot write --out-cert/--out-key\n");
            ret = 2;
            goto out;
        }
        if (cs != NULL && (rc = fp_credstore_rotate(cs, got)) != 0) {
            ret = fail(rc, fp_credstore_errmsg(cs));
            goto out;
        }
        printf("ok %s\n", cmd);
    } else if (!strcmp(cmd, "confirm")) {
        /* "used successfully once": a TLS connection authenticated by the
         * current pair carried a request */
        if (cs == NULL || cur == NULL) {
            ret = fail(FP_DEVICE_ERR_NOT_FOUND, "confirm needs --store with credentials");
            goto out;
        }
        if ((rc = fp_device_cacerts(d, NULL, NULL)) != 0)
            goto lib_err;
        if ((rc = fp_credstore_confirm(cs)) != 0) {
            ret = fail(rc, fp_credstore_errmsg(cs));
            goto out;
        }
        printf("ok confirm\n");
    } else if (!strcmp(cmd, "rollback")) {
        if (cs == NULL || (rc = fp_credstore_rollback(cs)) != 0) {
            ret = fail(rc ? rc : FP_DEVICE_ERR_ARG, cs ? fp_credstore_errmsg(cs) : "needs --store");
            goto out;
        }
        printf("ok rollback\n");
    } else if (!strcmp(cmd, "show")) {
        if (cs == NULL || cur == NULL) {
            ret = fail(FP_DEVICE_ERR_NOT_FOUND, "no credentials");
            goto out;
        }
        printf("previous=%d\n", fp_credstore_has_previous(cs));
        if (save_cred(&o, cur) != 0)
            ret = 2;
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        ret = 2;
    }
    goto out;
lib_err:
    ret = fail(rc, fp_device_errmsg(d));
out:
    fp_device_buf_free(pem);
    free(anchors);
    fp_device_cred_free(cur);
    fp_device_cred_free(got);
    fp_credstore_free(cs);
    fp_storage_posix_close(&st);
    fp_device_free(d);
    return ret;
}
