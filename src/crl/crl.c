/*
 * crl.c - streaming CRL generation; see crl.h.
 *
 * X509_CRL holds every entry in memory and sorts them before signing, which
 * for a million entries costs hundreds of MiB and seconds.  Instead:
 *
 *   1. entries come from the store in serial order (a covering index);
 *      each is encoded by i2d_X509_REVOKED into a spool (memory up to
 *      SPOOL_MEM, then a temporary file), counting bytes;
 *   2. with the total known, the TBSCertList framing is written
 *      (RFC 5280 5.1: SEQUENCE { version, signature, issuer, thisUpdate,
 *      nextUpdate, revokedCertificates, [0] crlExtensions }) and fed, with
 *      the spool replayed, into an incremental signature (signer.h);
 *   3. the outer CertificateList SEQUENCE { tbs, algorithm, BIT STRING }
 *      is written to the output, replaying the spool a second time.
 *
 * Every element is encoded by OpenSSL; this file only writes tag/length
 * headers around them.  Memory is O(1) in the number of entries (except
 * for an Ed25519 CA, whose signature is one-shot, see signer.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "crl.h"

#include "../ca/caset.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "../common/util.h"
#include "../x509/der.h"
#include "../x509/x509util.h"

#define SPOOL_MEM (4u * 1024 * 1024) /* entries kept in memory before spilling */
#define CHUNK (64u * 1024)
#define N_REASONS 11                 /* CRLReason 0..10 */
#define MAX_SERIAL_OCTETS 20         /* RFC 5280 4.1.2.2 */
#define ENTRY_DER_MAX 256            /* one encoded CRL entry, see add_entry */

/* ---- spool: append-only bytes, replayable ---- */

typedef struct {
    unsigned char *mem;
    size_t len;      /* bytes in mem */
    size_t cap;      /* memory budget */
    FILE *file;      /* overflow, once mem is full */
    uint64_t total;  /* all bytes appended */
    const char *dir;
} spool;

static FILE *spool_tmpfile(const char *dir)
{
    char path[FP_PATH_MAX];
    FILE *f;
    int fd;

    if (dir == NULL)
        return tmpfile();
    if (snprintf(path, sizeof(path), "%s/.crl-spool.XXXXXX", dir) >= (int)sizeof(path))
        return NULL;
    fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    unlink(path); /* anonymous from now on: gone when closed or on a crash */
    f = fdopen(fd, "w+b");
    if (f == NULL)
        close(fd);
    return f;
}

static int spool_add(spool *sp, const unsigned char *p, size_t n, fp_error *err)
{
    if (sp->file == NULL && sp->len + n <= sp->cap) {
        if (sp->mem == NULL && (sp->mem = malloc(sp->cap)) == NULL)
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        memcpy(sp->mem + sp->len, p, n);
        sp->len += n;
        sp->total += n;
        return FP_ERR_OK;
    }
    if (sp->file == NULL) {
        sp->file = spool_tmpfile(sp->dir);
        if (sp->file == NULL)
            return fp_err_set(err, FP_ERR_IO, "CRL spool file: %s", strerror(errno));
    }
    if (fwrite(p, 1, n, sp->file) != n)
        return fp_err_set(err, FP_ERR_IO, "CRL spool write: %s", strerror(errno));
    sp->total += n;
    return FP_ERR_OK;
}

typedef int (*sink_fn)(void *arg, const unsigned char *p, size_t n, fp_error *err);

/* Feed the whole spool, in order, to sink. */
static int spool_replay(spool *sp, unsigned char *buf, sink_fn sink, void *arg, fp_error *err)
{
    size_t n;
    int rc;

    if (sp->len > 0 && (rc = sink(arg, sp->mem, sp->len, err)) != FP_ERR_OK)
        return rc;
    if (sp->file == NULL)
        return FP_ERR_OK;
    if (fflush(sp->file) != 0 || fseek(sp->file, 0, SEEK_SET) != 0)
        return fp_err_set(err, FP_ERR_IO, "CRL spool: %s", strerror(errno));
    while ((n = fread(buf, 1, CHUNK, sp->file)) > 0)
        if ((rc = sink(arg, buf, n, err)) != FP_ERR_OK)
            return rc;
    if (ferror(sp->file))
        return fp_err_set(err, FP_ERR_IO, "CRL spool read: %s", strerror(errno));
    if (fseek(sp->file, 0, SEEK_END) != 0)
        return fp_err_set(err, FP_ERR_IO, "CRL spool: %s", strerror(errno));
    return FP_ERR_OK;
}

