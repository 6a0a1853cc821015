/* Request validation: a JSON body (or a msgpack body converted to the same tree) becomes an
 * api_req, or a 400 naming the first bad field (`input[3].image: ...`). Nothing is
 * half-accepted: unknown fields, duplicate keys, wrong types and out-of-range values are all
 * refused before any work starts. The accepted forms are listed in docs/api.md. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "gateway/api.h"

/* Field paths are bounded buffers; a path that long is cut on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

void api_limits_default(struct api_limits *l)
{
    l->max_items = 256;
    l->max_visuals = 64;
    l->max_text_bytes = 256 * 1024;
    l->max_dimensions = 65536;
    l->max_token_ids = 8192;
}

void api_err_set(struct api_err *e, int status, const char *type, const char *code,
                 const char *param, const char *fmt, ...)
{
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

char *api_err_json(const struct api_err *e, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(o, "message", e->message);
    cJSON_AddStringToObject(o, "type", e->type);
    if (e->param[0])
        cJSON_AddStringToObject(o, "param", e->param);
    else
        cJSON_AddNullToObject(o, "param");
    if (e->code[0])
        cJSON_AddStringToObject(o, "code", e->code);
    else
        cJSON_AddNullToObject(o, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    *len = strlen(s);
    return s;
}

const char *api_encoding_name(enum api_encoding e)
{
    switch (e) {
    case API_ENC_FLOAT:
        return "float";
    case API_ENC_BASE64:
        return "base64";
    case API_ENC_INT8:
        return "int8";
    case API_ENC_UINT8:
        return "uint8";
    case API_ENC_BINARY:
        return "binary";
    }
    return "float";
}

/* ---- helpers ------------------------------------------------------------------------------ */

struct pctx {
    const struct api_limits *lim;
    const struct api_bin *bins;
    int n_bins;
    struct api_err *e;
    int n_visuals;
};

#define BAD(param, ...)                                                                            \
    do {                                                                                           \
        api_err_set(c->e, 400, "invalid_request_error", "invalid_value", param, __VA_ARGS__);      \
        return -1;                                                                                 \
    } while (0)

static const char *type_name(const cJSON *j)
{
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNull(j))
        return "null";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsObject(j))
        return "an object";
    return "invalid";
}

/* Rejects keys not in `allowed` (NULL-terminated) and duplicate keys. */
static int check_keys(struct pctx *c, const cJSON *obj, const char *const *allowed,
                      const char *where)
{
    for (const cJSON *k = obj->child; k; k = k->next) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++)
            ok |= strcmp(k->string, allowed[i]) == 0;
        char param[96];
        snprintf(param, sizeof param, "%s%s%s", where, where[0] ? "." : "", k->string);
        if (!ok) {
            api_err_set(c->e, 400, "invalid_request_error", "unknown_field", param,
                        "%s: unknown field", param);
            return -1;
        }
        for (const cJSON *k2 = obj->child; k2 != k; k2 = k2->next)
            if (strcmp(k2->string, k->string) == 0) {
                api_err_set(c->e, 400, "invalid_request_error", "duplicate_field", param,
                            "%s: the field appears twice", param);
                return -1;
            }
    }
    return 0;
}

static int is_int_value(const cJSON *j, double lo, double hi)
{
    return cJSON_IsNumber(j) && j->valuedouble == floor(j->valuedouble) && j->valuedouble >= lo &&
           j->valuedouble <= hi;
}

static int get_string(struct pctx *c, const cJSON *j, const char *param, char **out, size_t max)
{
    if (!cJSON_IsString(j))
        BAD(param, "%s: must be a string, got %s", param, type_name(j));
    size_t n = strlen(j->valuestring);
    if (n > max)
        BAD(param, "%s: %zu bytes, over the limit of %zu", param, n, max);
    *out = vl_strdup(j->valuestring);
    return 0;
}

