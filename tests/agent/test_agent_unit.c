/*
 * test_agent_unit.c - fleetpki-agent's pure parts: the retry schedule
 * (exponential backoff with full jitter), the renewal time and the
 * configuration parser (mostly what it must refuse, and that the message
 * names the line and the key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"

/* ---- backoff ---- */

/* a fixed "random" value */
static uint64_t fixed(void *ctx)
{
    return *(uint64_t *)ctx;
}

/* a small deterministic generator (xorshift64) */
static uint64_t xs(void *ctx)
{
    uint64_t *s = ctx;
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void backoff_growth_and_cap(void **state)
{
    fpa_backoff b;
    uint64_t want[] = {1000, 2000, 4000, 8000, 10000, 10000, 10000};
    (void)state;
    fpa_backoff_init(&b, 1000, 10000);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        /* the value mapping to the top of [0, ceiling] waits the ceiling */
        uint64_t top = want[i];
        assert_int_equal(fpa_backoff_ceiling(&b), want[i]);
        assert_int_equal(fpa_backoff_next(&b, fixed, &top), want[i]);
    }
    /* many failures later the ceiling stays at the cap (no overflow) */
    for (int i = 0; i < 200; i++)
        (void)fpa_backoff_next(&b, NULL, NULL);
    assert_int_equal(fpa_backoff_ceiling(&b), 10000);
    /* a cap above what doubling reaches exactly */
    fpa_backoff_init(&b, 3, 4000000000u);
    for (int i = 0; i < 100; i++)
        (void)fpa_backoff_next(&b, NULL, NULL);
    assert_int_equal(fpa_backoff_ceiling(&b), 4000000000u);
}

static void backoff_bounds_full_jitter(void **state)
{
    fpa_backoff b;
    uint64_t seed = 0x9e3779b97f4a7c15ull, zero = 0;
    (void)state;
    fpa_backoff_init(&b, 500, 8000);
    /* the smallest random value waits 0: FULL jitter starts at zero */
    assert_int_equal(fpa_backoff_next(&b, fixed, &zero), 0);
    fpa_backoff_reset(&b);
    /* every delay lies in [0, ceiling], and the delays spread over the
     * whole interval (not clustered near the ceiling) */
    for (unsigned n = 0; n < 6; n++) {
        uint64_t lo = UINT64_MAX, hi = 0, sum = 0, c;
        const int k = 4000;
        b.attempt = n;
        c = fpa_backoff_ceiling(&b);
        for (int i = 0; i < k; i++) {
            uint64_t d;
            b.attempt = n;
            d = fpa_backoff_next(&b, xs, &seed);
            assert_true(d <= c);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += d;
        }
        assert_true(lo < c / 10);
        assert_true(hi > c - c / 10);
        /* mean of U[0,c] is c/2 */
        assert_true(sum / k > c * 4 / 10 && sum / k < c * 6 / 10);
    }
}

static void backoff_reset_after_success(void **state)
{
    fpa_backoff b;
    (void)state;
    fpa_backoff_init(&b, 1000, 60000);
    for (int i = 0; i < 5; i++)
        (void)fpa_backoff_next(&b, NULL, NULL);
    assert_int_equal(fpa_backoff_ceiling(&b), 32000);
    fpa_backoff_reset(&b);
    assert_int_equal(fpa_backoff_ceiling(&b), 1000);
    assert_int_equal(b.attempt, 0);
    /* base above cap is clamped to the cap */
    fpa_backoff_init(&b, 5000, 1000);
    assert_int_equal(fpa_backoff_ceiling(&b), 5000);
}

/* yields the values of a list in turn */
static uint64_t seq(void *ctx)
{
    uint64_t **p = ctx;
    return *(*p)++;
}

static void uniform_edges(void **state)
{
    uint64_t v = 12345, max = UINT64_MAX;
    uint64_t list[] = {UINT64_MAX, UINT64_MAX - 1, 7}, *lp = list;
    (void)state;
    assert_int_equal(fpa_uniform(0, fixed, &v), 0);
    assert_int_equal(fpa_uniform(9, fixed, &v), 12345 % 10);
    assert_true(fpa_uniform(UINT64_MAX, fixed, &max) == UINT64_MAX);
    /* no modulo bias: for bound 9 (10 values) the top partial block
     * (2^64 mod 10 = 6 values: UINT64_MAX-5 .. UINT64_MAX) is rejected and
     * the next value drawn */
    assert_int_equal(fpa_uniform(9, seq, &lp), 7);
    assert_ptr_equal(lp, list + 3);
}

