/* libFuzzer target for the msgpack API's request path without the socket: the input is a byte
 * stream as a client would send it, fed in chunks of varying size to the frame reader
 * (common/frame.c, which the supervisor's channels use) and to the msgpack API's budgeted intake
 * (gateway/mp_intake.c, which the gateway's socket uses), and every whole frame is decoded by
 * mpapi_decode (gateway/mpapi_decode.c: pre-validator, msgpack-c unpacker, msgpack -> JSON tree,
 * api_parse). Besides crashes, leaks and UB, it checks:
 *   - both hand out exactly the frames an independent walk over the length prefixes finds, in
 *     order, and refuse a declared length over the cap before buffering it;
 *   - the intake, under a buffered-bytes budget of 600 bytes with the first 3 frames held (as
 *     requests in flight) and the others freed at once: reserves each frame's declared length
 *     at its header, refuses (MP_INTAKE_BUSY) exactly the first frame that does not fit and then
 *     reads it off and throws it away up to exactly its end, never asks for a byte past the frame
 *     it is reading, and leaves nothing charged once the frames and the intake are freed;
 *   - an accepted request's media bytes (bins) lie inside their frame, and every image or video
 *     has a source (a URL or bytes);
 *   - a refusal is a 400 with a code and a message.
 * Build and run: `make fuzz-bins`, `make fuzz` (docs/security.md, "Fuzzing"). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "gateway/api.h"
#include "gateway/membudget.h"
#include "gateway/mp_intake.h"
#include "gateway/mpapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAME (1u << 20)

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void in_frame(const uint8_t *p, size_t len, const uint8_t *b, size_t n)
{
    if (n && (b < p || b + n > p + len))
        abort();
}

static void decode_one(const uint8_t *p, size_t len)
{
    struct api_limits lim;
    api_limits_default(&lim);
    struct mpapi_decoded d;
    struct api_req req;
    struct api_err e;
    memset(&e, 0, sizeof e);
    if (mpapi_decode(p, len, &lim, &d, &req, &e) == 0) {
        if (req.n_items < 1 || req.n_items > lim.max_items)
            abort();
        for (int i = 0; i < d.n_bins; i++)
            in_frame(p, len, d.bins[i].ptr, d.bins[i].len);
        for (int i = 0; i < req.n_items; i++) {
            const struct api_item *it = &req.items[i];
            for (int k = 0; k < it->n_parts; k++) {
                const struct api_part *pt = &it->parts[k];
                if (pt->kind != API_PART_TEXT && !pt->n_frames && !pt->src.url && !pt->src.bytes)
                    abort(); /* a visual with no source: preprocessing would dereference NULL */
                if (pt->src.bytes)
                    in_frame(p, len, pt->src.bytes, pt->src.len);
                for (int f = 0; f < pt->n_frames; f++)
                    if (pt->frames[f].bytes)
                        in_frame(p, len, pt->frames[f].bytes, pt->frames[f].len);
            }
        }
    } else if (e.status != 400 || !e.code[0] || !e.message[0]) {
        abort();
    }
    api_req_free(&req);
    mpapi_decoded_free(&d);
}

#define BUDGET 600
#define HELD 3

/* The intake pass: the stream in chunks through mp_intake under a small budget, checked against
 * the reference walk (n_ref frames at ref_off/ref_len; ref_bad: the walk stopped at a bad
 * prefix). */