/* A media source string: URL, data: URI, path, or a msgpack bin reference. */
static int get_src(struct pctx *c, const cJSON *j, const char *param, struct api_src *out)
{
    if (!cJSON_IsString(j))
        BAD(param, "%s: must be a URL or data: URI string, got %s", param, type_name(j));
    const char *s = j->valuestring;
    if (s[0] == '\x01') {
        int idx;
        if (c->bins &&
            sscanf(s,
                   "\x01"
                   "bin:%d",
                   &idx) == 1 &&
            idx >= 0 && idx < c->n_bins) {
            if (!c->bins[idx].len || !c->bins[idx].ptr) /* preprocessing needs a url or bytes */
                BAD(param, "%s: empty bytes", param);
            out->bytes = c->bins[idx].ptr;
            out->len = c->bins[idx].len;
            return 0;
        }
        BAD(param, "%s: not a URL or data: URI", param);
    }
    if (!s[0])
        BAD(param, "%s: empty source", param);
    out->url = vl_strdup(s);
    return 0;
}

static int count_visual(struct pctx *c, const char *param)
{
    if (++c->n_visuals > c->lim->max_visuals) {
        api_err_set(c->e, 400, "invalid_request_error", "too_many_visuals", param,
                    "%s: more than %d images, videos and video frames in one request", param,
                    c->lim->max_visuals);
        return -1;
    }
    return 0;
}

static int parse_video_value(struct pctx *c, const cJSON *v, const char *param, struct api_part *p)
{
    p->kind = API_PART_VIDEO;
    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if (n == 0)
            BAD(param, "%s: a video as frames needs at least one frame", param);
        p->frames = vl_calloc((size_t)n, sizeof *p->frames);
        int i = 0;
        for (const cJSON *f = v->child; f; f = f->next, i++) {
            char fp[96];
            snprintf(fp, sizeof fp, "%s[%d]", param, i);
            if (count_visual(c, fp) || get_src(c, f, fp, &p->frames[i]))
                return -1;
            p->n_frames = i + 1;
        }
        return 0;
    }
    if (count_visual(c, param))
        return -1;
    return get_src(c, v, param, &p->src);
}

/* The url inside {"image_url": "..."} or {"image_url": {"url": "...", "detail": ...}}. */
static const cJSON *url_of(struct pctx *c, const cJSON *v, const char *param)
{
    if (cJSON_IsString(v))
        return v;
    if (cJSON_IsObject(v)) {
        static const char *const keys[] = {"url", "detail", NULL};
        if (check_keys(c, v, keys, param))
            return NULL;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "url");
        if (u)
            return u;
    }
    api_err_set(c->e, 400, "invalid_request_error", "invalid_value", param,
                "%s: must be a URL string or {\"url\": ...}", param);
    return NULL;
}

/* One content part: {"type": "text"|"image_url"|"video_url"|"image"|"video", ...} or the
 * native {"text"} / {"image"} / {"video"}. A bare string is a text part. */
