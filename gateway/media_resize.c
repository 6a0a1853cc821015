/* Resizing for the media path (media.h): qwen-vl-utils' smart_resize, a bicubic resampler that
 * reproduces Pillow's Image.resize(BICUBIC) bit for bit, and PyTorch's antialiased float
 * bicubic as torchvision applies it to video frames.
 *
 * Both resamplers are separable convolutions with the same support scaling ("antialias": when
 * shrinking by s the cubic kernel is stretched by s), Keys' cubic with a = -0.5. They differ in
 * arithmetic: Pillow turns the normalised weights into 22-bit fixed point, rounds each pass to
 * uint8; PyTorch keeps float32 from start to end. Every type and rounding below is chosen to
 * match the reference implementation's, so do not "simplify" a double into a float or back. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "gateway/media.h"

/* ---- smart_resize ------------------------------------------------------------------------ */

/* Python's round(): half to even. */
static double py_round(double x)
{
    return nearbyint(x); /* default rounding mode is to nearest, ties to even */
}

int media_smart_resize(int32_t h, int32_t w, int32_t factor, int64_t min_pixels, int64_t max_pixels,
                       int32_t *out_h, int32_t *out_w, char *err, size_t errlen)
{
    return media_smart_resize_d(h, w, factor, (double)min_pixels, (double)max_pixels, out_h, out_w,
                                err, errlen);
}

int media_smart_resize_d(int32_t h, int32_t w, int32_t factor, double min_pixels, double max_pixels,
                         int32_t *out_h, int32_t *out_w, char *err, size_t errlen)
{
    if (h < 1 || w < 1 || factor < 1) {
        snprintf(err, errlen, "image is %dx%d; each side must be at least 1 pixel", w, h);
        return -EINVAL;
    }
    if (max_pixels < min_pixels) {
        snprintf(err, errlen, "max_pixels %.0f is below min_pixels %.0f", max_pixels, min_pixels);
        return -EINVAL;
    }
    double hi = h > w ? h : w, lo = h > w ? w : h;
    if (hi / lo > 200.0) {
        snprintf(err, errlen, "aspect ratio %.1f of a %dx%d image is over the limit of 200",
                 hi / lo, w, h);
        return -EINVAL;
    }
    double f = factor;
    int64_t hb = (int64_t)(py_round(h / f) * f), wb = (int64_t)(py_round(w / f) * f);
    if (hb < factor)
        hb = factor;
    if (wb < factor)
        wb = factor;
    if ((double)(hb * wb) > max_pixels) {
        double beta = sqrt(((double)h * (double)w) / max_pixels);
        hb = (int64_t)(floor(h / beta / f) * f);
        wb = (int64_t)(floor(w / beta / f) * f);
    } else if ((double)(hb * wb) < min_pixels) {
        double beta = sqrt(min_pixels / ((double)h * (double)w));
        hb = (int64_t)(ceil(h * beta / f) * f);
        wb = (int64_t)(ceil(w * beta / f) * f);
    }
    if (hb < factor || wb < factor || hb > INT32_MAX || wb > INT32_MAX) {
        /* The reference would go on with a 0-pixel side and fail later in the processor. */
        snprintf(err, errlen, "a %dx%d image cannot be resized within %.0f pixels", w, h,
                 max_pixels);
        return -EINVAL;
    }
    *out_h = (int32_t)hb;
    *out_w = (int32_t)wb;
    return 0;
}

/* ---- Pillow's bicubic (libImaging/Resample.c semantics) ---------------------------------- */

#define PIL_PRECISION_BITS (32 - 8 - 2)

static double pil_bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Coefficients of one axis: for output i, taps bounds[2i] .. bounds[2i]+bounds[2i+1]-1 with
 * fixed-point weights kk[i*ksize + j]. Returns ksize. */
