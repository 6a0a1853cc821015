/* GPU discovery without a CUDA context: the supervisor must never initialise CUDA (a context
 * costs memory on every device and would be inherited by nothing useful). Devices come from
 * NVML, loaded with dlopen() at run time (libnvidia-ml.so.1, part of the driver), or, when NVML
 * is missing, from the driver's /proc/driver/nvidia/gpus/<bus>/information files. Both list
 * devices in PCI bus order, the order nvidia-smi shows; workers are pinned by UUID
 * (CUDA_VISIBLE_DEVICES=GPU-...), so the CUDA runtime's own ordering never matters. */
#ifndef VL_SUPERVISOR_GPU_H
#define VL_SUPERVISOR_GPU_H

#include <stddef.h>

#define SV_GPU_MAX 64

struct sv_gpu {
    int index;     /* position in PCI bus order, as nvidia-smi numbers them */
    char uuid[96]; /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
    char name[96]; /* "NVIDIA H100 80GB HBM3" */
    char bus[32];  /* "0000:18:00.0" (proc source only; "" from NVML) */
};

/* Fills out[0..n) and returns n >= 0 (0 = no GPU), or -1 with err set. *source is set to
 * "nvml" or "proc". */
int sv_gpu_discover(struct sv_gpu *out, int max, const char **source, char *err, size_t errlen);

/* NVML alone: returns n, or -1 if libnvidia-ml.so.1 cannot be loaded or fails (err says why). */
int sv_gpu_discover_nvml(struct sv_gpu *out, int max, char *err, size_t errlen);

/* The /proc source alone, under `root` (normally /proc/driver/nvidia/gpus): returns n, or -1
 * if root cannot be read. Devices without a UUID line are skipped. */
int sv_gpu_discover_proc(const char *root, struct sv_gpu *out, int max, char *err, size_t errlen);

/* Parses one `information` file's text. Returns 0, or -1 if it has no "GPU UUID:" line. */
int sv_gpu_parse_information(const char *text, struct sv_gpu *g);

/* Picks devices from `all` by a list: NULL, "" or "all" = every device; otherwise a comma
 * list of indices ("0,2") and/or UUIDs ("GPU-..."; a unique prefix is enough). Writes the
 * positions in `all` to picked[] and returns how many, or -1 with err naming the entry that
 * matches nothing, matches twice, or repeats. */
int sv_gpu_select(const struct sv_gpu *all, int n, const char *list, int *picked, int max,
                  char *err, size_t errlen);

#endif
