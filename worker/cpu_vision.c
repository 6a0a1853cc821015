/* The vision tower on the CPU (spec §3), float32: patchify + normalise from uint8 RGB
 * (spec §7.1 steps 4-6, §7.4), patch embedding, bilinear position-embedding interpolation,
 * 2-D rotary, the blocks with attention restricted to each image / frame pair, the DeepStack
 * mergers and the final merger. Every visual of a batch is processed together; patch rows are
 * in merge-window order (t, h/2, w/2, 2, 2), so 4 consecutive rows form one merged token. */
#include <math.h>
#include <string.h>

#include "worker/cpu.h"

/* Row layout of one visual inside the batch. */
static int64_t vis_patches(const struct vl_visual *v)
{
    return (int64_t)v->grid_t * v->grid_h * v->grid_w;
}

size_t cpu_vision_ws_floats(const struct cpu_state *s, const struct cpu_vis_batch *b)
{
    const struct vl_vision_config *c = &s->m->cfg.vision;
    size_t N = (size_t)b->n_patches, M = (size_t)b->n_merged, V = (size_t)c->hidden_size;
    size_t per_row =
        (size_t)c->patch_dim + V * 6 + (size_t)c->intermediate_size + 2 * (size_t)c->head_dim;
    size_t segs = 0;
    for (int i = 0; i < b->n_vis; i++)
        segs += (size_t)b->vis[i]->grid_t;
    return N * per_row + M * 8 * V + 4 * segs + 64;
}

/* ---- patchify ---- */
struct patch_job {
    const struct cpu_vis_batch *b;
    float *xp;
    int pd;
};

/* Fills patch rows [r0, r1) of the batch. */
static void patch_task(void *arg, int task, int thread)
{
    (void)thread;
    const struct patch_job *j = arg;
    int64_t r0 = (int64_t)task * 64, r_end = r0 + 64;
    int64_t base = 0;
    for (int vi = 0; vi < j->b->n_vis && r0 < r_end; vi++) {
        const struct vl_visual *v = j->b->vis[vi];
        int64_t n = vis_patches(v);
        if (r0 >= base + n) {
            base += n;
            continue;
        }
        int gh = v->grid_h, gw = v->grid_w, H = v->height, W = v->width;
        for (; r0 < r_end && r0 < base + n; r0++) {
            int64_t r = r0 - base;
            /* r = ((t * gh/2 + hb) * gw/2 + wb) * 4 + hi * 2 + wi */
            int wi = (int)(r & 1), hi = (int)((r >> 1) & 1);
            int64_t q = r >> 2;
            int wb = (int)(q % (gw / 2));
            q /= gw / 2;
            int hb = (int)(q % (gh / 2));
            int t = (int)(q / (gh / 2));
            int y0 = (hb * 2 + hi) * 16, x0 = (wb * 2 + wi) * 16;
            float *out = j->xp + (size_t)r0 * (size_t)j->pd;
            for (int c = 0; c < 3; c++)
                for (int tp = 0; tp < 2; tp++) {
                    int frame = v->kind == VL_VISUAL_IMAGE ? 0 : 2 * t + tp;
                    const uint8_t *fp = v->pixels + (size_t)frame * (size_t)H * (size_t)W * 3;
                    for (int py = 0; py < 16; py++) {
                        const uint8_t *row = fp + ((size_t)(y0 + py) * (size_t)W + (size_t)x0) * 3;
                        float *o = out + ((c * 2 + tp) * 16 + py) * 16;
                        for (int px = 0; px < 16; px++)
                            o[px] = ((float)row[px * 3 + c] - 127.5f) / 127.5f;
                    }
                }
        }
        base += n;
    }
}

/* torch.linspace(start, end, steps) in float32 (the CPU kernel's symmetric formula). */
static float linspace_at(float start, float end, int steps, int i)
{
    if (steps == 1)
        return start;
    float step = (end - start) / (float)(steps - 1);
    int halfway = steps / 2;
    return i < halfway ? start + step * (float)i : end - step * (float)(steps - i - 1);
}

