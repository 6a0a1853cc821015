/* vlembedctl preprocess: runs one item's media through the gateway's own preprocessing
 * (gateway/media*.c, gateway/fetch.c) and prints what the model will see, as one JSON object:
 * resized size, grid (t, h, w), token count, sampled frame indices, timestamps and the
 * timestamp text of spec §7.5; optionally writes every frame as PNG for inspection.
 *
 *   vlembedctl preprocess photo.jpg
 *   vlembedctl preprocess --video clip.mp4 --fps 0.5 --write-frames /tmp/frames
 *   vlembedctl preprocess --frames a.png b.png c.png
 *   vlembedctl preprocess https://example.com/cat.png
 *
 * Sources are local paths (this is an operator tool), data: URIs or http(s) URLs (fetched with
 * the gateway's fetcher and its SSRF rules; --allow-cidrs opens private ranges). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "common/config.h"
#include "common/exitcode.h"
#include "gateway/fetch.h"
#include "gateway/media.h"
#include "gateway/media_source.h"
#include "supervisor/ctl/ctl.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO_UNUSED
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

struct pp_config {
    int video, frames;
    double fps;
    int64_t max_frames, max_pixels, max_bytes, timeout_ms;
    char *write_frames, *allow_cidrs;
};

#define O(f) offsetof(struct pp_config, f)
static const struct vl_opt pp_opts[] = {
    {"video", VL_OPT_BOOL, O(video), "false", 0, 0, NULL,
     "the source is a video file (mp4, webm, mkv, avi)"},
    {"frames", VL_OPT_BOOL, O(frames), "false", 0, 0, NULL,
     "the sources are the frames of one video"},
    {"fps", VL_OPT_DOUBLE, O(fps), "0", 0, 1000, NULL,
     "video: frames sampled per second (0 = server default 1.0)"},
    {"max-frames", VL_OPT_INT, O(max_frames), "0", 0, 100000, NULL,
     "video: most frames sampled (0 = 64)"},
    {"max-pixels", VL_OPT_INT, O(max_pixels), "0", 0, 1e12, NULL,
     "video: per-frame pixel cap (0 = 786432)"},
    {"max-bytes", VL_OPT_SIZE, O(max_bytes), "256m", 1, 1e12, NULL, "largest source accepted"},
    {"timeout-ms", VL_OPT_INT, O(timeout_ms), "10000", 1, 600000, NULL, "URL fetch deadline"},
    {"write-frames", VL_OPT_STR, O(write_frames), NULL, 0, 0, NULL,
     "write each frame as DIR/frame_NNN.png"},
    {"allow-cidrs", VL_OPT_STR, O(allow_cidrs), NULL, 0, 0, NULL,
     "URL fetches may reach these private CIDRs"},
};
#undef O

struct fetch_wait {
    int done, status;
    uint8_t *body;
    size_t n;
    char err[512];
};

static void on_fetched(void *data, int status, const uint8_t *body, size_t n, const char *err)
{
    struct fetch_wait *w = data;
    w->done = 1;
    w->status = status;
    w->n = n;
    w->body = status == 0 ? fetch_body_steal() : NULL;
    snprintf(w->err, sizeof w->err, "%s", err ? err : "");
}

static void on_closed(void *d)
{
    *(int *)d = 1;
}

/* Bytes of one source: URL, data: URI or local path. */
static int load_source(const char *src, const struct pp_config *c, uint8_t **out, size_t *n,
                       char *err, size_t errlen)
{
    enum media_source_kind k = media_source_classify(src);
    if (k == MEDIA_SRC_DATA)
        return media_source_data_uri(src, strlen(src), c->max_bytes, out, n, err, errlen);
    if (k == MEDIA_SRC_URL) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct fetch_config fc = {.allow_cidrs = c->allow_cidrs};
        struct fetcher *f = fetcher_new(&loop, &fc, err, errlen);
        if (!f) {
            uv_loop_close(&loop);
            return -EINVAL;
        }
        struct fetch_opts fo = {
            .max_bytes = c->max_bytes, .timeout_ms = c->timeout_ms, .max_redirects = -1};
        struct fetch_wait w = {0};
        int rc = fetch_start(f, src, &fo, on_fetched, &w);
        if (rc == 0)
            while (!w.done)
                uv_run(&loop, UV_RUN_ONCE);
        int closed = 0;
        fetcher_close(f, on_closed, &closed);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        if (rc) {
            snprintf(err, errlen, "%s: not a valid http(s) URL", src);
            return rc;
        }
        if (w.status) {
            snprintf(err, errlen, "%s", w.err);
            return w.status;
        }
        *out = w.body;
        *n = w.n;
        return 0;
    }
    const char *path = k == MEDIA_SRC_FILE ? src + 7 : src;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -ENOENT;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || st.st_size > c->max_bytes) {
        fclose(fp);
        snprintf(err, errlen, "%s: larger than --max-bytes", path);
        return -E2BIG;
    }
    *out = malloc(st.st_size ? (size_t)st.st_size : 1);
    *n = fread(*out, 1, (size_t)st.st_size, fp);
    fclose(fp);
    return 0;
}

