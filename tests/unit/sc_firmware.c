/* sc_firmware.c - store conformance: firmware signatures and their
 * per-class monotonic sequence (store_firmware.h). */
#include "store_conformance_int.h"

#include <stdio.h>
#include <string.h>

static fp_fw_sig_rec mksig(const char *project, const char *cls, int64_t seq, bool forced)
{
    fp_fw_sig_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.project, sizeof(r.project), "%s", project);
    snprintf(r.vendor_id, sizeof(r.vendor_id), "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe");
    snprintf(r.class_id, sizeof(r.class_id), "%s", cls);
    snprintf(r.version, sizeof(r.version), "1.0.%lld", (long long)seq);
    snprintf(r.format, sizeof(r.format), "suit");
    memset(r.image_sha256, 'a', 64);
    r.image_size = 1234;
    snprintf(r.signer_serial, sizeof(r.signer_serial), "01AB");
    snprintf(r.actor, sizeof(r.actor), "test");
    r.sequence = seq;
    r.forced = forced;
    r.created_at = 1000 + seq;
    return r;
}

typedef struct {
    int n;
    int64_t seqs[8];
    bool forced[8];
} sigs;

static int collect(void *arg, const fp_fw_sig_rec *r)
{
    sigs *s = arg;
    if (s->n < 8) {
        s->seqs[s->n] = r->sequence;
        s->forced[s->n] = r->forced;
    }
    s->n++;
    return FP_ERR_OK;
}

static int count_fw(void *arg, const fp_audit_row *row)
{
    if (strncmp(row->action, "firmware.", 9) == 0)
        (*(int *)arg)++;
    return FP_ERR_OK;
}

void test_firmware_signatures(void **state)
{
    fx *f = *state;
    const char *A = "1492af14-2569-5e48-bf42-9b2d51f2ab45", *B = "00000000-0000-0000-0000-00000000000b";
    fp_audit_event ev = {"test", "firmware.sign", "x", "", FP_PROJECT_DEFAULT};
    fp_fw_sig_rec r;
    fp_error e = {0};
    int64_t last = -1, id = 0;
    sigs got = {0};
    int audited = 0;

    assert_int_equal(fp_store_fw_sig_last(f->s, FP_PROJECT_DEFAULT, A, &last, &e), FP_ERR_OK);
    assert_int_equal(last, 0);
    r = mksig(FP_PROJECT_DEFAULT, A, 5, false);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, &id, &e), FP_ERR_OK);
    assert_true(id > 0);
    assert_int_equal(fp_store_fw_sig_last(f->s, FP_PROJECT_DEFAULT, A, &last, &e), FP_ERR_OK);
    assert_int_equal(last, 5);
    /* equal and lower refused, nothing written */
    r = mksig(FP_PROJECT_DEFAULT, A, 5, false);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_STATE);
    r = mksig(FP_PROJECT_DEFAULT, A, 4, false);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_STATE);
    /* another class has its own sequence */
    r = mksig(FP_PROJECT_DEFAULT, B, 1, false);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_OK);
    /* forced: recorded and marked, the class's highest stays 5 */
    r = mksig(FP_PROJECT_DEFAULT, A, 3, true);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_fw_sig_last(f->s, FP_PROJECT_DEFAULT, A, &last, &e), FP_ERR_OK);
    assert_int_equal(last, 5);
    r = mksig(FP_PROJECT_DEFAULT, A, 6, false);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_fw_sig_list(f->s, FP_PROJECT_DEFAULT, A, collect, &got, &e), FP_ERR_OK);
    assert_int_equal(got.n, 3);
    assert_int_equal(got.seqs[0], 5);
    assert_int_equal(got.seqs[1], 3);
    assert_true(got.forced[1]);
    assert_false(got.forced[0]);
    assert_int_equal(got.seqs[2], 6);
    memset(&got, 0, sizeof(got));
    assert_int_equal(fp_store_fw_sig_list(f->s, FP_PROJECT_DEFAULT, NULL, collect, &got, &e), FP_ERR_OK);
    assert_int_equal(got.n, 4);
    /* one audit row per recorded signature, none for the refusals */
    assert_int_equal(fp_store_audit_iter(f->s, count_fw, &audited, &e), FP_ERR_OK);
    assert_int_equal(audited, 4);
    /* bad input */
    r = mksig("no-such-project", A, 9, false);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_NOT_FOUND);
    r = mksig(FP_PROJECT_DEFAULT, A, 0, true);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_ARG);
    r = mksig(FP_PROJECT_DEFAULT, A, 9, false);
    snprintf(r.format, sizeof(r.format), "zip");
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_ARG);
    r = mksig("Bad Name", A, 9, false);
    assert_int_equal(fp_store_fw_sig_record(f->s, &r, &ev, NULL, &e), FP_ERR_ARG);
}