static int pil_coeffs(int in_size, int out_size, int32_t **bounds_out, int32_t **kk_out)
{
    float in0 = 0.0f, in1 = (float)in_size; /* Pillow passes the box as floats */
    double scale = (double)(in1 - in0) / out_size, filterscale = scale;
    if (filterscale < 1.0)
        filterscale = 1.0;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = vl_malloc((size_t)out_size * ksize * sizeof(double));
    int32_t *bounds = vl_malloc((size_t)out_size * 2 * sizeof(int32_t));
    int32_t *kk = vl_malloc((size_t)out_size * ksize * sizeof(int32_t));
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double *k = &pre[(size_t)xx * ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double w = pil_bicubic((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0;
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++)
        kk[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PIL_PRECISION_BITS))
                           : (int32_t)(0.5 + pre[i] * (1 << PIL_PRECISION_BITS));
    free(pre);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static inline uint8_t pil_clip8(int32_t v)
{
    if (v >= (1 << PIL_PRECISION_BITS << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> PIL_PRECISION_BITS);
}

/* Rows [y0, y0+rows) of src (width sw) -> dst (width dw), each channel rounded to uint8. */
static void pil_horizontal(const uint8_t *src, int32_t sw, int32_t y0, int32_t rows, uint8_t *dst,
                           int32_t dw, int ksize, const int32_t *bounds, const int32_t *kk)
{
    for (int32_t y = 0; y < rows; y++) {
        const uint8_t *in = src + ((size_t)(y0 + y) * sw) * 3;
        uint8_t *out = dst + (size_t)y * dw * 3;
        for (int32_t xx = 0; xx < dw; xx++) {
            int32_t xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = &kk[(size_t)xx * ksize];
            const uint8_t *p = in + (size_t)xmin * 3;
            int32_t s0 = 1 << (PIL_PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int32_t x = 0; x < xmax; x++) {
                s0 += p[x * 3 + 0] * k[x];
                s1 += p[x * 3 + 1] * k[x];
                s2 += p[x * 3 + 2] * k[x];
            }
            out[xx * 3 + 0] = pil_clip8(s0);
            out[xx * 3 + 1] = pil_clip8(s1);
            out[xx * 3 + 2] = pil_clip8(s2);
        }
    }
}

/* src (width w, any height) -> dst (dh rows) along columns; bounds are rows of src. */
static void pil_vertical(const uint8_t *src, int32_t w, uint8_t *dst, int32_t dh, int ksize,
                         const int32_t *bounds, const int32_t *kk)
{
    size_t row = (size_t)w * 3;
    int32_t *acc = vl_malloc(row * sizeof(int32_t));
    for (int32_t yy = 0; yy < dh; yy++) {
        int32_t ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        const int32_t *k = &kk[(size_t)yy * ksize];
        for (size_t i = 0; i < row; i++)
            acc[i] = 1 << (PIL_PRECISION_BITS - 1);
        for (int32_t y = 0; y < ymax; y++) {
            const uint8_t *in = src + (size_t)(ymin + y) * row;
            int32_t ky = k[y];
            for (size_t i = 0; i < row; i++)
                acc[i] += in[i] * ky;
        }
        uint8_t *out = dst + (size_t)yy * row;
        for (size_t i = 0; i < row; i++)
            out[i] = pil_clip8(acc[i]);
    }
    free(acc);
}

void media_resize_bicubic(const uint8_t *src, int32_t sw, int32_t sh, uint8_t *dst, int32_t dw,
                          int32_t dh)
{
    if (sw == dw && sh == dh) { /* Image.resize returns a copy */
        memcpy(dst, src, (size_t)sw * sh * 3);
        return;
    }
    int32_t *bh = NULL, *kh = NULL, *bv = NULL, *kv = NULL;
    int ksh = pil_coeffs(sw, dw, &bh, &kh);
    int ksv = pil_coeffs(sh, dh, &bv, &kv);
    int need_h = sw != dw, need_v = sh != dh;
    if (need_h && need_v) {
        /* Only the source rows the vertical pass reads are resampled horizontally. */
        int32_t first = bv[0], last = bv[dh * 2 - 2] + bv[dh * 2 - 1];
        for (int32_t i = 0; i < dh; i++)
            bv[i * 2] -= first;
        uint8_t *tmp = vl_malloc((size_t)dw * (last - first) * 3);
        pil_horizontal(src, sw, first, last - first, tmp, dw, ksh, bh, kh);
        pil_vertical(tmp, dw, dst, dh, ksv, bv, kv);
        free(tmp);
    } else if (need_h) {
        pil_horizontal(src, sw, 0, sh, dst, dw, ksh, bh, kh);
    } else {
        pil_vertical(src, sw, dst, dh, ksv, bv, kv);
    }
    free(bh);
    free(kh);
    free(bv);
    free(kv);
}

/* ---- PyTorch's antialiased bicubic in float (aten UpSampleKernel.cpp semantics) ------------ */

static float aa_cubic(float x)
{
    const float a = -0.5f;
    x = fabsf(x);
    if (x < 1.0f)
        return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2.0f)
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0f;
}

/* Weights of one axis in float, with PyTorch's mixture of float and double intermediates. */
static int aa_coeffs(int64_t in_size, int64_t out_size, int32_t **bounds_out, float **w_out)
{
    float scale = (float)in_size / (float)out_size;
    float support = scale >= 1.0f ? (4 * 0.5f) * scale : 4 * 0.5f;
    int ksize = (int)ceil(support) * 2 + 1;
    int32_t *bounds = vl_malloc((size_t)out_size * 2 * sizeof(int32_t));
    float *wt = vl_malloc((size_t)out_size * ksize * sizeof(float));
    float invscale = scale >= 1.0f ? (float)(1.0 / scale) : 1.0f;
    for (int64_t i = 0; i < out_size; i++) {
        float center = (float)(scale * (i + 0.5));
        float total = 0.0f;
        int64_t xmin = (int64_t)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int64_t xend = (int64_t)(center + support + 0.5);
        if (xend > in_size)
            xend = in_size;
        int64_t xsize = xend - xmin;
        if (xsize > ksize)
            xsize = ksize; /* cannot happen with the support above; keeps the table in bounds */
        float *w = &wt[(size_t)i * ksize];
        int64_t j;
        for (j = 0; j < xsize; j++) {
            float v = aa_cubic((float)(((float)(j + xmin - center) + 0.5) * invscale));
            w[j] = v;
            total += v;
        }
        if (total != 0.0f)
            for (j = 0; j < xsize; j++)
                w[j] /= total;
        for (; j < ksize; j++)
            w[j] = 0.0f;
        bounds[i * 2] = (int32_t)xmin;
        bounds[i * 2 + 1] = (int32_t)xsize;
    }
    *bounds_out = bounds;
    *w_out = wt;
    return ksize;
}

static inline uint8_t aa_to_u8(float v)
{
    if (v < 0.0f)
        v = 0.0f;
    if (v > 255.0f)
        v = 255.0f;
    return (uint8_t)nearbyintf(v); /* torch.round: half to even */
}

void media_resize_bicubic_aa_float(const uint8_t *src, int32_t sw, int32_t sh, uint8_t *dst,
                                   int32_t dw, int32_t dh)
{
    if (sw == dw && sh == dh) { /* torchvision returns the input unchanged */
        memcpy(dst, src, (size_t)sw * sh * 3);
        return;
    }
    size_t n_in = (size_t)sw * sh * 3;
    float *cur = vl_malloc(n_in * sizeof(float));
    for (size_t i = 0; i < n_in; i++)
        cur[i] = src[i];
    int32_t cw = sw;
    if (dw != sw) { /* the contiguous (width) dimension first, as aten does */
        int32_t *b;
        float *wt;
        int ks = aa_coeffs(sw, dw, &b, &wt);
        float *out = vl_malloc((size_t)dw * sh * 3 * sizeof(float));
        for (int32_t y = 0; y < sh; y++) {
            const float *in = cur + (size_t)y * sw * 3;
            float *o = out + (size_t)y * dw * 3;
            for (int32_t x = 0; x < dw; x++) {
                const float *w = &wt[(size_t)x * ks];
                const float *p = in + (size_t)b[x * 2] * 3;
                for (int c = 0; c < 3; c++) {
                    float acc = p[c] * w[0];
                    for (int32_t j = 1; j < b[x * 2 + 1]; j++)
                        acc += p[j * 3 + c] * w[j];
                    o[x * 3 + c] = acc;
                }
            }
        }
        free(cur);
        free(b);
        free(wt);
        cur = out;
        cw = dw;
    }
    if (dh != sh) {
        int32_t *b;
        float *wt;
        int ks = aa_coeffs(sh, dh, &b, &wt);
        size_t row = (size_t)cw * 3;
        float *out = vl_malloc((size_t)dh * row * sizeof(float));
        for (int32_t y = 0; y < dh; y++) {
            const float *w = &wt[(size_t)y * ks];
            float *o = out + (size_t)y * row;
            const float *in0 = cur + (size_t)b[y * 2] * row;
            for (size_t i = 0; i < row; i++)
                o[i] = in0[i] * w[0];
            for (int32_t j = 1; j < b[y * 2 + 1]; j++) {
                const float *in = in0 + (size_t)j * row;
                float wj = w[j];
                for (size_t i = 0; i < row; i++)
                    o[i] += in[i] * wj;
            }
        }
        free(cur);
        free(b);
        free(wt);
        cur = out;
    }
    size_t n_out = (size_t)dw * dh * 3;
    for (size_t i = 0; i < n_out; i++)
        dst[i] = aa_to_u8(cur[i]);
    free(cur);
}
