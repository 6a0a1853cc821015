/* PNG decoding with libpng (zlib inside, like Pillow), converted to RGB the way Pillow's PNG
 * modes go through qwen-vl-utils' to_rgb (media_decode.c has the table). Internal to the media
 * code; see media_png.h.
 *
 * libpng reads the image rows through a fixed-size inflate window, so IDAT data beyond what the
 * header's size needs is never inflated (no decompression bomb through IDAT), and ancillary
 * chunks (zTXt, iCCP) are capped by its chunk_malloc_max (8 MB by default).
 *
 * CRCs are checked where Pillow checks them (docs/media.md, "Truncated and corrupt images"):
 * Pillow verifies every chunk before the first IDAT and refuses the file on a mismatch, and never
 * looks at the CRC of IDAT or of any later chunk. libpng by default does otherwise (an error for
 * any critical chunk, IDAT included; an ancillary chunk dropped with a warning), so the chunks
 * before IDAT are checked here and libpng is told to use chunk data whatever its CRC. */
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

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The PNG (ISO 3309) CRC-32 of n bytes, four bits at a time. */
static uint32_t png_crc(const uint8_t *p, size_t n)
{
    static const uint32_t t[16] = {0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac,
                                   0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
                                   0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
                                   0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c};
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        c = (c >> 4) ^ t[c & 15];
        c = (c >> 4) ^ t[c & 15];
    }
    return ~c;
}

/* Checks the CRC of every whole chunk before the first IDAT, as Pillow does when it opens a PNG.
 * Returns 0, or -EINVAL with err naming the chunk. A chunk cut short is left to libpng (it
 * reports the truncation). */
static int png_crc_before_idat(const uint8_t *d, size_t n, char *err, size_t errlen)
{
    size_t p = 8;
    while (n >= 12 && p <= n - 12) {
        uint32_t len = be32(d + p);
        const uint8_t *type = d + p + 4;
        if (memcmp(type, "IDAT", 4) == 0 || len > n - p - 12)
            return 0;
        if (png_crc(type, (size_t)len + 4) != be32(d + p + 8 + len)) {
            char name[5];
            for (int i = 0; i < 4; i++)
                name[i] = type[i] >= 0x20 && type[i] < 0x7f ? (char)type[i] : '?';
            name[4] = 0;
            snprintf(err, errlen, "corrupt PNG: bad CRC in its %s chunk", name);
            return -EINVAL;
        }
        p += (size_t)len + 12;
    }
    return 0;
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
    int rc = png_crc_before_idat(data, n, err, errlen);
    if (rc)
        return rc;
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
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE); /* checked above, as Pillow */
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
