/* A standalone driver of the two resamplers (gateway/media_resize.c) for reference checks
 * where the rest of the gateway cannot be built or linked (the GPU machine lacks libuv & co.):
 *
 *   cc -O2 -I. bench/media/resize_cli.c gateway/media_resize.c common/alloc.c common/log.c -lm
 *   resize_cli aa|pillow LIST
 *
 * LIST has one job per line: "IN.rgb W H OUT.rgb DW DH" (raw packed RGB files). Used by
 * scripts/ref/check_video_resize.py against torch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/media.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: resize_cli aa|pillow LIST\n");
        return 2;
    }
    int aa = strcmp(argv[1], "aa") == 0;
    FILE *list = fopen(argv[2], "r");
    if (!list)
        return 1;
    char in[1024], out[1024];
    int w, h, dw, dh, jobs = 0;
    while (fscanf(list, "%1023s %d %d %1023s %d %d", in, &w, &h, out, &dw, &dh) == 6) {
        size_t n = (size_t)w * h * 3, m = (size_t)dw * dh * 3;
        unsigned char *src = malloc(n), *dst = malloc(m);
        FILE *f = fopen(in, "rb");
        if (!f || fread(src, 1, n, f) != n)
            return 1;
        fclose(f);
        if (aa)
            media_resize_bicubic_aa_float(src, w, h, dst, dw, dh);
        else
            media_resize_bicubic(src, w, h, dst, dw, dh);
        f = fopen(out, "wb");
        if (!f || fwrite(dst, 1, m, f) != m)
            return 1;
        fclose(f);
        free(src);
        free(dst);
        jobs++;
    }
    fclose(list);
    printf("%d jobs\n", jobs);
    return 0;
}
