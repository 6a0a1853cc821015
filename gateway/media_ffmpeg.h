/* FFmpeg, loaded at run time. Video containers are the one feature that needs FFmpeg, and
 * FFmpeg's libraries pull in ~150 MB of codec libraries; linking them would make every gateway
 * and vlembedctl depend on them. Instead media_video.c includes this header after FFmpeg's own,
 * which turns each FFmpeg call into a call through a table filled by dlopen/dlsym on first use.
 * Without FFmpeg installed, video files are refused with a clear error and everything else works.
 */
#ifndef VL_GATEWAY_MEDIA_FFMPEG_H
#define VL_GATEWAY_MEDIA_FFMPEG_H

#include <stddef.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>

/* clang-format off */
#define MEDIA_FFMPEG_FUNCS(X)                                                                      \
    X(av_dict_free) X(av_dict_set) X(av_find_best_stream) X(av_frame_alloc) X(av_frame_free)      \
    X(av_frame_unref) X(av_free) X(av_freep) X(av_log_set_level) X(av_malloc)                      \
    X(av_packet_alloc) X(av_packet_free) X(av_packet_unref) X(av_read_frame) X(av_strdup)          \
    X(avcodec_alloc_context3) X(avcodec_find_decoder) X(avcodec_free_context)                      \
    X(avcodec_get_name) X(avcodec_open2) X(avcodec_parameters_to_context)                          \
    X(avcodec_receive_frame) X(avcodec_send_packet) X(avformat_alloc_context)                      \
    X(avformat_close_input) X(avformat_find_stream_info) X(avformat_open_input)                    \
    X(avio_alloc_context) X(avio_context_free) X(sws_getCachedContext) X(sws_scale)                \
    X(sws_freeContext)
/* clang-format on */

struct media_ffmpeg_api {
#define MEDIA_FFMPEG_MEMBER(fn) __typeof__(fn) *fn;
    MEDIA_FFMPEG_FUNCS(MEDIA_FFMPEG_MEMBER)
#undef MEDIA_FFMPEG_MEMBER
};
extern struct media_ffmpeg_api media_ffmpeg;

/* Loads the libraries once (thread-safe). Returns 0, or -1 with a sentence in err. The library
 * names can be overridden with VL_FFMPEG_LIBDIR (a directory holding them). */
int media_ffmpeg_load(char *err, size_t errlen);

#ifndef MEDIA_FFMPEG_IMPL
#define av_dict_free media_ffmpeg.av_dict_free
#define av_dict_set media_ffmpeg.av_dict_set
#define av_find_best_stream media_ffmpeg.av_find_best_stream
#define av_frame_alloc media_ffmpeg.av_frame_alloc
#define av_frame_free media_ffmpeg.av_frame_free
#define av_frame_unref media_ffmpeg.av_frame_unref
#define av_free media_ffmpeg.av_free
#define av_freep media_ffmpeg.av_freep
#define av_log_set_level media_ffmpeg.av_log_set_level
#define av_malloc media_ffmpeg.av_malloc
#define av_packet_alloc media_ffmpeg.av_packet_alloc
#define av_packet_free media_ffmpeg.av_packet_free
#define av_packet_unref media_ffmpeg.av_packet_unref
#define av_read_frame media_ffmpeg.av_read_frame
#define av_strdup media_ffmpeg.av_strdup
#define avcodec_alloc_context3 media_ffmpeg.avcodec_alloc_context3
#define avcodec_find_decoder media_ffmpeg.avcodec_find_decoder
#define avcodec_free_context media_ffmpeg.avcodec_free_context
#define avcodec_get_name media_ffmpeg.avcodec_get_name
#define avcodec_open2 media_ffmpeg.avcodec_open2
#define avcodec_parameters_to_context media_ffmpeg.avcodec_parameters_to_context
#define avcodec_receive_frame media_ffmpeg.avcodec_receive_frame
#define avcodec_send_packet media_ffmpeg.avcodec_send_packet
#define avformat_alloc_context media_ffmpeg.avformat_alloc_context
#define avformat_close_input media_ffmpeg.avformat_close_input
#define avformat_find_stream_info media_ffmpeg.avformat_find_stream_info
#define avformat_open_input media_ffmpeg.avformat_open_input
#define avio_alloc_context media_ffmpeg.avio_alloc_context
#define avio_context_free media_ffmpeg.avio_context_free
#define sws_getCachedContext media_ffmpeg.sws_getCachedContext
#define sws_scale media_ffmpeg.sws_scale
#define sws_freeContext media_ffmpeg.sws_freeContext
#endif

#endif
