/*
 * fw_suit.c - the SUIT envelope encoder (fw_suit.h).
 *
 *   107({ 2: << [ << [-16, h'manifest digest'] >>,
 *                 << 18([ << {1: -7, 33: x5chain} >>, {}, nil, h'r||s' ]) >> ] >>,
 *         3: << { 1: 1, 2: sequence,
 *                 3: << { 2: [[h'00']],
 *                         4: << [ 20, { 1: vendor, 2: class,
 *                                       3: << [-16, h'image digest'] >>,
 *                                       14: size },
 *                                 1, 15, 2, 15 ] >> } >>,
 *                 7: << [ 3, 15 ] >>,
 *                 23: << { [h'00']: { 6: "version" } } >> } >> })
 *
 * Numbers from draft-ietf-suit-manifest: envelope 2 authentication
 * wrapper, 3 manifest; manifest 1 version, 2 sequence number, 3 common,
 * 7 validate, 23 text; common 2 components, 4 shared sequence; command 20
 * override-parameters, 1/2 vendor/class conditions, 3 image-match;
 * parameters 1 vendor-id, 2 class-id, 3 image-digest, 14 image-size;
 * 15 the report policy with every bit set.  The authentication digest
 * covers the bstr-wrapped manifest; the COSE payload is detached and is
 * that SUIT_Digest.  Maps are written with their keys in ascending order
 * (RFC 8949 4.2.1 deterministic encoding).
 */
#include "fw_suit.h"

#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

/* Integers in their shortest form (RFC 8949 4.2.1). */
static cbor_item_t *uint_item(uint64_t v)
{
    if (v <= 0xff)
        return cbor_build_uint8((uint8_t)v);
    if (v <= 0xffff)
        return cbor_build_uint16((uint16_t)v);
    if (v <= 0xffffffffu)
        return cbor_build_uint32((uint32_t)v);
    return cbor_build_uint64(v);
}

/* -1 - n is encoded as major type 1 with argument n (RFC 8949 3.1) */
static cbor_item_t *neg_item(uint8_t n)
{
    return cbor_build_negint8(n);
}

static bool put(cbor_item_t *map, cbor_item_t *k, cbor_item_t *v)
{
    bool ok = k != NULL && v != NULL &&
              cbor_map_add(map, (struct cbor_pair){.key = k, .value = v});
    if (k != NULL)
        cbor_decref(&k);
    if (v != NULL)
        cbor_decref(&v);
    return ok;
}

static bool push(cbor_item_t *arr, cbor_item_t *v)
{
    bool ok = v != NULL && cbor_array_push(arr, v);
    if (v != NULL)
        cbor_decref(&v);
    return ok;
}

/* Serialize item (consumed) into a malloc'd buffer. */
static int encode(cbor_item_t *item, unsigned char **out, size_t *len)
{
    size_t cap = 0;

    *out = NULL;
    *len = item != NULL ? cbor_serialize_alloc(item, out, &cap) : 0;
    if (item != NULL)
        cbor_decref(&item);
    return *len > 0 ? 0 : -1;
}

/* bstr .cbor item (consumed) */
static cbor_item_t *wrap(cbor_item_t *item)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    cbor_item_t *b;

    if (encode(item, &buf, &len) != 0)
        return NULL;
    b = cbor_build_bytestring(buf, len);
    free(buf);
    return b;
}

static cbor_item_t *digest_item(const unsigned char d[32])
{
    cbor_item_t *a = cbor_new_definite_array(2);
    if (a == NULL)
        return NULL;
    if (!push(a, neg_item(15)) || !push(a, cbor_build_bytestring(d, 32))) { /* -16: SHA-256 */
        cbor_decref(&a);
        return NULL;
    }
    return a;
}

static cbor_item_t *component_id(void)
{
    cbor_item_t *c = cbor_new_definite_array(1);
    static const unsigned char zero = 0;
    if (c != NULL && !push(c, cbor_build_bytestring(&zero, 1)))
        cbor_decref(&c);
    return c;
}