/* Adds the interpolated position embedding of one visual to its rows of x (spec §3.2). */
static void add_pos_embed(const struct cpu_state *s, const struct vl_visual *v, float *x)
{
    const struct vl_vision_config *c = &s->m->cfg.vision;
    int G = c->num_grid_per_side, V = c->hidden_size, gh = v->grid_h, gw = v->grid_w;
    const float *pe = s->pos_embed;
    for (int64_t r = 0; r < vis_patches(v); r++) {
        int wi = (int)(r & 1), hi = (int)((r >> 1) & 1);
        int64_t q = r >> 2;
        int wb = (int)(q % (gw / 2));
        q /= gw / 2;
        int hb = (int)(q % (gh / 2));
        int row = hb * 2 + hi, col = wb * 2 + wi;
        float hs = linspace_at(0.0f, (float)(G - 1), gh, row);
        float ws = linspace_at(0.0f, (float)(G - 1), gw, col);
        int hf = (int)hs, wf = (int)ws;
        int hc = hf + 1 < G - 1 ? hf + 1 : G - 1, wc = wf + 1 < G - 1 ? wf + 1 : G - 1;
        float dh = hs - (float)hf, dw = ws - (float)wf;
        float w00 = (1 - dh) * (1 - dw), w01 = (1 - dh) * dw, w10 = dh * (1 - dw), w11 = dh * dw;
        const float *p00 = pe + (size_t)(hf * G + wf) * (size_t)V;
        const float *p01 = pe + (size_t)(hf * G + wc) * (size_t)V;
        const float *p10 = pe + (size_t)(hc * G + wf) * (size_t)V;
        const float *p11 = pe + (size_t)(hc * G + wc) * (size_t)V;
        float *xr = x + (size_t)r * (size_t)V;
        for (int e = 0; e < V; e++)
            xr[e] += ((p00[e] * w00 + p01[e] * w01) + p10[e] * w10) + p11[e] * w11;
    }
}

/* cos/sin of the 2-D rotary for one visual's rows (spec §3.3). */
static void vis_rope_tables(const struct cpu_state *s, const struct vl_visual *v, float *cs,
                            float *sn)
{
    int hd = s->m->cfg.vision.head_dim, d = hd / 2, q4 = d / 2;
    int gw = v->grid_w, gh = v->grid_h;
    for (int64_t r = 0; r < vis_patches(v); r++) {
        int wi = (int)(r & 1), hi = (int)((r >> 1) & 1);
        int64_t q = r >> 2;
        int wb = (int)(q % (gw / 2));
        q /= gw / 2;
        int hb = (int)(q % (gh / 2));
        float row = (float)(hb * 2 + hi), col = (float)(wb * 2 + wi);
        float *c = cs + (size_t)r * (size_t)hd, *sv = sn + (size_t)r * (size_t)hd;
        for (int j = 0; j < d; j++) {
            float th = j < q4 ? row * s->vis_inv_freq[j] : col * s->vis_inv_freq[j - q4];
            c[j] = c[j + d] = cosf(th);
            sv[j] = sv[j + d] = sinf(th);
        }
    }
}

