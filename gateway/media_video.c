/* Video (media.h): frame lists (spec §7.3) and container files decoded with FFmpeg (§7.2),
 * frame sampling exactly as qwen-vl-utils computes it, the video pixel budget, the second
 * (torchvision, float, antialiased bicubic) resize, and the timestamps of §7.5.
 *
 * Container files: one pass counts the video stream's packets (decord's frame count), the
 * sampled indices are computed from it, and a second pass decodes in order and keeps only the
 * sampled frames, each converted to RGB and resized as it arrives, so memory stays at the
 * sampled output plus one frame. Only mp4/mov, Matroska/WebM and AVI demuxers and common video
 * decoders are allowed (no demuxer that could open other files), single-threaded decoding. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/media_ffmpeg.h" /* FFmpeg's headers; its calls go through dlopen */

#include "common/alloc.h"
#include "gateway/media.h"

#define MEDIA_VIDEO_FORMATS "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi"
#define MEDIA_VIDEO_CODECS                                                                         \
    "h264,hevc,vp8,vp9,av1,libdav1d,libaom-av1,mpeg4,mjpeg,mpeg1video,mpeg2video,theora,"          \
    "libvpx,libvpx-vp9"

/* ---- sampling arithmetic ------------------------------------------------------------------ */

int media_video_nframes(int64_t total_frames, double native_fps, double fps, int32_t min_frames,
                        int32_t max_frames, int32_t *out, char *err, size_t errlen)
{
    /* smart_nframes: min = ceil2(min_frames), max = floor2(max_frames),
     * n = clamp(total/native_fps*fps, min, max), n = min(n, total), floor to even. */
    double mn = ceil(min_frames / 2.0) * 2, mx = floor(max_frames / 2.0) * 2;
    double n = (double)total_frames / native_fps * fps;
    n = fmin(fmin(fmax(n, mn), mx), (double)total_frames);
    int64_t k = (int64_t)(floor(n / 2.0) * 2);
    if (k < 2 || k > total_frames) {
        snprintf(err, errlen, "video has %lld frames; at least 2 are needed",
                 (long long)total_frames);
        return -EINVAL;
    }
    *out = (int32_t)k;
    return 0;
}

void media_video_sample_indices(int64_t total_frames, int32_t n, int32_t *idx)
{
    /* torch.linspace(0, total-1, n) in float32 (aten's two-sided formula), then round half to
     * even, as .round().long() does. */
    float start = 0.0f, end = (float)(total_frames - 1);
    if (n == 1) {
        idx[0] = 0;
        return;
    }
    float step = (end - start) / (float)(n - 1);
    int32_t half = n / 2;
    for (int32_t i = 0; i < n; i++) {
        float v = i < half ? start + step * (float)i : end - step * (float)(n - i - 1);
        idx[i] = (int32_t)nearbyintf(v);
    }
}

void media_video_timestamps(const int32_t *idx, int32_t n, double fps, double *ts)
{
    for (int32_t k = 0; 2 * k < n; k++) {
        int32_t a = idx[2 * k], b = 2 * k + 1 < n ? idx[2 * k + 1] : idx[n - 1];
        ts[k] = ((double)a / fps + (double)b / fps) / 2;
    }
}

double media_video_frame_max_pixels(int64_t min_px, int64_t max_px, int64_t total_px, int32_t n)
{
    double per = fmin((double)max_px, (double)total_px / n * 2);
    double floor_px = (double)(int64_t)((double)min_px * 1.05);
    return fmax(per, floor_px);
}

static void fill_video(struct vl_visual *out, uint8_t *px, int32_t n, int32_t h, int32_t w)
{
    out->kind = VL_VISUAL_VIDEO;
    out->n_frames = n;
    out->grid_t = n / 2;
    out->height = h;
    out->width = w;
    out->grid_h = h / 16;
    out->grid_w = w / 16;
    out->pixels = px;
}

/* ---- frame lists (§7.3) ------------------------------------------------------------------- */