static cbor_item_t *manifest_item(const fp_fw_manifest *m)
{
    cbor_item_t *params = cbor_new_definite_map(4), *shared = cbor_new_definite_array(6);
    cbor_item_t *common = cbor_new_definite_map(2), *comps = cbor_new_definite_array(1);
    cbor_item_t *validate = cbor_new_definite_array(2), *text = cbor_new_definite_map(1);
    cbor_item_t *ctext = cbor_new_definite_map(1), *man = cbor_new_definite_map(5);
    bool ok = params && shared && common && comps && validate && text && ctext && man;

    ok = ok && put(params, uint_item(1), cbor_build_bytestring(m->vendor_id, 16)) &&
         put(params, uint_item(2), cbor_build_bytestring(m->class_id, 16)) &&
         put(params, uint_item(3), wrap(digest_item(m->image_sha256))) &&
         put(params, uint_item(14), uint_item(m->image_size));
    ok = ok && push(shared, uint_item(20)) && push(shared, params);
    params = NULL;
    ok = ok && push(shared, uint_item(1)) && push(shared, uint_item(15)) &&
         push(shared, uint_item(2)) && push(shared, uint_item(15));
    ok = ok && push(comps, component_id());
    ok = ok && put(common, uint_item(2), comps);
    comps = NULL;
    ok = ok && put(common, uint_item(4), wrap(shared));
    shared = NULL;
    ok = ok && push(validate, uint_item(3)) && push(validate, uint_item(15));
    ok = ok && put(ctext, uint_item(6), cbor_build_string(m->version != NULL ? m->version : ""));
    ok = ok && put(text, component_id(), ctext);
    ctext = NULL;
    ok = ok && put(man, uint_item(1), uint_item(1)) &&
         put(man, uint_item(2), uint_item(m->sequence)) &&
         put(man, uint_item(3), wrap(common));
    common = NULL;
    ok = ok && put(man, uint_item(7), wrap(validate));
    validate = NULL;
    ok = ok && put(man, uint_item(23), wrap(text));
    text = NULL;
    /* on failure free what was not handed over yet */
    cbor_item_t **left[] = {&params, &shared, &common, &comps, &validate, &text, &ctext};
    for (size_t i = 0; i < sizeof(left) / sizeof(*left); i++)
        if (*left[i] != NULL)
            cbor_decref(left[i]);
    if (!ok && man != NULL)
        cbor_decref(&man);
    return man;
}

static int p256_only(X509 *cert, fp_error *err)
{
    EVP_PKEY *pk = X509_get0_pubkey(cert);
    char group[64] = "";

    if (pk == NULL || !EVP_PKEY_is_a(pk, "EC") ||
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1 ||
        strcmp(group, SN_X9_62_prime256v1) != 0)
        return fp_err_set(err, FP_ERR_ARG, "SUIT signatures are ES256: the signer key must be P-256");
    return FP_ERR_OK;
}

static cbor_item_t *cert_bstr(X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    cbor_item_t *b = n > 0 ? cbor_build_bytestring(der, (size_t)n) : NULL;
    OPENSSL_free(der);
    return b;
}

/* r || s, 32 bytes each (RFC 9053 2.1), from DER ECDSA-Sig-Value */
static int raw_sig(const unsigned char *der, size_t len, unsigned char out[64], fp_error *err)
{
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r = NULL, *ss = NULL;
    int ok;

    if (s == NULL)
        return fp_err_set(err, FP_ERR_CRYPTO, "signer returned no ECDSA signature");
    ECDSA_SIG_get0(s, &r, &ss);
    ok = BN_bn2binpad(r, out, 32) == 32 && BN_bn2binpad(ss, out + 32, 32) == 32;
    ECDSA_SIG_free(s);
    return ok ? FP_ERR_OK : fp_err_set(err, FP_ERR_CRYPTO, "ECDSA signature too long for ES256");
}

