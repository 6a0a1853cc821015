/* Row-wise operations of the CPU forward: LayerNorm, RMSNorm, GELU (tanh and erf), SiLU,
 * rotary embedding, and segmented (varlen) attention. All float32; each row is computed the
 * same way whatever the batch (see cpu.h). */
#include <math.h>
#include <string.h>

#include "worker/cpu.h"

#define ROWS_PER_TASK 16

/* Splits `rows` into tasks of ROWS_PER_TASK and calls fn(ctx, r0, r1). */
struct rows_job {
    void (*fn)(void *ctx, int64_t r0, int64_t r1);
    void *ctx;
    int64_t rows, per;
};
static void rows_task(void *arg, int task, int thread)
{
    (void)thread;
    struct rows_job *j = arg;
    int64_t r0 = (int64_t)task * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
    j->fn(j->ctx, r0, r1);
}
static void for_rows(struct cpu_pool *p, int64_t rows, int64_t per,
                     void (*fn)(void *ctx, int64_t r0, int64_t r1), void *ctx)
{
    if (rows <= 0)
        return;
    struct rows_job j = {fn, ctx, rows, per};
    cpu_pool_run(p, rows_task, &j, (int)((rows + per - 1) / per));
}

/* ---- LayerNorm ---- */
struct ln_ctx {
    float *y;
    const float *x, *w, *b;
    int dim;
    float eps;
};
static void ln_rows(void *c, int64_t r0, int64_t r1)
{
    struct ln_ctx *l = c;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = l->x + (size_t)r * (size_t)l->dim;
        float *y = l->y + (size_t)r * (size_t)l->dim;
        double s = 0, s2 = 0;
        for (int i = 0; i < l->dim; i++)
            s += x[i];
        float mean = (float)(s / l->dim);
        for (int i = 0; i < l->dim; i++) {
            float d = x[i] - mean;
            s2 += (double)d * d;
        }
        float rstd = (float)(1.0 / sqrt(s2 / l->dim + (double)l->eps));
        for (int i = 0; i < l->dim; i++)
            y[i] = (x[i] - mean) * rstd * l->w[i] + l->b[i];
    }
}
void cpu_layer_norm(struct cpu_pool *p, float *y, int64_t rows, int dim, const float *w,
                    const float *b, float eps, const float *src)
{
    struct ln_ctx c = {y, src, w, b, dim, eps};
    for_rows(p, rows, ROWS_PER_TASK, ln_rows, &c);
}

/* ---- RMSNorm (Qwen3: w * (x * rsqrt(mean(x^2) + eps))) ---- */
struct rms_ctx {
    float *y;
    const float *x, *w;
    int dim;
    int64_t ld;
    float eps;
};
static void rms_rows(void *c, int64_t r0, int64_t r1)
{
    struct rms_ctx *l = c;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = l->x + (size_t)r * (size_t)l->ld;
        float *y = l->y + (size_t)r * (size_t)l->ld;
        double s2 = 0;
        for (int i = 0; i < l->dim; i++)
            s2 += (double)x[i] * x[i];
        float rs = (float)(1.0 / sqrt(s2 / l->dim + (double)l->eps));
        for (int i = 0; i < l->dim; i++)
            y[i] = l->w[i] * (x[i] * rs);
    }
}
void cpu_rms_norm(struct cpu_pool *p, float *y, const float *x, int64_t rows, int dim, int64_t ld,
                  const float *w, float eps)
{
    struct rms_ctx c = {y, x, w, dim, ld, eps};
    for_rows(p, rows, ROWS_PER_TASK * 4, rms_rows, &c);
}

