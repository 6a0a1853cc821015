/* The worker's serving loop: listens on a Unix socket for gateways, reads embed frames
 * (docs/wire.md), queues their items across requests and connections, batches them by token
 * budget on one inference thread that calls the backend, and answers every item (a vector or
 * a per-item error). Expired items are answered "deadline_exceeded" without reaching the
 * backend. With a control fd it reports ready / heartbeat / draining to the supervisor
 * (docs/internal-protocol.md). On SIGTERM (or when the control fd closes) it stops taking
 * items, answers those it already has, and returns 0. */
#ifndef VL_WORKER_SERVE_H
#define VL_WORKER_SERVE_H

#include <stdint.h>

#include "worker/backend.h"

struct serve_opts {
    const char *socket_path;
    int control_fd; /* -1: none */
    int hidden;     /* embedding width the backend returns */
    int32_t image_token_id, video_token_id;
    int32_t max_tokens;       /* per item */
    int64_t max_batch_tokens; /* tokens per backend call (an item larger than this runs alone) */
    int max_batch_items;      /* items per backend call */
    const char *device;       /* "cpu", "cuda:0 (NVIDIA H100 ...)" */
    const char *fingerprint;  /* checkpoint fingerprint, see serve_fingerprint() */
    const char *backend_name;
};

/* Runs until drained; returns a process exit code (0, or 111 if the socket cannot be served). */
int serve_run(const struct serve_opts *o, struct vl_backend *backend);

/* A stable fingerprint of a checkpoint directory: 16 hex digits of FNV-1a over config.json
 * and every safetensors file's name, size and header. Fills out[17]. Returns 0 or -1. */
int serve_fingerprint(const char *model_dir, char out[17]);

#endif
