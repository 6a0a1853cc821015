/* The language model on the CPU (spec §4, §5), float32: token embeddings with the visual
 * features written over the pad tokens, 3-D interleaved MRoPE, decoder layers (RMSNorm,
 * q/k norm, GQA causal attention within each item, SwiGLU MLP), DeepStack injection after
 * the first layers, final RMSNorm of each item's last token, L2 normalisation. */
#include <math.h>
#include <string.h>

#include "worker/cpu.h"

size_t cpu_text_ws_floats(const struct cpu_state *s, const struct cpu_text_batch *b)
{
    const struct vl_text_config *c = &s->m->cfg.text;
    size_t T = (size_t)b->n_tokens, H = (size_t)c->hidden_size;
    size_t qd = (size_t)c->num_attention_heads * (size_t)c->head_dim;
    size_t kvd = (size_t)c->num_key_value_heads * (size_t)c->head_dim;
    size_t per_row =
        2 * H + 2 * qd + 2 * kvd + 2 * (size_t)c->intermediate_size + 2 * (size_t)c->head_dim;
    return T * per_row + (size_t)b->n_items * (H + 4) + 64;
}

/* cos/sin [T, hd] for interleaved MRoPE (spec §4.3): frequency i uses the h position if
 * i % 3 == 1 and i < 3 * mrope_section[1], the w position if i % 3 == 2 and
 * i < 3 * mrope_section[2], else the t position (transformers' apply_interleaved_mrope). */
static void mrope_tables(const struct cpu_state *s, const struct cpu_text_batch *b, float *cs,
                         float *sn)
{
    const struct vl_text_config *c = &s->m->cfg.text;
    int hd = c->head_dim, half = hd / 2;
    int64_t T = b->n_tokens;
    for (int64_t t = 0; t < T; t++) {
        float p[3] = {(float)b->pos[t], (float)b->pos[T + t], (float)b->pos[2 * T + t]};
        float *cr = cs + (size_t)t * (size_t)hd, *sr = sn + (size_t)t * (size_t)hd;
        for (int i = 0; i < half; i++) {
            int axis = 0;
            if (i % 3 == 1 && i < 3 * c->mrope_section[1])
                axis = 1;
            else if (i % 3 == 2 && i < 3 * c->mrope_section[2])
                axis = 2;
            float f = p[axis] * s->txt_inv_freq[i];
            cr[i] = cr[i + half] = cosf(f);
            sr[i] = sr[i + half] = sinf(f);
        }
    }
}

