/* test_mqtt.c - the Mosquitto plugin's pure parts: topic filters (MQTT
 * 3.1.1 / 5.0 section 4.7), its option table and its hash map.  The
 * broker-facing parts run in tests/integration/test_mqtt_*.sh. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mq.h"

static void test_topic_matches(void **state)
{
    (void)state;
    assert_true(mq_topic_matches("devices/d1/#", "devices/d1/temp"));
    assert_true(mq_topic_matches("devices/d1/#", "devices/d1/a/b/c"));
    assert_true(mq_topic_matches("devices/d1/#", "devices/d1")); /* '#' takes the parent */
    assert_true(mq_topic_matches("devices/d1/#", "devices/d1/"));
    assert_true(mq_topic_matches("devices/+/temp", "devices/d9/temp"));
    assert_true(mq_topic_matches("a/b", "a/b"));
    assert_false(mq_topic_matches("devices/d1/#", "devices/d2/temp"));
    assert_false(mq_topic_matches("devices/d1/#", "devices/d10/temp"));
    assert_false(mq_topic_matches("devices/d1/#", "devices/d"));
    assert_false(mq_topic_matches("devices/d1/#", "devices"));
    assert_false(mq_topic_matches("devices/d1/#", "$SYS/broker"));
    assert_false(mq_topic_matches("#", "$SYS/broker")); /* 4.7.2 */
    assert_false(mq_topic_matches("+/broker", "$SYS/broker"));
    assert_false(mq_topic_matches("a/b", "a/b/c"));
    assert_false(mq_topic_matches("a/b/c", "a/b"));
    assert_false(mq_topic_matches("devices/+/temp", "devices/d9/x/temp"));
}

static void test_filter_within(void **state)
{
    (void)state;
    assert_true(mq_filter_within("devices/d1/#", "devices/d1/#"));
    assert_true(mq_filter_within("devices/d1/#", "devices/d1"));
    assert_true(mq_filter_within("devices/d1/#", "devices/d1/+/x"));
    assert_true(mq_filter_within("devices/d1/#", "devices/d1/+"));
    assert_true(mq_filter_within("devices/d1/#", "devices/d1/a/#"));
    assert_true(mq_filter_within("devices/+/x", "devices/d1/x"));
    assert_true(mq_filter_within("devices/+/x", "devices/+/x"));
    /* wider than the device's own */
    assert_false(mq_filter_within("devices/d1/#", "devices/#"));
    assert_false(mq_filter_within("devices/d1/#", "devices/+/#"));
    assert_false(mq_filter_within("devices/d1/#", "devices/+"));
    assert_false(mq_filter_within("devices/d1/#", "#"));
    assert_false(mq_filter_within("devices/d1/#", "+/d1/#"));
    assert_false(mq_filter_within("devices/d1/#", "devices/d2/#"));
    assert_false(mq_filter_within("devices/d1/#", "devices/d10"));
    assert_false(mq_filter_within("devices/d1/#", "devices"));
    assert_false(mq_filter_within("devices/d1/x", "devices/d1/x/y"));
    assert_false(mq_filter_within("devices/d1/x", "devices/d1/#"));
    /* shared subscriptions name another tree: refused */
    assert_false(mq_filter_within("devices/d1/#", "$share/g/devices/d1/#"));
    /* malformed filters are never within */
    assert_false(mq_filter_within("devices/d1/#", "devices/d1/a#"));
    assert_false(mq_filter_within("devices/d1/#", "devices/d1/#/x"));
    assert_false(mq_filter_within("devices/d1/#", "devices/d1/x+"));
}

static void test_names_and_patterns(void **state)
{
    char out[64];

    (void)state;
    assert_true(mq_name_topic_safe("dev-1"));
    assert_true(mq_name_topic_safe("urn:dev:ops:1"));
    assert_false(mq_name_topic_safe(""));
    assert_false(mq_name_topic_safe("a/b"));
    assert_false(mq_name_topic_safe("+"));
    assert_false(mq_name_topic_safe("x#"));
    assert_true(mq_pattern_ok("devices/%n/#"));
    assert_true(mq_pattern_ok("t/%p/%n/+/x"));
    assert_true(mq_pattern_ok("%n"));
    assert_false(mq_pattern_ok("devices/#"));      /* no %n: devices would share */
    assert_false(mq_pattern_ok("devices/%n/#/x")); /* '#' not last */
    assert_false(mq_pattern_ok("devices/%n+/x"));
    assert_false(mq_pattern_ok("devices/%x/%n"));
    assert_false(mq_pattern_ok(""));
    assert_int_equal(mq_topic_expand("t/%p/%n/#", "acme", "d1", out, sizeof(out)), 0);
    assert_string_equal(out, "t/acme/d1/#");
    assert_int_equal(mq_topic_expand("100%%/%n", "p", "d", out, sizeof(out)), 0);
    assert_string_equal(out, "100%/d");
    assert_int_equal(mq_topic_expand("devices/%n/#", "p", "a-rather-long-device-name-x", out, 16),
                     -1);
}