static void spool_free(spool *sp)
{
    free(sp->mem);
    if (sp->file != NULL)
        fclose(sp->file);
}

/* ---- DER framing (headers by fp_der_put_hdr, der.h) ---- */

static uint64_t der_total(uint64_t len)
{
    return fp_der_hdr_size(len) + len;
}

/* ---- entries ---- */

typedef struct {
    X509_REVOKED *tmpl[N_REASONS]; /* one template per reason: no per-entry extension work */
    ASN1_INTEGER *serial;
    ASN1_TIME *date;
    int64_t date_t;     /* what date holds, to skip re-encoding equal times */
    spool sp;
    uint64_t count;
    fp_error *err;
} entry_ctx;

static int entry_ctx_init(entry_ctx *ec, fp_error *err)
{
    for (int r = 0; r < N_REASONS; r++) {
        ASN1_ENUMERATED *e = NULL;
        int ok;
        if (r == 7)
            continue; /* unused value (RFC 5280 5.3.1) */
        ec->tmpl[r] = X509_REVOKED_new();
        if (ec->tmpl[r] == NULL)
            return fp_err_set(err, FP_ERR_NOMEM, NULL);
        if (r == FP_REASON_UNSPECIFIED)
            continue; /* RFC 5280 5.3.1: reasonCode SHOULD be absent */
        e = ASN1_ENUMERATED_new();
        ok = e != NULL && ASN1_ENUMERATED_set(e, r) &&
             X509_REVOKED_add1_ext_i2d(ec->tmpl[r], NID_crl_reason, e, 0, 0) == 1;
        ASN1_ENUMERATED_free(e);
        if (!ok)
            return fp_err_set(err, FP_ERR_CRYPTO, "reasonCode extension");
    }
    ec->serial = ASN1_INTEGER_new();
    ec->date = ASN1_TIME_new();
    ec->date_t = INT64_MIN;
    if (ec->serial == NULL || ec->date == NULL)
        return fp_err_set(err, FP_ERR_NOMEM, NULL);
    return FP_ERR_OK;
}

