/* test_est.c - EST encodings: certs-only PKCS#7, CsrAttrs, multipart,
 * enrollment token secrets. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/asn1.h>
#include <openssl/pkcs7.h>

#include "est/est.h"
#include "ca/policy.h"
#include "x509/x509util.h"
#include "common/util.h"
#include "est/token.h"

static X509 *self_signed(const char *cn)
{
    EVP_PKEY *k = tu_key("p256");
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    X509_NAME_free(n);
    EVP_PKEY_free(k);
    return x;
}

static void test_certs_only_roundtrip(void **state)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *a = self_signed("a"), *b = self_signed("b");
    unsigned char *der = NULL;
    const unsigned char *p;
    char *b64 = NULL;
    size_t len = 0, dlen = 0;
    fp_error e = {0};
    PKCS7 *p7;
    (void)state;
    /* given in descending DER order, so insertion order cannot pass */
    {
        unsigned char *da = NULL, *db = NULL;
        int la = i2d_X509(a, &da), lb = i2d_X509(b, &db);
        int a_first = memcmp(da, db, (size_t)(la < lb ? la : lb)) > 0;
        sk_X509_push(sk, a_first ? a : b);
        sk_X509_push(sk, a_first ? b : a);
        OPENSSL_free(da);
        OPENSSL_free(db);
    }
    assert_int_equal(est_certs_only_b64(sk, &b64, &len, &e), FP_ERR_OK);
    assert_int_equal(fp_b64_decode_lenient(b64, len, 1 << 20, &der, &dlen, &e), FP_ERR_OK);
    p = der;
    p7 = d2i_PKCS7(NULL, &p, (long)dlen);
    assert_non_null(p7);
    assert_true(PKCS7_type_is_signed(p7));
    assert_int_equal(sk_X509_num(p7->d.sign->cert), 2);
    /* both, in DER SET OF order (X.690 11.6): ascending encodings */
    {
        X509 *c0 = sk_X509_value(p7->d.sign->cert, 0), *c1 = sk_X509_value(p7->d.sign->cert, 1);
        unsigned char *d0 = NULL, *d1 = NULL;
        int l0 = i2d_X509(c0, &d0), l1 = i2d_X509(c1, &d1);
        assert_true(l0 > 0 && l1 > 0);
        assert_true(memcmp(d0, d1, (size_t)(l0 < l1 ? l0 : l1)) < 0);
        assert_true((X509_cmp(c0, a) == 0 && X509_cmp(c1, b) == 0) ||
                    (X509_cmp(c0, b) == 0 && X509_cmp(c1, a) == 0));
        OPENSSL_free(d0);
        OPENSSL_free(d1);
    }
    /* degenerate: no signers, no encapsulated content (RFC 5272 4.1) */
    assert_int_equal(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
    assert_null(p7->d.sign->contents->d.ptr);
    PKCS7_free(p7);
    free(der);
    free(b64);
    sk_X509_pop_free(sk, X509_free);
}

/* The reference the DER-level builder must match byte for byte: OpenSSL's
 * CMS encoder, which writes the certificates' SET OF in DER order (X.690
 * 11.6).  (The PKCS7 API keeps insertion order: strict parsers such as
 * python3-cryptography refuse what it writes for two or more certificates.) */
static int reference_certs_only(STACK_OF(X509) *certs, unsigned char **der)
{
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_DETACHED);
    int len = -1;
    if (cms != NULL) {
        for (int i = 0; i < sk_X509_num(certs); i++)
            assert_true(CMS_add1_cert(cms, sk_X509_value(certs, i)));
        len = i2d_CMS_ContentInfo(cms, der);
    }
    CMS_ContentInfo_free(cms);
    return len;
}

static void test_certs_only_matches_pkcs7(void **state)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    fp_error e = {0};
    (void)state;
    for (int n = 1; n <= 3; n++) {
        char name[8], *b64 = NULL;
        unsigned char *ref = NULL, *der = NULL;
        size_t len = 0, dlen = 0;
        int rlen;
        snprintf(name, sizeof(name), "c%d", n);
        sk_X509_push(sk, self_signed(name));
        rlen = reference_certs_only(sk, &ref);
        assert_true(rlen > 0);
        assert_int_equal(est_certs_only_b64(sk, &b64, &len, &e), FP_ERR_OK);
        assert_int_equal(fp_b64_decode_lenient(b64, len, 1 << 20, &der, &dlen, &e), FP_ERR_OK);
        assert_int_equal(dlen, (size_t)rlen);
        assert_memory_equal(der, ref, dlen);
        OPENSSL_free(ref);
        free(der);
        free(b64);
    }
    sk_X509_pop_free(sk, X509_free);
}

