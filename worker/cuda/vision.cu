/* The vision tower's input side (vision.h). One block per patch. */
#include "worker/cuda/vision.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

static __global__ void patchify_kernel(const uint8_t *__restrict__ pixels,
                                       const int32_t *__restrict__ pos4,
                                       const int64_t *__restrict__ frames, bf16 *__restrict__ out)
{
    int p = blockIdx.x;
    int r = pos4[p * 4 + 0], c = pos4[p * 4 + 1], gw = pos4[p * 4 + 3];
    int width = gw * 16;
    bf16 *o = out + (size_t)p * VL_PATCH_DIM;
    for (int k = threadIdx.x; k < VL_PATCH_DIM; k += blockDim.x) {
        int ch = k / 512, tp = (k / 256) & 1, py = (k / 16) & 15, px = k & 15;
        const uint8_t *f = pixels + frames[p * 2 + tp];
        int v = f[((size_t)(r * 16 + py) * width + (c * 16 + px)) * 3 + ch];
        o[k] = tobf(((float)v - 127.5f) / 127.5f);
    }
}

/* torch.linspace(0, end, steps)[i] in float32, computed the way its kernel does (from the
 * nearer end), so the interpolation weights round like the reference's. */
static __device__ __forceinline__ float linspace_at(float end, int steps, int i)
{
    if (steps == 1)
        return 0.0f;
    float step = end / (float)(steps - 1);
    return i < steps / 2 ? step * (float)i : end - step * (float)(steps - i - 1);
}

static __global__ void pos_embed_kernel(bf16 *__restrict__ x, const bf16 *__restrict__ table, int G,
                                        const int32_t *__restrict__ pos4, int dim)
{
    int p = blockIdx.x;
    int r = pos4[p * 4 + 0], c = pos4[p * 4 + 1], gh = pos4[p * 4 + 2], gw = pos4[p * 4 + 3];
    float hs = linspace_at((float)(G - 1), gh, r), ws = linspace_at((float)(G - 1), gw, c);
    int hf = (int)hs, wf = (int)ws;
    int hc = min(hf + 1, G - 1), wc = min(wf + 1, G - 1);
    float dh = hs - (float)hf, dw = ws - (float)wf;
    float w00 = rbf((1.0f - dh) * (1.0f - dw)), w01 = rbf((1.0f - dh) * dw);
    float w10 = rbf(dh * (1.0f - dw)), w11 = rbf(dh * dw);
    const bf16 *t00 = table + (size_t)(hf * G + wf) * dim,
               *t01 = table + (size_t)(hf * G + wc) * dim;
    const bf16 *t10 = table + (size_t)(hc * G + wf) * dim,
               *t11 = table + (size_t)(hc * G + wc) * dim;
    bf16 *xr = x + (size_t)p * dim;
    for (int k = threadIdx.x; k < dim; k += blockDim.x) {
        float s = rbf(bf(t00[k]) * w00);
        s = rbf(s + rbf(bf(t01[k]) * w01));
        s = rbf(s + rbf(bf(t10[k]) * w10));
        s = rbf(s + rbf(bf(t11[k]) * w11));
        xr[k] = tobf(bf(xr[k]) + s);
    }
}

extern "C" void vl_patchify(vl_stream_t s, const uint8_t *pixels, const int32_t *pos4,
                            const int64_t *frames, int n_patches, uint16_t *out)
{
    if (n_patches <= 0)
        return;
    patchify_kernel<<<n_patches, 256, 0, s>>>(pixels, pos4, frames, (bf16 *)out);
    VL_LAUNCH_CHECK("patchify_kernel");
}

extern "C" void vl_pos_embed_add(vl_stream_t s, uint16_t *x, const uint16_t *table, int grid_side,
                                 const int32_t *pos4, int n_patches, int dim)
{
    if (n_patches <= 0)
        return;
    pos_embed_kernel<<<n_patches, 256, 0, s>>>((bf16 *)x, (const bf16 *)table, grid_side, pos4,
                                               dim);
    VL_LAUNCH_CHECK("pos_embed_kernel");
}
