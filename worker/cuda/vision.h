/* The vision tower's input side (spec §3.1-3.2, §7.1 steps 4-6, §7.4), on the device.
 *
 * Patches of all visuals of a batch are packed in the reference's row order (per visual: for
 * each frame pair t, 2x2 merge windows in raster order, 4 patches per window). Per patch p the
 * host supplies:
 *   pos4[p]   = { row, col, grid_h, grid_w }: full-resolution patch coordinates in its frame
 *               and the visual's grid (also read by vl_vit_rope);
 *   frames[p] = { byte offset of the pair's first frame, of its second frame } in the packed
 *               uint8 HWC RGB pixel buffer (equal for an image: its frame is repeated).
 *
 * vl_patchify: out[p, 1536] bf16 = (pixel - 127.5) / 127.5, features ordered (c, t, y, x),
 *              the input of the patch-embedding GEMM.
 * vl_pos_embed_add: x[p] = bf16(x[p] + interp(p)), the learned 48x48 position table
 *              bilinearly interpolated to the visual's grid with the reference's bf16 weight
 *              rounding and summation order (p00 + p01 + p10 + p11). */
#ifndef VL_WORKER_CUDA_VISION_H
#define VL_WORKER_CUDA_VISION_H

#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VL_PATCH_DIM 1536 /* 3 channels x 2 frames x 16 x 16 */

void vl_patchify(vl_stream_t s, const uint8_t *pixels, const int32_t *pos4, const int64_t *frames,
                 int n_patches, uint16_t *out);
/* table: [grid_side * grid_side, dim] bf16 (grid_side 48 for the released models). */
void vl_pos_embed_add(vl_stream_t s, uint16_t *x, const uint16_t *table, int grid_side,
                      const int32_t *pos4, int n_patches, int dim);

#ifdef __cplusplus
}
#endif

#endif
