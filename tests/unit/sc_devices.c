/* sc_devices.c - store conformance: the device registry's rows
 * (store_devices.h; see store_conformance.h). */
#define _GNU_SOURCE
#include "store_conformance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static fp_device_cert sc_link(const char *fpc, const char *serial, bool ours)
{
    static unsigned char der[3] = {0x30, 0x01, 0x00};
    fp_device_cert c;

    memset(&c, 0, sizeof(c));
    memset(c.fp, fpc[0], FP_DEVICE_FP_LEN - 1);
    c.fp[FP_DEVICE_FP_LEN - 1] = '\0';
    c.serial = serial;
    c.issuer = "CN=Vendor Root";
    c.subject = "CN=x";
    c.ours = ours;
    c.der = der;
    c.der_len = sizeof(der);
    return c;
}

static void reg(fp_store *s, const char *project, const char *name, int64_t now)
{
    fp_error e = {0};
    if (fp_store_device_register(s, project, name, now, NULL, NULL, NULL, NULL, &e) != FP_ERR_OK)
        fail_msg("register %s/%s: %s", project, name, e.msg);
}

typedef struct {
    char names[1024];
    int n;
} seen_names;

static int collect(void *arg, const fp_device_rec *r)
{
    seen_names *sn = arg;
    size_t l = strlen(sn->names);
    snprintf(sn->names + l, sizeof(sn->names) - l, "%s;", r->name);
    sn->n++;
    return 0;
}

static void list_names(fp_store *s, const fp_device_filter *f, const char *want)
{
    seen_names sn = {0};
    fp_error e = {0};
    if (fp_store_device_list(s, f, collect, &sn, &e) != FP_ERR_OK)
        fail_msg("list: %s", e.msg);
    assert_string_equal(sn.names, want);
}

static int collect_tags(void *arg, const fp_device_rec *r)
{
    seen_names *sn = arg;
    size_t l = strlen(sn->names);
    snprintf(sn->names + l, sizeof(sn->names) - l, "%s=%s;", r->name, r->tags);
    sn->n++;
    return 0;
}

static void list_tags(fp_store *s, const fp_device_filter *f, const char *want)
{
    seen_names sn = {0};
    fp_error e = {0};
    if (fp_store_device_list(s, f, collect_tags, &sn, &e) != FP_ERR_OK)
        fail_msg("list: %s", e.msg);
    assert_string_equal(sn.names, want);
}

void test_device_register_get(void **state)
{
    fx *f = *state;
    fp_device_rec d;
    fp_error e = {0};
    bool created = true, linked = true;
    fp_device_cert c = sc_link("a", "01", false);
    fp_audit_event ev = {"test", "device.register", "dev1", "", FP_PROJECT_DEFAULT};

    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "dev1", 100, &c, &ev,
                                              &d, &created, &e), FP_ERR_OK);
    assert_true(created);
    assert_string_equal(d.name, "dev1");
    assert_string_equal(d.project, FP_PROJECT_DEFAULT);
    assert_int_equal(d.state, FP_DEV_ACTIVE);
    assert_int_equal(d.first_seen, 100);
    assert_int_equal(d.last_seen, 100);
    assert_string_equal(d.tags, "{}");
    fp_device_rec_clear(&d);
    /* a second registration finds the row: not created, not audited again */
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "dev1", 200, &c, &ev,
                                              &d, &created, &e), FP_ERR_OK);
    assert_false(created);
    assert_int_equal(d.first_seen, 100);
    fp_device_rec_clear(&d);
    assert_int_equal(sc_audit_count(f->s, "device.register", "dev1", NULL), 1);
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "dev1", c.fp, &linked, &d,
                                         &e), FP_ERR_OK);
    assert_true(linked);
    fp_device_rec_clear(&d);
    /* a certificate not linked */
    fp_device_cert c2 = sc_link("b", "02", false);
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "dev1", c2.fp, &linked, &d,
                                         &e), FP_ERR_OK);
    assert_false(linked);
    fp_device_rec_clear(&d);
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "nope", NULL, NULL, &d, &e),
                     FP_ERR_NOT_FOUND);
    fp_device_rec_clear(&d);
    sc_assert_audit_ok(f->s, 1);
}