int32_t media_video_list_pick(int32_t n, int32_t max_frames, int32_t *pick)
{
    /* The embedder keeps frames[linspace(0, n-1, max, dtype=int)] (numpy: i*step, truncated). */
    int32_t keep = n > max_frames ? max_frames : n;
    for (int32_t i = 0; i < keep; i++) {
        if (keep == n)
            pick[i] = i;
        else {
            double step = (double)(n - 1) / (keep - 1);
            pick[i] = i == keep - 1 ? n - 1 : (int32_t)(i * step);
        }
    }
    return keep < 0 ? 0 : keep;
}

int media_video_prepare_frames(const uint8_t *const *frames, const size_t *sizes, int n,
                               const struct media_limits *l, struct vl_visual *out,
                               double **timestamps, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    *timestamps = NULL;
    if (n < 1) {
        snprintf(err, errlen, "video frame list is empty");
        return -EINVAL;
    }
    int32_t *pick = vl_malloc((size_t)n * sizeof *pick);
    int32_t keep = media_video_list_pick(n, l->video_max_frames, pick);
    int32_t nf = keep + (keep & 1); /* padded to even with the last frame */
    int32_t h0 = 0, w0 = 0;
    uint8_t **first = vl_calloc((size_t)keep, sizeof *first);
    int rc = 0;
    for (int32_t i = 0; i < keep; i++) {
        uint8_t *rgb;
        int32_t w, h, rh, rw;
        char e[256];
        rc = media_image_decode_rgb(frames[pick[i]], sizes[pick[i]], l, &rgb, &w, &h, e, sizeof e);
        if (rc == 0 && (w < 2 || h < 2)) {
            free(rgb);
            snprintf(e, sizeof e, "image is %dx%d; each side must be at least 2 pixels", w, h);
            rc = -EINVAL;
        }
        /* First resize: each frame as fetch_image does it, image defaults (4..16384 tokens). */
        if (rc == 0) {
            rc =
                media_smart_resize(h, w, 32, 4 * 32 * 32, 16384ll * 32 * 32, &rh, &rw, e, sizeof e);
            if (rc)
                free(rgb);
        }
        if (rc) {
            snprintf(err, errlen, "frame %d: %s", pick[i], e);
            goto fail;
        }
        if (i == 0) {
            h0 = rh;
            w0 = rw;
        } else if (rh != h0 || rw != w0) {
            free(rgb);
            snprintf(err, errlen,
                     "frame %d resizes to %dx%d but frame %d to %dx%d; all frames of a "
                     "video must have one size",
                     pick[i], rw, rh, pick[0], w0, h0);
            rc = -EINVAL;
            goto fail;
        }
        first[i] = vl_malloc((size_t)rh * rw * 3);
        media_resize_bicubic(rgb, w, h, first[i], rw, rh);
        free(rgb);
    }
    /* Second resize: the video budget over the padded count, torchvision's float bicubic. */
    double maxpx = media_video_frame_max_pixels(l->video_min_pixels, l->video_max_pixels,
                                                l->video_total_pixels, nf);
    int32_t vh, vw;
    rc =
        media_smart_resize_d(h0, w0, 32, (double)l->video_min_pixels, maxpx, &vh, &vw, err, errlen);
    if (rc)
        goto fail;
    size_t fsz = (size_t)vh * vw * 3;
    uint8_t *px = vl_malloc(fsz * nf);
    for (int32_t i = 0; i < keep; i++)
        media_resize_bicubic_aa_float(first[i], w0, h0, px + fsz * i, vw, vh);
    if (nf > keep)
        memcpy(px + fsz * keep, px + fsz * (keep - 1), fsz);
    fill_video(out, px, nf, vh, vw);
    int32_t *idx = vl_malloc((size_t)nf * sizeof *idx);
    for (int32_t i = 0; i < nf; i++)
        idx[i] = i;
    *timestamps = vl_malloc((size_t)(nf / 2) * sizeof(double));
    media_video_timestamps(idx, nf, l->frame_list_fps_x10 / 10.0, *timestamps);
    free(idx);
fail:
    for (int32_t i = 0; i < keep; i++)
        free(first[i]);
    free(first);
    free(pick);
    return rc;
}