static void test_certs_only_bad_input(void **state)
{
    static const unsigned char x[4] = {0x30, 0x02, 0x05, 0x00};
    const unsigned char *ders[1] = {x};
    size_t zero = 0, huge = 1u << 20;
    char *b64 = NULL;
    size_t len = 0;
    fp_error e = {0};
    (void)state;
    assert_int_equal(est_certs_only_der_b64(ders, &zero, 1, &b64, &len, &e), FP_ERR_ARG);
    assert_int_equal(est_certs_only_der_b64(ders, &huge, 1, &b64, &len, &e), FP_ERR_ARG);
    assert_int_equal(est_certs_only_der_b64(ders, &zero, 0, &b64, &len, &e), FP_ERR_ARG);
    assert_null(b64);
}

static int attrs_der(const char *spec, bool pop, const char *profile, unsigned char **der,
                     size_t *dlen)
{
    fp_est_label l;
    fp_profile p;
    unsigned char *b64 = NULL;
    size_t len = 0;
    fp_error e = {0};
    int rc;

    memset(&l, 0, sizeof(l));
    snprintf(l.csrattrs, sizeof(l.csrattrs), "%s", spec);
    l.require_pop_linking = pop;
    fp_profile_defaults(profile, &p);
    *der = NULL;
    *dlen = 0;
    rc = est_csrattrs_build(&l, &p, &b64, &len, &e);
    if (rc == FP_ERR_OK && b64 != NULL)
        rc = fp_b64_decode_lenient((char *)b64, len, 4096, der, dlen, &e);
    free(b64);
    return rc;
}

/* Count top-level AttrOrOID items of a CsrAttrs SEQUENCE and check the
 * outer encoding is exactly one SEQUENCE. */
static int count_items(const unsigned char *der, size_t len)
{
    const unsigned char *p = der, *end;
    long l;
    int tag, cls, n = 0;
    if (ASN1_get_object(&p, &l, &tag, &cls, (long)len) & 0x80 || tag != V_ASN1_SEQUENCE)
        return -1;
    end = p + l;
    if (end != der + len)
        return -1;
    while (p < end) {
        const unsigned char *q = p;
        if (ASN1_get_object(&q, &l, &tag, &cls, end - p) & 0x80)
            return -1;
        p = q + l;
        n++;
    }
    return p == end ? n : -1;
}

static void test_csrattrs(void **state)
{
    unsigned char *der = NULL;
    size_t len = 0;
    (void)state;
    assert_int_equal(attrs_der("auto", false, "device", &der, &len), FP_ERR_OK);
    assert_int_equal(count_items(der, len), 2); /* key attribute + sigalg OID */
    free(der);
    assert_int_equal(attrs_der("auto", true, "device", &der, &len), FP_ERR_OK);
    assert_int_equal(count_items(der, len), 3); /* + challengePassword */
    free(der);
    assert_int_equal(attrs_der("challenge, serialNumber", false, "device", &der, &len), FP_ERR_OK);
    assert_int_equal(count_items(der, len), 2);
    free(der);
    assert_int_equal(attrs_der("none", true, "device", &der, &len), FP_ERR_OK);
    assert_null(der); /* answers 204 */
    assert_int_equal(attrs_der("key, no-such-attribute", false, "device", &der, &len),
                     FP_ERR_CONFIG);
    assert_null(der);
}

static void test_multipart(void **state)
{
    char boundary[48], *body = NULL, want[512];
    size_t len = 0;
    fp_error e = {0};
    (void)state;
    /* multi-line base64 with LF breaks, as fp_b64_encode_lines writes it */
    assert_int_equal(est_multipart("application/pkcs8", "QUJD\nREVG\n", "application/pkcs7-mime",
                                   "R0hJ\n", boundary, &body, &len, &e), FP_ERR_OK);
    assert_int_equal(strlen(body), len);
    assert_true(strlen(boundary) > 20 && strlen(boundary) <= 70); /* RFC 2046 5.1.1 */
    /* a token (RFC 2045 5.1): the header parameter needs no quotes */
    assert_int_equal(strspn(boundary, "abcdefghijklmnopqrstuvwxyz0123456789-"), strlen(boundary));
    /* the exact RFC 2046 5.1.1 layout: every delimiter after the first is
     * CRLF "--" boundary, CRLF line ends inside the parts, no bare LF */
    snprintf(want, sizeof(want),
             "--%s\r\nContent-Type: application/pkcs8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             "QUJD\r\nREVG\r\n--%s\r\nContent-Type: application/pkcs7-mime\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\nR0hJ\r\n--%s--\r\n",
             boundary, boundary, boundary);
    assert_string_equal(body, want);
    OPENSSL_clear_free(body, len);
    /* no trailing line break in the input: same framing */
    assert_int_equal(est_multipart("a/b", "QUJD", "c/d", "", boundary, &body, &len, &e), FP_ERR_OK);
    snprintf(want, sizeof(want),
             "--%s\r\nContent-Type: a/b\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n"
             "--%s\r\nContent-Type: c/d\r\nContent-Transfer-Encoding: base64\r\n\r\n\r\n--%s--\r\n",
             boundary, boundary, boundary);
    assert_string_equal(body, want);
    OPENSSL_clear_free(body, len);
}

