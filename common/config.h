/* Configuration: one file format and command-line flags over one table of options.
 *
 * File format (documented in docs/configuration.md): UTF-8 text, one `key = value` per line,
 * `#` starts a comment line, blank lines ignored, values may be "double-quoted" (with \" and
 * \\ escapes). Keys are the long flag names without the dashes; `_` and `-` are the same.
 * Every key is also a flag: `--key value` or `--key=value` (booleans: `--key` alone = true).
 * Precedence: built-in default < config file (`--config PATH`) < flags.
 *
 * Every value is validated (type, range, choices); an unknown key, a wrong type or an
 * out-of-range value is an error naming the key (and the file and line). */
#ifndef VL_COMMON_CONFIG_H
#define VL_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum vl_opt_type {
    VL_OPT_STR,    /* char * (heap copy, owned by the config struct; freed by vl_config_free) */
    VL_OPT_INT,    /* int64_t, within [min, max] */
    VL_OPT_SIZE,   /* int64_t bytes, accepts suffixes k/K, m/M, g/G (powers of 1024) */
    VL_OPT_DOUBLE, /* double, within [min, max] */
    VL_OPT_BOOL,   /* int: true/false, yes/no, on/off, 1/0 */
};

struct vl_opt {
    const char *name; /* long flag name, e.g. "http" */
    enum vl_opt_type type;
    size_t offset;       /* offsetof(your struct, field) */
    const char *def;     /* default as text (NULL = unset string / zero) */
    double min, max;     /* range for numbers (ignored when min > max) */
    const char *choices; /* for strings: "cpu|cuda" or NULL */
    const char *help;    /* one line for --help and the docs */
};

/* Fills `out` from defaults, then the file named by --config (if any), then the flags.
 * Non-option arguments are collected into *rest / *n_rest (pointers into argv; may be NULL
 * if the caller accepts none). Returns 0; 1 if --help was given, having printed nothing: the
 * caller prints vl_config_usage with its own description and exits 0 (tests/e2e/
 * test_docs_complete.py fails for a binary whose --help lists no options); or -1 with a message
 * in err naming the key. */
int vl_config_load(const struct vl_opt *opts, size_t n_opts, void *out, int argc, char **argv,
                   char **rest, int *n_rest, char *err, size_t errlen);

/* Parses a config file alone (no defaults applied); used by vl_config_load and tests. */
int vl_config_load_file(const struct vl_opt *opts, size_t n_opts, void *out, const char *path,
                        char *err, size_t errlen);

/* Sets one option from text; `where` is prefixed to the error ("--workers", "file:3"). */
int vl_config_set(const struct vl_opt *opts, size_t n_opts, void *out, const char *key,
                  const char *value, const char *where, char *err, size_t errlen);

void vl_config_usage(const struct vl_opt *opts, size_t n_opts, const char *prog, const char *what);
void vl_config_free(const struct vl_opt *opts, size_t n_opts, void *out);

#endif
