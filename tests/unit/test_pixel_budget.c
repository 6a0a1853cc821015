/* The per-request budget of decoded pixels: the accounting alone (gateway/pixel_budget.c), the
 * video probe's frame count (media_video_probe_file), and the gate in gateway/preprocess.c on
 * a private loop with real JPEGs: several items of one request are charged from their headers
 * before anything is decoded, and over the budget every item gets the same 413 naming the
 * source that passed it. "Nothing decoded" is shown with a JPEG whose header promises more
 * rows than its data holds and whose end is cut off: decoding it would answer 400 "truncated",
 * the budget answers 413 first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <uv.h>

#include "gateway/api.h"
#include "gateway/clients.h"
#include "gateway/media.h"
#include "gateway/pixel_budget.h"
#include "gateway/preprocess.h"
#include "tests/test.h"

/* ---- accounting --------------------------------------------------------------------------- */

TEST(test_accounting)
{
    struct pixel_budget b;
    pixel_budget_init(&b, 1000);
    struct pixel_charge c[3] = {{"input[0].image", 0, 20, 20, 1},
                                {"input[1].image", 0, 10, 30, 1},
                                {"input[2].image", 0, 10, 10, 1}};
    CHECK_EQ_INT(pixel_budget_charge(&b, c, 3), 0); /* 400 + 300 + 100 */
    CHECK_EQ_INT(b.used, 800);
    CHECK_EQ_INT(b.over, 0);
    /* exactly at the limit is within it */
    struct pixel_charge d = {"input[3].image", 0, 10, 20, 1};
    CHECK_EQ_INT(pixel_budget_charge(&b, &d, 1), 0);
    CHECK_EQ_INT(b.used, 1000);
    /* one more pixel-row passes it: the message names the source, its size and the totals */
    struct pixel_charge e[2] = {{"input[4].video[0]", 0, 0, 0, 1},
                                {"input[4].video[1]", 0, 3, 1, 1}};
    CHECK_EQ_INT(pixel_budget_charge(&b, e, 2), -E2BIG);
    CHECK_EQ_INT(b.over, 1);
    CHECK_EQ_STR(b.param, "input[4].video[1]");
    CHECK_CONTAINS(b.message, "input[4].video[1]: 3x1 = 3 pixels to decode");
    CHECK_CONTAINS(b.message, "bring the request to 1003");
    CHECK_CONTAINS(b.message, "the limit is 1000 decoded pixels per request");
    CHECK_CONTAINS(b.message, "nothing was decoded");
    CHECK_EQ_INT(strncmp(b.message, b.param, strlen(b.param)), 0);
    /* once over, it stays over and keeps the first message */
    struct pixel_charge f = {"input[5].image", 0, 1, 1, 1};
    CHECK_EQ_INT(pixel_budget_charge(&b, &f, 1), -E2BIG);
    CHECK_EQ_STR(b.param, "input[4].video[1]");

    /* a video file counts every frame it decodes, at a quarter of its pixels (rounded up) */
    pixel_budget_init(&b, 100000000);
    struct pixel_charge v = {"input[0].video", 1, 1920, 1080, 240};
    CHECK_EQ_INT(pixel_charge_pixels(&v), 1920LL * 1080 * 240 / 4);
    CHECK_EQ_INT(pixel_budget_charge(&b, &v, 1), -E2BIG);
    CHECK_CONTAINS(b.message, "input[0].video: 240 frames of 1920x1080 to decode, charged as "
                              "124416000 pixels (video frames count 1/4)");
    struct pixel_charge odd = {"input[1].video", 1, 3, 1, 3}; /* 9 pixels -> 3 (9 / 4 rounded up) */
    CHECK_EQ_INT(pixel_charge_pixels(&odd), 3);
    /* a 1-minute 1080p30 video fits the default budget (1,024,000,000) */
    struct pixel_charge minute = {"input[0].video", 1, 1920, 1080, 1800};
    CHECK(pixel_charge_pixels(&minute) <= 1024000000);

    /* 0 = no limit; sums saturate instead of wrapping */
    pixel_budget_init(&b, 0);
    struct pixel_charge big = {"x", 1, 32768, 32768, INT64_MAX / 2};
    CHECK_EQ_INT(pixel_charge_pixels(&big), INT64_MAX);
    CHECK_EQ_INT(pixel_budget_charge(&b, &big, 1), 0);
    CHECK_EQ_INT(pixel_budget_charge(&b, &big, 1), 0);
    CHECK_EQ_INT(b.used, INT64_MAX);
    /* a negative limit is no limit either; degenerate charges count nothing */
    pixel_budget_init(&b, -5);
    CHECK_EQ_INT(b.limit, 0);
    struct pixel_charge z = {"x", 0, -3, 7, 1};
    CHECK_EQ_INT(pixel_charge_pixels(&z), 0);
}

