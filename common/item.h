/* A preprocessed item: what the gateway hands to a worker and the worker embeds.
 * One item = one prompt (token ids after placeholder expansion) plus its visual inputs in
 * prompt order. Pixels are uint8 RGB, already resized to the model's grid; the worker
 * normalises and patchifies them (spec §7.1 steps 4-6, §7.4).
 *
 * Grid units: t in temporal patches (frame pairs; an image has t = 1 and its single frame is
 * repeated), h and w in 16-pixel patches. The item's ids contain exactly t*h*w/4
 * <|image_pad|> or <|video_pad|> tokens per visual, in order. */
#ifndef VL_COMMON_ITEM_H
#define VL_COMMON_ITEM_H

#include <stddef.h>
#include <stdint.h>

enum vl_visual_kind { VL_VISUAL_IMAGE = 0, VL_VISUAL_VIDEO = 1 };

struct vl_visual {
    enum vl_visual_kind kind;
    int32_t grid_t, grid_h, grid_w; /* patches: t frame pairs, h = height/16, w = width/16 */
    int32_t n_frames;               /* frames in `pixels`: 1 for an image, 2*grid_t for video */
    int32_t height, width;          /* pixels per frame = grid_h*16, grid_w*16 */
    uint8_t *pixels;                /* n_frames * height * width * 3 bytes, frame-major, HWC RGB */
};

struct vl_item {
    int32_t *ids;
    int32_t n_ids;
    struct vl_visual *visuals;
    int32_t n_visuals;
};

/* Frees what the item owns (ids, visuals and their pixels); safe on a zeroed item. */
void vl_item_free(struct vl_item *it);

/* Checks the invariants above against the model's special token ids; returns 0 or -1 with a
 * sentence in err. Every consumer of items from outside the process calls this first. */
int vl_item_validate(const struct vl_item *it, int32_t image_token_id, int32_t video_token_id,
                     int32_t max_tokens, char *err, size_t errlen);

#endif
