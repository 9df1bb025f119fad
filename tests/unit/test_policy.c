/* test_policy.c - every CSR policy rule, accepted and refused. */
#include "testutil.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "ca/policy.h"
#include "x509/x509util.h"

static fp_profile device, server, subca;
static EVP_PKEY *p256;

static int setup(void **state)
{
    (void)state;
    fp_profile_defaults("device", &device);
    fp_profile_defaults("server", &server);
    fp_profile_defaults("sub-ca", &subca);
    p256 = tu_key("p256");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(p256);
    return 0;
}

/* Check req against p, expect code; frees req. */
static void expect(const fp_profile *p, X509_REQ *req, int code)
{
    fp_error err = {0};
    int rc = fp_policy_check(p, req, &err);
    if (rc != code)
        fail_msg("expected %s, got %s: %s", fp_err_name(code), fp_err_name(rc), err.msg);
    if (code != FP_ERR_OK)
        assert_true(strlen(err.msg) > 0);
    X509_REQ_free(req);
}

static void test_good_device(void **state)
{
    (void)state;
    expect(&device, tu_csr(p256, "/CN=sensor-1", "URI:urn:dev:1", 0, NULL, NULL), FP_ERR_OK);
}

static void test_algorithms_accepted(void **state)
{
    const char *algos[] = {"p384", "ed25519", "rsa2048"};
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        EVP_PKEY *k = tu_key(algos[i]);
        expect(&device, tu_csr(k, "/CN=a", NULL, 0, NULL, NULL), FP_ERR_OK);
        EVP_PKEY_free(k);
    }
}

static void test_pop_tampered(void **state)
{
    X509_REQ *req = tu_csr(p256, "/CN=sensor-1", NULL, 0, NULL, NULL);
    X509_NAME *name = X509_REQ_get_subject_name(req);
    (void)state;
    /* change the subject after signing: the signature no longer covers it */
    X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, (const unsigned char *)"x", -1, -1, 0);
    expect(&device, req, FP_ERR_CSR_POP);
}

static void test_pop_wrong_key(void **state)
{
    EVP_PKEY *other = tu_key("p256");
    X509_REQ *req = tu_csr(p256, "/CN=a", NULL, 0, NULL, NULL);
    (void)state;
    /* swap in another public key: proof of possession fails */
    assert_true(X509_REQ_set_pubkey(req, other));
    expect(&device, req, FP_ERR_CSR_POP);
    EVP_PKEY_free(other);
}

/* DER of req (test helper; OPENSSL_malloc'd). */
static unsigned char *req_der(X509_REQ *req, int *len)
{
    unsigned char *der = NULL;
    *len = i2d_X509_REQ(req, &der);
    assert_true(*len > 0);
    return der;
}

static X509_REQ *req_from(const unsigned char *der, int len)
{
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, len);
    if (req != NULL && p != der + len) {
        X509_REQ_free(req);
        req = NULL;
    }
    return req;
}

/* fp_csr_verify's EC fast path (P-256/384/521 x SHA-256/384/512) and the
 * general path (RSA, Ed25519) accept good requests, parsed or built */
static void test_pop_curves_and_digests(void **state)
{
    const char *algos[] = {"p256", "p384", "p521", "rsa2048", "ed25519"};
    const char *mds[] = {"SHA256", "SHA384", "SHA512"};
    (void)state;
    for (size_t a = 0; a < sizeof(algos) / sizeof(*algos); a++) {
        EVP_PKEY *k = tu_key(algos[a]);
        bool eddsa = strcmp(algos[a], "ed25519") == 0;
        for (size_t m = 0; m < (eddsa ? 1 : 3); m++) {
            EVP_MD *md = eddsa ? NULL : EVP_MD_fetch(NULL, mds[m], NULL);
            X509_REQ *req = tu_csr(k, "/CN=a", NULL, 0, NULL, md), *parsed;
            unsigned char *der;
            int len;
            assert_int_equal(fp_csr_verify(req), 1);
            der = req_der(req, &len);
            parsed = req_from(der, len);
            assert_non_null(parsed);
            assert_int_equal(fp_csr_verify(parsed), 1);
            X509_REQ_free(parsed);
            OPENSSL_free(der);
            EVP_MD_free(md);
            /* the device profile allows P-256/P-384 curves only */
            expect(&device, req, strcmp(algos[a], "p521") ? FP_ERR_OK : FP_ERR_CSR_KEY_SIZE);
        }
        EVP_PKEY_free(k);
    }
}