/* ---- the per-client pixel bucket (clients_take_pixels) ------------------------------------ */

TEST(test_client_pixel_bucket)
{
    struct client_limits cl = {.pixel_rate = 1000, .pixel_burst = 5000};
    struct client_table t;
    clients_init(&t, &cl);
    uint64_t wait = 0;
    struct client *c = clients_get(&t, "1.2.3.4", 0);
    CHECK(c != NULL);
    CHECK_EQ_INT(clients_take_pixels(&t, c, 0, 4000, &wait), 0); /* 5000 -> 1000 */
    CHECK_EQ_INT(clients_take_pixels(&t, c, 0, 3000, &wait), 0); /* not in debt: -> -2000 */
    CHECK_EQ_INT(clients_take_pixels(&t, c, 0, 1, &wait), -1);   /* in debt */
    CHECK_EQ_INT(wait, 2001);                                    /* 2000 pixels at 1000/s */
    CHECK_EQ_INT(clients_take_pixels(&t, c, 1500, 1, &wait), -1);
    CHECK_EQ_INT(wait, 501);
    CHECK_EQ_INT(clients_take_pixels(&t, c, 2000, 10000, &wait), 0); /* repaid: -> -10000 */
    /* another client has its own bucket */
    struct client *d = clients_get(&t, "5.6.7.8", 2000);
    CHECK_EQ_INT(clients_take_pixels(&t, d, 2000, 5000, &wait), 0);
    /* an entry in debt outlives its last reference; a full one is forgotten */
    clients_put(&t, c, 2000);
    clients_put(&t, d, 2000);
    CHECK_EQ_INT(t.n, 2);
    c = clients_get(&t, "1.2.3.4", 2000);
    CHECK(c->px_tokens < 0);
    clients_put(&t, c, 60000); /* refilled to 5000 by then */
    CHECK_EQ_INT(t.n, 1);
    clients_free(&t);

    /* off: nothing is counted */
    struct client_limits off = {.rate = 0};
    clients_init(&t, &off);
    c = clients_get(&t, "x", 0);
    CHECK_EQ_INT(clients_take_pixels(&t, c, 0, INT64_MAX, &wait), 0);
    CHECK_EQ_INT(clients_take_pixels(&t, c, 0, INT64_MAX, &wait), 0);
    clients_put(&t, c, 0);
    CHECK_EQ_INT(t.n, 0);
    clients_free(&t);
}

/* ---- the video probe ---------------------------------------------------------------------- */

