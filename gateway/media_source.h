/* Where a media item's bytes come from, other than a URL fetch (gateway/fetch.h): `data:` URIs
 * (base64) and local files under one operator-configured directory (off unless configured).
 * Raw bytes from msgpack requests need nothing from here. Pure functions, thread-safe. */
#ifndef VL_GATEWAY_MEDIA_SOURCE_H
#define VL_GATEWAY_MEDIA_SOURCE_H

#include <stddef.h>
#include <stdint.h>

enum media_source_kind {
    MEDIA_SRC_INVALID = 0,
    MEDIA_SRC_URL,  /* http:// or https:// (case-insensitive scheme) */
    MEDIA_SRC_DATA, /* data: */
    MEDIA_SRC_FILE, /* file:// */
};

/* What a request string names, from its scheme alone. */
enum media_source_kind media_source_classify(const char *s);

/* Decodes "data:[<mime>][;params];base64,<data>" into malloc'd bytes. The MIME type is ignored
 * (the decoder looks at the bytes). The decoded size is bounded from the encoded length before
 * anything is decoded: over max_bytes is -E2BIG. Whitespace inside the data is skipped; any
 * other non-base64 character, or a URI that is not base64, is -EINVAL. */
int media_source_data_uri(const char *uri, size_t len, int64_t max_bytes, uint8_t **out, size_t *n,
                          char *err, size_t errlen);

/* Reads a local file named "file:///abs/path" (or an absolute path) that lies under root
 * (an absolute directory; NULL or "" = local files are disabled: -EPERM). The file is opened
 * with openat2(RESOLVE_BENEATH) relative to root, so neither ".." nor a symlink can leave it;
 * it must be a regular file of at most max_bytes (-E2BIG). */
int media_source_local_file(const char *root, const char *path, int64_t max_bytes, uint8_t **out,
                            size_t *n, char *err, size_t errlen);

#endif