static void test_token(void **state)
{
    fp_token_rec t;
    char secret[FP_TOKEN_SECRET_MAX], other[FP_TOKEN_SECRET_MAX];
    unsigned char h2[FP_TOKEN_HASH_LEN];
    fp_error e = {0};
    size_t n;
    (void)state;
    memset(&t, 0, sizeof(t));
    assert_int_equal(fp_token_generate(t.id, secret, t.hash, &e), FP_ERR_OK);
    assert_int_equal(strlen(t.id), 16);
    n = strlen(secret);
    assert_int_equal(n, 43); /* 256 bits, base64url without padding */
    assert_null(strpbrk(secret, "+/=:"));
    assert_true(fp_token_matches(&t, secret, n));
    assert_false(fp_token_matches(&t, secret, n - 1));
    memcpy(other, secret, n + 1);
    other[0] = other[0] == 'A' ? 'B' : 'A';
    assert_false(fp_token_matches(&t, other, n));
    assert_false(fp_token_matches(&t, "", 0));
    /* the stored hash is SHA-256 of the secret, not the secret */
    assert_int_equal(fp_token_hash(secret, n, h2), 0);
    assert_memory_equal(h2, t.hash, sizeof(h2));
    assert_memory_not_equal(t.hash, secret, sizeof(t.hash));
    /* two tokens differ */
    assert_int_equal(fp_token_generate(t.id, other, h2, &e), FP_ERR_OK);
    assert_string_not_equal(secret, other);
}

