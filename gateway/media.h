/* Media preprocessing on the gateway: encoded image / video bytes in, uint8 RGB frames at the
 * size the reference model expects out (spec §7). Everything here is pure CPU work, thread-safe
 * and free of libuv, so that the gateway can run it on its thread pool; fetching the bytes is
 * gateway/fetch.h and gateway/media_source.h.
 *
 *   decode (media_decode.c)  PNG, BMP, GIF (first frame) with stb_image; JPEG with libjpeg-turbo;
 *                            WebP with libwebp. Converted to RGB as Pillow's to_rgb() does in
 *                            the reference: RGBA composited on white, every other mode
 *                            converted with its alpha dropped. EXIF orientation is not applied.
 *   resize  (media_resize.c) smart_resize (spec §7.1) and a resampler identical to Pillow's
 *                            Image.resize(size, BICUBIC); the float antialiased bicubic of
 *                            torchvision used by the video path (spec §7.2, §12).
 *   video   (media_video.c)  frame lists (spec §7.3) and container files via FFmpeg (§7.2),
 *                            frame sampling and the timestamps of §7.5.
 *
 * Errors: functions return 0 or a negative errno-style code and write one sentence to err
 * (without the item's name: the caller prefixes it, e.g. "input[3].image: "):
 *   -ENOTSUP  not a supported format (decided from the bytes, never from a label)
 *   -EINVAL   corrupt or truncated data, degenerate size (a side < 2 px, aspect ratio > 200)
 *   -E2BIG    over an operator limit (bytes, width/height, decoded pixels, frames)
 *   -ENOMEM   the decoder asked for more memory than the item's budget (decompression bomb) */
#ifndef VL_GATEWAY_MEDIA_H
#define VL_GATEWAY_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "common/item.h"

/* Operator-configurable limits (docs/media.md lists each with its default and reason). */
struct media_limits {
    int64_t max_input_bytes;         /* one encoded image (fetched, uploaded or data: URI) */
    int64_t max_video_bytes;         /* one encoded video file */
    int32_t max_width, max_height;   /* checked from the header before decoding */
    int64_t max_decoded_pixels;      /* width*height of one decoded image or video frame */
    int64_t image_min_pixels;        /* smart_resize band for images, spec §7.1: 4*32*32 */
    int64_t image_max_pixels;        /* 1800*32*32 */
    int32_t max_aspect_ratio;        /* 200 in the reference */
    double video_fps;                /* frames sampled per second of video, spec §7.2: 1.0 */
    int32_t video_min_frames;        /* 4 */
    int32_t video_max_frames;        /* 64 (also caps frame lists, spec §7.3) */
    int64_t video_min_pixels;        /* per frame, 128*32*32 */
    int64_t video_max_pixels;        /* per frame, 768*32*32 */
    int64_t video_total_pixels;      /* whole clip: 10*768*32*32 (the embedder's cap) */
    int64_t video_max_source_frames; /* frames in a container we are willing to demux */
    int64_t video_max_decode_ms;     /* wall-clock budget of one video file's decoding */
    int32_t frame_list_fps_x10;      /* timestamps of frame lists: fps 2.0 (qwen-vl-utils) */
    /* all the images and video frames one request decodes, summed from their headers before
     * anything is decoded (gateway/pixel_budget.h); 0: no limit */
    int64_t max_request_decoded_pixels;
};

void media_limits_default(struct media_limits *l);

/* Per-request video overrides; 0 means "the operator's value". Each must be within the limits
 * (a larger value is an error, not silently clamped). */
struct media_video_opts {
    double fps;
    int32_t max_frames;
    int64_t max_pixels;
};

/* ---- images ---------------------------------------------------------------------------- */

enum media_format {
    MEDIA_FMT_UNKNOWN = 0,
    MEDIA_FMT_PNG,
    MEDIA_FMT_JPEG,
    MEDIA_FMT_GIF,
    MEDIA_FMT_BMP,
    MEDIA_FMT_WEBP,
};
/* Decides the format from the first bytes; a label (Content-Type, data: MIME) is never used. */
enum media_format media_format_sniff(const uint8_t *data, size_t n);
const char *media_format_name(enum media_format f);

/* Reads width and height from the header only (no pixel data is decoded). */
int media_image_info(const uint8_t *data, size_t n, enum media_format *fmt, int32_t *w, int32_t *h,
                     char *err, size_t errlen);

/* Decodes to packed RGB (malloc'd, w*h*3) the way the reference's Pillow open + to_rgb() does.
 * The header is checked against the limits before any pixel memory is allocated, and the
 * decoder's own allocations are held to a budget derived from the header. */
int media_image_decode_rgb(const uint8_t *data, size_t n, const struct media_limits *l,
                           uint8_t **rgb, int32_t *w, int32_t *h, char *err, size_t errlen);

/* Decode + smart_resize(factor 32, image band) + Pillow bicubic: fills an image vl_visual
 * (kind IMAGE, one frame, grid (1, h/16, w/16), malloc'd pixels the caller frees). */
