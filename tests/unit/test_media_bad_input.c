/* Bad and edge-case images through media_image_prepare: each gives one clear error and no
 * crash, and memory stays bounded (the process's peak RSS is checked after the bomb). Inputs are
 * made at test time by tests/media/make_bad_inputs.py (Pillow, zlib, ffmpeg). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gateway/media.h"
#include "tests/test.h"

static char dir[256];
static struct media_limits lim;

static uint8_t *slurp(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return test_read_file(path, n);
}

/* Runs prepare on a file (optionally cut to `cut` bytes); returns rc and the error. */
static int prep(const char *name, size_t cut, char *err, size_t errlen, struct vl_visual *v)
{
    size_t n;
    uint8_t *b = slurp(name, &n);
    if (!b) {
        snprintf(err, errlen, "missing fixture %s", name);
        return -999;
    }
    if (cut && cut < n)
        n = cut;
    err[0] = 0;
    int rc = media_image_prepare(b, n, &lim, v, err, errlen);
    free(b);
    return rc;
}

TEST(test_setup)
{
    media_limits_default(&lim);
    snprintf(dir, sizeof dir, "/tmp/media-bad-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char cmd[512];
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    snprintf(cmd, sizeof cmd, "%s tests/media/make_bad_inputs.py %s", py, dir);
    CHECK_EQ_INT(system(cmd), 0);
}

TEST(test_valid_formats)
{
    const char *ok[] = {"ok.png", "ok.jpg", "ok.gif", "ok.webp", "ok.bmp", "jpeg_as.png"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char err[256];
        struct vl_visual v;
        int rc = prep(ok[i], 0, err, sizeof err, &v);
        if (rc != 0) {
            TEST_FAIL_AT("%s: %d %s", ok[i], rc, err);
            continue;
        }
        /* 64x48 -> smart_resize -> 64x64 (48/32 = 1.5 rounds half to even: 2) */
        CHECK_EQ_INT(v.width, 64);
        CHECK_EQ_INT(v.height, 64);
        CHECK_EQ_INT(v.grid_t, 1);
        CHECK_EQ_INT(v.grid_h, 4);
        CHECK_EQ_INT(v.grid_w, 4);
        CHECK_EQ_INT(v.n_frames, 1);
        CHECK_EQ_INT(v.kind, VL_VISUAL_IMAGE);
        free(v.pixels);
    }
}

TEST(test_unsupported_and_mislabelled)
{
    char err[256];
    struct vl_visual v;
    CHECK_EQ_INT(prep("html.png", 0, err, sizeof err, &v), -ENOTSUP);
    CHECK_CONTAINS(err, "not a supported image format");
    CHECK_CONTAINS(err, "3c 68 74 6d");
    CHECK_EQ_INT(prep("video.mp4", 0, err, sizeof err, &v), -ENOTSUP);
    CHECK_EQ_INT(media_image_prepare((const uint8_t *)"", 0, &lim, &v, err, sizeof err), -ENOTSUP);
    CHECK_CONTAINS(err, "empty");
    CHECK(v.pixels == NULL);
}

TEST(test_truncated)
{
    const char *files[] = {"ok.png", "ok.jpg", "ok.gif", "ok.webp", "ok.bmp"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n;
        free(slurp(files[i], &n));
        /* A PNG missing only its IEND chunk's tail still decodes, in Pillow too. */
        size_t cuts[] = {n / 2, 20, n - 4};
        for (size_t k = 0; k < (strcmp(files[i], "ok.png") == 0 ? 2u : 3u); k++) {
            char err[256];
            struct vl_visual v;
            int rc = prep(files[i], cuts[k], err, sizeof err, &v);
            if (rc != -EINVAL)
                TEST_FAIL_AT("%s cut to %zu bytes: rc %d (%s), expected -EINVAL", files[i], cuts[k],
                             rc, err);
            else if (!strstr(err, "trunc") && !strstr(err, "corrupt"))
                TEST_FAIL_AT("%s cut to %zu: unclear error '%s'", files[i], cuts[k], err);
            if (rc == 0)
                free(v.pixels);
        }
    }
}

TEST(test_dimension_caps)
{
    char err[256];
    struct vl_visual v;
    CHECK_EQ_INT(prep("huge_header.png", 0, err, sizeof err, &v), -E2BIG);
    CHECK_CONTAINS(err, "30000x30000");
    CHECK_CONTAINS(err, "not decoded");
    CHECK_EQ_INT(prep("big_dims.png", 0, err, sizeof err, &v), -E2BIG);
    CHECK_CONTAINS(err, "20000x100");
    struct media_limits small = lim;
    small.max_decoded_pixels = 1000;
    size_t n;
    uint8_t *b = slurp("ok.jpg", &n);
    CHECK_EQ_INT(media_image_prepare(b, n, &small, &v, err, sizeof err), -E2BIG);
    small = lim;
    small.max_input_bytes = 100;
    CHECK_EQ_INT(media_image_prepare(b, n, &small, &v, err, sizeof err), -E2BIG);
    CHECK_CONTAINS(err, "bytes; the limit is 100");
    free(b);
}

TEST(test_bomb_memory_bounded)
{
    char err[256];
    struct vl_visual v;
    /* 100x100 header, IDAT inflating to 256 MiB: libpng inflates only the rows the header
     * declares (Pillow does the same), so this decodes to a black image in bounded memory. */
    CHECK_EQ_INT(prep("bomb.png", 0, err, sizeof err, &v), 0);
    CHECK_EQ_INT(v.width * v.height, 96 * 96);
    free(v.pixels);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "peak RSS after the 256 MiB PNG bomb and the 30000x30000 header: %ld KiB\n",
            ru.ru_maxrss);
    CHECK(ru.ru_maxrss < 64 * 1024); /* KiB: the bomb's 256 MiB never materialised */
}