/* ---- renewal time ---- */

static void renew_time(void **state)
{
    (void)state;
    /* 2/3 of 90 days */
    assert_int_equal(fpa_renew_time(1000, 1000 + 90 * 86400, 2.0 / 3.0), 1000 + 60 * 86400);
    assert_int_equal(fpa_renew_time(0, 300, 0.5), 150);
    assert_int_equal(fpa_renew_time(0, 300, 0.0001), 0);
    /* nonsense lifetimes renew at once */
    assert_int_equal(fpa_renew_time(500, 500, 0.5), 500);
    assert_int_equal(fpa_renew_time(500, 100, 0.5), 500);
    /* bounds of the fraction */
    assert_int_equal(fpa_renew_time(0, 1000, 0.0), 0);
    assert_int_equal(fpa_renew_time(0, 1000, 1.0), 1000);
    /* far dates do not overflow */
    assert_int_equal(fpa_renew_time(0, 253402300799LL, 0.5), 126701150399LL);
}

/* ---- config ---- */

#define BASE                                                                                      \
    "server = https://est.example.net:8443\n"                                                     \
    "label = factory\n"                                                                           \
    "trust_anchor = /etc/fleetpki/root.pem\n"                                                     \
    "cred_dir = /var/lib/fleetpki-agent\n"                                                        \
    "bootstrap_token_file = /etc/fleetpki/token\n"                                                \
    "common_name = sensor-1\n"

static void config_good(void **state)
{
    fpa_config c;
    char err[FPA_ERR_MAX] = "";
    (void)state;
    assert_int_equal(fpa_config_parse("a.conf", BASE, &c, err, sizeof(err)), 0);
    assert_string_equal(c.host, "est.example.net");
    assert_int_equal(c.port, 8443);
    assert_string_equal(c.label, "factory");
    assert_true(c.renew_at > 0.666 && c.renew_at < 0.667); /* default 2/3 */
    assert_int_equal(c.rekey, 1);
    assert_int_equal(c.backoff_base_ms, 30000);
    assert_int_equal(c.backoff_cap_ms, 3600000);
    assert_int_equal(fpa_config_parse("b.conf",
                                      "# comment\n\n  server=https://[::1]  \r\n"
                                      "bootstrap_fingerprint = " "AB:cd:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:"
                                      "ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd\n"
                                      "cred_dir=/x\nbootstrap_cert=/c\nbootstrap_key=/k\ncommon_name=x\n"
                                      "renew_at = 3/4\nrekey = no\nbackoff_base = 500ms\n"
                                      "backoff_cap = 2m\nkey_type = p384\n",
                                      &c, err, sizeof(err)),
                     0);
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 443);
    assert_int_equal(c.fingerprint[0], 0xab);
    assert_int_equal(c.fingerprint[1], 0xcd);
    assert_int_equal(c.fingerprint[31], 0xdd);
    assert_true(c.renew_at == 0.75);
    assert_int_equal(c.rekey, 0);
    assert_int_equal(c.backoff_base_ms, 500);
    assert_int_equal(c.backoff_cap_ms, 120000);
    assert_int_equal(c.key_type, FP_DEVICE_KEY_P384);
}

#define FPR64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

typedef struct {
    const char *text; /* appended to BASE unless it starts with '!' */
    const char *want; /* substring of the error */
} bad_case;