static int parse_part(struct pctx *c, const cJSON *j, const char *param, struct api_part *p)
{
    snprintf(p->path, sizeof p->path, "%s", param);
    if (cJSON_IsString(j)) {
        p->kind = API_PART_TEXT;
        return get_string(c, j, param, &p->text, c->lim->max_text_bytes);
    }
    if (!cJSON_IsObject(j))
        BAD(param, "%s: a content part must be an object or a string, got %s", param, type_name(j));
    char sub[96];
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (type) {
        if (!cJSON_IsString(type))
            BAD(param, "%s.type: must be a string", param);
        const char *t = type->valuestring;
        if (!strcmp(t, "text")) {
            static const char *const k[] = {"type", "text", NULL};
            if (check_keys(c, j, k, param))
                return -1;
            snprintf(sub, sizeof sub, "%s.text", param);
            p->kind = API_PART_TEXT;
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "text");
            if (!tx)
                BAD(sub, "%s: missing", sub);
            return get_string(c, tx, sub, &p->text, c->lim->max_text_bytes);
        }
        if (!strcmp(t, "image_url") || !strcmp(t, "image")) {
            static const char *const k[] = {"type", "image_url", "image", NULL};
            if (check_keys(c, j, k, param))
                return -1;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, t);
            snprintf(sub, sizeof sub, "%s.%s", param, t);
            if (!v)
                BAD(sub, "%s: missing", sub);
            if (!strcmp(t, "image_url") && !(v = url_of(c, v, sub)))
                return -1;
            p->kind = API_PART_IMAGE;
            snprintf(p->path, sizeof p->path, "%s", sub);
            return count_visual(c, sub) ? -1 : get_src(c, v, sub, &p->src);
        }
        if (!strcmp(t, "video_url") || !strcmp(t, "video")) {
            static const char *const k[] = {"type", "video_url", "video", NULL};
            if (check_keys(c, j, k, param))
                return -1;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, t);
            snprintf(sub, sizeof sub, "%s.%s", param, t);
            if (!v)
                BAD(sub, "%s: missing", sub);
            if (!strcmp(t, "video_url") && !(v = url_of(c, v, sub)))
                return -1;
            snprintf(p->path, sizeof p->path, "%s", sub);
            return parse_video_value(c, v, sub, p);
        }
        snprintf(sub, sizeof sub, "%s.type", param);
        BAD(sub, "%s: unknown content type \"%s\" (text, image_url, video_url, image, video)", sub,
            t);
    }
    static const char *const k[] = {"text", "image", "video", NULL};
    if (check_keys(c, j, k, param))
        return -1;
    if (cJSON_GetArraySize(j) != 1)
        BAD(param, "%s: a content part has exactly one of text, image, video", param);
    const cJSON *v = j->child;
    snprintf(sub, sizeof sub, "%s.%s", param, v->string);
    snprintf(p->path, sizeof p->path, "%s", sub);
    if (!strcmp(v->string, "text")) {
        p->kind = API_PART_TEXT;
        return get_string(c, v, sub, &p->text, c->lim->max_text_bytes);
    }
    if (!strcmp(v->string, "image")) {
        p->kind = API_PART_IMAGE;
        return count_visual(c, sub) ? -1 : get_src(c, v, sub, &p->src);
    }
    return parse_video_value(c, v, sub, p);
}

static int parse_parts(struct pctx *c, const cJSON *arr, const char *param, struct api_part **out,
                       int *n_out)
{
    int n = cJSON_GetArraySize(arr);
    if (n > 1024)
        BAD(param, "%s: more than 1024 content parts", param);
    *out = vl_calloc((size_t)(n ? n : 1), sizeof **out);
    int i = 0;
    for (const cJSON *p = arr->child; p; p = p->next, i++) {
        char sub[96];
        snprintf(sub, sizeof sub, "%s[%d]", param, i);
        *n_out = i + 1;
        if (parse_part(c, p, sub, &(*out)[i]))
            return -1;
    }
    *n_out = n;
    return 0;
}