static void entry_ctx_free(entry_ctx *ec)
{
    for (int r = 0; r < N_REASONS; r++)
        X509_REVOKED_free(ec->tmpl[r]);
    ASN1_INTEGER_free(ec->serial);
    ASN1_TIME_free(ec->date);
    spool_free(&ec->sp);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Magnitude octets of a stored serial (hex, at most 20 octets, RFC 5280
 * 4.1.2.2), leading zero octets dropped; -1 if malformed. */
static int serial_octets(const char *hex, unsigned char out[MAX_SERIAL_OCTETS])
{
    size_t n = strlen(hex), i = 0, o = 0;
    unsigned char tmp[MAX_SERIAL_OCTETS];

    if (n == 0 || n > 2 * MAX_SERIAL_OCTETS)
        return -1;
    if (n % 2) { /* odd: the first nibble stands alone */
        int v = hexval(hex[0]);
        if (v < 0)
            return -1;
        tmp[o++] = (unsigned char)v;
        i = 1;
    }
    for (; i < n; i += 2) {
        int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        tmp[o++] = (unsigned char)(hi << 4 | lo);
    }
    for (i = 0; i + 1 < o && tmp[i] == 0; i++)
        ;
    memcpy(out, tmp + i, o - i);
    return (int)(o - i);
}

static int add_entry(void *arg, const char *serial, int64_t revoked_at, int reason)
{
    entry_ctx *ec = arg;
    unsigned char oct[MAX_SERIAL_OCTETS], der[ENTRY_DER_MAX], *p = der;
    X509_REVOKED *rv;
    int n, len;

    if (reason < 0 || reason >= N_REASONS || ec->tmpl[reason] == NULL)
        reason = FP_REASON_UNSPECIFIED;
    rv = ec->tmpl[reason];
    if ((n = serial_octets(serial, oct)) < 0)
        return fp_err_set(ec->err, FP_ERR_STORE, "stored serial '%.48s' is malformed", serial);
    if (revoked_at != ec->date_t) {
        if (ASN1_TIME_set(ec->date, (time_t)revoked_at) == NULL)
            return fp_err_set(ec->err, FP_ERR_CRYPTO, "CRL entry date");
        ec->date_t = revoked_at;
    }
    if (!X509_REVOKED_set_revocationDate(rv, ec->date))
        return fp_err_set(ec->err, FP_ERR_CRYPTO, "CRL entry date");
    if (!ASN1_STRING_set(ec->serial, oct, n) ||
        !X509_REVOKED_set_serialNumber(rv, ec->serial))
        return fp_err_set(ec->err, FP_ERR_CRYPTO, "CRL entry for serial %s", serial);
    /* The entry is bounded: serial <= 21 content octets (20 + sign pad),
     * date <= 15, reasonCode 13, framing < 12; ENTRY_DER_MAX leaves ample
     * room, so encoding straight into der is safe (and halves the work
     * compared with a separate length pass). */
    len = i2d_X509_REVOKED(rv, &p);
    if (len <= 0 || len > ENTRY_DER_MAX)
        return fp_err_set(ec->err, FP_ERR_CRYPTO, "CRL entry encoding");
    ec->count++;
    return spool_add(&ec->sp, der, (size_t)len, ec->err);
}

/* ---- fixed parts ---- */

/* version, issuer, thisUpdate, nextUpdate; the signature AlgorithmIdentifier
 * goes between version and issuer and is the stream's. */
typedef struct {
    unsigned char *issuer, *this_up, *next_up, *exts;
    int issuer_len, this_len, next_len, exts_len;
} fixed_parts;

static void fixed_free(fixed_parts *f)
{
    OPENSSL_free(f->issuer);
    OPENSSL_free(f->this_up);
    OPENSSL_free(f->next_up);
    OPENSSL_free(f->exts);
}

/* RFC 5280 5.2: AKI (5.2.1) and CRL Number (5.2.3), both non-critical. */
static int crl_extensions(X509 *issuer, int64_t number, unsigned char **out, int *len,
                          fp_error *err)
{
    STACK_OF(X509_EXTENSION) *exts = NULL;
    AUTHORITY_KEYID *akid = NULL;
    ASN1_INTEGER *num = NULL;
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);
    int rc = FP_ERR_OK;

    *out = NULL;
    akid = AUTHORITY_KEYID_new();
    num = ASN1_INTEGER_new();
    if (akid == NULL || num == NULL || !ASN1_INTEGER_set_int64(num, number)) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if (ski == NULL) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CA certificate has no subjectKeyIdentifier");
        goto out;
    }
    akid->keyid = ASN1_OCTET_STRING_dup(ski);
    if (akid->keyid == NULL ||
        X509V3_add1_i2d(&exts, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) != 1 ||
        X509V3_add1_i2d(&exts, NID_crl_number, num, 0, X509V3_ADD_DEFAULT) != 1 ||
        (*len = i2d_X509_EXTENSIONS(exts, out)) <= 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CRL extensions");
        goto out;
    }
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    AUTHORITY_KEYID_free(akid);
    ASN1_INTEGER_free(num);
    return rc;
}

static int encode_time(int64_t t, unsigned char **out, int *len)
{
    /* ASN1_TIME_set picks UTCTime through 2049, GeneralizedTime after, as
     * RFC 5280 5.1.2.4 requires */
    ASN1_TIME *at = ASN1_TIME_set(NULL, (time_t)t);
    *out = NULL;
    *len = at ? i2d_ASN1_TIME(at, out) : -1;
    ASN1_TIME_free(at);
    return *len > 0 ? 0 : -1;
}

/* ---- sinks ---- */

static int sink_sign(void *arg, const unsigned char *p, size_t n, fp_error *err)
{
    return fp_signer_stream_update(arg, p, n, err);
}

typedef struct {
    BIO *bio;
    uint64_t written;
} out_sink;

