/*
 * audit.c - backend-independent parts of the store: the audit hash chain
 * and revocation reason names.
 *
 * Chain: hash_n = SHA-256(prev || "\n" || id || "\n" || ts || "\n" ||
 * len:actor || len:action || len:object || len:detail [|| len:project]),
 * hex.  Fields are length-prefixed so no two different rows serialise
 * alike; the project is appended only when non-empty, so rows written
 * before projects existed (and rows of no project) hash as they always
 * did, and a row with a project is always longer than one without.  Editing a row
 * breaks its hash; deleting one breaks the next row's prev link and the id
 * sequence; deleting the tail is caught by the head kept in the meta table.
 */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include <openssl/evp.h>

#include "../common/util.h"

static int hash_field(EVP_MD_CTX *ctx, const char *s)
{
    char len[24];
    size_t n = s ? strlen(s) : 0;
    int k = snprintf(len, sizeof(len), "%zu:", n);
    return EVP_DigestUpdate(ctx, len, (size_t)k) &&
           (n == 0 || EVP_DigestUpdate(ctx, s, n));
}

int fp_audit_hash(const char *prev_hash, int64_t id, int64_t ts,
                  const char *actor, const char *action, const char *object,
                  const char *detail, const char *project, char out[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int mdlen = 0;
    char head[160];
    int k, ok;

    if (ctx == NULL)
        return FP_ERR_NOMEM;
    k = snprintf(head, sizeof(head), "%s\n%" PRId64 "\n%" PRId64 "\n", prev_hash, id, ts);
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(ctx, head, (size_t)k) && hash_field(ctx, actor) &&
         hash_field(ctx, action) && hash_field(ctx, object) &&
         hash_field(ctx, detail) &&
         (project == NULL || project[0] == '\0' || hash_field(ctx, project)) &&
         EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok || mdlen != 32)
        return FP_ERR_CRYPTO;
    fp_hex(md, 32, out);
    return FP_ERR_OK;
}

static const struct {
    int code;
    const char *name;
} reasons[] = {
    {FP_REASON_UNSPECIFIED, "unspecified"},
    {FP_REASON_KEY_COMPROMISE, "keyCompromise"},
    {FP_REASON_CA_COMPROMISE, "cACompromise"},
    {FP_REASON_AFFILIATION_CHANGED, "affiliationChanged"},
    {FP_REASON_SUPERSEDED, "superseded"},
    {FP_REASON_CESSATION, "cessationOfOperation"},
    {FP_REASON_HOLD, "certificateHold"},
    {FP_REASON_REMOVE_FROM_CRL, "removeFromCRL"},
    {FP_REASON_PRIVILEGE_WITHDRAWN, "privilegeWithdrawn"},
    {FP_REASON_AA_COMPROMISE, "aACompromise"},
};

int fp_reason_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(*reasons); i++)
        if (!strcasecmp(reasons[i].name, name))
            return reasons[i].code;
    return -1;
}

const char *fp_reason_name(int reason)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(*reasons); i++)
        if (reasons[i].code == reason)
            return reasons[i].name;
    return NULL;
}

void fp_cert_rec_clear(fp_cert_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->subject);
    free(rec->sans);
    free(rec->der);
    memset(rec, 0, sizeof(*rec));
}
