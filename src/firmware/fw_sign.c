/* fw_sign.c - one firmware signature (fw_sign.h). */
#include "fw_sign.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "../ca/detail.h"
#include "../common/util.h"
#include "../x509/x509util.h"
#include "fw_ca.h"
#include "fw_cms.h"
#include "fw_suit.h"

#define READ_CHUNK (64 * 1024)

int fp_fw_uuid_parse(const char *text, unsigned char out[16], fp_error *err)
{
    static const int dash[] = {8, 13, 18, 23};
    size_t n = text != NULL ? strlen(text) : 0;
    int j = 0;

    if (n != 36)
        return fp_err_set(err, FP_ERR_ARG, "not a UUID (8-4-4-4-12 hex digits)");
    for (size_t i = 0; i < n; i++) {
        bool want_dash = i == (size_t)dash[0] || i == (size_t)dash[1] || i == (size_t)dash[2] ||
                         i == (size_t)dash[3];
        if (want_dash != (text[i] == '-') || (!want_dash && !isxdigit((unsigned char)text[i])))
            return fp_err_set(err, FP_ERR_ARG, "not a UUID (8-4-4-4-12 hex digits)");
    }
    for (size_t i = 0; i < n; i += 2) {
        unsigned v;
        if (text[i] == '-')
            i++;
        sscanf(text + i, "%2x", &v);
        out[j++] = (unsigned char)v;
    }
    return FP_ERR_OK;
}

