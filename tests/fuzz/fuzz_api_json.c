/* libFuzzer target for the /v1/embeddings request validation (gateway/api_parse.c): the body is
 * parsed as the HTTP front end does (cJSON, nothing but whitespace after the value), then
 * validated by api_parse with the gateway's default limits, in the native form (`input`) and the
 * vLLM `messages` form alike (the seed corpus holds both). Besides crashes, leaks and UB, it
 * checks the promises of docs/api.md and docs/errors.md:
 *   - an accepted request has 1..max_items items, each with its parts, a valid encoding,
 *     dimensions within range, at most max_visuals visuals, the messages form exactly one item;
 *   - a refusal is a 400 with a type, a code and a message, and when it names a field (`param`)
 *     the message starts with that path.
 * Build and run: `make fuzz-bins`, `make fuzz` (docs/security.md, "Fuzzing"). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const struct api_req *r, const struct api_limits *lim)
{
    if (r->n_items < 1 || r->n_items > lim->max_items || !r->items)
        abort();
    if (r->is_messages && r->n_items != 1)
        abort();
    if (r->dimensions < 0 || r->dimensions > lim->max_dimensions)
        abort();
    if (r->encoding < API_ENC_FLOAT || r->encoding > API_ENC_BINARY)
        abort();
    if (r->timeout_s < 0 || r->timeout_s > 3600)
        abort();
    int visuals = 0;
    for (int i = 0; i < r->n_items; i++) {
        const struct api_item *it = &r->items[i];
        if (it->n_parts < 0 || (it->n_parts > 0 && !it->parts) || it->n_msgs < 0)
            abort();
        if (it->is_tokens && (it->n_tokens < 0 || it->n_tokens > lim->max_token_ids ||
                              (it->n_tokens > 0 && !it->tokens)))
            abort();
        for (int m = -1; m < it->n_msgs; m++) {
            const struct api_part *parts = m < 0 ? it->parts : it->msgs[m].parts;
            int n = m < 0 ? it->n_parts : it->msgs[m].n_parts;
            if (m >= 0 && !it->msgs[m].role)
                abort();
            for (int p = 0; p < n; p++) {
                const struct api_part *pt = &parts[p];
                if (pt->kind == API_PART_TEXT) {
                    if (!pt->text || strlen(pt->text) > lim->max_text_bytes)
                        abort();
                } else {
                    visuals += pt->n_frames > 0 ? pt->n_frames : 1;
                    if (pt->n_frames == 0 && !pt->src.url && !pt->src.bytes)
                        abort();
                }
            }
        }
    }
    if (visuals > lim->max_visuals)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)data, size, &end, 0);
    if (!root)
        return 0;
    while (end && end < (const char *)data + size &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end !=
        (const char *)data + size) { /* trailing bytes: the gateway refuses as invalid_json */
        cJSON_Delete(root);
        return 0;
    }
    struct api_limits lim;
    api_limits_default(&lim);
    struct api_req req;
    struct api_err e;
    memset(&req, 0, sizeof req);
    memset(&e, 0, sizeof e);
    if (api_parse(root, &lim, NULL, 0, &req, &e) == 0) {
        check_accepted(&req, &lim);
    } else {
        if (e.status != 400 || !e.type[0] || !e.code[0] || !e.message[0])
            abort();
        if (e.param[0] && strncmp(e.message, e.param, strlen(e.param)) != 0)
            abort(); /* docs/errors.md: the message starts with the field's path */
    }
    api_req_free(&req);
    cJSON_Delete(root);
    return 0;
}
