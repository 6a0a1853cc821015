/* PNG via libpng, for media_decode.c (internal to the media code). */
#ifndef VL_GATEWAY_MEDIA_PNG_H
#define VL_GATEWAY_MEDIA_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Decodes a PNG (size already checked from its IHDR) to packed RGB as Pillow + to_rgb would:
 * RGBA composited on white, grey/palette/grey+alpha to RGB with alpha and tRNS dropped, 16-bit
 * channels to their high byte except 16-bit grey, which is clipped to 0..255 (Pillow mode I).
 * Returns 0 or -EINVAL (corrupt, truncated) / -ENOMEM with err set. */
int media_png_decode(const uint8_t *data, size_t n, int32_t max_w, int32_t max_h, uint8_t **rgb,
                     int32_t *w, int32_t *h, char *err, size_t errlen);

/* Pillow's paste of an RGBA image on white with its alpha as the mask (npx pixels). */
void media_png_composite_white(const uint8_t *rgba, size_t npx, uint8_t *rgb);

#endif
