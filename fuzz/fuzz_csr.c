/* fuzz_csr.c - PKCS#10 parsing and the full policy check on arbitrary bytes.
 * Every profile is tried, so each rule's code path sees hostile input. */
#include <stddef.h>
#include <stdint.h>

#include "ca/policy.h"
#include "x509/x509util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fp_profile profiles[6];
    static int ready;
    X509_REQ *req = NULL;

    if (!ready) {
        for (int i = 0; fp_builtin_profiles[i]; i++)
            fp_profile_defaults(fp_builtin_profiles[i], &profiles[i]);
        ready = 1;
    }
    if (fp_csr_parse(data, size, &req, NULL) != FP_ERR_OK)
        return 0;
    for (int i = 0; i < 6; i++) {
        fp_profile p = profiles[i];
        fp_policy_check(&p, req, NULL);
        p.requested_extensions = FP_REQEXT_HONOUR;
        fp_policy_check(&p, req, NULL);
    }
    X509_REQ_free(req);
    return 0;
}
