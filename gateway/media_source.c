/* data: URIs and local files for media items (media_source.h). */
#include "gateway/media_source.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/alloc.h"

enum media_source_kind media_source_classify(const char *s)
{
    if (!s)
        return MEDIA_SRC_INVALID;
    if (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0)
        return MEDIA_SRC_URL;
    if (strncasecmp(s, "data:", 5) == 0)
        return MEDIA_SRC_DATA;
    if (strncasecmp(s, "file://", 7) == 0)
        return MEDIA_SRC_FILE;
    return MEDIA_SRC_INVALID;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int media_source_data_uri(const char *uri, size_t len, int64_t max_bytes, uint8_t **out, size_t *n,
                          char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (len < 5 || strncasecmp(uri, "data:", 5) != 0) {
        snprintf(err, errlen, "not a data: URI");
        return -EINVAL;
    }
    const char *comma = memchr(uri, ',', len);
    if (!comma) {
        snprintf(err, errlen, "data: URI has no ',' before its data");
        return -EINVAL;
    }
    /* The header must end in ";base64" (any case), as the decoder below assumes. */
    size_t hlen = (size_t)(comma - uri);
    if (hlen < 5 + 7 || strncasecmp(comma - 7, ";base64", 7) != 0) {
        snprintf(err, errlen, "only base64 data: URIs are supported (data:<type>;base64,...)");
        return -EINVAL;
    }
    const unsigned char *p = (const unsigned char *)comma + 1;
    size_t elen = len - hlen - 1;
    /* Decoded size <= 3/4 of the encoded length: refuse before decoding anything. */
    if ((int64_t)(elen / 4 * 3) > max_bytes + 3) {
        snprintf(err, errlen, "data: URI holds up to %zu bytes; the limit is %lld", elen / 4 * 3,
                 (long long)max_bytes);
        return -E2BIG;
    }
    uint8_t *buf = vl_malloc(elen / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < elen; i++) {
        unsigned char c = p[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) {
            free(buf);
            snprintf(err, errlen, "data: URI has a non-base64 character at offset %zu of its data",
                     i);
            return -EINVAL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 6 || pad > 2) {
        free(buf);
        snprintf(err, errlen, "data: URI base64 data has a bad length");
        return -EINVAL;
    }
    if ((int64_t)o > max_bytes) {
        free(buf);
        snprintf(err, errlen, "data: URI holds %zu bytes; the limit is %lld", o,
                 (long long)max_bytes);
        return -E2BIG;
    }
    *out = buf;
    *n = o;
    return 0;
}

int media_source_local_file(const char *root, const char *path, int64_t max_bytes, uint8_t **out,
                            size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!root || !*root) {
        snprintf(err, errlen, "local files are disabled (no media directory is configured)");
        return -EPERM;
    }
    if (strncasecmp(path, "file://", 7) == 0)
        path += 7;
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    if (path[0] != '/' || strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != 0)) {
        snprintf(err, errlen, "local file '%s' is not under the media directory", path);
        return -EPERM;
    }
    const char *rel = path + rl;
    while (*rel == '/')
        rel++;
    if (!*rel) {
        snprintf(err, errlen, "local file '%s' names the media directory itself", path);
        return -EINVAL;
    }
    int dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "media directory '%s': %s", root, strerror(errno));
        return -EIO;
    }
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
    int e = errno;
    close(dfd);
    if (fd < 0) {
        snprintf(err, errlen, "local file '%s': %s", path,
                 e == EXDEV ? "leaves the media directory" : strerror(e));
        return e == EXDEV ? -EPERM : e == ENOENT ? -ENOENT : -EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, errlen, "local file '%s' is not a regular file", path);
        return -EINVAL;
    }
    if (st.st_size > max_bytes) {
        close(fd);
        snprintf(err, errlen, "local file '%s' is %lld bytes; the limit is %lld", path,
                 (long long)st.st_size, (long long)max_bytes);
        return -E2BIG;
    }
    size_t want = (size_t)st.st_size, got = 0;
    uint8_t *buf = vl_malloc(want ? want : 1);
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != want) {
        free(buf);
        snprintf(err, errlen, "local file '%s': short read", path);
        return -EIO;
    }
    *out = buf;
    *n = got;
    return 0;
}
