/*
 * mq_topic.c - a device's topic filter and the checks of MQTT topic
 * names and filters against it (MQTT 3.1.1 section 4.7, MQTT 5.0
 * section 4.7: '/' separates levels, '+' matches one level, '#' the
 * rest including the parent level, and a filter starting with a wildcard
 * does not match a topic starting with '$').
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "mq.h"

bool mq_name_topic_safe(const char *name)
{
    return name[0] != '\0' && strpbrk(name, "/+#") == NULL;
}

/* Length of the level starting at s (up to '/' or the end). */
static size_t level_len(const char *s)
{
    const char *e = strchr(s, '/');
    return e ? (size_t)(e - s) : strlen(s);
}

/* A filter is valid: '+' and '#' fill their level, '#' is the last. */
static bool filter_ok(const char *f)
{
    for (const char *l = f;; l += level_len(l) + 1) {
        size_t n = level_len(l);
        if ((memchr(l, '+', n) || memchr(l, '#', n)) && n != 1)
            return false;
        if (n == 1 && l[0] == '#' && l[1] != '\0')
            return false;
        if (l[n] == '\0')
            return true;
    }
}

bool mq_pattern_ok(const char *pattern)
{
    char probe[MQ_TOPIC_MAX];
    bool has_n = false;

    for (const char *p = pattern; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (*p == 'n')
            has_n = true;
        else if (*p != 'p' && *p != '%')
            return false;
    }
    return has_n && pattern[0] != '\0' &&
           mq_topic_expand(pattern, "p", "n", probe, sizeof(probe)) == 0 && filter_ok(probe);
}

int mq_topic_expand(const char *pattern, const char *project, const char *name, char *out,
                    size_t size)
{
    size_t o = 0;

    for (const char *p = pattern; *p; p++) {
        const char *add = NULL;
        char one[2] = {*p, '\0'};
        size_t n;
        if (*p == '%' && p[1] != '\0') {
            p++;
            add = *p == 'n' ? name : *p == 'p' ? project : *p == '%' ? "%" : NULL;
            if (add == NULL)
                return -1;
        } else {
            add = one;
        }
        n = strlen(add);
        if (o + n >= size)
            return -1;
        memcpy(out + o, add, n);
        o += n;
    }
    if (o >= size)
        return -1;
    out[o] = '\0';
    return 0;
}

bool mq_topic_matches(const char *filter, const char *topic)
{
    const char *f = filter, *t = topic;

    /* MQTT 4.7.2: wildcards at the first level never match "$..." */
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;
    for (;;) {
        size_t fn = level_len(f), tn = level_len(t);
        if (fn == 1 && f[0] == '#')
            return true;
        if (!(fn == 1 && f[0] == '+') && (fn != tn || memcmp(f, t, fn) != 0))
            return false;
        f += fn;
        t += tn;
        if (*f == '\0' && *t == '\0')
            return true;
        if (*t == '\0')
            /* the topic ended: "a/#" matches "a" too */
            return !strcmp(f, "/#");
        if (*f == '\0')
            return false;
        f++;
        t++;
    }
}

bool mq_filter_within(const char *outer, const char *inner)
{
    const char *o = outer, *i = inner;

    if (!filter_ok(inner))
        return false;
    if (inner[0] == '$' && (outer[0] == '+' || outer[0] == '#'))
        return false;
    for (;;) {
        size_t on = level_len(o), in = level_len(i);
        bool o_hash = on == 1 && o[0] == '#', o_plus = on == 1 && o[0] == '+';
        bool i_hash = in == 1 && i[0] == '#', i_plus = in == 1 && i[0] == '+';
        if (o_hash)
            return true;
        if (i_hash)
            return false; /* inner takes every level below; outer does not */
        if (i_plus && !o_plus)
            return false;
        if (!o_plus && (on != in || memcmp(o, i, on) != 0))
            return false;
        o += on;
        i += in;
        if (*o == '\0' && *i == '\0')
            return true;
        if (*i == '\0')
            return !strcmp(o, "/#");
        if (*o == '\0')
            return false;
        o++;
        i++;
    }
}

/* A device's client ids (plugin_opt_client_id name): its name, or its
 * name, '/', anything (a device with several connections: "dev-1/sub").
 * Device names hold no '/' (mq_name_topic_safe), so no device's ids are
 * another's; without this one device could take another's session over
 * (the broker closes the older connection with the same client id). */
bool mq_client_id_ok(const char *clientid, const char *name)
{
    size_t n = strlen(name);
    return clientid != NULL && strncmp(clientid, name, n) == 0 &&
           (clientid[n] == '\0' || clientid[n] == '/');
}
