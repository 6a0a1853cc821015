/* vl_backend_cuda_create (worker/backend.h): the production backend. Reads the loaded
 * checkpoint (worker/model.h) once, converts every weight to bf16 and uploads it into one
 * device arena (fusing q/k/v and gate/up into single projections), creates the forward context
 * (cuda_backend_forward.c) sized for the batch budgets, and serves `embed` from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/backend.h"

#ifdef VL_NO_CUDA
int vl_backend_cuda_create(const struct vl_model *m, const struct vl_backend_opts *o,
                           struct vl_backend *out, char *err, size_t errlen)
{
    snprintf(err, errlen, "this build has no CUDA backend (built with NO_CUDA=1)");
    return -1;
}
#else
#include "common/alloc.h"
#include "common/log.h"
#include "worker/cuda/bf16.h"
#include "worker/cuda_backend.h"
#include "worker/model.h"

struct cuda_backend {
    struct vl_cuda_config cfg;
    struct vl_cuda_weights w;
    struct vl_cuda_ctx *ctx;
    struct vl_device_info dev;
};

/* Fills cfg from the checkpoint's configuration; refuses shapes the kernels do not cover. */
static int config_from_model(const struct vl_model *m, struct vl_cuda_config *c, char *err,
                             size_t errlen)
{
    const struct vl_text_config *t = &m->cfg.text;
    const struct vl_vision_config *v = &m->cfg.vision;
    memset(c, 0, sizeof *c);
    c->hidden = t->hidden_size, c->layers = t->num_hidden_layers;
    c->heads = t->num_attention_heads, c->kv_heads = t->num_key_value_heads;
    c->head_dim = t->head_dim, c->inter = t->intermediate_size, c->vocab = t->vocab_size;
    memcpy(c->mrope_section, t->mrope_section, sizeof c->mrope_section);
    c->rms_eps = t->rms_norm_eps, c->rope_theta = (float)t->rope_theta;
    c->v_hidden = v->hidden_size, c->v_depth = v->depth, c->v_heads = v->num_heads;
    c->v_head_dim = v->head_dim, c->v_inter = v->intermediate_size;
    c->v_out = v->out_hidden_size, c->v_pos_side = v->num_grid_per_side;
    c->v_eps = v->layer_norm_eps;
    c->n_deepstack = v->n_deepstack;
    c->image_token_id = m->cfg.image_token_id, c->video_token_id = m->cfg.video_token_id;
    if (t->attention_bias) {
        snprintf(err, errlen, "CUDA backend: q/k/v biases (attention_bias) are not supported");
        return -1;
    }
    if (v->patch_size != 16 || v->temporal_patch_size != 2 || v->spatial_merge_size != 2 ||
        v->in_channels != 3 || (v->rope_theta != 0 && v->rope_theta != 10000.0f)) {
        snprintf(err, errlen,
                 "CUDA backend: vision patching other than 3x2x16x16 with 2x2 merge "
                 "and rope theta 10000 is not supported");
        return -1;
    }
    if (v->n_deepstack > VL_CUDA_MAX_DEEPSTACK || v->n_deepstack > t->num_hidden_layers) {
        snprintf(err, errlen, "CUDA backend: %d deepstack levels (at most %d)", v->n_deepstack,
                 VL_CUDA_MAX_DEEPSTACK);
        return -1;
    }
    for (int i = 0; i < v->n_deepstack; i++)
        c->deepstack_idx[i] = v->deepstack_visual_indexes[i];
    return 0;
}

/* Converts a tensor to bf16 and copies it to dst (device) + offset elements. */
static void put(uint16_t *dst, size_t offset, const struct vl_tensor *t, uint16_t *tmp)
{
    size_t n = (size_t)t->numel;
    const void *src = t->data;
    if (t->dtype != VL_DTYPE_BF16) {
        float f[1024];
        for (size_t i = 0; i < n; i += 1024) {
            size_t k = n - i < 1024 ? n - i : 1024;
            vl_dtype_to_f32(t->dtype, (const char *)t->data + i * vl_dtype_size(t->dtype), f, k);
            for (size_t j = 0; j < k; j++)
                tmp[i + j] = vl_float_to_bf16(f[j]);
        }
        src = tmp;
    }
    vl_cuda_h2d(dst + offset, src, n * 2, NULL);
    vl_cuda_stream_sync(NULL); /* tmp is reused by the next call */
}

