/*
 * firmware.c - fp_dev_firmware_verify and the anti-rollback floor
 * (fleetpki/firmware.h, docs/firmware.md).
 *
 * The order of the checks is the order of trust: nothing the manifest
 * says is looked at before the COSE signature over its digest verified
 * with a certificate that chains to the firmware anchor.  The envelope
 * is parsed in place (suit.c, cbor_rd.c); the image is read in chunks
 * of CHUNK bytes into a buffer on the stack and hashed as it comes.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fw_backend.h"
#include "suit.h"
#include "tls_backend.h"

#define CHUNK 1024
#define SEQ_MAGIC "fleetpki-fwseq 1 seq="

static const char *const fw_names[] = {
#define FP_FW_X_NAME(sym, name, msg) name,
    FP_FW_ERR_LIST(FP_FW_X_NAME)
#undef FP_FW_X_NAME
};
static const char *const fw_msgs[] = {
#define FP_FW_X_MSG(sym, name, msg) msg,
    FP_FW_ERR_LIST(FP_FW_X_MSG)
#undef FP_FW_X_MSG
};

const char *fp_fw_err_name(int code)
{
    return code >= 0 && code < FP_FW_ERR__COUNT ? fw_names[code] : "fw-unknown";
}

const char *fp_fw_err_message(int code)
{
    return code >= 0 && code < FP_FW_ERR__COUNT ? fw_msgs[code] : "unknown error";
}

/* A CBOR head (RFC 8949 3.1) into out; its length. */
static size_t cbor_head(unsigned char out[9], unsigned major, uint64_t n)
{
    size_t len = 0;
    int bytes = n < 24 ? 0 : n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffffu ? 4 : 8;

    out[len++] = (unsigned char)(major << 5 | (bytes == 0 ? n : bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27));
    for (int i = bytes - 1; i >= 0; i--)
        out[len++] = (unsigned char)(n >> (8 * i));
    return len;
}

/*
 * SHA-256 of the COSE Sig_structure (RFC 9052 4.4):
 *   [ "Signature1", body_protected, external_aad = h'', payload ]
 * fed piece by piece, so no copy of it is ever built.
 */
static int sig_structure_hash(const fpd_suit_env *env, unsigned char out[32])
{
    static const unsigned char prefix[] = {0x84, 0x6a, 'S', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', '1'};
    static const unsigned char empty_aad = 0x40;
    unsigned char h[9];
    fpd_sha256_ctx c;
    int rc;

    if ((rc = fpd_sha256_begin(&c)) != FP_FW_ERR_OK)
        return rc;
    rc = fpd_sha256_add(&c, prefix, sizeof(prefix));
    if (rc == FP_FW_ERR_OK)
        rc = fpd_sha256_add(&c, h, cbor_head(h, 2, env->protected_hdr.len));
    if (rc == FP_FW_ERR_OK)
        rc = fpd_sha256_add(&c, env->protected_hdr.p, env->protected_hdr.len);
    if (rc == FP_FW_ERR_OK)
        rc = fpd_sha256_add(&c, &empty_aad, 1);
    if (rc == FP_FW_ERR_OK)
        rc = fpd_sha256_add(&c, h, cbor_head(h, 2, env->digest_item.len));
    if (rc == FP_FW_ERR_OK)
        rc = fpd_sha256_add(&c, env->digest_item.p, env->digest_item.len);
    if (fpd_sha256_end(&c, rc == FP_FW_ERR_OK ? out : NULL) != FP_FW_ERR_OK && rc == FP_FW_ERR_OK)
        rc = FP_FW_ERR_CRYPTO;
    return rc;
}

static int sha256_of(const unsigned char *p, size_t n, unsigned char out[32])
{
    fpd_sha256_ctx c;
    int rc;

    if ((rc = fpd_sha256_begin(&c)) != FP_FW_ERR_OK)
        return rc;
    rc = fpd_sha256_add(&c, p, n);
    if (fpd_sha256_end(&c, rc == FP_FW_ERR_OK ? out : NULL) != FP_FW_ERR_OK && rc == FP_FW_ERR_OK)
        rc = FP_FW_ERR_CRYPTO;
    return rc;
}

static void seq_name(char out[48], const unsigned char class_id[16])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out + sprintf(out, "fwseq-");
    for (int i = 0; i < 16; i++) {
        *p++ = hex[class_id[i] >> 4];
        *p++ = hex[class_id[i] & 15];
    }
    *p = '\0';
}