/* ---- container files (§7.2) --------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

struct membuf {
    const uint8_t *data;
    size_t n, pos;
};

static int mem_read(void *opaque, uint8_t *buf, int size)
{
    struct membuf *m = opaque;
    size_t left = m->n - m->pos;
    if (left == 0)
        return AVERROR_EOF;
    size_t k = (size_t)size < left ? (size_t)size : left;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence)
{
    struct membuf *m = opaque;
    if (whence & AVSEEK_SIZE)
        return (int64_t)m->n;
    whence &= ~AVSEEK_FORCE;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)m->pos : (int64_t)m->n;
    int64_t p = base + off;
    if (p < 0 || p > (int64_t)m->n)
        return AVERROR(EINVAL);
    m->pos = (size_t)p;
    return p;
}

struct demux {
    struct membuf mb;
    AVIOContext *io;
    AVFormatContext *fmt;
    int stream;
};

static void demux_close(struct demux *d)
{
    if (d->fmt)
        avformat_close_input(&d->fmt);
    if (d->io) {
        av_freep(&d->io->buffer);
        avio_context_free(&d->io);
    }
}

/* FFmpeg would print its own lines on stderr for every odd file; our errors say enough. */
static pthread_once_t av_once = PTHREAD_ONCE_INIT;
static void av_quiet(void)
{
    av_log_set_level(AV_LOG_QUIET);
}

static int demux_open(struct demux *d, const uint8_t *data, size_t n, char *err, size_t errlen)
{
    pthread_once(&av_once, av_quiet);
    memset(d, 0, sizeof *d);
    d->mb.data = data;
    d->mb.n = n;
    uint8_t *buf = av_malloc(65536);
    d->io = avio_alloc_context(buf, 65536, 0, &d->mb, mem_read, NULL, mem_seek);
    d->fmt = avformat_alloc_context();
    if (!buf || !d->io || !d->fmt) {
        if (!d->io)
            av_free(buf);
        snprintf(err, errlen, "out of memory opening the video");
        return -ENOMEM;
    }
    d->fmt->pb = d->io;
    d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    d->fmt->format_whitelist = av_strdup(MEDIA_VIDEO_FORMATS);
    d->fmt->codec_whitelist = av_strdup(MEDIA_VIDEO_CODECS);
    d->fmt->protocol_whitelist = av_strdup("none");
    int rc = avformat_open_input(&d->fmt, NULL, NULL, NULL);
    if (rc < 0) {
        d->fmt = NULL; /* freed by avformat_open_input on failure */
        int known = (n >= 8 && memcmp(data + 4, "ftyp", 4) == 0) ||
                    (n >= 4 && memcmp(data, "\x1a\x45\xdf\xa3", 4) == 0) ||
                    (n >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "AVI ", 4) == 0);
        if (known) {
            snprintf(err, errlen, "corrupt or truncated video file");
            return -EINVAL;
        }
        snprintf(err, errlen, "not a supported video container (mp4, mov, webm, mkv, avi)");
        return -ENOTSUP;
    }
    if (avformat_find_stream_info(d->fmt, NULL) < 0) {
        snprintf(err, errlen, "corrupt video: no stream information");
        return -EINVAL;
    }
    d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (d->stream < 0) {
        snprintf(err, errlen, "the file has no video stream");
        return -EINVAL;
    }
    return 0;
}

/* Opens the file, checks the video stream's size against the limits and counts its packets
 * (decord's frame count; nothing is decoded). d is left open (demux_close it either way). */
static int probe_pass(struct demux *d, const uint8_t *data, size_t n, const struct media_limits *l,
                      int32_t *wp, int32_t *hp, double *native_fps, int64_t *frames, char *err,
                      size_t errlen)
{
    int rc = demux_open(d, data, n, err, errlen);
    if (rc)
        return rc;
    AVStream *st = d->fmt->streams[d->stream];
    int32_t w = st->codecpar->width, h = st->codecpar->height;
    if (w < 2 || h < 2) {
        snprintf(err, errlen, "video frames are %dx%d; each side must be at least 2 pixels", w, h);
        return -EINVAL;
    }
    if (w > l->max_width || h > l->max_height || (int64_t)w * h > l->max_decoded_pixels) {
        snprintf(err, errlen, "video frames are %dx%d; the limit is %dx%d and %lld pixels", w, h,
                 l->max_width, l->max_height, (long long)l->max_decoded_pixels);
        return -E2BIG;
    }
    AVRational r = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
    if (r.num <= 0 || r.den <= 0) {
        snprintf(err, errlen, "video has no frame rate");
        return -EINVAL;
    }
    AVPacket *pkt = av_packet_alloc();
    if (!pkt) {
        snprintf(err, errlen, "out of memory reading the video");
        return -ENOMEM;
    }
    int64_t total = 0;
    while (av_read_frame(d->fmt, pkt) >= 0) {
        if (pkt->stream_index == d->stream)
            total++;
        av_packet_unref(pkt);
        if (total > l->video_max_source_frames) {
            snprintf(err, errlen, "video has more than %lld frames",
                     (long long)l->video_max_source_frames);
            av_packet_free(&pkt);
            return -E2BIG;
        }
    }
    av_packet_free(&pkt);
    *wp = w;
    *hp = h;
    *native_fps = av_q2d(r);
    *frames = total;
    return 0;
}

