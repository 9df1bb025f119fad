/* ca.c - the issuing CA: sign, store, revoke.  See ca.h. */
#define _POSIX_C_SOURCE 200809L
#include "ca.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "build.h"
#include "detail.h"
#include "policy.h"

#define URL_MAX 512

struct fp_ca {
    const fp_config *cfg;
    char id[64];
    char project[64];
    X509 *cert;
    STACK_OF(X509) *chain; /* issuers above cert, ending with a root */
    fp_signer *signer;
    char ocsp_cert[FP_PATH_MAX], ocsp_key[FP_PATH_MAX]; /* its delegated responder */
    fp_serial_fn serial_fn;
    void *serial_arg;
    char crl_url[URL_MAX], ocsp_url[URL_MAX], ca_issuers_url[URL_MAX];
    fp_build_fixed *fixed[FP_MAX_PROFILES]; /* per cfg->profiles[i] */
};

/* What fp_cert_build needs to know about this CA for profile p. */
static void build_params(const fp_ca *ca, const fp_profile *p, fp_build_params *bp)
{
    memset(bp, 0, sizeof(*bp));
    bp->profile = p;
    bp->issuer = ca->cert;
    bp->crl_url = ca->crl_url;
    bp->ocsp_url = ca->ocsp_url;
    bp->ca_issuers_url = ca->ca_issuers_url;
    if (p >= ca->cfg->profiles && p < ca->cfg->profiles + ca->cfg->n_profiles)
        bp->fixed = ca->fixed[p - ca->cfg->profiles];
}

static int default_serial(void *arg, ASN1_INTEGER **out, fp_error *err)
{
    (void)arg;
    return fp_serial_random(out, err);
}

