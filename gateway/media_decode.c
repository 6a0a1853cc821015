/* Image decoding (media.h): format from magic bytes, size from the header checked against the
 * operator's limits before any pixel memory exists, then the decoder for the format and the
 * conversion to RGB that the reference applies (qwen-vl-utils to_rgb on a Pillow image):
 *
 *   Pillow mode after open      -> RGB
 *   RGBA (PNG colour type 6, WebP with alpha)    pasted on white with alpha as the mask
 *   everything else (L, LA, P, P+tRNS, RGB+tRNS) convert("RGB"): alpha/transparency dropped
 *   I (16-bit grey PNG)         clipped to 0..255, as Pillow's I -> RGB conversion does
 *   CMYK JPEG                   Adobe-inverted, then Pillow's cmyk2rgb
 *
 * JPEG is decoded with libjpeg-turbo (the library inside Pillow) with default settings
 * (islow IDCT, fancy upsampling), so decoded pixels equal Pillow's; stb_image's own JPEG
 * decoder rounds differently. PNG goes through libpng + zlib (media_png.c), GIF and BMP through
 * stb_image (media_stb.c), WebP through libwebp. EXIF orientation is not applied: the reference
 * does not. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "gateway/media.h"
#include "gateway/media_png.h"
#include "gateway/media_stb.h"

/* Progressive JPEGs may have any number of scans; tiny scans make decoding time explode.
 * libjpeg-turbo's own tools cap at 500; real encoders write about 10. */
#define MEDIA_JPEG_MAX_SCANS 500

void media_limits_default(struct media_limits *l)
{
    memset(l, 0, sizeof *l);
    l->max_input_bytes = 32ll << 20;
    l->max_video_bytes = 256ll << 20;
    l->max_width = 16384;
    l->max_height = 16384;
    l->max_decoded_pixels = 50000000;
    l->image_min_pixels = 4 * 32 * 32;
    l->image_max_pixels = 1800 * 32 * 32;
    l->max_aspect_ratio = 200;
    l->video_fps = 1.0;
    l->video_min_frames = 4;
    l->video_max_frames = 64;
    l->video_min_pixels = 128 * 32 * 32;
    l->video_max_pixels = 768 * 32 * 32;
    l->video_total_pixels = 10 * 768 * 32 * 32;
    l->video_max_source_frames = 200000;
    l->video_max_decode_ms = 60000;
    l->frame_list_fps_x10 = 20;
    l->max_request_decoded_pixels = VL_REQUEST_PIXELS_DEFAULT;
}

enum media_format media_format_sniff(const uint8_t *d, size_t n)
{
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        return MEDIA_FMT_PNG;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        return MEDIA_FMT_JPEG;
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        return MEDIA_FMT_GIF;
    if (n >= 14 && d[0] == 'B' && d[1] == 'M')
        return MEDIA_FMT_BMP;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return MEDIA_FMT_WEBP;
    return MEDIA_FMT_UNKNOWN;
}

const char *media_format_name(enum media_format f)
{
    switch (f) {
    case MEDIA_FMT_PNG:
        return "PNG";
    case MEDIA_FMT_JPEG:
        return "JPEG";
    case MEDIA_FMT_GIF:
        return "GIF";
    case MEDIA_FMT_BMP:
        return "BMP";
    case MEDIA_FMT_WEBP:
        return "WebP";
    default:
        return "unknown";
    }
}

static int unsupported(const uint8_t *d, size_t n, char *err, size_t errlen)
{
    char hex[3 * 8 + 1] = "";
    size_t k = n < 8 ? n : 8;
    for (size_t i = 0; i < k; i++)
        snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x%s", d[i], i + 1 < k ? " " : "");
    if (n == 0)
        snprintf(err, errlen, "empty image data");
    else
        snprintf(err, errlen,
                 "not a supported image format (PNG, JPEG, GIF, BMP, WebP); data starts with %s",
                 hex);
    return -ENOTSUP;
}

/* ---- JPEG via libjpeg-turbo ------------------------------------------------------------ */

struct jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
};

