/* The gateway's build of stb_image (GIF first frame, BMP) behind two calls; internal to
 * the media code (media_decode.c). */
#ifndef VL_GATEWAY_MEDIA_STB_H
#define VL_GATEWAY_MEDIA_STB_H

#include <stddef.h>
#include <stdint.h>

/* stb's own hard cap on a side, above any operator limit. */
#define MEDIA_STB_MAX_DIMENSION 32768

/* Header only: 1 and the size and channel count, or 0. */
int media_stb_info(const uint8_t *data, size_t n, int *w, int *h, int *comp);

/* Decodes with req_comp channels (8 bits, or 16 bits per channel if bits16), the decoder's
 * allocations limited to cap bytes in total. Returns malloc'd pixels or NULL with *why set
 * (stb's reason) and *over_budget = 1 when the budget refused an allocation. */
uint8_t *media_stb_load(const uint8_t *data, size_t n, int req_comp, int bits16, size_t cap, int *w,
                        int *h, const char **why, int *over_budget);

#endif