void test_device_refusals(void **state)
{
    fx *f = *state;
    fp_error e = {0};
    fp_device_cert c = sc_link("c", "03", false);
    char longname[FP_DEVICE_NAME_MAX + 1];

    memset(longname, 'x', FP_DEVICE_NAME_MAX);
    longname[FP_DEVICE_NAME_MAX] = '\0';
    assert_int_equal(fp_store_device_register(f->s, "ghost", "d", 1, NULL, NULL, NULL, NULL, &e),
                     FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_device_register(f->s, "Bad Name", "d", 1, NULL, NULL, NULL, NULL,
                                              &e), FP_ERR_ARG);
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "", 1, NULL, NULL, NULL,
                                              NULL, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, longname, 1, NULL, NULL,
                                              NULL, NULL, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "a\nb", 1, NULL, NULL,
                                              NULL, NULL, &e), FP_ERR_ARG);
    /* one certificate belongs to one device of a project */
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "d1", 1, &c, NULL, NULL,
                                              NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "d2", 1, &c, NULL, NULL,
                                              NULL, &e), FP_ERR_DUPLICATE);
    sc_assert_msg(&e, "d1");
    /* nothing of the refused call was kept (d2 is not there) */
    fp_device_rec d;
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "d2", NULL, NULL, &d, &e),
                     FP_ERR_NOT_FOUND);
    fp_device_rec_clear(&d);
    fp_device_filter bad = {FP_PROJECT_DEFAULT, -1, NULL, NULL, NULL, NULL, 0};
    seen_names sn = {0};
    assert_int_equal(fp_store_device_list(f->s, &bad, collect, &sn, &e), FP_ERR_ARG);
    bad.limit = 1001;
    assert_int_equal(fp_store_device_list(f->s, &bad, collect, &sn, &e), FP_ERR_ARG);
    bad.limit = 10;
    bad.state = 7;
    assert_int_equal(fp_store_device_list(f->s, &bad, collect, &sn, &e), FP_ERR_ARG);
    bad.state = -1;
    bad.tag_value = "v";
    assert_int_equal(fp_store_device_list(f->s, &bad, collect, &sn, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "d1", "", "v", NULL, &e),
                     FP_ERR_ARG);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "d1", "a=b", "v", NULL, &e),
                     FP_ERR_ARG);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "d1", "k", "v\x01", NULL, &e),
                     FP_ERR_ARG);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "ghost", "k", "v", NULL, &e),
                     FP_ERR_NOT_FOUND);
}

