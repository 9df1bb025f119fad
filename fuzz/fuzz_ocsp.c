/* fuzz_ocsp.c - the OCSP responder on arbitrary request bytes.
 *
 * A mutated CertID almost never names the CA served here, which would stop
 * every input at "unauthorized".  So each parsed request is answered twice:
 * as received, and with every CertID's issuer hashes rewritten to this CA's
 * (SHA-1) so the status lookup, nonce and signing paths see fuzzed content.
 * The store is in memory and holds one good and one revoked certificate. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "ocsp/ocsp.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fp_ocsp_responder *resp;
static fp_store *store;
static unsigned char name_hash[20], key_hash[20];

static X509 *make_ca(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Fuzz CA", -1, -1, 0);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, key, EVP_sha256());
    X509_NAME_free(n);
    return x;
}

static void setup(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *ca = make_ca(key);
    fp_signer *signer = NULL;
    fp_ocsp_opts o = {3600, true, 64};
    fp_cert_rec recs[2];
    unsigned char *der = NULL;
    int len = i2d_X509_NAME(X509_get_subject_name(ca), &der);
    const ASN1_BIT_STRING *pk = X509_get0_pubkey_bitstr(ca);

    EVP_Digest(der, (size_t)len, name_hash, NULL, EVP_sha1(), NULL);
    EVP_Digest(pk->data, (size_t)pk->length, key_hash, NULL, EVP_sha1(), NULL);
    OPENSSL_free(der);
    fp_store_open(":memory:", &store, NULL);
    {
        fp_ca_rec car = {.id = "fuzz", .kind = FP_CA_ROOT, .der = (unsigned char *)"x",
                         .der_len = 1};
        fp_store_ca_add(store, &car, NULL, NULL);
    }
    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < 2; i++) {
        snprintf(recs[i].serial, sizeof(recs[i].serial), "%02X", 0x10 + i);
        snprintf(recs[i].ca_id, sizeof(recs[i].ca_id), "fuzz");
        snprintf(recs[i].profile, sizeof(recs[i].profile), "device");
        snprintf(recs[i].project, sizeof(recs[i].project), "%s", FP_PROJECT_DEFAULT);
        recs[i].subject = (char *)"CN=x";
        recs[i].sans = (char *)"";
        recs[i].der = (unsigned char *)"x";
        recs[i].der_len = 1;
    }
    fp_store_cert_insert(store, recs, NULL, 2, NULL);
    fp_store_cert_set_status(store, "11", FP_CERT_REVOKED, FP_REASON_KEY_COMPROMISE, 1, NULL, NULL);
    fp_signer_from_key(key, &signer, NULL);
    fp_ocsp_responder_new(&o, &resp, NULL);
    fp_ocsp_responder_add_ca(resp, "fuzz", ca, signer, ca, NULL);
    X509_free(ca);
    EVP_PKEY_free(key);
}

static void answer(const unsigned char *der, size_t len)
{
    unsigned char *out = NULL;
    size_t out_len = 0;
    fp_ocsp_result res;
    if (fp_ocsp_respond(resp, store, der, len, 1000000, &out, &out_len, &res, NULL) == FP_ERR_OK) {
        const unsigned char *p = out;
        OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)out_len);
        if (r == NULL || p != out + out_len) /* whatever came in, a valid response goes out */
            abort();
        OCSP_RESPONSE_free(r);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *p = data;
    OCSP_REQUEST *req;
    unsigned char *der = NULL;
    int len;

    if (resp == NULL)
        setup();
    answer(data, size);
    req = d2i_OCSP_REQUEST(NULL, &p, (long)size);
    if (req == NULL)
        return 0;
    for (int i = 0; i < OCSP_request_onereq_count(req) && i < 64; i++) {
        OCSP_CERTID *id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
        ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
        ASN1_OBJECT *md = NULL;
        if (OCSP_id_get0_info(&nh, &md, &kh, NULL, id) && nh && kh && md &&
            OBJ_obj2nid(md) == NID_sha1) {
            ASN1_OCTET_STRING_set(nh, name_hash, sizeof(name_hash));
            ASN1_OCTET_STRING_set(kh, key_hash, sizeof(key_hash));
        }
    }
    len = i2d_OCSP_REQUEST(req, &der);
    if (len > 0)
        answer(der, (size_t)len);
    OPENSSL_free(der);
    OCSP_REQUEST_free(req);
    return 0;
}