static void add_rows(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

void cpu_text_forward(struct cpu_state *s, const struct cpu_text_batch *b, float *ws, float *out)
{
    const struct vl_text_config *c = &s->m->cfg.text;
    const struct vl_model *m = s->m;
    int64_t T = b->n_tokens;
    int H = c->hidden_size, hd = c->head_dim, nq = c->num_attention_heads;
    int nkv = c->num_key_value_heads, I = c->intermediate_size;
    int qd = nq * hd, kvd = nkv * hd;
    float *x = ws;
    float *h = x + (size_t)T * (size_t)H;
    float *q = h + (size_t)T * (size_t)H;
    float *k = q + (size_t)T * (size_t)qd;
    float *v = k + (size_t)T * (size_t)kvd;
    float *att = v + (size_t)T * (size_t)kvd;
    float *gate = att + (size_t)T * (size_t)qd;
    float *up = gate + (size_t)T * (size_t)I;
    float *cs = up + (size_t)T * (size_t)I;
    float *sn = cs + (size_t)T * (size_t)hd;
    float *pooled = sn + (size_t)T * (size_t)hd;
    int64_t *seg = (int64_t *)(void *)(pooled + (size_t)b->n_items * (size_t)H + 2);
    seg = (int64_t *)(((uintptr_t)seg + 7) & ~(uintptr_t)7);
    int64_t *seg_start = seg, *seg_len = seg + b->n_items;

    /* embeddings, visual features over the pads */
    int64_t t0 = 0;
    for (int i = 0; i < b->n_items; i++) {
        const struct vl_item *it = &b->items[i];
        seg_start[i] = t0;
        seg_len[i] = it->n_ids;
        for (int32_t j = 0; j < it->n_ids; j++) {
            int64_t t = t0 + j;
            float *xr = x + (size_t)t * (size_t)H;
            if (b->vis_row[t] >= 0)
                memcpy(xr, b->vis_main + (size_t)b->vis_row[t] * (size_t)H,
                       sizeof(float) * (size_t)H);
            else
                vl_tensor_row_to_f32(&m->embed_tokens, it->ids[j], xr);
        }
        t0 += it->n_ids;
    }
    mrope_tables(s, b, cs, sn);

    float eps = c->rms_norm_eps;
    int pruned = vl_model_prune_last_layer(c->num_hidden_layers, m->cfg.vision.n_deepstack);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const struct cpu_layer *ly = &s->layers[l];
        cpu_rms_norm(s->pool, h, x, T, H, H, ly->in_w, eps);
        cpu_linear_run(s->pool, &ly->q, h, H, T, q, qd);
        cpu_linear_run(s->pool, &ly->k, h, H, T, k, kvd);
        cpu_linear_run(s->pool, &ly->v, h, H, T, v, kvd);
        cpu_rms_norm(s->pool, q, q, T * nq, hd, hd, ly->qn_w, eps);
        cpu_rms_norm(s->pool, k, k, T * nkv, hd, hd, ly->kn_w, eps);
        cpu_rope(s->pool, q, T, qd, nq, hd, cs, sn);
        cpu_rope(s->pool, k, T, kvd, nkv, hd, cs, sn);
        struct cpu_attn_args aa = {.q = q,
                                   .k = k,
                                   .v = v,
                                   .out = att,
                                   .ldq = qd,
                                   .ldk = kvd,
                                   .ldv = kvd,
                                   .ldo = qd,
                                   .nq = nq,
                                   .nkv = nkv,
                                   .hd = hd,
                                   .causal = 1,
                                   .scale = 1.0f / sqrtf((float)hd),
                                   .seg_start = seg_start,
                                   .seg_len = seg_len,
                                   .n_segs = b->n_items};
        cpu_attention(s->pool, &aa, s->scratch);
        int64_t R = T; /* rows that go on through the rest of the layer */
        if (pruned && l == c->num_hidden_layers - 1) {
            /* only each item's last row is pooled and no row reads another any more: move
             * those rows to the front (ascending, so no source row is overwritten first) */
            for (int i = 0; i < b->n_items; i++) {
                size_t src = (size_t)(seg_start[i] + seg_len[i] - 1);
                memmove(att + (size_t)i * (size_t)qd, att + src * (size_t)qd,
                        sizeof(float) * (size_t)qd);
                memmove(x + (size_t)i * (size_t)H, x + src * (size_t)H, sizeof(float) * (size_t)H);
            }
            R = b->n_items;
        }
        cpu_linear_run(s->pool, &ly->o, att, qd, R, h, H);
        add_rows(x, h, (size_t)R * (size_t)H);
        cpu_rms_norm(s->pool, h, x, R, H, H, ly->post_w, eps);
        cpu_linear_run(s->pool, &ly->gate, h, H, R, gate, I);
        cpu_linear_run(s->pool, &ly->up, h, H, R, up, I);
        cpu_silu_mul(s->pool, gate, up, R * I);
        cpu_linear_run(s->pool, &ly->down, gate, I, R, h, H);
        add_rows(x, h, (size_t)R * (size_t)H);
        if (l < m->cfg.vision.n_deepstack && b->vis_ds) {
            const float *ds = b->vis_ds + (size_t)l * (size_t)b->n_merged * (size_t)H;
            for (int64_t t = 0; t < T; t++)
                if (b->vis_row[t] >= 0)
                    add_rows(x + (size_t)t * (size_t)H, ds + (size_t)b->vis_row[t] * (size_t)H,
                             (size_t)H);
        }
    }

    /* last token of each item (row i once pruned) -> final norm -> L2 normalise */
    for (int i = 0; i < b->n_items; i++) {
        size_t row = pruned ? (size_t)i : (size_t)(seg_start[i] + seg_len[i] - 1);
        memcpy(pooled + (size_t)i * (size_t)H, x + row * (size_t)H, sizeof(float) * (size_t)H);
    }
    cpu_rms_norm(s->pool, pooled, pooled, b->n_items, H, H, s->norm_w, eps);
    for (int i = 0; i < b->n_items; i++) {
        const float *p = pooled + (size_t)i * (size_t)H;
        double ss = 0;
        for (int e = 0; e < H; e++)
            ss += (double)p[e] * p[e];
        double nrm = sqrt(ss);
        float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
        for (int e = 0; e < H; e++)
            out[(size_t)i * (size_t)H + (size_t)e] = p[e] * inv;
    }
}
