/*
 * rollover.c - accepting a new root from /cacerts only when it is linked
 * to the root the device already trusts (RFC 7030 4.1.3 "Root CA Key
 * Update", RFC 4210 4.4).  A new self-signed root in /cacerts is otherwise
 * just a certificate the server claims: trusting it because the (already
 * authenticated) server sent it would let one compromised server hand the
 * fleet a rogue root.  Links accepted:
 *  - the candidate's own signature verifies with the current anchor's key
 *    (the same root key re-issued in a new certificate);
 *  - the RFC 4210 4.4 pair: NewWithOld (the new public key in a
 *    certificate signed by the old root) and OldWithNew (the old public
 *    key in a certificate signed by the new root), both present.
 * OpenSSL does the parsing and the signatures (the agent runs on Linux
 * gateways); the device library is not asked to grow an X.509 API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent.h"

static STACK_OF(X509) *read_pem(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;

    if (b == NULL || sk == NULL || len > 0x7fffffff) {
        BIO_free(b);
        sk_X509_free(sk);
        return NULL;
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            sk_X509_pop_free(sk, X509_free);
            sk = NULL;
            break;
        }
    ERR_clear_error(); /* the end of the input reads as an error */
    BIO_free(b);
    return sk;
}

static int same_key(X509 *a, X509 *b)
{
    EVP_PKEY *ka = X509_get0_pubkey(a), *kb = X509_get0_pubkey(b);
    return ka != NULL && kb != NULL && EVP_PKEY_eq(ka, kb) == 1;
}

/* x carries subj's name and key, is issued by iss (name and signature). */
static int certifies(X509 *x, X509 *subj, X509 *iss)
{
    EVP_PKEY *ik = X509_get0_pubkey(iss);
    int ok = X509_NAME_cmp(X509_get_subject_name(x), X509_get_subject_name(subj)) == 0 &&
             X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(iss)) == 0 &&
             same_key(x, subj) && ik != NULL && X509_verify(x, ik) == 1;
    ERR_clear_error();
    return ok;
}

static int is_root(X509 *x)
{
    int r = X509_check_ca(x) > 0 && X509_self_signed(x, 1) == 1;
    ERR_clear_error();
    return r;
}

static int valid_now(X509 *x)
{
    return X509_cmp_current_time(X509_get0_notBefore(x)) < 0 &&
           X509_cmp_current_time(X509_get0_notAfter(x)) > 0;
}

static int in_set(STACK_OF(X509) *sk, X509 *x)
{
    for (int i = 0; i < sk_X509_num(sk); i++)
        if (X509_cmp(sk_X509_value(sk, i), x) == 0)
            return 1;
    return 0;
}

static void subject(X509 *x, char *out, size_t size)
{
    char raw[256], esc[300];
    X509_NAME_oneline(X509_get_subject_name(x), raw, sizeof(raw));
    snprintf(out, size, "%s", fpa_esc(raw, esc, sizeof(esc)));
}

/* Which link ties candidate n to anchor o, or NULL. */
static const char *linked(X509 *n, X509 *o, STACK_OF(X509) *rcv)
{
    EVP_PKEY *ok = X509_get0_pubkey(o);
    int nwo = 0, own = 0;

    if (ok != NULL && X509_verify(n, ok) == 1) {
        ERR_clear_error();
        return "signed-by-current";
    }
    ERR_clear_error();
    for (int i = 0; i < sk_X509_num(rcv); i++) {
        X509 *x = sk_X509_value(rcv, i);
        if (x == n)
            continue;
        if (!nwo && certifies(x, n, o))
            nwo = 1;
        else if (!own && certifies(x, o, n))
            own = 1;
    }
    return nwo && own ? "NewWithOld+OldWithNew" : NULL;
}