void test_device_scoped_by_project(void **state)
{
    fx *f = *state;
    fp_device_rec d;
    fp_error e = {0};
    fp_device_cert c = sc_link("d", "04", false);
    fp_device_filter fl = {"b", -1, NULL, NULL, NULL, NULL, 100};

    sc_project_put(f->s, "b");
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "same", 1, &c, NULL,
                                              NULL, NULL, &e), FP_ERR_OK);
    /* project b sees nothing of default's device */
    assert_int_equal(fp_store_device_get(f->s, "b", "same", NULL, NULL, &d, &e),
                     FP_ERR_NOT_FOUND);
    fp_device_rec_clear(&d);
    list_names(f->s, &fl, "");
    assert_int_equal(fp_store_device_set_state(f->s, "b", "same", 1u, FP_DEV_SUSPENDED, NULL, &e),
                     FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_device_tag(f->s, "b", "same", "k", "v", NULL, &e),
                     FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_device_certs(f->s, "b", "same", NULL, NULL, &e), FP_ERR_NOT_FOUND);
    /* the same name and even the same certificate are another device in b */
    assert_int_equal(fp_store_device_register(f->s, "b", "same", 5, &c, NULL, &d, NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(d.first_seen, 5);
    fp_device_rec_clear(&d);
    assert_int_equal(fp_store_device_set_state(f->s, "b", "same", 1u, FP_DEV_SUSPENDED, NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "same", NULL, NULL, &d, &e),
                     FP_ERR_OK);
    assert_int_equal(d.state, FP_DEV_ACTIVE);
    fp_device_rec_clear(&d);
}

void test_device_list_filters(void **state)
{
    fx *f = *state;
    fp_error e = {0};
    const char *names[] = {"cam-1", "cam-2", "cam-3", "door-1", "door-2", "z"};
    fp_device_filter fl = {FP_PROJECT_DEFAULT, -1, NULL, NULL, NULL, NULL, 100};

    sc_project_put(f->s, "b");
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        reg(f->s, FP_PROJECT_DEFAULT, names[i], 10);
    reg(f->s, "b", "cam-9", 10);
    list_names(f->s, &fl, "cam-1;cam-2;cam-3;door-1;door-2;z;");
    /* keyset pages */
    fl.limit = 2;
    list_names(f->s, &fl, "cam-1;cam-2;");
    fl.after = "cam-2";
    list_names(f->s, &fl, "cam-3;door-1;");
    fl.after = "door-1";
    list_names(f->s, &fl, "door-2;z;");
    fl.after = "z";
    list_names(f->s, &fl, "");
    fl.after = NULL;
    fl.limit = 100;
    /* prefix: exact, in byte order, '%' and '_' are no wildcards */
    fl.name_prefix = "cam-";
    list_names(f->s, &fl, "cam-1;cam-2;cam-3;");
    fl.name_prefix = "c%";
    list_names(f->s, &fl, "");
    fl.name_prefix = "door";
    fl.after = "door-1";
    list_names(f->s, &fl, "door-2;");
    fl.after = NULL;
    fl.name_prefix = NULL;
    /* state */
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "cam-2", 1u,
                                               FP_DEV_SUSPENDED, NULL, &e), FP_ERR_OK);
    fl.state = FP_DEV_SUSPENDED;
    list_names(f->s, &fl, "cam-2;");
    fl.state = FP_DEV_ACTIVE;
    list_names(f->s, &fl, "cam-1;cam-3;door-1;door-2;z;");
    fl.state = -1;
    /* tags */
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "cam-1", "site", "berlin",
                                         NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "door-2", "site", "paris",
                                         NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "door-2", "floor", "3",
                                         NULL, &e), FP_ERR_OK);
    fl.tag_key = "site";
    list_names(f->s, &fl, "cam-1;door-2;");
    fl.tag_value = "paris";
    list_names(f->s, &fl, "door-2;");
    fl.tag_value = "rome";
    list_names(f->s, &fl, "");
    fl.tag_key = fl.tag_value = NULL;
    fp_device_rec d;
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "door-2", NULL, NULL, &d, &e),
                     FP_ERR_OK);
    assert_string_equal(d.tags, "{\"floor\":\"3\",\"site\":\"paris\"}");
    fp_device_rec_clear(&d);
    /* delete */
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "door-2", "site", NULL, NULL,
                                         &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "door-2", NULL, NULL, &d, &e),
                     FP_ERR_OK);
    assert_string_equal(d.tags, "{\"floor\":\"3\"}");
    fp_device_rec_clear(&d);
    /* a list answers each device's tags as get does */
    fl.name_prefix = "door-2";
    list_tags(f->s, &fl, "door-2={\"floor\":\"3\"};");
    fl.name_prefix = NULL;
    /* the tag filters page by name with the cursor, and combine with the
     * state and the prefix (each served by a tag index in SQLite) */
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "cam-2", "site", "paris",
                                         NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "z", "site", "paris", NULL,
                                         &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "door-1", "site", "rome",
                                         NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, "b", "cam-9", "site", "paris", NULL, &e),
                     FP_ERR_OK);
    fl.tag_key = "site";
    fl.limit = 2;
    list_names(f->s, &fl, "cam-1;cam-2;");
    fl.after = "cam-2";
    list_names(f->s, &fl, "door-1;z;");
    fl.after = NULL;
    fl.tag_value = "paris";
    list_names(f->s, &fl, "cam-2;z;");
    fl.after = "cam-2";
    list_names(f->s, &fl, "z;");
    fl.after = NULL;
    fl.limit = 100;
    fl.state = FP_DEV_SUSPENDED;
    list_names(f->s, &fl, "cam-2;");
    fl.state = FP_DEV_ACTIVE;
    list_names(f->s, &fl, "z;");
    fl.tag_value = NULL;
    list_names(f->s, &fl, "cam-1;door-1;z;");
    fl.state = -1;
    fl.name_prefix = "cam";
    list_names(f->s, &fl, "cam-1;cam-2;");
    fl.tag_value = "paris";
    list_tags(f->s, &fl, "cam-2={\"site\":\"paris\"};");
}

