/* The msgpack API's frame intake (gateway/mp_intake.h) against the buffered-bytes budget: a
 * frame's declared length is charged at its header, before its body is read; the body is read
 * straight into a buffer of exactly that length (the intake never asks for a byte past the
 * frame); a frame that does not fit is refused with nothing charged; a half-read frame's charge
 * is released when the intake is freed; a whole frame's charge travels with it until
 * mp_frame_free. Bytes are written the way libuv would: into mp_intake_space(), then
 * mp_intake_wrote(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/membudget.h"
#include "gateway/mp_intake.h"
#include "tests/test.h"

/* Writes up to n bytes of src as one read would (as much as the space takes); returns how many. */
static size_t put(struct mp_intake *in, const uint8_t *src, size_t n)
{
    uint8_t *p;
    size_t room;
    mp_intake_space(in, &p, &room);
    size_t k = n < room ? n : room;
    memcpy(p, src, k);
    mp_intake_wrote(in, k);
    return k;
}

static void header(uint8_t *h, uint32_t n)
{
    h[0] = (uint8_t)(n >> 24);
    h[1] = (uint8_t)(n >> 16);
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
}

TEST(test_small_frames_in_one_read)
{
    struct mem_budget b;
    mem_budget_init(&b, 1000);
    struct mp_intake in;
    mp_intake_init(&in, 1 << 20, &b);
    uint8_t s[64];
    header(s, 3);
    memcpy(s + 4, "abc", 3);
    header(s + 7, 5);
    memcpy(s + 11, "hello", 5);
    CHECK_EQ_INT(put(&in, s, 16), 16);
    struct mp_frame f1, f2, f3;
    CHECK_EQ_INT(mp_intake_next(&in, &f1), MP_INTAKE_OK);
    CHECK_EQ_INT(f1.len, 3);
    CHECK(!memcmp(f1.payload, "abc", 3));
    CHECK_EQ_INT(f1.charged, 3);
    CHECK_EQ_INT(mp_intake_next(&in, &f2), MP_INTAKE_OK);
    CHECK_EQ_INT(f2.len, 5);
    CHECK(!memcmp(f2.payload, "hello", 5));
    CHECK_EQ_INT(mem_budget_used(&b), 8); /* both frames, held by their owner now */
    CHECK_EQ_INT(mp_intake_next(&in, &f3), MP_INTAKE_NEED_MORE);
    CHECK(in.stage == NULL); /* nothing staged: an idle connection holds no buffer */
    mp_frame_free(&f1, &b);
    CHECK_EQ_INT(mem_budget_used(&b), 5);
    mp_frame_free(&f2, &b);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    mp_intake_free(&in);
}

TEST(test_large_frame_charged_at_header_read_in_place)
{
    struct mem_budget b;
    mem_budget_init(&b, 1 << 20);
    struct mp_intake in;
    mp_intake_init(&in, 1 << 20, &b);
    size_t n = 300000; /* more than the staging buffer */
    uint8_t *s = malloc(n + 4 + 4);
    header(s, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        s[4 + i] = (uint8_t)(i * 7);
    header(s + 4 + n, 1); /* the next frame's header follows at once */
    struct mp_frame f;
    /* the header alone: nothing charged yet... */
    CHECK_EQ_INT(put(&in, s, 3), 3);
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_NEED_MORE);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    /* ...its 4th byte plus 100 bytes of body: the whole declared length is charged */
    CHECK_EQ_INT(put(&in, s + 3, 101), 101);
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_NEED_MORE);
    CHECK_EQ_INT(mem_budget_used(&b), (long long)n);
    CHECK_EQ_INT(mp_intake_pending(&in), 100);
    /* the rest is read straight into the frame: the space is exactly what is missing */
    uint8_t *p;
    size_t room;
    mp_intake_space(&in, &p, &room);
    CHECK_EQ_INT(room, n - 100);
    CHECK(p == in.frame + 100);
    size_t off = 104;
    while (off < 4 + n) {
        size_t k = put(&in, s + off, 4 + n + 4 - off); /* offered more than the frame */
        CHECK(off + k <= 4 + n);                       /* never takes a byte past it */
        off += k;
    }
    CHECK_EQ_INT(off, 4 + n);
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_OK);
    CHECK_EQ_INT(f.len, n);
    CHECK(!memcmp(f.payload, s + 4, n));
    CHECK_EQ_INT(f.charged, n);
    CHECK_EQ_INT(mp_intake_next(&in, &(struct mp_frame){0}), MP_INTAKE_NEED_MORE);
    CHECK_EQ_INT(mem_budget_used(&b), (long long)n);
    mp_frame_free(&f, &b);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    CHECK_EQ_INT(atomic_load(&b.peak), (long long)n);
    mp_intake_free(&in);
    free(s);
}

TEST(test_over_budget_refused_nothing_charged)
{
    struct mem_budget b;
    mem_budget_init(&b, 1000);
    CHECK_EQ_INT(mem_budget_charge(&b, 600, MEMB_HTTP_BODY), 0); /* someone else holds 600 */
    struct mp_intake in;
    mp_intake_init(&in, 1 << 20, &b);
    uint8_t s[8];
    header(s, 401);
    memcpy(s + 4, "\x81\xa1", 2);
    put(&in, s, 6);
    struct mp_frame f;
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_BUSY);
    CHECK_EQ_INT(in.bad_len, 401);
    CHECK_EQ_INT(mem_budget_used(&b), 600);
    CHECK_EQ_INT(mem_budget_refused(&b, MEMB_MSGPACK_FRAME), 1);
    CHECK(in.frame == NULL); /* nothing allocated for it */
    mp_intake_free(&in);
    CHECK_EQ_INT(mem_budget_used(&b), 600);
    /* 400 fits exactly */
    mp_intake_init(&in, 1 << 20, &b);
    header(s, 400);
    put(&in, s, 6);
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_NEED_MORE);
    CHECK_EQ_INT(mem_budget_used(&b), 1000);
    CHECK_EQ_STR(mem_budget_what_name(MEMB_MSGPACK_FRAME), "msgpack_frame");
    /* the client goes away with the frame half sent: its charge is released */
    mp_intake_free(&in);
    CHECK_EQ_INT(mem_budget_used(&b), 600);
    mp_intake_free(&in); /* twice is harmless */
    CHECK_EQ_INT(mem_budget_used(&b), 600);
}