static int sink_out(void *arg, const unsigned char *p, size_t n, fp_error *err)
{
    out_sink *o = arg;
    while (n > 0) {
        int chunk = n > CHUNK ? (int)CHUNK : (int)n;
        int w = BIO_write(o->bio, p, chunk);
        if (w <= 0)
            return fp_err_set(err, FP_ERR_IO, "writing the CRL failed");
        p += w;
        n -= (size_t)w;
        o->written += (uint64_t)w;
    }
    return FP_ERR_OK;
}

/* The TBSCertList, through sink (the signer, then the output). */
static int emit_tbs(const unsigned char *alg, size_t alg_len, const fixed_parts *f,
                    spool *sp, unsigned char *buf, sink_fn sink, void *arg, fp_error *err)
{
    static const unsigned char version2[] = {0x02, 0x01, 0x01}; /* v2(1), 5.1.2.1 */
    unsigned char h[FP_DER_HDR_MAX], rh[FP_DER_HDR_MAX], eh[FP_DER_HDR_MAX];
    size_t rh_len = 0, eh_len, hl;
    uint64_t body;
    int rc;

    /* 5.1.2.6: with no revoked certificates the list MUST be absent */
    if (sp->total > 0)
        rh_len = fp_der_put_hdr(rh, 0x30, sp->total);
    eh_len = fp_der_put_hdr(eh, 0xa0, (uint64_t)f->exts_len); /* [0] EXPLICIT */
    body = sizeof(version2) + alg_len + (uint64_t)f->issuer_len + (uint64_t)f->this_len +
           (uint64_t)f->next_len + rh_len + sp->total + eh_len + (uint64_t)f->exts_len;
    hl = fp_der_put_hdr(h, 0x30, body);
    if ((rc = sink(arg, h, hl, err)) != FP_ERR_OK ||
        (rc = sink(arg, version2, sizeof(version2), err)) != FP_ERR_OK ||
        (rc = sink(arg, alg, alg_len, err)) != FP_ERR_OK ||
        (rc = sink(arg, f->issuer, (size_t)f->issuer_len, err)) != FP_ERR_OK ||
        (rc = sink(arg, f->this_up, (size_t)f->this_len, err)) != FP_ERR_OK ||
        (rc = sink(arg, f->next_up, (size_t)f->next_len, err)) != FP_ERR_OK)
        return rc;
    if (rh_len > 0 && ((rc = sink(arg, rh, rh_len, err)) != FP_ERR_OK ||
                       (rc = spool_replay(sp, buf, sink, arg, err)) != FP_ERR_OK))
        return rc;
    if ((rc = sink(arg, eh, eh_len, err)) != FP_ERR_OK ||
        (rc = sink(arg, f->exts, (size_t)f->exts_len, err)) != FP_ERR_OK)
        return rc;
    return FP_ERR_OK;
}

static uint64_t tbs_len(size_t alg_len, const fixed_parts *f, const spool *sp)
{
    uint64_t body = 3 + alg_len + (uint64_t)f->issuer_len + (uint64_t)f->this_len +
                    (uint64_t)f->next_len + fp_der_hdr_size((uint64_t)f->exts_len) +
                    (uint64_t)f->exts_len;
    if (sp->total > 0)
        body += der_total(sp->total);
    return der_total(body);
}