/* The name prefix is exact in byte order at its upper edge too: the names
 * sorting right after the prefixed ones ("door.", '.' being '-' + 1;
 * "cam\xc3\xaa" after "cam\xc3\xa9") are not listed, with or without a tag
 * filter or a cursor, and a prefix no name can hold lists nothing.  (The
 * SQLite backend reads a prefix as the range [prefix, end), end being the
 * prefix with its last byte incremented.) */
void test_device_list_prefix_edges(void **state)
{
    fx *f = *state;
    fp_error e = {0};
    const char *names[] = {"door-1", "door-2", "door.", "door/x", "doos", "cam\xc3\xa9",
                           "cam\xc3\xa9ra-1", "cam\xc3\xaa", "cam"};
    fp_device_filter fl = {FP_PROJECT_DEFAULT, -1, NULL, NULL, NULL, NULL, 100};
    char longest[FP_DEVICE_NAME_MAX], toolong[FP_DEVICE_NAME_MAX + 1], want[FP_DEVICE_NAME_MAX + 1];

    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        reg(f->s, FP_PROJECT_DEFAULT, names[i], 10);
    memset(longest, 'x', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    reg(f->s, FP_PROJECT_DEFAULT, longest, 10);
    fl.name_prefix = "door-";
    list_names(f->s, &fl, "door-1;door-2;");
    fl.name_prefix = "door";
    list_names(f->s, &fl, "door-1;door-2;door.;door/x;");
    fl.name_prefix = "door.";
    list_names(f->s, &fl, "door.;");
    fl.name_prefix = "cam\xc3\xa9";
    list_names(f->s, &fl, "cam\xc3\xa9;cam\xc3\xa9ra-1;");
    fl.after = "cam\xc3\xa9";
    list_names(f->s, &fl, "cam\xc3\xa9ra-1;");
    fl.after = NULL;
    fl.name_prefix = "cam";
    fl.limit = 3;
    list_names(f->s, &fl, "cam;cam\xc3\xa9;cam\xc3\xa9ra-1;");
    fl.limit = 100;
    /* with a tag filter (another statement in SQLite) */
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "door-2", "k", "v", NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "door.", "k", "v", NULL, &e),
                     FP_ERR_OK);
    fl.tag_key = "k";
    fl.name_prefix = "door-";
    list_names(f->s, &fl, "door-2;");
    fl.tag_value = "v";
    list_names(f->s, &fl, "door-2;");
    fl.tag_key = fl.tag_value = NULL;
    /* the longest name is found by itself as prefix; one byte more, nothing */
    fl.name_prefix = longest;
    snprintf(want, sizeof(want), "%s;", longest);
    list_names(f->s, &fl, want);
    memset(toolong, 'x', sizeof(toolong) - 1);
    toolong[sizeof(toolong) - 1] = '\0';
    fl.name_prefix = toolong;
    list_names(f->s, &fl, "");
}

