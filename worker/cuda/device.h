/* Device plumbing for the CUDA backend behind a plain C header: device selection, memory
 * (device and pinned host), streams, events, copies. No CUDA header is needed to use it, so
 * the host orchestration (worker/cuda_backend*.c) and the GPU tests stay plain C17.
 *
 * Every function checks its CUDA call; a failure logs the call and aborts the process (a CUDA
 * error poisons the context, the supervisor restarts the worker: DESIGN.md "Exit codes"). */
#ifndef VL_WORKER_CUDA_DEVICE_H
#define VL_WORKER_CUDA_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The same type as cudaStream_t / cudaEvent_t, spelled without the CUDA headers. */
typedef struct CUstream_st *vl_stream_t;
typedef struct CUevent_st *vl_event_t;

struct vl_device_info {
    char name[256];
    int sm_count;
    int cc_major, cc_minor;
    size_t total_mem;
    size_t l2_bytes;
    size_t smem_per_block_optin;
};

/* Number of visible devices; 0 when there is no driver or no device (never aborts). */
int vl_cuda_device_count(void);
/* Makes `ordinal` current for this thread and fills *info. Returns 0, or -1 with err if there
 * is no such device (a configuration error, not a device fault). */
int vl_cuda_device_open(int ordinal, struct vl_device_info *info, char *err, size_t errlen);

void *vl_cuda_malloc(size_t n);     /* device memory; aborts on failure; n = 0 gives NULL */
void vl_cuda_free(void *p);         /* NULL is fine */
void *vl_cuda_host_alloc(size_t n); /* pinned host memory; aborts on failure */
void vl_cuda_host_free(void *p);
/* Bytes of device memory in use on the current device (total - free). */
size_t vl_cuda_mem_used(void);

vl_stream_t vl_cuda_stream_create(void);
void vl_cuda_stream_destroy(vl_stream_t s);
void vl_cuda_stream_sync(vl_stream_t s);
void vl_cuda_device_sync(void);
vl_event_t vl_cuda_event_create(void);
void vl_cuda_event_destroy(vl_event_t e);
void vl_cuda_event_record(vl_event_t e, vl_stream_t s);
void vl_cuda_stream_wait(vl_stream_t s, vl_event_t e);
void vl_cuda_event_sync(vl_event_t e);
float vl_cuda_event_ms(vl_event_t start, vl_event_t stop); /* both recorded and complete */

/* Asynchronous copies on stream s (host pointers should be pinned for real overlap). */
void vl_cuda_h2d(void *dst, const void *src, size_t n, vl_stream_t s);
void vl_cuda_d2h(void *dst, const void *src, size_t n, vl_stream_t s);
void vl_cuda_d2d(void *dst, const void *src, size_t n, vl_stream_t s);
void vl_cuda_memset(void *dst, int byte, size_t n, vl_stream_t s);

/* Fills n bf16 values at dst with uniform random numbers in [-scale, scale] (a counter-based
 * hash of seed and index, so the same seed gives the same values on any device). For
 * benchmarking real model sizes without checkpoints. */
void vl_cuda_fill_random_bf16(uint16_t *dst, size_t n, uint64_t seed, float scale, vl_stream_t s);
/* Fills n bf16 values with `value` (used for norm weights of random-weight models). */
void vl_cuda_fill_bf16(uint16_t *dst, size_t n, float value, vl_stream_t s);

/* Aborts with the last launch error, naming `what`, if a kernel launch failed. */
void vl_cuda_check_launch(const char *what);

#ifdef __cplusplus
}
#endif

#endif
