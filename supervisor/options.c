/* The supervisor's option table (see options.h). */
#include "supervisor/options.h"

#include <stdio.h>
#include <string.h>

#include "common/config.h"

#define O(name, type, field, def, lo, hi, choices, help)                                           \
    {                                                                                              \
        name, VL_OPT_##type, offsetof(struct sv_opts, field), def, lo, hi, choices, help           \
    }

const struct vl_opt sv_opt_table[] = {
    O("model", STR, model, NULL, 1, 0, NULL, "checkpoint directory (required)"),
    O("backend", STR, backend, "cpu", 1, 0, "cpu|cuda", "inference backend of the workers"),
    O("workers", INT, workers, "1", 1, 64, NULL, "number of CPU workers (backend cpu)"),
    O("devices", STR, devices, "all", 1, 0, NULL,
      "GPUs for backend cuda: all, or indices/UUIDs, comma-separated (one worker each)"),
    O("http", STR, http, "127.0.0.1:8080", 1, 0, NULL,
      "HTTP listen address HOST:PORT, or none (ignored when systemd passes an http socket)"),
    O("api-socket", STR, api_socket, NULL, 1, 0, NULL,
      "msgpack API Unix socket path, or none [default: RUNTIME-DIR/api.sock]"),
    O("runtime-dir", STR, runtime_dir, NULL, 1, 0, NULL,
      "directory for sockets [default: $RUNTIME_DIRECTORY, else /run/vlembed]"),
    O("gateway-bin", STR, gateway_bin, NULL, 1, 0, NULL,
      "gateway executable [default: vlembed-gateway beside the supervisor]"),
    O("worker-bin", STR, worker_bin, NULL, 1, 0, NULL,
      "worker executable [default: vlembed-worker beside the supervisor]"),
    O("gateway-args", STR, gateway_args, NULL, 1, 0, NULL,
      "extra flags for the gateway, space-separated (e.g. \"--log-level debug\")"),
    O("worker-args", STR, worker_args, NULL, 1, 0, NULL, "extra flags for every worker"),
    O("heartbeat-timeout-s", DOUBLE, heartbeat_timeout_s, "10", 0.5, 3600, NULL,
      "a ready process silent this long is hung: SIGABRT, then SIGKILL, then restart"),
    O("start-timeout-s", DOUBLE, start_timeout_s, "300", 1, 86400, NULL,
      "a process not ready this long after its start is killed"),
    O("drain-timeout-s", DOUBLE, drain_timeout_s, "30", 0, 3600, NULL,
      "longest wait for a replaced worker's in-flight items before SIGTERM"),
    O("stop-timeout-s", DOUBLE, stop_timeout_s, "30", 0.1, 3600, NULL,
      "longest wait after SIGTERM before SIGKILL"),
    O("restart-delay-min-s", DOUBLE, restart_delay_min_s, "1", 0, 3600, NULL,
      "delay before the 2nd restart in a row (the 1st is immediate); doubles after"),
    O("restart-delay-max-s", DOUBLE, restart_delay_max_s, "60", 0, 86400, NULL,
      "restart delay cap"),
    O("healthy-after-s", DOUBLE, healthy_after_s, "10", 0, 86400, NULL,
      "ready this long ends a failure streak (the next restart is immediate again)"),
    O("max-permanent-failures", INT, max_permanent_failures, "3", 1, 1000, NULL,
      "exit-100s in a row after which a device is given up (until a reload)"),
    O("listen-backlog", INT, listen_backlog, "1024", 16, 65535, NULL,
      "listen() backlog of the sockets the supervisor binds"),
    O("log-level", STR, log_level, "info", 1, 0, "debug|info|warn|error", "log threshold"),
};
const size_t sv_n_opts = sizeof sv_opt_table / sizeof sv_opt_table[0];

int sv_opts_load(struct sv_opts *o, int argc, char **argv, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    int rc = vl_config_load(sv_opt_table, sv_n_opts, o, argc, argv, NULL, NULL, err, errlen);
    if (rc != 0)
        return rc;
    if (!o->model || !o->model[0]) {
        snprintf(err, errlen, "model: required (--model DIR or `model = DIR` in the config)");
        return -1;
    }
    if (o->restart_delay_max_s < o->restart_delay_min_s) {
        snprintf(err, errlen, "restart-delay-max-s: %g is below restart-delay-min-s %g",
                 o->restart_delay_max_s, o->restart_delay_min_s);
        return -1;
    }
    return 0;
}

void sv_opts_free(struct sv_opts *o)
{
    vl_config_free(sv_opt_table, sv_n_opts, o);
}