static void jpeg_on_error(j_common_ptr c)
{
    struct jpeg_err *e = (struct jpeg_err *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_on_message(j_common_ptr c, int level)
{
    struct jpeg_err *e = (struct jpeg_err *)c->err;
    /* Pillow refuses a truncated file ("image file is truncated"); libjpeg would pad it. */
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
        e->truncated = 1;
        snprintf(e->msg, sizeof e->msg, "JPEG data is truncated");
        longjmp(e->jb, 1);
    }
}

static void jpeg_on_progress(j_common_ptr c)
{
    if (c->is_decompressor) {
        j_decompress_ptr d = (j_decompress_ptr)c;
        if (d->input_scan_number > MEDIA_JPEG_MAX_SCANS) {
            struct jpeg_err *e = (struct jpeg_err *)c->err;
            snprintf(e->msg, sizeof e->msg, "progressive JPEG has more than %d scans",
                     MEDIA_JPEG_MAX_SCANS);
            longjmp(e->jb, 1);
        }
    }
}

/* Header only (want_pixels = 0) or full decode to RGB. */
static int jpeg_decode(const uint8_t *data, size_t n, int want_pixels, int64_t mem_cap,
                       uint8_t **rgb_out, int32_t *w, int32_t *h, char *err, size_t errlen)
{
    struct jpeg_decompress_struct ci;
    struct jpeg_err je;
    struct jpeg_progress_mgr prog;
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;
    memset(&je, 0, sizeof je);
    ci.err = jpeg_std_error(&je.mgr);
    je.mgr.error_exit = jpeg_on_error;
    je.mgr.emit_message = jpeg_on_message;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        free(rgb);
        free(row);
        snprintf(err, errlen, "%s%s", je.truncated ? "" : "corrupt JPEG: ", je.msg);
        return -EINVAL;
    }
    jpeg_create_decompress(&ci);
    ci.mem->max_memory_to_use = mem_cap;
    prog.progress_monitor = jpeg_on_progress;
    ci.progress = &prog;
    jpeg_mem_src(&ci, data, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    *w = (int32_t)ci.image_width;
    *h = (int32_t)ci.image_height;
    if (!want_pixels) {
        jpeg_destroy_decompress(&ci);
        return 0;
    }
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    ci.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&ci);
    size_t W = ci.output_width, H = ci.output_height;
    rgb = vl_malloc(W * H * 3);
    row = vl_malloc(W * 4);
    while (ci.output_scanline < ci.output_height) {
        size_t y = ci.output_scanline;
        JSAMPROW rp = cmyk ? (JSAMPROW)row : (JSAMPROW)(rgb + y * W * 3);
        jpeg_read_scanlines(&ci, &rp, 1);
        if (cmyk) { /* Pillow: rawmode CMYK;I (Adobe inverted), then cmyk2rgb */
            uint8_t *o = rgb + y * W * 3;
            for (size_t x = 0; x < W; x++) {
                int nk = 255 - (255 - row[x * 4 + 3]);
                for (int c = 0; c < 3; c++) {
                    int v = 255 - row[x * 4 + c], t = v * nk + 128;
                    int r = nk - (((t >> 8) + t) >> 8);
                    o[x * 3 + c] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
                }
            }
        }
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(row);
    *rgb_out = rgb;
    return 0;
}

/* ---- WebP via libwebp (the first frame, as Pillow's WebPAnimDecoder gives it) ------------- */

static int webp_info(const uint8_t *d, size_t n, int32_t *w, int32_t *h, int *alpha, char *err,
                     size_t errlen)
{
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(d, n, &f);
    if (st != VP8_STATUS_OK) {
        snprintf(err, errlen, "corrupt WebP header (libwebp status %d)", (int)st);
        return -EINVAL;
    }
    *w = f.width;
    *h = f.height;
    *alpha = f.has_alpha;
    return 0;
}

static int webp_decode(const uint8_t *d, size_t n, uint8_t **rgb_out, char *err, size_t errlen)
{
    int32_t w, h;
    int alpha;
    int rc = webp_info(d, n, &w, &h, &alpha, err, errlen);
    if (rc)
        return rc;
    WebPAnimDecoderOptions o;
    if (!WebPAnimDecoderOptionsInit(&o)) {
        snprintf(err, errlen, "libwebp version mismatch");
        return -EINVAL;
    }
    o.color_mode = MODE_RGBA;
    o.use_threads = 0;
    WebPData wd = {d, n};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &o);
    uint8_t *frame = NULL;
    int ts = 0;
    if (!dec || !WebPAnimDecoderGetNext(dec, &frame, &ts)) {
        if (dec)
            WebPAnimDecoderDelete(dec);
        snprintf(err, errlen, "corrupt or truncated WebP data");
        return -EINVAL;
    }
    size_t npx = (size_t)w * h;
    uint8_t *rgb = vl_malloc(npx * 3);
    if (alpha) {
        media_png_composite_white(frame, npx, rgb);
    } else {
        for (size_t i = 0; i < npx; i++)
            memcpy(rgb + i * 3, frame + i * 4, 3);
    }
    WebPAnimDecoderDelete(dec);
    *rgb_out = rgb;
    return 0;
}