TEST(test_video_probe)
{
    char dir[] = "/tmp/pixbudget-XXXXXX", cmd[512], path[300];
    CHECK(mkdtemp(dir) != NULL);
    /* 80x48, 25 fps, 2 s = 50 frames */
    snprintf(cmd, sizeof cmd,
             "ffmpeg -loglevel error -y -f lavfi -i testsrc=size=80x48:rate=25:duration=2 "
             "-c:v libx264 -pix_fmt yuv420p %s/v.mp4",
             dir);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(path, sizeof path, "%s/v.mp4", dir);
    size_t n;
    uint8_t *data = test_read_file(path, &n);
    CHECK(data != NULL);
    struct media_limits l;
    media_limits_default(&l);
    int32_t w, h;
    int64_t frames;
    char err[256] = "";
    CHECK_EQ_INT(media_video_probe_file(data, n, &l, &w, &h, &frames, err, sizeof err), 0);
    CHECK_EQ_INT(w, 80);
    CHECK_EQ_INT(h, 48);
    CHECK_EQ_INT(frames, 50);
    /* the probe refuses what decoding would refuse, with the same words */
    l.video_max_source_frames = 10;
    CHECK_EQ_INT(media_video_probe_file(data, n, &l, &w, &h, &frames, err, sizeof err), -E2BIG);
    CHECK_CONTAINS(err, "more than 10 frames");
    media_limits_default(&l);
    CHECK_EQ_INT(media_video_probe_file((const uint8_t *)"not a video at all", 18, &l, &w, &h,
                                        &frames, err, sizeof err),
                 -ENOTSUP);
    free(data);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);

    /* frame lists keep min(n, max) frames, first and last included */
    int32_t pick[100];
    CHECK_EQ_INT(media_video_list_pick(5, 64, pick), 5);
    CHECK_EQ_INT(pick[4], 4);
    CHECK_EQ_INT(media_video_list_pick(100, 4, pick), 4);
    CHECK_EQ_INT(pick[0], 0);
    CHECK_EQ_INT(pick[1], 33);
    CHECK_EQ_INT(pick[2], 66);
    CHECK_EQ_INT(pick[3], 99);
}

/* ---- the gate ----------------------------------------------------------------------------- */

/* A flat-colour baseline JPEG of w x h, encoded with libjpeg; malloc'd. */
static uint8_t *make_jpeg(int w, int h, unsigned long *n)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr je;
    c.err = jpeg_std_error(&je);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    *n = 0;
    jpeg_mem_dest(&c, &out, n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 50, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * 3);
    for (int x = 0; x < w; x++) {
        row[3 * x] = 90;
        row[3 * x + 1] = (uint8_t)(x & 255);
        row[3 * x + 2] = 200;
    }
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

/* Rewrites the SOF0 frame size of a baseline JPEG: the header then declares w x h while the
 * data still holds the original image. */
static void patch_jpeg_size(uint8_t *d, unsigned long n, int w, int h)
{
    for (unsigned long i = 2; i + 9 < n; i++)
        if (d[i] == 0xFF && d[i + 1] == 0xC0) {
            d[i + 5] = (uint8_t)(h >> 8);
            d[i + 6] = (uint8_t)h;
            d[i + 7] = (uint8_t)(w >> 8);
            d[i + 8] = (uint8_t)w;
            return;
        }
    TEST_FAIL_AT("no SOF0 marker in the test JPEG");
}

static char *data_uri(const uint8_t *d, unsigned long n)
{
    char *b = api_base64(d, n);
    char *s = malloc(strlen(b) + 32);
    sprintf(s, "data:image/jpeg;base64,%s", b);
    free(b);
    return s;
}

struct result {
    int done, failed, status;
    char code[48], param[96], message[512];
    int64_t decoded_pixels;
};

static void on_item(void *arg, int index, struct pp_out *out, const struct api_err *err)
{
    struct result *r = &((struct result *)arg)[index];
    r->done++;
    if (err) {
        r->failed = 1;
        r->status = err->status;
        snprintf(r->code, sizeof r->code, "%s", err->code);
        snprintf(r->param, sizeof r->param, "%s", err->param);
        snprintf(r->message, sizeof r->message, "%s", err->message);
    } else {
        r->decoded_pixels = out->decoded_pixels;
        pp_out_free(out);
        free(out);
    }
}