int media_image_prepare(const uint8_t *data, size_t n, const struct media_limits *l,
                        struct vl_visual *out, char *err, size_t errlen);

/* ---- resizing -------------------------------------------------------------------------- */

/* qwen-vl-utils smart_resize: both sides multiples of factor, pixels within [min, max], aspect
 * kept; -EINVAL if max(h,w)/min(h,w) > 200 (the reference's MAX_RATIO) or a side is < 1. */
int media_smart_resize(int32_t h, int32_t w, int32_t factor, int64_t min_pixels, int64_t max_pixels,
                       int32_t *out_h, int32_t *out_w, char *err, size_t errlen);

/* The same with a fractional pixel band, as the video path computes it in Python floats. */
int media_smart_resize_d(int32_t h, int32_t w, int32_t factor, double min_pixels, double max_pixels,
                         int32_t *out_h, int32_t *out_w, char *err, size_t errlen);

/* Pillow Image.resize((dw, dh), Image.BICUBIC) on packed RGB: the same coefficients, the same
 * 22-bit fixed point, horizontal pass then vertical pass with a uint8 image between them.
 * Byte-identical to Pillow 9.4 / 12.x. src and dst must not overlap. */
void media_resize_bicubic(const uint8_t *src, int32_t sw, int32_t sh, uint8_t *dst, int32_t dw,
                          int32_t dh);

/* torchvision.transforms.functional.resize(uint8 tensor, [dh, dw], BICUBIC, antialias=True):
 * PyTorch's antialiased bicubic (a = -0.5, Pillow's support scaling) in float32 with a float
 * intermediate, then clamp to [0, 255] and round half to even. Used by the video path. */
void media_resize_bicubic_aa_float(const uint8_t *src, int32_t sw, int32_t sh, uint8_t *dst,
                                   int32_t dw, int32_t dh);

/* ---- video ----------------------------------------------------------------------------- */

/* A video given as a list of encoded frames (spec §7.3): at most video_max_frames kept (the
 * embedder's linspace subsampling), each decoded and resized as an image, padded to an even
 * count, then resized again with the video budget. Fills a video vl_visual and *timestamps
 * (malloc'd, grid_t entries, seconds, spec §7.5 with fps 2.0). */
int media_video_prepare_frames(const uint8_t *const *frames, const size_t *sizes, int n,
                               const struct media_limits *l, struct vl_visual *out,
                               double **timestamps, char *err, size_t errlen);

/* A video container (mp4, webm, mkv, ... whatever libavformat probes) decoded with FFmpeg,
 * sampled per spec §7.2 (fps, [min, max] frames, even count, round(linspace)), resized with the
 * video budget. Fills out, *timestamps (grid_t entries), *frame_indices / *n_indices (the
 * sampled source frame numbers), all malloc'd. opts may be NULL. */
int media_video_prepare_file(const uint8_t *data, size_t n, const struct media_limits *l,
                             const struct media_video_opts *opts, struct vl_visual *out,
                             double **timestamps, int32_t **frame_indices, int32_t *n_indices,
                             char *err, size_t errlen);

/* Reads a container's video stream without decoding it: frame size and the number of frames
 * media_video_prepare_file would decode (it decodes from the first frame up to the last
 * sampled one, which is always the last frame). Checks the byte, size and source-frame limits
 * as media_video_prepare_file does. Costs one demuxing pass over the file. */
int media_video_probe_file(const uint8_t *data, size_t n, const struct media_limits *l, int32_t *w,
                           int32_t *h, int64_t *frames, char *err, size_t errlen);

/* The frames a frame list of n keeps when max_frames is smaller (the embedder's
 * frames[linspace(0, n-1, max, dtype=int)]): writes min(n, max_frames) indices to pick and
 * returns that count. */
int32_t media_video_list_pick(int32_t n, int32_t max_frames, int32_t *pick);

/* Spec §7.2 smart_nframes: frames to sample from total frames at native_fps; -EINVAL if fewer
 * than 2 are possible. */
int media_video_nframes(int64_t total_frames, double native_fps, double fps, int32_t min_frames,
                        int32_t max_frames, int32_t *out, char *err, size_t errlen);

/* round(torch.linspace(0, total-1, n)) in float32, as the reference samples frame indices. */
void media_video_sample_indices(int64_t total_frames, int32_t n, int32_t *idx);

/* Spec §7.5: one timestamp per frame pair, (idx[2k] + idx[2k+1]) / 2 / fps (indices padded to
 * even with the last one). Writes (n+1)/2 values. */
void media_video_timestamps(const int32_t *idx, int32_t n, double fps, double *ts);

/* Per-frame pixel budget of the video resize: max(min(max_px, total/n*2), int(min_px*1.05)),
 * in double as Python computes it. */
double media_video_frame_max_pixels(int64_t min_px, int64_t max_px, int64_t total_px, int32_t n);

#endif