/* Every single-bit change of a request that still parses must get the
 * same verdict from fp_csr_verify as from OpenSSL's X509_REQ_verify. */
static void test_pop_agrees_with_openssl(void **state)
{
    const char *algos[] = {"p256", "p384", "rsa2048"};
    (void)state;
    for (size_t a = 0; a < sizeof(algos) / sizeof(*algos); a++) {
        EVP_PKEY *k = tu_key(algos[a]);
        X509_REQ *req = tu_csr(k, "/CN=sensor-1/O=Acme", "DNS:a.example", 0, NULL, NULL);
        int len, parsed = 0, refused = 0;
        unsigned char *der = req_der(req, &len);
        for (int i = 0; i < len * 8; i += (i % 8 == 7) ? 1 : 3) {
            X509_REQ *m;
            EVP_PKEY *pk;
            der[i / 8] ^= (unsigned char)(1u << (i % 8));
            if ((m = req_from(der, len)) != NULL) {
                int ours = fp_csr_verify(m) == 1;
                pk = X509_REQ_get0_pubkey(m);
                int theirs = pk != NULL && X509_REQ_verify(m, pk) == 1;
                ERR_clear_error();
                if (ours != theirs)
                    fail_msg("%s: bit %d: fp_csr_verify %d, X509_REQ_verify %d", algos[a], i,
                             ours, theirs);
                parsed++;
                refused += !ours;
                X509_REQ_free(m);
            }
            der[i / 8] ^= (unsigned char)(1u << (i % 8));
        }
        /* the mutations did reach the signed bytes and the signature */
        assert_true(parsed > 50);
        assert_true(refused > 50);
        OPENSSL_free(der);
        X509_REQ_free(req);
        EVP_PKEY_free(k);
    }
}

/* a public key that is not a point on its curve is never accepted */
static void test_pop_point_off_curve(void **state)
{
    X509_REQ *req = tu_csr(p256, "/CN=a", NULL, 0, NULL, NULL), *bad;
    X509_PUBKEY *xpk = X509_REQ_get_X509_PUBKEY(req);
    const unsigned char *pt = NULL;
    unsigned char *der;
    int ptlen = 0, len;
    (void)state;
    assert_true(X509_PUBKEY_get0_param(NULL, &pt, &ptlen, NULL, xpk));
    assert_int_equal(ptlen, 65);
    der = req_der(req, &len);
    /* the last octet of the point's y coordinate, found in the DER */
    for (int i = 0; i + ptlen <= len; i++)
        if (memcmp(der + i, pt, (size_t)ptlen) == 0)
            der[i + ptlen - 1] ^= 0x01;
    bad = req_from(der, len);
    assert_non_null(bad);
    assert_int_equal(fp_csr_verify(bad), -1); /* an unusable key, not a bad signature */
    expect(&device, bad, FP_ERR_CSR_MALFORMED);
    OPENSSL_free(der);
    X509_REQ_free(req);
}

/* A request whose CertificationRequestInfo is BER (indefinite length) and
 * signed as such: OpenSSL verifies the bytes as received, and so must
 * fp_csr_verify (it hands such requests to X509_REQ_verify). */
