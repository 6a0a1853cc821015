/* Frame reader: split and coalesced input, the cap checked from the header, blocking I/O. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/frame.h"
#include "common/item.h"
#include "tests/test.h"

static size_t put(uint8_t *dst, const char *payload)
{
    size_t n = strlen(payload);
    vl_frame_header(dst, (uint32_t)n);
    memcpy(dst + 4, payload, n);
    return n + 4;
}

TEST(test_byte_by_byte_and_coalesced)
{
    uint8_t stream[256];
    size_t n = put(stream, "hello");
    n += put(stream + n, "wire world");
    n += put(stream + n, "x");
    /* One byte at a time. */
    struct vl_frame_reader r;
    vl_frame_reader_init(&r, 100);
    const char *want[] = {"hello", "wire world", "x"};
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_INT(vl_frame_reader_feed(&r, stream + i, 1), 0);
        const uint8_t *p;
        size_t len;
        while (vl_frame_reader_next(&r, &p, &len) == VL_FRAME_OK) {
            CHECK(got < 3);
            CHECK_EQ_INT(len, strlen(want[got]));
            CHECK(memcmp(p, want[got], len) == 0);
            got++;
        }
    }
    CHECK_EQ_INT(got, 3);
    vl_frame_reader_free(&r);
    /* All at once. */
    vl_frame_reader_init(&r, 100);
    CHECK_EQ_INT(vl_frame_reader_feed(&r, stream, n), 0);
    const uint8_t *p;
    size_t len;
    got = 0;
    while (vl_frame_reader_next(&r, &p, &len) == VL_FRAME_OK)
        got++;
    CHECK_EQ_INT(got, 3);
    CHECK_EQ_INT(vl_frame_reader_next(&r, &p, &len), VL_FRAME_NEED_MORE);
    vl_frame_reader_free(&r);
}

TEST(test_cap_refused_from_header)
{
    struct vl_frame_reader r;
    vl_frame_reader_init(&r, 1000);
    uint8_t hdr[4];
    vl_frame_header(hdr, 1001);
    CHECK_EQ_INT(vl_frame_reader_feed(&r, hdr, 3), 0);
    CHECK_EQ_INT(vl_frame_reader_feed(&r, hdr + 3, 1), VL_FRAME_TOO_LARGE);
    CHECK_EQ_INT(r.bad_len, 1001);
    CHECK(r.cap <= 4096); /* nothing buffered for the oversize body */
    vl_frame_reader_free(&r);
    vl_frame_reader_init(&r, 1000);
    vl_frame_header(hdr, 0);
    vl_frame_reader_feed(&r, hdr, 4);
    const uint8_t *p;
    size_t len;
    CHECK_EQ_INT(vl_frame_reader_next(&r, &p, &len), VL_FRAME_EMPTY);
    vl_frame_reader_free(&r);
}

TEST(test_fd_roundtrip)
{
    int sv[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ_INT(vl_frame_write_fd(sv[0], "abc", 3), 0);
    uint8_t *p;
    size_t len;
    CHECK_EQ_INT(vl_frame_read_fd(sv[1], 16, &p, &len), 0);
    CHECK_EQ_INT(len, 3);
    CHECK(memcmp(p, "abc", 3) == 0);
    free(p);
    char big[32] = {0};
    CHECK_EQ_INT(vl_frame_write_fd(sv[0], big, sizeof big), 0);
    CHECK_EQ_INT(vl_frame_read_fd(sv[1], 16, &p, &len), VL_FRAME_TOO_LARGE);
    CHECK_EQ_INT(read(sv[1], big, sizeof big), (long)sizeof big); /* drain the refused body */
    close(sv[0]);
    CHECK_EQ_INT(vl_frame_read_fd(sv[1], 16, &p, &len), -EPIPE);
    close(sv[1]);
}

TEST(test_item_validate)
{
    struct vl_item it = {0};
    int32_t ids[] = {1, 7, 7, 7, 7, 2};
    it.ids = ids;
    it.n_ids = 6;
    struct vl_visual v = {VL_VISUAL_IMAGE, 1, 4, 4, 1, 64, 64, (uint8_t *)ids};
    it.visuals = &v;
    it.n_visuals = 1;
    char err[256];
    CHECK_EQ_INT(vl_item_validate(&it, 7, 8, 8192, err, sizeof err), 0);
    v.grid_w = 6;
    CHECK_EQ_INT(vl_item_validate(&it, 7, 8, 8192, err, sizeof err), -1);
    v.width = 96;
    CHECK_EQ_INT(vl_item_validate(&it, 7, 8, 8192, err, sizeof err), -1);
    CHECK_CONTAINS(err, "pad tokens");
    CHECK_EQ_INT(vl_item_validate(&it, 7, 8, 5, err, sizeof err), -1);
}

TEST_MAIN(test_byte_by_byte_and_coalesced, test_cap_refused_from_header, test_fd_roundtrip,
          test_item_validate)
