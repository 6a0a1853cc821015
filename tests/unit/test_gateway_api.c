/* Request validation (every accepted form, every refusal naming its field), output
 * post-processing (truncate, renormalise, quantise), base64, and the msgpack pre-validator. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/msgpack_util.h"
#include "gateway/api.h"
#include "tests/test.h"

static struct api_limits lim;

static int parse(const char *json, struct api_req *r, struct api_err *e)
{
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        fprintf(stderr, "test JSON does not parse: %s\n", json);
        return -99;
    }
    int rc = api_parse(root, &lim, NULL, 0, r, e);
    cJSON_Delete(root);
    return rc;
}

/* Expects a 400 whose param and message name `param`, with the given code. */
static void expect_bad(const char *json, const char *param, const char *code)
{
    struct api_req r;
    struct api_err e;
    memset(&e, 0, sizeof e);
    int rc = parse(json, &r, &e);
    if (rc != -1) {
        TEST_FAIL_AT("accepted: %s", json);
        api_req_free(&r);
        return;
    }
    CHECK_EQ_INT(e.status, 400);
    if (param) {
        CHECK_EQ_STR(e.param, param);
        /* docs/errors.md: the message starts with the field's path */
        if (strncmp(e.message, param, strlen(param)) != 0)
            TEST_FAIL_AT("message \"%s\" does not start with \"%s\"", e.message, param);
    }
    if (code)
        CHECK_EQ_STR(e.code, code);
    api_req_free(&r);
}

TEST(test_forms)
{
    api_limits_default(&lim);
    struct api_req r;
    struct api_err e;
    CHECK_EQ_INT(parse("{\"input\":\"hello\",\"model\":\"m\"}", &r, &e), 0);
    CHECK_EQ_INT(r.n_items, 1);
    CHECK_EQ_INT(r.items[0].n_parts, 1);
    CHECK_EQ_STR(r.items[0].parts[0].text, "hello");
    CHECK_EQ_STR(r.model, "m");
    api_req_free(&r);

    CHECK_EQ_INT(parse("{\"input\":[\"a\",\"b\",\"c\"],\"encoding_format\":\"base64\","
                       "\"dimensions\":64,\"user\":\"u\"}",
                       &r, &e),
                 0);
    CHECK_EQ_INT(r.n_items, 3);
    CHECK_EQ_INT(r.encoding, API_ENC_BASE64);
    CHECK_EQ_INT(r.dimensions, 64);
    CHECK_EQ_STR(r.items[2].parts[0].text, "c");
    api_req_free(&r);

    CHECK_EQ_INT(parse("{\"input\":[1,2,3]}", &r, &e), 0);
    CHECK_EQ_INT(r.n_items, 1);
    CHECK(r.items[0].is_tokens);
    CHECK_EQ_INT(r.items[0].n_tokens, 3);
    api_req_free(&r);

    CHECK_EQ_INT(parse("{\"input\":[[1,2],[3]]}", &r, &e), 0);
    CHECK_EQ_INT(r.n_items, 2);
    CHECK_EQ_INT(r.items[1].tokens[0], 3);
    api_req_free(&r);

    CHECK_EQ_INT(parse("{\"instruction\":\"Find it\",\"input\":["
                       "{\"text\":\"t\",\"image\":\"data:image/png;base64,AAAA\"},"
                       "{\"video\":[\"data:image/png;base64,AA==\",\"data:image/png;base64,AA==\"],"
                       "\"instruction\":\"own\"},"
                       "[{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"https://example.com/a.png\"}}],"
                       "{\"content\":[{\"image\":\"https://e/x.jpg\"},\"plain\"]}]}",
                       &r, &e),
                 0);
    CHECK_EQ_INT(r.n_items, 4);
    CHECK_EQ_STR(r.instruction, "Find it");
    CHECK_EQ_INT(r.items[0].n_parts, 2);
    CHECK_EQ_INT(r.items[0].parts[1].kind, API_PART_IMAGE);
    CHECK_EQ_STR(r.items[0].parts[1].path, "input[0].image");
    CHECK_EQ_INT(r.items[1].parts[0].kind, API_PART_VIDEO);
    CHECK_EQ_INT(r.items[1].parts[0].n_frames, 2);
    CHECK_EQ_STR(r.items[1].instruction, "own");
    CHECK_EQ_STR(r.items[2].parts[1].src.url, "https://example.com/a.png");
    CHECK_EQ_STR(r.items[2].parts[1].path, "input[2][1].image_url");
    CHECK_EQ_INT(r.items[3].parts[1].kind, API_PART_TEXT);
    api_req_free(&r);

    /* the vLLM form from the issue */
    CHECK_EQ_INT(
        parse("{\"model\":\"Qwen/Qwen3-VL-Embedding-2B\",\"messages\":[{\"role\":\"system\","
              "\"content\":[{\"type\":\"text\",\"text\":\"Represent the user input.\"}]},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
              "\"https://e/cat.png\"}},{\"type\":\"text\",\"text\":\"A cat in the snow.\"}]},"
              "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"\"}]}],"
              "\"continue_final_message\":true,\"add_special_tokens\":true,\"dimensions\":256}",
              &r, &e),
        0);
    CHECK(r.is_messages);
    CHECK_EQ_INT(r.n_items, 1);
    CHECK_EQ_INT(r.items[0].n_msgs, 3);
    CHECK(r.items[0].continue_final_message);
    CHECK(r.items[0].add_special_tokens);
    CHECK_EQ_INT(r.items[0].msgs[1].parts[0].kind, API_PART_IMAGE);
    CHECK_EQ_INT(r.dimensions, 256);
    api_req_free(&r);
}

