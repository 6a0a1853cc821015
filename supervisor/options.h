/* vlembed-supervisor's options: one table, read by common/config.h from defaults, the
 * --config file and flags (docs/operations.md lists every key). */
#ifndef VL_SUPERVISOR_OPTIONS_H
#define VL_SUPERVISOR_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

struct sv_opts {
    char *model;
    char *backend;
    int64_t workers;
    char *devices;
    char *http;
    char *api_socket;
    char *runtime_dir;
    char *gateway_bin;
    char *worker_bin;
    char *gateway_args;
    char *worker_args;
    double heartbeat_timeout_s;
    double start_timeout_s;
    double drain_timeout_s;
    double stop_timeout_s;
    double restart_delay_min_s;
    double restart_delay_max_s;
    double healthy_after_s;
    int64_t max_permanent_failures;
    int64_t listen_backlog;
    char *log_level;
};

extern const struct vl_opt sv_opt_table[];
extern const size_t sv_n_opts;

/* Loads defaults < --config file < flags, then checks what the table cannot express (a model
 * directory is required; --workers is for cpu, --devices for cuda). Returns 0, 1 for --help
 * (usage printed), or -1 with err naming the key. */
int sv_opts_load(struct sv_opts *o, int argc, char **argv, char *err, size_t errlen);
void sv_opts_free(struct sv_opts *o);

#endif
