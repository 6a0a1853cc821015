/* Video preprocessing (gateway/media_video.c): frame sampling arithmetic against values worked
 * out from qwen-vl-utils' formulas; container files (mp4/h264, webm/vp9, mkv/mpeg4, avi) made at
 * test time with the ffmpeg CLI, whose sampled frames are checked pixel for pixel against the
 * frames ffmpeg itself extracts (then resized by the same float resampler); frame lists (§7.3);
 * per-request overrides; bad input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/media.h"
#include "tests/test.h"

static char dir[256];
static struct media_limits lim;

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    return system(cmd);
}

static uint8_t *slurp(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return test_read_file(path, n);
}

TEST(test_setup)
{
    media_limits_default(&lim);
    snprintf(dir, sizeof dir, "/tmp/media-video-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    /* 96x72, 10 fps, 3 s = 30 frames; testsrc draws a frame counter, so frames differ. */
    const char *src = "ffmpeg -loglevel error -y -f lavfi -i testsrc=size=96x72:rate=10:duration=3";
    CHECK_EQ_INT(sh("%s -c:v libx264 -pix_fmt yuv420p %s/v.mp4", src, dir), 0);
    CHECK_EQ_INT(sh("%s -c:v libvpx-vp9 -pix_fmt yuv420p %s/v.webm", src, dir), 0);
    CHECK_EQ_INT(sh("%s -c:v mpeg4 %s/v.mkv", src, dir), 0);
    CHECK_EQ_INT(sh("%s -c:v mjpeg %s/v.avi", src, dir), 0);
    /* 200 frames at 25 fps (8 s) for the overrides */
    CHECK_EQ_INT(sh("ffmpeg -loglevel error -y -f lavfi -i testsrc=size=64x48:rate=25:duration=8 "
                    "-c:v libx264 -pix_fmt yuv420p %s/long.mp4%s",
                    dir, ""),
                 0);
    /* a 1x... degenerate and a PNG for "not a video" */
    CHECK_EQ_INT(sh("ffmpeg -loglevel error -y -f lavfi -i color=size=64x48:rate=1:duration=1 "
                    "-frames:v 1 %s/img.png%s",
                    dir, ""),
                 0);
    CHECK_EQ_INT(sh("ffmpeg -loglevel error -y -f lavfi -i testsrc=size=64x48:rate=1:duration=3 "
                    "-start_number 0 %s/f%%02d.png%s",
                    dir, ""),
                 0);
    CHECK_EQ_INT(sh("ffmpeg -loglevel error -y -f lavfi -i testsrc=size=128x48:rate=1:duration=1 "
                    "-frames:v 1 %s/other.png%s",
                    dir, ""),
                 0);
}