TEST(test_refusals)
{
    api_limits_default(&lim);
    lim.max_items = 4;
    lim.max_visuals = 2;
    expect_bad("{\"input\":\"x\",\"bogus\":1}", "bogus", "unknown_field");
    expect_bad("{\"input\":[{\"text\":\"x\",\"colour\":\"red\"}]}", "input[0].colour",
               "unknown_field");
    expect_bad("{\"input\":[\"a\",{\"content\":[{\"type\":\"text\",\"txt\":\"x\"}]}]}",
               "input[1].content[0].txt", "unknown_field");
    expect_bad("{\"input\":5}", "input", NULL);
    expect_bad("{\"input\":[]}", "input", NULL);
    expect_bad("{\"input\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "input", "too_many_items");
    expect_bad("{\"input\":\"x\",\"encoding_format\":\"float16\"}", "encoding_format",
               "unknown_encoding");
    expect_bad("{\"input\":\"x\",\"encoding_format\":3}", "encoding_format", NULL);
    expect_bad("{\"input\":\"x\",\"dimensions\":0}", "dimensions", NULL);
    expect_bad("{\"input\":\"x\",\"dimensions\":1.5}", "dimensions", NULL);
    expect_bad("{\"input\":\"x\",\"model\":7}", "model", NULL);
    expect_bad("{\"input\":\"x\",\"input\":\"y\"}", "input", "duplicate_field");
    expect_bad("{\"input\":[[1,-2]]}", "input[0][1]", NULL);
    expect_bad("{\"input\":[[1,2],3]}", "input[1]", NULL);
    expect_bad("{\"input\":[{\"image\":42}]}", "input[0].image", NULL);
    expect_bad("{\"input\":[{\"image\":[\"a\",\"b\",\"c\"]}]}", "input[0].image[2]",
               "too_many_visuals");
    expect_bad("{\"input\":[[{\"type\":\"audio\",\"audio\":\"x\"}]]}", "input[0][0].type", NULL);
    expect_bad("{\"input\":[{\"text\":\"a\",\"content\":[]}]}", "input[0].content", NULL);
    expect_bad("{}", "input", NULL);
    expect_bad("[1,2]", NULL, NULL);
    expect_bad("{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "messages[0].role", NULL);
    expect_bad("{\"input\":\"x\",\"continue_final_message\":true}", "continue_final_message", NULL);
    expect_bad("{\"input\":\"x\",\"messages\":[]}", "messages", NULL);
    expect_bad("{\"input\":\"x\",\"video\":{\"fps\":0}}", "video.fps", NULL);
    expect_bad("{\"input\":\"x\",\"timeout\":-1}", "timeout", NULL);
}

TEST(test_postprocess)
{
    float v[8] = {0.5f, -0.5f, 0.5f, -0.5f, 0, 0, 0, 0}; /* unit length */
    float out[8];
    CHECK_EQ_INT(api_postprocess(v, 8, 0, API_ENC_FLOAT, out), 8);
    CHECK_NEAR(out[0], 0.5, 1e-7);
    /* truncate to 2, renormalise: (0.5, -0.5) / sqrt(0.5) */
    CHECK_EQ_INT(api_postprocess(v, 8, 2, API_ENC_FLOAT, out), 2);
    CHECK_NEAR(out[0], 0.70710678, 1e-6);
    CHECK_NEAR(out[1], -0.70710678, 1e-6);
    /* truncate, normalise, then quantise: 0.7071 * 127 = 89.8 -> 90 */
    int8_t q[8];
    CHECK_EQ_INT(api_postprocess(v, 8, 2, API_ENC_INT8, q), 2);
    CHECK_EQ_INT(q[0], 90);
    CHECK_EQ_INT(q[1], -90);
    uint8_t u[8];
    CHECK_EQ_INT(api_postprocess(v, 8, 2, API_ENC_UINT8, u), 2);
    CHECK_EQ_INT(u[0], 218); /* (0.7071 + 1) * 127.5 = 217.66 */
    CHECK_EQ_INT(u[1], 37);
    uint8_t b[2];
    CHECK_EQ_INT(api_postprocess(v, 8, 0, API_ENC_BINARY, b), 1);
    CHECK_EQ_INT(b[0], 0xA0); /* 1 0 1 0 0 0 0 0 */
    float w[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_EQ_INT(api_postprocess(w, 9, 0, API_ENC_BINARY, b), 2);
    CHECK_EQ_INT(b[0], 0xFF);
    CHECK_EQ_INT(b[1], 0x80);
}

TEST(test_base64)
{
    const char *in = "any carnal pleas";
    for (size_t n = 0; n <= strlen(in); n++) {
        char *s = api_base64(in, n);
        uint8_t back[32];
        long k = api_base64_decode(s, strlen(s), back, sizeof back);
        CHECK_EQ_INT(k, (long)n);
        CHECK(memcmp(back, in, n) == 0);
        free(s);
    }
    char *s = api_base64("\x00\x00\x80\x3f", 4); /* 1.0f little-endian */
    CHECK_EQ_STR(s, "AACAPw==");
    free(s);
    uint8_t o[8];
    CHECK_EQ_INT(api_base64_decode("A$==", 4, o, sizeof o), -1);
}

TEST(test_msgpack_check)
{
    char err[256];
    /* {"a": [1, 2]} */
    const uint8_t ok[] = {0x81, 0xa1, 'a', 0x92, 0x01, 0x02};
    CHECK_EQ_INT(vl_mp_check(ok, sizeof ok, 8, err, sizeof err), 0);
    /* array32 header claiming 4 billion elements in a 5-byte frame */
    const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ_INT(vl_mp_check(huge, sizeof huge, 8, err, sizeof err), -1);
    CHECK_CONTAINS(err, "exceeds the frame");
    /* bin32 claiming more bytes than there are */
    const uint8_t bin[] = {0xc6, 0x00, 0x10, 0x00, 0x00, 0x01};
    CHECK_EQ_INT(vl_mp_check(bin, sizeof bin, 8, err, sizeof err), -1);
    /* nesting: [[[[[[[[[1]]]]]]]]] deeper than 4 */
    const uint8_t deep[] = {0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x01};
    CHECK_EQ_INT(vl_mp_check(deep, sizeof deep, 4, err, sizeof err), -1);
    CHECK_CONTAINS(err, "nesting");
    /* trailing bytes */
    const uint8_t trail[] = {0x01, 0x02};
    CHECK_EQ_INT(vl_mp_check(trail, sizeof trail, 4, err, sizeof err), -1);
    /* never-used type byte */
    const uint8_t bad[] = {0xc1};
    CHECK_EQ_INT(vl_mp_check(bad, sizeof bad, 4, err, sizeof err), -1);
}

TEST(test_error_json)
{
    struct api_err e;
    api_err_set(&e, 400, "invalid_request_error", "unknown_field", "input[0].x",
                "input[0].x: unknown field");
    size_t n;
    char *s = api_err_json(&e, &n);
    CHECK_EQ_STR(s, "{\"error\":{\"message\":\"input[0].x: unknown field\",\"type\":"
                    "\"invalid_request_error\",\"param\":\"input[0].x\",\"code\":"
                    "\"unknown_field\"}}");
    free(s);
}

TEST(test_format_float)
{
    char buf[32];
    CHECK_EQ_INT(api_format_float(0.0f, buf), 1);
    CHECK_EQ_STR(buf, "0");
    api_format_float(0.5f, buf);
    CHECK_EQ_STR(buf, "0.5");
    api_format_float(-1.0f, buf);
    CHECK_EQ_STR(buf, "-1");
    api_format_float(0.1f, buf);
    CHECK_EQ_STR(buf, "0.100000001");
    api_format_float(1.5e-7f, buf);
    CHECK_EQ_STR(buf, "1.50000005e-7");
    api_format_float(123456.0f, buf);
    CHECK_EQ_STR(buf, "123456");
    /* every value round-trips through strtof, across magnitudes (and denormals) */
    uint32_t state = 12345;
    int bad = 0;
    for (int i = 0; i < 2000000; i++) {
        state = state * 1664525u + 1013904223u;
        uint32_t bits = state;
        float x;
        memcpy(&x, &bits, 4);
        if (x != x || isinf(x))
            continue;
        api_format_float(x, buf);
        float y = strtof(buf, NULL);
        if (y != x && !(x == 0 && y == 0)) {
            if (bad++ < 5)
                fprintf(stderr, "round trip: %.9g -> %s -> %.9g\n", (double)x, buf, (double)y);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

TEST_MAIN(test_format_float, test_forms, test_refusals, test_postprocess, test_base64,
          test_msgpack_check, test_error_json)