int media_video_probe_file(const uint8_t *data, size_t n, const struct media_limits *l, int32_t *w,
                           int32_t *h, int64_t *frames, char *err, size_t errlen)
{
    *w = *h = 0;
    *frames = 0;
    if (media_ffmpeg_load(err, errlen) < 0)
        return -ENOTSUP;
    if ((int64_t)n > l->max_video_bytes) {
        snprintf(err, errlen, "video is %zu bytes; the limit is %lld", n,
                 (long long)l->max_video_bytes);
        return -E2BIG;
    }
    struct demux d;
    double fps;
    int rc = probe_pass(&d, data, n, l, w, h, &fps, frames, err, errlen);
    demux_close(&d);
    return rc;
}

int media_video_prepare_file(const uint8_t *data, size_t n, const struct media_limits *l,
                             const struct media_video_opts *opts, struct vl_visual *out,
                             double **timestamps, int32_t **frame_indices, int32_t *n_indices,
                             char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    *timestamps = NULL;
    *frame_indices = NULL;
    *n_indices = 0;
    if (media_ffmpeg_load(err, errlen) < 0)
        return -ENOTSUP;
    if ((int64_t)n > l->max_video_bytes) {
        snprintf(err, errlen, "video is %zu bytes; the limit is %lld", n,
                 (long long)l->max_video_bytes);
        return -E2BIG;
    }
    double fps = l->video_fps;
    int32_t max_frames = l->video_max_frames;
    int64_t max_pixels = l->video_max_pixels;
    if (opts) {
        if (opts->fps < 0 || opts->fps > l->video_fps || opts->max_frames < 0 ||
            opts->max_frames > l->video_max_frames || opts->max_pixels < 0 ||
            opts->max_pixels > l->video_max_pixels) {
            snprintf(err, errlen,
                     "fps, max_frames and max_pixels may only lower the server's "
                     "limits (%.2f, %d, %lld)",
                     l->video_fps, l->video_max_frames, (long long)l->video_max_pixels);
            return -EINVAL;
        }
        if (opts->fps > 0)
            fps = opts->fps;
        if (opts->max_frames > 0)
            max_frames = opts->max_frames;
        if (opts->max_pixels > 0)
            max_pixels = opts->max_pixels;
    }

    struct demux d;
    AVCodecContext *cc = NULL;
    AVPacket *pkt = NULL;
    AVFrame *fr = NULL;
    struct SwsContext *sws = NULL;
    uint8_t *rgb = NULL, *px = NULL;
    int32_t *idx = NULL;
    double *ts = NULL;
    int32_t w, h;
    double native_fps;
    int64_t total;
    int64_t t_end = now_ms() + l->video_max_decode_ms;
    int rc = probe_pass(&d, data, n, l, &w, &h, &native_fps, &total, err, errlen);
    if (rc)
        goto done;
    pkt = av_packet_alloc();
    int32_t nf;
    if ((rc = media_video_nframes(total, native_fps, fps, l->video_min_frames, max_frames, &nf, err,
                                  errlen)))
        goto done;
    idx = vl_malloc((size_t)nf * sizeof *idx);
    media_video_sample_indices(total, nf, idx);
    double maxpx =
        media_video_frame_max_pixels(l->video_min_pixels, max_pixels, l->video_total_pixels, nf);
    int32_t vh, vw;
    if ((rc = media_smart_resize_d(h, w, 32, (double)l->video_min_pixels, maxpx, &vh, &vw, err,
                                   errlen)))
        goto done;

    /* Pass 2: decode from the start, keep the sampled frames. */
    demux_close(&d);
    if ((rc = demux_open(&d, data, n, err, errlen)))
        goto done;
    AVStream *st = d.fmt->streams[d.stream];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    cc = codec ? avcodec_alloc_context3(codec) : NULL;
    AVDictionary *copts = NULL;
    av_dict_set(&copts, "codec_whitelist", MEDIA_VIDEO_CODECS, 0);
    av_dict_set(&copts, "threads", "1", 0);
    if (!cc || avcodec_parameters_to_context(cc, st->codecpar) < 0 ||
        avcodec_open2(cc, codec, &copts) < 0) {
        av_dict_free(&copts);
        snprintf(err, errlen, "unsupported video codec '%s'",
                 avcodec_get_name(st->codecpar->codec_id));
        rc = -ENOTSUP;
        goto done;
    }
    av_dict_free(&copts);
    fr = av_frame_alloc();
    size_t fsz = (size_t)vh * vw * 3;
    px = vl_malloc(fsz * nf);
    rgb = vl_malloc((size_t)w * h * 3);
    int64_t k = 0;   /* decoded frame number */
    int32_t got = 0; /* sampled frames filled */
    int eof = 0;
    while (got < nf && !eof) {
        /* Decoding runs up to the last sampled frame; a long or expensive file must not hold a
         * pool thread for minutes. */
        if (now_ms() >= t_end) {
            snprintf(err, errlen, "decoding the video took %lld ms or longer (at frame %lld)",
                     (long long)l->video_max_decode_ms, (long long)k);
            rc = -ETIMEDOUT;
            goto done;
        }
        int r2 = av_read_frame(d.fmt, pkt);
        if (r2 < 0) {
            eof = 1;
            avcodec_send_packet(cc, NULL);
        } else if (pkt->stream_index != d.stream) {
            av_packet_unref(pkt);
            continue;
        } else {
            avcodec_send_packet(cc, pkt); /* a corrupt packet: skip it, as players do */
            av_packet_unref(pkt);
        }
        while (got < nf && avcodec_receive_frame(cc, fr) == 0) {
            if (fr->width != w || fr->height != h) {
                snprintf(err, errlen, "video frame size changes from %dx%d to %dx%d", w, h,
                         fr->width, fr->height);
                rc = -EINVAL;
                goto done;
            }
            if (got < nf && idx[got] == k) {
                sws = sws_getCachedContext(sws, w, h, fr->format, w, h, AV_PIX_FMT_RGB24,
                                           SWS_BICUBIC, NULL, NULL, NULL);
                if (!sws) {
                    snprintf(err, errlen, "cannot convert pixel format %d to RGB", fr->format);
                    rc = -ENOTSUP;
                    goto done;
                }
                uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
                int dst_ls[4] = {w * 3, 0, 0, 0};
                sws_scale(sws, (const uint8_t *const *)fr->data, fr->linesize, 0, h, dst, dst_ls);
                media_resize_bicubic_aa_float(rgb, w, h, px + fsz * got, vw, vh);
                got++;
                /* several sampled indices can name the same frame */
                while (got < nf && idx[got] == k) {
                    memcpy(px + fsz * got, px + fsz * (got - 1), fsz);
                    got++;
                }
            }
            av_frame_unref(fr);
            k++;
        }
    }
    if (got == 0) {
        snprintf(err, errlen, "corrupt video: no frame could be decoded");
        rc = -EINVAL;
        goto done;
    }
    for (; got < nf; got++) /* fewer frames decoded than packets counted */
        memcpy(px + fsz * got, px + fsz * (got - 1), fsz);
    ts = vl_malloc((size_t)(nf / 2) * sizeof *ts);
    media_video_timestamps(idx, nf, native_fps, ts);
    fill_video(out, px, nf, vh, vw);
    px = NULL;
    *timestamps = ts;
    ts = NULL;
    *frame_indices = idx;
    idx = NULL;
    *n_indices = nf;
    rc = 0;
done:
    sws_freeContext(sws);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    demux_close(&d);
    free(rgb);
    free(px);
    free(idx);
    free(ts);
    return rc;
}