/* A device's client ids: its name, or its name and '/' and more. */
static void test_client_ids(void **state)
{
    (void)state;
    assert_true(mq_client_id_ok("dev-1", "dev-1"));
    assert_true(mq_client_id_ok("dev-1/sub", "dev-1"));
    assert_true(mq_client_id_ok("dev-1/", "dev-1"));
    assert_false(mq_client_id_ok("dev-12", "dev-1"));
    assert_false(mq_client_id_ok("dev-1x/sub", "dev-1"));
    assert_false(mq_client_id_ok("dev-", "dev-1"));
    assert_false(mq_client_id_ok("", "dev-1"));
    assert_false(mq_client_id_ok(NULL, "dev-1"));
    assert_false(mq_client_id_ok("xdev-1", "dev-1"));
    assert_false(mq_client_id_ok("DEV-1", "dev-1"));
}

static int parse(mq_config *c, const char *k1, const char *v1, const char *k2, const char *v2,
                 fp_error *e)
{
    const char *keys[2] = {k1, k2}, *values[2] = {v1, v2};
    return mq_config_parse(c, keys, values, k2 ? 2 : 1, e);
}

static void test_config(void **state)
{
    mq_config *c = calloc(1, sizeof(*c));
    fp_error e = {0};

    (void)state;
    assert_non_null(c);
    assert_int_equal(parse(c, "store", "/x/fleetpki.db", NULL, NULL, &e), FP_ERR_OK);
    assert_string_equal(c->store_path, "/x/fleetpki.db");
    assert_string_equal(c->project, "default");
    assert_string_equal(c->topic_pattern, "devices/%n/#");
    assert_true(c->auto_register);
    assert_true(c->fail_closed);
    assert_int_equal(c->poll_ms, 200);
    assert_int_equal(parse(c, "store", "/x", "project", "all", &e), FP_ERR_OK);
    assert_string_equal(c->project, "");
    assert_int_equal(parse(c, "store", "/x", "fail_closed", "false", &e), FP_ERR_OK);
    assert_false(c->fail_closed);
    /* client ids bound to device names unless said otherwise */
    assert_int_equal(parse(c, "store", "/x", NULL, NULL, &e), FP_ERR_OK);
    assert_true(c->bind_client_id);
    assert_int_equal(parse(c, "store", "/x", "client_id", "any", &e), FP_ERR_OK);
    assert_false(c->bind_client_id);
    assert_int_equal(parse(c, "store", "/x", "client_id", "cn", &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "plugin_opt_client_id"));
    /* refusals name the option */
    assert_int_equal(parse(c, "store", "/x", "fail_closd", "false", &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "plugin_opt_fail_closd"));
    assert_int_equal(parse(c, "store", "/x", "fail_closed", "yes", &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "fail_closed"));
    assert_int_equal(parse(c, "store", "/x", "poll_ms", "5", &e), FP_ERR_ARG);
    assert_int_equal(parse(c, "store", "/x", "poll_ms", "100x", &e), FP_ERR_ARG);
    assert_int_equal(parse(c, "store", "/x", "project", "Bad Name", &e), FP_ERR_ARG);
    assert_int_equal(parse(c, "store", "/x", "topic_pattern", "devices/#", &e), FP_ERR_ARG);
    assert_int_equal(parse(c, "project", "default", NULL, NULL, &e), FP_ERR_ARG);
    assert_non_null(strstr(e.msg, "plugin_opt_data_dir"));
    assert_int_equal(parse(c, "store", "/x", "data_dir", "/y", &e), FP_ERR_ARG);
    /* a data directory that is not there (yet): its store path is known */
    assert_int_equal(parse(c, "data_dir", "/nonexistent-fp", NULL, NULL, &e), FP_ERR_OK);
    assert_string_equal(c->store_path, "/nonexistent-fp/fleetpki.db");
    free(c);
}

static void test_hash(void **state)
{
    mq_hash h = {0};
    char key[32];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(mq_hash_put(&h, key, strlen(key), (void *)(long)(i + 1)), 0);
    }
    assert_int_equal(h.n, 5000);
    assert_int_equal(mq_hash_put(&h, "k7", 2, (void *)99L), 0); /* replace */
    assert_int_equal(h.n, 5000);
    assert_ptr_equal(mq_hash_get(&h, "k7", 2), (void *)99L);
    assert_ptr_equal(mq_hash_get(&h, "k4999", 5), (void *)5000L);
    assert_null(mq_hash_get(&h, "k5000", 5));
    assert_null(mq_hash_get(&h, "k7", 1)); /* length is part of the key */
    assert_ptr_equal(mq_hash_del(&h, "k7", 2), (void *)99L);
    assert_null(mq_hash_get(&h, "k7", 2));
    assert_null(mq_hash_del(&h, "k7", 2));
    assert_int_equal(h.n, 4999);
    mq_hash_clear(&h, NULL);
    assert_int_equal(h.n, 0);
    assert_null(mq_hash_get(&h, "k1", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_matches),
        cmocka_unit_test(test_filter_within),
        cmocka_unit_test(test_names_and_patterns),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_client_ids),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