/* ---- activations ---- */
struct act_ctx {
    float *x;
    const float *u;
};
static void gelu_tanh_rows(void *c, int64_t r0, int64_t r1)
{
    float *x = ((struct act_ctx *)c)->x;
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int64_t i = r0; i < r1; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}
static void gelu_erf_rows(void *c, int64_t r0, int64_t r1)
{
    float *x = ((struct act_ctx *)c)->x;
    for (int64_t i = r0; i < r1; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
static void silu_mul_rows(void *c, int64_t r0, int64_t r1)
{
    struct act_ctx *a = c;
    for (int64_t i = r0; i < r1; i++) {
        float g = a->x[i];
        a->x[i] = g / (1.0f + expf(-g)) * a->u[i];
    }
}
void cpu_gelu_tanh(struct cpu_pool *p, float *x, int64_t n)
{
    struct act_ctx c = {x, NULL};
    for_rows(p, n, 1 << 14, gelu_tanh_rows, &c);
}
void cpu_gelu_erf(struct cpu_pool *p, float *x, int64_t n)
{
    struct act_ctx c = {x, NULL};
    for_rows(p, n, 1 << 14, gelu_erf_rows, &c);
}
void cpu_silu_mul(struct cpu_pool *p, float *gate, const float *up, int64_t n)
{
    struct act_ctx c = {gate, up};
    for_rows(p, n, 1 << 14, silu_mul_rows, &c);
}

/* ---- rotary ---- */
struct rope_ctx {
    float *x;
    int64_t ld;
    int n_heads, hd;
    const float *cos, *sin;
};
static void rope_rows(void *c, int64_t r0, int64_t r1)
{
    struct rope_ctx *a = c;
    int half = a->hd / 2;
    float tmp[1024];
    for (int64_t r = r0; r < r1; r++) {
        const float *cs = a->cos + (size_t)r * (size_t)a->hd,
                    *sn = a->sin + (size_t)r * (size_t)a->hd;
        for (int h = 0; h < a->n_heads; h++) {
            float *x = a->x + (size_t)r * (size_t)a->ld + (size_t)h * (size_t)a->hd;
            memcpy(tmp, x, sizeof(float) * (size_t)a->hd);
            for (int i = 0; i < half; i++)
                x[i] = tmp[i] * cs[i] + (-tmp[i + half]) * sn[i];
            for (int i = half; i < a->hd; i++)
                x[i] = tmp[i] * cs[i] + tmp[i - half] * sn[i];
        }
    }
}
void cpu_rope(struct cpu_pool *p, float *x, int64_t rows, int64_t ld, int n_heads, int hd,
              const float *cos, const float *sin)
{
    struct rope_ctx c = {x, ld, n_heads, hd, cos, sin};
    for_rows(p, rows, ROWS_PER_TASK * 4, rope_rows, &c);
}

/* ---- attention ---- */
#define ATT_QROWS 32

struct att_job {
    const struct cpu_attn_args *a;
    float **scratch;
};

static void att_task(void *arg, int task, int thread)
{
    const struct att_job *j = arg;
    const struct cpu_attn_args *a = j->a;
    int h = task % a->nq;
    int64_t chunk = task / a->nq;
    int s = 0;
    /* locate the chunk's segment (a linear walk: segments per batch are few) */
    for (;; s++) {
        int64_t c = (a->seg_len[s] + ATT_QROWS - 1) / ATT_QROWS;
        if (chunk < c)
            break;
        chunk -= c;
    }
    int64_t base = a->seg_start[s], len = a->seg_len[s];
    int64_t q0 = chunk * ATT_QROWS, q1 = q0 + ATT_QROWS < len ? q0 + ATT_QROWS : len;
    int g = h / (a->nq / a->nkv), hd = a->hd;
    float *sc = j->scratch[thread];
    for (int64_t i = q0; i < q1; i++) {
        const float *q = a->q + (size_t)(base + i) * (size_t)a->ldq + (size_t)h * (size_t)hd;
        int64_t nk = a->causal ? i + 1 : len;
        float mx = -INFINITY;
        for (int64_t t = 0; t < nk; t++) {
            const float *k = a->k + (size_t)(base + t) * (size_t)a->ldk + (size_t)g * (size_t)hd;
            float d = 0;
            for (int e = 0; e < hd; e++)
                d += q[e] * k[e];
            d *= a->scale;
            sc[t] = d;
            if (d > mx)
                mx = d;
        }
        float sum = 0;
        for (int64_t t = 0; t < nk; t++) {
            sc[t] = expf(sc[t] - mx);
            sum += sc[t];
        }
        float inv = 1.0f / sum;
        float *o = a->out + (size_t)(base + i) * (size_t)a->ldo + (size_t)h * (size_t)hd;
        for (int e = 0; e < hd; e++)
            o[e] = 0;
        for (int64_t t = 0; t < nk; t++) {
            const float *v = a->v + (size_t)(base + t) * (size_t)a->ldv + (size_t)g * (size_t)hd;
            float pw = sc[t] * inv;
            for (int e = 0; e < hd; e++)
                o[e] += pw * v[e];
        }
    }
}

void cpu_attention(struct cpu_pool *p, const struct cpu_attn_args *a, float **scratch)
{
    int64_t n_chunks = 0;
    for (int s = 0; s < a->n_segs; s++)
        n_chunks += (a->seg_len[s] + ATT_QROWS - 1) / ATT_QROWS;
    if (n_chunks == 0)
        return;
    struct att_job j = {a, scratch};
    cpu_pool_run(p, att_task, &j, (int)(n_chunks * a->nq));
}