/* One item of `input` (a multimodal item object, a content-parts array or a string). */
static int parse_item(struct pctx *c, const cJSON *j, struct api_item *it)
{
    const char *param = it->path;
    if (cJSON_IsString(j)) {
        it->parts = vl_calloc(1, sizeof *it->parts);
        it->n_parts = 1;
        it->parts[0].kind = API_PART_TEXT;
        snprintf(it->parts[0].path, sizeof it->parts[0].path, "%s", param);
        return get_string(c, j, param, &it->parts[0].text, c->lim->max_text_bytes);
    }
    if (cJSON_IsArray(j))
        return parse_parts(c, j, param, &it->parts, &it->n_parts);
    if (!cJSON_IsObject(j))
        BAD(param, "%s: an item must be a string, an object or a content-parts array, got %s",
            param, type_name(j));
    static const char *const keys[] = {"text", "image", "video", "content", "instruction", NULL};
    if (check_keys(c, j, keys, param))
        return -1;
    char sub[96];
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "instruction");
    if (ins) {
        snprintf(sub, sizeof sub, "%s.instruction", param);
        if (!cJSON_IsNull(ins) && get_string(c, ins, sub, &it->instruction, 4096))
            return -1;
    }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    int n_direct = 0;
    for (const cJSON *k = j->child; k; k = k->next)
        n_direct += !strcmp(k->string, "text") || !strcmp(k->string, "image") ||
                    !strcmp(k->string, "video");
    if (content) {
        snprintf(sub, sizeof sub, "%s.content", param);
        if (n_direct)
            BAD(sub, "%s: give either content or text/image/video, not both", sub);
        if (cJSON_IsString(content)) {
            it->parts = vl_calloc(1, sizeof *it->parts);
            it->n_parts = 1;
            snprintf(it->parts[0].path, sizeof it->parts[0].path, "%s", sub);
            return get_string(c, content, sub, &it->parts[0].text, c->lim->max_text_bytes);
        }
        if (!cJSON_IsArray(content))
            BAD(sub, "%s: must be an array of content parts, got %s", sub, type_name(content));
        return parse_parts(c, content, sub, &it->parts, &it->n_parts);
    }
    /* the native item: any of text, image, video (each a value or an array of values) */
    it->parts = vl_calloc(64, sizeof *it->parts);
    for (const cJSON *k = j->child; k; k = k->next) {
        if (!strcmp(k->string, "instruction"))
            continue;
        snprintf(sub, sizeof sub, "%s.%s", param, k->string);
        int is_video = !strcmp(k->string, "video");
        /* "video": [frames] is one video; "image": [a, b] is two images; "text": [a, b] two texts
         */
        int list = cJSON_IsArray(k) && !is_video;
        int n = list ? cJSON_GetArraySize(k) : 1;
        if (it->n_parts + n > 64)
            BAD(sub, "%s: more than 64 parts in one item", sub);
        for (int i = 0; i < n; i++) {
            const cJSON *v = list ? cJSON_GetArrayItem(k, i) : k;
            char vp[96];
            if (list)
                snprintf(vp, sizeof vp, "%s[%d]", sub, i);
            else
                snprintf(vp, sizeof vp, "%s", sub);
            struct api_part *p = &it->parts[it->n_parts++];
            snprintf(p->path, sizeof p->path, "%s", vp);
            if (!strcmp(k->string, "text")) {
                p->kind = API_PART_TEXT;
                if (get_string(c, v, vp, &p->text, c->lim->max_text_bytes))
                    return -1;
            } else if (!strcmp(k->string, "image")) {
                p->kind = API_PART_IMAGE;
                if (count_visual(c, vp) || get_src(c, v, vp, &p->src))
                    return -1;
            } else if (parse_video_value(c, v, vp, p))
                return -1;
        }
    }
    return 0;
}

static int parse_tokens(struct pctx *c, const cJSON *arr, const char *param, struct api_item *it)
{
    int n = cJSON_GetArraySize(arr);
    if (n == 0)
        BAD(param, "%s: an empty token array", param);
    if (n > c->lim->max_token_ids)
        BAD(param, "%s: %d tokens, over the limit of %d", param, n, c->lim->max_token_ids);
    it->is_tokens = 1;
    it->tokens = vl_malloc((size_t)n * sizeof *it->tokens);
    int i = 0;
    for (const cJSON *t = arr->child; t; t = t->next, i++) {
        if (!is_int_value(t, 0, 2147483647)) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s[%d]", param, i);
            BAD(sub, "%s: a token id must be a non-negative integer", sub);
        }
        it->tokens[i] = (int32_t)t->valuedouble;
    }
    it->n_tokens = n;
    return 0;
}

static int all_of(const cJSON *arr, cJSON_bool (*pred)(const cJSON *))
{
    for (const cJSON *x = arr->child; x; x = x->next)
        if (!pred(x))
            return 0;
    return 1;
}

