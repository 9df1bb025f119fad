/* test_registry.c - the device registry (src/registry): naming rules,
 * state transitions, first contact (also raced by threads), decommission
 * revoking through the CA layer. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/util.h"
#include "registry/device_json.h"
#include "registry/registry.h"
#include "testutil.h"
#include "x509/x509util.h"

/* A self-signed certificate with the given subject entries ("CN", value,
 * ...; NULL-terminated) and SANs (X509V3 conf text or NULL). */
static X509 *mkcert(EVP_PKEY *key, const char *san, ...)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    va_list ap;
    const char *k;
    static long serial = 1000;

    va_start(ap, san);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        assert_int_equal(X509_NAME_add_entry_by_txt(n, k, MBSTRING_UTF8,
                                                    (const unsigned char *)v, -1, -1, 0), 1);
    }
    va_end(ap);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_set_version(x, 2);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    if (san != NULL) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    X509_NAME_free(n);
    return x;
}

static void test_naming_rules(void **state)
{
    EVP_PKEY *key = tu_key("p256");
    char name[FP_DEVICE_NAME_MAX];
    fp_error e = {0};
    X509 *x;
    (void)state;

    x = mkcert(key, "URI:urn:dev:7,DNS:dev7.example,URI:urn:dev:other", "CN", "dev-7",
               "serialNumber", "SN0007", NULL);
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_CN, name, &e), FP_ERR_OK);
    assert_string_equal(name, "dev-7");
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_SAN_URI, name, &e), FP_ERR_OK);
    assert_string_equal(name, "urn:dev:7"); /* the first URI */
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_SAN_DNS, name, &e), FP_ERR_OK);
    assert_string_equal(name, "dev7.example");
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_SERIALNUMBER, name, &e), FP_ERR_OK);
    assert_string_equal(name, "SN0007");
    assert_int_equal(fp_registry_name_of(x, 9, name, &e), FP_ERR_ARG);
    X509_free(x);

    /* absent fields */
    x = mkcert(key, NULL, "O", "Vendor", NULL);
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_CN, name, &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "commonName"));
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_SAN_URI, name, &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "URI"));
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_SERIALNUMBER, name, &e), FP_ERR_ARG);
    X509_free(x);
    /* two CNs: ambiguous */
    x = mkcert(key, NULL, "CN", "a", "CN", "b", NULL);
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_CN, name, &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "more than one"));
    X509_free(x);
    /* control bytes never become a name */
    x = mkcert(key, NULL, "CN", "dev\n1", NULL);
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_CN, name, &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "control"));
    X509_free(x);
    /* UTF-8 is kept */
    x = mkcert(key, NULL, "CN", "ger\xc3\xa4t", NULL);
    assert_int_equal(fp_registry_name_of(x, FP_DEVNAME_CN, name, &e), FP_ERR_OK);
    assert_string_equal(name, "ger\xc3\xa4t");
    X509_free(x);
    EVP_PKEY_free(key);

    assert_string_equal(fp_dev_state_name(FP_DEV_SUSPENDED), "suspended");
    assert_null(fp_dev_state_name(3));
    assert_int_equal(fp_dev_state_from_name("decommissioned"), FP_DEV_DECOMMISSIONED);
    assert_int_equal(fp_dev_state_from_name("Active"), -1);
}