/* ---- PNG header ------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IHDR must be the first chunk: width, height, bit depth, colour type. */
static int png_ihdr(const uint8_t *d, size_t n, int32_t *w, int32_t *h, int *depth, int *ctype,
                    char *err, size_t errlen)
{
    if (n < 33 || be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0) {
        snprintf(err, errlen, "corrupt PNG: no IHDR chunk");
        return -EINVAL;
    }
    uint32_t pw = be32(d + 16), ph = be32(d + 20);
    if (pw > INT32_MAX || ph > INT32_MAX) {
        snprintf(err, errlen, "corrupt PNG: size %ux%u", pw, ph);
        return -EINVAL;
    }
    *w = (int32_t)pw;
    *h = (int32_t)ph;
    *depth = d[24];
    *ctype = d[25];
    return 0;
}

/* ---- truncation checks stb_image lacks (it reads zeros past the end of GIF and BMP data;
 * Pillow says "image file is truncated") --------------------------------------------------- */

/* BMP: the uncompressed pixel array must be all there. */
static int bmp_truncated(const uint8_t *d, size_t n, int32_t w, int32_t h)
{
    if (n < 34)
        return 1;
    uint32_t off =
        (uint32_t)d[10] | (uint32_t)d[11] << 8 | (uint32_t)d[12] << 16 | (uint32_t)d[13] << 24;
    uint32_t hdr = (uint32_t)d[14] | (uint32_t)d[15] << 8;
    int bpp = hdr >= 40 ? d[28] | d[29] << 8 : d[24] | d[25] << 8; /* BITMAPCOREHEADER: 12 */
    uint32_t comp = hdr >= 40 ? (uint32_t)d[30] : 0;
    if (comp != 0 && comp != 3)
        return 0; /* RLE etc.: stb refuses those itself */
    uint64_t row = ((uint64_t)bpp * (uint64_t)w + 31) / 32 * 4;
    return (uint64_t)off + row * (uint64_t)h > n;
}

/* GIF: the first image's data sub-blocks must end with their terminator. */
static int gif_truncated(const uint8_t *d, size_t n)
{
    size_t p = 13;
    if (n < p)
        return 1;
    if (d[10] & 0x80)
        p += 3u << ((d[10] & 7) + 1);
    for (;;) {
        if (p >= n)
            return 1;
        uint8_t b = d[p++];
        if (b == 0x21) { /* extension: label, then sub-blocks */
            p++;
        } else if (b == 0x2C) { /* image descriptor */
            if (p + 9 > n)
                return 1;
            uint8_t flags = d[p + 8];
            p += 9;
            if (flags & 0x80)
                p += 3u << ((flags & 7) + 1);
            p++; /* LZW minimum code size */
        } else {
            return 0; /* trailer or junk: stb decides */
        }
        for (;;) { /* sub-blocks */
            if (p >= n)
                return 1;
            uint8_t len = d[p++];
            if (len == 0)
                break;
            p += len;
        }
        if (b == 0x2C)
            return 0;
    }
}

/* ---- common ------------------------------------------------------------------------------ */

int media_image_info(const uint8_t *data, size_t n, enum media_format *fmt, int32_t *w, int32_t *h,
                     char *err, size_t errlen)
{
    enum media_format f = media_format_sniff(data, n);
    *fmt = f;
    int depth, ctype, comp, alpha, iw = 0, ih = 0, rc;
    switch (f) {
    case MEDIA_FMT_PNG:
        rc = png_ihdr(data, n, w, h, &depth, &ctype, err, errlen);
        break;
    case MEDIA_FMT_JPEG:
        rc = jpeg_decode(data, n, 0, 0, NULL, w, h, err, errlen);
        break;
    case MEDIA_FMT_WEBP:
        rc = webp_info(data, n, w, h, &alpha, err, errlen);
        break;
    case MEDIA_FMT_GIF:
    case MEDIA_FMT_BMP:
        if (!media_stb_info(data, n, &iw, &ih, &comp)) {
            snprintf(err, errlen, "corrupt %s header", media_format_name(f));
            return -EINVAL;
        }
        *w = iw;
        *h = ih;
        rc = 0;
        break;
    default:
        return unsupported(data, n, err, errlen);
    }
    /* a header may say 0 (PNG) or, read as signed, a negative width (BMP): not a size (found by
     * tests/fuzz/fuzz_image.c; the decoder refused them, but this promises a size) */
    if (rc == 0 && (*w < 1 || *h < 1)) {
        snprintf(err, errlen, "corrupt %s header: %dx%d pixels", media_format_name(f), *w, *h);
        return -EINVAL;
    }
    return rc;
}