static int write_pngs(const char *dir, const struct vl_visual *v)
{
    mkdir(dir, 0755);
    size_t fsz = (size_t)v->width * v->height * 3;
    for (int32_t i = 0; i < v->n_frames; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/frame_%03d.png", dir, i);
        if (!stbi_write_png(path, v->width, v->height, 3, v->pixels + fsz * i, v->width * 3)) {
            fprintf(stderr, "vlembedctl preprocess: cannot write %s\n", path);
            return -1;
        }
    }
    return 0;
}

int ctl_cmd_preprocess(int argc, char **argv)
{
    struct pp_config c;
    memset(&c, 0, sizeof c);
    char err[1024];
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    size_t n_opts = sizeof pp_opts / sizeof pp_opts[0];
    int rc = vl_config_load(pp_opts, n_opts, &c, argc, argv, rest, &n_rest, err, sizeof err);
    if (rc == 1 || (rc == 0 && n_rest == 0)) {
        vl_config_usage(pp_opts, n_opts, "vlembedctl preprocess",
                        "[options] SOURCE...   (path, data: URI or http(s) URL)");
        vl_config_free(pp_opts, n_opts, &c);
        free(rest);
        return rc == 1 ? 0 : 2;
    }
    if (rc < 0 || (!c.frames && n_rest != 1)) {
        fprintf(stderr, "vlembedctl preprocess: %s\n",
                rc < 0 ? err : "give one source (or --frames)");
        vl_config_free(pp_opts, n_opts, &c);
        free(rest);
        return 2;
    }
    struct media_limits lim;
    media_limits_default(&lim);
    lim.max_input_bytes = lim.max_video_bytes = c.max_bytes;

    int nsrc = n_rest;
    uint8_t **data = calloc((size_t)nsrc, sizeof *data);
    size_t *sizes = calloc((size_t)nsrc, sizeof *sizes);
    struct vl_visual v;
    memset(&v, 0, sizeof v);
    double *ts = NULL;
    int32_t *idx = NULL, n_idx = 0, src_w = 0, src_h = 0;
    int exit_code = VL_EXIT_OK;
    for (int i = 0; i < nsrc; i++) {
        if ((rc = load_source(rest[i], &c, &data[i], &sizes[i], err, sizeof err))) {
            fprintf(stderr, "vlembedctl preprocess: %s\n", err);
            exit_code = 1;
            goto out;
        }
    }
    if (c.video) {
        struct media_video_opts o = {
            .fps = c.fps, .max_frames = (int32_t)c.max_frames, .max_pixels = c.max_pixels};
        rc = media_video_prepare_file(data[0], sizes[0], &lim, &o, &v, &ts, &idx, &n_idx, err,
                                      sizeof err);
    } else if (c.frames) {
        rc = media_video_prepare_frames((const uint8_t *const *)data, sizes, nsrc, &lim, &v, &ts,
                                        err, sizeof err);
        if (rc == 0) {
            n_idx = v.n_frames;
            idx = calloc((size_t)n_idx, sizeof *idx);
            for (int32_t i = 0; i < n_idx; i++)
                idx[i] = i;
        }
    } else {
        enum media_format fmt;
        media_image_info(data[0], sizes[0], &fmt, &src_w, &src_h, err, sizeof err);
        rc = media_image_prepare(data[0], sizes[0], &lim, &v, err, sizeof err);
    }
    if (rc) {
        fprintf(stderr, "vlembedctl preprocess: %s: %s\n", c.frames ? "frames" : rest[0], err);
        exit_code = 1;
        goto out;
    }
    printf("{\"kind\":\"%s\"", v.kind == VL_VISUAL_IMAGE ? "image" : "video");
    if (src_w)
        printf(",\"source_size\":[%d,%d]", src_w, src_h);
    printf(",\"resized_size\":[%d,%d],\"grid_thw\":[%d,%d,%d],\"tokens\":%lld,\"frames\":%d",
           v.width, v.height, v.grid_t, v.grid_h, v.grid_w,
           (long long)v.grid_t * v.grid_h * v.grid_w / 4, v.n_frames);
    if (ts) {
        printf(",\"frame_indices\":[");
        for (int32_t i = 0; i < n_idx; i++)
            printf("%s%d", i ? "," : "", idx[i]);
        printf("],\"timestamps\":[");
        for (int32_t i = 0; i < v.grid_t; i++)
            printf("%s%.17g", i ? "," : "", ts[i]);
        printf("],\"timestamp_text\":[");
        for (int32_t i = 0; i < v.grid_t; i++)
            printf("%s\"<%.1f seconds>\"", i ? "," : "", ts[i]);
        printf("]");
    }
    if (c.write_frames) {
        if (write_pngs(c.write_frames, &v) != 0) {
            exit_code = 1;
            printf("}\n");
            goto out;
        }
        printf(",\"frames_dir\":\"%s\"", c.write_frames);
    }
    printf("}\n");
out:
    for (int i = 0; i < nsrc; i++)
        free(data[i]);
    free(data);
    free(sizes);
    free(v.pixels);
    free(ts);
    free(idx);
    free(rest);
    vl_config_free(pp_opts, n_opts, &c);
    return exit_code;
}