/* canonical lowercase text of a UUID */
static void uuid_text(const unsigned char u[16], char out[FP_FW_UUID_MAX])
{
    char hex[33];
    fp_hex(u, 16, hex);
    snprintf(out, FP_FW_UUID_MAX, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

static int hash_file(const char *path, unsigned char md[32], uint64_t *size, fp_error *err)
{
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char *buf = malloc(READ_CHUNK);
    size_t got;
    int rc = FP_ERR_OK;

    *size = 0;
    if (f == NULL || c == NULL || buf == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        rc = f == NULL ? fp_err_set(err, FP_ERR_IO, "cannot read %s", path)
                       : fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    while ((got = fread(buf, 1, READ_CHUNK, f)) > 0) {
        if (EVP_DigestUpdate(c, buf, got) != 1) {
            rc = fp_err_set(err, FP_ERR_CRYPTO, "SHA-256");
            goto out;
        }
        *size += got;
    }
    if (ferror(f))
        rc = fp_err_set(err, FP_ERR_IO, "reading %s", path);
    else if (EVP_DigestFinal_ex(c, md, NULL) != 1)
        rc = fp_err_set(err, FP_ERR_CRYPTO, "SHA-256");
out:
    free(buf);
    EVP_MD_CTX_free(c);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* The signer must be usable now: inside its validity and code-signing. */
static int signer_usable(X509 *cert, fp_error *err)
{
    int64_t now = fp_now();

    if (now < fp_asn1_time_unix(X509_get0_notBefore(cert)) ||
        now > fp_asn1_time_unix(X509_get0_notAfter(cert)))
        return fp_err_set(err, FP_ERR_STATE,
                          "the firmware signer certificate is expired or not yet valid "
                          "(fleetpki firmware signer create --replace)");
    if (!(X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) ||
        !(X509_get_extended_key_usage(cert) & XKU_CODE_SIGN))
        return fp_err_set(err, FP_ERR_STATE, "the firmware signer certificate lacks codeSigning");
    return FP_ERR_OK;
}

static void audit_refusal(fp_store *store, const fp_fw_sign_req *r, const char *cls,
                          const char *why)
{
    char seq[24], obj[80];
    char *detail;
    fp_audit_event ev;

    snprintf(seq, sizeof(seq), "%" PRId64, r->sequence);
    snprintf(obj, sizeof(obj), "%s#%s", cls, seq);
    detail = fp_audit_detail("reason", why, "sequence", seq, "class", cls, "version", r->version,
                             NULL);
    ev = (fp_audit_event){.actor = r->actor, .action = "firmware.sign.refuse", .object = obj,
                          .detail = detail ? detail : "", .project = r->project};
    (void)fp_store_audit_append(store, &ev, NULL);
    free(detail);
}

int fp_fw_sign(const fp_config *cfg, fp_store *store, const char *pass, size_t passlen,
               const fp_fw_sign_req *r, fp_fw_sig_rec *rec_out, fp_error *err)
{
    fp_fw_manifest m;
    fp_fw_sig_rec rec;
    fp_signer *signer = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *chain = NULL;
    unsigned char *sig = NULL, cms_md[32];
    size_t sig_len = 0;
    const char *format = r->format != NULL ? r->format : "suit";
    bool cms = !strcmp(format, "cms");
    int64_t last = 0;
    char seq[24], size[24], obj[80], *detail = NULL;
    fp_audit_event ev;
    int rc;

    memset(&m, 0, sizeof(m));
    memset(&rec, 0, sizeof(rec));
    if (!cms && strcmp(format, "suit") != 0)
        return fp_err_set(err, FP_ERR_ARG, "--format must be suit or cms");
    if (r->sequence < 1)
        return fp_err_set(err, FP_ERR_ARG, "--sequence must be 1 or more");
    if (r->version == NULL || r->version[0] == '\0' || strlen(r->version) >= FP_FW_VERSION_MAX)
        return fp_err_set(err, FP_ERR_ARG, "--version must be 1..%d characters", FP_FW_VERSION_MAX - 1);
    if ((rc = fp_fw_uuid_parse(r->vendor_id, m.vendor_id, err)) != FP_ERR_OK ||
        (rc = fp_fw_uuid_parse(r->class_id, m.class_id, err)) != FP_ERR_OK)
        return rc;
    snprintf(rec.project, sizeof(rec.project), "%s", r->project);
    uuid_text(m.vendor_id, rec.vendor_id);
    uuid_text(m.class_id, rec.class_id);
    snprintf(rec.version, sizeof(rec.version), "%s", r->version);
    snprintf(rec.format, sizeof(rec.format), "%s", format);
    snprintf(rec.actor, sizeof(rec.actor), "%s", r->actor ? r->actor : "");
    rec.sequence = r->sequence;
    rec.forced = r->force;

    if ((rc = fp_fw_signer_load(cfg, r->project, pass, passlen, &signer, &cert, &chain, err)) !=
            FP_ERR_OK ||
        (rc = signer_usable(cert, err)) != FP_ERR_OK)
        goto out;
    if (fp_serial_hex(X509_get0_serialNumber(cert), rec.signer_serial) != FP_ERR_OK)
        rec.signer_serial[0] = '\0';
    /* anti-rollback on the signing side: refuse early, audited */
    if ((rc = fp_store_fw_sig_last(store, r->project, rec.class_id, &last, err)) != FP_ERR_OK)
        goto out;
    if (r->sequence <= last && !r->force) {
        audit_refusal(store, r, rec.class_id, "sequence not above the last signed");
        rc = fp_err_set(err, FP_ERR_STATE,
                        "sequence %" PRId64 " is not above %" PRId64 ", the last signed for class %s"
                        " (--force signs it anyway, audited)",
                        r->sequence, last, rec.class_id);
        goto out;
    }
    if ((rc = hash_file(r->image_path, m.image_sha256, &m.image_size, err)) != FP_ERR_OK)
        goto out;
    m.sequence = (uint64_t)r->sequence;
    m.version = r->version;
    if (cms) {
        if ((rc = fp_fw_cms_sign(signer, cert, chain, r->image_path, &sig, &sig_len, cms_md, err)) !=
            FP_ERR_OK)
            goto out;
        /* what CMS read must be what was hashed for the record */
        if (memcmp(cms_md, m.image_sha256, 32) != 0) {
            rc = fp_err_set(err, FP_ERR_IO, "%s changed while it was being signed", r->image_path);
            goto out;
        }
    } else if ((rc = fp_fw_suit_sign(&m, signer, cert, chain, &sig, &sig_len, err)) != FP_ERR_OK) {
        goto out;
    }
    fp_hex(m.image_sha256, 32, rec.image_sha256);
    rec.image_size = (int64_t)m.image_size;
    rec.created_at = fp_now();
    snprintf(seq, sizeof(seq), "%" PRId64, r->sequence);
    snprintf(size, sizeof(size), "%" PRIu64, m.image_size);
    snprintf(obj, sizeof(obj), "%s#%s", rec.class_id, seq);
    detail = fp_audit_detail("format", format, "version", r->version, "sequence", seq, "vendor",
                             rec.vendor_id, "class", rec.class_id, "sha256", rec.image_sha256,
                             "size", size, "signer", rec.signer_serial, "forced",
                             r->force ? "yes" : "no", NULL);
    ev = (fp_audit_event){.actor = r->actor, .action = r->force && r->sequence <= last
                                                           ? "firmware.sign.forced"
                                                           : "firmware.sign",
                          .object = obj, .detail = detail ? detail : "", .project = r->project};
    if ((rc = fp_store_fw_sig_record(store, &rec, &ev, &rec.id, err)) != FP_ERR_OK) {
        if (rc == FP_ERR_STATE) /* another signer took the sequence meanwhile */
            audit_refusal(store, r, rec.class_id, "sequence taken concurrently");
        goto out;
    }
    /* recorded first, then handed out (as certificates: committed before sent) */
    if ((rc = fp_file_replace(r->out_path, sig, sig_len, 0644, err)) != FP_ERR_OK)
        goto out;
    if (rec_out != NULL)
        *rec_out = rec;
out:
    free(detail);
    if (cms)
        OPENSSL_free(sig);
    else
        free(sig);
    fp_signer_free(signer);
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}