int fp_dev_firmware_stored_sequence(const fp_storage *st, const unsigned char class_id[16],
                                    uint64_t *seq)
{
    fp_storage_file *f = NULL;
    char name[48], buf[64], *end;
    size_t len = 0, got;
    int missing = 0, rc = FP_FW_ERR_OK;
    unsigned long long v;

    if (st == NULL || class_id == NULL || seq == NULL)
        return FP_FW_ERR_ARG;
    *seq = 0;
    seq_name(name, class_id);
    if (st->open(st->ctx, name, 0, &f, &missing) != 0)
        return missing ? FP_FW_ERR_OK : FP_FW_ERR_STORE;
    do {
        got = 0;
        if (st->read(st->ctx, f, buf + len, sizeof(buf) - 1 - len, &got) != 0)
            rc = FP_FW_ERR_STORE;
        len += got;
    } while (rc == FP_FW_ERR_OK && got > 0 && len < sizeof(buf) - 1);
    st->close(st->ctx, f);
    if (rc != FP_FW_ERR_OK)
        return rc;
    buf[len] = '\0';
    /* a damaged floor file is an error, never a reset to zero: that would
     * reopen every older image */
    if (strncmp(buf, SEQ_MAGIC, sizeof(SEQ_MAGIC) - 1) != 0 ||
        buf[sizeof(SEQ_MAGIC) - 1] < '0' || buf[sizeof(SEQ_MAGIC) - 1] > '9')
        return FP_FW_ERR_STORE;
    v = strtoull(buf + sizeof(SEQ_MAGIC) - 1, &end, 10);
    if (*end != '\n')
        return FP_FW_ERR_STORE;
    *seq = v;
    return FP_FW_ERR_OK;
}

int fp_dev_firmware_accept(const fp_storage *st, const fp_fw_info *info)
{
    fp_storage_file *f = NULL;
    char name[48], tmp[64], line[64];
    uint64_t cur;
    int rc, n, ok;

    if (st == NULL || info == NULL)
        return FP_FW_ERR_ARG;
    if ((rc = fp_dev_firmware_stored_sequence(st, info->class_id, &cur)) != FP_FW_ERR_OK)
        return rc;
    if (info->sequence <= cur)
        return FP_FW_ERR_ROLLBACK;
    seq_name(name, info->class_id);
    snprintf(tmp, sizeof(tmp), "%s.new", name);
    n = snprintf(line, sizeof(line), SEQ_MAGIC "%" PRIu64 "\n", info->sequence);
    /* the credential store's discipline: new file synced, renamed over
     * the old one, directory synced; a power cut leaves old or new */
    if (st->open(st->ctx, tmp, 1, &f, NULL) != 0)
        return FP_FW_ERR_STORE;
    ok = st->write(st->ctx, f, line, (size_t)n) == 0 && st->sync(st->ctx, f) == 0;
    if (st->close(st->ctx, f) != 0)
        ok = 0;
    if (!ok || st->rename(st->ctx, tmp, name) != 0 || st->sync(st->ctx, NULL) != 0)
        return FP_FW_ERR_STORE;
    return FP_FW_ERR_OK;
}

