/* Preprocessing of one API item into a worker item (struct vl_item): fetch each media source
 * (http(s) through gateway/fetch.h on the loop; data: URIs and msgpack bytes in place), then on
 * the libuv thread pool decode and resize (gateway/media.h), render the prompt and tokenize
 * (gateway/prompt.h). The loop thread never does CPU work here.
 *
 * pp_run_blocking() is the same pipeline on a private loop, for `vlembedctl embed` and tests:
 * both paths run the same code, so offline vectors equal served vectors. */
#ifndef VL_GATEWAY_PREPROCESS_H
#define VL_GATEWAY_PREPROCESS_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <uv.h>

#include "common/item.h"
#include "gateway/api.h"
#include "gateway/media.h"
#include "gateway/tokenizer.h"

struct pp_config {
    const char *tokenizer_path; /* DIR/tokenizer.json */
    struct media_limits media;
    int32_t max_tokens;            /* per item, <= 8192 */
    double fetch_timeout_s;        /* per URL */
    const char *media_dir;         /* local files allowed only under this directory; NULL: none */
    const char *fetch_allow_cidrs; /* non-global addresses that may be fetched (tests) */
};

struct pp_ctx {
    uv_loop_t *loop;
    struct tok *tok;
    struct pp_config cfg;
    int32_t image_pad, video_pad, vision_start, vision_end, im_start, im_end;
    void *fetcher; /* gateway/fetch.h state, created on first use */
};

/* What preprocessing yields for one item. */
struct pp_out {
    struct vl_item item;
    int32_t text_tokens, image_tokens, video_tokens;
    int32_t n_images, n_videos;
    cJSON *preview; /* when asked: prompt, token counts, sizes, grids, frames, timestamps */
    uint64_t fetch_ns, media_ns, tokenize_ns;
};
void pp_out_free(struct pp_out *o);

/* Loads the tokenizer and looks up the special tokens. Returns 0 or -1 with err. */
int pp_ctx_init(struct pp_ctx *c, uv_loop_t *loop, const struct pp_config *cfg, char *err,
                size_t errlen);
void pp_ctx_free(struct pp_ctx *c);

/* Errors reach the callback as an api_err (400 naming the item's field, e.g.
 * "input[2].image: not a PNG, JPEG, GIF, BMP or WebP image"; 504 for a fetch timeout). */
typedef void (*pp_done_fn)(void *arg, int index, struct pp_out *out, const struct api_err *err);

/* Starts preprocessing item `index` of req (which must outlive the callback). The callback
 * runs on the loop thread, exactly once; `out` belongs to the callee (pp_out_free). */
void pp_start(struct pp_ctx *c, const struct api_req *req, int index, int want_preview,
              pp_done_fn cb, void *arg);

/* Blocking: preprocesses one item by running c's loop (a private loop nobody else runs) until
 * it is done. Returns 0, or -1 with e filled. */
int pp_run_blocking(struct pp_ctx *c, const struct api_req *req, int index, int want_preview,
                    struct pp_out *out, struct api_err *e);

#endif