static void test_store_tokens_and_pending(void **state)
{
    char *dir = tu_tmpdir(), path[512];
    fp_store *st = NULL;
    fp_token_rec t, got;
    fp_pending_rec pr, out;
    fp_audit_event ev = {"test", "x", "", "", NULL};
    fp_error e = {0};
    int64_t id1 = 0, id2 = 0, rows = 0;
    char secret[FP_TOKEN_SECRET_MAX];
    (void)state;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    assert_int_equal(fp_store_open(path, &st, &e), FP_ERR_OK);

    memset(&t, 0, sizeof(t));
    assert_int_equal(fp_token_generate(t.id, secret, t.hash, &e), FP_ERR_OK);
    strcpy(t.project, FP_PROJECT_DEFAULT);
    strcpy(t.label, "lab");
    t.uses_left = 2;
    t.created_at = fp_now();
    t.expires_at = t.created_at + 100;
    assert_int_equal(fp_store_token_put(st, &t, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_put(st, &t, &ev, &e), FP_ERR_DUPLICATE);
    assert_int_equal(fp_store_token_get(st, FP_PROJECT_DEFAULT, t.id, &got, &e), FP_ERR_OK);
    assert_memory_equal(got.hash, t.hash, FP_TOKEN_HASH_LEN);
    assert_string_equal(got.label, "lab");
    assert_int_equal(fp_store_token_get(st, FP_PROJECT_DEFAULT, "nope", &got, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_token_use(st, FP_PROJECT_DEFAULT, "nope", fp_now(), &ev, &e), FP_ERR_NOT_FOUND);
    /* expired: refused without spending */
    assert_int_equal(fp_store_token_use(st, FP_PROJECT_DEFAULT, t.id, t.expires_at, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_token_use(st, FP_PROJECT_DEFAULT, t.id, fp_now(), &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_use(st, FP_PROJECT_DEFAULT, t.id, fp_now(), &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_token_use(st, FP_PROJECT_DEFAULT, t.id, fp_now(), &ev, &e), FP_ERR_STATE); /* used up */
    assert_int_equal(fp_store_token_get(st, FP_PROJECT_DEFAULT, t.id, &got, &e), FP_ERR_OK);
    assert_int_equal(got.uses_left, 0);

    memset(&pr, 0, sizeof(pr));
    strcpy(pr.project, FP_PROJECT_DEFAULT);
    strcpy(pr.label, "lab");
    strcpy(pr.csr_hash, "abc");
    pr.csr = (unsigned char *)"csr";
    pr.csr_len = 3;
    pr.subject = (char *)"CN=x";
    pr.actor = (char *)"est:token:1";
    assert_int_equal(fp_store_pending_add(st, &pr, &id1, &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_pending_add(st, &pr, &id2, &ev, &e), FP_ERR_OK);
    assert_true(id1 > 0);
    assert_int_equal(id1, id2); /* the same CSR again: the same request */
    assert_int_equal(fp_store_pending_find(st, FP_PROJECT_DEFAULT, "lab", "abc", &out, &e), FP_ERR_OK);
    assert_int_equal(out.status, FP_PENDING_WAITING);
    assert_int_equal(out.csr_len, 3);
    fp_pending_rec_clear(&out);
    assert_int_equal(fp_store_pending_find(st, FP_PROJECT_DEFAULT, "other", "abc", &out, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_pending_decide(st, id1, FP_PENDING_WAITING, NULL, &ev, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_pending_decide(st, id1, FP_PENDING_ISSUED, "0A", &ev, &e), FP_ERR_OK);
    assert_int_equal(fp_store_pending_decide(st, id1, FP_PENDING_REJECTED, NULL, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_pending_decide(st, 999, FP_PENDING_REJECTED, NULL, &ev, &e), FP_ERR_STATE);
    assert_int_equal(fp_store_pending_get(st, id1, &out, &e), FP_ERR_OK);
    assert_int_equal(out.status, FP_PENDING_ISSUED);
    assert_string_equal(out.serial, "0A");
    fp_pending_rec_clear(&out);
    assert_int_equal(fp_store_audit_verify(st, &rows, &e), FP_ERR_OK);
    assert_true(rows >= 5);
    fp_store_close(st);
    tu_rmdir(dir);
}

static unsigned char *csr_der(X509_REQ *r, int *len)
{
    unsigned char *der = NULL;
    *len = i2d_X509_REQ(r, &der);
    assert_true(*len > 0);
    return der;
}

/* The fast reader gives the very same request as d2i_X509_REQ, or none. */
static void test_csr_fast_parse(void **state)
{
    static const char *const algs[] = {"p256", "p384", "p521"};
    fp_profile prof;
    (void)state;
    fp_profile_defaults("device", &prof);
    for (size_t i = 0; i < sizeof(algs) / sizeof(*algs); i++) {
        EVP_PKEY *k = tu_key(algs[i]);
        X509_REQ *r = tu_csr(k, "/CN=fast-1/O=Acme", "DNS:a.example,URI:urn:x", 0, NULL, NULL);
        unsigned char *der, *der2;
        int len, len2;
        X509_REQ *f;
        fp_error e = {0};

        assert_true(X509_REQ_add1_attr_by_NID(r, NID_pkcs9_challengePassword, MBSTRING_ASC,
                                              (const unsigned char *)"pw", -1));
        assert_true(X509_REQ_sign(r, k, fp_key_sig_md(k)) > 0);
        der = csr_der(r, &len);
        f = est_csr_fast_parse(der, (size_t)len);
        assert_non_null(f);
        der2 = csr_der(f, &len2);
        assert_int_equal(len, len2);
        assert_memory_equal(der, der2, (size_t)len);
        assert_int_equal(fp_csr_verify(f), 1);
        assert_null(X509_REQ_get0_pubkey(f)); /* never decoded, by design */
        if (i == 0)
            assert_int_equal(fp_policy_check(&prof, f, &e), FP_ERR_OK);
        assert_true(X509_REQ_get_attr_by_NID(f, NID_pkcs9_challengePassword, -1) >= 0);

        /* truncated and padded inputs are not read */
        assert_null(est_csr_fast_parse(der, (size_t)len - 1));
        der2 = OPENSSL_realloc(der2, (size_t)len + 1);
        memcpy(der2, der, (size_t)len);
        der2[len] = 0;
        assert_null(est_csr_fast_parse(der2, (size_t)len + 1));
        /* a flipped signature bit is read, but no longer verifies */
        der[len - 3] ^= 1;
        X509_REQ_free(f);
        f = est_csr_fast_parse(der, (size_t)len);
        if (f != NULL)
            assert_int_equal(fp_csr_verify(f), 0);
        X509_REQ_free(f);
        OPENSSL_free(der);
        OPENSSL_free(der2);
        X509_REQ_free(r);
        EVP_PKEY_free(k);
    }
}

static void test_csr_fast_parse_declines(void **state)
{
    static const char *const algs[] = {"rsa2048", "ed25519"};
    static const unsigned char junk[] = {0x30, 0x80, 0x30, 0x00, 0x00, 0x00}; /* indefinite */
    (void)state;
    for (size_t i = 0; i < sizeof(algs) / sizeof(*algs); i++) {
        EVP_PKEY *k = tu_key(algs[i]);
        X509_REQ *r = tu_csr(k, "/CN=slow", NULL, 0, NULL, NULL);
        int len;
        unsigned char *der = csr_der(r, &len);
        assert_null(est_csr_fast_parse(der, (size_t)len)); /* general path handles these */
        OPENSSL_free(der);
        X509_REQ_free(r);
        EVP_PKEY_free(k);
    }
    assert_null(est_csr_fast_parse(junk, sizeof(junk)));
    assert_null(est_csr_fast_parse(junk, 0));
}

static int parse(const char *text, fp_config *c)
{
    fp_error e = {0};
    return fp_config_parse(c, "/tmp", text, strlen(text), &e);
}

static void test_est_label_config(void **state)
{
    fp_config *c = calloc(1, sizeof(*c));
    const fp_est_label *l;
    static const char *const bad[] = {
        "[est lab]\nauth = password\n",          /* unknown auth mode */
        "[est lab]\nnonsense = 1\n",             /* unknown option */
        "[est lab]\nprofile = no-such-profile\n",
        "[est a/b]\nauth = cert\n",              /* not a path segment */
        "[est ..]\nauth = cert\n",
        "[est simpleenroll]\nauth = cert\n",     /* an operation name */
        "[est lab]\nmanual_approval = maybe\n",
        "[est lab]\nretry_after_seconds = 0\n",
        "[est lab]\nretry_after_seconds = 86401\n",
        "[est lab]\ncert_identity = anyone\n",
        "[est lab]\ncert_identity = pattern\n",               /* pattern missing */
        "[est lab]\nserverkeygen_algo = dsa\n",
        "[est lab]\nprofile = ocsp-signer\nserverkeygen_algo = p521\n", /* not allowed by it */
        "[est lab]\nserverkeygen_algo = rsa2048\n[profile device]\nrsa_min_bits = 3072\n",
    };
    (void)state;
    assert_non_null(c);
    /* defaults: the unnamed label exists and works after init */
    assert_int_equal(parse("", c), FP_ERR_OK);
    l = fp_config_est_label(c, "");
    assert_non_null(l);
    assert_string_equal(l->profile, "device");
    assert_int_equal(l->auth, FP_EST_AUTH_EITHER);
    assert_false(l->manual_approval);
    assert_null(fp_config_est_label(c, "lab"));

    assert_int_equal(parse("[est]\nauth = token\n[est lab]\nauth = cert\nrevoke_on_renew = yes\n"
                           "trust_anchors = idevid.pem\nprofile = server\n", c), FP_ERR_OK);
    assert_int_equal(fp_config_est_label(c, "")->auth, FP_EST_AUTH_TOKEN);
    l = fp_config_est_label(c, "lab");
    assert_non_null(l);
    assert_int_equal(l->auth, FP_EST_AUTH_CERT);
    assert_true(l->revoke_on_renew);
    assert_string_equal(l->trust_anchors, "idevid.pem");
    assert_string_equal(l->profile, "server");
    assert_false(l->require_pop_linking); /* untouched options keep defaults */
    assert_string_equal(l->cert_identity, "same");
    assert_string_equal(l->serverkeygen_algo, "auto");
    assert_int_equal(parse("[est lab]\ncert_identity = pattern\ncert_identity_pattern = d-{cn}\n"
                           "serverkeygen_algo = rsa3072\n", c), FP_ERR_OK);
    l = fp_config_est_label(c, "lab");
    assert_string_equal(l->cert_identity, "pattern");
    assert_string_equal(l->cert_identity_pattern, "d-{cn}");
    assert_string_equal(l->serverkeygen_algo, "rsa3072");
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        if (parse(bad[i], c) == FP_ERR_OK)
            fail_msg("accepted bad [est] config #%zu", i);
    free(c);
}

/* Our PKCS#8 for EC keys is exactly OpenSSL's. */
static void test_ec_pkcs8(void **state)
{
    static const char *const algs[] = {"p256", "p384", "p521"};
    (void)state;
    for (size_t i = 0; i < sizeof(algs) / sizeof(*algs); i++) {
        EVP_PKEY *k = tu_key(algs[i]), *back = NULL;
        PKCS8_PRIV_KEY_INFO *inf = EVP_PKEY2PKCS8(k);
        unsigned char *ours = NULL, *ref = NULL;
        const unsigned char *p;
        size_t olen = 0;
        int rlen;
        fp_error e = {0};

        assert_int_equal(est_ec_pkcs8(k, &ours, &olen, &e), FP_ERR_OK);
        rlen = i2d_PKCS8_PRIV_KEY_INFO(inf, &ref);
        assert_int_equal((int)olen, rlen);
        assert_memory_equal(ours, ref, olen);
        p = ours;
        back = d2i_AutoPrivateKey(NULL, &p, (long)olen);
        assert_non_null(back);
        assert_int_equal(EVP_PKEY_eq(back, k), 1);
        EVP_PKEY_free(back);
        OPENSSL_clear_free(ours, olen);
        OPENSSL_clear_free(ref, (size_t)rlen);
        PKCS8_PRIV_KEY_INFO_free(inf);
        EVP_PKEY_free(k);
    }
    {
        EVP_PKEY *k = tu_key("ed25519");
        unsigned char *out = NULL;
        size_t n = 0;
        fp_error e = {0};
        assert_int_not_equal(est_ec_pkcs8(k, &out, &n, &e), FP_ERR_OK); /* EC only */
        assert_null(out);
        EVP_PKEY_free(k);
    }
}

/* ---- who may request which name (est_identity.c) ---- */

/* A certificate with req's subject and extensions (signed by key). */
static X509 *cert_like(X509_REQ *req, EVP_PKEY *key)
{
    X509 *x = X509_new();
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_set_subject_name(x, X509_REQ_get_subject_name(req));
    X509_set_issuer_name(x, X509_REQ_get_subject_name(req));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    for (int i = 0; exts != NULL && i < sk_X509_EXTENSION_num(exts); i++)
        X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static int name_ok(const char *mode, const char *pattern, X509 *cert, const char *subj,
                   const char *sans, X509 *issued)
{
    fp_est_label cfg;
    est_label lb;
    est_identity id;
    EVP_PKEY *k = tu_key("p256");
    X509_REQ *r = tu_csr(k, subj, sans, 0, NULL, NULL);
    fp_error err = {0};
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    memset(&lb, 0, sizeof(lb));
    memset(&id, 0, sizeof(id));
    snprintf(cfg.cert_identity, sizeof(cfg.cert_identity), "%s", mode);
    snprintf(cfg.cert_identity_pattern, sizeof(cfg.cert_identity_pattern), "%s", pattern);
    lb.cfg = &cfg;
    id.by_cert = true;
    id.cert = cert;
    rc = est_check_requested_name(&lb, &id, r, issued, &err);
    if (rc != FP_ERR_OK)
        assert_non_null(strstr(err.msg, mode)); /* the message names the rule */
    X509_REQ_free(r);
    EVP_PKEY_free(k);
    return rc;
}

static void test_requested_name(void **state)
{
    EVP_PKEY *k = tu_key("p256");
    X509_REQ *r = tu_csr(k, "/CN=Acme Widget/serialNumber=SN00?2", "DNS:w.example,DNS:x.example",
                         0, NULL, NULL);
    X509_REQ *r2 = tu_csr(k, "/O=Org/CN=Acme Widget/serialNumber=SN00?2", "DNS:w.example,DNS:x.example",
                          0, NULL, NULL);
    X509 *cert = cert_like(r, k), *issued = cert_like(r2, k);
    const char *W = "/CN=Acme Widget/serialNumber=SN00?2";
    est_label lb;
    fp_est_label cfg;
    est_identity id;
    EVP_PKEY *k2 = tu_key("p256");
    X509_REQ *tr = tu_csr(k2, "/CN=gw-1", NULL, 0, NULL, NULL);
    fp_error err = {0};
    (void)state;

    /* same: subject and the set of SANs (order aside) */
    assert_int_equal(name_ok("same", "", cert, W, "DNS:w.example,DNS:x.example", NULL), FP_ERR_OK);
    assert_int_equal(name_ok("same", "", cert, W, "DNS:x.example,DNS:w.example", NULL), FP_ERR_OK);
    assert_int_equal(name_ok("same", "", cert, W, "DNS:w.example", NULL), FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("same", "", cert, W, "DNS:w.example,DNS:x.example,DNS:y.example", NULL),
                     FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("same", "", cert, W, NULL, NULL), FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("same", "", cert, "/CN=Other/serialNumber=SN00?2",
                             "DNS:w.example,DNS:x.example", NULL), FP_ERR_CSR_SUBJECT);
    /* exactly: not X509_NAME_cmp's canonical form (case folded, spaces
     * collapsed and trimmed), which makes other names "equal" */
    assert_int_equal(name_ok("same", "", cert, "/CN=ACME WIDGET/serialNumber=SN00?2",
                             "DNS:w.example,DNS:x.example", NULL), FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("same", "", cert, "/CN=Acme  Widget/serialNumber=SN00?2",
                             "DNS:w.example,DNS:x.example", NULL), FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("same", "", cert, "/CN= Acme Widget /serialNumber=sn00?2",
                             "DNS:w.example,DNS:x.example", NULL), FP_ERR_CSR_SUBJECT);
    {
        X509_REQ *ru = tu_csr(k, "/CN=acme widget/serialNumber=SN00?2",
                              "DNS:w.example,DNS:x.example", 0, NULL, NULL);
        X509 *upper = cert_like(ru, k);
        assert_false(est_same_identity(upper, cert));
        assert_true(est_same_identity(cert, cert));
        assert_int_equal(name_ok("same", "", cert, "/CN=Other/serialNumber=SN00?2",
                                 "DNS:w.example,DNS:x.example", upper), FP_ERR_CSR_SUBJECT);
        X509_free(upper);
        X509_REQ_free(ru);
    }
    /* ... or the issued certificate equals the authenticating one */
    assert_int_equal(name_ok("same", "", issued, "/CN=Acme Widget/serialNumber=SN00?2",
                             "DNS:w.example,DNS:x.example", issued), FP_ERR_OK);
    assert_int_equal(name_ok("same", "", issued, "/CN=Acme Widget/serialNumber=SN00?2",
                             "DNS:w.example,DNS:x.example", cert), FP_ERR_CSR_SUBJECT);
    /* cn */
    assert_int_equal(name_ok("cn", "", cert, "/CN=Acme Widget", "DNS:z.example", NULL), FP_ERR_OK);
    assert_int_equal(name_ok("cn", "", cert, "/CN=Acme Widgets", NULL, NULL), FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("cn", "", cert, "/O=Acme Widget", NULL, NULL), FP_ERR_CSR_SUBJECT);
    /* serialnumber */
    assert_int_equal(name_ok("serialnumber", "", cert, "/CN=SN00?2", NULL, NULL), FP_ERR_OK);
    assert_int_equal(name_ok("serialnumber", "", cert, "/CN=SN0042", NULL, NULL), FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("serialnumber", "", issued, "/CN=Acme Widget", NULL, NULL),
                     FP_ERR_CSR_SUBJECT);
    /* pattern: attributes inserted literally, the rest is fnmatch */
    assert_int_equal(name_ok("pattern", "ldev-{serialnumber}-*", cert, "/CN=ldev-SN00?2-a", NULL, NULL),
                     FP_ERR_OK);
    assert_int_equal(name_ok("pattern", "ldev-{serialnumber}-*", cert, "/CN=ldev-SN0042-a", NULL, NULL),
                     FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("pattern", "{CN}.?", cert, "/CN=Acme Widget.1", NULL, NULL), FP_ERR_OK);
    assert_int_equal(name_ok("pattern", "{cn}", cert, "/CN=Acme Widget.1", NULL, NULL),
                     FP_ERR_CSR_SUBJECT);
    assert_int_equal(name_ok("pattern", "*", cert, "/O=no-cn", NULL, NULL), FP_ERR_CSR_SUBJECT);

    /* tokens: only their --cn pattern */
    memset(&cfg, 0, sizeof(cfg));
    memset(&lb, 0, sizeof(lb));
    memset(&id, 0, sizeof(id));
    snprintf(cfg.cert_identity, sizeof(cfg.cert_identity), "same");
    lb.cfg = &cfg;
    assert_int_equal(est_check_requested_name(&lb, &id, tr, NULL, &err), FP_ERR_OK);
    snprintf(id.cn_pattern, sizeof(id.cn_pattern), "dev-*");
    assert_int_equal(est_check_requested_name(&lb, &id, tr, NULL, &err), FP_ERR_CSR_CN);
    snprintf(id.cn_pattern, sizeof(id.cn_pattern), "gw-?");
    assert_int_equal(est_check_requested_name(&lb, &id, tr, NULL, &err), FP_ERR_OK);

    X509_REQ_free(tr);
    EVP_PKEY_free(k2);
    X509_free(cert);
    X509_free(issued);
    X509_REQ_free(r);
    X509_REQ_free(r2);
    EVP_PKEY_free(k);
}

/* ---- a client chain against our records (ca/chain_check.c) ---- */

static void test_chain_check_store(void **state)
{
    tu_ca f;
    EVP_PKEY *subkey = tu_key("p256"), *leafkey = tu_key("p256");
    X509_REQ *subreq = tu_csr(subkey, "/CN=Sub CA", NULL, 0, NULL, NULL);
    fp_issue_req ir = {.csr = subreq, .profile = "sub-ca", .days = 0, .actor = "test"};
    X509 *sub = NULL, *leaf = X509_new();
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509_NAME *n = X509_NAME_new();
    char serial[FP_CHAIN_SERIAL_LEN];
    char (*ours)[FP_CHAIN_SERIAL_LEN] = NULL;
    int n_ours = -1;
    fp_error err = {0};
    (void)state;

    tu_ca_init(&f, "Chain Org", NULL);
    assert_int_equal(fp_ca_issue(f.ca, f.store, &ir, &sub, &err), FP_ERR_OK);
    assert_int_equal(fp_serial_hex(X509_get0_serialNumber(sub), serial), 0);
    /* a leaf the sub-CA signs outside fleetpki */
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"leaf", -1, -1, 0);
    X509_set_version(leaf, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(leaf), 99);
    X509_set_subject_name(leaf, n);
    X509_set_issuer_name(leaf, X509_get_subject_name(sub));
    X509_gmtime_adj(X509_getm_notBefore(leaf), 0);
    X509_gmtime_adj(X509_getm_notAfter(leaf), 3600);
    X509_set_pubkey(leaf, leafkey);
    assert_true(X509_sign(leaf, subkey, EVP_sha256()) > 0);
    sk_X509_push(chain, leaf);
    sk_X509_push(chain, sub);
    sk_X509_push(chain, fp_ca_get0_cert(f.ca));
    sk_X509_push(chain, fp_ca_get0_root(f.ca));

    /* only the sub-CA is ours (the issuing CA and root are not records) */
    assert_int_equal(fp_chain_issued_serials(fp_ca_get0_cert(f.ca), chain, &ours, &n_ours, &err),
                     FP_ERR_OK);
    assert_int_equal(n_ours, 1);
    assert_string_equal(ours[0], serial);
    free(ours);
    assert_int_equal(fp_chain_check_store(f.store, fp_ca_get0_cert(f.ca), fp_ca_id(f.ca), chain,
                                          fp_now(), &err), FP_ERR_OK);
    /* past the record's notAfter */
    assert_int_equal(fp_chain_check_store(f.store, fp_ca_get0_cert(f.ca), fp_ca_id(f.ca), chain,
                                          fp_now() + 20LL * 365 * 86400, &err), FP_ERR_STATE);
    /* before the record's notBefore (CA certificates are backdated 1 h) */
    assert_int_equal(fp_chain_check_store(f.store, fp_ca_get0_cert(f.ca), fp_ca_id(f.ca), chain,
                                          fp_now() - 2 * 86400, &err), FP_ERR_STATE);
    assert_non_null(strstr(err.msg, "not valid yet"));
    /* recorded under another CA id */
    assert_int_equal(fp_chain_check_store(f.store, fp_ca_get0_cert(f.ca), "other", chain,
                                          fp_now(), &err), FP_ERR_STATE);
    /* on hold, lifted, revoked */
    assert_int_equal(fp_ca_revoke(f.store, serial, FP_REASON_HOLD, "test", &err), FP_ERR_OK);
    assert_int_equal(fp_chain_check_store(f.store, fp_ca_get0_cert(f.ca), fp_ca_id(f.ca), chain,
                                          fp_now(), &err), FP_ERR_STATE);
    assert_non_null(strstr(err.msg, "on hold"));
    assert_int_equal(fp_ca_revoke(f.store, serial, FP_REASON_REMOVE_FROM_CRL, "test", &err), FP_ERR_OK);
    assert_int_equal(fp_chain_check_store(f.store, fp_ca_get0_cert(f.ca), fp_ca_id(f.ca), chain,
                                          fp_now(), &err), FP_ERR_OK);
    assert_int_equal(fp_ca_revoke(f.store, serial, FP_REASON_KEY_COMPROMISE, "test", &err), FP_ERR_OK);
    assert_int_equal(fp_chain_check_store(f.store, fp_ca_get0_cert(f.ca), fp_ca_id(f.ca), chain,
                                          fp_now(), &err), FP_ERR_STATE);
    assert_non_null(strstr(err.msg, "revoked"));
    /* a certificate our CA signed that the store does not know */
    {
        const char unknown[1][FP_CHAIN_SERIAL_LEN] = {"0123456789ABCDEF"};
        assert_int_equal(fp_chain_check_serials(f.store, fp_ca_id(f.ca), unknown, 1, fp_now(), &err),
                         FP_ERR_STATE);
    }
    /* an empty list passes */
    assert_int_equal(fp_chain_check_serials(f.store, fp_ca_id(f.ca), NULL, 0, fp_now(), &err),
                     FP_ERR_OK);

    sk_X509_free(chain);
    X509_free(leaf);
    X509_free(sub);
    X509_NAME_free(n);
    X509_REQ_free(subreq);
    EVP_PKEY_free(subkey);
    EVP_PKEY_free(leafkey);
    tu_ca_clear(&f);
}

/* SANs in Microsoft's msExtReq attribute go through the profile's SAN
 * rules before the CA copies them (the device profile allows no IP SAN). */
static void test_ms_ext_req_sans_checked(void **state)
{
    tu_ca f;
    EVP_PKEY *k = tu_key("p256");
    X509_REQ *r = tu_csr(k, "/CN=dev-ms", NULL, 0, NULL, NULL);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "IP:10.9.9.9");
    fp_issue_req ir = {.csr = r, .profile = "device", .days = 0, .actor = "test"};
    X509 *cert = NULL;
    fp_error err = {0};
    (void)state;

    tu_ca_init(&f, "MS Org", NULL);
    assert_non_null(e);
    assert_true(sk_X509_EXTENSION_push(exts, e) > 0);
    assert_true(X509_REQ_add_extensions_nid(r, exts, NID_ms_ext_req));
    assert_true(X509_REQ_sign(r, k, EVP_sha256()) > 0);
    assert_int_equal(fp_ca_issue(f.ca, f.store, &ir, &cert, &err), FP_ERR_CSR_SAN);
    assert_null(cert);
    X509_free(cert);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(r);
    EVP_PKEY_free(k);
    tu_ca_clear(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certs_only_roundtrip),
        cmocka_unit_test(test_certs_only_matches_pkcs7),
        cmocka_unit_test(test_certs_only_bad_input),
        cmocka_unit_test(test_csrattrs),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_store_tokens_and_pending),
        cmocka_unit_test(test_csr_fast_parse),
        cmocka_unit_test(test_csr_fast_parse_declines),
        cmocka_unit_test(test_est_label_config),
        cmocka_unit_test(test_ec_pkcs8),
        cmocka_unit_test(test_requested_name),
        cmocka_unit_test(test_chain_check_store),
        cmocka_unit_test(test_ms_ext_req_sans_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
