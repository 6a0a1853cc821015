/* 3-D MRoPE position ids of one item (spec §4.2, transformers' get_rope_index): shared by the
 * CPU and CUDA backends and checked exactly against the goldens.
 *
 * Text tokens get the same value on all three axes (t, h, w), counting on from the largest
 * position so far. Each visual block (an image, or one frame pair of a video: a video of grid
 * (T, h, w) is T blocks of (1, h, w)) is a run of (h/m)*(w/m) pad tokens (m = spatial merge
 * size); its tokens get (off, off + r, off + c) for merged row r and column c, where off is
 * the block's first position. Image pads take the item's images in order, video pads its
 * video frame pairs in order, each kind independently (as the reference's masked_scatter). */
#ifndef VL_WORKER_POSITIONS_H
#define VL_WORKER_POSITIONS_H

#include <stddef.h>
#include <stdint.h>

#include "common/item.h"

/* Fills pos[0..n_ids) (t axis), pos[n_ids..2n_ids) (h), pos[2n_ids..3n_ids) (w) for the item.
 * Returns 0, or -1 with err if the pad tokens do not match the grids (a run shorter than its
 * grid needs, or pads with no grid left). */
int vl_positions_compute(const struct vl_item *it, int32_t image_token_id, int32_t video_token_id,
                         int spatial_merge_size, int32_t *pos, char *err, size_t errlen);

#endif