static void test_pop_ber_request(void **state)
{
    X509_REQ *req = tu_csr(p256, "/CN=ber-1", NULL, 0, NULL, NULL), *ber;
    unsigned char *der = NULL, *ber_tbs, *sig = NULL, *out, *o;
    const unsigned char *p, *tbs_content, *alg;
    long clen, tlen;
    int tag, cls, der_len, alg_len, bits_len, total, body;
    size_t sig_len = 0, ber_len;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    (void)state;

    der_len = i2d_X509_REQ(req, &der);
    p = der;
    assert_int_equal(ASN1_get_object(&p, &clen, &tag, &cls, der_len), V_ASN1_CONSTRUCTED);
    tbs_content = p;
    assert_int_equal(ASN1_get_object(&tbs_content, &tlen, &tag, &cls, clen), V_ASN1_CONSTRUCTED);
    alg = tbs_content + tlen;
    {
        const unsigned char *q = alg;
        long l;
        assert_int_equal(ASN1_get_object(&q, &l, &tag, &cls, der + der_len - alg), V_ASN1_CONSTRUCTED);
        alg_len = (int)(q - alg) + (int)l;
    }
    /* 30 80 <content> 00 00, signed as it stands */
    ber_len = 2 + (size_t)tlen + 2;
    ber_tbs = malloc(ber_len);
    assert_non_null(ber_tbs);
    ber_tbs[0] = 0x30, ber_tbs[1] = 0x80;
    memcpy(ber_tbs + 2, tbs_content, (size_t)tlen);
    ber_tbs[ber_len - 2] = 0, ber_tbs[ber_len - 1] = 0;
    assert_int_equal(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, p256), 1);
    assert_int_equal(EVP_DigestSign(m, NULL, &sig_len, ber_tbs, ber_len), 1);
    sig = malloc(sig_len);
    assert_int_equal(EVP_DigestSign(m, sig, &sig_len, ber_tbs, ber_len), 1);
    bits_len = ASN1_object_size(0, (int)sig_len + 1, V_ASN1_BIT_STRING);
    body = (int)ber_len + alg_len + bits_len;
    total = ASN1_object_size(1, body, V_ASN1_SEQUENCE);
    out = o = malloc((size_t)total);
    ASN1_put_object(&o, 1, body, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(o, ber_tbs, ber_len), o += ber_len;
    memcpy(o, alg, (size_t)alg_len), o += alg_len;
    ASN1_put_object(&o, 0, (int)sig_len + 1, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL);
    *o++ = 0;
    memcpy(o, sig, sig_len), o += sig_len;
    assert_int_equal(o - out, total);

    ber = req_from(out, total);
    assert_non_null(ber);
    assert_int_equal(X509_REQ_verify(ber, X509_REQ_get0_pubkey(ber)), 1);
    assert_int_equal(fp_csr_verify(ber), 1);
    X509_REQ_free(ber);
    free(out);
    free(sig);
    free(ber_tbs);
    EVP_MD_CTX_free(m);
    OPENSSL_free(der);
    X509_REQ_free(req);
}

/* serverkeygen: a request the server built around its own new key needs
 * no signature, but every other rule still applies */
static void test_own_key_request(void **state)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *n = X509_NAME_new();
    EVP_PKEY *p521 = tu_key("p521");
    fp_error err = {0};
    (void)state;
    assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"kg-1", -1, -1, 0));
    assert_true(X509_REQ_set_subject_name(req, n) && X509_REQ_set_pubkey(req, p256));
    /* unsigned: refused as a client's request, accepted as our own */
    assert_int_equal(fp_policy_check(&device, req, &err), FP_ERR_CSR_POP);
    assert_int_equal(fp_policy_check_own_key(&device, req, &err), FP_ERR_OK);
    /* the key and subject rules hold for our own keys too */
    assert_true(X509_REQ_set_pubkey(req, p521));
    assert_int_equal(fp_policy_check_own_key(&device, req, &err), FP_ERR_CSR_KEY_SIZE);
    assert_true(X509_REQ_set_pubkey(req, p256));
    X509_NAME_ENTRY_free(X509_NAME_delete_entry(n, 0)); /* empty subject, no SAN */
    assert_true(X509_REQ_set_subject_name(req, n));
    assert_int_not_equal(fp_policy_check_own_key(&device, req, &err), FP_ERR_OK);
    X509_NAME_free(n);
    X509_REQ_free(req);
    EVP_PKEY_free(p521);
}

static void test_weak_sig_alg(void **state)
{
    (void)state;
    expect(&device, tu_csr(p256, "/CN=a", NULL, 0, NULL, EVP_sha1()), FP_ERR_CSR_SIG_ALG);
}