TEST(test_refused_frame_discarded)
{
    /* a refused frame's body is read off into the staging buffer and thrown away: nothing is
     * charged or kept, the space offered never passes the frame's end */
    struct mem_budget b;
    mem_budget_init(&b, 1000);
    struct mp_intake in;
    mp_intake_init(&in, 1 << 20, &b);
    size_t n = 200000;
    uint8_t *s = calloc(1, 4 + n + 16);
    header(s, (uint32_t)n);
    CHECK_EQ_INT(put(&in, s, 4 + 500), 504); /* the prefix and 500 bytes of body */
    struct mp_frame f;
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_BUSY);
    mp_intake_discard(&in);
    CHECK(mp_intake_discarding(&in));
    CHECK_EQ_INT(in.skip, n - 500);
    size_t off = 504, reads = 0;
    while (mp_intake_discarding(&in)) {
        uint8_t *p;
        size_t room;
        mp_intake_space(&in, &p, &room);
        CHECK(room > 0 && room <= MP_INTAKE_STAGE && room <= 4 + n - off);
        size_t k = put(&in, s + off, 4 + n + 16 - off);
        off += k;
        reads++;
        CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_NEED_MORE);
        CHECK_EQ_INT(mem_budget_used(&b), 0);
    }
    CHECK_EQ_INT(off, 4 + n); /* exactly the refused frame, not a byte of what follows */
    CHECK(reads >= n / MP_INTAKE_STAGE);
    CHECK_EQ_INT(mp_intake_pending(&in), 0);
    mp_intake_free(&in);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    /* the whole refused frame already staged: nothing left to discard */
    mp_intake_init(&in, 1 << 20, &b);
    header(s, 300);
    put(&in, s, 4 + 300 + 8);
    CHECK_EQ_INT(mem_budget_charge(&b, 800, MEMB_FETCH), 0);
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_BUSY);
    mp_intake_discard(&in);
    CHECK(!mp_intake_discarding(&in));
    mp_intake_free(&in);
    mem_budget_release(&b, 800);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    free(s);
}

TEST(test_cap_and_empty)
{
    struct mem_budget b;
    mem_budget_init(&b, 0); /* no limit, still counted */
    struct mp_intake in;
    mp_intake_init(&in, 1000, &b);
    uint8_t s[8];
    header(s, 1001);
    put(&in, s, 8);
    struct mp_frame f;
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_TOO_LARGE);
    CHECK_EQ_INT(in.bad_len, 1001);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    CHECK_EQ_INT(mem_budget_refused(&b, MEMB_MSGPACK_FRAME), 0); /* not a budget refusal */
    mp_intake_free(&in);
    mp_intake_init(&in, 1000, &b);
    header(s, 0);
    put(&in, s, 4);
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_EMPTY);
    mp_intake_free(&in);
    /* without a budget nothing is charged anywhere */
    mp_intake_init(&in, 1000, NULL);
    header(s, 2);
    memcpy(s + 4, "\x80\xc0", 2);
    put(&in, s, 6);
    CHECK_EQ_INT(mp_intake_next(&in, &f), MP_INTAKE_OK);
    CHECK_EQ_INT(f.len, 2);
    mp_frame_free(&f, NULL);
    mp_intake_free(&in);
}

TEST(test_byte_by_byte_stream)
{
    /* many frames of growing size, written one byte per read: every frame comes out intact and
     * the budget holds exactly the frames not yet freed */
    struct mem_budget b;
    mem_budget_init(&b, 1 << 20);
    struct mp_intake in;
    mp_intake_init(&in, 1 << 16, &b);
    size_t total = 0;
    uint8_t *s = malloc(200 * 260);
    for (int i = 1; i <= 200; i++) {
        header(s + total, (uint32_t)i);
        for (int k = 0; k < i; k++)
            s[total + 4 + k] = (uint8_t)(i + k);
        total += 4 + (size_t)i;
    }
    int got = 0;
    long long held = 0;
    struct mp_frame keep[200];
    for (size_t off = 0; off < total; off++) {
        CHECK_EQ_INT(put(&in, s + off, 1), 1);
        struct mp_frame f;
        int rc;
        while ((rc = mp_intake_next(&in, &f)) == MP_INTAKE_OK) {
            got++;
            CHECK_EQ_INT(f.len, got);
            CHECK_EQ_INT(f.payload[0], (uint8_t)got);
            CHECK_EQ_INT(f.payload[f.len - 1], (uint8_t)(2 * got - 1));
            keep[got - 1] = f;
            held += got;
        }
        CHECK_EQ_INT(rc, MP_INTAKE_NEED_MORE);
    }
    CHECK_EQ_INT(got, 200);
    CHECK_EQ_INT(mem_budget_used(&b), held);
    for (int i = 0; i < got; i++)
        mp_frame_free(&keep[i], &b);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    mp_intake_free(&in);
    free(s);
}

TEST_MAIN(test_small_frames_in_one_read, test_large_frame_charged_at_header_read_in_place,
          test_over_budget_refused_nothing_charged, test_refused_frame_discarded,
          test_cap_and_empty, test_byte_by_byte_stream)
