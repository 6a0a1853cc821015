/* Run-time loading of FFmpeg for video containers (see media_ffmpeg.h). */
#define MEDIA_FFMPEG_IMPL
#include "gateway/media_ffmpeg.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct media_ffmpeg_api media_ffmpeg;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_err[512];
static int load_rc = -1;

/* The sonames this build was compiled against (the headers' major versions). */
#define SONAME(lib, major) "lib" lib ".so." #major
#define XSONAME(lib, major) SONAME(lib, major)

static void *open_lib(const char *soname)
{
    const char *dir = getenv("VL_FFMPEG_LIBDIR");
    if (dir && *dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, soname);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    return dlopen(soname, RTLD_NOW | RTLD_LOCAL);
}

static void load(void)
{
    const char *names[] = {XSONAME("avutil", LIBAVUTIL_VERSION_MAJOR),
                           XSONAME("avcodec", LIBAVCODEC_VERSION_MAJOR),
                           XSONAME("avformat", LIBAVFORMAT_VERSION_MAJOR),
                           XSONAME("swscale", LIBSWSCALE_VERSION_MAJOR)};
    void *h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = open_lib(names[i]);
        if (!h[i]) {
            snprintf(load_err, sizeof load_err,
                     "video files need FFmpeg (%s), which is not installed on this host", names[i]);
            return;
        }
    }
#define MEDIA_FFMPEG_RESOLVE(fn)                                                                   \
    for (int i = 0; i < 4 && !media_ffmpeg.fn; i++)                                                \
        *(void **)&media_ffmpeg.fn = dlsym(h[i], #fn);                                             \
    if (!media_ffmpeg.fn) {                                                                        \
        snprintf(load_err, sizeof load_err, "FFmpeg on this host lacks %s", #fn);                  \
        return;                                                                                    \
    }
    MEDIA_FFMPEG_FUNCS(MEDIA_FFMPEG_RESOLVE)
#undef MEDIA_FFMPEG_RESOLVE
    load_rc = 0;
}

int media_ffmpeg_load(char *err, size_t errlen)
{
    pthread_once(&load_once, load);
    if (load_rc < 0)
        snprintf(err, errlen, "%s", load_err);
    return load_rc;
}
