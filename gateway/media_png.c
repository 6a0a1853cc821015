/* PNG decoding with libpng (zlib inside, like Pillow), converted to RGB the way Pillow's PNG
 * modes go through qwen-vl-utils' to_rgb (media_decode.c has the table). Internal to the media
 * code; see media_png.h.
 *
 * libpng reads the image rows through a fixed-size inflate window, so IDAT data beyond what the
 * header's size needs is never inflated (no decompression bomb through IDAT), and ancillary
 * chunks (zTXt, iCCP) are capped by its chunk_malloc_max (8 MB by default). */
#include "gateway/media_png.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "common/alloc.h"

struct png_src {
    const uint8_t *data;
    size_t n, pos;
    char msg[200];
};

static void png_on_read(png_structp png, png_bytep out, size_t len)
{
    struct png_src *s = png_get_io_ptr(png);
    if (len > s->n - s->pos)
        png_error(png, "PNG data is truncated");
    memcpy(out, s->data + s->pos, len);
    s->pos += len;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int media_png_decode(const uint8_t *data, size_t n, int32_t max_w, int32_t max_h, uint8_t **rgb_out,
                     int32_t *w_out, int32_t *h_out, char *err, size_t errlen)
{
    struct png_src src = {data, n, 0, ""};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(err, errlen, "out of memory creating the PNG decoder");
        return -ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(rows);
        if (strstr(src.msg, "truncated"))
            snprintf(err, errlen, "PNG data is truncated");
        else
            snprintf(err, errlen, "corrupt PNG data (%s)", src.msg);
        return -EINVAL;
    }
    png_set_read_fn(png, &src, png_on_read);
    png_set_user_limits(png, (png_uint_32)max_w, (png_uint_32)max_h);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int ctype = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    int grey16 = ctype == PNG_COLOR_TYPE_GRAY && depth == 16; /* Pillow mode I: clipped */
    int rgba = ctype == PNG_COLOR_TYPE_RGB_ALPHA;             /* composited on white */
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(png); /* also turns tRNS into alpha, dropped below */
        png_set_strip_alpha(png);
    }
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png); /* Pillow's L;1/L;2/L;4 scaling */
    if (ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_strip_alpha(png);
    if (!grey16) {
        png_set_strip_16(png); /* the high byte, as Pillow's ;16B raw modes */
        if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
            png_set_gray_to_rgb(png);
    }
    /* tRNS of grey and RGB images is left alone: Pillow keeps it as info, convert drops it. */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int ch = png_get_channels(png, info);
    size_t want = (size_t)w * (grey16 ? 2 : (size_t)(rgba ? 4 : 3));
    if (rowbytes != want || (grey16 ? ch != 1 : ch != (rgba ? 4 : 3))) {
        snprintf(src.msg, sizeof src.msg, "unexpected row layout");
        png_longjmp(png, 1);
    }
    raw = vl_malloc(rowbytes * h);
    rows = vl_malloc(sizeof(png_bytep) * h);
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = raw + rowbytes * y;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);

    size_t npx = (size_t)w * h;
    uint8_t *rgb = raw;
    if (rgba) {
        rgb = vl_malloc(npx * 3);
        media_png_composite_white(raw, npx, rgb);
        free(raw);
    } else if (grey16) {
        rgb = vl_malloc(npx * 3);
        for (size_t i = 0; i < npx; i++) {
            unsigned v = (unsigned)raw[2 * i] << 8 | raw[2 * i + 1];
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (uint8_t)(v > 255 ? 255 : v);
        }
        free(raw);
    }
    *rgb_out = rgb;
    *w_out = (int32_t)w;
    *h_out = (int32_t)h;
    return 0;
}

void media_png_composite_white(const uint8_t *rgba, size_t npx, uint8_t *rgb)
{
    /* Pillow's paste(RGBA, mask=alpha) onto white: DIV255(255*(255-a) + c*a) with +128. */
    for (size_t i = 0; i < npx; i++) {
        unsigned a = rgba[i * 4 + 3];
        for (int c = 0; c < 3; c++) {
            unsigned t = 255u * (255u - a) + rgba[i * 4 + c] * a + 128u;
            rgb[i * 3 + c] = (uint8_t)(((t >> 8) + t) >> 8);
        }
    }
}
