/* fuzz_est_chain.c - client certificate chains as EST authentication sees
 * them (issue 8, defect 3): the input is DER certificates back to back,
 * the first the client's leaf, the rest the untrusted chain it sent.  It
 * goes through est_chain_verify (what est_auth.c runs for a certificate we
 * did not issue) against a fixed anchor set, then through
 * fp_chain_check_serials against a SQLite store holding the fixed PKI's
 * records (est_chain_pki.h, gen_est_chain_seeds.sh):
 *   sub-good valid, sub-revoked revoked (keyCompromise), leaf-direct valid;
 *   sub-unknown (in the seeds only) was signed by the issuing CA but is in
 *   no record.
 * Invariants beyond "no crash, no leak": a verified chain through
 * sub-revoked or sub-unknown never passes the store check; a verified
 * chain whose leaf sub-good signed always lists sub-good as ours.  Every
 * input is also run unverified through fp_chain_check_store (the serial
 * walk on arbitrary certificates). */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/chain_check.h"
#include "common/util.h"
#include "est/est.h"
#include "est_chain_pki.h"
#include "x509/x509util.h"

#define MAX_CERTS 8
#define CA_ID "issuing"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    X509_STORE *anchors;
    X509 *issuing, *sub_good, *sub_revoked;
    char sub_good_serial[FP_CHAIN_SERIAL_LEN], sub_revoked_serial[FP_CHAIN_SERIAL_LEN];
    fp_store *store;
} G;

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (x == NULL)
        abort();
    return x;
}

static void record(X509 *x, const char *profile)
{
    fp_cert_rec rec;
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    fp_error err = {0};

    memset(&rec, 0, sizeof(rec));
    if (len <= 0 || fp_serial_hex(X509_get0_serialNumber(x), rec.serial) != 0)
        abort();
    snprintf(rec.ca_id, sizeof(rec.ca_id), "%s", CA_ID);
    snprintf(rec.profile, sizeof(rec.profile), "%s", profile);
    snprintf(rec.project, sizeof(rec.project), "%s", FP_PROJECT_DEFAULT);
    rec.subject = fp_name_string(X509_get_subject_name(x));
    rec.sans = strdup("");
    rec.not_before = fp_asn1_time_unix(X509_get0_notBefore(x));
    rec.not_after = fp_asn1_time_unix(X509_get0_notAfter(x));
    rec.issued_at = rec.not_before;
    rec.der = der;
    rec.der_len = (size_t)len;
    if (fp_store_cert_insert(G.store, &rec, NULL, 1, &err) != FP_ERR_OK) {
        fprintf(stderr, "fuzz_est_chain: store insert: %s\n", err.msg);
        abort();
    }
    free(rec.subject);
    free(rec.sans);
    OPENSSL_free(der);
}

