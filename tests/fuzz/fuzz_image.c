/* libFuzzer target for image decoding on the gateway (gateway/media_decode.c and the decoders
 * behind it: libpng, libjpeg-turbo, libwebp, stb_image for GIF/BMP): media_image_info, then
 * media_image_prepare (decode, RGB conversion, smart_resize, Pillow bicubic) with the gateway's
 * default limits except max_decoded_pixels, lowered from 50 to 1 Mpx: a valid JPEG of a few
 * hundred bytes can declare 3.5 Mpx, which takes 13 s to decode and resize under ASan+UBSan (0.35 s
 * natively), so the cap keeps each input within libFuzzer's -timeout (the checks are the same
 * code). Besides crashes, leaks and UB, it checks:
 *   - a header that media_image_info accepts has both sides >= 1 (limits are the decoder's);
 *   - an accepted image comes out as the model wants it: sides multiples of 32, pixels within the
 *     image band, grid = size / 16, one frame;
 *   - every refusal is one of the documented codes with a message.
 * Build and run: `make fuzz-bins`, `make fuzz` (docs/security.md, "Fuzzing"). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/item.h"
#include "gateway/media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct media_limits l;
    media_limits_default(&l);
    l.max_decoded_pixels = 1 << 20;
    char err[512] = "";
    enum media_format f;
    int32_t w = 0, h = 0;
    if (media_image_info(data, size, &f, &w, &h, err, sizeof err) == 0) {
        if (w < 1 || h < 1) /* header only: the limits are checked by the decoder */
            abort();
    } else if (!err[0]) {
        abort();
    }
    struct vl_visual v;
    memset(&v, 0, sizeof v);
    err[0] = 0;
    int rc = media_image_prepare(data, size, &l, &v, err, sizeof err);
    if (rc == 0) {
        int64_t px = (int64_t)v.width * v.height;
        if (!v.pixels || v.n_frames != 1 || v.width % 32 || v.height % 32 ||
            px < l.image_min_pixels || px > l.image_max_pixels || v.grid_t != 1 ||
            v.grid_h * 16 != v.height || v.grid_w * 16 != v.width)
            abort();
        /* read every byte: a buffer shorter than its size says shows up under AddressSanitizer */
        unsigned sum = 0;
        for (int64_t i = 0; i < px * 3; i++)
            sum += v.pixels[i];
        if (sum == 0xffffffffu)
            abort();
    } else if ((rc != -ENOTSUP && rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM) || !err[0]) {
        abort();
    }
    free(v.pixels);
    return 0;
}
