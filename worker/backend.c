/* Backend selection by name (worker/backend.h). The CUDA backend (worker/cuda_backend.c) is
 * always linked: a NO_CUDA=1 build has a stub that fails with a clear message. (A weak
 * reference would not pull the object out of the static library.) */
#include "worker/backend.h"

#include <stdio.h>
#include <string.h>

int vl_backend_create(const char *name, const struct vl_model *m, const struct vl_backend_opts *o,
                      struct vl_backend *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!name || !strcmp(name, "cpu"))
        return vl_backend_cpu_create(m, o, out, err, errlen);
    if (!strcmp(name, "cuda"))
        return vl_backend_cuda_create(m, o, out, err, errlen);
    snprintf(err, errlen, "unknown backend \"%s\" (cpu or cuda)", name);
    return -1;
}