static int check_size(int32_t w, int32_t h, const struct media_limits *l, char *err, size_t errlen)
{
    if (w < 1 || h < 1) {
        snprintf(err, errlen, "image has no pixels (%dx%d)", w, h);
        return -EINVAL;
    }
    if (w > l->max_width || h > l->max_height) {
        snprintf(err, errlen, "image is %dx%d; the limit is %dx%d (from the header, not decoded)",
                 w, h, l->max_width, l->max_height);
        return -E2BIG;
    }
    if ((int64_t)w * h > l->max_decoded_pixels) {
        snprintf(err, errlen, "image is %dx%d = %lld pixels; the limit is %lld (not decoded)", w, h,
                 (long long)w * h, (long long)l->max_decoded_pixels);
        return -E2BIG;
    }
    return 0;
}

int media_image_decode_rgb(const uint8_t *data, size_t n, const struct media_limits *l,
                           uint8_t **rgb, int32_t *w, int32_t *h, char *err, size_t errlen)
{
    *rgb = NULL;
    if ((int64_t)n > l->max_input_bytes) {
        snprintf(err, errlen, "image is %zu bytes; the limit is %lld", n,
                 (long long)l->max_input_bytes);
        return -E2BIG;
    }
    enum media_format f;
    int rc = media_image_info(data, n, &f, w, h, err, errlen);
    if (rc)
        return rc;
    if ((rc = check_size(*w, *h, l, err, errlen)))
        return rc;
    size_t npx = (size_t)*w * (size_t)*h;
    /* Decoder budget: the output in 16-bit RGBA, a second image-sized buffer (inflated rows,
     * conversion), and the input itself, plus slack for tables. */
    size_t cap = npx * 8 + npx * 4 + n + (4u << 20);
    if (f == MEDIA_FMT_JPEG)
        return jpeg_decode(data, n, 1, (int64_t)cap, rgb, w, h, err, errlen);
    if (f == MEDIA_FMT_WEBP)
        return webp_decode(data, n, rgb, err, errlen);
    if (f == MEDIA_FMT_PNG)
        return media_png_decode(data, n, l->max_width, l->max_height, rgb, w, h, err, errlen);

    if ((f == MEDIA_FMT_BMP && bmp_truncated(data, n, *w, *h < 0 ? -*h : *h)) ||
        (f == MEDIA_FMT_GIF && gif_truncated(data, n))) {
        snprintf(err, errlen, "%s data is truncated", media_format_name(f));
        return -EINVAL;
    }
    int dw = 0, dh = 0, over = 0;
    const char *why = NULL;
    /* GIF and BMP: Pillow opens them as P / RGB (or RGBA for 32-bit BMP with an alpha mask,
     * where we drop the alpha: a documented difference); convert("RGB"). */
    uint8_t *px = media_stb_load(data, n, 3, 0, cap, &dw, &dh, &why, &over);
    if (!px) {
        if (over) {
            snprintf(err, errlen,
                     "%s data needs more memory than a %dx%d image may (decompression bomb?)",
                     media_format_name(f), *w, *h);
            return -ENOMEM;
        }
        snprintf(err, errlen, "corrupt or truncated %s data (%s)", media_format_name(f),
                 why ? why : "?");
        return -EINVAL;
    }
    if (dw != *w || dh != *h) {
        free(px);
        snprintf(err, errlen, "corrupt %s: header says %dx%d, data %dx%d", media_format_name(f), *w,
                 *h, dw, dh);
        return -EINVAL;
    }
    *rgb = px;
    return 0;
}

int media_image_prepare(const uint8_t *data, size_t n, const struct media_limits *l,
                        struct vl_visual *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int32_t w, h, rh, rw;
    uint8_t *rgb = NULL;
    int rc = media_image_decode_rgb(data, n, l, &rgb, &w, &h, err, errlen);
    if (rc)
        return rc;
    /* The reference has no minimum side, but a 1-pixel side is degenerate input. */
    if (w < 2 || h < 2) {
        free(rgb);
        snprintf(err, errlen, "image is %dx%d; each side must be at least 2 pixels", w, h);
        return -EINVAL;
    }
    int64_t ar = (int64_t)l->max_aspect_ratio;
    if ((int64_t)w > ar * h || (int64_t)h > ar * w) {
        free(rgb);
        snprintf(err, errlen, "image is %dx%d; its aspect ratio is over the limit of %lld", w, h,
                 (long long)ar);
        return -EINVAL;
    }
    rc = media_smart_resize(h, w, 32, l->image_min_pixels, l->image_max_pixels, &rh, &rw, err,
                            errlen);
    if (rc) {
        free(rgb);
        return rc;
    }
    uint8_t *px = vl_malloc((size_t)rw * rh * 3);
    media_resize_bicubic(rgb, w, h, px, rw, rh);
    free(rgb);
    out->kind = VL_VISUAL_IMAGE;
    out->grid_t = 1;
    out->grid_h = rh / 16;
    out->grid_w = rw / 16;
    out->n_frames = 1;
    out->height = rh;
    out->width = rw;
    out->pixels = px;
    return 0;
}
