/* Device weights of the CUDA backend (cuda_backend.h): one arena carved into tensors, and the
 * random fill used for benchmarking real sizes. */
#ifndef VL_NO_CUDA
#include <stdio.h>
#include <string.h>

#include "worker/cuda_backend.h"

int vl_cuda_config_preset(const char *which, struct vl_cuda_config *c)
{
    memset(c, 0, sizeof *c);
    c->head_dim = 128;
    c->kv_heads = 8;
    c->vocab = 151936;
    c->rms_eps = 1e-6f;
    c->rope_theta = 5e6f;
    c->mrope_section[0] = 24, c->mrope_section[1] = 20, c->mrope_section[2] = 20;
    c->v_eps = 1e-6f;
    c->v_pos_side = 48;
    c->n_deepstack = 3;
    c->image_token_id = 151655;
    c->video_token_id = 151656;
    c->v_heads = 16;
    if (!strcmp(which, "2B")) {
        c->hidden = 2048, c->layers = 28, c->heads = 16, c->inter = 6144;
        c->v_hidden = 1024, c->v_depth = 24, c->v_inter = 4096, c->v_out = 2048;
        c->deepstack_idx[0] = 5, c->deepstack_idx[1] = 11, c->deepstack_idx[2] = 17;
    } else if (!strcmp(which, "8B")) {
        c->hidden = 4096, c->layers = 36, c->heads = 32, c->inter = 12288;
        c->v_hidden = 1152, c->v_depth = 27, c->v_inter = 4304, c->v_out = 4096;
        c->deepstack_idx[0] = 8, c->deepstack_idx[1] = 16, c->deepstack_idx[2] = 24;
    } else {
        return -1;
    }
    c->v_head_dim = c->v_hidden / c->v_heads;
    return 0;
}

/* Walks every tensor of cfg in a fixed order; with base == NULL only counts bytes. */
struct carve {
    char *base;
    size_t off;
};

static uint16_t *take(struct carve *cv, size_t elems)
{
    size_t at = cv->off;
    cv->off += (elems * 2 + 255) & ~(size_t)255;
    return cv->base ? (uint16_t *)(cv->base + at) : NULL;
}

static void carve_all(const struct vl_cuda_config *c, struct vl_cuda_weights *w, struct carve *cv)
{
    size_t H = c->hidden, hd = c->head_dim, nq = c->heads, nkv = c->kv_heads, I = c->inter;
    w->embed = take(cv, (size_t)c->vocab * H);
    w->final_norm = take(cv, H);
    for (int l = 0; l < c->layers; l++) {
        struct vl_cuda_layer *L = &w->layer[l];
        L->in_norm = take(cv, H);
        L->qkv_w = take(cv, (nq + 2 * nkv) * hd * H);
        L->q_norm = take(cv, hd);
        L->k_norm = take(cv, hd);
        L->o_w = take(cv, H * nq * hd);
        L->post_norm = take(cv, H);
        L->gate_up_w = take(cv, 2 * I * H);
        L->down_w = take(cv, H * I);
    }
    size_t V = c->v_hidden, Iv = c->v_inter, O = c->v_out;
    w->patch_w = take(cv, V * 1536);
    w->patch_b = take(cv, V);
    w->pos_embed = take(cv, (size_t)c->v_pos_side * c->v_pos_side * V);
    for (int b = 0; b < c->v_depth; b++) {
        struct vl_cuda_vblock *B = &w->vblock[b];
        B->norm1_w = take(cv, V), B->norm1_b = take(cv, V);
        B->qkv_w = take(cv, 3 * V * V), B->qkv_b = take(cv, 3 * V);
        B->proj_w = take(cv, V * V), B->proj_b = take(cv, V);
        B->norm2_w = take(cv, V), B->norm2_b = take(cv, V);
        B->fc1_w = take(cv, Iv * V), B->fc1_b = take(cv, Iv);
        B->fc2_w = take(cv, V * Iv), B->fc2_b = take(cv, V);
    }
    for (int m = 0; m <= c->n_deepstack; m++) {
        struct vl_cuda_merger *M = m == 0 ? &w->merger : &w->deepstack[m - 1];
        size_t nd = m == 0 ? V : 4 * V; /* the final merger normalises before the 2x2 shuffle */
        M->norm_w = take(cv, nd), M->norm_b = take(cv, nd);
        M->fc1_w = take(cv, 16 * V * V), M->fc1_b = take(cv, 4 * V);
        M->fc2_w = take(cv, O * 4 * V), M->fc2_b = take(cv, O);
    }
}

