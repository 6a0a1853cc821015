/* 3-D MRoPE position ids (worker/positions.c, spec §4.2) on hand-worked cases and bad items;
 * the goldens test checks them against transformers on real prompts. */
#include "tests/test.h"
#include "worker/positions.h"

enum { IMG = 151655, VID = 151656, VS = 151652, VE = 151653 };

TEST(test_text_only)
{
    int32_t ids[5] = {1, 2, 3, 4, 5}, pos[15];
    struct vl_item it = {.ids = ids, .n_ids = 5};
    char err[128];
    CHECK_EQ_INT(vl_positions_compute(&it, IMG, VID, 2, pos, err, sizeof err), 0);
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < 5; i++)
            CHECK_EQ_INT(pos[a * 5 + i], i);
}

TEST(test_image_then_video)
{
    /* t0 VS [img 2x3 merged = 6 pads] VE t1 VS [video pair 1: 1x2] VE VS [pair 2: 1x2] VE t2 */
    struct vl_visual vis[2] = {
        {.kind = VL_VISUAL_VIDEO, .grid_t = 2, .grid_h = 2, .grid_w = 4},
        {.kind = VL_VISUAL_IMAGE, .grid_t = 1, .grid_h = 4, .grid_w = 6},
    };
    int32_t ids[] = {7,  VS,  IMG, IMG, IMG, IMG, IMG, IMG, VE, 8,
                     VS, VID, VID, VE,  VS,  VID, VID, VE,  9};
    int n = (int)(sizeof ids / sizeof ids[0]);
    struct vl_item it = {.ids = ids, .n_ids = n, .visuals = vis, .n_visuals = 2};
    int32_t pos[3 * 19];
    char err[128] = "";
    CHECK_EQ_INT(vl_positions_compute(&it, IMG, VID, 2, pos, err, sizeof err), 0);
    CHECK_EQ_STR(err, "");
    /* text 7 -> 0, VS -> 1; image block starts at 2: rows 0..1, cols 0..2 */
    int32_t want_t[] = {0, 1, 2, 2, 2, 2, 2, 2, 5, 6, 7, 8, 8, 10, 11, 12, 12, 14, 15};
    int32_t want_h[] = {0, 1, 2, 2, 2, 3, 3, 3, 5, 6, 7, 8, 8, 10, 11, 12, 12, 14, 15};
    int32_t want_w[] = {0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(pos[i], want_t[i]);
        CHECK_EQ_INT(pos[n + i], want_h[i]);
        CHECK_EQ_INT(pos[2 * n + i], want_w[i]);
    }
}

TEST(test_bad_pads)
{
    struct vl_visual img = {.kind = VL_VISUAL_IMAGE, .grid_t = 1, .grid_h = 4, .grid_w = 4};
    int32_t pos[64];
    char err[128];
    /* 3 pads where the grid needs 4 */
    int32_t a[] = {1, VS, IMG, IMG, IMG, VE};
    struct vl_item it = {.ids = a, .n_ids = 6, .visuals = &img, .n_visuals = 1};
    CHECK_EQ_INT(vl_positions_compute(&it, IMG, VID, 2, pos, err, sizeof err), -1);
    CHECK_CONTAINS(err, "needs 4 pad tokens");
    /* video pads with only an image grid */
    int32_t b[] = {1, VID, 2};
    struct vl_item it2 = {.ids = b, .n_ids = 3, .visuals = &img, .n_visuals = 1};
    CHECK_EQ_INT(vl_positions_compute(&it2, IMG, VID, 2, pos, err, sizeof err), -1);
    CHECK_CONTAINS(err, "no video grid left");
    /* pads running past the end */
    int32_t c[] = {1, IMG, IMG};
    struct vl_item it3 = {.ids = c, .n_ids = 3, .visuals = &img, .n_visuals = 1};
    CHECK_EQ_INT(vl_positions_compute(&it3, IMG, VID, 2, pos, err, sizeof err), -1);
    CHECK_CONTAINS(err, "runs past the end");
}

TEST_MAIN(test_text_only, test_image_then_video, test_bad_pads)
