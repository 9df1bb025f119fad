/*
 * x509util.h - thin helpers over OpenSSL for keys, certificates, CSRs,
 * names and serials.  Nothing here knows about profiles or the store.
 */
#ifndef FP_X509UTIL_H
#define FP_X509UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "../common/err.h"

#define FP_SERIAL_BYTES 16           /* 127 bits of CSPRNG output */
#define FP_SERIAL_HEX_MAX 41         /* 20 octets (RFC 5280 4.1.2.2) + NUL */
#define FP_CSR_MAX_BYTES (64 * 1024) /* far above any sane PKCS#10 */
#define FP_PASSPHRASE_MAX 1024

/* Generate a key: "p256", "p384", "p521", "ed25519", "rsa2048", "rsa3072",
 * "rsa4096".  *out is owned by the caller. */
int fp_key_generate(const char *algo, EVP_PKEY **out, fp_error *err);

/* Digest to sign with for key (NULL for Ed25519, which signs the message). */
const EVP_MD *fp_key_sig_md(const EVP_PKEY *key);

/* Short description, e.g. "EC P-256", "RSA 3072", "Ed25519", into buf. */
void fp_key_describe(const EVP_PKEY *key, char *buf, size_t size);

/* Write key as PKCS#8 PEM to a new file with mode 0600 (fails if it exists).
 * With pass (len > 0) it is encrypted: PBES2, scrypt, AES-256-CBC. */
int fp_key_write(const char *path, EVP_PKEY *key, const char *pass,
                 size_t passlen, fp_error *err);

/* Read a PEM private key, decrypting with pass if it is encrypted.  A
 * missing or wrong passphrase yields FP_ERR_PASSPHRASE. */
int fp_key_read(const char *path, const char *pass, size_t passlen,
                EVP_PKEY **out, fp_error *err);

/* Passphrase from file (first line) or, when file is NULL, from the
 * FLEETPKI_PASSPHRASE environment variable.  *out is NULL when neither is
 * set.  Free with fp_passphrase_free. */
int fp_passphrase_load(const char *file, char **out, size_t *len, fp_error *err);
void fp_passphrase_free(char *pass, size_t len);

/* First certificate of a PEM file. */
int fp_cert_read(const char *path, X509 **out, fp_error *err);
/* Certificate as PEM text (malloc'd, NUL-terminated). */
int fp_cert_to_pem(X509 *cert, char **out, size_t *len, fp_error *err);
/* Certificate as a NEW PEM file, 0644 (fp_file_create: O_EXCL, never
 * over an existing file). */
int fp_cert_write_pem(const char *path, X509 *cert, fp_error *err);
/* DER encoding (OPENSSL_malloc'd). */
int fp_cert_to_der(X509 *cert, unsigned char **out, size_t *len, fp_error *err);
X509 *fp_cert_from_der(const unsigned char *der, size_t len);

/* Parse a PKCS#10 request in PEM or DER (bounded by FP_CSR_MAX_BYTES). */
int fp_csr_parse(const unsigned char *data, size_t len, X509_REQ **out,
                 fp_error *err);

/* 1 when req's self-signature verifies with its own public key (its
 * proof of possession), 0 when it does not, -1 when the public key is
 * missing or unusable (not a point on its curve, undecodable, or refused
 * by fp_x509_spki_check: checked first, so e.g. a huge RSA exponent costs
 * no modular exponentiation).  Works on
 * requests whose EVP_PKEY was never decoded (est_csr_fast_parse).  The
 * OpenSSL error queue is left empty.
 * Faster than X509_REQ_verify for EC keys on P-256/384/521: csr_verify.c. */
int fp_csr_verify(X509_REQ *req);

/* ---- named-curve key templates (ec_curve.c: the one cache) ----
 * P-256, P-384 and P-521 are cached: a key on them costs a copy of a
 * template instead of a new EC group.  True when nid is one of them and
 * its provider-native template could be built. */
bool fp_ec_curve_cached(int nid);
/* EC public key on cached curve nid from its encoded point (RFC 5480
 * 2.2), as a provider-native key (what EVP_DigestVerify uses without an
 * export); NULL for another curve or a point not on the curve.  The
 * caller frees it. */
