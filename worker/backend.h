/* The inference backend interface: the worker's serving loop, `vlembedctl embed` and the
 * tests call only this. Two implementations: "cpu" (worker/cpu_*.c, the reference) and
 * "cuda" (worker/cuda/, production). Both take the same loaded checkpoint (worker/model.h)
 * and the same preprocessed items (common/item.h) and return the same vectors. */
#ifndef VL_WORKER_BACKEND_H
#define VL_WORKER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "common/item.h"

struct vl_model; /* a loaded checkpoint: worker/model.h */

struct vl_backend_opts {
    int threads;               /* CPU backend: worker threads (0 = all cores) */
    int device;                /* CUDA backend: device ordinal (after CUDA_VISIBLE_DEVICES) */
    int64_t max_batch_tokens;  /* language-model tokens per forward batch */
    int64_t max_batch_patches; /* vision patches per forward batch */
};

struct vl_backend {
    const char *name;
    void *state;
    /* Embeds n items into out[n * hidden] as float32, each row L2-normalised (spec §5).
     * Items may be of any mix of modalities and lengths; the backend batches them as it
     * likes, and the result equals embedding each alone. Returns 0, or -1 with err set
     * (invalid item); device errors abort the process. */
    int (*embed)(struct vl_backend *b, const struct vl_item *items, int n, float *out, char *err,
                 size_t errlen);
    void (*destroy)(struct vl_backend *b);
};

/* Creates the named backend ("cpu" or "cuda") over a loaded model. Returns 0 or -1 with err. */
int vl_backend_create(const char *name, const struct vl_model *m, const struct vl_backend_opts *o,
                      struct vl_backend *out, char *err, size_t errlen);

/* Implementations (each in its own file); vl_backend_create dispatches to them. */
int vl_backend_cpu_create(const struct vl_model *m, const struct vl_backend_opts *o,
                          struct vl_backend *out, char *err, size_t errlen);
int vl_backend_cuda_create(const struct vl_model *m, const struct vl_backend_opts *o,
                           struct vl_backend *out, char *err, size_t errlen);

#endif