static void upload(const struct vl_model *m, const struct vl_cuda_config *c,
                   struct vl_cuda_weights *w)
{
    size_t maxn = (size_t)m->embed_tokens.numel; /* the largest tensor of these models */
    for (int l = 0; l < c->layers; l++) {
        size_t g = (size_t)m->layers[l].gate_w.numel * 2;
        if (g > maxn)
            maxn = g;
    }
    uint16_t *tmp = vl_malloc(maxn * 2);
    size_t H = c->hidden, hd = c->head_dim, nq = c->heads, nkv = c->kv_heads, I = c->inter;
    put(w->embed, 0, &m->embed_tokens, tmp);
    put(w->final_norm, 0, &m->norm_w, tmp);
    for (int l = 0; l < c->layers; l++) {
        const struct vl_text_layer *s = &m->layers[l];
        struct vl_cuda_layer *d = &w->layer[l];
        put(d->in_norm, 0, &s->input_norm_w, tmp);
        put(d->qkv_w, 0, &s->q_w, tmp);
        put(d->qkv_w, nq * hd * H, &s->k_w, tmp);
        put(d->qkv_w, (nq + nkv) * hd * H, &s->v_w, tmp);
        put(d->q_norm, 0, &s->q_norm_w, tmp);
        put(d->k_norm, 0, &s->k_norm_w, tmp);
        put(d->o_w, 0, &s->o_w, tmp);
        put(d->post_norm, 0, &s->post_norm_w, tmp);
        put(d->gate_up_w, 0, &s->gate_w, tmp);
        put(d->gate_up_w, I * H, &s->up_w, tmp);
        put(d->down_w, 0, &s->down_w, tmp);
    }
    put(w->patch_w, 0, &m->patch_embed_w, tmp);
    put(w->patch_b, 0, &m->patch_embed_b, tmp);
    put(w->pos_embed, 0, &m->pos_embed, tmp);
    for (int b = 0; b < c->v_depth; b++) {
        const struct vl_vision_block *s = &m->blocks[b];
        struct vl_cuda_vblock *d = &w->vblock[b];
        put(d->norm1_w, 0, &s->norm1_w, tmp), put(d->norm1_b, 0, &s->norm1_b, tmp);
        put(d->qkv_w, 0, &s->qkv_w, tmp), put(d->qkv_b, 0, &s->qkv_b, tmp);
        put(d->proj_w, 0, &s->proj_w, tmp), put(d->proj_b, 0, &s->proj_b, tmp);
        put(d->norm2_w, 0, &s->norm2_w, tmp), put(d->norm2_b, 0, &s->norm2_b, tmp);
        put(d->fc1_w, 0, &s->fc1_w, tmp), put(d->fc1_b, 0, &s->fc1_b, tmp);
        put(d->fc2_w, 0, &s->fc2_w, tmp), put(d->fc2_b, 0, &s->fc2_b, tmp);
    }
    for (int k = 0; k <= c->n_deepstack; k++) {
        const struct vl_merger *s = k == 0 ? &m->merger : &m->deepstack_mergers[k - 1];
        struct vl_cuda_merger *d = k == 0 ? &w->merger : &w->deepstack[k - 1];
        put(d->norm_w, 0, &s->norm_w, tmp), put(d->norm_b, 0, &s->norm_b, tmp);
        put(d->fc1_w, 0, &s->fc1_w, tmp), put(d->fc1_b, 0, &s->fc1_b, tmp);
        put(d->fc2_w, 0, &s->fc2_w, tmp), put(d->fc2_b, 0, &s->fc2_b, tmp);
    }
    vl_cuda_device_sync();
    free(tmp);
}

static int cuda_embed(struct vl_backend *b, const struct vl_item *items, int n, float *out,
                      char *err, size_t errlen)
{
    struct cuda_backend *cb = b->state;
    return vl_cuda_embed(cb->ctx, items, n, out, err, errlen);
}

static void cuda_destroy(struct vl_backend *b)
{
    struct cuda_backend *cb = b->state;
    if (!cb)
        return;
    vl_cuda_ctx_free(cb->ctx);
    vl_cuda_weights_free(&cb->w);
    free(cb);
    b->state = NULL;
}

int vl_backend_cuda_create(const struct vl_model *m, const struct vl_backend_opts *o,
                           struct vl_backend *out, char *err, size_t errlen)
{
    struct cuda_backend *cb = vl_calloc(1, sizeof *cb);
    if (config_from_model(m, &cb->cfg, err, errlen) ||
        vl_cuda_device_open(o ? o->device : 0, &cb->dev, err, errlen) ||
        vl_cuda_weights_alloc(&cb->cfg, &cb->w, err, errlen)) {
        free(cb);
        return -1;
    }
    upload(m, &cb->cfg, &cb->w);
    cb->ctx = vl_cuda_ctx_create(&cb->cfg, &cb->w, o ? o->max_batch_tokens : 0,
                                 o ? o->max_batch_patches : 0, err, errlen);
    if (!cb->ctx) {
        vl_cuda_weights_free(&cb->w);
        free(cb);
        return -1;
    }
    vl_info("CUDA backend on %s (%d SMs): %.1f MiB of bf16 weights", cb->dev.name, cb->dev.sm_count,
            cb->w.bytes / 1048576.0);
    memset(out, 0, sizeof *out);
    out->name = "cuda";
    out->state = cb;
    out->embed = cuda_embed;
    out->destroy = cuda_destroy;
    return 0;
}
#endif
