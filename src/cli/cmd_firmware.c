/* cmd_firmware.c - `fleetpki firmware ...`: the project's code-signing
 * PKI, signing firmware images (SUIT or CMS) and checking signatures
 * (docs/firmware.md).  Thin: parse, call src/firmware/, print. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "../common/util.h"
#include "../firmware/fw_ca.h"
#include "../firmware/fw_cms.h"
#include "../firmware/fw_sign.h"
#include "../x509/x509util.h"
#include "cli.h"
#include "fleetpki/firmware.h"

static const char fw_help[] =
    "usage: fleetpki firmware ca create --project P\n"
    "       fleetpki firmware anchor --project P [--out FILE]\n"
    "       fleetpki firmware signer create --project P [--days N] [--replace]\n"
    "       fleetpki firmware sign --project P --image FILE --version V --sequence N\n"
    "                              --vendor-id UUID --class-id UUID [--format suit|cms]\n"
    "                              --out FILE [--force]\n"
    "       fleetpki firmware verify --project P --image FILE --signature FILE\n"
    "                              [--format suit|cms] [--vendor-id UUID --class-id UUID]\n"
    "                              [--anchor PEM] [--crl PEM] [--min-sequence N]\n"
    "       fleetpki firmware list --project P [--class-id UUID]\n"
    "  (each also takes --dir DIR, --passphrase-file FILE, --json)\n"
    "\n'ca create' makes the project's firmware root (the devices' FIRMWARE trust\n"
    "anchor, separate from the TLS root) and a signing CA under it; 'anchor'\n"
    "prints that root.  'signer create' issues the signer's code-signing\n"
    "certificate (KU digitalSignature, EKU codeSigning) from that CA.  'sign'\n"
    "writes a SUIT envelope (COSE_Sign1 ES256, x5chain) or a detached CMS\n"
    "SignedData; every signature is recorded and audited.  Sequence numbers go\n"
    "up per project and class: a lower or equal one is refused unless --force\n"
    "(audited as firmware.sign.forced).  'verify' runs the device's checks\n"
    "(libfleetpki-device) on a SUIT envelope, or checks a CMS signature.\n";

typedef struct {
    const char *project, *image, *out, *version, *vendor, *cls, *format, *sig, *anchor, *crl;
    long long sequence, min_sequence;
    int days;
    bool force, replace;
} fw_opts;

static int parse_ll(const char *s, long long min, long long *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(cli_env *env, int argc, char **argv, fw_opts *o)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTS,
        {"project", required_argument, NULL, 'p'},
        {"image", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},
        {"version", required_argument, NULL, 'V'},
        {"sequence", required_argument, NULL, 's'},
        {"vendor-id", required_argument, NULL, 'v'},
        {"class-id", required_argument, NULL, 'c'},
        {"format", required_argument, NULL, 'f'},
        {"signature", required_argument, NULL, 'S'},
        {"anchor", required_argument, NULL, 'a'},
        {"crl", required_argument, NULL, 'C'},
        {"min-sequence", required_argument, NULL, 'm'},
        {"days", required_argument, NULL, 'D'},
        {"force", no_argument, NULL, 'F'},
        {"replace", no_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    int c;
    long long v;

    optind = 1;
    while ((c = getopt_long(argc, argv, "d:P:hj", opts, NULL)) != -1) {
        if (cli_common_opt(env, c, optarg))
            continue;
        switch (c) {
        case 'p': o->project = optarg; break;
        case 'i': o->image = optarg; break;
        case 'o': o->out = optarg; break;
        case 'V': o->version = optarg; break;
        case 'v': o->vendor = optarg; break;
        case 'c': o->cls = optarg; break;
        case 'f': o->format = optarg; break;
        case 'S': o->sig = optarg; break;
        case 'a': o->anchor = optarg; break;
        case 'C': o->crl = optarg; break;
        case 'F': o->force = true; break;
        case 'R': o->replace = true; break;
        case 's':
            if (parse_ll(optarg, 1, &o->sequence) != 0)
                return cli_usage_error("firmware", "--sequence must be an integer >= 1");
            break;
        case 'm':
            if (parse_ll(optarg, 0, &o->min_sequence) != 0)
                return cli_usage_error("firmware", "--min-sequence must be an integer >= 0");
            break;
        case 'D':
            if (parse_ll(optarg, 1, &v) != 0 || v > 3650)
                return cli_usage_error("firmware", "--days must be 1..3650");
            o->days = (int)v;
            break;
        case 'h':
            fputs(fw_help, stdout);
            return EXIT_OK;
        default:
            return cli_usage_error("firmware", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("firmware", "unexpected argument '%s'", argv[optind]);
    if (o->project == NULL)
        return cli_usage_error("firmware", "--project is required");
    if (o->format != NULL && strcmp(o->format, "suit") && strcmp(o->format, "cms"))
        return cli_usage_error("firmware", "--format must be suit or cms");
    return -1;
}

static int admin_open(cli_env *env, fp_admin *a, fp_error *err)
{
    int rc;
    if ((rc = cli_open_store(env, err)) != FP_ERR_OK ||
        (rc = cli_load_passphrase(env, err)) != FP_ERR_OK)
        return rc;
    *a = (fp_admin){&env->cfg, env->store, env->pass, env->passlen, cli_actor()};
    return FP_ERR_OK;
}

static int do_sign(cli_env *env, const fw_opts *o, fp_error *err)
{
    fp_fw_sign_req r = {.project = o->project, .image_path = o->image, .out_path = o->out,
                        .version = o->version, .vendor_id = o->vendor, .class_id = o->cls,
                        .format = o->format, .sequence = o->sequence, .force = o->force,
                        .actor = cli_actor()};
    fp_fw_sig_rec rec;
    int rc;

    if ((rc = cli_open_store(env, err)) != FP_ERR_OK ||
        (rc = cli_load_passphrase(env, err)) != FP_ERR_OK ||
        (rc = fp_fw_sign(&env->cfg, env->store, env->pass, env->passlen, &r, &rec, err)) !=
            FP_ERR_OK)
        return rc;
    if (env->json) {
        json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:b}", "id",
                              (json_int_t)rec.id, "format", rec.format, "vendor_id", rec.vendor_id,
                              "class_id", rec.class_id, "sequence", (json_int_t)rec.sequence,
                              "version", rec.version, "sha256", rec.image_sha256, "size",
                              (json_int_t)rec.image_size, "signer_serial", rec.signer_serial,
                              "forced", rec.forced);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("signed %s (%s) sequence %" PRId64 " version %s sha256 %s -> %s%s\n", o->image,
               rec.format, rec.sequence, rec.version, rec.image_sha256, o->out,
               rec.forced ? " (forced)" : "");
    }
    return FP_ERR_OK;
}

static char *slurp(const char *path, size_t *len, fp_error *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL) {
        fp_err_set(err, FP_ERR_IO, "cannot read %s", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n <= 16 * 1024 * 1024 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = '\0';
    } else {
        fp_err_set(err, FP_ERR_TOO_LARGE, "%s: unreadable or over 16 MiB", path);
    }
    fclose(f);
    return buf;
}

static int read_image(void *arg, void *buf, size_t len, size_t *got)
{
    *got = fread(buf, 1, len, (FILE *)arg);
    return ferror((FILE *)arg) ? -1 : 0;
}

static STACK_OF(X509_CRL) *crls_from(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509_CRL) *sk = sk_X509_CRL_new_null();
    X509_CRL *c;
    while (b != NULL && sk != NULL && (c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_CRL_push(sk, c))
            X509_CRL_free(c);
    BIO_free(b);
    return sk;
}

/* exit code: EXIT_OK, EXIT_REFUSED (a verification refusal), or a failure */
static int do_verify(cli_env *env, const fw_opts *o, fp_error *err)
{
    X509 *anchor = NULL;
    char *anchor_pem = NULL, *sig = NULL, *crl = NULL, msg[512] = "";
    size_t anchor_len = 0, sig_len = 0, crl_len = 0;
    FILE *img = NULL;
    int rc = EXIT_FAIL, r;

    if (o->image == NULL || o->sig == NULL) {
        rc = cli_usage_error("firmware", "verify needs --image and --signature");
        goto out;
    }
    if (o->anchor != NULL) {
        if ((anchor_pem = slurp(o->anchor, &anchor_len, err)) == NULL ||
            fp_cert_read(o->anchor, &anchor, err) != FP_ERR_OK)
            goto fail;
    } else if (cli_open_store(env, err) != FP_ERR_OK ||
               fp_fw_anchor(env->store, o->project, &anchor, err) != FP_ERR_OK ||
               fp_cert_to_pem(anchor, &anchor_pem, &anchor_len, err) != FP_ERR_OK) {
        goto fail;
    }
    if ((sig = slurp(o->sig, &sig_len, err)) == NULL ||
        (o->crl != NULL && (crl = slurp(o->crl, &crl_len, err)) == NULL))
        goto fail;
    if (o->format != NULL && !strcmp(o->format, "cms")) {
        STACK_OF(X509_CRL) *crls = crl != NULL ? crls_from(crl, crl_len) : NULL;
        r = fp_fw_cms_verify((unsigned char *)sig, sig_len, o->image, anchor, crls, err);
        sk_X509_CRL_pop_free(crls, X509_CRL_free);
        if (r != FP_ERR_OK) {
            fprintf(stderr, "fleetpki: firmware verify: refused: %s\n", err->msg);
            rc = EXIT_REFUSED;
            goto out;
        }
        printf("ok: CMS signature by a code-signing certificate under the firmware anchor\n");
        rc = EXIT_OK;
        goto out;
    }
    {
        fp_fw_policy p;
        fp_fw_info info;
        memset(&p, 0, sizeof(p));
        if (o->vendor == NULL || o->cls == NULL) {
            rc = cli_usage_error("firmware", "SUIT verification needs --vendor-id and --class-id");
            goto out;
        }
        if (fp_fw_uuid_parse(o->vendor, p.vendor_id, err) != FP_ERR_OK ||
            fp_fw_uuid_parse(o->cls, p.class_id, err) != FP_ERR_OK)
            goto fail;
        p.anchors_pem = anchor_pem;
        p.anchors_len = anchor_len;
        p.crl_pem = crl;
        p.crl_len = crl_len;
        p.now = fp_now();
        p.min_sequence = (uint64_t)o->min_sequence;
        if ((img = fopen(o->image, "rb")) == NULL) {
            fp_err_set(err, FP_ERR_IO, "cannot read %s", o->image);
            goto fail;
        }
        /* the device's own code (libfleetpki-device), not a second verifier */
        r = fp_dev_firmware_verify(&p, (unsigned char *)sig, sig_len, read_image, img, &info, msg,
                                   sizeof(msg));
        if (r != FP_FW_ERR_OK) {
            fprintf(stderr, "fleetpki: firmware verify: refused: %s\n", msg);
            rc = EXIT_REFUSED;
            goto out;
        }
        printf("ok: sequence %" PRIu64 " version %s size %" PRIu64 "\n", info.sequence,
               info.version, info.image_size);
        rc = EXIT_OK;
        goto out;
    }
fail:
    rc = cli_fail(err);
out:
    if (img != NULL)
        fclose(img);
    X509_free(anchor);
    free(anchor_pem);
    free(sig);
    free(crl);
    return rc;
}