int fp_crl_generate(fp_store *store, const fp_crl_params *p, BIO *out,
                    fp_crl_info *info, fp_error *err)
{
    entry_ctx ec;
    fixed_parts f;
    fp_sign_stream *ss = NULL;
    const unsigned char *alg = NULL;
    unsigned char *sig = NULL, *buf = NULL, h[FP_DER_HDR_MAX], bh[FP_DER_HDR_MAX];
    size_t alg_len = 0, siglen = 0, hl, bhl;
    uint64_t tbs_total;
    out_sink os = {out, 0};
    int64_t number = 0, now;
    int rc;

    memset(&ec, 0, sizeof(ec));
    memset(&f, 0, sizeof(f));
    memset(info, 0, sizeof(*info));
    ec.err = err;
    ec.sp.dir = p->spool_dir;
    ec.sp.cap = p->spool_mem ? p->spool_mem : SPOOL_MEM;
    now = p->this_update ? p->this_update : fp_now();
    if (p->next_update_hours < 1) {
        rc = fp_err_set(err, FP_ERR_ARG, "nextUpdate must be at least one hour ahead");
        goto out;
    }
    buf = malloc(CHUNK);
    if (buf == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    if ((rc = entry_ctx_init(&ec, err)) != FP_ERR_OK ||
        (rc = fp_signer_stream_new(p->signer, &ss, err)) != FP_ERR_OK)
        goto out;
    fp_signer_stream_get0_alg(ss, &alg, &alg_len);
    /* number first: a CRL that fails later only leaves a gap, which RFC
     * 5280 allows; two different CRLs never share a number */
    if ((rc = fp_store_revocation_number_next(store, p->ca_id, &number, err)) != FP_ERR_OK)
        goto out;
    f.issuer_len = i2d_X509_NAME(X509_get_subject_name(p->issuer), &f.issuer);
    if (f.issuer_len <= 0 || encode_time(now, &f.this_up, &f.this_len) != 0 ||
        encode_time(now + (int64_t)p->next_update_hours * 3600, &f.next_up, &f.next_len) != 0) {
        rc = fp_err_set(err, FP_ERR_CRYPTO, "CRL header");
        goto out;
    }
    if ((rc = crl_extensions(p->issuer, number, &f.exts, &f.exts_len, err)) != FP_ERR_OK)
        goto out;
    /* 1: entries into the spool */
    if ((rc = fp_store_revoked_iter(store, p->ca_id, add_entry, &ec, err)) != FP_ERR_OK)
        goto out;
    if (ec.sp.total > 0xffffffffu - 4096) {
        rc = fp_err_set(err, FP_ERR_TOO_LARGE, "CRL larger than 4 GiB");
        goto out;
    }
    /* 2: sign the TBSCertList */
    if ((rc = emit_tbs(alg, alg_len, &f, &ec.sp, buf, sink_sign, ss, err)) != FP_ERR_OK ||
        (rc = fp_signer_stream_final(ss, &sig, &siglen, err)) != FP_ERR_OK)
        goto out;
    /* 3: CertificateList ::= SEQUENCE { tbs, signatureAlgorithm, BIT STRING } */
    tbs_total = tbs_len(alg_len, &f, &ec.sp);
    bhl = fp_der_put_hdr(bh, 0x03, (uint64_t)siglen + 1);
    hl = fp_der_put_hdr(h, 0x30, tbs_total + alg_len + bhl + 1 + siglen);
    if ((rc = sink_out(&os, h, hl, err)) != FP_ERR_OK ||
        (rc = emit_tbs(alg, alg_len, &f, &ec.sp, buf, sink_out, &os, err)) != FP_ERR_OK ||
        (rc = sink_out(&os, alg, alg_len, err)) != FP_ERR_OK ||
        (rc = sink_out(&os, bh, bhl, err)) != FP_ERR_OK ||
        (rc = sink_out(&os, (const unsigned char *)"\0", 1, err)) != FP_ERR_OK ||
        (rc = sink_out(&os, sig, siglen, err)) != FP_ERR_OK)
        goto out;
    if (BIO_flush(out) <= 0) {
        rc = fp_err_set(err, FP_ERR_IO, "writing the CRL failed");
        goto out;
    }
    if (os.written != hl + tbs_total + alg_len + bhl + 1 + siglen) {
        rc = fp_err_set(err, FP_ERR_INTERNAL, "CRL framing length mismatch");
        goto out;
    }
    info->number = number;
    info->this_update = now;
    info->next_update = now + (int64_t)p->next_update_hours * 3600;
    info->entries = ec.count;
    info->der_len = os.written;
out:
    OPENSSL_free(sig);
    fp_signer_stream_free(ss);
    fixed_free(&f);
    entry_ctx_free(&ec);
    free(buf);
    return rc;
}

int fp_crl_load_ca(const fp_config *cfg, const char *ca_id, const char *pass,
                   size_t passlen, X509 **cert, fp_signer **signer, fp_error *err)
{
    const char *certf, *keyf;
    char path[FP_PATH_MAX];
    int rc;

    *cert = NULL;
    *signer = NULL;
    if (!strcmp(ca_id, cfg->issuing_id)) {
        certf = cfg->issuing_cert;
        keyf = cfg->issuing_key;
    } else if (!strcmp(ca_id, cfg->root_id)) {
        certf = cfg->root_cert;
        keyf = cfg->root_key;
    } else {
        /* a CA created or imported after init (ca/caset.h) */
        certf = keyf = NULL;
    }
    if (certf == NULL) {
        char kpath[FP_PATH_MAX];
        if (fp_caset_file(cfg, ca_id, "ca.crt", path, sizeof(path), err) != FP_ERR_OK ||
            fp_caset_file(cfg, ca_id, "ca.key", kpath, sizeof(kpath), err) != FP_ERR_OK)
            return FP_ERR_NOT_FOUND;
        if (!fp_file_exists(path))
            return fp_err_set(err, FP_ERR_NOT_FOUND, "no CA with id '%s' ('fleetpki ca list' "
                                                     "shows them)", ca_id);
        if ((rc = fp_cert_read(path, cert, err)) != FP_ERR_OK ||
            (rc = fp_signer_open_file(kpath, pass, passlen, signer, err)) != FP_ERR_OK ||
            (rc = fp_signer_check_cert(*signer, *cert, err)) != FP_ERR_OK) {
            X509_free(*cert);
            fp_signer_free(*signer);
            *cert = NULL;
            *signer = NULL;
            return rc;
        }
        return FP_ERR_OK;
    }
    if ((rc = fp_config_path(cfg, certf, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_cert_read(path, cert, err)) != FP_ERR_OK ||
        (rc = fp_config_path(cfg, keyf, path, sizeof(path), err)) != FP_ERR_OK ||
        (rc = fp_signer_open_file(path, pass, passlen, signer, err)) != FP_ERR_OK ||
        (rc = fp_signer_check_cert(*signer, *cert, err)) != FP_ERR_OK) {
        X509_free(*cert);
        fp_signer_free(*signer);
        *cert = NULL;
        *signer = NULL;
        return rc;
    }
    return FP_ERR_OK;
}

int fp_crl_write_file(fp_store *store, const fp_crl_params *p, const char *path,
                      bool pem, fp_crl_info *info, fp_error *err)
{
    static const char begin[] = "-----BEGIN X509 CRL-----\n";
    static const char end[] = "-----END X509 CRL-----\n";
    char tmp[FP_PATH_MAX + 32];
    FILE *f = NULL;
    BIO *fb = NULL, *b64 = NULL, *out;
    int fd, rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return fp_err_set(err, FP_ERR_TOO_LARGE, "path too long");
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fp_err_set(err, FP_ERR_IO, "%s: %s", tmp, strerror(errno));
    f = fdopen(fd, "wb");
    if (f == NULL) {
        close(fd);
        rc = fp_err_set(err, FP_ERR_IO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    fb = BIO_new_fp(f, BIO_NOCLOSE);
    if (fb == NULL) {
        rc = fp_err_set(err, FP_ERR_NOMEM, NULL);
        goto out;
    }
    out = fb;
    if (pem) {
        /* RFC 7468 5.1: base64 in 64-column lines between the labels */
        b64 = BIO_new(BIO_f_base64());
        if (b64 == NULL || BIO_write(fb, begin, (int)strlen(begin)) <= 0) {
            rc = fp_err_set(err, FP_ERR_IO, "%s: write failed", tmp);
            goto out;
        }
        out = BIO_push(b64, fb);
    }
    if ((rc = fp_crl_generate(store, p, out, info, err)) != FP_ERR_OK)
        goto out;
    if (pem && BIO_write(fb, end, (int)strlen(end)) <= 0) {
        rc = fp_err_set(err, FP_ERR_IO, "%s: write failed", tmp);
        goto out;
    }
    if (BIO_flush(fb) <= 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        rc = fp_err_set(err, FP_ERR_IO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        rc = fp_err_set(err, FP_ERR_IO, "rename %s: %s", path, strerror(errno));
        goto out;
    }
    rc = FP_ERR_OK;
out:
    if (b64 != NULL) {
        BIO_pop(b64);
        BIO_free(b64);
    }
    BIO_free(fb);
    if (f != NULL)
        fclose(f);
    if (rc != FP_ERR_OK)
        unlink(tmp);
    return rc;
}
