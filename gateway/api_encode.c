/* Output post-processing: Matryoshka truncation, renormalisation and quantisation, in that
 * order (docs/api.md, "Output encodings"), and base64. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "gateway/api.h"

int api_postprocess(const float *vec, int dim, int d, enum api_encoding enc, void *out)
{
    if (d <= 0 || d > dim)
        d = dim;
    double ss = 0;
    for (int i = 0; i < d; i++)
        ss += (double)vec[i] * vec[i];
    /* same epsilon as F.normalize (1e-12) */
    double inv = 1.0 / fmax(sqrt(ss), 1e-12);
    switch (enc) {
    case API_ENC_FLOAT:
    case API_ENC_BASE64: {
        float *o = out;
        for (int i = 0; i < d; i++)
            o[i] = (float)(vec[i] * inv);
        return d;
    }
    case API_ENC_INT8: {
        int8_t *o = out;
        for (int i = 0; i < d; i++) {
            double x = nearbyint(vec[i] * inv * 127.0);
            o[i] = (int8_t)(x > 127 ? 127 : x < -127 ? -127 : x);
        }
        return d;
    }
    case API_ENC_UINT8: {
        uint8_t *o = out;
        for (int i = 0; i < d; i++) {
            double x = nearbyint((vec[i] * inv + 1.0) * 127.5);
            o[i] = (uint8_t)(x > 255 ? 255 : x < 0 ? 0 : x);
        }
        return d;
    }
    case API_ENC_BINARY: {
        uint8_t *o = out;
        int nb = (d + 7) / 8;
        memset(o, 0, (size_t)nb);
        for (int i = 0; i < d; i++)
            if (vec[i] > 0)
                o[i / 8] |= (uint8_t)(0x80u >> (i % 8));
        return nb;
    }
    }
    return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *api_base64(const void *p, size_t n)
{
    const uint8_t *s = p;
    char *o = vl_malloc((n + 2) / 3 * 4 + 1);
    size_t k = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        o[k++] = b64[v >> 18];
        o[k++] = b64[(v >> 12) & 63];
        o[k++] = b64[(v >> 6) & 63];
        o[k++] = b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        o[k++] = b64[v >> 18];
        o[k++] = b64[(v >> 12) & 63];
        o[k++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        o[k++] = '=';
    }
    o[k] = 0;
    return o;
}

long api_base64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    while (n && s[n - 1] == '=')
        n--;
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(b64, s[i], 64);
        if (!p || !s[i])
            return -1;
        acc = acc << 6 | (uint32_t)(p - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (k >= cap)
                return -1;
            out[k++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)k;
}

/* Powers of ten 1e-40 .. 1e60 for api_format_float (index k + 40). */
static double pow10_tab[101];
static int pow10_ready;

static void pow10_init(void)
{
    double p = 1;
    pow10_tab[40] = 1;
    for (int k = 1; k <= 60; k++)
        pow10_tab[40 + k] = (p *= 10);
    p = 1;
    for (int k = 1; k <= 40; k++)
        pow10_tab[40 - k] = (p /= 10);
    pow10_ready = 1;
}

int api_format_float(float xf, char *out)
{
    if (!pow10_ready)
        pow10_init();
    double x = xf;
    char *o = out;
    if (!(x == x) || x > 3.5e38 || x < -3.5e38 || x == 0) { /* 0; NaN/inf cannot be JSON */
        *o++ = '0';
        *o = 0;
        return 1;
    }
    if (x < 0) {
        *o++ = '-';
        x = -x;
    }
    int e = (int)floor(log10(x));
    if (e < -40)
        e = -40;
    /* nine significant digits round-trip any float32 */
    double s = x * pow10_tab[40 + 8 - e];
    long long d = llround(s);
    if (d >= 1000000000LL) {
        d = llround(s / 10);
        e++;
    } else if (d < 100000000LL) {
        e--;
        d = llround(x * pow10_tab[40 + 8 - e]);
    }
    char dig[10];
    for (int i = 8; i >= 0; i--) {
        dig[i] = (char)('0' + d % 10);
        d /= 10;
    }
    int nd = 9;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    if (e >= -5 && e < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -e - 1; i++)
            *o++ = '0';
        memcpy(o, dig, (size_t)nd);
        o += nd;
    } else if (e >= 0 && e < 9) {
        for (int i = 0; i <= e; i++)
            *o++ = i < nd ? dig[i] : '0';
        if (nd > e + 1) {
            *o++ = '.';
            memcpy(o, dig + e + 1, (size_t)(nd - e - 1));
            o += nd - e - 1;
        }
    } else {
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)(nd - 1));
            o += nd - 1;
        }
        o += sprintf(o, "e%d", e);
    }
    *o = 0;
    return (int)(o - out);
}