/* Runs every item of the JSON request through one gate on c's loop; fills res[]. */
static int run_request(struct pp_ctx *c, const char *json, struct result *res)
{
    cJSON *root = cJSON_Parse(json);
    struct api_limits al;
    api_limits_default(&al);
    struct api_req req;
    struct api_err e;
    if (!root || api_parse(root, &al, NULL, 0, &req, &e)) {
        TEST_FAIL_AT("request does not parse: %s", root ? e.message : "JSON");
        cJSON_Delete(root);
        return -1;
    }
    cJSON_Delete(root);
    memset(res, 0, sizeof(struct result) * (size_t)req.n_items);
    struct pp_gate *g = pp_gate_new(c);
    for (int i = 0; i < req.n_items; i++)
        pp_start(c, &req, i, g, 0, on_item, res);
    pp_gate_seal(g);
    uv_run(c->loop, UV_RUN_DEFAULT);
    int n = req.n_items;
    for (int i = 0; i < n; i++)
        if (res[i].done != 1)
            TEST_FAIL_AT("item %d: callback ran %d times", i, res[i].done);
    api_req_free(&req);
    return n;
}

static int refuse_check(void *arg, int64_t pixels, struct api_err *e)
{
    *(int64_t *)arg = pixels;
    api_err_set(e, 429, "rate_limit_error", "client_pixel_rate", NULL, "over the client's rate");
    return -1;
}