void test_device_state_and_touch(void **state)
{
    fx *f = *state;
    fp_device_rec d;
    fp_error e = {0};
    fp_audit_event ev = {"test", "device.state", "d", "", FP_PROJECT_DEFAULT};
    const char *projects[] = {FP_PROJECT_DEFAULT, FP_PROJECT_DEFAULT, "b"};
    const char *names[] = {"d", "ghost", "d"};
    int64_t seen[] = {50, 60, 70};

    sc_project_put(f->s, "b");
    reg(f->s, FP_PROJECT_DEFAULT, "d", 10);
    reg(f->s, "b", "d", 10);
    /* only from the states in the mask; the refusal names the state */
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "d",
                                               1u << FP_DEV_SUSPENDED, FP_DEV_ACTIVE, &ev, &e),
                     FP_ERR_STATE);
    sc_assert_msg(&e, "active");
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "d",
                                               1u << FP_DEV_ACTIVE, FP_DEV_DECOMMISSIONED, &ev,
                                               &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "d",
                                               1u << FP_DEV_ACTIVE, FP_DEV_SUSPENDED, &ev, &e),
                     FP_ERR_STATE);
    sc_assert_msg(&e, "decommissioned");
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "d", 7u, 9, &ev, &e),
                     FP_ERR_ARG);
    assert_int_equal(sc_audit_count(f->s, "device.state", NULL, NULL), 1);
    /* touch: forward only, absent devices skipped, per project */
    assert_int_equal(fp_store_device_touch(f->s, projects, names, seen, 3, &e), FP_ERR_OK);
    seen[0] = 20; /* older: ignored */
    assert_int_equal(fp_store_device_touch(f->s, projects, names, seen, 1, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "d", NULL, NULL, &d, &e),
                     FP_ERR_OK);
    assert_int_equal(d.last_seen, 50);
    assert_int_equal(d.first_seen, 10);
    assert_int_equal(d.state, FP_DEV_DECOMMISSIONED);
    fp_device_rec_clear(&d);
    assert_int_equal(fp_store_device_get(f->s, "b", "d", NULL, NULL, &d, &e), FP_ERR_OK);
    assert_int_equal(d.last_seen, 70);
    assert_int_equal(d.state, FP_DEV_ACTIVE);
    fp_device_rec_clear(&d);
}

typedef struct {
    char serials[256];
    int ours;
} certs_seen;

static int collect_cert(void *arg, const fp_device_cert *c)
{
    certs_seen *cs = arg;
    size_t l = strlen(cs->serials);
    snprintf(cs->serials + l, sizeof(cs->serials) - l, "%s;", c->serial);
    cs->ours += c->ours;
    assert_int_equal(c->der_len, 3);
    assert_string_equal(c->issuer, "CN=Vendor Root");
    return 0;
}

