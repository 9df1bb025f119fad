/* ini.c - see ini.h for the format. */
#include "ini.h"

#include <ctype.h>
#include <string.h>

static char *trim(char *s)
{
    char *end;
    while (*s && isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int valid_word(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

int fp_ini_parse(const char *text, size_t len, fp_ini_section_cb on_section,
                 fp_ini_cb on_key, void *ctx, fp_error *err)
{
    char section[128] = "", arg[128] = "";
    char line[FP_INI_LINE_MAX + 1];
    size_t pos = 0;
    int lineno = 0;

    while (pos < len) {
        size_t start = pos, n;
        char *s, *eq;
        int rc;

        while (pos < len && text[pos] != '\n')
            pos++;
        n = pos - start;
        pos++; /* skip '\n' */
        lineno++;
        if (n > FP_INI_LINE_MAX)
            return fp_err_set(err, FP_ERR_CONFIG, "line %d: longer than %d bytes",
                              lineno, FP_INI_LINE_MAX);
        memcpy(line, text + start, n);
        line[n] = '\0';
        if (memchr(line, '\0', n) != NULL)
            return fp_err_set(err, FP_ERR_CONFIG, "line %d: NUL byte", lineno);
        s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']'), *sp;
            if (close == NULL || trim(close + 1)[0] != '\0')
                return fp_err_set(err, FP_ERR_CONFIG,
                                  "line %d: malformed section header", lineno);
            *close = '\0';
            s = trim(s + 1);
            sp = strpbrk(s, " \t");
            arg[0] = '\0';
            if (sp != NULL) {
                *sp = '\0';
                if (strlen(trim(sp + 1)) >= sizeof(arg))
                    return fp_err_set(err, FP_ERR_CONFIG,
                                      "line %d: section argument too long", lineno);
                strcpy(arg, trim(sp + 1));
                if (!valid_word(arg))
                    return fp_err_set(err, FP_ERR_CONFIG,
                                      "line %d: bad section argument '%s'", lineno, arg);
            }
            if (strlen(s) >= sizeof(section) || !valid_word(s))
                return fp_err_set(err, FP_ERR_CONFIG,
                                  "line %d: bad section name", lineno);
            strcpy(section, s);
            if (on_section != NULL &&
                (rc = on_section(ctx, section, arg, lineno, err)) != FP_ERR_OK)
                return rc;
            continue;
        }
        eq = strchr(s, '=');
        if (eq == NULL)
            return fp_err_set(err, FP_ERR_CONFIG,
                              "line %d: expected 'key = value'", lineno);
        *eq = '\0';
        {
            char *key = trim(s), *value = trim(eq + 1);
            if (!valid_word(key))
                return fp_err_set(err, FP_ERR_CONFIG, "line %d: bad key '%s'",
                                  lineno, key);
            rc = on_key(ctx, section, arg, key, value, lineno, err);
            if (rc != FP_ERR_OK)
                return rc;
        }
    }
    return FP_ERR_OK;
}