static struct api_item *new_items(struct api_req *r, int n)
{
    r->items = vl_calloc((size_t)(n ? n : 1), sizeof *r->items);
    r->n_items = n;
    for (int i = 0; i < n; i++)
        snprintf(r->items[i].path, sizeof r->items[i].path, "input[%d]", i);
    return r->items;
}

static int parse_input(struct pctx *c, const cJSON *in, struct api_req *r)
{
    if (cJSON_IsString(in)) {
        new_items(r, 1);
        snprintf(r->items[0].path, sizeof r->items[0].path, "input");
        return parse_item(c, in, &r->items[0]);
    }
    if (cJSON_IsObject(in)) {
        new_items(r, 1);
        snprintf(r->items[0].path, sizeof r->items[0].path, "input");
        return parse_item(c, in, &r->items[0]);
    }
    if (!cJSON_IsArray(in))
        BAD("input", "input: must be a string, an array or an item object, got %s", type_name(in));
    int n = cJSON_GetArraySize(in);
    if (n == 0)
        BAD("input", "input: an empty array");
    if (all_of(in, cJSON_IsNumber)) { /* one token array */
        new_items(r, 1);
        snprintf(r->items[0].path, sizeof r->items[0].path, "input");
        return parse_tokens(c, in, "input", &r->items[0]);
    }
    if (n > c->lim->max_items) {
        api_err_set(c->e, 400, "invalid_request_error", "too_many_items", "input",
                    "input: %d items, over the limit of %d per request", n, c->lim->max_items);
        return -1;
    }
    new_items(r, n);
    int i = 0;
    for (const cJSON *x = in->child; x; x = x->next, i++) {
        struct api_item *it = &r->items[i];
        if (cJSON_IsArray(x) && cJSON_GetArraySize(x) > 0 && all_of(x, cJSON_IsNumber)) {
            if (parse_tokens(c, x, it->path, it))
                return -1;
        } else if (cJSON_IsNumber(x)) {
            BAD(it->path, "%s: token ids and other items cannot be mixed", it->path);
        } else if (parse_item(c, x, it))
            return -1;
    }
    return 0;
}

static int parse_messages(struct pctx *c, const cJSON *msgs, struct api_req *r)
{
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        BAD("messages", "messages: must be a non-empty array of messages");
    int n = cJSON_GetArraySize(msgs);
    if (n > 64)
        BAD("messages", "messages: more than 64 messages");
    new_items(r, 1);
    struct api_item *it = &r->items[0];
    snprintf(it->path, sizeof it->path, "messages");
    it->msgs = vl_calloc((size_t)n, sizeof *it->msgs);
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        char param[96], sub[96];
        snprintf(param, sizeof param, "messages[%d]", i);
        it->n_msgs = i + 1;
        if (!cJSON_IsObject(m))
            BAD(param, "%s: must be an object", param);
        static const char *const keys[] = {"role", "content", NULL};
        if (check_keys(c, m, keys, param))
            return -1;
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(sub, sizeof sub, "%s.role", param);
        if (!cJSON_IsString(role) ||
            (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
             strcmp(role->valuestring, "assistant")))
            BAD(sub, "%s: must be \"system\", \"user\" or \"assistant\"", sub);
        it->msgs[i].role = vl_strdup(role->valuestring);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        snprintf(sub, sizeof sub, "%s.content", param);
        if (!content)
            BAD(sub, "%s: missing", sub);
        if (cJSON_IsString(content)) {
            it->msgs[i].parts = vl_calloc(1, sizeof(struct api_part));
            it->msgs[i].n_parts = 1;
            snprintf(it->msgs[i].parts[0].path, sizeof it->msgs[i].parts[0].path, "%s", sub);
            if (get_string(c, content, sub, &it->msgs[i].parts[0].text, c->lim->max_text_bytes))
                return -1;
        } else if (cJSON_IsArray(content)) {
            if (parse_parts(c, content, sub, &it->msgs[i].parts, &it->msgs[i].n_parts))
                return -1;
        } else
            BAD(sub, "%s: must be a string or an array of content parts", sub);
    }
    return 0;
}