EVP_PKEY *fp_ec_key_native(int nid, const unsigned char *pt, size_t len);
/* The same as a legacy key (what X509_PUBKEY_set encodes without the
 * OSSL_ENCODER machinery); other named curves are decoded from their OID
 * each time.  The caller frees it. */
EVP_PKEY *fp_ec_key_legacy(int nid, const unsigned char *pt, size_t len);

/* ---- public key rules (pubkey_check.c; docs/policy.md) ----
 *
 * One set of rules for every subject public key we certify or accept:
 * CSR keys (fp_policy_check, fp_csr_verify), TLS client certificates at
 * EST, trust anchors.
 *   RSA (rsaEncryption): modulus odd, FP_RSA_MIN_BITS..FP_RSA_MAX_BITS;
 *     exponent odd and 65537 <= e < 2^256 (NIST SP 800-89 5.3.3 /
 *     FIPS 186-5 A.1.1, the CA/Browser Forum rules).  e = 1 would make
 *     every "signature" the padded hash itself: no proof of possession.
 *   EC (id-ecPublicKey): named curve P-256, P-384 or P-521 (RFC 5480
 *     2.1.1; explicit parameters refused); the point encoded as RFC 5480
 *     2.2 says (04 || X || Y, or 02/03 || X), so never the point at
 *     infinity; on the curve (checked when the key is built).
 *   Ed25519: 32 octets, no parameters (RFC 8410 3).
 *   Anything else is refused.
 * Codes: FP_ERR_CSR_KEY (parameters: exponent, modulus, point),
 * FP_ERR_CSR_KEY_SIZE (modulus size, curve not supported),
 * FP_ERR_CSR_KEY_ALG (algorithm, unnamed curve), FP_ERR_CSR_MALFORMED
 * (missing). */
#define FP_RSA_MIN_BITS 2048
#define FP_RSA_MAX_BITS 16384

typedef struct fp_spki_info {
    int key_nid;   /* NID_rsaEncryption, NID_X9_62_id_ecPublicKey, NID_ED25519 */
    int curve_nid; /* EC: NID of the named curve, else NID_undef */
    int bits;      /* RSA: modulus bits; EC: field bits; Ed25519: 256 */
} fp_spki_info;

/* The rules above on an encoded SubjectPublicKeyInfo, without building an
 * EVP_PKEY (cheap: for EC only the curve OID and the point's encoding are
 * read; that the point is on the curve is checked by whoever builds the
 * key: fp_csr_verify, d2i).  info (may be NULL) receives what was read. */
int fp_x509_spki_check(const X509_PUBKEY *xpk, fp_spki_info *info, fp_error *err);

/* The rules above on a decoded key; for EC also EVP_PKEY_public_check_quick
 * (on the curve, not infinity).  pk NULL: FP_ERR_CSR_MALFORMED. */
int fp_x509_pubkey_check(EVP_PKEY *pk, fp_error *err);

/* A certificate's subject key (client, anchor or uploaded certificate):
 * fp_x509_spki_check on its encoding, and the key must have decoded (for
 * EC, OpenSSL's decoder refuses a point off the curve).  ~0.1 us for EC,
 * ~1 us for RSA: cheap enough for every request. */
int fp_x509_cert_key_check(X509 *cert, fp_error *err);

/* Fresh random serial: FP_SERIAL_BYTES from the CSPRNG, positive, with the
 * top octet nonzero so the DER length is constant. */
int fp_serial_random(ASN1_INTEGER **out, fp_error *err);
/* Uppercase hex of a serial (as `openssl x509 -serial` prints it). */
int fp_serial_hex(const ASN1_INTEGER *serial, char out[FP_SERIAL_HEX_MAX]);
/* Normalise user input (case, optional "0x"/colons) to fp_serial_hex form. */
int fp_serial_normalize(const char *in, char out[FP_SERIAL_HEX_MAX], fp_error *err);

/* RFC 2253 form of a name (malloc'd). */
char *fp_name_string(const X509_NAME *name);
/* "DNS:a, IP:1.2.3.4" form of a certificate's SANs (malloc'd, "" if none). */
char *fp_cert_sans_string(X509 *cert);

/* Seconds since the epoch for an ASN1_TIME. */
int64_t fp_asn1_time_unix(const ASN1_TIME *t);

#endif