void test_device_certs_and_naming(void **state)
{
    fx *f = *state;
    fp_error e = {0};
    fp_device_cert c1 = sc_link("e", "0A", false), c2 = sc_link("f", "0B", true);
    certs_seen cs = {0};
    int rule = -1;

    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "d", 1, &c1, NULL, NULL,
                                              NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "d", 2, &c2, NULL, NULL,
                                              NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_register(f->s, FP_PROJECT_DEFAULT, "d", 3, &c1, NULL, NULL,
                                              NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_certs(f->s, FP_PROJECT_DEFAULT, "d", collect_cert, &cs, &e),
                     FP_ERR_OK);
    assert_string_equal(cs.serials, "0A;0B;");
    assert_int_equal(cs.ours, 1);
    /* naming rule per project, default cn */
    sc_project_put(f->s, "b");
    assert_int_equal(fp_store_device_naming_get(f->s, "b", &rule, &e), FP_ERR_OK);
    assert_int_equal(rule, FP_DEVNAME_CN);
    fp_audit_event ev = {"test", "device.naming", "b", "", "b"};
    assert_int_equal(fp_store_device_naming_set(f->s, "b", FP_DEVNAME_SAN_URI, &ev, &e),
                     FP_ERR_OK);
    assert_int_equal(fp_store_device_naming_get(f->s, "b", &rule, &e), FP_ERR_OK);
    assert_int_equal(rule, FP_DEVNAME_SAN_URI);
    assert_int_equal(fp_store_device_naming_get(f->s, FP_PROJECT_DEFAULT, &rule, &e), FP_ERR_OK);
    assert_int_equal(rule, FP_DEVNAME_CN);
    assert_int_equal(fp_store_device_naming_set(f->s, "b", 9, &ev, &e), FP_ERR_ARG);
    assert_int_equal(fp_store_device_naming_set(f->s, "ghost", 1, &ev, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_store_device_naming_get(f->s, "ghost", &rule, &e), FP_ERR_NOT_FOUND);
    assert_int_equal(fp_devname_rule_from_name("san-dns"), FP_DEVNAME_SAN_DNS);
    assert_int_equal(fp_devname_rule_from_name("CN"), -1);
    assert_string_equal(fp_devname_rule_name(FP_DEVNAME_SERIALNUMBER), "serialnumber");
}

typedef struct {
    char text[512];
    int64_t last;
    int n;
} dev_changes;

static int dev_change_cb(void *arg, int64_t seq, const char *project, const char *name,
                         int state)
{
    dev_changes *c = arg;
    char one[128];

    assert_true(seq > c->last);
    c->last = seq;
    c->n++;
    snprintf(one, sizeof(one), "%s/%s=%d;", project, name, state);
    strcat(c->text, one);
    return FP_ERR_OK;
}

/* Registrations and state changes are logged in their transaction, in
 * order; a refused transition, a second registration of the same name and
 * a tag are not changes. */
void test_device_changes(void **state)
{
    fx *f = *state;
    int64_t seq0 = -1, seq1 = -1;
    dev_changes c;
    fp_error e = {0};

    sc_project_put(f->s, "b");
    assert_int_equal(fp_store_device_seq(f->s, &seq0, &e), FP_ERR_OK);
    assert_true(seq0 >= 0);
    reg(f->s, FP_PROJECT_DEFAULT, "d1", 10);
    reg(f->s, FP_PROJECT_DEFAULT, "d1", 11); /* known: no change */
    reg(f->s, "b", "d1", 12);
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "d1",
                                               1u << FP_DEV_ACTIVE, FP_DEV_SUSPENDED, NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "d1",
                                               1u << FP_DEV_ACTIVE, FP_DEV_SUSPENDED, NULL, &e),
                     FP_ERR_STATE);
    assert_int_equal(fp_store_device_tag(f->s, "b", "d1", "k", "v", NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "d1",
                                               1u << FP_DEV_SUSPENDED, FP_DEV_DECOMMISSIONED,
                                               NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(fp_store_device_seq(f->s, &seq1, &e), FP_ERR_OK);
    assert_true(seq1 >= seq0 + 4);
    memset(&c, 0, sizeof(c));
    c.last = seq0;
    assert_int_equal(fp_store_device_changes(f->s, seq0, 100, dev_change_cb, &c, &e), FP_ERR_OK);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.text, "default/d1=0;b/d1=0;default/d1=1;default/d1=2;");
    assert_int_equal(c.last, seq1);
    /* at most max, oldest first */
    memset(&c, 0, sizeof(c));
    c.last = seq0;
    assert_int_equal(fp_store_device_changes(f->s, seq0, 1, dev_change_cb, &c, &e), FP_ERR_OK);
    assert_string_equal(c.text, "default/d1=0;");
    memset(&c, 0, sizeof(c));
    c.last = seq1;
    assert_int_equal(fp_store_device_changes(f->s, seq1, 100, dev_change_cb, &c, &e), FP_ERR_OK);
    assert_int_equal(c.n, 0);
}

/* Each device a list page gives must equal what a plain read of it says
 * (state, first_seen, last_seen, tags), whichever statement served the
 * page; its names are appended to names. */
typedef struct {
    fp_store *s;
    char names[512];
} page_check;

static int check_against_get(void *arg, const fp_device_rec *r)
{
    page_check *pc = arg;
    fp_device_rec d;
    fp_error e = {0};
    size_t l = strlen(pc->names);

    if (fp_store_device_get(pc->s, r->project, r->name, NULL, NULL, &d, &e) != FP_ERR_OK)
        fail_msg("get %s: %s", r->name, e.msg);
    if (r->state != d.state || r->first_seen != d.first_seen || r->last_seen != d.last_seen ||
        strcmp(r->tags, d.tags) != 0)
        fail_msg("the page says %s is state %d, seen %lld..%lld, tags %s; a read says state %d,"
                 " seen %lld..%lld, tags %s",
                 r->name, r->state, (long long)r->first_seen, (long long)r->last_seen, r->tags,
                 d.state, (long long)d.first_seen, (long long)d.last_seen, d.tags);
    snprintf(pc->names + l, sizeof(pc->names) - l, "%s;", r->name);
    fp_device_rec_clear(&d);
    return 0;
}

static void page(fp_store *s, const fp_device_filter *f, const char *want)
{
    page_check pc = {s, ""};
    fp_error e = {0};
    if (fp_store_device_list(s, f, check_against_get, &pc, &e) != FP_ERR_OK)
        fail_msg("list: %s", e.msg);
    assert_string_equal(pc.names, want);
}

