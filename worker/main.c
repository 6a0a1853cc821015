/* vlembed-worker: loads one checkpoint onto one device, then serves the gateway over a Unix
 * socket (worker/serve.h, docs/wire.md) until SIGTERM. `vlembed-worker --check DIR ...` is the
 * operator/GPU-test canary run (worker/check.c).
 *
 * Exit codes (common/exitcode.h): 0 after a drain; 100 for a bad flag, checkpoint or backend
 * (restarting cannot help); 111 when the socket cannot be served. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/exitcode.h"
#include "common/limits.h"
#include "common/log.h"
#include "worker/backend.h"
#include "worker/check.h"
#include "worker/model.h"
#include "worker/serve.h"

struct worker_opts {
    char *model;
    char *backend;
    char *socket;
    int64_t control_fd;
    int64_t threads;
    int64_t device;
    int64_t max_batch_tokens;
    int64_t max_batch_patches;
    int64_t max_batch_items;
    char *log_level;
};

#define O(name, type, field, def, lo, hi, choices, help)                                           \
    {                                                                                              \
        name, VL_OPT_##type, offsetof(struct worker_opts, field), def, lo, hi, choices, help       \
    }
static const struct vl_opt opts[] = {
    O("model", STR, model, NULL, 1, 0, NULL, "checkpoint directory (required)"),
    O("backend", STR, backend, "cpu", 1, 0, "cpu|cuda", "inference backend"),
    O("socket", STR, socket, NULL, 1, 0, NULL,
      "Unix socket path to serve the gateway on (required)"),
    O("control-fd", INT, control_fd, "-1", -1, 65535, NULL,
      "inherited socketpair end for the supervisor's control channel (-1: none)"),
    O("threads", INT, threads, "0", 0, 1024, NULL, "CPU backend threads (0: all cores)"),
    O("device", INT, device, "0", 0, 64, NULL, "CUDA device ordinal after CUDA_VISIBLE_DEVICES"),
    O("max-batch-tokens", INT, max_batch_tokens, "16384", 1, 1 << 24, NULL,
      "language-model tokens per backend call; items queue across requests up to this"),
    O("max-batch-patches", INT, max_batch_patches, "65536", 1, 1 << 26, NULL,
      "vision patches per backend forward"),
    O("max-batch-items", INT, max_batch_items, "64", 1, 4096, NULL, "items per backend call"),
    O("log-level", STR, log_level, "info", 1, 0, "debug|info|warn|error", "log threshold"),
};
#define N_OPTS (sizeof opts / sizeof opts[0])

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--check") == 0) {
        vl_log_init("worker", VL_LOG_INFO);
        return worker_check_main(argc - 1, argv + 1);
    }
    vl_log_init("worker", VL_LOG_INFO);
    struct worker_opts o = {0};
    char err[512];
    int rc = vl_config_load(opts, N_OPTS, &o, argc, argv, NULL, NULL, err, sizeof err);
    if (rc == 1) {
        vl_config_usage(opts, N_OPTS, "vlembed-worker",
                        "Loads one checkpoint and serves it on --socket.");
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_OK;
    }
    if (rc < 0) {
        vl_error("%s", err);
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_PERMANENT;
    }
    int ok;
    vl_log_set_level(vl_log_level_parse(o.log_level, &ok));
    if (!o.model || !o.socket) {
        vl_error("%s: required", !o.model ? "--model" : "--socket");
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_PERMANENT;
    }
    struct vl_model m;
    if (vl_model_load(&m, o.model, err, sizeof err)) {
        vl_error("loading checkpoint \"%s\" failed: %s", o.model, err);
        vl_model_free(&m);
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_PERMANENT;
    }
    struct vl_backend_opts bo = {.threads = (int)o.threads,
                                 .device = (int)o.device,
                                 .max_batch_tokens = o.max_batch_tokens,
                                 .max_batch_patches = o.max_batch_patches};
    struct vl_backend be = {0};
    if (vl_backend_create(o.backend, &m, &bo, &be, err, sizeof err)) {
        vl_error("backend \"%s\" failed to start: %s", o.backend, err);
        vl_model_free(&m);
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_PERMANENT;
    }
    char fp[17] = "";
    if (serve_fingerprint(o.model, fp))
        vl_warn("cannot fingerprint the checkpoint \"%s\"", o.model);
    char device[64];
    if (strcmp(o.backend, "cuda") == 0)
        snprintf(device, sizeof device, "cuda:%lld", (long long)o.device);
    else
        snprintf(device, sizeof device, "cpu");
    struct serve_opts so = {
        .socket_path = o.socket,
        .control_fd = (int)o.control_fd,
        .hidden = m.cfg.text.hidden_size,
        .image_token_id = m.cfg.image_token_id,
        .video_token_id = m.cfg.video_token_id,
        .max_tokens = VL_MAX_SEQ_TOKENS,
        .max_batch_tokens = o.max_batch_tokens,
        .max_batch_items = (int)o.max_batch_items,
        .device = device,
        .fingerprint = fp,
        .backend_name = o.backend,
    };
    rc = serve_run(&so, &be);
    if (be.destroy)
        be.destroy(&be);
    vl_model_free(&m);
    vl_config_free(opts, N_OPTS, &o);
    return rc;
}