/* An RSA request signed with RSASSA-PSS (RFC 4055 3.1) using md for the
 * message hash and MGF1. */
static X509_REQ *pss_csr(EVP_PKEY *key, const EVP_MD *md)
{
    X509_REQ *req = tu_csr(key, "/CN=a", NULL, 0, NULL, NULL);
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;

    assert_non_null(mctx);
    assert_int_equal(EVP_DigestSignInit(mctx, &pctx, md, NULL, key), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0);
    assert_true(X509_REQ_sign_ctx(req, mctx) > 0);
    assert_int_equal(X509_REQ_get_signature_nid(req), NID_rsassaPss);
    assert_int_equal(X509_REQ_verify(req, key), 1); /* OpenSSL itself accepts it */
    EVP_MD_CTX_free(mctx);
    return req;
}

/* RSASSA-PSS names its hash in the parameters, not in the algorithm OID:
 * SHA-1 (or SHA-224) there is as weak as in sha1WithRSAEncryption. */
static void test_weak_sig_alg_pss(void **state)
{
    EVP_PKEY *rsa = tu_key("rsa2048");
    fp_error err = {0};
    X509_REQ *r;
    (void)state;
    expect(&device, pss_csr(rsa, EVP_sha256()), FP_ERR_OK);
    expect(&device, pss_csr(rsa, EVP_sha1()), FP_ERR_CSR_SIG_ALG);
    expect(&device, pss_csr(rsa, EVP_sha224()), FP_ERR_CSR_SIG_ALG);
    /* serverkeygen's client request goes through the same rule */
    r = pss_csr(rsa, EVP_sha1());
    assert_int_equal(fp_policy_check_pop(r, &err), FP_ERR_CSR_SIG_ALG);
    X509_REQ_free(r);
    EVP_PKEY_free(rsa);
}

static void test_rsa_too_small_and_large(void **state)
{
    EVP_PKEY *big = tu_key("rsa3072");
    fp_profile p = device;
    (void)state;
    p.rsa_max_bits = 2048;
    expect(&p, tu_csr(big, "/CN=a", NULL, 0, NULL, NULL), FP_ERR_CSR_KEY_SIZE);
    p.rsa_min_bits = p.rsa_max_bits = 4096;
    expect(&p, tu_csr(big, "/CN=a", NULL, 0, NULL, NULL), FP_ERR_CSR_KEY_SIZE);
    EVP_PKEY_free(big);
}

static void test_alg_not_allowed(void **state)
{
    EVP_PKEY *ed = tu_key("ed25519"), *rsa = tu_key("rsa2048"), *p521 = tu_key("p521");
    fp_profile p = device;
    (void)state;
    p.algs = FP_ALG_P256;
    expect(&p, tu_csr(ed, "/CN=a", NULL, 0, NULL, NULL), FP_ERR_CSR_KEY_ALG);
    expect(&p, tu_csr(rsa, "/CN=a", NULL, 0, NULL, NULL), FP_ERR_CSR_KEY_ALG);
    expect(&p, tu_csr(p521, "/CN=a", NULL, 0, NULL, NULL), FP_ERR_CSR_KEY_SIZE);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p521);
}

static void test_unsupported_curve(void **state)
{
    EVP_PKEY *k = EVP_EC_gen("secp256k1");
    (void)state;
    assert_non_null(k);
    expect(&device, tu_csr(k, "/CN=a", NULL, 0, NULL, NULL), FP_ERR_CSR_KEY_SIZE);
    EVP_PKEY_free(k);
}

static void test_ca_request_on_leaf(void **state)
{
    (void)state;
    expect(&device, tu_csr(p256, "/CN=a", NULL, NID_basic_constraints, "critical,CA:TRUE", NULL),
           FP_ERR_CSR_CA);
    /* CA:FALSE is harmless */
    expect(&device, tu_csr(p256, "/CN=a", NULL, NID_basic_constraints, "CA:FALSE", NULL),
           FP_ERR_OK);
    /* a CA profile accepts it */
    expect(&subca, tu_csr(p256, "/CN=Sub CA", NULL, NID_basic_constraints, "critical,CA:TRUE", NULL),
           FP_ERR_OK);
}