static int fail(char *msg, size_t size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *msg, size_t size, int code, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (msg == NULL || size == 0)
        return code;
    n = snprintf(msg, size, "%s: ", fp_fw_err_name(code));
    if (n >= 0 && (size_t)n < size) {
        va_start(ap, fmt);
        vsnprintf(msg + n, size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int check_dates(const fpd_suit_env *env, int64_t now, fpd_errbuf *e)
{
    for (size_t i = 0; i < env->n_x5chain; i++) {
        fpd_der d = {(unsigned char *)env->x5chain[i].p, env->x5chain[i].len};
        int64_t nb, na;
        if (fpd_cert_validity(&d, &nb, &na) != FP_DEVICE_OK)
            return fpd_err(e, FP_FW_ERR_MALFORMED, "x5chain: certificate %zu does not parse", i);
        if (now < nb || now > na)
            return fpd_err(e, FP_FW_ERR_EXPIRED, "x5chain: certificate %zu is %s at %" PRId64, i,
                           now < nb ? "not yet valid" : "expired", now);
    }
    return FP_FW_ERR_OK;
}

static int stream_image(const fp_fw_policy *p, const fpd_suit_manifest *m, fp_fw_read_fn read,
                        void *arg, unsigned char digest[32], fpd_errbuf *e)
{
    unsigned char buf[CHUNK];
    fpd_sha256_ctx c;
    uint64_t total = 0;
    int rc;

    if ((rc = fpd_sha256_begin(&c)) != FP_FW_ERR_OK)
        return fpd_err(e, rc, "cannot start SHA-256");
    for (;;) {
        size_t got = 0;
        if (read(arg, buf, sizeof(buf), &got) != 0 || got > sizeof(buf)) {
            rc = fpd_err(e, FP_FW_ERR_IO, "reading the image failed after %" PRIu64 " bytes", total);
            break;
        }
        if (got == 0)
            break;
        total += got;
        /* more than announced: stop now, the rest may be endless */
        if (total > m->image_size) {
            rc = fpd_err(e, FP_FW_ERR_IMAGE_SIZE, "image longer than the manifest's %" PRIu64 " bytes",
                         m->image_size);
            break;
        }
        if ((rc = fpd_sha256_add(&c, buf, got)) != FP_FW_ERR_OK)
            break;
    }
    if (rc == FP_FW_ERR_OK && total != m->image_size)
        rc = fpd_err(e, FP_FW_ERR_IMAGE_SIZE, "image has %" PRIu64 " bytes, the manifest says %" PRIu64,
                     total, m->image_size);
    if (fpd_sha256_end(&c, rc == FP_FW_ERR_OK ? digest : NULL) != FP_FW_ERR_OK && rc == FP_FW_ERR_OK)
        rc = FP_FW_ERR_CRYPTO;
    (void)p;
    return rc;
}

int fp_dev_firmware_verify(const fp_fw_policy *p, const unsigned char *envelope, size_t env_len,
                           fp_fw_read_fn read, void *arg, fp_fw_info *out, char *errmsg,
                           size_t errsize)
{
    fpd_suit_env env;
    fpd_suit_manifest m;
    fpd_fw_cert chain[FPD_SUIT_MAX_CHAIN];
    fpd_errbuf e;
    unsigned char h[32];
    uint64_t floor = 0;
    int rc;

    e.msg[0] = '\0';
    if (errmsg != NULL && errsize > 0)
        errmsg[0] = '\0';
    if (p == NULL || envelope == NULL || read == NULL || out == NULL || p->anchors_pem == NULL)
        return fail(errmsg, errsize, FP_FW_ERR_ARG, "policy, envelope, reader and result are required");
    memset(out, 0, sizeof(*out));

    /* 1. the envelope's frame and the authentication wrapper */
    if ((rc = fpd_suit_parse_envelope(envelope, env_len, &env)) != FP_FW_ERR_OK)
        return fail(errmsg, errsize, rc, "SUIT envelope / COSE_Sign1");
    /* 2. the signer: chain, codeSigning, revocation, dates */
    for (size_t i = 0; i < env.n_x5chain; i++) {
        chain[i].p = env.x5chain[i].p;
        chain[i].len = env.x5chain[i].len;
    }
    if ((rc = fpd_fw_chain_check(chain, env.n_x5chain, p->anchors_pem, p->anchors_len, p->crl_pem,
                                 p->crl_len, &e)) != FP_FW_ERR_OK)
        return fail(errmsg, errsize, rc, "%s", e.msg);
    if (!p->no_clock && (rc = check_dates(&env, p->now, &e)) != FP_FW_ERR_OK)
        return fail(errmsg, errsize, rc, "%s", e.msg);
    /* 3. the signature over the manifest's digest */
    if ((rc = sig_structure_hash(&env, h)) != FP_FW_ERR_OK)
        return fail(errmsg, errsize, rc, "hashing the Sig_structure");
    if ((rc = fpd_fw_es256_verify(&chain[0], h, env.signature.p, &e)) != FP_FW_ERR_OK)
        return fail(errmsg, errsize, rc, "%s", e.msg);
    /* 4. the manifest is the one signed: digest of the bstr-wrapped
     *    manifest (draft-ietf-suit-manifest, authentication wrapper) */
    if ((rc = sha256_of(env.manifest_item.p, env.manifest_item.len, h)) != FP_FW_ERR_OK)
        return fail(errmsg, errsize, rc, "hashing the manifest");
    if (fpd_ct_memcmp(h, env.manifest_sha256.p, 32) != 0)
        return fail(errmsg, errsize, FP_FW_ERR_MANIFEST_DIGEST, "manifest differs from the signed digest");
    /* 5. what the (now authentic) manifest says */
    if ((rc = fpd_suit_parse_manifest(&env.manifest, &m)) != FP_FW_ERR_OK)
        return fail(errmsg, errsize, rc, "SUIT manifest");
    if (memcmp(m.vendor_id.p, p->vendor_id, 16) != 0)
        return fail(errmsg, errsize, FP_FW_ERR_VENDOR, "vendor identifier is not this device's");
    if (memcmp(m.class_id.p, p->class_id, 16) != 0)
        return fail(errmsg, errsize, FP_FW_ERR_CLASS, "class identifier is not this device's");
    if (p->store != NULL) {
        if ((rc = fp_dev_firmware_stored_sequence(p->store, p->class_id, &floor)) != FP_FW_ERR_OK)
            return fail(errmsg, errsize, rc, "cannot read the stored sequence number");
    } else {
        floor = p->min_sequence;
    }
    if (m.sequence <= floor)
        return fail(errmsg, errsize, FP_FW_ERR_ROLLBACK,
                    "sequence %" PRIu64 " is not above the accepted %" PRIu64, m.sequence, floor);
    if (p->max_image != 0 && m.image_size > p->max_image)
        return fail(errmsg, errsize, FP_FW_ERR_TOO_BIG, "image of %" PRIu64 " bytes exceeds %" PRIu64,
                    m.image_size, p->max_image);
    /* 6. the image itself, streamed */
    if ((rc = stream_image(p, &m, read, arg, h, &e)) != FP_FW_ERR_OK)
        return fail(errmsg, errsize, rc, "%s", e.msg[0] ? e.msg : "hashing the image");
    if (fpd_ct_memcmp(h, m.image_sha256.p, 32) != 0)
        return fail(errmsg, errsize, FP_FW_ERR_IMAGE_DIGEST, "image SHA-256 differs from the manifest's");

    out->sequence = m.sequence;
    out->image_size = m.image_size;
    memcpy(out->image_sha256, m.image_sha256.p, 32);
    memcpy(out->vendor_id, m.vendor_id.p, 16);
    memcpy(out->class_id, m.class_id.p, 16);
    if (m.version.len > 0) {
        size_t n = m.version.len < sizeof(out->version) - 1 ? m.version.len : sizeof(out->version) - 1;
        memcpy(out->version, m.version.p, n);
        out->version[n] = '\0';
    }
    return FP_FW_ERR_OK;
}