int fp_ca_open_spec(const fp_config *cfg, const fp_ca_spec *spec, const char *pass,
                    size_t passlen, fp_ca **out, fp_error *err)
{
    fp_ca *ca = NULL;
    int rc;

    *out = NULL;
    if (strlen(spec->id) >= sizeof(ca->id) || strlen(spec->project) >= sizeof(ca->project) ||
        strlen(spec->ocsp_cert) >= sizeof(ca->ocsp_cert) ||
        strlen(spec->ocsp_key) >= sizeof(ca->ocsp_key))
        return fp_err_set(err, FP_ERR_ARG, "CA id, project or path too long");
    ca = calloc(1, sizeof(*ca));
    if (ca == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    ca->cfg = cfg;
    ca->serial_fn = default_serial;
    snprintf(ca->id, sizeof(ca->id), "%s", spec->id);
    snprintf(ca->project, sizeof(ca->project), "%s", spec->project);
    snprintf(ca->ocsp_cert, sizeof(ca->ocsp_cert), "%s", spec->ocsp_cert);
    snprintf(ca->ocsp_key, sizeof(ca->ocsp_key), "%s", spec->ocsp_key);
    if (!X509_up_ref(spec->cert)) {
        free(ca);
        return fp_err_set(err, FP_ERR_CRYPTO, "CA certificate");
    }
    ca->cert = spec->cert;
    ca->chain = X509_chain_up_ref(spec->chain);
    if (ca->chain == NULL || sk_X509_num(ca->chain) < 1) {
        rc = fp_err_set(err, FP_ERR_CONFIG, "CA '%s' has no issuer chain up to a root", spec->id);
        goto fail;
    }
    if ((rc = fp_signer_open_file(spec->key_path, pass, passlen, &ca->signer, err)) != FP_ERR_OK ||
        (rc = fp_signer_check_cert(ca->signer, ca->cert, err)) != FP_ERR_OK) {
        fp_err_prefix(err, "CA '%s': ", spec->id);
        goto fail;
    }
    if (cfg->public_url[0]) {
        /* RFC 5280 4.2.1.13 / 4.2.2.1: where relying parties fetch status;
         * every CA has its own CRL and CA certificate URL */
        snprintf(ca->crl_url, sizeof(ca->crl_url), "%s/crl/%s.crl", cfg->public_url, ca->id);
        snprintf(ca->ocsp_url, sizeof(ca->ocsp_url), "%s/ocsp", cfg->public_url);
        snprintf(ca->ca_issuers_url, sizeof(ca->ca_issuers_url), "%s/ca/%s.crt", cfg->public_url,
                 ca->id);
    }
    for (int i = 0; i < cfg->n_profiles; i++) {
        fp_build_params bp;
        build_params(ca, &cfg->profiles[i], &bp);
        if ((rc = fp_build_fixed_new(&bp, &ca->fixed[i], err)) != FP_ERR_OK)
            goto fail;
    }
    *out = ca;
    return FP_ERR_OK;
fail:
    fp_ca_free(ca);
    return rc;
}

int fp_ca_open(const fp_config *cfg, const char *pass, size_t passlen,
               fp_ca **out, fp_error *err)
{
    char path[FP_PATH_MAX], key_path[FP_PATH_MAX], ocsp_cert[FP_PATH_MAX], ocsp_key[FP_PATH_MAX];
    X509 *cert = NULL, *root = NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    int rc;

    *out = NULL;
    if (chain == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if ((rc = fp_config_path(cfg, cfg->issuing_cert, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_cert_read(path, &cert, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->root_cert, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_cert_read(path, &root, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->issuing_key, key_path, sizeof(key_path), err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->ocsp_cert, ocsp_cert, sizeof(ocsp_cert), err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, cfg->ocsp_key, ocsp_key, sizeof(ocsp_key), err)) != FP_ERR_OK)
        goto out;
    if (!sk_X509_push(chain, root)) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    root = NULL;
    rc = fp_ca_open_spec(cfg,
                         &(fp_ca_spec){cfg->issuing_id, FP_PROJECT_DEFAULT, cert, chain,
                                       key_path, ocsp_cert, ocsp_key},
                         pass, passlen, out, err);
out:
    X509_free(cert);
    X509_free(root);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

void fp_ca_free(fp_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    sk_X509_pop_free(ca->chain, X509_free);
    fp_signer_free(ca->signer);
    for (int i = 0; i < FP_MAX_PROFILES; i++)
        fp_build_fixed_free(ca->fixed[i]);
    free(ca);
}

const char *fp_ca_id(const fp_ca *ca) { return ca->id; }
const char *fp_ca_project(const fp_ca *ca) { return ca->project; }
X509 *fp_ca_get0_cert(const fp_ca *ca) { return ca->cert; }
X509 *fp_ca_get0_root(const fp_ca *ca) { return sk_X509_value(ca->chain, sk_X509_num(ca->chain) - 1); }
STACK_OF(X509) *fp_ca_get0_chain(const fp_ca *ca) { return ca->chain; }
const fp_config *fp_ca_config(const fp_ca *ca) { return ca->cfg; }

void fp_ca_ocsp_paths(const fp_ca *ca, const char **cert, const char **key)
{
    *cert = ca->ocsp_cert;
    *key = ca->ocsp_key;
}
fp_signer *fp_ca_get0_signer(const fp_ca *ca) { return ca->signer; }

void fp_ca_set_serial_source(fp_ca *ca, fp_serial_fn fn, void *arg)
{
    ca->serial_fn = fn ? fn : default_serial;
    ca->serial_arg = fn ? arg : NULL;
}

/* Fill rec from a signed certificate (everything list/show needs). */
static int fill_rec(const fp_ca *ca, const char *profile, X509 *cert, fp_cert_rec *rec,
                    fp_error *err)
{
    int rc;
    memset(rec, 0, sizeof(*rec));
    if (fp_serial_hex(X509_get0_serialNumber(cert), rec->serial) != 0)
        return fp_err_set(err, FP_ERR_CRYPTO, "serial encoding");
    snprintf(rec->ca_id, sizeof(rec->ca_id), "%s", ca->id);
    snprintf(rec->project, sizeof(rec->project), "%s", ca->project);
    snprintf(rec->profile, sizeof(rec->profile), "%s", profile);
    rec->subject = fp_name_string(X509_get_subject_name(cert));
    rec->sans = fp_cert_sans_string(cert);
    rec->not_before = fp_asn1_time_unix(X509_get0_notBefore(cert));
    rec->not_after = fp_asn1_time_unix(X509_get0_notAfter(cert));
    rec->issued_at = fp_now();
    rec->status = FP_CERT_VALID;
    if (rec->subject == NULL || rec->sans == NULL) {
        fp_cert_rec_clear(rec);
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    }
    if ((rc = fp_cert_to_der(cert, &rec->der, &rec->der_len, err)) != FP_ERR_OK) {
        fp_cert_rec_clear(rec);
        return rc;
    }
    return FP_ERR_OK;
}

int fp_ca_build(fp_ca *ca, const fp_issue_req *req, X509 **cert, fp_error *err)
{
    const fp_profile *p = fp_config_profile(ca->cfg, req->profile);
    ASN1_INTEGER *serial = NULL;
    fp_build_params bp;
    int rc;

    *cert = NULL;
    if (p == NULL)
        return fp_err_set(err, FP_ERR_PROFILE, "no profile named '%s'", req->profile);
    if ((rc = req->own_key ? fp_policy_check_own_key(p, req->csr, err)
                           : fp_policy_check(p, req->csr, err)) != FP_ERR_OK)
        return rc;
    if ((rc = ca->serial_fn(ca->serial_arg, &serial, err)) != FP_ERR_OK)
        return rc;
    build_params(ca, p, &bp);
    bp.req = req->csr;
    bp.serial = serial;
    bp.now = fp_now();
    bp.days = req->days;
    rc = fp_cert_build(&bp, cert, err);
    ASN1_INTEGER_free(serial);
    return rc;
}

int fp_ca_record(fp_ca *ca, const fp_issue_req *req, X509 *cert, fp_cert_rec *rec,
                 fp_error *err)
{
    const fp_profile *p = fp_config_profile(ca->cfg, req->profile);

    memset(rec, 0, sizeof(*rec));
    if (p == NULL)
        return fp_err_set(err, FP_ERR_PROFILE, "no profile named '%s'", req->profile);
    return fill_rec(ca, p->name, cert, rec, err);
}

int fp_ca_sign(fp_ca *ca, const fp_issue_req *req, X509 **cert,
               fp_cert_rec *rec, fp_error *err)
{
    X509 *x = NULL;
    int rc;

    *cert = NULL;
    memset(rec, 0, sizeof(*rec));
    if ((rc = fp_ca_build(ca, req, &x, err)) != FP_ERR_OK ||
        (rc = fp_signer_sign_cert(ca->signer, x, err)) != FP_ERR_OK ||
        (rc = fp_ca_record(ca, req, x, rec, err)) != FP_ERR_OK) {
        X509_free(x);
        return rc;
    }
    *cert = x;
    return FP_ERR_OK;
}

int fp_ca_revoke(fp_store *store, const char *serial, int reason,
                 const char *actor, fp_error *err)
{
    const char *rname = fp_reason_name(reason);
    fp_cert_status_rec st;
    char *detail;
    fp_audit_event ev;
    int rc;

    if (rname == NULL)
        return fp_err_set(err, FP_ERR_ARG, "unknown revocation reason %d", reason);
    /* the audit row belongs to the certificate's project */
    if ((rc = fp_store_cert_status(store, serial, &st, err)) != FP_ERR_OK)
        return rc;
    if ((detail = fp_audit_detail("reason", rname, NULL)) == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    if (reason == FP_REASON_REMOVE_FROM_CRL) {
        ev = (fp_audit_event){.actor = actor, .action = "cert.unhold", .object = serial,
                              .detail = detail, .project = st.project};
        rc = fp_store_cert_set_status(store, serial, FP_CERT_VALID, reason, 0, &ev, err);
    } else {
        ev = (fp_audit_event){.actor = actor, .action = "cert.revoke", .object = serial,
                              .detail = detail, .project = st.project};
        rc = fp_store_cert_set_status(store, serial, FP_CERT_REVOKED, reason, fp_now(), &ev, err);
    }
    free(detail);
    return rc;
}

/* ---- revocation by subject ---- */

#define CN_MAX 256
#define CN_MATCH_MAX 100000 /* bounded working set for one command */

typedef struct {
    const char *cn;
    bool sans;     /* also match subjectAltName values */
    int want_hold; /* lifting: only held certificates qualify */
    int64_t now;
    char (*serials)[FP_SERIAL_HEX_MAX];
    size_t n, cap;
    int rc;
} cn_match;

/* True if cert's subject has a commonName equal to cn (byte-exact UTF-8). */
static bool subject_cn_is(X509 *cert, const char *cn)
{
    const X509_NAME *name = X509_get_subject_name(cert);
    size_t cnlen = strlen(cn);
    int i = -1;

    while ((i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0) {
        const ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, v);
        bool eq = n >= 0 && (size_t)n == cnlen && memcmp(utf8, cn, cnlen) == 0;
        OPENSSL_free(utf8);
        if (eq)
            return true;
    }
    return false;
}

/* True if a DNS, URI or email subjectAltName of cert equals id. */
static bool san_is(X509 *cert, const char *id)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    size_t len = strlen(id);
    bool eq = false;

    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && !eq; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_IA5STRING *s = g->type == GEN_DNS ? g->d.dNSName
                                  : g->type == GEN_URI ? g->d.uniformResourceIdentifier
                                  : g->type == GEN_EMAIL ? g->d.rfc822Name : NULL;
        eq = s != NULL && (size_t)s->length == len && memcmp(s->data, id, len) == 0;
    }
    GENERAL_NAMES_free(gens);
    return eq;
}

static int cn_collect(void *arg, const fp_cert_rec *r)
{
    cn_match *m = arg;
    X509 *x;
    bool held = r->status == FP_CERT_REVOKED && r->reason == FP_REASON_HOLD;

    if (m->want_hold ? !held : !(held || (r->status == FP_CERT_VALID && r->not_after >= m->now)))
        return FP_ERR_OK;
    x = fp_cert_from_der(r->der, r->der_len);
    if (x == NULL)
        return FP_ERR_OK; /* unreadable rows are `fleetpki check`'s business */
    if (subject_cn_is(x, m->cn) || (m->sans && san_is(x, m->cn))) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 16;
            void *nb = cap <= CN_MATCH_MAX ? realloc(m->serials, cap * sizeof(*m->serials)) : NULL;
            if (nb == NULL) {
                X509_free(x);
                return FP_ERR_TOO_LARGE;
            }
            m->serials = nb;
            m->cap = cap;
        }
        snprintf(m->serials[m->n++], FP_SERIAL_HEX_MAX, "%s", r->serial);
    }
    X509_free(x);
    return FP_ERR_OK;
}

/* RFC 2253 escapes ,+"\\<>;=# (and more), so substring prefiltering on the
 * stored subject is only sound for plain names; SANs are stored raw. */
static bool cn_is_plain(const char *cn)
{
    for (const char *p = cn; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-._:@/", *p))
            return false;
    return true;
}

static int revoke_matching(fp_store *store, const char *cn, bool sans, int reason,
                           const char *actor, fp_revoke_report_fn report, void *arg, int *count,
                           fp_error *err)
{
    fp_cert_filter f = {.status = -1};
    cn_match m = {0};
    int rc, first = FP_ERR_OK;
    fp_error first_err = {0};

    *count = 0;
    if (cn == NULL || !cn[0] || strlen(cn) > CN_MAX)
        return fp_err_set(err, FP_ERR_ARG, "name must be 1..%d bytes", CN_MAX);
    if (fp_reason_name(reason) == NULL)
        return fp_err_set(err, FP_ERR_ARG, "unknown revocation reason %d", reason);
    m.cn = cn;
    m.sans = sans;
    m.want_hold = reason == FP_REASON_REMOVE_FROM_CRL;
    m.now = f.now = fp_now();
    f.name_contains = cn_is_plain(cn) ? cn : NULL;
    /* collect first: the store's iteration must end before we write */
    rc = fp_store_cert_list(store, &f, cn_collect, &m, err);
    if (rc == FP_ERR_TOO_LARGE)
        rc = fp_err_set(err, FP_ERR_TOO_LARGE, "more than %d certificates match '%s'",
                        CN_MATCH_MAX, cn);
    if (rc != FP_ERR_OK)
        goto out;
    if (m.n == 0) {
        rc = fp_err_set(err, FP_ERR_NOT_FOUND, "no %s certificate has %s '%s'",
                        m.want_hold ? "held" : "valid or held", sans ? "CN or SAN" : "CN", cn);
        goto out;
    }
    for (size_t i = 0; i < m.n; i++) {
        fp_error e = {0};
        int r = fp_ca_revoke(store, m.serials[i], reason, actor, &e);
        if (r == FP_ERR_OK)
            (*count)++;
        else if (first == FP_ERR_OK) {
            first = r;
            first_err = e;
        }
        if (report)
            report(arg, m.serials[i], &e);
    }
    rc = first;
    if (rc != FP_ERR_OK && err != NULL)
        *err = first_err;
out:
    free(m.serials);
    return rc;
}

int fp_ca_revoke_cn(fp_store *store, const char *cn, int reason, const char *actor,
                    fp_revoke_report_fn report, void *arg, int *count, fp_error *err)
{
    return revoke_matching(store, cn, false, reason, actor, report, arg, count, err);
}

int fp_ca_revoke_device(fp_store *store, const char *id, int reason, const char *actor,
                        fp_revoke_report_fn report, void *arg, int *count, fp_error *err)
{
    return revoke_matching(store, id, true, reason, actor, report, arg, count, err);
}