int vl_cuda_weights_alloc(const struct vl_cuda_config *cfg, struct vl_cuda_weights *w, char *err,
                          size_t errlen)
{
    memset(w, 0, sizeof *w);
    if (cfg->layers > VL_CUDA_MAX_LAYERS || cfg->v_depth > VL_CUDA_MAX_LAYERS ||
        cfg->n_deepstack > VL_CUDA_MAX_DEEPSTACK || cfg->heads % cfg->kv_heads ||
        cfg->v_hidden % cfg->v_heads || cfg->hidden % 8 || cfg->inter % 8 || cfg->v_hidden % 8 ||
        cfg->v_inter % 8 || cfg->v_out != cfg->hidden || cfg->head_dim % 8) {
        snprintf(err, errlen, "model shape not supported by the CUDA backend");
        return -1;
    }
    int vhd = cfg->v_hidden / cfg->v_heads, hd = cfg->head_dim;
    if ((vhd != 16 && vhd != 32 && vhd != 64 && vhd != 72 && vhd != 80 && vhd != 128) ||
        (hd != 16 && hd != 32 && hd != 64 && hd != 72 && hd != 80 && hd != 128)) {
        snprintf(err, errlen, "head dims %d (text) / %d (vision) not supported by the CUDA backend",
                 hd, vhd);
        return -1;
    }
    struct carve cv = {NULL, 0};
    carve_all(cfg, w, &cv);
    w->bytes = cv.off;
    w->arena = vl_cuda_malloc(w->bytes);
    cv.base = w->arena;
    cv.off = 0;
    carve_all(cfg, w, &cv);
    return 0;
}

void vl_cuda_weights_random(const struct vl_cuda_config *c, struct vl_cuda_weights *w,
                            uint64_t seed)
{
    /* everything uniform in [-0.035, 0.035] (std 0.02, the models' init), then norm weights 1 */
    vl_cuda_fill_random_bf16(w->arena, w->bytes / 2, seed, 0.035f, NULL);
    size_t H = c->hidden, V = c->v_hidden;
    for (int l = 0; l < c->layers; l++) {
        const struct vl_cuda_layer *L = &w->layer[l];
        vl_cuda_fill_bf16(L->in_norm, H, 1.0f, NULL);
        vl_cuda_fill_bf16(L->post_norm, H, 1.0f, NULL);
        vl_cuda_fill_bf16(L->q_norm, c->head_dim, 1.0f, NULL);
        vl_cuda_fill_bf16(L->k_norm, c->head_dim, 1.0f, NULL);
    }
    vl_cuda_fill_bf16(w->final_norm, H, 1.0f, NULL);
    for (int b = 0; b < c->v_depth; b++) {
        vl_cuda_fill_bf16(w->vblock[b].norm1_w, V, 1.0f, NULL);
        vl_cuda_fill_bf16(w->vblock[b].norm2_w, V, 1.0f, NULL);
    }
    vl_cuda_fill_bf16(w->merger.norm_w, V, 1.0f, NULL);
    for (int m = 0; m < c->n_deepstack; m++)
        vl_cuda_fill_bf16(w->deepstack[m].norm_w, 4 * V, 1.0f, NULL);
    vl_cuda_device_sync();
}

void vl_cuda_weights_free(struct vl_cuda_weights *w)
{
    if (w->arena)
        vl_cuda_free(w->arena);
    memset(w, 0, sizeof *w);
}
#endif
