/*
 * rev_upload.c - CRLs signed elsewhere, published as they are.
 *
 * The root of an offline-root data directory signs its CRL in a ceremony
 * (`fleetpki crl --ca root --root-key F`, with a long nextUpdate); the
 * operator drops the file into DIR/crl-upload/<ca id>.crl and the server
 * serves exactly those bytes at /crl/<ca id>.crl.  It never re-signs or
 * re-encodes them: it only checks that the CRL is the CA's (issuer name,
 * signature by the CA's key, RFC 5280 6.3.3 (f)-(g)) before publishing it,
 * and picks up a new upload when the file changes.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../x509/x509util.h"
#include "rev.h"

#define UPLOAD_MAX (64 * 1024 * 1024)

static int upload_path(const fp_config *cfg, const char *ca_id, char *buf, size_t size,
                       fp_error *err)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "crl-upload/%s.crl", ca_id);
    return fp_config_path(cfg, rel, buf, size, err);
}

/* Read, check and wrap the uploaded CRL of c (DER, or PEM turned to DER). */
static int load(const rev_crl *c, const char *path, rev_blob **out, fp_error *err)
{
    unsigned char *text = NULL, *der = NULL, md[32];
    const unsigned char *p;
    size_t len = 0;
    X509_CRL *crl = NULL;
    ASN1_INTEGER *num = NULL;
    rev_blob *b = NULL;
    char hex[65];
    int derlen = 0, rc;

    *out = NULL;
    if ((rc = fp_file_read(path, UPLOAD_MAX, &text, &len, err)) != FP_ERR_OK)
        return rc;
    p = text;
    crl = d2i_X509_CRL(NULL, &p, (long)len);
    if (crl == NULL || p != text + len) {
        BIO *bio = BIO_new_mem_buf(text, (int)len);
        X509_CRL_free(crl);
        crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
    }
    if (crl == NULL || (derlen = i2d_X509_CRL(crl, &der)) <= 0) {
        rc = fp_err_set(err, FP_ERR_ARG, "%s: not a CRL", path);
        goto out;
    }
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(c->cert)) != 0 ||
        X509_CRL_verify(crl, X509_get0_pubkey(c->cert)) != 1) {
        rc = fp_err_set(err, FP_ERR_ARG, "%s: not signed by CA %s", path, c->ca_id);
        goto out;
    }
    if (X509_CRL_get0_nextUpdate(crl) == NULL) {
        rc = fp_err_set(err, FP_ERR_ARG, "%s: no nextUpdate (RFC 5280 5.1.2.5)", path);
        goto out;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    b->this_update = fp_asn1_time_unix(X509_CRL_get0_lastUpdate(crl));
    b->next_update = fp_asn1_time_unix(X509_CRL_get0_nextUpdate(crl));
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    b->number = num ? ASN1_INTEGER_get(num) : 0;
    /* as is: the DER the CA signed (a PEM upload is only unwrapped) */
    b->data = der;
    b->len = (size_t)derlen;
    der = NULL;
    if (!EVP_Digest(b->data, b->len, md, NULL, EVP_sha256(), NULL)) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CRL digest");
        goto out;
    }
    fp_hex(md, 16, hex);
    snprintf(b->etag, sizeof(b->etag), "\"%.32s\"", hex);
    atomic_init(&b->refs, 1);
    *out = b;
    b = NULL;
    rc = FP_ERR_OK;
out:
    if (b != NULL) {
        OPENSSL_free(b->data);
        free(b);
    }
    ASN1_INTEGER_free(num);
    OPENSSL_free(der);
    X509_CRL_free(crl);
    free(text);
    return rc;
}

int rev_crl_upload_refresh(rev_state *st, int i, fp_error *err)
{
    rev_crl *c = &st->crls[i];
    char path[FP_PATH_MAX];
    struct stat sb;
    rev_blob *b = NULL, *old;
    int64_t mtime_ns;
    int rc;

    if ((rc = upload_path(st->cfg, c->ca_id, path, sizeof(path), err)) != FP_ERR_OK)
        return rc;
    if (stat(path, &sb) != 0)
        return FP_ERR_OK; /* removed: keep serving what was published */
    /* seconds and size alone missed a same-size replacement made within
     * the second of the previous one (test_offline_root, intermittently) */
    mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    if (c->current != NULL && (int64_t)sb.st_ino == c->upload_ino &&
        mtime_ns == c->upload_mtime && (int64_t)sb.st_size == c->upload_size)
        return FP_ERR_OK;
    c->upload_ino = (int64_t)sb.st_ino;
    c->upload_mtime = mtime_ns;
    c->upload_size = (int64_t)sb.st_size;
    if ((rc = load(c, path, &b, err)) != FP_ERR_OK)
        return rc; /* the previous upload stays published */
    pthread_mutex_lock(&st->lock);
    old = c->current;
    c->current = b;
    pthread_mutex_unlock(&st->lock);
    rev_blob_put(old);
    fp_log(FP_LOG_INFO, "crl ca=%s uploaded number=%" PRId64 " bytes=%zu published as is",
           c->ca_id, b->number, b->len);
    return FP_ERR_OK;
}

int rev_crl_upload_add(rev_state *st, const char *ca_id, const char *cert_opt, fp_error *err)
{
    rev_crl *c;
    char path[FP_PATH_MAX];
    int rc;

    if ((rc = upload_path(st->cfg, ca_id, path, sizeof(path), err)) != FP_ERR_OK)
        return rc;
    if (!fp_file_exists(path))
        return FP_ERR_NOT_FOUND;
    if (st->n_crls >= REV_MAX_CRLS)
        return fp_err_set(err, FP_ERR_CONFIG, "too many CAs to publish CRLs for");
    c = &st->crls[st->n_crls];
    memset(c, 0, sizeof(*c));
    snprintf(c->ca_id, sizeof(c->ca_id), "%s", ca_id);
    if ((rc = fp_config_path(st->cfg, cert_opt, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_cert_read(path, &c->cert, err)) != FP_ERR_OK)
        return rc;
    c->cert_der_len = i2d_X509(c->cert, &c->cert_der);
    if (c->cert_der_len <= 0) {
        X509_free(c->cert);
        c->cert = NULL;
        return fp_err_set(err, FP_ERR_CRYPTO, "CA certificate encoding");
    }
    c->uploaded = true;
    st->n_crls++;
    if ((rc = rev_crl_upload_refresh(st, st->n_crls - 1, err)) != FP_ERR_OK) {
        /* a bad upload stops the start: the operator asked for it to be served */
        fp_err_prefix(err, "uploaded CRL: ");
        return rc;
    }
    return FP_ERR_OK;
}
