/* test_ini.c - the config tokenizer, good and malformed input. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "common/ini.h"

typedef struct {
    char log[2048];
} rec;

static int on_sec(void *ctx, const char *s, const char *a, int line, fp_error *err)
{
    rec *r = ctx;
    (void)line;
    (void)err;
    snprintf(r->log + strlen(r->log), sizeof(r->log) - strlen(r->log), "[%s|%s]", s, a);
    return 0;
}

static int on_key(void *ctx, const char *s, const char *a, const char *k, const char *v,
                  int line, fp_error *err)
{
    rec *r = ctx;
    (void)s;
    (void)a;
    (void)line;
    (void)err;
    snprintf(r->log + strlen(r->log), sizeof(r->log) - strlen(r->log), "%s=%s;", k, v);
    return 0;
}

static int parse(const char *text, rec *r, fp_error *e)
{
    memset(r, 0, sizeof(*r));
    return fp_ini_parse(text, strlen(text), on_sec, on_key, r, e);
}

static void test_good(void **state)
{
    rec r;
    fp_error e = {0};
    (void)state;
    assert_int_equal(parse("# c\n; c\n\n[ca]\n org = Acme Inc \n[profile device]\nk=v=w\n", &r, &e), 0);
    assert_string_equal(r.log, "[ca|]org=Acme Inc;[profile|device]k=v=w;");
    /* no trailing newline, CRLF */
    assert_int_equal(parse("[a]\r\nx = 1\r\ny=2", &r, &e), 0);
    assert_string_equal(r.log, "[a|]x=1;y=2;");
}

static void test_malformed(void **state)
{
    const char *bad[] = {
        "[ca\nx=1\n",        /* unclosed header */
        "[ca] junk\n",       /* trailing text */
        "[]\n",              /* empty name */
        "[c a b]\n",         /* argument with a space */
        "novalue\n",         /* no '=' */
        " = v\n",            /* empty key */
        "bad key = v\n",     /* key with a space */
        "[a$b]\n",           /* bad character */
    };
    rec r;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        fp_error e = {0};
        assert_int_equal(parse(bad[i], &r, &e), FP_ERR_CONFIG);
        assert_non_null(strstr(e.msg, "line 1"));
    }
}

static void test_line_too_long_and_nul(void **state)
{
    char text[FP_INI_LINE_MAX + 20];
    fp_error e = {0};
    rec r;
    (void)state;
    memset(text, 'a', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    assert_int_equal(parse(text, &r, &e), FP_ERR_CONFIG);
    assert_non_null(strstr(e.msg, "longer"));
    {
        const char withnul[] = "[a]\nx=1\0y\n";
        memset(&r, 0, sizeof(r));
        assert_int_equal(fp_ini_parse(withnul, sizeof(withnul) - 1, on_sec, on_key, &r, &e),
                         FP_ERR_CONFIG);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_line_too_long_and_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
