/* vlembedctl: the operator and test CLI. Each subcommand lives in its own file in
 * supervisor/ctl/ and is listed here; one that is not built in yet says so. */
#include <stdio.h>
#include <string.h>

#include "common/exitcode.h"
#include "common/log.h"
#include "supervisor/ctl/ctl.h"

#define SUB(name, fn, help)                                                                        \
    {                                                                                              \
        name, fn, help                                                                             \
    }
static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} subs[] = {
    SUB("tokenize", ctl_cmd_tokenize,
        "JSON Lines {\"text\"} on stdin -> {\"ids\"} (tokenizer.json)"),
    SUB("preprocess", ctl_cmd_preprocess, "show an item's resized size, grid, frames, timestamps"),
    SUB("embed", ctl_cmd_embed, "embed JSON Lines items offline with a model directory"),
    SUB("status", ctl_cmd_status, "show every process of a running vlembed"),
    SUB("reload", ctl_cmd_reload, "replace every worker without downtime; returns when done"),
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vlembedctl SUBCOMMAND [options]   (vlembedctl SUBCOMMAND --help)\n\n");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        fprintf(f, "  %-11s %s%s\n", subs[i].name, subs[i].help, subs[i].fn ? "" : " [not built]");
}

int main(int argc, char **argv)
{
    vl_log_init("ctl", VL_LOG_WARN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        if (!subs[i].fn) {
            fprintf(stderr, "vlembedctl: '%s' is not built into this binary\n", argv[1]);
            return VL_EXIT_PERMANENT;
        }
        return subs[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "vlembedctl: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