int fpa_rollover(const char *anchors, size_t anchors_len, const char *received,
                 size_t received_len, char **out, size_t *out_len, char *msg, size_t msgsz)
{
    STACK_OF(X509) *cur = read_pem(anchors, anchors_len), *rcv = read_pem(received, received_len);
    STACK_OF(X509) *keep = sk_X509_new_null();
    BIO *mem = NULL;
    int accepted = 0, rc = -1;

    *out = NULL;
    *out_len = 0;
    if (cur == NULL || rcv == NULL || keep == NULL) {
        snprintf(msg, msgsz, "out of memory");
        goto done;
    }
    if (sk_X509_num(cur) == 0) {
        snprintf(msg, msgsz, "no current anchor");
        goto done;
    }
    for (int i = 0; i < sk_X509_num(rcv); i++) {
        X509 *n = sk_X509_value(rcv, i);
        const char *how = NULL;
        char name[320];

        if (!is_root(n) || in_set(cur, n))
            continue;
        subject(n, name, sizeof(name));
        /* the new self-signed root and an OldWithNew differ: only a root
         * whose key is not a current anchor's is a candidate (OldWithNew
         * carries the old key and is not self-signed anyway) */
        for (int j = 0; j < sk_X509_num(cur) && how == NULL; j++)
            how = linked(n, sk_X509_value(cur, j), rcv);
        if (how == NULL) {
            fpa_log(FPA_WARN, "anchor-rollover-refused",
                    "subject=%s reason=\"not signed by the current anchor and no "
                    "NewWithOld/OldWithNew pair links it (RFC 4210 4.4)\" action=keep-current",
                    name);
            continue;
        }
        if (!valid_now(n)) {
            fpa_log(FPA_WARN, "anchor-rollover-refused",
                    "subject=%s reason=\"outside its validity period\" action=keep-current", name);
            continue;
        }
        if (!X509_up_ref(n) || !sk_X509_push(keep, n)) {
            snprintf(msg, msgsz, "out of memory");
            goto done;
        }
        accepted++;
        fpa_log(FPA_INFO, "anchor-rollover-accepted", "subject=%s link=%s", name, how);
    }
    if (accepted > 0) {
        char *p;
        long n;
        /* the old roots stay trusted while valid: certificates they
         * issued (the device's own, its peers') are still good */
        for (int j = 0; j < sk_X509_num(cur); j++) {
            X509 *o = sk_X509_value(cur, j);
            if (X509_cmp_current_time(X509_get0_notAfter(o)) > 0 &&
                (!X509_up_ref(o) || !sk_X509_push(keep, o))) {
                snprintf(msg, msgsz, "out of memory");
                goto done;
            }
        }
        if ((mem = BIO_new(BIO_s_mem())) == NULL)
            goto done;
        for (int j = 0; j < sk_X509_num(keep); j++)
            if (!PEM_write_bio_X509(mem, sk_X509_value(keep, j))) {
                snprintf(msg, msgsz, "cannot write PEM");
                goto done;
            }
        n = BIO_get_mem_data(mem, &p);
        if (n <= 0 || (*out = malloc((size_t)n + 1)) == NULL) {
            snprintf(msg, msgsz, "out of memory");
            goto done;
        }
        memcpy(*out, p, (size_t)n);
        (*out)[n] = '\0';
        *out_len = (size_t)n;
    }
    rc = accepted;
done:
    BIO_free(mem);
    sk_X509_pop_free(cur, X509_free);
    sk_X509_pop_free(rcv, X509_free);
    sk_X509_pop_free(keep, X509_free);
    ERR_clear_error();
    return rc;
}

void fpa_cert_brief(const char *pem, size_t len, char *serial, size_t serial_sz)
{
    STACK_OF(X509) *sk = read_pem(pem, len);
    X509 *x = sk != NULL && sk_X509_num(sk) > 0 ? sk_X509_value(sk, 0) : NULL;
    BIGNUM *bn = x != NULL ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

    snprintf(serial, serial_sz, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
    sk_X509_pop_free(sk, X509_free);
    ERR_clear_error();
}