static void add_rows(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* A merger: `in` is [M, 4V] (post-shuffle norm) or [4M, V] (pre-shuffle, norm per patch). */
static void run_merger(struct cpu_state *s, const struct cpu_merger *mg, const float *in, int64_t M,
                       float *t1, float *t2, float *out)
{
    const struct vl_vision_config *c = &s->m->cfg.vision;
    int V = c->hidden_size, w4 = 4 * V;
    int64_t rows = mg->norm_dim == V ? 4 * M : M;
    cpu_layer_norm(s->pool, t1, rows, mg->norm_dim, mg->nw, mg->nb, c->layer_norm_eps, in);
    cpu_linear_run(s->pool, &mg->fc1, t1, w4, M, t2, w4);
    cpu_gelu_erf(s->pool, t2, M * w4);
    cpu_linear_run(s->pool, &mg->fc2, t2, w4, M, out, c->out_hidden_size);
}

void cpu_vision_forward(struct cpu_state *s, const struct cpu_vis_batch *b, float *ws,
                        float *out_main, float *out_ds)
{
    const struct vl_vision_config *c = &s->m->cfg.vision;
    int64_t N = b->n_patches, M = b->n_merged;
    int V = c->hidden_size, I = c->intermediate_size, hd = c->head_dim, pd = c->patch_dim;
    float *xp = ws;
    float *x = xp + (size_t)N * (size_t)pd;
    float *h = x + (size_t)N * (size_t)V;
    float *qkv = h + (size_t)N * (size_t)V;
    float *att = qkv + (size_t)N * 3 * (size_t)V;
    float *mlp = att + (size_t)N * (size_t)V;
    float *cs = mlp + (size_t)N * (size_t)I;
    float *sn = cs + (size_t)N * (size_t)hd;
    float *t1 = sn + (size_t)N * (size_t)hd;
    float *t2 = t1 + (size_t)M * 4 * (size_t)V;
    int64_t *seg = (int64_t *)(void *)(t2 + (size_t)M * 4 * (size_t)V + 2);
    /* keep the int64 area 8-byte aligned */
    seg = (int64_t *)(((uintptr_t)seg + 7) & ~(uintptr_t)7);
    int n_segs = 0;
    for (int i = 0; i < b->n_vis; i++)
        n_segs += b->vis[i]->grid_t;
    int64_t *seg_start = seg, *seg_len = seg + n_segs;

    struct patch_job pj = {b, xp, pd};
    cpu_pool_run(s->pool, patch_task, &pj, (int)((N + 63) / 64));
    cpu_linear_run(s->pool, &s->patch, xp, pd, N, x, V);

    int64_t base = 0;
    int k = 0;
    for (int i = 0; i < b->n_vis; i++) {
        const struct vl_visual *v = b->vis[i];
        add_pos_embed(s, v, x + (size_t)base * (size_t)V);
        vis_rope_tables(s, v, cs + (size_t)base * (size_t)hd, sn + (size_t)base * (size_t)hd);
        for (int t = 0; t < v->grid_t; t++, k++) {
            seg_start[k] = base + (int64_t)t * v->grid_h * v->grid_w;
            seg_len[k] = (int64_t)v->grid_h * v->grid_w;
        }
        base += vis_patches(v);
    }

    int ds_level = 0;
    for (int l = 0; l < c->depth; l++) {
        const struct cpu_vblock *bl = &s->vb[l];
        cpu_layer_norm(s->pool, h, N, V, bl->n1w, bl->n1b, c->layer_norm_eps, x);
        cpu_linear_run(s->pool, &bl->qkv, h, V, N, qkv, 3 * V);
        cpu_rope(s->pool, qkv, N, 3 * V, c->num_heads, hd, cs, sn);
        cpu_rope(s->pool, qkv + V, N, 3 * V, c->num_heads, hd, cs, sn);
        struct cpu_attn_args aa = {.q = qkv,
                                   .k = qkv + V,
                                   .v = qkv + 2 * V,
                                   .out = att,
                                   .ldq = 3 * V,
                                   .ldk = 3 * V,
                                   .ldv = 3 * V,
                                   .ldo = V,
                                   .nq = c->num_heads,
                                   .nkv = c->num_heads,
                                   .hd = hd,
                                   .causal = 0,
                                   .scale = 1.0f / sqrtf((float)hd),
                                   .seg_start = seg_start,
                                   .seg_len = seg_len,
                                   .n_segs = n_segs};
        cpu_attention(s->pool, &aa, s->scratch);
        cpu_linear_run(s->pool, &bl->proj, att, V, N, h, V);
        add_rows(x, h, (size_t)N * (size_t)V);
        cpu_layer_norm(s->pool, h, N, V, bl->n2w, bl->n2b, c->layer_norm_eps, x);
        cpu_linear_run(s->pool, &bl->fc1, h, V, N, mlp, I);
        cpu_gelu_tanh(s->pool, mlp, N * I);
        cpu_linear_run(s->pool, &bl->fc2, mlp, I, N, h, V);
        add_rows(x, h, (size_t)N * (size_t)V);
        if (ds_level < c->n_deepstack && c->deepstack_visual_indexes[ds_level] == l) {
            run_merger(s, &s->ds[ds_level], x, M, t1, t2,
                       out_ds + (size_t)ds_level * (size_t)M * (size_t)c->out_hidden_size);
            ds_level++;
        }
    }
    run_merger(s, &s->merger, x, M, t1, t2, out_main);
}