TEST(test_gate)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pp_config cfg = {.tokenizer_path = test_tokenizer_path(), .fetch_timeout_s = 5};
    media_limits_default(&cfg.media);
    cfg.media.max_request_decoded_pixels = 1000000;
    struct pp_ctx c;
    char err[256];
    if (pp_ctx_init(&c, &loop, &cfg, err, sizeof err)) {
        TEST_FAIL_AT("pp_ctx_init: %s", err);
        return;
    }
    unsigned long n1, n2;
    uint8_t *ok = make_jpeg(640, 480, &n1); /* 307200 pixels */
    uint8_t *lie = make_jpeg(64, 48, &n2);
    patch_jpeg_size(lie, n2, 2000, 1000); /* declares 2,000,000 pixels, holds 64x48 */
    n2 -= 2;                              /* and ends without its EOI marker: truncated */
    char *u_ok = data_uri(ok, n1), *u_lie = data_uri(lie, n2);
    size_t jl = strlen(u_ok) * 6 + strlen(u_lie) + 1024;
    char *json = malloc(jl);
    struct result res[8];

    /* three images in three items: 921,600 pixels, within 1,000,000 */
    snprintf(json, jl, "{\"input\":[{\"image\":\"%s\"},{\"image\":\"%s\"},{\"image\":\"%s\"}]}",
             u_ok, u_ok, u_ok);
    CHECK_EQ_INT(run_request(&c, json, res), 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(res[i].failed, 0);
        CHECK_EQ_INT(res[i].decoded_pixels, 307200);
    }

    /* a fourth passes the budget: every item gets the same 413 naming the source that passed
     * it (items are charged as their headers are read, so any of the four may be the one) */
    snprintf(json, jl,
             "{\"input\":[{\"image\":\"%s\"},{\"image\":\"%s\"},{\"image\":\"%s\"},"
             "{\"image\":\"%s\"}]}",
             u_ok, u_ok, u_ok, u_ok);
    CHECK_EQ_INT(run_request(&c, json, res), 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(res[i].failed, 1);
        CHECK_EQ_INT(res[i].status, 413);
        CHECK_EQ_STR(res[i].code, "too_many_pixels");
        CHECK_EQ_STR(res[i].param, res[0].param);
        CHECK_CONTAINS(res[i].message, "640x480 = 307200 pixels to decode bring the request to "
                                       "1228800; the limit is 1000000");
    }
    CHECK(strstr(res[0].param, "].image") != NULL);
    CHECK_EQ_INT(strncmp(res[0].message, res[0].param, strlen(res[0].param)), 0);

    /* nothing is decoded over the budget: the lying JPEG would fail as truncated, but the
     * request is refused from the headers first */
    snprintf(json, jl, "{\"input\":[{\"image\":\"%s\"},{\"image\":\"%s\"}]}", u_ok, u_lie);
    CHECK_EQ_INT(run_request(&c, json, res), 2);
    CHECK_EQ_INT(res[0].status, 413);
    CHECK_EQ_INT(res[1].status, 413);
    CHECK_CONTAINS(res[0].message, "2000x1000 = 2000000 pixels to decode");
    /* ... and the same request within a larger budget is decoded, and fails as truncated */
    c.cfg.media.max_request_decoded_pixels = 3000000;
    CHECK_EQ_INT(run_request(&c, json, res), 2);
    CHECK_EQ_INT(res[1].status, 400);
    CHECK_EQ_STR(res[1].code, "invalid_media");
    CHECK_CONTAINS(res[1].message, "truncated");

    /* a frame list counts the frames it keeps; a single item (no shared gate) is bounded too */
    c.cfg.media.max_request_decoded_pixels = 1000000;
    snprintf(json, jl, "{\"input\":[{\"video\":[\"%s\",\"%s\",\"%s\",\"%s\"]}]}", u_ok, u_ok, u_ok,
             u_ok);
    CHECK_EQ_INT(run_request(&c, json, res), 1);
    CHECK_EQ_INT(res[0].status, 413);
    CHECK_EQ_STR(res[0].param, "input[0].video[3]");
    struct api_req req;
    struct api_err e;
    cJSON *root = cJSON_Parse(json);
    struct api_limits al;
    api_limits_default(&al);
    CHECK_EQ_INT(api_parse(root, &al, NULL, 0, &req, &e), 0);
    cJSON_Delete(root);
    struct pp_out out;
    CHECK_EQ_INT(pp_run_blocking(&c, &req, 0, 0, &out, &e), -1);
    CHECK_EQ_INT(e.status, 413);
    CHECK_EQ_STR(e.code, "too_many_pixels");
    api_req_free(&req);

    /* the gate's last check (the per-client pixel rate) sees the request's total and may
     * refuse it: still nothing is decoded (no "truncated"), every item gets the check's error */
    c.cfg.media.max_request_decoded_pixels = 3000000;
    snprintf(json, jl, "{\"input\":[{\"image\":\"%s\"},{\"image\":\"%s\"}]}", u_ok, u_lie);
    {
        cJSON *rt = cJSON_Parse(json);
        struct api_limits al2;
        api_limits_default(&al2);
        struct api_req rq;
        struct api_err e2;
        CHECK_EQ_INT(api_parse(rt, &al2, NULL, 0, &rq, &e2), 0);
        cJSON_Delete(rt);
        memset(res, 0, sizeof res);
        int64_t seen = 0;
        struct pp_gate *g = pp_gate_new(&c);
        pp_gate_set_check(g, refuse_check, &seen);
        for (int i = 0; i < rq.n_items; i++)
            pp_start(&c, &rq, i, g, 0, on_item, res);
        pp_gate_seal(g);
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK_EQ_INT(seen, 307200 + 2000000);
        for (int i = 0; i < 2; i++) {
            CHECK_EQ_INT(res[i].done, 1);
            CHECK_EQ_INT(res[i].status, 429);
            CHECK_EQ_STR(res[i].code, "client_pixel_rate");
        }
        api_req_free(&rq);
    }

    /* an item that fails before the gate (a bad data: URI) fails the request; the others are
     * not decoded and still get exactly one callback */
    c.cfg.media.max_request_decoded_pixels = 0; /* no limit */
    snprintf(json, jl,
             "{\"input\":[{\"image\":\"%s\"},{\"image\":\"data:image/png;base64,@@@\"},"
             "{\"image\":\"%s\"}]}",
             u_ok, u_ok);
    CHECK_EQ_INT(run_request(&c, json, res), 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(res[i].failed, 1);
        CHECK_EQ_STR(res[i].param, "input[1].image");
    }

    free(json);
    free(u_ok);
    free(u_lie);
    free(ok);
    free(lie);
    pp_ctx_free(&c);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

TEST_MAIN(test_accounting, test_client_pixel_bucket, test_video_probe, test_gate)
