/* Table-driven configuration: see config.h for the format and the precedence rules. */
#include "common/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/limits.h"

static int key_eq(const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; i < blen && a[i]; i++) {
        char x = a[i] == '_' ? '-' : a[i], y = b[i] == '_' ? '-' : b[i];
        if (x != y)
            return 0;
    }
    return i == blen && a[i] == 0;
}

static const struct vl_opt *find_opt(const struct vl_opt *opts, size_t n, const char *key,
                                     size_t klen)
{
    for (size_t i = 0; i < n; i++)
        if (key_eq(opts[i].name, key, klen))
            return &opts[i];
    return NULL;
}

static int parse_i64(const char *s, int allow_suffix, int64_t *out)
{
    if (!*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return -1;
    int64_t mul = 1;
    if (allow_suffix && *end) {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1024;
            break;
        case 'm':
        case 'M':
            mul = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mul = 1024LL * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
    }
    if (*end)
        return -1;
    if (__builtin_mul_overflow((int64_t)v, mul, out))
        return -1;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *t[] = {"true", "yes", "on", "1"}, *f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, t[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(s, f[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int in_choices(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vl && strncmp(p, v, len) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

static int set_value(const struct vl_opt *o, void *out, const char *value, const char *where,
                     char *err, size_t errlen)
{
    char *field = (char *)out + o->offset;
    int has_range = o->min <= o->max;
    switch (o->type) {
    case VL_OPT_STR:
        if (strlen(value) > VL_CONFIG_VALUE_MAX) {
            snprintf(err, errlen, "%s: value of '%s' is longer than %d bytes", where, o->name,
                     VL_CONFIG_VALUE_MAX);
            return -1;
        }
        if (o->choices && !in_choices(o->choices, value)) {
            snprintf(err, errlen, "%s: '%s' must be one of %s, not \"%s\"", where, o->name,
                     o->choices, value);
            return -1;
        }
        free(*(char **)field);
        *(char **)field = vl_strdup(value);
        return 0;
    case VL_OPT_INT:
    case VL_OPT_SIZE: {
        int64_t v;
        if (parse_i64(value, o->type == VL_OPT_SIZE, &v) < 0) {
            snprintf(err, errlen, "%s: '%s' must be %s, not \"%s\"", where, o->name,
                     o->type == VL_OPT_SIZE ? "a size (e.g. 64M)" : "an integer", value);
            return -1;
        }
        if (has_range && ((double)v < o->min || (double)v > o->max)) {
            snprintf(err, errlen, "%s: '%s' = %lld is out of range [%.0f, %.0f]", where, o->name,
                     (long long)v, o->min, o->max);
            return -1;
        }
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case VL_OPT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) {
            snprintf(err, errlen, "%s: '%s' must be a number, not \"%s\"", where, o->name, value);
            return -1;
        }
        if (has_range && (v < o->min || v > o->max)) {
            snprintf(err, errlen, "%s: '%s' = %g is out of range [%g, %g]", where, o->name, v,
                     o->min, o->max);
            return -1;
        }
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case VL_OPT_BOOL: {
        int b;
        if (parse_bool(value, &b) < 0) {
            snprintf(err, errlen, "%s: '%s' must be true or false, not \"%s\"", where, o->name,
                     value);
            return -1;
        }
        memcpy(field, &b, sizeof b);
        return 0;
    }
    }
    return -1;
}

int vl_config_set(const struct vl_opt *opts, size_t n_opts, void *out, const char *key,
                  const char *value, const char *where, char *err, size_t errlen)
{
    const struct vl_opt *o = find_opt(opts, n_opts, key, strlen(key));
    if (!o) {
        snprintf(err, errlen, "%s: unknown key '%s'", where, key);
        return -1;
    }
    return set_value(o, out, value, where, err, errlen);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = 0;
    return s;
}

int vl_config_load_file(const struct vl_opt *opts, size_t n_opts, void *out, const char *path,
                        char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "config file %s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[VL_CONFIG_VALUE_MAX + 256];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char where[512];
        snprintf(where, sizeof where, "config file %s line %d", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s: line longer than %zu bytes", where, sizeof line - 2);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s: expected 'key = value'", where);
            rc = -1;
            break;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        if (*val == '"') {
            char *w = val, *r = val + 1;
            int closed = 0;
            for (; *r; r++) {
                if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) {
                    *w++ = *++r;
                } else if (*r == '"') {
                    closed = 1;
                    r++;
                    break;
                } else {
                    *w++ = *r;
                }
            }
            if (!closed || *trim(r)) {
                snprintf(err, errlen,
                         "%s: key '%s': unterminated or trailing text after quoted value", where,
                         key);
                rc = -1;
                break;
            }
            *w = 0;
        }
        if (vl_config_set(opts, n_opts, out, key, val, where, err, errlen) < 0) {
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

void vl_config_usage(const struct vl_opt *opts, size_t n_opts, const char *prog, const char *what)
{
    printf("usage: %s [--config FILE] [--key value ...]\n%s\n\noptions (also config-file keys):\n",
           prog, what ? what : "");
    static const char *tn[] = {"string", "integer", "size", "number", "bool"};
    for (size_t i = 0; i < n_opts; i++) {
        const struct vl_opt *o = &opts[i];
        printf("  --%-22s %-7s %s", o->name, tn[o->type], o->help ? o->help : "");
        if (o->choices)
            printf(" (%s)", o->choices);
        if (o->def)
            printf(" [default: %s]", o->def);
        printf("\n");
    }
}

int vl_config_load(const struct vl_opt *opts, size_t n_opts, void *out, int argc, char **argv,
                   char **rest, int *n_rest, char *err, size_t errlen)
{
    for (size_t i = 0; i < n_opts; i++)
        if (opts[i].def && set_value(&opts[i], out, opts[i].def, "default", err, errlen) < 0)
            return -1;
    if (n_rest)
        *n_rest = 0;
    /* The file first, wherever --config appears, so that flags always win. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        const char *path = NULL;
        if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config: missing value");
                return -1;
            }
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        }
        if (path && vl_config_load_file(opts, n_opts, out, path, err, errlen) < 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (!rest) {
                    snprintf(err, errlen, "unexpected argument '%s'", argv[i]);
                    return -1;
                }
                rest[(*n_rest)++] = argv[i];
            }
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strncmp(a, "--", 2) != 0) {
            if (!rest) {
                snprintf(err, errlen, "unexpected argument '%s'", a);
                return -1;
            }
            rest[(*n_rest)++] = a;
            continue;
        }
        const char *key = a + 2, *eq = strchr(key, '=');
        size_t klen = eq ? (size_t)(eq - key) : strlen(key);
        if (key_eq("config", key, klen)) {
            if (!eq)
                i++;
            continue;
        }
        const struct vl_opt *o = find_opt(opts, n_opts, key, klen);
        char where[128];
        snprintf(where, sizeof where, "--%.*s", (int)(klen > 64 ? 64 : klen), key);
        if (!o) {
            snprintf(err, errlen, "%s: unknown option '%.*s'", where, (int)(klen > 64 ? 64 : klen),
                     key);
            return -1;
        }
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (o->type == VL_OPT_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0 ||
                                              parse_bool(argv[i + 1], &(int){0}) < 0)) {
            val = "true";
        } else {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s: missing value", where);
                return -1;
            }
            val = argv[++i];
        }
        if (set_value(o, out, val, where, err, errlen) < 0)
            return -1;
    }
    return 0;
}

void vl_config_free(const struct vl_opt *opts, size_t n_opts, void *out)
{
    for (size_t i = 0; i < n_opts; i++)
        if (opts[i].type == VL_OPT_STR) {
            char **p = (char **)((char *)out + opts[i].offset);
            free(*p);
            *p = NULL;
        }
}
