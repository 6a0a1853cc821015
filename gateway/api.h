/* The embeddings API, independent of transport: the parsed request (api_req), its validation
 * from JSON (api_parse.c), the output post-processing (Matryoshka truncation, renormalisation,
 * encodings: api_encode.c), errors shaped like OpenAI's, and the job that carries a request
 * through admission, preprocessing, routing and assembly (api_job.c). HTTP (api_http.c) and
 * the msgpack API (mpapi.c) only translate in and out. Every field is documented in
 * docs/api.md; every error code in docs/errors.md. */
#ifndef VL_GATEWAY_API_H
#define VL_GATEWAY_API_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

enum api_part_kind { API_PART_TEXT = 0, API_PART_IMAGE, API_PART_VIDEO };

/* A media source: a URL / data: URI / path (url), or raw bytes from a msgpack bin (bytes). */
struct api_src {
    char *url;
    const uint8_t *bytes; /* points into the request's buffer; not owned */
    size_t len;
};

struct api_part {
    enum api_part_kind kind;
    char path[96];          /* "input[2].content[1].image_url": named in errors */
    char *text;             /* API_PART_TEXT */
    struct api_src src;     /* an image, or a video file */
    struct api_src *frames; /* a video given as frames (n_frames > 0) */
    int n_frames;
};

/* A vLLM-style chat message (the `messages` request form). */
struct api_msg {
    char *role; /* system, user, assistant */
    struct api_part *parts;
    int n_parts;
};

/* One input item: one vector out. */
struct api_item {
    char path[48]; /* "input[3]" or "messages": used in error messages */
    struct api_part *parts;
    int n_parts;
    char *instruction; /* NULL: the request's, else the model default */
    int32_t *tokens;   /* token-array input (OpenAI form): spliced as the user text */
    int n_tokens;
    int is_tokens;
    struct api_msg *msgs; /* the messages form */
    int n_msgs;
    int continue_final_message, add_generation_prompt, add_special_tokens;
};

enum api_encoding {
    API_ENC_FLOAT = 0,
    API_ENC_BASE64, /* little-endian float32, base64 */
    API_ENC_INT8,
    API_ENC_UINT8,
    API_ENC_BINARY, /* sign bits packed 8 per byte, MSB first, as uint8 */
};

struct api_video_opts {
    double fps;         /* 0: default */
    int max_frames;     /* 0: default */
    int64_t max_pixels; /* 0: default */
};

struct api_req {
    struct api_item *items;
    int n_items;
    char *model;
    char *user;
    char *instruction;
    int dimensions; /* 0: full width */
    enum api_encoding encoding;
    int is_messages;
    double timeout_s; /* 0: the gateway default */
    struct api_video_opts video;
    /* raw byte buffers for msgpack bins referenced by api_src.bytes live in the caller */
};

struct api_limits {
    int max_items;         /* items per request */
    int max_visuals;       /* images + videos (and video frames) per request */
    size_t max_text_bytes; /* per text part */
    int max_dimensions;    /* upper bound before the model's width is known */
    int max_token_ids;     /* token-array input length */
};

void api_limits_default(struct api_limits *l);

/* An error answer: HTTP status, OpenAI-shaped body fields. */
struct api_err {
    int status;
    char type[40];
    char code[48];
    char param[96];
    char message[512];
};

void api_err_set(struct api_err *e, int status, const char *type, const char *code,
                 const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error": {"message", "type", "param", "code"}} */
char *api_err_json(const struct api_err *e, size_t *len);

/* Parses and validates a request body (JSON object). `msgpack_bins`: when the request came as
 * msgpack, strings of the form "\x01bin:N" refer to bins[N] (see mpapi.c); NULL for JSON.
 * Returns 0, or -1 with e filled (400, naming the field). */
struct api_bin {
    const uint8_t *ptr;
    size_t len;
};
int api_parse(const cJSON *root, const struct api_limits *lim, const struct api_bin *bins,
              int n_bins, struct api_req *out, struct api_err *e);
void api_req_free(struct api_req *r);
/* Bytes of the texts, URLs (data: URIs included) and instructions the request owns: what of its
 * body it still holds once parsed (the JSON body itself can then be freed). */
size_t api_req_string_bytes(const struct api_req *r);

const char *api_encoding_name(enum api_encoding e);

/* Post-processing of one unit vector of width `dim`: keep the first d (d = 0: all), renormalise
 * to unit length, then quantise. Writes into `out` (float: d floats; int8/uint8: d bytes;
 * binary: ceil(d/8) bytes) and returns the element count written. */
int api_postprocess(const float *vec, int dim, int d, enum api_encoding enc, void *out);
/* Writes x as a JSON number with at most 9 significant digits, enough for strtof to give back
 * exactly x (NaN and infinities, which JSON cannot hold, print as 0). out holds >= 24 bytes.
 * Returns the length. A faster stand-in for snprintf("%.9g") on the answer's hot path. */
int api_format_float(float x, char *out);
/* base64 of n bytes into a NUL-terminated malloc()ed string. */
char *api_base64(const void *p, size_t n);
/* Decodes standard base64 (padding optional, no whitespace). Returns bytes or -1. */
long api_base64_decode(const char *s, size_t n, uint8_t *out, size_t cap);

#endif