static void test_keycertsign_on_leaf(void **state)
{
    (void)state;
    expect(&device, tu_csr(p256, "/CN=a", NULL, NID_key_usage, "keyCertSign", NULL),
           FP_ERR_CSR_KEY_USAGE);
    expect(&device, tu_csr(p256, "/CN=a", NULL, NID_key_usage, "cRLSign,digitalSignature", NULL),
           FP_ERR_CSR_KEY_USAGE);
}

static void test_honour_mode(void **state)
{
    fp_profile p = device;
    (void)state;
    p.requested_extensions = FP_REQEXT_HONOUR;
    expect(&p, tu_csr(p256, "/CN=a", NULL, NID_key_usage, "digitalSignature", NULL), FP_ERR_OK);
    expect(&p, tu_csr(p256, "/CN=a", NULL, NID_key_usage, "keyEncipherment", NULL),
           FP_ERR_CSR_KEY_USAGE);
    expect(&p, tu_csr(p256, "/CN=a", NULL, NID_ext_key_usage, "clientAuth", NULL), FP_ERR_OK);
    expect(&p, tu_csr(p256, "/CN=a", NULL, NID_ext_key_usage, "serverAuth", NULL),
           FP_ERR_CSR_KEY_USAGE);
    /* anyExtendedKeyUsage is never honoured */
    expect(&device, tu_csr(p256, "/CN=a", NULL, NID_ext_key_usage, "anyExtendedKeyUsage", NULL),
           FP_ERR_CSR_KEY_USAGE);
}

static void test_reject_mode(void **state)
{
    fp_profile p = device;
    (void)state;
    p.requested_extensions = FP_REQEXT_REJECT;
    expect(&p, tu_csr(p256, "/CN=a", NULL, NID_netscape_comment, "hello", NULL), FP_ERR_CSR_EXT);
    /* ignore mode drops it silently */
    expect(&device, tu_csr(p256, "/CN=a", NULL, NID_netscape_comment, "hello", NULL), FP_ERR_OK);
}

/* A request whose SANs are in Microsoft's extension request attribute
 * (msExtReq, 1.3.6.1.4.1.311.2.1.14), with or without a PKCS#9
 * extensionRequest too.  X509_REQ_get_extensions reads the first of the
 * two, and the CA copies the SANs it returns into the certificate. */
static X509_REQ *ms_ext_csr(const char *ms_sans, const char *std_sans)
{
    X509_REQ *req = tu_csr(p256, "/CN=a", std_sans, 0, NULL, NULL);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, ms_sans);

    assert_non_null(e);
    assert_true(sk_X509_EXTENSION_push(exts, e) > 0);
    assert_true(X509_REQ_add_extensions_nid(req, exts, NID_ms_ext_req));
    assert_true(X509_REQ_sign(req, p256, EVP_sha256()) > 0);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return req;
}

static void test_ms_extension_request(void **state)
{
    fp_profile p = device;
    X509_REQ *r;
    STACK_OF(X509_EXTENSION) *seen;
    (void)state;
    p.san_types = FP_SAN_URI;
    /* OpenSSL hands these SANs to whoever asks for the request's extensions */
    r = ms_ext_csr("DNS:bank.example", NULL);
    seen = X509_REQ_get_extensions(r);
    assert_int_equal(sk_X509_EXTENSION_num(seen), 1);
    sk_X509_EXTENSION_pop_free(seen, X509_EXTENSION_free);
    /* so the policy must judge them: DNS names are not allowed here */
    expect(&p, r, FP_ERR_CSR_SAN);
    strcpy(p.dns_pattern, "*.fleet.example");
    p.san_types = FP_SAN_DNS | FP_SAN_URI;
    expect(&p, ms_ext_csr("DNS:bank.example", NULL), FP_ERR_CSR_SAN);
    expect(&p, ms_ext_csr("DNS:a.fleet.example", NULL), FP_ERR_OK);
    /* two extension requests: which one counts is a reader's choice */
    expect(&p, ms_ext_csr("DNS:bank.example", "DNS:a.fleet.example"), FP_ERR_CSR_MALFORMED);
}