/* A tag-filtered page says what a plain read of each device says, after
 * every kind of change of a tagged device: its state (suspend,
 * decommission), its last_seen (the batched last-seen path), its tags
 * (set, change, delete; a tag added to a device that is not new), and
 * across keyset pages with a prefix while devices change between pages.
 * (SQLite answers a tag page from copies of the device columns kept in
 * device_tags by triggers, sqlite_migrate.c; a check here fails when the
 * trigger a change relies on, or the column it changes, is left out.
 * first_seen, which no store function changes, is checked in
 * test_store_sqlite.c.) */
void test_device_tag_page_follows_device(void **state)
{
    fx *f = *state;
    fp_error e = {0};
    fp_device_filter kv = {FP_PROJECT_DEFAULT, -1, "site", "p", NULL, NULL, 100};
    fp_device_filter key = {FP_PROJECT_DEFAULT, -1, "site", NULL, NULL, NULL, 100};
    const char *names[] = {"cam-1", "cam-2", "cam-3", "door-1"};
    const char *tp[] = {FP_PROJECT_DEFAULT, FP_PROJECT_DEFAULT, FP_PROJECT_DEFAULT};
    const char *tn[] = {"cam-2", "door-1", "cam-3"};
    int64_t seen[] = {500, 600, 5};

    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        reg(f->s, FP_PROJECT_DEFAULT, names[i], 10 + (int64_t)i);
    reg(f->s, FP_PROJECT_DEFAULT, "cam-0", 9); /* never tagged */
    /* a device suspended and seen before it gets its first tag: the new
     * tag row takes the device's columns as they are */
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "door-1", 1u,
                                               FP_DEV_SUSPENDED, NULL, &e), FP_ERR_OK);
    seen[0] = 400;
    assert_int_equal(fp_store_device_touch(f->s, &tp[1], &tn[1], &seen[0], 1, &e), FP_ERR_OK);
    seen[0] = 500;
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, names[i], "site", "p",
                                             NULL, &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "cam-2", "model", "m1", NULL,
                                         &e), FP_ERR_OK);
    page(f->s, &kv, "cam-1;cam-2;cam-3;door-1;");
    page(f->s, &key, "cam-1;cam-2;cam-3;door-1;");
    kv.state = key.state = FP_DEV_SUSPENDED;
    page(f->s, &kv, "door-1;");
    page(f->s, &key, "door-1;");
    kv.state = key.state = -1;

    /* state */
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "cam-2", 1u,
                                               FP_DEV_SUSPENDED, NULL, &e), FP_ERR_OK);
    page(f->s, &kv, "cam-1;cam-2;cam-3;door-1;");
    page(f->s, &key, "cam-1;cam-2;cam-3;door-1;");
    kv.state = key.state = FP_DEV_SUSPENDED;
    page(f->s, &kv, "cam-2;door-1;");
    page(f->s, &key, "cam-2;door-1;");
    kv.state = key.state = FP_DEV_ACTIVE;
    page(f->s, &kv, "cam-1;cam-3;");
    page(f->s, &key, "cam-1;cam-3;");
    kv.state = key.state = -1;

    /* last_seen through the batched path (cam-3's older time is ignored) */
    assert_int_equal(fp_store_device_touch(f->s, tp, tn, seen, 3, &e), FP_ERR_OK);
    page(f->s, &kv, "cam-1;cam-2;cam-3;door-1;");
    page(f->s, &key, "cam-1;cam-2;cam-3;door-1;");

    /* tags: another key changed, deleted; the filtered value changed */
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "cam-2", "model", "m2", NULL,
                                         &e), FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "cam-1", "floor", "3", NULL,
                                         &e), FP_ERR_OK);
    page(f->s, &kv, "cam-1;cam-2;cam-3;door-1;");
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "cam-1", "floor", NULL, NULL,
                                         &e), FP_ERR_OK);
    page(f->s, &kv, "cam-1;cam-2;cam-3;door-1;");
    page(f->s, &key, "cam-1;cam-2;cam-3;door-1;");
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "cam-3", "site", "q", NULL,
                                         &e), FP_ERR_OK);
    page(f->s, &kv, "cam-1;cam-2;door-1;");
    page(f->s, &key, "cam-1;cam-2;cam-3;door-1;");
    /* a tag set again to the value it has: the tags do not change, the
     * row may still be written anew (SQLite: INSERT OR REPLACE) */
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "door-1", "site", "p", NULL,
                                         &e), FP_ERR_OK);
    page(f->s, &kv, "cam-1;cam-2;door-1;");
    page(f->s, &key, "cam-1;cam-2;cam-3;door-1;");
    kv.tag_value = "q";
    page(f->s, &kv, "cam-3;");
    kv.tag_value = "p";

    /* decommission */
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "cam-1", 3u,
                                               FP_DEV_DECOMMISSIONED, NULL, &e), FP_ERR_OK);
    page(f->s, &kv, "cam-1;cam-2;door-1;");
    kv.state = FP_DEV_DECOMMISSIONED;
    page(f->s, &kv, "cam-1;");
    kv.state = -1;

    /* keyset pages of one under a prefix, the devices changing between
     * pages: each page says what the device is when that page is read */
    kv.name_prefix = key.name_prefix = "cam-";
    kv.limit = key.limit = 1;
    page(f->s, &kv, "cam-1;");
    assert_int_equal(fp_store_device_set_state(f->s, FP_PROJECT_DEFAULT, "cam-2", 2u,
                                               FP_DEV_ACTIVE, NULL, &e), FP_ERR_OK);
    kv.after = key.after = "cam-1";
    page(f->s, &kv, "cam-2;");
    page(f->s, &key, "cam-2;");
    seen[0] = 700;
    assert_int_equal(fp_store_device_touch(f->s, &tp[2], &tn[2], &seen[0], 1, &e), FP_ERR_OK);
    kv.after = key.after = "cam-2";
    page(f->s, &kv, ""); /* cam-3 has site=q now; door-1 is past the prefix */
    page(f->s, &key, "cam-3;");
    kv.after = key.after = "cam-3";
    page(f->s, &key, "");
    kv.limit = key.limit = 100;
    kv.after = key.after = NULL;
    page(f->s, &kv, "cam-1;cam-2;");
    page(f->s, &key, "cam-1;cam-2;cam-3;");
}