static void config_bad(void **state)
{
    static const bad_case cases[] = {
        {"colour = blue\n", "a.conf:7: unknown key \"colour\""},
        {"label = x\n", "a.conf:7: key 'label' given twice (first on line 2)"},
        {"renew_at = 1\n", "a.conf:7: key 'renew_at': must be above 0 and below 1"},
        {"renew_at = 0\n", "a.conf:7: key 'renew_at'"},
        {"renew_at = 1.5\n", "key 'renew_at'"},
        {"renew_at = -0.5\n", "key 'renew_at': not a number"},
        {"renew_at = 2/0\n", "key 'renew_at': not a fraction"},
        {"renew_at = 0.5x\n", "key 'renew_at': not a number"},
        {"rekey = maybe\n", "a.conf:7: key 'rekey': expected yes or no"},
        {"backoff_base = 10y\n", "key 'backoff_base': unknown unit"},
        {"backoff_base = 0\n", "key 'backoff_base': out of range"},
        {"backoff_cap = 25h\n", "key 'backoff_cap': out of range"},
        {"backoff_base = 2m\nbackoff_cap = 1m\n", "'backoff_base' (120000 ms) exceeds 'backoff_cap'"},
        {"check_interval = 0\n", "key 'check_interval': expected whole seconds"},
        {"timeout = 3s\n", "key 'timeout': expected whole seconds"},
        {"key_type = dsa\n", "key 'key_type': unknown key type"},
        {"just words\n", "a.conf:7: expected 'key = value'"},
        {"dns_name =\n", "a.conf:7: key 'dns_name': empty value"},
        {"[section]\n", "a.conf:7: expected 'key = value'"},
        {"bootstrap_fingerprint = " FPR64 "\n", "'trust_anchor' and 'bootstrap_fingerprint'"},
        {"bootstrap_cert = /c\nbootstrap_key = /k\n", "exactly one bootstrap credential"},
        {"bootstrap_cert = /c\n", "'bootstrap_cert' and 'bootstrap_key' go together"},
        {"!server = http://x\n", "a.conf:1: key 'server': must start with https://"},
        {"!server = https://x/est\n", "key 'server': no path allowed"},
        {"!server = https://x:0\n", "key 'server': bad port"},
        {"!server = https://x:99999\n", "key 'server': bad port"},
        {"!server = https://x:80a\n", "key 'server': bad port"},
        {"!server = https://\n", "key 'server': empty or too long host"},
        {"!server = https://a b\n", "key 'server': bad character"},
        {"!server = https://[::1\n", "key 'server': unterminated"},
        {"!bootstrap_fingerprint = 12zz\n", "key 'bootstrap_fingerprint': not hex"},
        {"!bootstrap_fingerprint = 1234\n", "key 'bootstrap_fingerprint': shorter than 32 bytes"},
        {"!cred_dir = /x\n", "key 'server' is required"},
        {"!server = https://h\n", "key 'cred_dir' is required"},
        {"!server = https://h\ncred_dir = /x\nbootstrap_token_file = /t\ncommon_name = c\n",
         "one of 'trust_anchor' or 'bootstrap_fingerprint' is required"},
        {"!server = https://h\ncred_dir = /x\ntrust_anchor = /a\ncommon_name = c\n",
         "exactly one bootstrap credential"},
        {"!server = https://h\ncred_dir = /x\ntrust_anchor = /a\nbootstrap_token_file = /t\n",
         "key 'common_name' is required"},
        {"dns_name = a\x01z\n", "key 'dns_name': control character"},
        {"unknown\x1b[2J = 1\n", "unknown key \"unknown\\x1b[2J\""},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[2048], err[FPA_ERR_MAX] = "";
        fpa_config c;
        memset(&c, 0x5a, sizeof(c));
        if (cases[i].text[0] == '!')
            snprintf(text, sizeof(text), "%s", cases[i].text + 1);
        else
            snprintf(text, sizeof(text), "%s%s", BASE, cases[i].text);
        if (fpa_config_parse("a.conf", text, &c, err, sizeof(err)) != -1 ||
            strstr(err, cases[i].want) == NULL) {
            print_error("case %zu: %s\n  got: %s\n  want: %s\n", i, cases[i].text, err, cases[i].want);
            fail();
        }
        /* a refused file leaves the caller's struct alone */
        assert_int_equal(c.port, 0x5a5a5a5a);
    }
}

static void config_load_errors(void **state)
{
    fpa_config c;
    char err[FPA_ERR_MAX] = "";
    (void)state;
    assert_int_equal(fpa_config_load("/nonexistent/agent.conf", &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/agent.conf: No such file"));
}

static void esc_quotes_and_controls(void **state)
{
    char buf[64];
    (void)state;
    assert_string_equal(fpa_esc("a\"b\\c\n\x7f\xc3", buf, sizeof(buf)), "\"a\\\"b\\\\c\\x0a\\x7f\\xc3\"");
    assert_string_equal(fpa_esc("abcdefghij", buf, 10), "\"abcd.\"");
    assert_string_equal(fpa_esc(NULL, buf, sizeof(buf)), "\"\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_growth_and_cap),
        cmocka_unit_test(backoff_bounds_full_jitter),
        cmocka_unit_test(backoff_reset_after_success),
        cmocka_unit_test(uniform_edges),
        cmocka_unit_test(renew_time),
        cmocka_unit_test(config_good),
        cmocka_unit_test(config_bad),
        cmocka_unit_test(config_load_errors),
        cmocka_unit_test(esc_quotes_and_controls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