static void intake_pass(const uint8_t *data, size_t size, const size_t *ref_off,
                        const size_t *ref_len, int n_ref, int ref_bad)
{
    struct mem_budget budget;
    mem_budget_init(&budget, BUDGET);
    struct mp_intake in;
    mp_intake_init(&in, MAX_FRAME, &budget);
    struct mp_frame held[HELD];
    int n_held = 0, got = 0, stop = 0, discarding = 0;
    int64_t held_bytes = 0;
    size_t fed = 0, step = 2, busy_end = 0;
    while (fed < size && !stop && got < 64) {
        uint8_t *p;
        size_t room;
        mp_intake_space(&in, &p, &room);
        if (discarding && (room > busy_end - fed || room > MP_INTAKE_STAGE))
            abort(); /* throwing a refused frame away must stop at its end */
        size_t k = size - fed < step ? size - fed : step;
        step = step * 5 % 67 + 1;
        if (k > room)
            k = room;
        if (in.frame && (p < in.frame || p + room != in.frame + in.frame_len))
            abort(); /* a read into a frame must end exactly at the frame's end */
        if (!in.frame && room > MP_INTAKE_STAGE)
            abort();
        if (k == 0)
            abort(); /* the intake asked for no bytes with whole frames all taken */
        memcpy(p, data + fed, k);
        mp_intake_wrote(&in, k);
        fed += k;
        if (discarding) {
            struct mp_frame f;
            if (mp_intake_next(&in, &f) != MP_INTAKE_NEED_MORE ||
                mem_budget_used(&budget) != held_bytes)
                abort(); /* a refused frame's body is neither handed out nor charged */
            if (!mp_intake_discarding(&in)) {
                if (fed != busy_end)
                    abort();
                stop = 1;
            }
            continue;
        }
        struct mp_frame f;
        int rc;
        while (got < 64 && (rc = mp_intake_next(&in, &f)) == MP_INTAKE_OK) {
            if (got >= n_ref || f.len != ref_len[got] || (int64_t)f.len != f.charged ||
                memcmp(f.payload, data + ref_off[got], f.len) != 0)
                abort(); /* a frame the length prefixes do not describe */
            got++;
            if (n_held < HELD) {
                held[n_held++] = f;
                held_bytes += f.charged;
            } else {
                mp_frame_free(&f, &budget);
            }
        }
        if (got >= 64)
            break;
        if (rc == MP_INTAKE_BUSY) {
            /* refused: exactly the next frame, and only because it does not fit */
            if (got >= n_ref && !(n_ref < 64 && !ref_bad))
                abort();
            if (in.bad_len > MAX_FRAME || held_bytes + (int64_t)in.bad_len <= BUDGET)
                abort();
            if (got < n_ref && in.bad_len != ref_len[got])
                abort();
            /* its body is then read off and thrown away (the gateway does, so that a client
             * writing the whole frame is not blocked), exactly up to its end */
            size_t start = got ? ref_off[got - 1] + ref_len[got - 1] : 0;
            busy_end = start + 4 + in.bad_len;
            mp_intake_discard(&in);
            discarding = mp_intake_discarding(&in);
            if (discarding ? fed >= busy_end : fed < busy_end && size >= busy_end)
                abort(); /* bytes to throw away iff the frame's end was not read yet */
            stop = !discarding;
        } else if (rc == MP_INTAKE_TOO_LARGE || rc == MP_INTAKE_EMPTY) {
            if (!ref_bad || got != n_ref)
                abort(); /* refused a stream whose prefixes are all fine */
            stop = 1;
        } else if (mem_budget_used(&budget) != held_bytes + (in.frame ? in.frame_charged : 0)) {
            abort(); /* charged something other than the held frames and the one being read */
        }
    }
    if (!stop && got < 64 && got < n_ref)
        abort();         /* a whole frame was never handed out */
    mp_intake_free(&in); /* the connection goes away: a half-read frame is released */
    for (int i = 0; i < n_held; i++)
        mp_frame_free(&held[i], &budget);
    if (mem_budget_used(&budget) != 0) {
        fprintf(stderr, "%lld bytes of msgpack frames still charged to the budget\n",
                (long long)mem_budget_used(&budget));
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the reference walk: where each frame starts and ends, and where the stream turns bad */
    size_t ref_off[64], ref_len[64];
    int n_ref = 0, ref_bad = 0;
    size_t pos = 0;
    while (n_ref < 64 && size - pos >= 4) {
        uint32_t n = be32(data + pos);
        if (n == 0 || n > MAX_FRAME) {
            ref_bad = 1;
            break;
        }
        if (size - pos - 4 < n)
            break;
        ref_off[n_ref] = pos + 4;
        ref_len[n_ref++] = n;
        pos += 4 + n;
    }

    struct vl_frame_reader rd;
    vl_frame_reader_init(&rd, MAX_FRAME);
    int got = 0, bad = 0;
    size_t fed = 0, step = 1;
    while (fed < size && !bad && !(n_ref == 64 && got == 64)) {
        size_t k = size - fed < step ? size - fed : step;
        step = step * 3 % 61 + 1; /* 1, 4, 13, 40, 60, 59, ...: splits at many offsets */
        if (vl_frame_reader_feed(&rd, data + fed, k) == VL_FRAME_TOO_LARGE) {
            bad = 1;
            break;
        }
        fed += k;
        const uint8_t *p;
        size_t len;
        int rc = VL_FRAME_NEED_MORE;
        while ((n_ref < 64 || got < 64) &&
               (rc = vl_frame_reader_next(&rd, &p, &len)) == VL_FRAME_OK) {
            if (got >= n_ref || len != ref_len[got] || memcmp(p, data + ref_off[got], len) != 0)
                abort(); /* a frame the length prefixes do not describe */
            got++;
            if (got <= 8) /* decoding is the expensive part: the first frames are enough */
                decode_one(p, len);
        }
        if (rc == VL_FRAME_TOO_LARGE || rc == VL_FRAME_EMPTY)
            bad = 1;
        if (rd.cap > (size_t)MAX_FRAME * 2 + 8192)
            abort(); /* the buffer grew past what one frame and one chunk need */
    }
    if (got < n_ref && !bad)
        abort(); /* a whole frame was never handed out */
    if (bad && !ref_bad)
        abort(); /* refused a stream whose prefixes are all fine */
    vl_frame_reader_free(&rd);
    intake_pass(data, size, ref_off, ref_len, n_ref, ref_bad);
    return 0;
}