int fp_fw_suit_sign(const fp_fw_manifest *m, fp_signer *s, X509 *cert, STACK_OF(X509) *chain,
                    unsigned char **out, size_t *len, fp_error *err)
{
    unsigned char *man = NULL, *dig = NULL, *prot = NULL, *tbs = NULL, *sig = NULL;
    size_t man_len = 0, dig_len = 0, prot_len = 0, tbs_len = 0, sig_len = 0;
    unsigned char md[32], rs[64];
    cbor_item_t *x5 = NULL, *hdr = NULL, *ss = NULL, *sign1 = NULL, *auth = NULL, *env = NULL;
    cbor_item_t *manb = NULL;
    static const unsigned char none[1] = {0};
    fp_sign_stream *st = NULL;
    int n_chain = chain != NULL ? sk_X509_num(chain) : 0, rc;

    *out = NULL;
    *len = 0;
    if ((rc = p256_only(cert, err)) != FP_ERR_OK)
        return rc;
    /* the manifest and the digest of its bstr-wrapped form */
    if ((manb = wrap(manifest_item(m))) == NULL || encode(cbor_incref(manb), &man, &man_len) != 0 ||
        EVP_Digest(man, man_len, md, NULL, EVP_sha256(), NULL) != 1 ||
        encode(digest_item(md), &dig, &dig_len) != 0) {
        rc = fp_err_set(err, FP_ERR_NOMEM, "encoding the manifest");
        goto out;
    }
    /* protected header: alg ES256 and x5chain, signer first (RFC 9360 2):
     * one certificate is a bstr, more are an array */
    if (n_chain == 0) {
        x5 = cert_bstr(cert);
    } else if ((x5 = cbor_new_definite_array((size_t)n_chain + 1)) != NULL) {
        bool ok = push(x5, cert_bstr(cert));
        for (int i = 0; ok && i < n_chain; i++)
            ok = push(x5, cert_bstr(sk_X509_value(chain, i)));
        if (!ok)
            cbor_decref(&x5);
    }
    hdr = cbor_new_definite_map(2);
    if (x5 == NULL || hdr == NULL || !put(hdr, uint_item(1), neg_item(6)) /* -7: ES256 */ ||
        !put(hdr, cbor_build_uint8(33), x5)) {
        x5 = NULL;
        rc = fp_err_set(err, FP_ERR_NOMEM, "encoding the COSE header");
        goto out;
    }
    x5 = NULL;
    if (encode(hdr, &prot, &prot_len) != 0) {
        hdr = NULL;
        rc = fp_err_set(err, FP_ERR_NOMEM, "encoding the COSE header");
        goto out;
    }
    hdr = NULL;
    /* Sig_structure (RFC 9052 4.4) */
    ss = cbor_new_definite_array(4);
    if (ss == NULL || !push(ss, cbor_build_string("Signature1")) ||
        !push(ss, cbor_build_bytestring(prot, prot_len)) || !push(ss, cbor_build_bytestring(none, 0)) ||
        !push(ss, cbor_build_bytestring(dig, dig_len)) || encode(ss, &tbs, &tbs_len) != 0) {
        ss = NULL;
        rc = fp_err_set(err, FP_ERR_NOMEM, "encoding the Sig_structure");
        goto out;
    }
    ss = NULL;
    /* through the signer interface: the key may be an HSM's (signer.h) */
    if ((rc = fp_signer_stream_new(s, &st, err)) != FP_ERR_OK ||
        (rc = fp_signer_stream_update(st, tbs, tbs_len, err)) != FP_ERR_OK ||
        (rc = fp_signer_stream_final(st, &sig, &sig_len, err)) != FP_ERR_OK ||
        (rc = raw_sig(sig, sig_len, rs, err)) != FP_ERR_OK)
        goto out;
    sign1 = cbor_new_definite_array(4);
    if (sign1 == NULL || !push(sign1, cbor_build_bytestring(prot, prot_len)) ||
        !push(sign1, cbor_new_definite_map(0)) || !push(sign1, cbor_new_null()) ||
        !push(sign1, cbor_build_bytestring(rs, 64))) {
        rc = fp_err_set(err, FP_ERR_NOMEM, "encoding COSE_Sign1");
        goto out;
    }
    auth = cbor_new_definite_array(2);
    if (auth == NULL || !push(auth, cbor_build_bytestring(dig, dig_len)) ||
        !push(auth, wrap(cbor_build_tag(18, sign1)))) {
        rc = fp_err_set(err, FP_ERR_NOMEM, "encoding the authentication wrapper");
        goto out;
    }
    env = cbor_new_definite_map(2);
    if (env == NULL || !put(env, uint_item(2), wrap(auth)) || !put(env, uint_item(3), manb)) {
        auth = NULL;
        manb = NULL;
        rc = fp_err_set(err, FP_ERR_NOMEM, "encoding the envelope");
        goto out;
    }
    auth = NULL;
    manb = NULL;
    if (encode(cbor_build_tag(107, env), out, len) != 0)
        rc = fp_err_set(err, FP_ERR_NOMEM, "encoding the envelope");
out:
    fp_signer_stream_free(st);
    OPENSSL_free(sig);
    free(man);
    free(dig);
    free(prot);
    free(tbs);
    if (sign1 != NULL)
        cbor_decref(&sign1);
    if (auth != NULL)
        cbor_decref(&auth);
    if (env != NULL)
        cbor_decref(&env);
    if (manb != NULL)
        cbor_decref(&manb);
    if (hdr != NULL)
        cbor_decref(&hdr);
    if (x5 != NULL)
        cbor_decref(&x5);
    if (ss != NULL)
        cbor_decref(&ss);
    return rc;
}