/* A 29-byte GIF claiming 16000x16000: refused from its header, nothing allocated. */
TEST(test_gif_header_cap)
{
    char err[256];
    struct vl_visual v;
    static const uint8_t gif[] = {'G',  'I',  'F', '8',  '9', 'a',  0x80, 0x3e, 0x80, 0x3e,
                                  0,    0,    0,   0x2c, 0,   0,    0,    0,    0x80, 0x3e,
                                  0x80, 0x3e, 0,   2,    2,   0x4c, 1,    0,    0x3b};
    CHECK_EQ_INT(media_image_prepare(gif, sizeof gif, &lim, &v, err, sizeof err), -E2BIG);
    CHECK_CONTAINS(err, "16000x16000");
}

/* Random byte flips and cuts of every valid file: each call returns 0 or a negative code with a
 * message, never crashes (run under SAN=address,undefined too). Deterministic (fixed seed). */
TEST(test_mutations)
{
    const char *files[] = {"ok.png", "ok.jpg", "ok.gif", "ok.webp", "ok.bmp"};
    uint32_t seed = 12345;
    int ok = 0, bad = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t n;
        uint8_t *orig = slurp(files[f], &n);
        uint8_t *b = malloc(n);
        for (int k = 0; k < 300; k++) {
            memcpy(b, orig, n);
            int flips = 1 + (int)(seed % 8);
            for (int i = 0; i < flips; i++) {
                seed = seed * 1664525u + 1013904223u;
                b[(seed >> 8) % n] ^= (uint8_t)(1u << (seed % 8));
            }
            seed = seed * 1664525u + 1013904223u;
            size_t len = k % 3 == 0 ? 1 + (seed >> 8) % n : n;
            struct vl_visual v;
            char err[256] = "";
            int rc = media_image_prepare(b, len, &lim, &v, err, sizeof err);
            if (rc == 0) {
                ok++;
                free(v.pixels);
            } else {
                bad++;
                if (!err[0])
                    TEST_FAIL_AT("%s mutation %d: rc %d without a message", files[f], k, rc);
            }
        }
        free(b);
        free(orig);
    }
    fprintf(stderr, "mutations: %d decoded, %d refused\n", ok, bad);
}

TEST(test_degenerate_sizes)
{
    char err[256];
    struct vl_visual v;
    CHECK_EQ_INT(prep("one.png", 0, err, sizeof err, &v), -EINVAL);
    CHECK_CONTAINS(err, "1x1");
    CHECK_EQ_INT(prep("wide.png", 0, err, sizeof err, &v), -EINVAL);
    CHECK_CONTAINS(err, "aspect ratio");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

TEST_MAIN(test_setup, test_valid_formats, test_unsupported_and_mislabelled, test_truncated,
          test_dimension_caps, test_bomb_memory_bounded, test_gif_header_cap, test_mutations,
          test_degenerate_sizes)
