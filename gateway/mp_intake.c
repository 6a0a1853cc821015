/* The msgpack API's budgeted frame intake (see mp_intake.h). */
#include "gateway/mp_intake.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "gateway/membudget.h"

void mp_intake_init(struct mp_intake *in, size_t max_frame, struct mem_budget *budget)
{
    memset(in, 0, sizeof *in);
    in->max_frame = max_frame;
    in->budget = budget;
}

void mp_intake_free(struct mp_intake *in)
{
    free(in->stage);
    in->stage = NULL;
    in->stage_len = in->stage_start = 0;
    free(in->frame);
    in->frame = NULL;
    mem_budget_release(in->budget, in->frame_charged);
    in->frame_charged = 0;
    in->frame_len = in->frame_got = 0;
    in->skip = 0;
}

void mp_intake_discard(struct mp_intake *in)
{
    size_t staged = in->stage_len - in->stage_start; /* the prefix, then part of the body */
    size_t body = staged > 4 ? staged - 4 : 0;
    in->skip = body < in->bad_len ? in->bad_len - body : 0;
    in->stage_len = in->stage_start = 0;
}

int mp_intake_discarding(const struct mp_intake *in)
{
    return in->skip > 0;
}

void mp_intake_space(struct mp_intake *in, uint8_t **buf, size_t *len)
{
    if (in->skip) { /* a refused frame's body: read into the staging buffer, thrown away */
        if (!in->stage)
            in->stage = vl_malloc(MP_INTAKE_STAGE);
        in->stage_len = in->stage_start = 0;
        *buf = in->stage;
        *len = in->skip < MP_INTAKE_STAGE ? in->skip : MP_INTAKE_STAGE;
        return;
    }
    if (in->frame) {
        *buf = in->frame + in->frame_got;
        *len = in->frame_len - in->frame_got;
        return;
    }
    if (!in->stage)
        in->stage = vl_malloc(MP_INTAKE_STAGE);
    if (in->stage_start > 0) { /* drop what was taken */
        memmove(in->stage, in->stage + in->stage_start, in->stage_len - in->stage_start);
        in->stage_len -= in->stage_start;
        in->stage_start = 0;
    }
    *buf = in->stage + in->stage_len;
    *len = MP_INTAKE_STAGE - in->stage_len;
}

void mp_intake_wrote(struct mp_intake *in, size_t n)
{
    if (in->skip)
        in->skip -= n < in->skip ? n : in->skip;
    else if (in->frame)
        in->frame_got += n;
    else
        in->stage_len += n;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void hand_out(struct mp_intake *in, struct mp_frame *f)
{
    f->payload = in->frame;
    f->len = in->frame_len;
    f->charged = in->frame_charged;
    in->frame = NULL;
    in->frame_len = in->frame_got = 0;
    in->frame_charged = 0;
}

int mp_intake_next(struct mp_intake *in, struct mp_frame *f)
{
    if (in->skip)
        return MP_INTAKE_NEED_MORE;
    if (in->frame) {
        if (in->frame_got < in->frame_len)
            return MP_INTAKE_NEED_MORE;
        hand_out(in, f);
        return MP_INTAKE_OK;
    }
    size_t have = in->stage_len - in->stage_start;
    if (have == 0 && in->stage) { /* an idle connection keeps no buffer */
        free(in->stage);
        in->stage = NULL;
        in->stage_len = in->stage_start = 0;
    }
    if (have < 4)
        return MP_INTAKE_NEED_MORE;
    const uint8_t *h = in->stage + in->stage_start;
    uint32_t n = be32(h);
    if (n > in->max_frame) {
        in->bad_len = n;
        return MP_INTAKE_TOO_LARGE;
    }
    if (n == 0)
        return MP_INTAKE_EMPTY;
    if (mem_budget_charge(in->budget, (int64_t)n, MEMB_MSGPACK_FRAME)) {
        in->bad_len = n;
        return MP_INTAKE_BUSY;
    }
    /* the frame's own buffer; what of it is staged moves there, the rest is read straight in */
    in->frame = vl_malloc(n);
    in->frame_len = n;
    in->frame_charged = n;
    size_t k = have - 4 < n ? have - 4 : n;
    memcpy(in->frame, h + 4, k);
    in->frame_got = k;
    in->stage_start += 4 + k;
    if (in->stage_start == in->stage_len) { /* nothing else staged: no buffer while reading it */
        free(in->stage);
        in->stage = NULL;
        in->stage_len = in->stage_start = 0;
    }
    if (k < n)
        return MP_INTAKE_NEED_MORE;
    hand_out(in, f);
    return MP_INTAKE_OK;
}

size_t mp_intake_pending(const struct mp_intake *in)
{
    return in->stage_len - in->stage_start + in->frame_got;
}

void mp_frame_free(struct mp_frame *f, struct mem_budget *budget)
{
    free(f->payload);
    f->payload = NULL;
    mem_budget_release(budget, f->charged);
    f->charged = 0;
    f->len = 0;
}
