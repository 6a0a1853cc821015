/* Truncated and corrupt images: the gateway's decoder (media_image_decode_rgb) against Pillow,
 * the reference's decoder (Debian python3-pil, spec §12). tests/media/make_pillow_corpus.py
 * writes each case with Pillow's verdict at test time (JPEG cut anywhere, JPEG with scan data
 * missing or garbled but its EOI marker present, progressive JPEG missing a scan, PNG cut in its
 * IDAT, PNG with bad CRCs before / in / after the IDAT, a broken zlib stream or Adler-32, GIF,
 * WebP and BMP cut). The rule (docs/media.md, "Truncated and corrupt images"): where Pillow
 * raises, we refuse with -EINVAL and a sentence saying truncated or corrupt; where Pillow
 * decodes, we decode to exactly its pixels. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/media.h"
#include "tests/test.h"

static char dir[256];

static uint8_t *slurp(const char *name, const char *ext, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    return test_read_file(path, n);
}

TEST(test_against_pillow)
{
    snprintf(dir, sizeof dir, "/tmp/media-pil-XXXXXX");
    if (!mkdtemp(dir)) {
        TEST_FAIL_AT("mkdtemp failed");
        return;
    }
    char cmd[512];
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    snprintf(cmd, sizeof cmd, "%s tests/media/make_pillow_corpus.py %s", py, dir);
    CHECK_EQ_INT(system(cmd), 0);
    struct media_limits lim;
    media_limits_default(&lim);
    size_t mlen;
    char *manifest = (char *)slurp("manifest", "", &mlen);
    if (!manifest) {
        TEST_FAIL_AT("no manifest in %s", dir);
        return;
    }
    int n_cases = 0, n_refused = 0, n_decoded = 0;
    for (char *save = NULL, *name = strtok_r(manifest, "\n", &save); name;
         name = strtok_r(NULL, "\n", &save)) {
        size_t n, vn;
        uint8_t *img = slurp(name, "", &n);
        uint8_t *ver = slurp(name, ".pil", &vn);
        if (!img || !ver) {
            TEST_FAIL_AT("%s: missing fixture", name);
            free(img);
            free(ver);
            continue;
        }
        n_cases++;
        uint8_t *rgb = NULL;
        int32_t w = 0, h = 0;
        char err[256] = "";
        int rc = media_image_decode_rgb(img, n, &lim, &rgb, &w, &h, err, sizeof err);
        int pw, ph;
        const uint8_t *nl = memchr(ver, '\n', vn);
        size_t off = nl ? (size_t)(nl - ver) + 1 : 0; /* the pixels follow the first line */
        if (nl && sscanf((char *)ver, "ok %d %d", &pw, &ph) == 2) {
            n_decoded++;
            if (rc != 0) {
                TEST_FAIL_AT("%s: Pillow decodes it (%dx%d), we refuse: rc %d, %s", name, pw, ph,
                             rc, err);
            } else if (w != pw || h != ph || vn != off + (size_t)pw * ph * 3) {
                TEST_FAIL_AT("%s: size %dx%d, Pillow %dx%d", name, w, h, pw, ph);
            } else {
                size_t npx = (size_t)w * h, diff = 0, first = npx;
                for (size_t i = 0; i < npx * 3; i++)
                    if (rgb[i] != ver[off + i]) {
                        diff++;
                        if (first == npx)
                            first = i / 3;
                    }
                if (diff)
                    TEST_FAIL_AT("%s: %zu of %zu channel values differ from Pillow's (first at "
                                 "pixel %zu, %zu,%zu)",
                                 name, diff, npx * 3, first, first % (size_t)w, first / (size_t)w);
            }
        } else {
            n_refused++;
            if (nl)
                ver[off - 1] = 0;
            if (rc != -EINVAL)
                TEST_FAIL_AT("%s: Pillow refuses it (%s); we give rc %d (%s), expected -EINVAL",
                             name, (char *)ver, rc, rc ? err : "decoded");
            else if (!strstr(err, "truncated") && !strstr(err, "corrupt"))
                TEST_FAIL_AT("%s: refused, but the message does not say why: '%s'", name, err);
        }
        fprintf(stderr, "%-36s %-8s %s\n", name, rc ? "refused" : "decoded", rc ? err : "");
        free(rgb);
        free(img);
        free(ver);
    }
    free(manifest);
    /* the corpus must keep both kinds, or the comparison proves little */
    CHECK(n_cases >= 30);
    CHECK(n_refused >= 12);
    CHECK(n_decoded >= 12);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

TEST_MAIN(test_against_pillow)
