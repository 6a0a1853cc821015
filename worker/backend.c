/* Backend selection by name (worker/backend.h). The CUDA backend lives in worker/cuda/; it is
 * referenced weakly so that a build without it (or before it exists) still links and the
 * "cuda" choice fails with a clear message instead. */
#include "worker/backend.h"

#include <stdio.h>
#include <string.h>

#pragma weak vl_backend_cuda_create

int vl_backend_create(const char *name, const struct vl_model *m, const struct vl_backend_opts *o,
                      struct vl_backend *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!name || !strcmp(name, "cpu"))
        return vl_backend_cpu_create(m, o, out, err, errlen);
    if (!strcmp(name, "cuda")) {
        if (!vl_backend_cuda_create) {
            snprintf(err, errlen, "backend \"cuda\" is not built into this binary");
            return -1;
        }
        return vl_backend_cuda_create(m, o, out, err, errlen);
    }
    snprintf(err, errlen, "unknown backend \"%s\" (cpu or cuda)", name);
    return -1;
}
