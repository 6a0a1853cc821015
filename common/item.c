/* Ownership and validation of preprocessed items (see item.h). */
#include "common/item.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vl_item_free(struct vl_item *it)
{
    if (!it)
        return;
    for (int32_t i = 0; i < it->n_visuals && it->visuals; i++)
        free(it->visuals[i].pixels);
    free(it->visuals);
    free(it->ids);
    memset(it, 0, sizeof *it);
}

int vl_item_validate(const struct vl_item *it, int32_t image_token_id, int32_t video_token_id,
                     int32_t max_tokens, char *err, size_t errlen)
{
    if (it->n_ids <= 0 || it->n_ids > max_tokens) {
        snprintf(err, errlen, "item has %d tokens; must be 1..%d", it->n_ids, max_tokens);
        return -1;
    }
    int64_t want_img = 0, want_vid = 0;
    for (int32_t v = 0; v < it->n_visuals; v++) {
        const struct vl_visual *vis = &it->visuals[v];
        if (vis->grid_t < 1 || vis->grid_h < 2 || vis->grid_w < 2 || vis->grid_h % 2 ||
            vis->grid_w % 2 || vis->grid_t > 4096 || vis->grid_h > 4096 || vis->grid_w > 4096) {
            snprintf(err, errlen, "visual %d: bad grid (%d, %d, %d)", v, vis->grid_t, vis->grid_h,
                     vis->grid_w);
            return -1;
        }
        int32_t frames = vis->kind == VL_VISUAL_IMAGE ? 1 : 2 * vis->grid_t;
        if (vis->n_frames != frames || vis->height != vis->grid_h * 16 ||
            vis->width != vis->grid_w * 16 || !vis->pixels) {
            snprintf(err, errlen, "visual %d: frames/size do not match grid (%d, %d, %d)", v,
                     vis->grid_t, vis->grid_h, vis->grid_w);
            return -1;
        }
        int64_t n = (int64_t)vis->grid_t * vis->grid_h * vis->grid_w / 4;
        if (vis->kind == VL_VISUAL_IMAGE)
            want_img += n;
        else
            want_vid += n;
    }
    int64_t got_img = 0, got_vid = 0;
    for (int32_t i = 0; i < it->n_ids; i++) {
        got_img += it->ids[i] == image_token_id;
        got_vid += it->ids[i] == video_token_id;
    }
    if (got_img != want_img || got_vid != want_vid) {
        snprintf(err, errlen,
                 "item has %lld image and %lld video pad tokens but its grids need %lld and %lld",
                 (long long)got_img, (long long)got_vid, (long long)want_img, (long long)want_vid);
        return -1;
    }
    return 0;
}
