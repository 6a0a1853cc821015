/* Internal to the .cu files of worker/cuda: checking macros for CUDA runtime and cuBLAS calls. A
 * failed call is logged with the call's text, file and line, then the process aborts (a CUDA error
 * poisons the context; the supervisor restarts the worker). */
#ifndef VL_WORKER_CUDA_CHECK_H
#define VL_WORKER_CUDA_CHECK_H

#include <cuda_runtime.h>
#include <stdlib.h>

extern "C" {
#include "common/log.h"
}

#define VL_CUDA_CHECK(call)                                                                        \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            vl_error("%s failed at %s:%d: %s (%s)", #call, __FILE__, __LINE__,                     \
                     cudaGetErrorString(e_), cudaGetErrorName(e_));                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* After a <<<>>> launch: checks the launch (not the kernel's completion). */
#define VL_LAUNCH_CHECK(name)                                                                      \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess) {                                                                   \
            vl_error("launch of %s failed at %s:%d: %s", name, __FILE__, __LINE__,                 \
                     cudaGetErrorString(e_));                                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
