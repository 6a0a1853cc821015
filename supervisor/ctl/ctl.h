/* vlembedctl subcommands. Each is `int ctl_cmd_NAME(int argc, char **argv)` (argv[0] is the
 * subcommand name) in its own file supervisor/ctl/NAME.c, returning the process exit code.
 * Declared weak so that the binary links before every subcommand exists. */
#ifndef VL_CTL_H
#define VL_CTL_H

#define CTL_CMD(name) int ctl_cmd_##name(int argc, char **argv) __attribute__((weak))
CTL_CMD(tokenize);
CTL_CMD(preprocess);
CTL_CMD(embed);
CTL_CMD(status);
CTL_CMD(reload);
#undef CTL_CMD

#endif