static int print_sig(void *arg, const fp_fw_sig_rec *r)
{
    json_t *arr = arg;
    if (arr != NULL)
        return json_array_append_new(
                   arr, json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:b, s:I}", "id",
                                  (json_int_t)r->id, "vendor_id", r->vendor_id, "class_id",
                                  r->class_id, "sequence", (json_int_t)r->sequence, "version",
                                  r->version, "format", r->format, "sha256", r->image_sha256,
                                  "size", (json_int_t)r->image_size, "signer_serial",
                                  r->signer_serial, "actor", r->actor, "forced", r->forced,
                                  "created_at", (json_int_t)r->created_at)) == 0
                   ? FP_ERR_OK
                   : FP_ERR_NOMEM;
    printf("%" PRId64 "\t%s\t%" PRId64 "\t%s\t%s\t%s\t%s%s\n", r->id, r->class_id, r->sequence,
           r->version, r->format, r->image_sha256, r->actor, r->forced ? "\tforced" : "");
    return FP_ERR_OK;
}

int cmd_firmware(int argc, char **argv)
{
    cli_env env = {0};
    fp_error err = {0};
    fw_opts o = {0};
    fp_admin a;
    const char *sub;
    int skip = 1, rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(fw_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    sub = argv[1];
    if (!strcmp(sub, "ca") || !strcmp(sub, "signer")) {
        if (argc < 3 || strcmp(argv[2], "create") != 0)
            return cli_usage_error("firmware", "expected 'firmware %s create'", sub);
        skip = 2;
    } else if (strcmp(sub, "sign") && strcmp(sub, "verify") && strcmp(sub, "anchor") &&
               strcmp(sub, "list")) {
        return cli_usage_error("firmware", "unknown subcommand '%s'", sub);
    }
    if ((rc = parse_opts(&env, argc - skip, argv + skip, &o)) >= 0)
        return rc;
    rc = EXIT_OK;
    if (!strcmp(sub, "ca")) {
        if (admin_open(&env, &a, &err) != FP_ERR_OK || fp_fw_ca_create(&a, o.project, &err) != FP_ERR_OK)
            rc = cli_fail(&err);
        else
            printf("firmware CA of project %s created: %s-fw-root (anchor), %s-fw-ca\n", o.project,
                   o.project, o.project);
    } else if (!strcmp(sub, "signer")) {
        char serial[80] = "";
        if (admin_open(&env, &a, &err) != FP_ERR_OK || cli_open_ca(&env, &err) != FP_ERR_OK ||
            fp_fw_signer_create(&a, env.issuer, o.project, o.days, o.replace, serial, &err) !=
                FP_ERR_OK)
            rc = cli_fail(&err);
        else
            printf("firmware signer of project %s: certificate %s\n", o.project, serial);
    } else if (!strcmp(sub, "anchor")) {
        X509 *x = NULL;
        char *pem = NULL;
        size_t len = 0;
        if (cli_open_store(&env, &err) != FP_ERR_OK ||
            fp_fw_anchor(env.store, o.project, &x, &err) != FP_ERR_OK ||
            fp_cert_to_pem(x, &pem, &len, &err) != FP_ERR_OK ||
            (o.out != NULL ? fp_file_replace(o.out, pem, len, 0644, &err) != FP_ERR_OK
                           : fwrite(pem, 1, len, stdout) != len))
            rc = cli_fail(&err);
        free(pem);
        X509_free(x);
    } else if (!strcmp(sub, "sign")) {
        if (o.image == NULL || o.out == NULL || o.version == NULL || o.sequence < 1 ||
            o.vendor == NULL || o.cls == NULL)
            rc = cli_usage_error("firmware", "sign needs --image, --version, --sequence, "
                                             "--vendor-id, --class-id and --out");
        else if (do_sign(&env, &o, &err) != FP_ERR_OK)
            rc = cli_fail(&err);
    } else if (!strcmp(sub, "verify")) {
        rc = do_verify(&env, &o, &err);
    } else {
        json_t *arr = env.json ? json_array() : NULL;
        char cls[FP_FW_UUID_MAX] = "";
        unsigned char u[16];
        if (o.cls != NULL) {
            if (fp_fw_uuid_parse(o.cls, u, &err) != FP_ERR_OK) {
                json_decref(arr);
                return cli_usage_error("firmware", "--class-id: %s", err.msg);
            }
            /* the store keeps the lowercase form */
            for (size_t i = 0; o.cls[i] && i < sizeof(cls) - 1; i++)
                cls[i] = (char)(o.cls[i] >= 'A' && o.cls[i] <= 'F' ? o.cls[i] + 32 : o.cls[i]);
        }
        if (cli_open_store(&env, &err) != FP_ERR_OK ||
            fp_store_fw_sig_list(env.store, o.project, o.cls ? cls : NULL, print_sig, arr, &err) !=
                FP_ERR_OK)
            rc = cli_fail(&err);
        else if (arr != NULL) {
            json_dumpf(arr, stdout, JSON_INDENT(2));
            putchar('\n');
        }
        json_decref(arr);
    }
    cli_env_close(&env);
    return rc;
}