static void test_contact_and_states(void **state)
{
    tu_ca f;
    fp_registry *r = NULL;
    fp_device_rec d;
    fp_error e = {0};
    X509 *x;
    (void)state;

    tu_ca_init(&f, "Reg", NULL);
    assert_int_equal(fp_registry_new(&f.cfg, NULL, &r, &e), FP_ERR_OK);
    x = mkcert(f.key, NULL, "CN", "dev-1", NULL);
    assert_int_equal(fp_registry_contact(r, f.store, FP_PROJECT_DEFAULT, x, &d, &e), FP_ERR_OK);
    assert_string_equal(d.name, "dev-1");
    assert_int_equal(d.state, FP_DEV_ACTIVE);
    fp_device_rec_clear(&d);
    /* unknown project */
    assert_int_equal(fp_registry_contact(r, f.store, "ghost", x, NULL, &e), FP_ERR_NOT_FOUND);

    /* suspend: refused with the state in the message; resume lifts it */
    assert_int_equal(fp_registry_resume(f.store, FP_PROJECT_DEFAULT, "dev-1", "t", &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_registry_suspend(f.store, FP_PROJECT_DEFAULT, "dev-1", "t", &e),
                     FP_ERR_OK);
    assert_int_equal(fp_registry_suspend(f.store, FP_PROJECT_DEFAULT, "dev-1", "t", &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_registry_contact(r, f.store, FP_PROJECT_DEFAULT, x, NULL, &e),
                     FP_ERR_STATE);
    assert_non_null(strstr(e.msg, "suspended"));
    assert_int_equal(fp_registry_resume(f.store, FP_PROJECT_DEFAULT, "dev-1", "t", &e),
                     FP_ERR_OK);
    assert_int_equal(fp_registry_contact(r, f.store, FP_PROJECT_DEFAULT, x, NULL, &e), FP_ERR_OK);
    /* tag */
    assert_int_equal(fp_registry_tag(f.store, FP_PROJECT_DEFAULT, "dev-1", "site", "b", "t", &e),
                     FP_ERR_OK);
    assert_int_equal(fp_registry_device_get(f.store, FP_PROJECT_DEFAULT, "dev-1", &d, &e),
                     FP_ERR_OK);
    assert_string_equal(d.tags, "{\"site\":\"b\"}");
    fp_device_rec_clear(&d);
    /* decommission is final */
    assert_int_equal(fp_registry_decommission(f.store, FP_PROJECT_DEFAULT, "dev-1", "t", &e),
                     FP_ERR_OK);
    assert_int_equal(fp_registry_contact(r, f.store, FP_PROJECT_DEFAULT, x, NULL, &e),
                     FP_ERR_STATE);
    assert_non_null(strstr(e.msg, "decommissioned"));
    assert_int_equal(fp_registry_resume(f.store, FP_PROJECT_DEFAULT, "dev-1", "t", &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_registry_suspend(f.store, FP_PROJECT_DEFAULT, "dev-1", "t", &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_registry_decommission(f.store, FP_PROJECT_DEFAULT, "dev-1", "t", &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_registry_suspend(f.store, FP_PROJECT_DEFAULT, "nope", "t", &e),
                     FP_ERR_NOT_FOUND);
    X509_free(x);
    fp_registry_free(r);
    tu_ca_clear(&f);
}

static int count_certs(void *arg, const fp_cert_rec *c)
{
    int *n = arg;
    (void)c;
    (*n)++;
    return 0;
}

/* decommission revokes what we issued (cessationOfOperation) and lists
 * both the factory certificate and ours under the device */
static void test_decommission_revokes(void **state)
{
    tu_ca f;
    fp_registry *r = NULL;
    fp_error e = {0};
    fp_cert_status_rec st;
    fp_issue_req ir = {0};
    X509 *factory, *ours = NULL, *unused = NULL, *other = NULL;
    char serial[FP_SERIAL_HEX_MAX], serial2[FP_SERIAL_HEX_MAX], serial3[FP_SERIAL_HEX_MAX];
    int n = 0;
    (void)state;

    tu_ca_init(&f, "Reg", NULL);
    assert_int_equal(fp_registry_new(&f.cfg, NULL, &r, &e), FP_ERR_OK);
    factory = mkcert(f.key, NULL, "CN", "dev-2", NULL);
    assert_int_equal(fp_registry_contact(r, f.store, FP_PROJECT_DEFAULT, factory, NULL, &e),
                     FP_ERR_OK);
    ir.csr = tu_csr(f.key, "/CN=dev-2", NULL, 0, NULL, NULL);
    ir.profile = "device";
    ir.actor = "unit";
    assert_int_equal(fp_ca_issue(f.ca, f.store, &ir, &ours, &e), FP_ERR_OK);
    X509_REQ_free(ir.csr);
    assert_int_equal(fp_registry_contact(r, f.store, FP_PROJECT_DEFAULT, ours, NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(fp_registry_device_certs(f.store, FP_PROJECT_DEFAULT, "dev-2", count_certs,
                                              &n, &e), FP_ERR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(fp_serial_hex(X509_get0_serialNumber(ours), serial), 0);
    /* one more of ours naming the device, never presented: revoked too */
    ir.csr = tu_csr(f.key, "/CN=dev-2", NULL, 0, NULL, NULL);
    assert_int_equal(fp_ca_issue(f.ca, f.store, &ir, &unused, &e), FP_ERR_OK);
    X509_REQ_free(ir.csr);
    assert_int_equal(fp_serial_hex(X509_get0_serialNumber(unused), serial2), 0);
    /* and one naming another device is left alone */
    ir.csr = tu_csr(f.key, "/CN=dev-20", NULL, 0, NULL, NULL);
    assert_int_equal(fp_ca_issue(f.ca, f.store, &ir, &other, &e), FP_ERR_OK);
    X509_REQ_free(ir.csr);
    assert_int_equal(fp_serial_hex(X509_get0_serialNumber(other), serial3), 0);
    assert_int_equal(fp_registry_decommission(f.store, FP_PROJECT_DEFAULT, "dev-2", "t", &e),
                     FP_ERR_OK);
    assert_int_equal(fp_store_cert_status(f.store, serial, &st, &e), FP_ERR_OK);
    assert_int_equal(st.status, FP_CERT_REVOKED);
    assert_int_equal(st.reason, FP_REASON_CESSATION);
    assert_int_equal(fp_store_cert_status(f.store, serial2, &st, &e), FP_ERR_OK);
    assert_int_equal(st.status, FP_CERT_REVOKED);
    assert_int_equal(fp_store_cert_status(f.store, serial3, &st, &e), FP_ERR_OK);
    assert_int_equal(st.status, FP_CERT_VALID);
    X509_free(factory);
    X509_free(ours);
    X509_free(unused);
    X509_free(other);
    fp_registry_free(r);
    tu_ca_clear(&f);
}

typedef struct {
    const fp_config *cfg;
    X509 *cert;
    fp_registry *r;
    int rc;
} racer;

static pthread_barrier_t barrier;

static void *race(void *arg)
{
    racer *a = arg;
    fp_store *s = NULL;
    fp_error e = {0};

    a->rc = fp_config_store_open(a->cfg, &s, &e);
    pthread_barrier_wait(&barrier);
    if (a->rc == FP_ERR_OK)
        a->rc = fp_registry_contact(a->r, s, FP_PROJECT_DEFAULT, a->cert, NULL, &e);
    fp_store_close(s);
    return NULL;
}

static int count_dev(void *arg, const fp_device_rec *d)
{
    int *n = arg;
    (void)d;
    (*n)++;
    return 0;
}

/* Racing first contacts of one device (each thread with its own handle,
 * as the server's workers have) make exactly one device, one audit row,
 * and every certificate linked to it. */
static void test_contact_race(void **state)
{
    enum { N = 8 };
    tu_ca f;
    fp_registry *r = NULL;
    fp_error e = {0};
    pthread_t t[N];
    racer a[N];
    int n = 0, certs = 0;
    fp_device_filter fl = {FP_PROJECT_DEFAULT, -1, NULL, NULL, NULL, NULL, 100};
    fp_device_rec d;
    (void)state;

    tu_ca_init(&f, "Reg", NULL);
    assert_int_equal(fp_registry_new(&f.cfg, NULL, &r, &e), FP_ERR_OK);
    pthread_barrier_init(&barrier, NULL, N);
    for (int i = 0; i < N; i++) {
        /* half present one certificate, half their own: the name decides */
        a[i] = (racer){&f.cfg, i % 2 ? NULL : mkcert(f.key, NULL, "CN", "twin", NULL),
                       r, -1};
    }
    for (int i = 1; i < N; i += 2)
        a[i].cert = X509_dup(a[0].cert);
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race, &a[i]), 0);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].rc, FP_ERR_OK);
        X509_free(a[i].cert);
    }
    assert_int_equal(fp_registry_device_list(f.store, &fl, count_dev, &n, &e), FP_ERR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(fp_registry_device_certs(f.store, FP_PROJECT_DEFAULT, "twin", count_certs,
                                              &certs, &e), FP_ERR_OK);
    assert_int_equal(certs, N / 2);
    /* last seen: queued, then written by the flush */
    assert_int_equal(fp_registry_flush(r, f.store, &e), FP_ERR_OK);
    assert_int_equal(fp_registry_device_get(f.store, FP_PROJECT_DEFAULT, "twin", &d, &e),
                     FP_ERR_OK);
    assert_true(d.last_seen >= d.first_seen);
    fp_device_rec_clear(&d);
    fp_registry_free(r);
    tu_ca_clear(&f);
}

/* last-seen is queued, not written per contact, and written on free */
static void test_last_seen_batched(void **state)
{
    tu_ca f;
    fp_registry *r = NULL;
    fp_error e = {0};
    fp_device_rec d;
    const char *projects[] = {FP_PROJECT_DEFAULT};
    const char *names[] = {"dev-3"};
    int64_t old[] = {5};
    X509 *x;
    (void)state;

    tu_ca_init(&f, "Reg", NULL);
    x = mkcert(f.key, NULL, "CN", "dev-3", NULL);
    assert_int_equal(fp_registry_new(&f.cfg, NULL, &r, &e), FP_ERR_OK);
    assert_int_equal(fp_registry_contact(r, f.store, FP_PROJECT_DEFAULT, x, NULL, &e), FP_ERR_OK);
    /* move first/last seen into the past through the store, so that the
     * queued contact shows when it lands */
    assert_int_equal(fp_store_device_register(f.store, FP_PROJECT_DEFAULT, "dev-3", 5, NULL,
                                              NULL, NULL, NULL, &e), FP_ERR_OK);
    fp_registry_free(r);
    r = NULL;
    assert_int_equal(fp_registry_device_get(f.store, FP_PROJECT_DEFAULT, "dev-3", &d, &e),
                     FP_ERR_OK);
    assert_true(d.last_seen > 5);
    fp_device_rec_clear(&d);
    /* touch never moves last_seen backwards */
    assert_int_equal(fp_store_device_touch(f.store, projects, names, old, 1, &e), FP_ERR_OK);
    assert_int_equal(fp_registry_device_get(f.store, FP_PROJECT_DEFAULT, "dev-3", &d, &e),
                     FP_ERR_OK);
    assert_true(d.last_seen > 5);
    fp_device_rec_clear(&d);
    X509_free(x);
    tu_ca_clear(&f);
}

static int device_cert_count(fp_store *s, const char *name)
{
    int n = 0;
    fp_error e = {0};
    if (fp_registry_device_certs(s, FP_PROJECT_DEFAULT, name, count_certs, &n, &e) != FP_ERR_OK)
        fail_msg("certs of %s: %s", name, e.msg);
    return n;
}

/* A certificate is linked to its device when it is issued: to the device
 * of the certificate that authenticated the issuance (whatever the new one
 * is named), else to the device it names, registered if new; an
 * authenticating certificate not linked yet is linked to the same device;
 * a certificate naming no device, or a CA certificate, makes none. */
static void test_link_issued(void **state)
{
    tu_ca f;
    fp_registry *r = NULL;
    fp_device_rec d;
    fp_error e = {0};
    char linked[FP_DEVICE_NAME_MAX];
    X509 *idev, *ldev, *other, *stray, *nameless, *factory, *lnew, *ca;
    (void)state;

    tu_ca_init(&f, "Link", NULL);
    assert_int_equal(fp_registry_new(&f.cfg, NULL, &r, &e), FP_ERR_OK);
    idev = mkcert(f.key, NULL, "CN", "dev-9", NULL);
    assert_int_equal(fp_registry_contact(r, f.store, FP_PROJECT_DEFAULT, idev, NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(device_cert_count(f.store, "dev-9"), 1);
    /* authenticated by the IDevID: linked to its device */
    ldev = mkcert(f.key, NULL, "CN", "dev-9", NULL);
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, ldev, idev, "t",
                                             linked, &e), FP_ERR_OK);
    assert_string_equal(linked, "dev-9");
    assert_int_equal(device_cert_count(f.store, "dev-9"), 2);
    /* again: nothing more (already linked) */
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, ldev, idev, "t",
                                             linked, &e), FP_ERR_OK);
    assert_int_equal(device_cert_count(f.store, "dev-9"), 2);
    /* the authenticating device wins over the name the new one carries */
    other = mkcert(f.key, NULL, "CN", "renamed", NULL);
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, other, idev, "t",
                                             linked, &e), FP_ERR_OK);
    assert_string_equal(linked, "dev-9");
    assert_int_equal(device_cert_count(f.store, "dev-9"), 3);
    /* no authenticating certificate: the registered device it names */
    X509_free(other);
    other = mkcert(f.key, NULL, "CN", "dev-9", NULL);
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, other, NULL, "t",
                                             linked, &e), FP_ERR_OK);
    assert_string_equal(linked, "dev-9");
    assert_int_equal(device_cert_count(f.store, "dev-9"), 4);
    /* naming a device not registered yet (CLI issue, a token enrollment):
     * registered at issuance, active, with the certificate */
    stray = mkcert(f.key, NULL, "CN", "nobody", NULL);
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, stray, NULL, "t",
                                             linked, &e), FP_ERR_OK);
    assert_string_equal(linked, "nobody");
    assert_int_equal(fp_registry_device_get(f.store, FP_PROJECT_DEFAULT, "nobody", &d, &e),
                     FP_ERR_OK);
    assert_int_equal(d.state, FP_DEV_ACTIVE);
    fp_device_rec_clear(&d);
    assert_int_equal(device_cert_count(f.store, "nobody"), 1);
    /* an authenticating certificate not linked yet (a factory certificate
     * never presented, a SCEP renewal's current certificate): the new
     * certificate's device, registered now, lists both */
    factory = mkcert(f.key, NULL, "CN", "dev-10", NULL);
    lnew = mkcert(f.key, NULL, "CN", "dev-10", NULL);
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, lnew, factory, "t",
                                             linked, &e), FP_ERR_OK);
    assert_string_equal(linked, "dev-10");
    assert_int_equal(device_cert_count(f.store, "dev-10"), 2);
    /* a new certificate naming nothing goes to the device its
     * authenticating certificate names */
    nameless = mkcert(f.key, NULL, "O", "no name", NULL);
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, nameless, factory, "t",
                                             linked, &e), FP_ERR_OK);
    assert_string_equal(linked, "dev-10");
    assert_int_equal(device_cert_count(f.store, "dev-10"), 3);
    /* naming nothing, authenticated by nothing that names a device:
     * nothing happens */
    X509_free(nameless);
    nameless = mkcert(f.key, NULL, "O", "no name", NULL);
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, nameless, NULL, "t",
                                             linked, &e), FP_ERR_OK);
    assert_string_equal(linked, "");
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, nameless, nameless,
                                             "t", linked, &e), FP_ERR_OK);
    assert_string_equal(linked, "");
    /* a CA certificate is no device's */
    ca = mkcert(f.key, NULL, "CN", "sub-ca-1", NULL);
    {
        X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
                                                 "critical,CA:TRUE");
        assert_non_null(bc);
        X509_add_ext(ca, bc, -1);
        X509_EXTENSION_free(bc);
        assert_true(X509_sign(ca, f.key, EVP_sha256()) > 0);
    }
    assert_int_equal(fp_registry_link_issued(f.store, FP_PROJECT_DEFAULT, ca, NULL, "t", linked,
                                             &e), FP_ERR_OK);
    assert_string_equal(linked, "");
    assert_int_equal(fp_registry_device_get(f.store, FP_PROJECT_DEFAULT, "sub-ca-1", &d, &e),
                     FP_ERR_NOT_FOUND);
    fp_device_rec_clear(&d);
    X509_free(idev);
    X509_free(ldev);
    X509_free(other);
    X509_free(stray);
    X509_free(nameless);
    X509_free(factory);
    X509_free(lnew);
    X509_free(ca);
    fp_registry_free(r);
    tu_ca_clear(&f);
}

