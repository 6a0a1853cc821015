/* 3-D MRoPE position ids (spec §4.2); see positions.h. */
#include "worker/positions.h"

#include <stdio.h>

/* The next visual of `kind` at or after *vi whose frame pairs are not all used yet: returns
 * its merged grid through gh/gw and advances the (visual, frame pair) cursor. */
static int next_block(const struct vl_item *it, enum vl_visual_kind kind, int *vi, int *pair, int m,
                      int *gh, int *gw)
{
    while (*vi < it->n_visuals) {
        const struct vl_visual *v = &it->visuals[*vi];
        if (v->kind == kind && *pair < v->grid_t) {
            *gh = v->grid_h / m;
            *gw = v->grid_w / m;
            if (++*pair >= v->grid_t) {
                (*vi)++;
                *pair = 0;
            }
            return 0;
        }
        (*vi)++;
        *pair = 0;
    }
    return -1;
}

int vl_positions_compute(const struct vl_item *it, int32_t image_token_id, int32_t video_token_id,
                         int spatial_merge_size, int32_t *pos, char *err, size_t errlen)
{
    int n = it->n_ids;
    int32_t *pt = pos, *ph = pos + n, *pw = pos + 2 * n;
    int img_vi = 0, img_pair = 0, vid_vi = 0, vid_pair = 0;
    int64_t next = 0; /* max position so far + 1 */
    int i = 0;
    while (i < n) {
        int32_t id = it->ids[i];
        if (id != image_token_id && id != video_token_id) {
            pt[i] = ph[i] = pw[i] = (int32_t)next;
            next++;
            i++;
            continue;
        }
        int gh, gw;
        int rc =
            id == image_token_id
                ? next_block(it, VL_VISUAL_IMAGE, &img_vi, &img_pair, spatial_merge_size, &gh, &gw)
                : next_block(it, VL_VISUAL_VIDEO, &vid_vi, &vid_pair, spatial_merge_size, &gh, &gw);
        if (rc != 0) {
            snprintf(err, errlen, "token %d: %s pad with no %s grid left", i,
                     id == image_token_id ? "image" : "video",
                     id == image_token_id ? "image" : "video");
            return -1;
        }
        int len = gh * gw;
        if (len <= 0 || len > n - i) {
            snprintf(err, errlen, "token %d: visual block of %d tokens runs past the end", i, len);
            return -1;
        }
        for (int k = 0; k < len; k++)
            if (it->ids[i + k] != id) {
                snprintf(err, errlen, "token %d: visual block needs %d pad tokens, found %d", i,
                         len, k);
                return -1;
            }
        int64_t off = next;
        for (int r = 0; r < gh; r++)
            for (int c = 0; c < gw; c++) {
                int k = i + r * gw + c;
                pt[k] = (int32_t)off;
                ph[k] = (int32_t)(off + r);
                pw[k] = (int32_t)(off + c);
            }
        next = off + (gh > gw ? gh : gw);
        i += len;
    }
    return 0;
}