static int get_bool(struct pctx *c, const cJSON *j, const char *param, int *out)
{
    if (!cJSON_IsBool(j))
        BAD(param, "%s: must be true or false, got %s", param, type_name(j));
    *out = cJSON_IsTrue(j);
    return 0;
}

int api_parse(const cJSON *root, const struct api_limits *lim, const struct api_bin *bins,
              int n_bins, struct api_req *r, struct api_err *e)
{
    memset(r, 0, sizeof *r);
    struct pctx cc = {.lim = lim, .bins = bins, .n_bins = n_bins, .e = e};
    struct pctx *c = &cc;
    if (!cJSON_IsObject(root))
        BAD(NULL, "the request body must be a JSON object");
    static const char *const keys[] = {"input",
                                       "model",
                                       "dimensions",
                                       "encoding_format",
                                       "user",
                                       "instruction",
                                       "messages",
                                       "continue_final_message",
                                       "add_generation_prompt",
                                       "add_special_tokens",
                                       "timeout",
                                       "video",
                                       NULL};
    if (check_keys(c, root, keys, ""))
        return -1;
    const cJSON *j;
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "model")) && !cJSON_IsNull(j) &&
        get_string(c, j, "model", &r->model, 256))
        return -1;
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "user")) && !cJSON_IsNull(j) &&
        get_string(c, j, "user", &r->user, 256))
        return -1;
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "instruction")) && !cJSON_IsNull(j) &&
        get_string(c, j, "instruction", &r->instruction, 4096))
        return -1;
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "dimensions")) && !cJSON_IsNull(j)) {
        if (!is_int_value(j, 1, lim->max_dimensions))
            BAD("dimensions", "dimensions: must be an integer from 1 to the model's width");
        r->dimensions = (int)j->valuedouble;
    }
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "encoding_format")) && !cJSON_IsNull(j)) {
        if (!cJSON_IsString(j))
            BAD("encoding_format", "encoding_format: must be a string, got %s", type_name(j));
        const char *s = j->valuestring;
        if (!strcmp(s, "float"))
            r->encoding = API_ENC_FLOAT;
        else if (!strcmp(s, "base64"))
            r->encoding = API_ENC_BASE64;
        else if (!strcmp(s, "int8"))
            r->encoding = API_ENC_INT8;
        else if (!strcmp(s, "uint8"))
            r->encoding = API_ENC_UINT8;
        else if (!strcmp(s, "binary"))
            r->encoding = API_ENC_BINARY;
        else {
            api_err_set(e, 400, "invalid_request_error", "unknown_encoding", "encoding_format",
                        "encoding_format: unknown encoding \"%.64s\" (float, base64, int8, uint8, "
                        "binary)",
                        s);
            return -1;
        }
    }
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "timeout")) && !cJSON_IsNull(j)) {
        if (!cJSON_IsNumber(j) || !(j->valuedouble > 0) || j->valuedouble > 3600)
            BAD("timeout", "timeout: must be a number of seconds in (0, 3600]");
        r->timeout_s = j->valuedouble;
    }
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "video")) && !cJSON_IsNull(j)) {
        if (!cJSON_IsObject(j))
            BAD("video", "video: must be an object {fps, max_frames, max_pixels}");
        static const char *const vk[] = {"fps", "max_frames", "max_pixels", NULL};
        if (check_keys(c, j, vk, "video"))
            return -1;
        const cJSON *v;
        if ((v = cJSON_GetObjectItemCaseSensitive(j, "fps"))) {
            if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || v->valuedouble > 60)
                BAD("video.fps", "video.fps: must be a number in (0, 60]");
            r->video.fps = v->valuedouble;
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(j, "max_frames"))) {
            if (!is_int_value(v, 2, 4096))
                BAD("video.max_frames", "video.max_frames: must be an integer from 2 to 4096");
            r->video.max_frames = (int)v->valuedouble;
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(j, "max_pixels"))) {
            if (!is_int_value(v, 4096, 1e12))
                BAD("video.max_pixels", "video.max_pixels: must be an integer >= 4096");
            r->video.max_pixels = (int64_t)v->valuedouble;
        }
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (in && msgs)
        BAD("messages", "messages: give either input or messages, not both");
    int cfm = 0, agp = 0, ast = 0;
    int have_cfm = 0, have_agp = 0;
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "continue_final_message"))) {
        have_cfm = 1;
        if (get_bool(c, j, "continue_final_message", &cfm))
            return -1;
    }
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "add_generation_prompt"))) {
        have_agp = 1;
        if (get_bool(c, j, "add_generation_prompt", &agp))
            return -1;
    }
    if ((j = cJSON_GetObjectItemCaseSensitive(root, "add_special_tokens")) &&
        get_bool(c, j, "add_special_tokens", &ast))
        return -1;
    if (in) {
        if (have_cfm || have_agp)
            BAD(have_cfm ? "continue_final_message" : "add_generation_prompt",
                "%s: only with messages",
                have_cfm ? "continue_final_message" : "add_generation_prompt");
        if (parse_input(c, in, r))
            return -1;
    } else if (msgs) {
        r->is_messages = 1;
        if (parse_messages(c, msgs, r))
            return -1;
        if (cfm && agp)
            BAD("continue_final_message",
                "continue_final_message and add_generation_prompt cannot both be true");
        r->items[0].continue_final_message = cfm;
        r->items[0].add_generation_prompt = agp;
        r->items[0].add_special_tokens = ast;
    } else {
        BAD("input", "input: missing (or give messages)");
    }
    return 0;
}