static void test_cn_rules(void **state)
{
    fp_profile p = device;
    (void)state;
    strcpy(p.cn_pattern, "sensor-*");
    expect(&p, tu_csr(p256, "/CN=sensor-9", NULL, 0, NULL, NULL), FP_ERR_OK);
    expect(&p, tu_csr(p256, "/CN=laptop-9", NULL, 0, NULL, NULL), FP_ERR_CSR_CN);
    expect(&p, tu_csr(p256, "/O=NoCN", "URI:urn:x", 0, NULL, NULL), FP_ERR_CSR_CN);
    expect(&p, tu_csr(p256, "/CN=sensor-1/CN=sensor-2", NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
}

static void test_subject_lengths(void **state)
{
    char cn[200], subj[400];
    (void)state;
    memset(cn, 'a', 65);
    cn[65] = '\0';
    snprintf(subj, sizeof(subj), "/CN=%s", cn);
    expect(&device, tu_csr(p256, subj, NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
    cn[64] = '\0';
    snprintf(subj, sizeof(subj), "/CN=%s", cn);
    expect(&device, tu_csr(p256, subj, NULL, 0, NULL, NULL), FP_ERR_OK);
    /* control characters in a value */
    expect(&device, tu_csr(p256, "/CN=bad\x01name", NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
}

/* A request whose subject is CN=ok plus one attribute nid of ASN.1
 * string type `type` holding exactly the octets given. */
static X509_REQ *csr_value(int nid, int type, const char *octets, int len)
{
    X509_REQ *req = tu_csr(p256, "/CN=ok", NULL, 0, NULL, NULL);
    X509_NAME *name = X509_NAME_dup(X509_REQ_get_subject_name(req));
    ASN1_STRING *s = ASN1_STRING_type_new(type);
    X509_NAME_ENTRY *e;
    assert_true(ASN1_STRING_set(s, octets, len));
    e = X509_NAME_ENTRY_create_by_NID(NULL, nid, type, ASN1_STRING_get0_data(s), len);
    assert_non_null(e);
    assert_true(X509_NAME_add_entry(name, e, -1, 0));
    assert_true(X509_REQ_set_subject_name(req, name));
    assert_true(X509_REQ_sign(req, p256, EVP_sha256()) > 0);
    X509_NAME_ENTRY_free(e);
    X509_NAME_free(name);
    ASN1_STRING_free(s);
    return req;
}

/* Subject values: bidi controls refused unless allow_bidi; control
 * characters (C0, DEL, C1, line/paragraph separators) and invalid UTF-8
 * always; ordinary non-ASCII text accepted. */
static void test_subject_text(void **state)
{
    static const char *const bidi[] = {
        "\xe2\x80\xae", "\xe2\x80\xaa", "\xe2\x80\xab", "\xe2\x80\xac", "\xe2\x80\xad",
        "\xe2\x81\xa6", "\xe2\x81\xa7", "\xe2\x81\xa8", "\xe2\x81\xa9", "\xe2\x80\x8e",
        "\xe2\x80\x8f", "\xd8\x9c",
    };
    static const char *const never[] = {
        "\xc2\x85",         /* U+0085 NEL, a C1 control */
        "\xc2\x9b",         /* U+009B CSI */
        "\x7f",              /* DEL */
        "\xe2\x80\xa8",     /* U+2028 LINE SEPARATOR */
        "\xe2\x80\xa9",     /* U+2029 PARAGRAPH SEPARATOR */
    };
    /* not UTF-8: OpenSSL cannot even build such a name, so these are
     * patched into a request's DER */
    static const char *const not_utf8[] = {
        "\xff\xff\xff",  /* never in UTF-8 */
        "\xc0\xaf\x41",  /* overlong '/' */
        "\xed\xa0\x80",  /* a UTF-16 surrogate */
        "\x41\xe2\x80",  /* truncated */
    };
    fp_profile lax = device;
    char cn[64], subj[96];
    (void)state;
    lax.allow_bidi = true;
    for (size_t i = 0; i < sizeof(bidi) / sizeof(*bidi); i++) {
        snprintf(cn, sizeof(cn), "sensor-%sgnp.exe", bidi[i]);
        snprintf(subj, sizeof(subj), "/CN=%s", cn);
        expect(&device, tu_csr(p256, subj, NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
        expect(&lax, tu_csr(p256, subj, NULL, 0, NULL, NULL), FP_ERR_OK);
        /* any attribute, not only the CN */
        snprintf(subj, sizeof(subj), "/CN=ok/O=%s", cn);
        expect(&device, tu_csr(p256, subj, NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
    }
    for (size_t i = 0; i < sizeof(never) / sizeof(*never); i++) {
        snprintf(subj, sizeof(subj), "/CN=x%sy", never[i]);
        expect(&device, tu_csr(p256, subj, NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
        expect(&lax, tu_csr(p256, subj, NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
    }
    for (size_t i = 0; i < sizeof(not_utf8) / sizeof(*not_utf8); i++) {
        X509_REQ *req = tu_csr(p256, "/CN=x@@@y", NULL, 0, NULL, NULL), *bad = NULL;
        fp_error err = {0};
        int len;
        unsigned char *der = req_der(req, &len);
        for (int j = 0; j + 3 <= len; j++)
            if (memcmp(der + j, "@@@", 3) == 0)
                memcpy(der + j, not_utf8[i], 3);
        if (fp_csr_parse(der, (size_t)len, &bad, &err) == FP_ERR_OK)
            expect(&lax, bad, FP_ERR_CSR_SUBJECT);
        else
            assert_int_equal(err.code, FP_ERR_CSR_MALFORMED);
        OPENSSL_free(der);
        X509_REQ_free(req);
    }
    /* the same through other string types: U+202E as BMPString, a C1
     * octet in a PrintableString (read as Latin-1 by OpenSSL) */
    expect(&device, csr_value(NID_organizationName, V_ASN1_BMPSTRING, "\0a\x20\x2e\0b", 6),
           FP_ERR_CSR_SUBJECT);
    expect(&device, csr_value(NID_organizationName, V_ASN1_PRINTABLESTRING, "a\x85" "b", 3),
           FP_ERR_CSR_SUBJECT);
    expect(&device, csr_value(NID_organizationName, V_ASN1_PRINTABLESTRING, "Acme", 4), FP_ERR_OK);
    expect(&device, csr_value(NID_organizationName, V_ASN1_BMPSTRING, "\0A\0c", 4), FP_ERR_OK);
    /* ordinary non-ASCII names are fine */
    expect(&device, tu_csr(p256, "/CN=M\xc3\xbcller/O=\xe6\x9d\xb1\xe4\xba\xac", NULL, 0, NULL, NULL),
           FP_ERR_OK);
    /* SAN strings are IA5String: any non-ASCII octet is refused */
    expect(&device, tu_csr(p256, "/CN=ok", "URI:urn:x:\xe2\x80\xae", 0, NULL, NULL), FP_ERR_CSR_SAN);
    expect(&server, tu_csr(p256, "/CN=ok", "DNS:a\xe2\x80\xae.example", 0, NULL, NULL), FP_ERR_CSR_SAN);
}

static void test_too_many_rdns(void **state)
{
    char subj[1024] = "/CN=x";
    (void)state;
    for (int i = 0; i < FP_POLICY_MAX_RDNS; i++)
        strcat(subj, "/OU=u");
    expect(&device, tu_csr(p256, subj, NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
}

static void test_empty_subject_needs_san(void **state)
{
    fp_profile p = device;
    (void)state;
    p.cn_required = false;
    expect(&p, tu_csr(p256, "/O=only-dropped", NULL, 0, NULL, NULL), FP_ERR_CSR_SUBJECT);
    expect(&p, tu_csr(p256, "/O=only-dropped", "URI:urn:dev:1", 0, NULL, NULL), FP_ERR_OK);
}

static void test_san_rules(void **state)
{
    fp_profile p = server;
    char many[2048] = "";
    (void)state;
    expect(&server, tu_csr(p256, "/CN=web", "DNS:web.example.com,IP:10.0.0.1", 0, NULL, NULL),
           FP_ERR_OK);
    expect(&server, tu_csr(p256, "/CN=web", NULL, 0, NULL, NULL), FP_ERR_CSR_SAN); /* required */
    expect(&server, tu_csr(p256, "/CN=web", "email:a@b.c", 0, NULL, NULL), FP_ERR_CSR_SAN);
    expect(&device, tu_csr(p256, "/CN=d", "IP:10.0.0.1", 0, NULL, NULL), FP_ERR_CSR_SAN);
    expect(&server, tu_csr(p256, "/CN=web", "DNS:*.example.com", 0, NULL, NULL), FP_ERR_CSR_SAN);
    expect(&server, tu_csr(p256, "/CN=web", "DNS:bad_name.com", 0, NULL, NULL), FP_ERR_CSR_SAN);
    expect(&server, tu_csr(p256, "/CN=web", "DNS:-lead.com", 0, NULL, NULL), FP_ERR_CSR_SAN);
    expect(&device, tu_csr(p256, "/CN=d", "URI:not a uri", 0, NULL, NULL), FP_ERR_CSR_SAN);
    strcpy(p.dns_pattern, "*.fleet.example");
    expect(&p, tu_csr(p256, "/CN=w", "DNS:gw1.fleet.example", 0, NULL, NULL), FP_ERR_OK);
    expect(&p, tu_csr(p256, "/CN=w", "DNS:gw1.other.example", 0, NULL, NULL), FP_ERR_CSR_SAN);
    for (int i = 0; i <= server.max_sans; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sDNS:h%d.example", i ? "," : "", i);
    expect(&server, tu_csr(p256, "/CN=web", many, 0, NULL, NULL), FP_ERR_CSR_SAN);
}

static void test_email_rules(void **state)
{
    fp_profile p = device;
    (void)state;
    p.san_types |= FP_SAN_EMAIL;
    expect(&p, tu_csr(p256, "/CN=d", "email:ops@example.com", 0, NULL, NULL), FP_ERR_OK);
    expect(&p, tu_csr(p256, "/CN=d", "email:no-at-sign", 0, NULL, NULL), FP_ERR_CSR_SAN);
    expect(&p, tu_csr(p256, "/CN=d", "email:a@b@c", 0, NULL, NULL), FP_ERR_CSR_SAN);
}

static void test_unsupported_san_type(void **state)
{
    (void)state;
    expect(&device, tu_csr(p256, "/CN=d", "RID:1.2.3.4", 0, NULL, NULL), FP_ERR_CSR_SAN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_device),
        cmocka_unit_test(test_algorithms_accepted),
        cmocka_unit_test(test_pop_tampered),
        cmocka_unit_test(test_pop_wrong_key),
        cmocka_unit_test(test_pop_curves_and_digests),
        cmocka_unit_test(test_pop_agrees_with_openssl),
        cmocka_unit_test(test_pop_point_off_curve),
        cmocka_unit_test(test_pop_ber_request),
        cmocka_unit_test(test_own_key_request),
        cmocka_unit_test(test_weak_sig_alg),
        cmocka_unit_test(test_weak_sig_alg_pss),
        cmocka_unit_test(test_ms_extension_request),
        cmocka_unit_test(test_rsa_too_small_and_large),
        cmocka_unit_test(test_alg_not_allowed),
        cmocka_unit_test(test_unsupported_curve),
        cmocka_unit_test(test_ca_request_on_leaf),
        cmocka_unit_test(test_keycertsign_on_leaf),
        cmocka_unit_test(test_honour_mode),
        cmocka_unit_test(test_reject_mode),
        cmocka_unit_test(test_cn_rules),
        cmocka_unit_test(test_subject_lengths),
        cmocka_unit_test(test_subject_text),
        cmocka_unit_test(test_too_many_rdns),
        cmocka_unit_test(test_empty_subject_needs_san),
        cmocka_unit_test(test_san_rules),
        cmocka_unit_test(test_email_rules),
        cmocka_unit_test(test_unsupported_san_type),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