TEST(test_sampling_arithmetic)
{
    int32_t n;
    char err[200];
    /* 30 frames at 10 fps, 1 fps -> 3 -> clamped up to min 4 */
    CHECK_EQ_INT(media_video_nframes(30, 10, 1.0, 4, 64, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 4);
    /* 3000 frames at 30 fps = 100 s -> 100 -> max 64 */
    CHECK_EQ_INT(media_video_nframes(3000, 30, 1.0, 4, 64, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 64);
    /* 19 s at 1 fps -> 19 -> floor to even 18 */
    CHECK_EQ_INT(media_video_nframes(475, 25, 1.0, 4, 64, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 18);
    /* 3 frames: min 4 capped by total 3, floored to 2 */
    CHECK_EQ_INT(media_video_nframes(3, 25, 1.0, 4, 64, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(media_video_nframes(1, 25, 1.0, 4, 64, &n, err, sizeof err), -EINVAL);
    int32_t idx[64];
    media_video_sample_indices(30, 4, idx); /* linspace(0, 29, 4) = 0, 9.67, 19.33, 29 */
    CHECK_EQ_INT(idx[0], 0);
    CHECK_EQ_INT(idx[1], 10);
    CHECK_EQ_INT(idx[2], 19);
    CHECK_EQ_INT(idx[3], 29);
    media_video_sample_indices(11, 6, idx); /* 0, 2, 4, 6, 8, 10 */
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(idx[i], 2 * i);
    media_video_sample_indices(6, 4, idx); /* 0, 1.667, 3.333, 5 */
    CHECK_EQ_INT(idx[1], 2);
    CHECK_EQ_INT(idx[2], 3);
    media_video_sample_indices(8, 8, idx);
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(idx[i], i);
    media_video_sample_indices(4, 4, idx); /* half-way ties: 0, 1, 2, 3 exactly */
    CHECK_EQ_INT(idx[3], 3);
    media_video_sample_indices(6, 2, idx);
    CHECK_EQ_INT(idx[1], 5);
    media_video_sample_indices(3, 4, idx); /* 0, 0.667, 1.333, 2 */
    CHECK_EQ_INT(idx[1], 1);
    CHECK_EQ_INT(idx[2], 1);
    media_video_sample_indices(2, 4, idx); /* 0, 0.333, 0.667, 1 */
    CHECK_EQ_INT(idx[1], 0);
    CHECK_EQ_INT(idx[2], 1);
    media_video_sample_indices(9, 5, idx); /* 0, 2, 4, 6, 8 */
    CHECK_EQ_INT(idx[2], 4);
    media_video_sample_indices(10, 4, idx); /* 0, 3, 6, 9 */
    CHECK_EQ_INT(idx[1], 3);
    media_video_sample_indices(6, 5, idx); /* 0, 1.25, 2.5, 3.75, 5: 2.5 rounds to even 2 */
    CHECK_EQ_INT(idx[1], 1);
    CHECK_EQ_INT(idx[2], 2);
    CHECK_EQ_INT(idx[3], 4);
    double ts[4];
    int32_t s[] = {0, 10, 19, 29};
    media_video_timestamps(s, 4, 10.0, ts);
    CHECK_NEAR(ts[0], 0.5, 1e-12);
    CHECK_NEAR(ts[1], 2.4, 1e-12);
    int32_t odd[] = {0, 1, 2};
    media_video_timestamps(odd, 3, 2.0, ts); /* padded with the last index */
    CHECK_NEAR(ts[0], 0.25, 1e-12);
    CHECK_NEAR(ts[1], 1.0, 1e-12);
    /* per-frame budgets: 4 frames -> 786432; 64 frames -> 245760; 2000 frames -> floor 137625 */
    CHECK_NEAR(media_video_frame_max_pixels(131072, 786432, 7864320, 4), 786432, 0);
    CHECK_NEAR(media_video_frame_max_pixels(131072, 786432, 7864320, 64), 245760, 0);
    CHECK_NEAR(media_video_frame_max_pixels(131072, 786432, 7864320, 2000), 137625, 0);
}

/* The frames ffmpeg itself extracts (rgb24, bicubic swscale), resized by the same resampler. */
static uint8_t *ffmpeg_frame(const char *file, int index, int w, int h)
{
    char cmd[1200], out[300];
    snprintf(out, sizeof out, "%s/frame.rgb", dir);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -loglevel error -y -i %s/%s -vf 'select=eq(n\\,%d)' -vsync 0 -frames:v 1 "
             "-sws_flags bicubic -pix_fmt rgb24 -f rawvideo %s",
             dir, file, index, out);
    if (system(cmd) != 0)
        return NULL;
    size_t n;
    uint8_t *b = slurp("frame.rgb", &n);
    if (b && n != (size_t)w * h * 3) {
        free(b);
        return NULL;
    }
    return b;
}

TEST(test_container_files)
{
    const char *files[] = {"v.mp4", "v.webm", "v.mkv", "v.avi"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t n;
        uint8_t *data = slurp(files[f], &n);
        struct vl_visual v;
        double *ts;
        int32_t *idx, ni;
        char err[256];
        int rc = media_video_prepare_file(data, n, &lim, NULL, &v, &ts, &idx, &ni, err, sizeof err);
        free(data);
        if (rc) {
            TEST_FAIL_AT("%s: %d %s", files[f], rc, err);
            continue;
        }
        /* 30 frames, 10 fps -> 4 frames [0, 10, 19, 29]; 96x72 -> (96*72 < 131072) upscaled:
         * beta = sqrt(131072/6912) = 4.3546 -> ceil(72*b/32)*32 = 320, ceil(96*b/32)*32 = 448 */
        CHECK_EQ_INT(ni, 4);
        CHECK_EQ_INT(v.n_frames, 4);
        CHECK_EQ_INT(v.grid_t, 2);
        CHECK_EQ_INT(v.height, 320);
        CHECK_EQ_INT(v.width, 448);
        CHECK_EQ_INT(v.grid_h, 20);
        CHECK_EQ_INT(v.grid_w, 28);
        CHECK_EQ_INT(v.kind, VL_VISUAL_VIDEO);
        CHECK_EQ_INT(idx[1], 10);
        CHECK_NEAR(ts[0], 0.5, 1e-9);
        CHECK_NEAR(ts[1], 2.4, 1e-9);
        size_t fsz = (size_t)v.height * v.width * 3;
        for (int k = 0; k < ni; k++) {
            uint8_t *raw = ffmpeg_frame(files[f], idx[k], 96, 72);
            if (!raw) {
                TEST_FAIL_AT("%s: ffmpeg could not extract frame %d", files[f], idx[k]);
                continue;
            }
            uint8_t *want = malloc(fsz);
            media_resize_bicubic_aa_float(raw, 96, 72, want, v.width, v.height);
            size_t diff = 0;
            for (size_t i = 0; i < fsz; i++)
                diff += want[i] != v.pixels[fsz * k + i];
            if (diff)
                TEST_FAIL_AT("%s frame %d: %zu of %zu bytes differ from ffmpeg's frame", files[f],
                             idx[k], diff, fsz);
            free(want);
            free(raw);
        }
        free(v.pixels);
        free(ts);
        free(idx);
    }
}

TEST(test_overrides)
{
    size_t n;
    uint8_t *data = slurp("long.mp4", &n);
    struct vl_visual v;
    double *ts;
    int32_t *idx, ni;
    char err[256];
    /* 200 frames at 25 fps = 8 s: default 1 fps -> 8 frames */
    CHECK_EQ_INT(media_video_prepare_file(data, n, &lim, NULL, &v, &ts, &idx, &ni, err, sizeof err),
                 0);
    CHECK_EQ_INT(ni, 8);
    CHECK_EQ_INT(idx[7], 199);
    free(v.pixels);
    free(ts);
    free(idx);
    /* fps 0.5 -> 4 frames; max_pixels lowers the frame size */
    struct media_video_opts o = {.fps = 0.5, .max_pixels = 131072};
    CHECK_EQ_INT(media_video_prepare_file(data, n, &lim, &o, &v, &ts, &idx, &ni, err, sizeof err),
                 0);
    CHECK_EQ_INT(ni, 4);
    /* max = max(min(131072, ..), 137625); the min_pixels branch of smart_resize may pass it,
     * as in the reference: 48x64 -> 320x448 */
    CHECK_EQ_INT(v.height, 320);
    CHECK_EQ_INT(v.width, 448);
    free(v.pixels);
    free(ts);
    free(idx);
    struct media_limits l2 = lim;
    l2.video_max_frames = 6; /* operator cap */
    CHECK_EQ_INT(media_video_prepare_file(data, n, &l2, NULL, &v, &ts, &idx, &ni, err, sizeof err),
                 0);
    CHECK_EQ_INT(ni, 6);
    free(v.pixels);
    free(ts);
    free(idx);
    o = (struct media_video_opts){.max_frames = 128}; /* above the operator's 64 */
    CHECK_EQ_INT(media_video_prepare_file(data, n, &lim, &o, &v, &ts, &idx, &ni, err, sizeof err),
                 -EINVAL);
    CHECK_CONTAINS(err, "may only lower");
    l2 = lim;
    l2.max_video_bytes = 100;
    CHECK_EQ_INT(media_video_prepare_file(data, n, &l2, NULL, &v, &ts, &idx, &ni, err, sizeof err),
                 -E2BIG);
    l2 = lim;
    l2.max_width = 32;
    CHECK_EQ_INT(media_video_prepare_file(data, n, &l2, NULL, &v, &ts, &idx, &ni, err, sizeof err),
                 -E2BIG);
    l2 = lim;
    l2.video_max_decode_ms = 0; /* the budget is checked before each packet */
    CHECK_EQ_INT(media_video_prepare_file(data, n, &l2, NULL, &v, &ts, &idx, &ni, err, sizeof err),
                 -ETIMEDOUT);
    CHECK_CONTAINS(err, "took 0 ms or longer");
    l2 = lim;
    l2.video_max_source_frames = 100;
    CHECK_EQ_INT(media_video_prepare_file(data, n, &l2, NULL, &v, &ts, &idx, &ni, err, sizeof err),
                 -E2BIG);
    /* truncated: half the file (the moov index is at its end) */
    int rc = media_video_prepare_file(data, n / 2, &lim, NULL, &v, &ts, &idx, &ni, err, sizeof err);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_CONTAINS(err, "truncated");
    free(data);
    data = slurp("img.png", &n);
    CHECK_EQ_INT(media_video_prepare_file(data, n, &lim, NULL, &v, &ts, &idx, &ni, err, sizeof err),
                 -ENOTSUP);
    CHECK_CONTAINS(err, "not a supported video container");
    free(data);
}

TEST(test_frame_lists)
{
    const char *names[] = {"f00.png", "f01.png", "f02.png"};
    uint8_t *fr[100];
    size_t sz[100];
    for (int i = 0; i < 3; i++)
        fr[i] = slurp(names[i], &sz[i]);
    struct vl_visual v;
    double *ts;
    char err[256];
    CHECK_EQ_INT(media_video_prepare_frames((const uint8_t *const *)fr, sz, 3, &lim, &v, &ts, err,
                                            sizeof err),
                 0);
    /* 3 frames padded to 4; 64x48 -> 64x64 (Pillow) -> video band: 384x384 (float bicubic) */
    CHECK_EQ_INT(v.n_frames, 4);
    CHECK_EQ_INT(v.grid_t, 2);
    CHECK_EQ_INT(v.height, 384);
    CHECK_EQ_INT(v.width, 384);
    size_t fsz = (size_t)384 * 384 * 3;
    CHECK(memcmp(v.pixels + 2 * fsz, v.pixels + 3 * fsz, fsz) == 0); /* the padded copy */
    CHECK(memcmp(v.pixels + 1 * fsz, v.pixels + 2 * fsz, fsz) != 0);
    CHECK_NEAR(ts[0], 0.25, 1e-12); /* indices 0,1 at fps 2 */
    CHECK_NEAR(ts[1], 1.25, 1e-12);
    /* the same frame by hand: decode, Pillow bicubic to 64x64, float bicubic to 384x384 */
    uint8_t *rgb, *a = malloc(64 * 64 * 3), *b = malloc(fsz);
    int32_t w, h;
    CHECK_EQ_INT(media_image_decode_rgb(fr[1], sz[1], &lim, &rgb, &w, &h, err, sizeof err), 0);
    media_resize_bicubic(rgb, w, h, a, 64, 64);
    media_resize_bicubic_aa_float(a, 64, 64, b, 384, 384);
    CHECK(memcmp(b, v.pixels + fsz, fsz) == 0);
    free(rgb);
    free(a);
    free(b);
    free(v.pixels);
    free(ts);
    /* 100 frames -> 64 kept */
    for (int i = 3; i < 100; i++) {
        fr[i] = fr[i % 3];
        sz[i] = sz[i % 3];
    }
    CHECK_EQ_INT(media_video_prepare_frames((const uint8_t *const *)fr, sz, 100, &lim, &v, &ts, err,
                                            sizeof err),
                 0);
    CHECK_EQ_INT(v.n_frames, 64);
    /* 64 frames: per-frame budget 245760; 64x64 still goes up to the 131072 floor: 384x384 */
    CHECK_EQ_INT(v.height * v.width, 384 * 384);
    free(v.pixels);
    free(ts);
    /* a frame of another size, and a bad frame, name the frame */
    size_t on;
    uint8_t *other = slurp("other.png", &on), *f1 = fr[1];
    fr[1] = other;
    sz[1] = on;
    CHECK_EQ_INT(media_video_prepare_frames((const uint8_t *const *)fr, sz, 3, &lim, &v, &ts, err,
                                            sizeof err),
                 -EINVAL);
    CHECK_CONTAINS(err, "one size");
    fr[1] = (uint8_t *)"garbage";
    sz[1] = 7;
    CHECK_EQ_INT(media_video_prepare_frames((const uint8_t *const *)fr, sz, 3, &lim, &v, &ts, err,
                                            sizeof err),
                 -ENOTSUP);
    CHECK_CONTAINS(err, "frame 1:");
    free(other);
    free(f1);
    free(fr[0]);
    free(fr[2]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

TEST_MAIN(test_setup, test_sampling_arithmetic, test_container_files, test_overrides,
          test_frame_lists)