/* A device holds at most FP_DEVICE_TAGS_MAX tags: one more key is refused
 * with nothing changed; a new value of a key it has, or a key after one
 * was deleted, is still taken. */
void test_device_tags_bounded(void **state)
{
    fx *f = *state;
    fp_error e = {0};
    fp_device_rec r;
    char key[16], *before;

    reg(f->s, FP_PROJECT_DEFAULT, "many", 10);
    for (int i = 0; i < FP_DEVICE_TAGS_MAX; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "many", key, "v", NULL,
                                             &e), FP_ERR_OK);
    }
    memset(&r, 0, sizeof(r));
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "many", NULL, NULL, &r, &e),
                     FP_ERR_OK);
    before = strdup(r.tags);
    assert_non_null(before);
    fp_device_rec_clear(&r);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "many", "one-more", "v", NULL,
                                         &e), FP_ERR_STATE);
    assert_non_null(strstr(e.msg, "at most"));
    memset(&r, 0, sizeof(r));
    assert_int_equal(fp_store_device_get(f->s, FP_PROJECT_DEFAULT, "many", NULL, NULL, &r, &e),
                     FP_ERR_OK);
    assert_string_equal(r.tags, before); /* rolled back */
    fp_device_rec_clear(&r);
    free(before);
    list_names(f->s, &(fp_device_filter){FP_PROJECT_DEFAULT, -1, "one-more", NULL, NULL, NULL, 10},
               "");
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "many", "k00", "w", NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "many", "k01", NULL, NULL, &e),
                     FP_ERR_OK);
    assert_int_equal(fp_store_device_tag(f->s, FP_PROJECT_DEFAULT, "many", "one-more", "v", NULL,
                                         &e), FP_ERR_OK);
    list_names(f->s, &(fp_device_filter){FP_PROJECT_DEFAULT, -1, "one-more", NULL, NULL, NULL, 10},
               "many;");
}