static void parts_free(struct api_part *p, int n)
{
    for (int i = 0; i < n && p; i++) {
        free(p[i].text);
        free(p[i].src.url);
        for (int f = 0; f < p[i].n_frames; f++)
            free(p[i].frames[f].url);
        free(p[i].frames);
    }
    free(p);
}

static size_t parts_bytes(const struct api_part *p, int n)
{
    size_t b = 0;
    for (int i = 0; i < n && p; i++) {
        b += p[i].text ? strlen(p[i].text) + 1 : 0;
        b += p[i].src.url ? strlen(p[i].src.url) + 1 : 0;
        for (int f = 0; f < p[i].n_frames; f++)
            b += p[i].frames[f].url ? strlen(p[i].frames[f].url) + 1 : 0;
    }
    return b;
}

size_t api_req_string_bytes(const struct api_req *r)
{
    size_t b = 0;
    for (int i = 0; i < r->n_items && r->items; i++) {
        const struct api_item *it = &r->items[i];
        b += parts_bytes(it->parts, it->n_parts);
        b += it->instruction ? strlen(it->instruction) + 1 : 0;
        for (int m = 0; m < it->n_msgs; m++)
            b += parts_bytes(it->msgs[m].parts, it->msgs[m].n_parts);
    }
    return b + (r->instruction ? strlen(r->instruction) + 1 : 0);
}

void api_req_free(struct api_req *r)
{
    for (int i = 0; i < r->n_items && r->items; i++) {
        struct api_item *it = &r->items[i];
        parts_free(it->parts, it->n_parts);
        free(it->instruction);
        free(it->tokens);
        for (int m = 0; m < it->n_msgs; m++) {
            free(it->msgs[m].role);
            parts_free(it->msgs[m].parts, it->msgs[m].n_parts);
        }
        free(it->msgs);
    }
    free(r->items);
    free(r->model);
    free(r->user);
    free(r->instruction);
    memset(r, 0, sizeof *r);
}