/* The text view the admin API sends is the jansson view, member for
 * member, for names holding what JSON must escape, UTF-8, and bytes that
 * are not UTF-8 (U+FFFD): parsed back by jansson, a parser of its own. */
static void test_device_json_text(void **state)
{
    static const char *const names[] = {
        "plain", "q\"uote", "back\\slash", "ctl\x01\x1f\x7f", "caf\xc3\xa9 \xf0\x9f\x98\x80",
        "bad\xff", "trunc\xc3", "overlong\xc0\xaf", "surrogate\xed\xa0\x80",
    };
    static const char *const want[] = {
        "plain", "q\"uote", "back\\slash", "ctl\x01\x1f\x7f", "caf\xc3\xa9 \xf0\x9f\x98\x80",
        "bad\xef\xbf\xbd", "trunc\xef\xbf\xbd", "overlong\xef\xbf\xbd\xef\xbf\xbd",
        "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        fp_device_rec r;
        fp_jbuf b = {0};
        json_error_t je;
        json_t *got, *ref;
        memset(&r, 0, sizeof(r));
        snprintf(r.project, sizeof(r.project), "p1");
        snprintf(r.name, sizeof(r.name), "%s", names[i]);
        r.state = (int)(i % 3);
        r.first_seen = i == 0 ? -5 : (int64_t)1 << 40;
        r.last_seen = 0;
        r.tags = (char *)"{\"k\":\"v\\\"\"}";
        fp_device_json_text(&b, &r);
        assert_false(b.oom);
        if ((got = json_loadb(b.p, b.n, JSON_REJECT_DUPLICATES, &je)) == NULL)
            fail_msg("%zu: %s in %s", i, je.text, b.p);
        assert_string_equal(json_string_value(json_object_get(got, "name")), want[i]);
        if (i < 5) {
            /* valid UTF-8: exactly what jansson makes of the record */
            ref = fp_device_json(&r);
            assert_non_null(ref);
            assert_true(json_equal(got, ref));
            json_decref(ref);
        }
        assert_int_equal(json_integer_value(json_object_get(got, "first_seen")), r.first_seen);
        assert_string_equal(json_string_value(json_object_get(json_object_get(got, "tags"), "k")),
                            "v\"");
        json_decref(got);
        free(b.p);
    }
}

