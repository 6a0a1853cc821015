/* Preprocessing of one API item into a worker item (struct vl_item): fetch each media source
 * (http(s) through gateway/fetch.h on the loop; data: URIs and msgpack bytes in place), then on
 * the libuv thread pool read every header, then decode and resize (gateway/media.h), render
 * the prompt and tokenize (gateway/prompt.h). The loop thread never does CPU work here.
 *
 * The items of one request share a gate (struct pp_gate): each item's sources are loaded and
 * their headers read, the declared pixels are charged to the request's budget
 * (media_limits.max_request_decoded_pixels, gateway/pixel_budget.h), and only when every item
 * has been charged within the budget does any item decode. Over the budget, every item fails
 * with 413 too_many_pixels and nothing of the request is decoded.
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
    /* The process-wide buffered-bytes budget (gateway/membudget.h), or NULL: fetched bodies,
     * decoded data: URIs and local files are charged while held; one that does not fit fails
     * its item with 503 memory_busy naming the field. */
    struct mem_budget *mem_budget;
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
    int64_t decoded_pixels; /* charged to the request's budget (headers: w * h * frames) */
};
void pp_out_free(struct pp_out *o);

/* Loads the tokenizer and looks up the special tokens. Returns 0 or -1 with err. */
int pp_ctx_init(struct pp_ctx *c, uv_loop_t *loop, const struct pp_config *cfg, char *err,
                size_t errlen);
void pp_ctx_free(struct pp_ctx *c);

/* Errors reach the callback as an api_err (400 naming the item's field, e.g.
 * "input[2].image: not a PNG, JPEG, GIF, BMP or WebP image"; 504 for a fetch timeout). */
typedef void (*pp_done_fn)(void *arg, int index, struct pp_out *out, const struct api_err *err);

/* One request's items meet at a gate before decoding (above). Create it, pp_start every item
 * with it, then pp_gate_seal it (no more items will come): the gate frees itself once sealed
 * and every started item has been charged or has failed. Loop thread only. */
struct pp_gate;
struct pp_gate *pp_gate_new(struct pp_ctx *c);
void pp_gate_seal(struct pp_gate *g);
/* A last check once every item is within the budget, before anything is decoded (the
 * per-client pixel rate): called on the loop with the request's total pixels; non-zero fails
 * every item with *e instead of decoding. Set before the first pp_start. */
typedef int (*pp_gate_check_fn)(void *arg, int64_t pixels, struct api_err *e);
void pp_gate_set_check(struct pp_gate *g, pp_gate_check_fn fn, void *arg);

/* Starts preprocessing item `index` of req (which must outlive the callback) behind gate (NULL:
 * a gate of its own, for a single item). The callback runs on the loop thread, exactly once,
 * possibly before this returns; `out` belongs to the callee (pp_out_free). When the request is
 * over its pixel budget every item's callback gets the same 413 too_many_pixels error, the
 * item that passed the budget first. */
void pp_start(struct pp_ctx *c, const struct api_req *req, int index, struct pp_gate *gate,
              int want_preview, pp_done_fn cb, void *arg);

/* Blocking: preprocesses one item by running c's loop (a private loop nobody else runs) until
 * it is done. Returns 0, or -1 with e filled. */
int pp_run_blocking(struct pp_ctx *c, const struct api_req *req, int index, int want_preview,
                    struct pp_out *out, struct api_err *e);

#endif