static void init(void)
{
    X509 *root = pem_cert(PEM_ROOT), *mfg = pem_cert(PEM_MFG), *direct = pem_cert(PEM_LEAF_DIRECT);
    unsigned char *der = NULL;
    int len;
    fp_error err = {0};

    G.issuing = pem_cert(PEM_ISSUING);
    G.sub_good = pem_cert(PEM_SUB_GOOD);
    G.sub_revoked = pem_cert(PEM_SUB_REVOKED);
    /* the label's anchors as est.c builds them: issuing CA + root + the
     * label's trust_anchors (here a manufacturer CA) */
    G.anchors = X509_STORE_new();
    if (G.anchors == NULL || !X509_STORE_add_cert(G.anchors, G.issuing) ||
        !X509_STORE_add_cert(G.anchors, root) || !X509_STORE_add_cert(G.anchors, mfg))
        abort();
    if (fp_store_open(":memory:", &G.store, &err) != FP_ERR_OK) {
        fprintf(stderr, "fuzz_est_chain: store: %s\n", err.msg);
        abort();
    }
    len = i2d_X509(G.issuing, &der);
    if (len <= 0 ||
        fp_store_ca_add(G.store,
                        &(fp_ca_rec){.id = CA_ID, .kind = FP_CA_ROOT, .der = der,
                                     .der_len = (size_t)len},
                        NULL, &err) != FP_ERR_OK) {
        fprintf(stderr, "fuzz_est_chain: ca: %s\n", err.msg);
        abort();
    }
    OPENSSL_free(der);
    record(G.sub_good, "sub-ca");
    record(G.sub_revoked, "sub-ca");
    record(direct, "device");
    if (fp_serial_hex(X509_get0_serialNumber(G.sub_good), G.sub_good_serial) != 0 ||
        fp_serial_hex(X509_get0_serialNumber(G.sub_revoked), G.sub_revoked_serial) != 0 ||
        fp_store_cert_set_status(G.store, G.sub_revoked_serial, FP_CERT_REVOKED,
                                 FP_REASON_KEY_COMPROMISE, fp_now(), NULL, &err) != FP_ERR_OK) {
        fprintf(stderr, "fuzz_est_chain: revoke: %s\n", err.msg);
        abort();
    }
    X509_free(root);
    X509_free(mfg);
    X509_free(direct);
}

static bool listed(char (*ours)[FP_CHAIN_SERIAL_LEN], int n, const char *serial)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(ours[i], serial))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    const unsigned char *p = data, *end = data + size;
    STACK_OF(X509) *all = NULL, *untrusted = NULL;
    char (*ours)[FP_CHAIN_SERIAL_LEN] = NULL;
    int n_ours = 0, rc;
    fp_error err = {0};
    X509 *leaf;

    if (!ready) {
        init();
        ready = true;
    }
    all = sk_X509_new_null();
    untrusted = sk_X509_new_null();
    if (all == NULL || untrusted == NULL)
        abort();
    while (p < end && sk_X509_num(all) < MAX_CERTS) {
        X509 *x = d2i_X509(NULL, &p, (long)(end - p));
        if (x == NULL)
            break;
        if (!sk_X509_push(all, x))
            abort();
    }
    if (sk_X509_num(all) == 0)
        goto out;
    leaf = sk_X509_value(all, 0);
    for (int i = 1; i < sk_X509_num(all); i++)
        if (!sk_X509_push(untrusted, sk_X509_value(all, i)))
            abort();

    /* the serial walk alone, on whatever was sent */
    (void)fp_chain_check_store(G.store, G.issuing, CA_ID, all, fp_now(), &err);

    rc = est_chain_verify(G.anchors, leaf, untrusted, G.issuing, &ours, &n_ours, NULL, &err);
    if (rc != FP_ERR_OK) {
        if (ours != NULL || n_ours != 0)
            abort(); /* a refused chain lists nothing */
        goto out;
    }
    rc = fp_chain_check_serials(G.store, CA_ID, (const char (*)[FP_CHAIN_SERIAL_LEN])ours, n_ours,
                                fp_now(), &err);
    if (listed(ours, n_ours, G.sub_revoked_serial) && rc == FP_ERR_OK)
        abort(); /* a revoked sub-CA let its chain through */
    if (X509_check_issued(G.sub_good, leaf) == X509_V_OK && X509_cmp(leaf, G.sub_good) != 0 &&
        !listed(ours, n_ours, G.sub_good_serial))
        abort(); /* the chain's sub-CA was not looked up */
    for (int i = 0; i < n_ours; i++) {
        fp_cert_status_rec st;
        if (fp_store_cert_status(G.store, ours[i], &st, &err) == FP_ERR_NOT_FOUND && rc == FP_ERR_OK)
            abort(); /* a certificate of ours we have no record of passed */
    }
out:
    ERR_clear_error();
    free(ours);
    sk_X509_free(untrusted);
    sk_X509_pop_free(all, X509_free);
    return 0;
}