/* Devices written one after the other into one buffer (as a page is) stay
 * whole however much their strings grow as JSON: the writer reserves each
 * device's room once, for the worst case (every byte of the project and
 * the name escaped to six), then stores without checking. */
static void test_device_json_text_worst_case(void **state)
{
    fp_jbuf b = {0};
    fp_device_rec r;
    json_error_t je;
    json_t *page;
    char want[FP_DEVICE_NAME_MAX * 3];
    (void)state;
    memset(&r, 0, sizeof(r));
    memset(r.project, '\x01', sizeof(r.project) - 1);
    r.tags = (char *)"{}";
    fp_jbuf_put(&b, "[", 1);
    for (int i = 0; i < 40; i++) {
        /* all control bytes (\u00XX), all quotes (\"), all bytes not UTF-8 */
        memset(r.name, i % 3 == 0 ? '\x1f' : i % 3 == 1 ? '"' : '\xff', sizeof(r.name) - 1);
        r.first_seen = i % 2 ? INT64_MIN : INT64_MAX;
        r.last_seen = -i;
        r.state = 99; /* no such state: "?" */
        if (i > 0)
            fp_jbuf_put(&b, ",", 1);
        fp_device_json_text(&b, &r);
    }
    fp_jbuf_put(&b, "]", 1);
    assert_false(b.oom);
    assert_int_equal(strlen(b.p), b.n);
    if ((page = json_loadb(b.p, b.n, 0, &je)) == NULL)
        fail_msg("%s", je.text);
    assert_int_equal(json_array_size(page), 40);
    for (int i = 0; i < 40; i++) {
        json_t *d = json_array_get(page, (size_t)i);
        size_t k = 0;
        assert_int_equal(strlen(json_string_value(json_object_get(d, "project"))),
                         sizeof(r.project) - 1);
        for (size_t j = 0; j < sizeof(r.name) - 1; j++) {
            if (i % 3 == 2) {
                memcpy(want + k, "\xef\xbf\xbd", 3);
                k += 3;
            } else {
                want[k++] = i % 3 == 0 ? '\x1f' : '"';
            }
        }
        want[k] = '\0';
        assert_string_equal(json_string_value(json_object_get(d, "name")), want);
        assert_string_equal(json_string_value(json_object_get(d, "state")), "?");
        assert_true(json_integer_value(json_object_get(d, "first_seen")) ==
                    (i % 2 ? INT64_MIN : INT64_MAX));
        assert_int_equal(json_integer_value(json_object_get(d, "last_seen")), -i);
        assert_int_equal(json_object_size(json_object_get(d, "tags")), 0);
    }
    json_decref(page);
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naming_rules),
        cmocka_unit_test(test_contact_and_states),
        cmocka_unit_test(test_decommission_revokes),
        cmocka_unit_test(test_contact_race),
        cmocka_unit_test(test_last_seen_batched),
        cmocka_unit_test(test_device_json_text),
        cmocka_unit_test(test_device_json_text_worst_case),
        cmocka_unit_test(test_link_issued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
